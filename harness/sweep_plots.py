"""Sweep-level figures from a tidy table (``harness.figures.table``): table in, ``Figure`` out.

- ``profile``: per-layer profiles (x = layer), one line per ``hue`` value with a band of +-1 std over
  seeds, one panel per ``col`` value; log y for norms.
- ``phase``: a heatmap of a summary metric over two factors (``x`` by ``y``), one panel per ``col``;
  diverged cells marked with a cross.
- ``lines``: a summary metric against ``x``, one line per ``hue``, error bars over seeds.
- ``heatmap``: layer x step maps of a per-layer statistic during training, one panel per ``col``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.figures import nice

LABELS = {"grad_W": "||dL/dW_l||", "grad_b": "||dL/db_l||", "grad_h": "||dL/dh_l||",
          "grad_ratio_log10": "log10 ||dL/dW_1|| / ||dL/dW_D||",
          "grad_h_ratio_log10": "log10 ||dL/dh_1|| / ||dL/dh_D||",
          "grad_h_slope": "rate: slope of log ||dL/dh_l||^2 per layer"}  # fmt: skip


def _palette(n: int, name: str | None) -> list:
    import seaborn as sns

    return sns.color_palette(name or "colorblind", n)


def _values(frame: Any, factor: str | None) -> list:
    """A factor's values in table order (the figure config's order)."""
    if factor is None:
        return [None]
    return list(dict.fromkeys(frame[factor]))


def _panels(frame: Any, col: str | None, style: dict, title: str) -> tuple[Figure, list, list]:
    cols = _values(frame, col)
    width = style.get("width", 4.2 * len(cols))
    fig = Figure(figsize=(width, style.get("height", 3.8)), layout="constrained")
    axes = fig.subplots(1, len(cols), squeeze=False, sharey=True)[0]
    fig.suptitle(style.get("title", title))
    for ax, value in zip(axes, cols, strict=True):
        if col is not None:
            ax.set_title(f"{col.split('.')[-1]} = {value}")
    return fig, list(axes), cols


def _subset(frame: Any, factor: str | None, value: Any) -> Any:
    return frame if factor is None else frame[frame[factor] == value]


def profile_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    metric, hue, col = plot["metric"], plot.get("hue"), plot.get("col")
    fig, axes, cols = _panels(frame, col, style, title)
    hues = _values(frame, hue)
    colours = _palette(len(hues), style.get("palette"))
    log = metric.startswith("grad")
    for ax, cval in zip(axes, cols, strict=True):
        part = _subset(frame, col, cval)
        for colour, hval in zip(colours, hues, strict=True):
            rows = _subset(part, hue, hval)
            x, mean, std = rows["layer"].to_numpy(), rows["mean"].to_numpy(), rows["std"].to_numpy()
            y, lo, hi = (
                (10**mean, 10 ** (mean - std), 10 ** (mean + std)) if log else (mean, mean - std, mean + std)
            )
            ax.plot(x, y, marker="o", ms=3, color=colour, label=None if hue is None else str(hval))
            ax.fill_between(x, lo, hi, color=colour, alpha=0.2, lw=0)
            if "theory" in rows and np.any(np.isfinite(rows["theory"])):
                ax.plot(x, 10 ** rows["theory"].to_numpy(), ls="--", lw=1.2, color=colour)
                if colour == colours[-1]:
                    ax.plot([], [], ls="--", color="k", label="mean-field theory")
        ax.set_xlabel("layer l")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log and style.get("logy", True):
            ax.set_yscale("log")
    axes[0].set_ylabel(LABELS.get(metric, metric))
    if hue is not None:
        axes[-1].legend(title=hue.split(".")[-1])
    return fig


DIVERGING = (
    "grad_ratio_log10",
    "grad_h_ratio_log10",
    "grad_h_slope",
    "theory_rate",
    "rate_diff",
    "theory_log_chi1",
)  # signed, 0 is critical: a diverging map centred on 0
BOUNDED = {"final_accuracy": (0.0, 1.0), "final_train_accuracy": (0.0, 1.0), "diverged": (0.0, 1.0)}
AXIS_LABELS = {"sigma_w2": "sigma_w^2", "chi1": "chi_1 (mean-field)"}


def _colour_scale(frame: Any, metric: str) -> dict:
    """imshow/pcolormesh colour arguments: diverging and symmetric for signed log ratios and slopes,
    sequential with the metric's own bounds for accuracies, sequential min..max otherwise."""
    finite = frame["mean"][np.isfinite(frame["mean"])]
    if metric in DIVERGING:
        bound = float(np.max(np.abs(finite))) if len(finite) else 1.0
        return {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
    lo, hi = BOUNDED.get(metric, (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0))
    return {"cmap": "viridis", "vmin": lo, "vmax": hi}


def _numeric(values: list) -> np.ndarray | None:
    numbers = [nice(v) for v in values]
    return np.array(numbers, dtype=float) if all(isinstance(v, float) for v in numbers) else None


def _edges(centres: np.ndarray, log: bool) -> np.ndarray:
    """Cell edges halfway between sorted centres (in log space on a log axis), extended at both ends."""
    c = np.log(centres) if log else centres
    if len(c) == 1:
        mid = np.array([c[0] - 0.5, c[0] + 0.5]) if not log else np.array([c[0] - 0.1, c[0] + 0.1])
    else:
        inner = 0.5 * (c[1:] + c[:-1])
        mid = np.concatenate([[c[0] - (inner[0] - c[0])], inner, [c[-1] + (c[-1] - inner[-1])]])
    return np.exp(mid) if log else mid


def _log_axis(values: np.ndarray | None, style: dict, key: str) -> bool:
    """style.logx / style.logy, else log when the values are positive and span a factor 8 or more."""
    if values is None:
        return False
    if key in style:
        return bool(style[key])
    return bool(np.all(values > 0) and values.max() / values.min() >= 8)


def phase_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    """A metric over two factors, one panel per ``col``: numeric axes (cells centred on the values,
    edges halfway) where the factors are numbers, categories otherwise; x in a derived unit with
    ``x_as``; the critical line, n x xi curves and the trainable depth where the table has them."""
    metric, xf, yf, col, x_as = plot["metric"], plot["x"], plot["y"], plot.get("col"), plot.get("x_as")
    fig, axes, cols = _panels(frame, col, style, title)
    measured = frame[frame["source"] == "measured"] if "source" in frame else frame
    scale = _colour_scale(measured, metric)
    for ax, cval in zip(axes, cols, strict=True):
        part = _subset(measured, col, cval)
        xs, ys = _values(part, xf), _values(part, yf)
        xnum = np.array([part[part[xf] == v][x_as].iloc[0] for v in xs], float) if x_as else _numeric(xs)
        ynum = _numeric(ys)
        xorder = np.argsort(xnum) if xnum is not None else np.arange(len(xs))
        yorder = np.argsort(ynum) if ynum is not None else np.arange(len(ys))
        xs, ys = [xs[i] for i in xorder], [ys[i] for i in yorder]
        grid = np.full((len(ys), len(xs)), np.nan)
        crossed = []
        for _, row in part.iterrows():
            i, j = ys.index(row[yf]), xs.index(row[xf])
            grid[i, j] = row["mean"]
            if row["diverged"]:
                crossed.append((j, i))
        logx, logy = _log_axis(xnum, style, "logx"), _log_axis(ynum, style, "logy")
        xc = xnum[xorder] if xnum is not None else np.arange(len(xs), dtype=float)
        yc = ynum[yorder] if ynum is not None else np.arange(len(ys), dtype=float)
        mesh = ax.pcolormesh(_edges(xc, logx), _edges(yc, logy), grid, shading="flat", **scale)
        for j, i in crossed:
            ax.plot(xc[j], yc[i], marker="x", color="k", ms=9, mew=2, ls="none")
        ax.set_xscale("log" if logx else "linear")
        ax.set_yscale("log" if logy else "linear")
        ax.minorticks_off()  # one tick per cell, labelled with its value
        ax.set_xticks(xc, [f"{v:.3g}" for v in xc] if xnum is not None else [str(v) for v in xs])
        ax.set_yticks(yc, [f"{v:.3g}" for v in yc] if ynum is not None else [str(v) for v in ys])
        _theory_overlays(ax, _subset(frame, col, cval), plot, xf, x_as, (xc, yc))
        ax.set_xlabel(AXIS_LABELS.get(x_as, x_as) if x_as else xf.split(".")[-1])
    axes[0].set_ylabel(yf.split(".")[-1])
    fig.colorbar(mesh, ax=axes, label=f"{LABELS.get(metric, metric)}  (x: diverged)")
    return fig


def _theory_overlays(ax: Any, part: Any, plot: dict, xf: str, x_as: str | None, centres: tuple) -> None:
    """The critical line (chi_1 = 1), the n x xi curves and the measured trainable depth, kept inside
    the measured cells' range."""
    xc, yc = centres
    x_of = (
        (lambda rows: rows[x_as].to_numpy(float))
        if x_as
        else (lambda rows: rows[xf].map(nice).to_numpy(float))
    )
    drawn = False
    crit = part["critical_x"].dropna() if "critical_x" in part else []
    if len(crit) and xc.min() <= float(crit.iloc[0]) <= xc.max():
        ax.axvline(float(crit.iloc[0]), color="k", ls="--", lw=1.5, label="chi_1 = 1 (theory)")
        drawn = True
    sources = [s for s in dict.fromkeys(part.get("source", [])) if s not in ("measured", "trainable depth")]
    for k, source in enumerate(sources):
        rows = part[part["source"] == source]
        ax.plot(
            x_of(rows),
            rows["mean"],
            color="w",
            lw=2.0,
            ls=("-", ":", "-.")[k % 3],
            label=f"{source} (theory)",
        )
        drawn = True
    if "source" in part and (part["source"] == "trainable depth").any():
        rows = part[part["source"] == "trainable depth"]
        ax.plot(
            x_of(rows),
            rows["mean"],
            color="orange",
            marker="o",
            ms=5,
            lw=1.2,
            label="trainable depth (measured)",
        )
        drawn = True
    ax.set_ylim(*_edges(yc, ax.get_yscale() == "log")[[0, -1]])
    if drawn:
        ax.legend(fontsize=8, loc="upper right")


def lines_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    metric, xf, hue, col, x_as = plot["metric"], plot["x"], plot.get("hue"), plot.get("col"), plot.get("x_as")
    fig, axes, cols = _panels(frame, col, style, title)
    hues = _values(frame, hue)
    colours = _palette(len(hues), style.get("palette"))
    for ax, cval in zip(axes, cols, strict=True):
        part = _subset(frame, col, cval)
        for colour, hval in zip(colours, hues, strict=True):
            rows = _subset(part, hue, hval)
            measured = rows[rows["source"] == "measured"] if "source" in rows else rows
            x = measured[x_as] if x_as else [nice(v) for v in measured[xf]]  # sigma_w2, chi1 columns
            label = None if hue is None else f"{hue.split('.')[-1]}={hval}"
            ax.errorbar(x, measured["mean"], yerr=measured["std"], marker="o", capsize=3, color=colour,
                        ls="none" if plot.get("theory") else "-", label=label)  # fmt: skip
            if plot.get("theory") and "source" in rows:
                curve = rows[rows["source"] == "theory"]
                cx = curve[x_as] if x_as else [nice(v) for v in curve[xf]]
                ax.plot(cx, curve["mean"], color=colour, lw=1.5)
        ax.set_xlabel(AXIS_LABELS.get(x_as, x_as) if x_as else xf.split(".")[-1])
        ax.axhline(0.0, color="0.5", lw=0.8)
    axes[0].set_ylabel(LABELS.get(metric, metric))
    if hue is not None:
        axes[-1].legend(title="lines: theory" if plot.get("theory") else None)
    return fig


def heatmap_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    metric, col = plot["metric"], plot.get("col")
    fig, axes, cols = _panels(frame, col, style, title)
    finite = frame["mean"][np.isfinite(frame["mean"])]
    norm = LogNorm(10 ** finite.min(), 10 ** finite.max()) if len(finite) else None
    for ax, cval in zip(axes, cols, strict=True):
        part = _subset(frame, col, cval)
        steps, layers = np.unique(part["step"]), np.unique(part["layer"])
        grid = part.pivot(index="layer", columns="step", values="mean").reindex(index=layers, columns=steps)
        mesh = ax.pcolormesh(steps, layers, 10 ** grid.to_numpy(), norm=norm, shading="nearest")
        ax.set_xlabel("step")
    axes[0].set_ylabel("layer l")
    fig.colorbar(mesh, ax=axes, label=LABELS.get(metric, metric))
    return fig


PLOTTERS = {
    "profile": profile_figure,
    "phase": phase_figure,
    "lines": lines_figure,
    "heatmap": heatmap_figure,
}

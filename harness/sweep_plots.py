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


def phase_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    metric, xf, yf, col = plot["metric"], plot["x"], plot["y"], plot.get("col")
    fig, axes, cols = _panels(frame, col, style, title)
    finite = frame["mean"][np.isfinite(frame["mean"])]
    bound = float(np.max(np.abs(finite))) if len(finite) else 1.0
    xs, ys = _values(frame, xf), _values(frame, yf)
    for ax, cval in zip(axes, cols, strict=True):
        part = _subset(frame, col, cval)
        grid = np.full((len(ys), len(xs)), np.nan)
        crossed = []
        for _, row in part.iterrows():
            i, j = ys.index(row[yf]), xs.index(row[xf])
            grid[i, j] = row["mean"]
            if row["diverged"]:
                crossed.append((j, i))
        mesh = ax.imshow(grid, origin="lower", cmap="RdBu_r", vmin=-bound, vmax=bound, aspect="auto")
        for j, i in crossed:
            ax.plot(j, i, marker="x", color="k", ms=9, mew=2)
        if "critical_x" in part and len(part):
            _critical_line(ax, float(part["critical_x"].iloc[0]), xs)
        ax.set_xticks(range(len(xs)), [str(v) for v in xs])
        ax.set_yticks(range(len(ys)), [str(v) for v in ys])
        ax.set_xlabel(xf.split(".")[-1])
    axes[0].set_ylabel(yf.split(".")[-1])
    fig.colorbar(mesh, ax=axes, label=f"{LABELS.get(metric, metric)}  (x: diverged)")
    return fig


def _critical_line(ax: Any, critical: float, xs: list) -> None:
    """A dashed vertical line where chi_1 = 1, placed between the categorical x columns by log
    interpolation of their values."""
    values = np.array([nice(v) for v in xs], dtype=float)
    if not np.isfinite(critical) or np.any(values <= 0) or not values.min() <= critical <= values.max():
        return
    where = float(np.interp(np.log(critical), np.log(values), np.arange(len(values))))
    ax.axvline(where, color="k", ls="--", lw=1.5, label="chi_1 = 1 (theory)")
    ax.legend(fontsize=8, loc="upper left")


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
            x = measured[x_as] if x_as else [nice(v) for v in measured[xf]]
            label = None if hue is None else f"{hue.split('.')[-1]}={hval}"
            ax.errorbar(x, measured["mean"], yerr=measured["std"], marker="o", capsize=3, color=colour,
                        ls="none" if plot.get("theory") else "-", label=label)  # fmt: skip
            if plot.get("theory") and "source" in rows:
                curve = rows[rows["source"] == "theory"]
                cx = curve[x_as] if x_as else [nice(v) for v in curve[xf]]
                ax.plot(cx, curve["mean"], color=colour, lw=1.5)
        ax.set_xlabel("sigma_w^2" if x_as == "sigma_w2" else xf.split(".")[-1])
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

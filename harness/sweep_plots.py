"""Sweep-level figures from a tidy table (``harness.figure_table.table``): table in, ``Figure`` out.

seaborn draws them from the table: ``FacetGrid`` makes one panel per ``col`` value, ``lineplot`` one
line per ``hue`` value in the config's order with the style's palette, ``heatmap`` the layer x step maps.
The spread shown is the table's own ``std`` column (its CSV holds exactly what is drawn), as a band
(profiles) or error bars (lines).

- ``profile``: per-layer profiles (x = layer), +-1 std over seeds; log y for norms.
- ``phase``: a summary metric over two factors (``x`` by ``y``) on numeric axes, diverged cells crossed,
  with the theory overlays.
- ``lines``: a summary metric against ``x``, error bars over seeds, theory curves when asked.
- ``heatmap``: layer x step maps of a per-layer statistic during training.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness.figures import nice
from harness.metrics import SUMMARIES, is_norm, label

AXIS_LABELS = {"sigma_w2": "sigma_w^2", "chi1": "chi_1 (mean-field)"}


def _values(frame: Any, factor: str | None) -> list:
    """A factor's values in table order (the figure config's order)."""
    if factor is None:
        return [None]
    return list(dict.fromkeys(frame[factor]))


def _grid(frame: Any, col: str | None, style: dict, title: str) -> Any:
    """seaborn's FacetGrid: one panel per ``col`` value, in the config's order, shared y."""
    import seaborn as sns

    cols = _values(frame, col)
    width, height = style.get("width", 4.2 * len(cols)), style.get("height", 3.8)
    grid = sns.FacetGrid(frame, col=col, col_order=None if col is None else cols, sharex=False, sharey=True,
                         height=height, aspect=width / len(cols) / height, despine=False)  # fmt: skip
    grid.set_titles("" if col is None else f"{col.split('.')[-1]} = {{col_name}}")
    grid.figure.suptitle(style.get("title", title))
    return grid


def _panels(grid: Any) -> list[tuple[Any, Any]]:
    """(axes, the rows of its panel) for each panel."""
    return [(grid.axes[0, j], part) for (_, j, _), part in grid.facet_data()]


def _done(grid: Any) -> Figure:
    """The grid's figure, laid out and released by pyplot (the caller saves it)."""
    import matplotlib.pyplot as plt

    grid.tight_layout()
    plt.close(grid.figure)
    return grid.figure


def _palette(n: int, name: str | None) -> list:
    import seaborn as sns

    return sns.color_palette(name or "colorblind", n)


def _lineplot(
    ax: Any, rows: Any, x: str, y: str, hue: str | None, hues: list, colours: list, **kw: Any
) -> None:
    import seaborn as sns

    sns.lineplot(data=rows, x=x, y=y, hue=hue, hue_order=None if hue is None else hues,
                 palette=None if hue is None else colours, color=colours[0] if hue is None else None,
                 errorbar=None, sort=False, ax=ax, legend=False, **kw)  # fmt: skip


def profile_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    metric, hue, col = plot["metric"], plot.get("hue"), plot.get("col")
    grid = _grid(frame, col, style, title)
    hues = _values(frame, hue)
    colours = _palette(len(hues), style.get("palette"))
    log = is_norm(metric)
    for ax, part in _panels(grid):
        rows = part.assign(y=10 ** part["mean"] if log else part["mean"])
        _lineplot(ax, rows, "layer", "y", hue, hues, colours, marker="o", markersize=3, markeredgewidth=0)
        for colour, hval in zip(colours, hues, strict=True):
            one = part if hue is None else part[part[hue] == hval]
            mean, std = one["mean"].to_numpy(), one["std"].to_numpy()
            lo, hi = (10 ** (mean - std), 10 ** (mean + std)) if log else (mean - std, mean + std)
            ax.fill_between(one["layer"].to_numpy(), lo, hi, color=colour, alpha=0.2, lw=0)
            if "theory" in one and np.any(np.isfinite(one["theory"])):
                ax.plot(one["layer"], 10 ** one["theory"].to_numpy(), ls="--", lw=1.2, color=colour)
        ax.set_xlabel("layer l")
        ax.set_ylabel("")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if log and style.get("logy", True):
            ax.set_yscale("log")
    grid.axes[0, 0].set_ylabel(label(metric))
    theory = "theory" in frame and bool(np.isfinite(frame["theory"]).any())
    _legend(grid.axes[0, -1], hue, hues, colours, theory, title=hue and hue.split(".")[-1])
    return _done(grid)


def _legend(ax: Any, hue: str | None, hues: list, colours: list, theory: bool, title: str | None) -> None:
    if hue is None:
        return
    for colour, hval in zip(colours, hues, strict=True):
        ax.plot([], [], marker="o", color=colour, label=str(hval))
    if theory:
        ax.plot([], [], ls="--", color="k", label="mean-field theory")
    ax.legend(title=title)


def _colour_scale(frame: Any, metric: str) -> dict:
    """imshow/pcolormesh colour arguments: diverging and symmetric for signed log ratios and slopes,
    sequential with the metric's own bounds for accuracies, sequential min..max otherwise."""
    finite = frame["mean"][np.isfinite(frame["mean"])]
    scale = SUMMARIES[metric].scale if metric in SUMMARIES else "sequential"
    if scale == "diverging":
        bound = float(np.max(np.abs(finite))) if len(finite) else 1.0
        return {"cmap": "RdBu_r", "vmin": -bound, "vmax": bound}
    if scale == "bounded":
        lo, hi = 0.0, 1.0
    else:
        lo, hi = (float(finite.min()), float(finite.max())) if len(finite) else (0.0, 1.0)
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
    metric, col = plot["metric"], plot.get("col")
    measured = frame[frame["source"] == "measured"] if "source" in frame else frame
    grid = _grid(measured, col, style, title)
    scale = _colour_scale(measured, metric)
    for ax, part in _panels(grid):
        cval = part[col].iloc[0] if col else None
        mesh = _phase_panel(ax, part, plot, style, scale)
        theory = frame if col is None else frame[frame[col] == cval]
        xc, yc = mesh.centres
        _theory_overlays(ax, theory, plot, plot["x"], plot.get("x_as"), (xc, yc))
    grid.axes[0, 0].set_ylabel(plot["y"].split(".")[-1])
    figure = _done(grid)
    figure.colorbar(mesh, ax=list(grid.axes.ravel()), label=f"{label(metric)}  (x: diverged)")
    return figure


def _axis(part: Any, factor: str, derived: str | None) -> tuple[list, np.ndarray | None]:
    """A factor's values sorted by their numbers (the derived column's with ``x_as``), and the numbers."""
    values = _values(part, factor)
    numbers = (
        np.array([part[part[factor] == v][derived].iloc[0] for v in values], float)
        if derived
        else _numeric(values)
    )
    order = np.argsort(numbers) if numbers is not None else np.arange(len(values))
    return [values[i] for i in order], None if numbers is None else numbers[order]


def _phase_panel(ax: Any, part: Any, plot: dict, style: dict, scale: dict) -> Any:
    """One panel's cells (pcolormesh on numeric axes: seaborn's heatmap is categorical), crosses on
    diverged cells, one tick per cell labelled with its value; the mesh, with ``centres`` set."""
    xf, yf, x_as = plot["x"], plot["y"], plot.get("x_as")
    (xs, xnum), (ys, ynum) = _axis(part, xf, x_as), _axis(part, yf, None)
    grid = np.full((len(ys), len(xs)), np.nan)
    crossed = []
    for _, row in part.iterrows():
        i, j = ys.index(row[yf]), xs.index(row[xf])
        grid[i, j] = row["mean"]
        if row["diverged"]:
            crossed.append((j, i))
    logx, logy = _log_axis(xnum, style, "logx"), _log_axis(ynum, style, "logy")
    xc = xnum if xnum is not None else np.arange(len(xs), dtype=float)
    yc = ynum if ynum is not None else np.arange(len(ys), dtype=float)
    mesh = ax.pcolormesh(_edges(xc, logx), _edges(yc, logy), grid, shading="flat", **scale)
    for j, i in crossed:
        ax.plot(xc[j], yc[i], marker="x", color="k", ms=9, mew=2, ls="none")
    ax.set_xscale("log" if logx else "linear")
    ax.set_yscale("log" if logy else "linear")
    ax.minorticks_off()  # one tick per cell, labelled with its value
    ax.set_xticks(xc, [f"{v:.3g}" for v in xc] if xnum is not None else [str(v) for v in xs])
    ax.set_yticks(yc, [f"{v:.3g}" for v in yc] if ynum is not None else [str(v) for v in ys])
    ax.set_xlabel(AXIS_LABELS.get(x_as, x_as) if x_as else xf.split(".")[-1])
    ax.set_ylabel("")
    mesh.centres = (xc, yc)
    return mesh


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
    grid = _grid(frame, col, style, title)
    hues = _values(frame, hue)
    colours = _palette(len(hues), style.get("palette"))
    theory = bool(plot.get("theory")) and "source" in frame
    for ax, part in _panels(grid):
        part = part.assign(x=part[x_as] if x_as else [nice(v) for v in part[xf]])  # sigma_w2, chi1 columns
        measured = part[part["source"] == "measured"] if "source" in part else part
        if not theory:
            _lineplot(ax, measured, "x", "mean", hue, hues, colours)
        else:
            _lineplot(ax, part[part["source"] == "theory"], "x", "mean", hue, hues, colours, lw=1.5)
        for colour, hval in zip(colours, hues, strict=True):
            one = measured if hue is None else measured[measured[hue] == hval]
            name = None if hue is None else f"{hue.split('.')[-1]}={hval}"
            ax.errorbar(one["x"], one["mean"], yerr=one["std"], marker="o", capsize=3, color=colour,
                        ls="none", label=name)  # fmt: skip
        ax.set_xlabel(AXIS_LABELS.get(x_as, x_as) if x_as else xf.split(".")[-1])
        ax.set_ylabel("")
        ax.axhline(0.0, color="0.5", lw=0.8)
    grid.axes[0, 0].set_ylabel(label(metric))
    if hue is not None:
        grid.axes[0, -1].legend(title="lines: theory" if plot.get("theory") else None)
    return _done(grid)


def heatmap_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    """Layer x step maps (seaborn's heatmap), one colour scale (log) over every panel."""
    import seaborn as sns

    metric, col = plot["metric"], plot.get("col")
    grid = _grid(frame, col, style, title)
    finite = frame["mean"][np.isfinite(frame["mean"])]
    norm = LogNorm(10 ** finite.min(), 10 ** finite.max()) if len(finite) else None
    for ax, part in _panels(grid):
        cells = part.pivot(index="layer", columns="step", values="mean").sort_index().sort_index(axis=1)
        every = max(1, cells.shape[1] // 6)  # about six step labels
        sns.heatmap(10**cells, norm=norm, cmap="viridis", cbar=False, ax=ax, xticklabels=every)
        ax.invert_yaxis()  # layer 1 at the bottom
        ax.tick_params(axis="x", labelrotation=0)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_xlabel("step")
        ax.set_ylabel("")
    grid.axes[0, 0].set_ylabel("layer l")
    figure = _done(grid)
    figure.colorbar(ax.collections[0], ax=list(grid.axes.ravel()), label=label(metric))
    return figure


PLOTTERS = {
    "profile": profile_figure,
    "phase": phase_figure,
    "lines": lines_figure,
    "heatmap": heatmap_figure,
}

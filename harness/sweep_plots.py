"""Sweep-level figures from a tidy table (``harness.figure_table.table``): table in, ``Figure`` out.

seaborn draws them from the table: ``FacetGrid`` makes one panel per ``col`` value, ``lineplot`` one
line per ``hue`` value in the config's order with the style's palette, ``heatmap`` the layer x step maps.
The spread shown is the table's own ``std`` column (its CSV holds exactly what is drawn), as a band
(profiles) or error bars (lines).

- ``profile``: per-layer profiles (x = layer), +-1 std over seeds; log y for norms.
- ``phase``: a summary metric over two factors (``x`` by ``y``): ``harness.phase_plots``.
- ``lines``: a summary metric against ``x``, error bars over seeds, theory curves when asked.
- ``heatmap``: layer x step maps of a per-layer statistic during training.
- ``map``: layer l's q_l (or c_l) against layer l + 1's, with the length (correlation) map itself.
- ``spectrum``: the density of the Jacobian's squared singular values (log10), pooled over seeds, as
  steps, with free probability's density dashed when asked.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.colors import LogNorm
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from harness import facets
from harness.figures import nice
from harness.metrics import is_norm, label
from harness.phase_plots import phase_figure


def profile_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    metric, hue, col = plot["metric"], plot.get("hue"), plot.get("col")
    grid = facets.grid(frame, col, style, title)
    hues = facets.values(frame, hue)
    colours = facets.palette(len(hues), style.get("palette"))
    log = is_norm(metric)
    for ax, part in facets.panels(grid):
        rows = part.assign(y=10 ** part["mean"] if log else part["mean"])
        facets.lineplot(
            ax, rows, "layer", "y", hue, hues, colours, marker="o", markersize=3, markeredgewidth=0
        )
        for colour, _, one in facets.by_hue(part, hue, hues, colours):
            mean, std = one["mean"].to_numpy(), one["std"].to_numpy()
            lo, hi = (10 ** (mean - std), 10 ** (mean + std)) if log else (mean - std, mean + std)
            ax.fill_between(one["layer"].to_numpy(), lo, hi, color=colour, alpha=0.2, lw=0)
            if "theory" in one and np.any(np.isfinite(one["theory"])):
                line = 10 ** one["theory"].to_numpy() if log else one["theory"].to_numpy()
                ax.plot(one["layer"], line, ls="--", lw=1.2, color=colour)
        ax.set_xlabel("layer l")
        ax.set_ylabel("")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        if style.get("logy", log):  # norms: log unless style.logy is false; others when it is true
            ax.set_yscale("log")
    grid.axes[0, 0].set_ylabel(label(metric))
    theory = "theory" in frame and bool(np.isfinite(frame["theory"]).any())
    _legend(grid.axes[0, -1], hue, hues, colours, theory, title=hue and hue.split(".")[-1])
    return facets.done(grid)


def _legend(ax: Any, hue: str | None, hues: list, colours: list, theory: bool, title: str | None) -> None:
    if hue is None:
        return
    for colour, hval in zip(colours, hues, strict=True):
        ax.plot([], [], marker="o", color=colour, label=str(hval))
    if theory:
        ax.plot([], [], ls="--", color="k", label="theory")
    ax.legend(title=title)


def lines_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    metric, xf, hue, col, x_as = plot["metric"], plot["x"], plot.get("hue"), plot.get("col"), plot.get("x_as")
    grid = facets.grid(frame, col, style, title)
    hues = facets.values(frame, hue)
    colours = facets.palette(len(hues), style.get("palette"))
    theory = bool(plot.get("theory")) and "source" in frame
    for ax, part in facets.panels(grid):
        part = part.assign(x=part[x_as] if x_as else [nice(v) for v in part[xf]])  # sigma_w2, chi1 columns
        measured = part[part["source"] == "measured"] if "source" in part else part
        if not theory:
            facets.lineplot(ax, measured, "x", "mean", hue, hues, colours)
        else:
            facets.lineplot(ax, part[part["source"] == "theory"], "x", "mean", hue, hues, colours, lw=1.5)
        for colour, hval in zip(colours, hues, strict=True):
            one = measured if hue is None else measured[measured[hue] == hval]
            name = None if hue is None else str(hval) if hue == "case" else f"{hue.split('.')[-1]}={hval}"
            ax.errorbar(one["x"], one["mean"], yerr=one["std"], marker="o", capsize=3, color=colour,
                        ls="none", label=name)  # fmt: skip
        ax.set_xlabel(facets.axis_label(xf, x_as))
        ax.set_ylabel("")
        ax.axhline(0.0, color="0.5", lw=0.8)
        if style.get("logx"):
            ax.set_xscale("log")
    grid.axes[0, 0].set_ylabel(label(metric))
    if hue is not None:
        grid.axes[0, -1].legend(title="lines: theory" if plot.get("theory") else None)
    elif theory:
        grid.axes[0, -1].plot([], [], marker="o", ls="none", color=colours[0], label="measured (+-1 std)")
        grid.axes[0, -1].plot([], [], lw=1.5, color=colours[0], label="theory")
        grid.axes[0, -1].legend()
    return facets.done(grid)


def heatmap_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    """Layer x step maps (seaborn's heatmap), one colour scale (log) over every panel."""
    import seaborn as sns

    metric, col = plot["metric"], plot.get("col")
    grid = facets.grid(frame, col, style, title)
    finite = frame["mean"][np.isfinite(frame["mean"])]
    norm = LogNorm(10 ** finite.min(), 10 ** finite.max()) if len(finite) else None
    for ax, part in facets.panels(grid):
        cells = part.pivot(index="layer", columns="step", values="mean").sort_index().sort_index(axis=1)
        every = max(1, cells.shape[1] // 6)  # about six step labels
        sns.heatmap(10**cells, norm=norm, cmap="viridis", cbar=False, ax=ax, xticklabels=every)
        ax.invert_yaxis()  # layer 1 at the bottom
        ax.tick_params(axis="x", labelrotation=0)
        ax.tick_params(axis="y", labelrotation=0)
        ax.set_xlabel("step")
        ax.set_ylabel("")
    grid.axes[0, 0].set_ylabel("layer l")
    figure = facets.done(grid)
    figure.colorbar(ax.collections[0], ax=list(grid.axes.ravel()), label=label(metric))
    return figure


def spectrum_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    """Steps of the measured density of log10 lambda per ``hue``, the theory dashed in the same colour."""
    hue, col = plot.get("hue"), plot.get("col")
    grid = facets.grid(frame, col, style, title)
    hues = facets.values(frame, hue)
    colours = facets.palette(len(hues), style.get("palette"))
    for ax, part in facets.panels(grid):
        for colour, _, one in facets.by_hue(part, hue, hues, colours):
            bars = one[one["source"] == "measured"]
            edges = np.append(bars["lo"].to_numpy(), bars["hi"].to_numpy()[-1:])
            density = bars["density"].to_numpy()
            ax.stairs(np.where(density > 0, density, np.nan), edges, color=colour, lw=1.4)
            line = one[one["source"] == "theory"]
            ax.plot(line["log10_sv2"], line["density"], ls="--", lw=1.2, color=colour)
        ax.set_xlabel("log10 lambda (squared singular value of dh_D/dx)")
        ax.set_ylabel("")
        if style.get("logy"):
            ax.set_yscale("log")
            ax.set_ylim(bottom=1e-3)
    grid.axes[0, 0].set_ylabel("density of log10 lambda")
    theory = bool((frame["source"] == "theory").any())
    if hue is not None:
        for colour, hval in zip(colours, hues, strict=True):
            grid.axes[0, -1].plot([], [], color=colour, label=f"{hue.split('.')[-1]}={hval}")
        if theory:
            grid.axes[0, -1].plot([], [], ls="--", color="k", label="free probability")
        grid.axes[0, -1].legend()
    return facets.done(grid)


def map_figure(frame: Any, plot: dict, style: dict, title: str) -> Figure:
    """Layer l's value against layer l + 1's (points per ``hue``), the map itself in the hue's colour and
    the identity dotted: its fixed points are where they cross."""
    metric, hue, col = plot["metric"], plot.get("hue"), plot.get("col")
    grid = facets.grid(frame, col, style, title)
    hues = facets.values(frame, hue)
    colours = facets.palette(len(hues), style.get("palette"))
    for ax, part in facets.panels(grid):
        for colour, _, one in facets.by_hue(part, hue, hues, colours):
            points, line = one[one["source"] == "measured"], one[one["source"] == "theory"]
            ax.plot(points["x"], points["y"], marker="o", ms=4, ls="none", color=colour, alpha=0.8)
            ax.plot(line["x"], line["y"], lw=1.3, color=colour)
        finite = part[["x", "y"]].to_numpy(float)
        finite = finite[np.isfinite(finite).all(axis=1)]
        lo, hi = finite.min(), finite.max()
        ax.plot([lo, hi], [lo, hi], ls=":", color="0.4", lw=1)
        if style.get("logx"):
            ax.set_xscale("log")
            ax.set_yscale("log")
        ax.set_xlabel(f"{label(metric)}, layer l")
        ax.set_ylabel("")
    grid.axes[0, 0].set_ylabel("the same, layer l + 1")
    if hue is not None:
        for colour, hval in zip(colours, hues, strict=True):
            grid.axes[0, -1].plot(
                [], [], marker="o", ls="none", color=colour, label=f"{hue.split('.')[-1]}={hval}"
            )
        grid.axes[0, -1].plot([], [], color="k", label="the map (theory)")
        grid.axes[0, -1].plot([], [], ls=":", color="0.4", label="identity")
        grid.axes[0, -1].legend()
    return facets.done(grid)


PLOTTERS = {
    "profile": profile_figure,
    "phase": phase_figure,
    "lines": lines_figure,
    "heatmap": heatmap_figure,
    "spectrum": spectrum_figure,
    "map": map_figure,
}

"""Phase diagrams: a summary metric over two factors on numeric axes (cells centred on the values,
edges halfway, log where the values span x8), diverged cells crossed, and the theory drawn over them:
the critical line chi_1 = 1, the n x xi curves and the measured trainable depth."""

from __future__ import annotations

from typing import Any

import numpy as np
from matplotlib.figure import Figure

from harness import facets
from harness.figures import nice
from harness.metrics import SUMMARIES, label


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
    grid = facets.grid(measured, col, style, title)
    scale = _colour_scale(measured, metric)
    for ax, part in facets.panels(grid):
        cval = part[col].iloc[0] if col else None
        mesh, (xc, yc) = _phase_panel(ax, part, plot, style, scale)
        theory = frame if col is None else frame[frame[col] == cval]
        _theory_overlays(ax, theory, plot, (xc, yc))
    grid.axes[0, 0].set_ylabel(facets.axis_label(plot["y"], plot.get("y_as")))
    figure = facets.done(grid)
    figure.colorbar(mesh, ax=list(grid.axes.ravel()), label=f"{label(metric)}  (x: diverged)")
    return figure


def _axis(part: Any, factor: str, derived: str | None) -> tuple[list, np.ndarray | None]:
    """A factor's values sorted by their numbers (the derived column's with ``x_as``), and the numbers."""
    values = facets.values(part, factor)
    numbers = (
        np.array([part[part[factor] == v][derived].iloc[0] for v in values], float)
        if derived
        else _numeric(values)
    )
    order = np.argsort(numbers) if numbers is not None else np.arange(len(values))
    return [values[i] for i in order], None if numbers is None else numbers[order]


def _phase_panel(ax: Any, part: Any, plot: dict, style: dict, scale: dict) -> tuple[Any, tuple]:
    """One panel's cells (pcolormesh on numeric axes: seaborn's heatmap is categorical), crosses on
    diverged cells, one tick per cell labelled with its value; the mesh and the cells' centres (x, y)."""
    xf, yf, x_as = plot["x"], plot["y"], plot.get("x_as")
    (xs, xnum), (ys, ynum) = _axis(part, xf, x_as), _axis(part, yf, plot.get("y_as"))
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
    ax.set_xlabel(facets.axis_label(xf, x_as))
    ax.set_ylabel("")
    return mesh, (xc, yc)


def _coordinate(factor: str, derived: str | None) -> Any:
    """rows -> the numbers of a factor's axis (its derived column's with x_as / y_as)."""
    if derived:
        return lambda rows: rows[derived].to_numpy(float)
    return lambda rows: rows[factor].map(nice).to_numpy(float)


def _theory_overlays(ax: Any, part: Any, plot: dict, centres: tuple) -> None:
    """The critical line (chi_1 = 1; a curve over sigma_b with y model.bias_std), the n x xi curves and
    the measured trainable depth, kept inside the measured cells' range."""
    xc, yc = centres
    x_of, y_of = _coordinate(plot["x"], plot.get("x_as")), _coordinate(plot["y"], plot.get("y_as"))
    drawn = False
    crit = part["critical_x"].dropna() if "critical_x" in part else []
    if len(crit) and crit.nunique() == 1 and xc.min() <= float(crit.iloc[0]) <= xc.max():
        ax.axvline(float(crit.iloc[0]), color="k", ls="--", lw=1.5, label="chi_1 = 1 (theory)")
        drawn = True
    curve = part[part["source"] == "chi_1 = 1"] if "source" in part else part.iloc[:0]
    if len(curve):
        ax.plot(curve["mean"], y_of(curve), color="k", ls="--", lw=1.5, label="chi_1 = 1 (theory)")
        ax.set_xlim(*_edges(xc, ax.get_xscale() == "log")[[0, -1]])
        drawn = True
    skip = ("measured", "trainable depth", "chi_1 = 1")
    sources = [s for s in dict.fromkeys(part.get("source", [])) if s not in skip]
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
        ax.plot(x_of(rows), rows["mean"], color="orange", marker="o", ms=5, lw=1.2,
                label="trainable depth (measured)")  # fmt: skip
        if "lo" in rows and rows["lo"].notna().any():  # the same depth seed by seed: its range
            mean, lo, hi = (rows[k].to_numpy(float) for k in ("mean", "lo", "hi"))
            ax.errorbar(x_of(rows), mean, yerr=[np.clip(mean - lo, 0, None), np.clip(hi - mean, 0, None)],
                        color="orange", ls="none", capsize=3, lw=1.2, label="range over seeds")  # fmt: skip
        drawn = True
    ax.set_ylim(*_edges(yc, ax.get_yscale() == "log")[[0, -1]])
    if drawn:
        ax.legend(fontsize=8, loc="upper right")

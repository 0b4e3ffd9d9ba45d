"""Sweep figures from a tidy table: what each kind draws is the table's numbers, where they belong."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgb

from harness.sweep_plots import heatmap_figure, map_figure, spectrum_figure

HEATMAP = {"kind": "heatmap", "metric": "grad_W", "col": "model.depth"}


def _heatmap_frame() -> pd.DataFrame:
    """log10 ||dL/dW_l|| at steps 0, 10, 20 of two networks (depths 2 and 3), one cell with no finite
    value (NaN, as ``figure_table.table`` writes it)."""
    rows = []
    for depth in (2, 3):
        for step in (0, 10, 20):
            for layer in range(1, depth + 1):
                mean = depth - layer + 0.01 * step  # distinct within a panel
                rows.append(
                    {"model.depth": str(depth), "step": step, "layer": layer, "mean": mean, "n_seeds": 2}
                )
    frame = pd.DataFrame(rows)
    frame.loc[(frame["model.depth"] == "3") & (frame["step"] == 10) & (frame["layer"] == 2), "mean"] = np.nan
    return frame


def test_heatmap_draws_ten_to_the_logged_means_layer_by_step_one_panel_per_col():
    frame = _heatmap_frame()
    fig = heatmap_figure(frame, HEATMAP, {}, "t")
    panels, bar = fig.axes[:2], fig.axes[2]
    assert len(fig.axes) == 3 and bar.get_ylabel() == "||dL/dW_l||"
    assert [ax.get_title() for ax in panels] == ["depth = 2", "depth = 3"]
    assert [ax.get_xlabel() for ax in panels] == ["step", "step"] and panels[0].get_ylabel() == "layer l"
    finite = frame["mean"].dropna()
    for ax, depth in zip(panels, ("2", "3"), strict=True):
        part = frame[frame["model.depth"] == depth]
        mesh = ax.collections[0]
        grid = part.pivot(index="layer", columns="step", values="mean").to_numpy()  # layer x step
        shown = mesh.get_array()
        assert shown.shape == grid.shape == (int(depth), 3)
        np.testing.assert_array_equal(np.ma.getmaskarray(np.ma.masked_invalid(shown)), np.isnan(grid))
        np.testing.assert_array_equal(np.ma.filled(shown, np.nan), 10**grid)  # the same np.power
        # one cell per (layer, step): columns labelled with the steps, rows with the layers, layer 1 at
        # the bottom (the panels share the y axis: the deepest network's layers label both)
        coords = mesh.get_coordinates()
        np.testing.assert_array_equal(np.unique(coords[..., 0]), np.arange(4))
        np.testing.assert_array_equal(np.unique(coords[..., 1]), np.arange(int(depth) + 1))
        assert [t.get_text() for t in ax.get_xticklabels()] == ["0", "10", "20"]
        np.testing.assert_array_equal(ax.get_xticks(), [0.5, 1.5, 2.5])
        np.testing.assert_array_equal(ax.get_yticks(), [0.5, 1.5, 2.5])
        assert ax.get_ylim() == (0.0, 3.0)  # increasing upwards: row 0 (layer 1) at the bottom
        # one log colour scale over every panel: the same colour is the same norm in both
        assert (mesh.norm.vmin, mesh.norm.vmax) == pytest.approx((10 ** finite.min(), 10 ** finite.max()))
        assert type(mesh.norm).__name__ == "LogNorm"
    assert [t.get_text() for t in panels[0].get_yticklabels()] == ["1", "2", "3"]  # the outer panel's


def test_spectrum_draws_the_tables_bars_and_its_theory_dashed_in_the_same_colour():
    """Per panel (col) and hue: a step curve over the bins' edges with the table's densities (empty bins
    left out, so a log axis has no zeros), and the theory's points dashed in the hue's colour."""
    rows = []
    for depth in ("8", "32"):
        for k, init in enumerate(("orthogonal", "lecun_normal")):
            edges = np.linspace(-2 - k, 1, 5)
            for i, (lo, hi) in enumerate(zip(edges[:-1], edges[1:], strict=True)):
                density = 0.0 if i == 1 else 0.1 * (i + 1)
                rows.append({"model.init": init, "model.depth": depth, "source": "measured", "lo": lo,
                             "hi": hi, "log10_sv2": (lo + hi) / 2, "density": density,
                             "n_seeds": 2})  # fmt: skip
            for x in np.linspace(-3, 2, 7):
                rows.append({"model.init": init, "model.depth": depth, "source": "theory", "log10_sv2": x,
                             "density": 0.05 + 0.01 * k, "n_seeds": 0})  # fmt: skip
    frame = pd.DataFrame(rows)
    plot = {"kind": "spectrum", "metric": "jacobian_sv2", "hue": "model.init", "col": "model.depth"}
    fig = spectrum_figure(frame, plot, {"logy": True}, "t")
    assert [ax.get_title() for ax in fig.axes] == ["depth = 8", "depth = 32"]
    assert fig.axes[0].get_ylabel() == "density of log10 lambda" and fig.axes[0].get_yscale() == "log"
    for ax, depth in zip(fig.axes, ("8", "32"), strict=True):
        steps = [p for p in ax.patches if type(p).__name__ == "StepPatch"]
        dashed = [line for line in ax.lines if line.get_linestyle() == "--" and len(line.get_xdata())]
        assert len(steps) == len(dashed) == 2
        for k, (step, line) in enumerate(zip(steps, dashed, strict=True)):
            part = frame[
                (frame["model.depth"] == depth) & (frame["model.init"] == frame["model.init"].unique()[k])
            ]
            bars = part[part["source"] == "measured"]
            values, edges, _ = step.get_data()
            np.testing.assert_array_equal(edges, [*bars["lo"], bars["hi"].iloc[-1]])
            np.testing.assert_array_equal(np.isnan(values), bars["density"].to_numpy() == 0)
            np.testing.assert_array_equal(values[~np.isnan(values)], bars["density"][bars["density"] > 0])
            np.testing.assert_array_equal(line.get_ydata(), part[part["source"] == "theory"]["density"])
            assert to_rgb(step.get_edgecolor()) == pytest.approx(to_rgb(line.get_color()))
    labels = [t.get_text() for t in fig.axes[-1].get_legend().get_texts()]
    assert labels == ["init=orthogonal", "init=lecun_normal", "free probability"]


def test_map_draws_the_tables_points_its_curve_and_the_identity():
    rows = [{"model.init_scale": s, "source": "measured", "layer": i, "x": 0.1 * i, "y": 0.1 * i + 0.05,
             "n_seeds": 2} for s in ("1.0", "2.5") for i in (1, 2, 3)]  # fmt: skip
    rows += [{"model.init_scale": s, "source": "theory", "x": x, "y": x * x, "n_seeds": 0}
             for s in ("1.0", "2.5") for x in (0.0, 0.5, 1.0)]  # fmt: skip
    frame = pd.DataFrame(rows)
    fig = map_figure(frame, {"kind": "map", "metric": "preact_c", "hue": "model.init_scale"}, {}, "t")
    ax = fig.axes[0]
    drawn = [line for line in ax.lines if len(line.get_xdata())]
    points = [line for line in drawn if line.get_marker() == "o"]
    curves = [line for line in drawn if line.get_marker() != "o" and line.get_linestyle() == "-"]
    identity = [line for line in drawn if line.get_linestyle() == ":"]
    assert len(points) == len(curves) == 2 and len(identity) == 1
    np.testing.assert_array_equal(points[0].get_xdata(), [0.1, 0.2, 0.30000000000000004])
    np.testing.assert_array_equal(curves[1].get_ydata(), [0.0, 0.25, 1.0])
    assert list(identity[0].get_xdata()) == list(identity[0].get_ydata()) == [0.0, 1.0]
    assert ax.get_xlabel() == "c_l: correlation of two inputs' pre-activations, layer l"

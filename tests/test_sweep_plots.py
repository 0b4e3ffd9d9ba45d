"""Sweep figures from a tidy table: what each kind draws is the table's numbers, where they belong."""

import numpy as np
import pandas as pd
import pytest

from harness.sweep_plots import heatmap_figure

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

"""Phase diagrams: the theory drawn over the measured cells (the critical line, the n x xi curves, the
measured trainable depth) is the table's numbers, on the diagram's axes."""

import numpy as np
import pandas as pd
import pytest
from matplotlib.colors import to_rgba
from matplotlib.figure import Figure

from harness.phase_plots import _edges, _theory_overlays


def _overlay_part(critical: float) -> pd.DataFrame:
    measured = [{"model.init_scale": s, "model.depth": d, "source": "measured", "mean": 0.5,
                 "sigma_w2": float(s) ** 2, "critical_x": critical}
                for s in ("1.0", "2.0") for d in ("10", "20", "40")]  # fmt: skip
    curve = [{"model.init_scale": repr(x), "source": "6 xi_c", "mean": 30.0 - 5 * x, "sigma_w2": x * x}
             for x in (1.0, 1.25, 1.5, 1.75, 2.0)]  # fmt: skip
    second = [{"model.init_scale": repr(x), "source": "1 xi_q", "mean": 12.0 + x, "sigma_w2": x * x}
              for x in (1.0, 2.0)]  # fmt: skip
    trainable = [{"model.init_scale": s, "source": "trainable depth", "mean": m, "sigma_w2": float(s) ** 2}
                 for s, m in (("1.0", 20.0), ("2.0", 10.0))]  # fmt: skip
    return pd.DataFrame(measured + curve + second + trainable)


def _overlaid(part, x_as, yscale="linear", yc=(10.0, 20.0, 40.0)):
    ax = Figure().add_subplot()
    ax.set_yscale(yscale)
    xc = np.array([1.0, 4.0]) if x_as else np.array([1.0, 2.0])  # the measured cells' x centres
    plot = {"kind": "phase", "x": "model.init_scale", "y": "model.depth", "x_as": x_as}
    _theory_overlays(ax, part, plot, (xc, np.array(yc)))
    return ax


def test_theory_overlays_draw_the_critical_line_the_theory_curves_and_the_trainable_depth():
    part = _overlay_part(critical=1.76)  # sigma_w^2 at chi_1 = 1, inside the cells' range [1, 4]
    ax = _overlaid(part, "sigma_w2")
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines) == [
        "chi_1 = 1 (theory)",
        "6 xi_c (theory)",
        "1 xi_q (theory)",
        "trainable depth (measured)",
    ]
    crit = lines["chi_1 = 1 (theory)"]
    assert list(crit.get_xdata()) == [1.76, 1.76] and crit.get_linestyle() == "--"
    assert crit.get_color() == "k"
    for source, style in (("6 xi_c", "-"), ("1 xi_q", ":")):  # each curve its own line style, in white
        rows, line = part[part["source"] == source], lines[f"{source} (theory)"]
        np.testing.assert_array_equal(line.get_xdata(), rows["sigma_w2"])  # on the derived axis
        np.testing.assert_array_equal(line.get_ydata(), rows["mean"])
        assert line.get_linestyle() == style and to_rgba(line.get_color()) == to_rgba("w")
    deepest = lines["trainable depth (measured)"]
    np.testing.assert_array_equal(deepest.get_xdata(), [1.0, 4.0])
    np.testing.assert_array_equal(deepest.get_ydata(), [20.0, 10.0])
    assert deepest.get_color() == "orange" and deepest.get_marker() == "o"
    # the y range is the measured cells' (edges halfway between depths 10, 20, 40), not the curves'
    assert ax.get_ylim() == pytest.approx((5.0, 50.0))
    assert [t.get_text() for t in ax.get_legend().get_texts()] == list(lines)


def test_theory_overlays_use_the_factor_itself_without_a_derived_axis_and_log_edges_on_a_log_axis():
    part = _overlay_part(critical=1.33)  # init_scale at chi_1 = 1
    ax = _overlaid(part, None, yscale="log", yc=(10.0, 100.0))
    lines = {line.get_label(): line for line in ax.get_lines()}
    assert list(lines["chi_1 = 1 (theory)"].get_xdata()) == [1.33, 1.33]
    np.testing.assert_array_equal(lines["6 xi_c (theory)"].get_xdata(), [1.0, 1.25, 1.5, 1.75, 2.0])
    np.testing.assert_array_equal(lines["trainable depth (measured)"].get_xdata(), [1.0, 2.0])
    # edges halfway in log space: sqrt(10 * 100), extended by the same factor at both ends
    assert ax.get_ylim() == pytest.approx((10 / np.sqrt(10), 100 * np.sqrt(10)))
    assert ax.get_ylim() == pytest.approx(tuple(_edges(np.array([10.0, 100.0]), True)[[0, -1]]))


def test_theory_overlays_leave_out_a_critical_line_outside_the_cells_and_draw_nothing_without_theory():
    ax = _overlaid(_overlay_part(critical=6.0), "sigma_w2")  # chi_1 = 1 beyond the largest cell (4)
    assert "chi_1 = 1 (theory)" not in [line.get_label() for line in ax.get_lines()]
    measured = _overlay_part(critical=np.nan)
    measured = measured[measured["source"] == "measured"]
    bare = _overlaid(measured, "sigma_w2")
    assert bare.get_lines() == [] and bare.get_legend() is None
    assert bare.get_ylim() == pytest.approx((5.0, 50.0))

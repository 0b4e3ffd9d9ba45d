"""Figures: arrays in, figure out; log scales; NaN/Inf never crash a plot."""

import numpy as np
import pytest
from matplotlib.colors import to_rgba

from harness.plots import gradcheck_figure, gradient_flow_figure, heatmap_figure, jacobian_figure


def test_gradient_flow_figure_has_three_curves_on_log_scale():
    profile = {k: np.logspace(-3, 0, 6) for k in ("grad_W", "grad_b", "grad_h")}
    spread = {k: np.full(6, 0.2) for k in profile}
    ax = gradient_flow_figure(profile, spread, "t").axes[0]
    assert ax.get_yscale() == "log" and len(ax.get_lines()) == 3 and ax.get_title() == "t"
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), profile["grad_W"])


def test_gradient_flow_skips_curves_with_nothing_finite():
    profile = {"grad_W": np.full(4, np.nan), "grad_b": np.zeros(4), "grad_h": np.ones(4)}
    assert len(gradient_flow_figure(profile).axes[0].get_lines()) == 1


def test_heatmap_and_gradcheck_figures_handle_nan_and_inf():
    values = np.abs(np.random.default_rng(0).standard_normal((5, 3))) + 1e-3
    values[2, 1] = np.nan
    values[3, 0] = np.inf
    fig = heatmap_figure(np.arange(0, 50, 10), values)
    assert len(fig.axes) == 2  # the map and its colour bar
    mesh = fig.axes[0].collections[0]
    shown = mesh.get_array()  # layer x step: the input transposed, NaN and Inf masked, nothing else
    expected = np.ma.masked_invalid(values.T)
    assert shown.shape == (3, 5) and np.array_equal(np.ma.getmaskarray(shown), expected.mask)
    np.testing.assert_array_equal(shown.compressed(), expected.compressed())
    finite = values[np.isfinite(values)]
    assert (mesh.norm.vmin, mesh.norm.vmax) == (finite.min(), finite.max())  # the log scale ignores Inf
    errors = np.array([1e-10, 3e-6, np.nan])
    fig = gradcheck_figure(["layer1", "layer2", "readout"], errors, 1e-7)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == [
        "layer1", "layer2", "readout",
    ]  # fmt: skip
    heights = np.array([bar.get_height() for bar in ax.patches[:3]])
    np.testing.assert_array_equal(heights, errors)  # a NaN error draws no bar (and does not crash)


def test_gradcheck_figure_colours_pass_fail_and_unresolved():
    """Blue (C0) under the threshold, red (C3) over it, grey (0.6) where the gradient is unresolved."""
    fig = gradcheck_figure(
        ["a", "b", "c", "d"], np.array([1e-9, 1e-3, 1e-5, 0.0]), 1e-7, unresolved=np.array([0, 0, 1, 1])
    )
    bars = fig.axes[0].patches[:4]
    assert [b.get_facecolor() for b in bars] == [to_rgba("C0"), to_rgba("C3"), to_rgba("0.6"), to_rgba("0.6")]
    # an unresolved layer with no difference at all is drawn up to the threshold, not left out
    assert [b.get_height() for b in bars] == [1e-9, 1e-3, 1e-5, 1e-7]


def test_histogram_figure_shows_nonfinite_counts():
    from harness.plots import gradient_histogram_figure

    edges = np.linspace(-45, 45, 91)
    hist = np.zeros((3, 90), int)
    hist[:, 40] = 10
    fig = gradient_histogram_figure(
        edges, hist, np.array([0, 1, 0]), np.array([2, 0, 0]), np.array([0, 0, 5])
    )
    labels = [t.get_text() for t in fig.axes[1].get_legend().get_texts()]
    assert labels == ["zero: 1", "NaN: 2", "Inf: 5"]


def test_activation_figure_goes_symlog_when_activations_explode():
    from harness.plots import activation_figure

    profile = {"act_mean": np.logspace(0, 20, 5), "act_std": np.ones(5), "act_saturated": np.full(5, np.nan),
               "act_dead": np.linspace(0, 0.5, 5)}  # fmt: skip
    axes = activation_figure(profile, {}).axes
    assert axes[0].get_yscale() == "symlog" and axes[1].get_yscale() == "linear"
    assert [t.get_text() for t in axes[2].get_legend().get_texts()] == ["dead"]


def test_jacobian_figure_draws_the_squared_singular_values_and_both_means():
    """The histogram holds log10 sv^2 of exactly the nonzero singular values; the measured mean is
    sum(sv^2) / width (the zeros of a narrower input count), and the prediction is drawn where finite."""
    rng = np.random.default_rng(0)
    sv = np.concatenate([np.zeros(6), np.exp(rng.standard_normal(150))])  # input_dim 150 < width 156
    width = sv.size
    ax = jacobian_figure(sv, width, predicted_mean=2.5).axes[0]
    logs = np.log10(sv[sv > 0] ** 2)
    bars = ax.patches
    heights = np.array([b.get_height() for b in bars])
    edges = np.array([b.get_x() for b in bars] + [bars[-1].get_x() + bars[-1].get_width()])
    counts, expected_edges = np.histogram(logs, bins=len(bars))
    np.testing.assert_array_equal(heights, counts)  # every nonzero value counted once, zeros left out
    np.testing.assert_allclose(edges, expected_edges, rtol=1e-12)
    measured, predicted = ax.get_lines()
    assert measured.get_xdata()[0] == pytest.approx(np.log10(np.sum(sv**2) / width), rel=1e-12)
    assert predicted.get_xdata()[0] == pytest.approx(np.log10(2.5), rel=1e-12)
    assert predicted.get_linestyle() == "--"
    for missing in (None, np.nan, 0.0, -1.0):  # no finite positive prediction: no theory line
        assert len(jacobian_figure(sv, width, predicted_mean=missing).axes[0].get_lines()) == 1


def test_shared_mathtext_parser_leaves_every_pixel(monkeypatch):
    """Agg renderers share one mathtext parser (a speed-up): the PNG bytes are those of matplotlib's own
    per-renderer parser, on a first figure and on one drawn after others warmed the shared cache."""
    import io

    from matplotlib.backends import backend_agg

    profile = {k: np.geomspace(1e-9, 3.0, 12) * (i + 1) for i, k in enumerate(("grad_W", "grad_b", "grad_h"))}
    spread = {k: np.full(12, 0.3) for k in profile}

    def png() -> bytes:
        out = io.BytesIO()
        gradient_flow_figure(profile, spread, "bytes").savefig(out, format="png")
        return out.getvalue()

    shared = png(), png()
    assert backend_agg.RendererAgg.__init__.shares_mathtext
    monkeypatch.setattr(backend_agg.RendererAgg, "__init__", backend_agg.RendererAgg.__init__.original)
    assert shared[0] == shared[1] == png()

"""Figures: arrays in, figure out; log scales; NaN/Inf never crash a plot."""

import numpy as np

from harness.plots import gradcheck_figure, gradient_flow_figure, heatmap_figure


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
    fig = gradcheck_figure(["layer1", "layer2", "readout"], np.array([1e-10, 3e-6, np.nan]), 1e-7)
    ax = fig.axes[0]
    assert ax.get_yscale() == "log" and [t.get_text() for t in ax.get_xticklabels()] == [
        "layer1", "layer2", "readout",
    ]  # fmt: skip


def test_gradcheck_figure_greys_unresolved_layers():
    fig = gradcheck_figure(
        ["a", "b", "c"], np.array([1e-9, 1e-3, 1e-5]), 1e-7, unresolved=np.array([0, 0, 1])
    )
    bars = fig.axes[0].patches[:3]
    colours = [tuple(round(c, 2) for c in b.get_facecolor()[:3]) for b in bars]
    assert colours[2] == (0.6, 0.6, 0.6) and colours[0] != colours[1] != colours[2]


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

"""Per-layer statistics against values known by construction."""

import math

import numpy as np

from harness.nn import NetworkSpec, build_network
from harness.stats import first_nonfinite_layer, gradient_histograms, layer_stats, log_slope


def _run(spec, x):
    net = build_network(spec)
    y = net.forward(x)
    net.backward(np.ones_like(y))
    return net


def test_dead_and_saturated_fractions():
    x = np.random.default_rng(0).standard_normal((32, 8))
    net = _run(
        NetworkSpec(
            input_dim=8, width=10, depth=2, output_dim=1, activation="relu", seed=1, init="he_normal"
        ),
        x,
    )
    # make 3 of layer 1's 10 units dead on every input: a large negative bias
    net.params["layer1.linear.b"][:3] = -1e3
    y = net.forward(x)
    net.backward(np.ones_like(y))
    s = layer_stats(net)
    assert s["act_dead"][0] == 0.3 and math.isnan(s["act_saturated"][0])
    tanh = _run(
        NetworkSpec(
            input_dim=8, width=10, depth=2, output_dim=1, activation="tanh", init_scale=50.0, init="he_normal"
        ),
        x,
    )
    st = layer_stats(tanh)
    assert st["act_saturated"][0] > 0.9 and math.isnan(st["act_dead"][0])
    mild = _run(
        NetworkSpec(
            input_dim=8, width=10, depth=2, output_dim=1, activation="tanh", init_scale=0.01, init="he_normal"
        ),
        x,
    )
    assert layer_stats(mild)["act_saturated"][0] == 0.0


def test_norms_match_the_network_and_activation_moments():
    x = np.random.default_rng(1).standard_normal((16, 4))
    net = _run(
        NetworkSpec(input_dim=4, width=6, depth=3, output_dim=2, activation="relu", init="he_normal"), x
    )
    s = layer_stats(net)
    np.testing.assert_allclose(s["grad_h"], [np.linalg.norm(layer.grad_out) for layer in net.hidden])
    h2 = net.layers[1].h_out
    # A float64 sum of n terms is off by at most about n ulps of the sum of their magnitudes (recursive
    # summation; numpy's pairwise summation does better): the mean to n eps mean|h|. The variance,
    # taken in one pass as E[h^2] - mean^2, to n eps E[h^2] plus twice |mean| times the mean's error;
    # the std to that over 2 std. Here n = 96: about 1e-14, far below a wrong divisor (1 / (2n)).
    n, eps = h2.size, np.finfo(np.float64).eps
    mean_tol = n * eps * np.abs(h2).mean()
    var_tol = n * eps * np.mean(h2**2) + 2 * abs(h2.mean()) * mean_tol
    assert abs(s["act_mean"][1] - h2.mean()) <= mean_tol
    assert abs(s["act_std"][1] - h2.std()) <= var_tol / (2 * h2.std())


def test_log_slope_is_exact_on_exponentials():
    assert math.isclose(log_slope(np.exp(0.3 * np.arange(1, 11))), 0.3, rel_tol=1e-12)
    assert math.isnan(log_slope(np.array([1.0, np.inf, 2.0])))


def test_first_nonfinite_layer():
    x = np.random.default_rng(2).standard_normal((4, 3))
    net = _run(
        NetworkSpec(input_dim=3, width=4, depth=3, output_dim=1, activation="relu", init="he_normal"), x
    )
    assert first_nonfinite_layer(net) == 0
    net.params["layer2.linear.W"][0, 0] = np.inf
    with np.errstate(all="ignore"):
        y = net.forward(x)
        net.backward(np.ones_like(y))
    assert first_nonfinite_layer(net) == 2


def test_gradient_histograms_count_every_entry():
    x = np.random.default_rng(3).standard_normal((8, 3))
    net = _run(
        NetworkSpec(input_dim=3, width=5, depth=3, output_dim=1, activation="relu", init="he_normal"), x
    )
    net.layers[1].grad_out[0, :2] = [np.nan, np.inf]
    net.layers[1].grad_out[1, 0] = 0.0
    net.layers[1].grad_out[2, 0] = 1e300  # beyond the last bin: counted there
    h = gradient_histograms(net)
    assert (h["nan"][1], h["inf"][1], h["zero"][1]) == (1, 1, 1)
    assert h["hist"][1, -1] >= 1
    totals = h["hist"].sum(axis=1) + h["nan"] + h["inf"] + h["zero"]
    assert list(totals) == [8 * 5] * 3  # nothing dropped


def test_gradient_histograms_match_numpy_histogram_per_layer():
    """The one-pass binning over all layers equals np.histogram layer by layer, edges included."""
    rng = np.random.default_rng(5)
    x = rng.standard_normal((16, 4))
    net = _run(
        NetworkSpec(input_dim=4, width=[6, 9, 7], depth=3, output_dim=2, activation="tanh", init="he_normal"),
        x,
    )
    edges = np.array([-3.0, -2.0, -1.5, -1.0, 0.0, 0.5])
    net.layers[0].grad_out[0, :3] = [1e-9, 1e9, 10.0**-1.5]  # below, above, exactly on an edge
    net.layers[2].grad_out[1, 0] = 10.0**0.5  # exactly the last edge: the closed last bin
    h = gradient_histograms(net, edges)
    for i, layer in enumerate(net.hidden):
        logs = np.clip(np.log10(np.abs(layer.grad_out[layer.grad_out != 0])), edges[0], edges[-1])
        np.testing.assert_array_equal(h["hist"][i], np.histogram(logs, bins=edges)[0])


def test_pre_activation_q_and_c_by_hand():
    """preact_q is the mean of z_l^2 over batch and units; preact_c the mean over ordered pairs a != b
    of the first 64 samples of z_a . z_b / (|z_a| |z_b|): against explicit loops. A batch of one has
    no pair (NaN)."""
    x = np.random.default_rng(3).standard_normal((70, 8))
    spec = NetworkSpec(input_dim=8, width=12, depth=3, output_dim=1, activation="tanh", init="lecun_normal",
                       bias_std=0.3, seed=2)  # fmt: skip
    net = _run(spec, x)
    s = layer_stats(net)
    for i, block in enumerate(net.hidden):
        z = next(layer for layer in block.sublayers() if type(layer).__name__ == "Activation").x
        assert math.isclose(s["preact_q"][i], np.mean(z**2), rel_tol=1e-13)
        pairs = [z[a] @ z[b] / np.linalg.norm(z[a]) / np.linalg.norm(z[b])
                 for a in range(64) for b in range(64) if a != b]  # fmt: skip
        assert math.isclose(s["preact_c"][i], np.mean(pairs), rel_tol=1e-12)
    one = layer_stats(_run(spec, x[:1]))
    assert np.all(np.isnan(one["preact_c"])) and np.all(np.isfinite(one["preact_q"]))

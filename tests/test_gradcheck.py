"""The checker itself: planted errors fail every mode and the report names the layer; kinks raise no
false alarm; the reported cost is what was spent."""

import numpy as np
import pytest

from harness.gradcheck import check_function, check_layer, check_loss, check_network, plant_error
from harness.nn import Activation, Linear, LinearProbe, MSELoss, NetworkSpec, Sequential, build_network
from tests.conftest import MODES

DEPTH = 5


def _net():
    spec = NetworkSpec(
        input_dim=6,
        width=6,
        depth=DEPTH,
        output_dim=3,
        activation="tanh",
        init="xavier_normal",
        bias_std=0.2,
        seed=3,
    )
    return build_network(spec)


def _data(net, batch=8):
    rng = np.random.default_rng(4)
    return rng.standard_normal((batch, 6)), LinearProbe.random((batch, 3), rng)


@pytest.mark.parametrize("kind", ["scale", "transpose", "bias_entry"])
@pytest.mark.parametrize("mode", MODES)
def test_planted_parameter_error_fails_and_names_the_layer(kind, mode):
    net = _net()
    x, probe = _data(net)
    assert check_network(net, x, probe, mode=mode).passed  # clean first
    plant_error(net.layers[2].layers[0], kind)  # layer3's Linear
    report = check_network(net, x, probe, mode=mode)
    assert not report.passed
    assert report.failed_layers == ["layer3"], report.summary()
    bad = {r.tensor for r in report.rows if not r.passed and r.layer == "layer3"}
    assert ("linear.b" if kind == "bias_entry" else "linear.W") in bad
    assert "FAILED in layer3" in report.summary()


@pytest.mark.parametrize("mode", MODES)
def test_wrong_input_gradient_fails_every_layer_below(mode):
    net = _net()
    x, probe = _data(net)
    plant_error(net.layers[2].layers[0], "dx_untransposed")
    report = check_network(net, x, probe, mode=mode)
    # layer3's own W and b are right; what it passes down is wrong: layers 1-2 and the input fail.
    assert report.failed_layers == ["layer1", "layer2", "input"], report.summary()


@pytest.mark.parametrize("mode", MODES)
def test_planted_error_in_single_layer_check(mode):
    lin = Linear(np.random.default_rng(0).standard_normal((4, 4)), np.zeros(4))
    plant_error(lin, "scale")
    report = check_layer(lin, np.random.default_rng(1).standard_normal((5, 4)), mode=mode)
    failing = {r.tensor for r in report.rows if not r.passed}
    assert "W" in failing and "b" not in failing and "x" not in failing


@pytest.mark.parametrize("mode", MODES)
def test_wrong_loss_gradient_fails(mode):
    class ForgotToAverage(MSELoss):
        def backward(self):
            return self.diff  # missing / N

    rng = np.random.default_rng(2)
    y, t = rng.standard_normal((4, 3)), rng.standard_normal((4, 3))
    assert check_loss(MSELoss(), y, t, mode=mode).passed
    assert not check_loss(ForgotToAverage(), y, t, mode=mode).passed


def test_kinks_are_flagged_not_false_alarms():
    # Two inputs sit 1e-7 from relu's kink: a +-6e-6 difference there measures 1/2, not 0 or 1. Steps
    # 6e-6 and 6e-7 straddle the kink (2 flags each); 6e-8 does not, so all 6 entries are compared.
    x = np.array([[1e-7, -1e-7, 0.5, -0.5, 1.0, -2.0]])
    dout = np.ones_like(x)
    report = check_layer(Activation("relu"), x, dout)
    row = next(r for r in report.rows if r.tensor == "x")
    assert report.passed and row.kinks == 4 and row.checked == 6
    # An input exactly at the kink straddles it at every step: it is left out, not a false alarm.
    at_kink = check_layer(Activation("relu"), np.array([[0.0, 0.5, -0.5]]), np.ones((1, 3)))
    row = next(r for r in at_kink.rows if r.tensor == "x")
    assert at_kink.passed and row.checked == 2 and row.kinks > 0
    # The same function without kink tracking raises the false alarm the flag prevents.
    relu = Activation("relu")
    xs = x.copy()
    relu.forward(xs)
    grad = relu.backward(dout)
    plain = check_function(lambda: float(np.sum(np.maximum(xs, 0))), {"x": xs}, {"x": grad})
    assert not plain.passed


def test_directional_redraws_around_kinks():
    rng = np.random.default_rng(5)
    spec = NetworkSpec(
        input_dim=6, width=32, depth=4, output_dim=2, activation="relu", seed=1, init="he_normal"
    )
    net = build_network(spec)
    x = rng.standard_normal((16, 6))
    net.forward(x)
    # put one pre-activation 3e-7 from the kink, where a step of 6e-6 along a random direction
    # crosses it often but not always: crossing directions are retried at smaller steps
    z = x @ net.params["layer1.linear.W"] + net.params["layer1.linear.b"]
    net.params["layer1.linear.b"][0] -= z[0, 0] - 3e-7
    report = check_network(net, x, LinearProbe.random((16, 2), rng), mode="directional")
    assert report.passed, report.summary()
    assert sum(r.kinks for r in report.rows) > 0  # some directions crossed it and were retried


def test_entries_exactly_on_a_kink_are_unresolved_not_a_false_alarm():
    x = np.array([[0.0, 0.0]])  # every step straddles relu's kink: no difference can be taken
    report = check_layer(Activation("relu"), x, np.ones_like(x))
    row = next(r for r in report.rows if r.tensor == "x")
    assert report.passed and row.noise and row.checked == 0 and row.kinks == 2 * 31


def test_a_dead_sample_does_not_fail_the_biases_after_it():
    """A sample whose hidden row is all zero puts every later unit exactly on relu's kink (z = b = 0
    with zero biases): those bias rows are unresolved, not failed; a planted error elsewhere still fails."""
    net = build_network(
        NetworkSpec(input_dim=4, width=8, depth=6, output_dim=2, activation="relu", seed=0, init="he_normal")
    )
    x = np.random.default_rng(0).standard_normal((8, 4))
    probe = LinearProbe.random((8, 2), np.random.default_rng(0))
    for mode in MODES:
        report = check_network(net, x, probe, mode=mode)
        assert report.passed, report.summary()
    plant_error(net.layers[0].layers[0], "scale")
    assert check_network(net, x, probe, mode="directional").failed_layers == ["layer1"]


def test_one_tiny_step_does_not_excuse_a_wrong_gradient():
    """One pre-activation 1e-13 from the kink forces steps down to ~1e-14 for the entries that touch
    it; their large rounding floor must not cover the 1% error planted in every other entry. (Every
    random direction touches that unit, so the directional check can only call its rows unresolved.)"""
    rng = np.random.default_rng(0)
    x, W = rng.standard_normal((4, 3)), rng.standard_normal((3, 2))
    b = np.zeros(2)
    b[0] = -(x @ W)[0, 0] + 1e-13
    lin = Linear(W, b)
    plant_error(lin, "scale")
    layer = Sequential([lin, Activation("relu")])
    report = check_layer(layer, x, mode="entries")
    assert not report.passed, report.summary()
    assert "0.W" in {r.tensor for r in report.rows if not r.passed}
    report = check_layer(layer, x, mode="directional")
    assert all(r.noise or not r.passed for r in report.rows), report.summary()


def test_reported_cost_is_forward_passes_spent():
    net = _net()
    x, probe = _data(net)
    n_entries = sum(v.size for v in net.params.values()) + x.size
    report = check_network(net, x, probe, mode="entries")
    assert report.forward_passes == 1 + 2 * n_entries and report.backward_passes == 1
    report = check_network(net, x, probe, mode="directional", directions=2)
    groups = 1 + sum(1 + len(layer.params) for layer in net.layers) + 2  # all, layers, input
    assert report.forward_passes == 1 + 2 * 2 * groups


def test_sampled_entries_are_seeded():
    net = _net()
    x, probe = _data(net)
    a = check_network(net, x, probe, entries=3, seed=7)
    b = check_network(net, x, probe, entries=3, seed=7)
    assert [r.rel_error for r in a.rows] == [r.rel_error for r in b.rows]
    assert all(r.checked <= 3 for r in a.rows if r.tensor != "*")
    assert a.forward_passes == 1 + 2 * sum(r.checked for r in a.rows if r.tensor != "*")


def test_unknown_mode():
    net = _net()
    x, probe = _data(net)
    with pytest.raises(ValueError, match="mode: unknown value 'fast'; allowed: entries, directional"):
        check_network(net, x, probe, mode="fast")


def test_vanishing_relu_network_is_checked_not_false_alarmed():
    """ReLU at half the He scale: activations shrink ~2x per layer, so by layer 30 every
    pre-activation is ~1e-9 of the first's and a fixed step of 6e-6 on a bias flips kinks everywhere.
    Steps shrink until they clear the kinks: the check passes, each tensor is compared, and a wrong
    gradient deep in the network still fails and is named."""
    spec = NetworkSpec(input_dim=16, width=16, depth=30, output_dim=4, activation="relu", init="he_normal",
                       init_scale=0.5, seed=1)  # fmt: skip
    net = build_network(spec)
    rng = np.random.default_rng(0)
    x, probe = rng.standard_normal((8, 16)), LinearProbe(rng.standard_normal((8, 4)))
    report = check_network(net, x, probe, mode="directional", directions=2)
    assert report.passed, report.summary()
    assert sum(r.kinks for r in report.rows) > 0  # the fixed step did straddle kinks
    assert all(r.checked > 0 for r in report.rows if r.tensor != "*")  # every tensor was compared
    plant_error(net.layers[24].layers[0], "bias_entry")  # layer25's Linear
    report = check_network(net, x, probe, mode="directional", directions=2)
    assert report.failed_layers == ["layer25"], report.summary()

"""Whole networks: what the spec builds, bad specs, gradient checks at every depth, closed forms."""

import dataclasses
import math
import pickle

import numpy as np
import pytest

from harness.gradcheck import check_network
from harness.nn import (
    ACTIVATIONS,
    Activation,
    Linear,
    LinearProbe,
    MSELoss,
    NetworkSpec,
    Sequential,
    SoftmaxCrossEntropy,
    build_network,
)
from tests.conftest import assert_strict_pass

# Activation and init pairs that keep gradients O(1) through 20 layers, so that every tensor's
# gradient is far above the central difference's rounding floor and the 1e-7 check is a real test.
# (A central difference has two error terms: rounding, ~eps_machine |L| / eps, and truncation,
# ~eps^2 |L'''| / 6. A vanishing network makes the first dominate; BatchNorm over a tiny batch, whose
# variance can be near zero, makes the second dominate. Batches of 8 keep the second below 1e-7, and
# width 10 keeps the finite-width spread of gradient norms (log-normal, log-variance ~ depth / width)
# from vanishing a narrow network by chance.)
FLOWING = [
    ("tanh", "xavier_normal", 1.0),
    ("relu", "he_normal", 1.0),
    ("gelu", "he_uniform", 1.0),
    ("selu", "lecun_normal", 1.0),
    ("silu", "he_normal", 1.2),
    ("leaky_relu", "orthogonal", 1.4),
    ("elu", "he_normal", 1.0),
    ("identity", "orthogonal", 1.0),
]
# sigmoid and softplus are left out of the deep sweep on purpose: no common init keeps their
# gradients from vanishing over 20 layers (chi_1 < 1), and a vanished gradient cannot be resolved by
# differences at all. They are checked in networks of depth 5 below, and as layers in test_layers.


def test_depth_counts_hidden_layers_and_matches_seed_simplenet():
    # The seed's SimpleNet([3, 5, 4, 2]): Linear(3,5) ReLU Linear(5,4) ReLU Linear(4,2).
    spec = NetworkSpec(input_dim=3, width=[5, 4], depth=2, output_dim=2, activation="relu", init="he_normal")
    net = build_network(spec)
    assert len(net.layers) == spec.depth + 1 and len(net.hidden) == 2
    shapes = [layer.params[k].shape for layer in net.layers for k in layer.params if k.endswith("W")]
    assert shapes == [(3, 5), (5, 4), (4, 2)]
    x = np.random.default_rng(0).standard_normal((7, 3))
    W = [net.params[k] for k in ("layer1.linear.W", "layer2.linear.W", "readout.W")]
    b = [net.params[k] for k in ("layer1.linear.b", "layer2.linear.b", "readout.b")]
    h = np.maximum(x @ W[0] + b[0], 0)
    h = np.maximum(h @ W[1] + b[1], 0)
    np.testing.assert_allclose(net.forward(x), h @ W[2] + b[2], rtol=1e-14)


def test_same_spec_same_numbers():
    spec = NetworkSpec(input_dim=16, width=8, depth=4, output_dim=1, activation="relu", init="he_normal",
                       bias_std=0.1, seed=11)  # fmt: skip
    a, b = build_network(spec), build_network(spec)
    assert all(np.array_equal(a.params[k], b.params[k]) for k in a.params)
    c = build_network(dataclasses.replace(spec, seed=12))
    assert not np.array_equal(a.params["layer1.linear.W"], c.params["layer1.linear.W"])


def _check_both_modes(spec, batch=8):
    net = build_network(spec)
    rng = np.random.default_rng(100 + spec.depth)
    x = rng.standard_normal((batch, spec.input_dim))
    probe = LinearProbe.random((batch, spec.output_dim), rng)
    assert_strict_pass(check_network(net, x, probe, mode="entries"))
    assert_strict_pass(check_network(net, x, probe, mode="directional", directions=3))


@pytest.mark.parametrize("depth", range(1, 21))
def test_network_gradcheck_every_depth(depth):
    act, init, scale = FLOWING[depth % len(FLOWING)]
    _check_both_modes(
        NetworkSpec(
            input_dim=4,
            width=10,
            depth=depth,
            output_dim=2,
            activation=act,
            init=init,
            init_scale=scale,
            bias_std=0.2,
            seed=depth,
        )
    )


@pytest.mark.parametrize("depth", [2, 7, 20])
@pytest.mark.parametrize("skip", [False, True])
@pytest.mark.parametrize("norm", ["none", "layer", "batch"])
def test_network_gradcheck_skip_and_norm(depth, skip, norm):
    _check_both_modes(
        NetworkSpec(
            input_dim=4,
            width=6,
            depth=depth,
            output_dim=2,
            activation="tanh",
            init="xavier_normal",
            bias_std=0.2,
            skip=skip,
            skip_scale="1/sqrt(depth)",
            block_layers=1 + depth % 2,
            norm=norm,
            seed=depth,
        )
    )


@pytest.mark.parametrize(("act", "init"), [("sigmoid", "xavier_normal"), ("softplus", "he_normal")])
def test_network_gradcheck_vanishing_activations_at_moderate_depth(act, init):
    _check_both_modes(
        NetworkSpec(
            input_dim=4, width=6, depth=5, output_dim=2, activation=act, init=init, bias_std=0.2, seed=5
        )
    )


@pytest.mark.parametrize("loss", ["mse", "cross_entropy"])
def test_network_gradcheck_with_training_losses(loss):
    spec = NetworkSpec(
        input_dim=4,
        width=[6, 5],
        depth=2,
        output_dim=3,
        activation="tanh",
        init="xavier_normal",
        skip=True,
        block_layers=2,
        norm="layer",
    )
    rng = np.random.default_rng(0)
    x = rng.standard_normal((5, 4))
    if loss == "mse":
        fn, target = MSELoss(), rng.standard_normal((5, 3))
    else:
        fn, target = SoftmaxCrossEntropy(), np.array([0, 1, 2, 1, 0])
    assert_strict_pass(check_network(build_network(spec), x, fn, target))


def test_identity_network_input_gradient_is_product_of_weights():
    spec = NetworkSpec(
        input_dim=6,
        width=[5, 7, 4],
        depth=3,
        output_dim=2,
        activation="identity",
        bias_std=0.3,
        init="he_normal",
    )
    net = build_network(spec)
    rng = np.random.default_rng(1)
    net.forward(rng.standard_normal((8, 6)))
    dy = rng.standard_normal((8, 2))
    dx = net.backward(dy)
    product = np.linalg.multi_dot(
        [net.params[k] for k in ("layer1.linear.W", "layer2.linear.W", "layer3.linear.W", "readout.W")]
    )
    np.testing.assert_allclose(dx, dy @ product.T, rtol=1e-12)


def test_seed_scalar_example_against_hand_derived_gradients():
    # y = sigmoid(w2 * relu(w1 * x + b1) + b2), the lecture's computational graph, with L = y.
    w1, b1, w2, b2, x = 0.8, 0.1, -1.3, 0.4, 1.5
    lin1 = Linear(np.array([[w1]]), np.array([b1]))
    lin2 = Linear(np.array([[w2]]), np.array([b2]))
    net = Sequential([lin1, Activation("relu"), lin2, Activation("sigmoid")])
    y = net.forward(np.array([[x]]))[0, 0]
    dx = net.backward(np.ones((1, 1)))[0, 0]
    z1 = w1 * x + b1
    a1 = max(z1, 0.0)
    s = 1 / (1 + math.exp(-(w2 * a1 + b2)))
    ds = s * (1 - s)  # dL/dz2
    relu_gate = 1.0 if z1 > 0 else 0.0
    assert y == pytest.approx(s, rel=1e-15)
    assert lin2.grads["W"][0, 0] == pytest.approx(ds * a1, rel=1e-14)
    assert lin2.grads["b"][0] == pytest.approx(ds, rel=1e-14)
    assert lin1.grads["W"][0, 0] == pytest.approx(ds * w2 * relu_gate * x, rel=1e-14)
    assert lin1.grads["b"][0] == pytest.approx(ds * w2 * relu_gate, rel=1e-14)
    assert dx == pytest.approx(ds * w2 * relu_gate * w1, rel=1e-14)


def test_traces_and_gradient_norms():
    spec = NetworkSpec(
        input_dim=5, width=6, depth=3, output_dim=2, skip=True, activation="relu", init="he_normal"
    )
    net = build_network(spec)
    x = np.random.default_rng(2).standard_normal((4, 5))
    net.forward(x)
    net.backward(np.ones((4, 2)))
    assert net.layers[0].h_in is not None and net.layers[1].h_in is net.layers[0].h_out
    assert net.layers[1].grad_out is net.layers[2].grad_in
    norms = net.gradient_norms()
    for key in ("W", "b", "h"):
        assert norms[key].shape == (3,)
    np.testing.assert_allclose(norms["h"][2], np.linalg.norm(net.layers[2].grad_out))
    w1 = net.layers[0].grads["branch.linear.W"]  # the shortcut projection is not counted
    assert norms["W"][0] == pytest.approx(np.linalg.norm(w1))


def test_float32_network_is_checked_against_float64_differences():
    spec = NetworkSpec(
        input_dim=4, width=8, depth=3, output_dim=2, activation="tanh", init="xavier_normal", dtype="float32"
    )
    net = build_network(spec)
    assert net.params["layer1.linear.W"].dtype == np.float32
    twin = net.astype("float64")
    assert np.array_equal(twin.params["readout.W"], net.params["readout.W"].astype(np.float64))
    rng = np.random.default_rng(3)
    report = check_network(net, rng.standard_normal((5, 4)), LinearProbe.random((5, 2), rng))
    assert report.passed and report.threshold == 1e-4 and "float64 copy" in report.summary()


def test_nan_propagates_without_raising():
    net = build_network(
        NetworkSpec(input_dim=2, width=4, depth=2, output_dim=1, activation="relu", init="he_normal")
    )
    x = np.array([[np.nan, 1.0], [0.0, 1.0]])
    with np.errstate(invalid="ignore"):
        y = net.forward(x)
        net.backward(np.ones_like(y))
    assert np.isnan(y[0, 0]) and np.isfinite(y[1, 0])


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"depth": 0}, "depth: must be an integer >= 1, got 0"),
        ({"width": 0}, "width: must be an integer >= 1, got 0"),
        ({"width": [4, 4]}, "width: a list must have depth=3 entries, got 2"),
        ({"activation": "swish"}, "activation: unknown value 'swish'; allowed: identity, relu"),
        ({"init": "xavierr"}, "init: unknown value 'xavierr'; allowed: he_normal"),
        ({"norm": "group"}, "norm: unknown value 'group'; allowed: none, layer, batch"),
        ({"init_scale": 0.0}, "init_scale: must be a finite number > 0, got 0.0"),
        ({"init_scale": -1.0}, "init_scale: must be a finite number > 0"),
        ({"init_scale": float("nan")}, "init_scale: must be a finite number > 0, got nan"),
        ({"init_scale": float("inf")}, "init_scale: must be a finite number > 0, got inf"),
        ({"dtype": "float16"}, "dtype: unknown value 'float16'; allowed: float32, float64"),
        ({"skip_scale": "half"}, "skip_scale: allowed: a positive number or 1/sqrt(depth)"),
        ({"block_layers": 3}, "block_layers: allowed: 1, 2; got 3"),
        ({"bias_std": -0.1}, "bias_std: must be a finite number >= 0"),
    ],
)
def test_bad_specs_name_the_field_and_allowed_values(changes, message):
    kwargs = {
        "input_dim": 4,
        "width": 4,
        "depth": 3,
        "output_dim": 1,
        "activation": "relu",
        "init": "he_normal",
    } | changes
    with pytest.raises(ValueError) as info:
        NetworkSpec(**kwargs)
    assert str(info.value).startswith(message)


def test_mismatched_input_shape():
    net = build_network(
        NetworkSpec(input_dim=4, width=4, depth=2, output_dim=1, activation="relu", init="he_normal")
    )
    with pytest.raises(ValueError, match=r"x: expected shape \(batch, 4\) for input_dim=4, got \(3, 5\)"):
        net.forward(np.zeros((3, 5)))


@pytest.mark.parametrize("mode", ["entries", "directional"])
def test_partial_passes_give_the_full_pass_check(mode, monkeypatch):
    """check_network runs a pass from the perturbed layer on; the report (errors, kink counts) is the
    one that full passes give, bit for bit, on a ReLU residual net where kinks are straddled."""
    spec = NetworkSpec(input_dim=4, width=6, depth=6, output_dim=2, activation="relu", skip=True,
                       norm="layer", bias_std=0.2, seed=4, init="he_normal")  # fmt: skip
    x = np.random.default_rng(1).standard_normal((8, 4))
    net = build_network(spec)
    h = x
    for i, layer in enumerate(net.layers):
        np.testing.assert_array_equal(net.forward_from(i, h), net.forward(x))
        h = layer.forward(h)
    kwargs = dict(mode=mode, directions=6, eps=0.3, seed=2)  # eps large: kinks straddled
    probe = LinearProbe(np.random.default_rng(3).standard_normal((8, 2)))
    partial = check_network(net, x, probe, **kwargs)
    whole = Sequential.forward_from  # every pass from the first layer, on the unperturbed input x
    monkeypatch.setattr(Sequential, "forward_from", lambda self, i, h: whole(self, 0, h if i == 0 else x))
    full = check_network(net, x, probe, **kwargs)
    assert sum(r.kinks for r in partial.rows) > 0
    assert [(r.layer, r.tensor, r.checked, r.kinks, r.rel_error) for r in partial.rows] == [
        (r.layer, r.tensor, r.checked, r.kinks, r.rel_error) for r in full.rows
    ]


def test_a_deep_copy_keeps_its_own_flat_buffers():
    """copy.deepcopy of a network: same numbers, its own flat buffers that its layers still view, so a
    backward pass on the copy shows in its flat_grads and leaves the original alone."""
    import copy

    net = build_network(
        NetworkSpec(
            input_dim=3,
            width=5,
            depth=4,
            output_dim=2,
            skip=True,
            norm="layer",
            activation="relu",
            init="he_normal",
        )
    )
    twin = copy.deepcopy(net)
    assert all(p.base is twin.flat_params and g.base is twin.flat_grads for _, p, g in twin.parameters())
    np.testing.assert_array_equal(twin.flat_params, net.flat_params)
    x = np.random.default_rng(0).standard_normal((7, 3))
    np.testing.assert_array_equal(twin.forward(x), net.forward(x))
    twin.backward(np.ones((7, 2)))
    assert np.vdot(twin.flat_grads, twin.flat_grads) > 0 and not np.any(net.flat_grads)
    twin.flat_params += 1.0
    assert not np.array_equal(twin.forward(x), net.forward(x))


@pytest.mark.parametrize("name", list(ACTIVATIONS))
def test_every_activation_and_network_survives_a_pickle_round_trip(name):
    """joblib, Ray and a notebook's copy/pickle need it: activations are named functions, not lambdas
    (before, pickling a relu network raised PicklingError)."""
    fn = pickle.loads(pickle.dumps(ACTIVATIONS[name]))
    x = np.random.default_rng(0).standard_normal((3, 4))
    assert np.array_equal(fn.f(x), ACTIVATIONS[name].f(x))
    assert np.array_equal(fn.df(x, fn.f(x)), ACTIVATIONS[name].df(x, ACTIVATIONS[name].f(x)))
    net = build_network(
        NetworkSpec(input_dim=4, width=5, depth=3, output_dim=2, activation=name, seed=1, init="he_normal")
    )
    twin = pickle.loads(pickle.dumps(net))
    assert np.array_equal(twin.forward(x), net.forward(x))
    g = np.ones((3, 2))
    assert np.array_equal(twin.backward(g), net.backward(g))

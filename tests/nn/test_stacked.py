"""A stack of R networks (a leading axis on every array): each layer's backward passes the float64
gradient check on stacked inputs, a planted error fails it, and network r of a stack computes bit for
bit what the same network alone computes."""

from dataclasses import replace

import numpy as np
import pytest

from harness.gradcheck import PLANTED, check_function, check_layer, plant_error
from harness.nn import (
    Activation,
    BatchNorm,
    LayerNorm,
    Linear,
    LinearProbe,
    MSELoss,
    NetworkSpec,
    ResidualBlock,
    Sequential,
    SoftmaxCrossEntropy,
    build_network,
)
from tests.conftest import MODES, assert_strict_pass

R, BATCH = 3, 5


def _stacked(shape, seed=0):
    return np.random.default_rng(seed).standard_normal(shape)


def _linear(fan_in, fan_out, seed, bias=True):
    return Linear(
        0.5 * _stacked((R, fan_in, fan_out), seed),
        0.3 * _stacked((R, 1, fan_out), seed + 1) if bias else None,
    )


LAYERS = {
    "linear": lambda: _linear(4, 3, 1),
    "linear no bias": lambda: _linear(4, 4, 2, bias=False),
    "tanh": lambda: Activation("tanh"),
    "layernorm": lambda: Sequential([_linear(4, 6, 3), LayerNorm(6, stack=R)]),
    # no bias before BatchNorm: its gradient is exactly zero (as in a network)
    "batchnorm": lambda: Sequential([_linear(4, 6, 4, bias=False), BatchNorm(6, stack=R)]),
    "residual": lambda: ResidualBlock(Sequential([_linear(4, 4, 5), Activation("sigmoid")]), 0.7),
    "residual projection": lambda: ResidualBlock(Sequential([_linear(4, 6, 6), Activation("gelu")]), 1.0,
                                                 _linear(4, 6, 7, bias=False)),
}  # fmt: skip


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("name", list(LAYERS))
def test_stacked_layers_pass_the_gradient_check(name, mode):
    layer = LAYERS[name]()
    x = _stacked((R, BATCH, 4), 9)
    if isinstance(layer, Sequential) and isinstance(layer.layers[-1], LayerNorm | BatchNorm):
        layer.layers[-1].params["gamma"][...] = 1 + 0.2 * _stacked((R, 1, 6), 10)  # not all ones
        layer.layers[-1].params["beta"][...] = 0.1 * _stacked((R, 1, 6), 11)
    assert_strict_pass(check_layer(layer, x, mode=mode))


def _spec(**kw):
    base = dict(
        input_dim=5, width=6, depth=3, output_dim=4, activation="tanh", init="xavier_normal", bias_std=0.2
    )
    return NetworkSpec(**(base | kw))


SPECS = {
    "plain": {},
    "relu skip": {"activation": "relu", "init": "he_normal", "skip": True, "skip_scale": "1/sqrt(depth)"},
    "layernorm 2-layer skip": {"norm": "layer", "skip": True, "block_layers": 2},
    "batchnorm": {"norm": "batch", "activation": "elu"},
    "projection": {"skip": True, "input_dim": 3},
}


def _loss_and_target(name, out, rng):
    if name == "mse":
        return MSELoss(), rng.standard_normal((R, BATCH, out))
    if name == "cross_entropy":
        return SoftmaxCrossEntropy(), rng.integers(0, out, size=(R, BATCH))
    return LinearProbe(rng.standard_normal((R, BATCH, out))), None


@pytest.mark.parametrize("loss_name", ["mse", "cross_entropy", "probe"])
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_stacked_network_passes_the_gradient_check(spec_name, loss_name):
    """The stack's loss is the sum of its draws' losses; every parameter and the input are checked."""
    net = build_network(_spec(**SPECS[spec_name]), seeds=[4, 8, 15])
    rng = np.random.default_rng(1)
    x = rng.standard_normal((R, BATCH, net.spec.input_dim))
    loss, target = _loss_and_target(loss_name, net.spec.output_dim, rng)
    loss.forward(net.forward(x), target)
    dx = net.backward(loss.backward())
    grads = {k: g.copy() for k, g in net.grads.items()} | {"x": dx.copy()}
    report = check_function(lambda: float(np.sum(loss.forward(net.forward(x), target))),
                            net.params | {"x": x}, grads, mode="entries")  # fmt: skip
    assert_strict_pass(report)


@pytest.mark.parametrize("kind", [k for k in PLANTED if k != "transpose"] + ["transpose"])
def test_a_planted_error_in_a_stacked_layer_fails(kind):
    spec = _spec(width=5, input_dim=5, output_dim=5)  # square weights: every kind applies
    net = build_network(spec, seeds=[1, 2, 3])
    plant_error(net.layers[1].layers[0], kind)
    rng = np.random.default_rng(2)
    x, loss = rng.standard_normal((R, BATCH, 5)), LinearProbe(rng.standard_normal((R, BATCH, 5)))
    loss.forward(net.forward(x))
    dx = net.backward(loss.backward())
    grads = {k: g.copy() for k, g in net.grads.items()} | {"x": dx.copy()}
    report = check_function(lambda: float(np.sum(loss.forward(net.forward(x)))), net.params | {"x": x}, grads,
                            mode="entries")  # fmt: skip
    assert not report.passed


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("spec_name", list(SPECS))
def test_network_r_of_a_stack_is_the_lone_network_bit_for_bit(spec_name, dtype):
    spec = _spec(**SPECS[spec_name], dtype=dtype)
    seeds = [11, 0, 7]
    stack = build_network(spec, seeds=seeds)
    rng = np.random.default_rng(3)
    x = rng.standard_normal((R, BATCH, spec.input_dim))
    loss, target = _loss_and_target("mse", spec.output_dim, rng)
    losses = loss.forward(stack.forward(x), target)
    dx = stack.backward(loss.backward())
    norms = stack.gradient_norms()
    for r, seed in enumerate(seeds):
        lone = build_network(replace(spec, seed=seed))
        alone = MSELoss()
        assert alone.forward(lone.forward(x[r]), target[r]) == losses[r]
        assert np.array_equal(lone.backward(alone.backward()), dx[r])
        for key, value in lone.params.items():
            assert np.array_equal(stack.params[key][r].reshape(value.shape), value), key
            assert np.array_equal(stack.grads[key][r].reshape(value.shape), lone.grads[key]), key
        for key, value in lone.gradient_norms().items():
            assert np.array_equal(norms[key][r], value), key
        drawn = stack.draw(r)
        assert drawn.stack is None and all(np.array_equal(drawn.params[k], v) for k, v in lone.params.items())


def test_a_stack_checks_its_input_shape_and_copies():
    stack = build_network(_spec(), seeds=[1, 2, 3])
    with pytest.raises(ValueError, match=r"x: expected shape \(3, batch, 5\)"):
        stack.forward(np.zeros((BATCH, 5)))
    with pytest.raises(ValueError, match="seeds: a stack needs at least one seed"):
        build_network(_spec(), seeds=[])
    with pytest.raises(ValueError, match="draw: this network is not a stack"):
        build_network(_spec()).draw(0)
    twin = stack.astype("float32")
    assert twin.stack == 3 and twin.params["readout.W"].dtype == np.float32
    assert np.array_equal(twin.params["readout.W"], stack.params["readout.W"].astype(np.float32))

"""Every primitive layer, activation and container passes the float64 gradient check."""

import numpy as np
import pytest

from harness.gradcheck import check_layer
from harness.nn import (
    ACTIVATIONS,
    Activation,
    BatchNorm,
    LayerNorm,
    Linear,
    ResidualBlock,
    Sequential,
    init_bias,
    init_weight,
)
from tests.conftest import MODES, assert_strict_pass

RNG_SEED = 1234


def _x(shape=(5, 4), seed=RNG_SEED):
    return np.random.default_rng(seed).standard_normal(shape)


def _linear(fan_in, fan_out, rng, bias=True):
    W = init_weight("xavier_normal", fan_in, fan_out, rng)
    return Linear(W, init_bias(fan_out, rng, 0.3) if bias else None)


@pytest.mark.parametrize("mode", MODES)
def test_linear(mode):
    rng = np.random.default_rng(0)
    report = check_layer(_linear(4, 3, rng), _x(), mode=mode)
    assert_strict_pass(report)
    assert {r.tensor for r in report.rows} >= {"W", "b", "x"}
    assert max(r.rel_error for r in report.rows) < 1e-7


@pytest.mark.parametrize("name", list(ACTIVATIONS))
@pytest.mark.parametrize("mode", MODES)
def test_activation(name, mode):
    # 2.5 * N(0, 1) reaches the saturated tails of sigmoid/tanh and the linear parts of relu-likes.
    report = check_layer(Activation(name), 2.5 * _x(), mode=mode)
    assert_strict_pass(report)


def test_activation_values_at_known_points():
    x = np.array([[-2.0, 0.0, 3.0]])
    expect = {
        "identity": [-2.0, 0.0, 3.0],
        "relu": [0.0, 0.0, 3.0],
        "leaky_relu": [-0.02, 0.0, 3.0],
        "elu": [np.expm1(-2.0), 0.0, 3.0],
        "sigmoid": [1 / (1 + np.exp(2.0)), 0.5, 1 / (1 + np.exp(-3.0))],
        "tanh": np.tanh([-2.0, 0.0, 3.0]),
        "softplus": np.log1p(np.exp([-2.0, 0.0, 3.0])),
        "silu": [-2.0 / (1 + np.exp(2.0)), 0.0, 3.0 / (1 + np.exp(-3.0))],
    }
    for name, values in expect.items():
        np.testing.assert_allclose(ACTIVATIONS[name].f(x)[0], values, rtol=1e-12, atol=1e-15)
    # selu's constants make a standard normal input keep mean 0 and variance 1 (Klambauer et al.)
    z = np.random.default_rng(0).standard_normal(2_000_000)
    y = ACTIVATIONS["selu"].f(z)
    se = 5 / np.sqrt(z.size)  # 5 standard errors of a mean of unit-variance samples
    assert abs(y.mean()) < 2 * se and abs(y.var() - 1) < 3 * se * np.sqrt(2)


def test_sigmoid_does_not_overflow():
    y = ACTIVATIONS["sigmoid"].f(np.array([-1000.0, 1000.0]))
    assert np.all(np.isfinite(y)) and y[0] == 0.0 and y[1] == 1.0


@pytest.mark.parametrize("norm_cls", [LayerNorm, BatchNorm])
@pytest.mark.parametrize("mode", MODES)
def test_norm_layers(norm_cls, mode):
    rng = np.random.default_rng(3)
    layer = norm_cls(4)
    layer.params["gamma"][:] = rng.uniform(0.5, 1.5, 4)  # away from the trivial gamma = 1, beta = 0
    layer.params["beta"][:] = rng.standard_normal(4)
    report = check_layer(layer, 3.0 * _x() + 1.0, mode=mode)
    assert_strict_pass(report)


def test_norm_statistics():
    x = 3.0 * _x((64, 8)) + 2.0
    ln = LayerNorm(8).forward(x)
    np.testing.assert_allclose(ln.mean(axis=1), 0, atol=1e-12)
    np.testing.assert_allclose(ln.var(axis=1), 1, rtol=1e-4)  # eps = 1e-5 against var ~ 9
    bn = BatchNorm(8).forward(x)
    np.testing.assert_allclose(bn.mean(axis=0), 0, atol=1e-12)
    np.testing.assert_allclose(bn.var(axis=0), 1, rtol=1e-4)


@pytest.mark.parametrize("alpha", [1.0, 0.3])
@pytest.mark.parametrize("fan_out", [4, 6])  # same width (identity shortcut) and a projection
@pytest.mark.parametrize("mode", MODES)
def test_residual_block(alpha, fan_out, mode):
    rng = np.random.default_rng(5)
    branch = Sequential(
        [
            _linear(4, fan_out, rng),
            LayerNorm(fan_out),
            Activation("tanh"),
            _linear(fan_out, fan_out, rng),
            Activation("gelu"),
        ],
        names=["l1", "norm", "act1", "l2", "act2"],
    )
    shortcut = None if fan_out == 4 else _linear(4, fan_out, rng, bias=False)
    block = ResidualBlock(branch, alpha, shortcut)
    report = check_layer(block, _x(), mode=mode)
    assert_strict_pass(report)
    assert ("shortcut.W" in block.params) == (fan_out != 4)


def test_residual_forward_is_shortcut_plus_scaled_branch():
    rng = np.random.default_rng(6)
    branch = Sequential([_linear(4, 4, rng), Activation("tanh")])
    x = _x()
    y = ResidualBlock(branch, 0.5, None).forward(x)
    np.testing.assert_allclose(y, x + 0.5 * np.tanh(x @ branch.params["0.W"] + branch.params["0.b"]))


def test_containers_share_arrays_with_children():
    rng = np.random.default_rng(7)
    lin = _linear(4, 3, rng)
    seq = Sequential([lin, Activation("relu")], names=["lin", "act"])
    assert seq.params["lin.W"] is lin.params["W"] and seq.grads["lin.b"] is lin.grads["b"]
    x = _x()
    seq.forward(x)
    seq.backward(np.ones((5, 3)))
    # traces: input/output and the gradient at both ends of each child
    assert lin.h_in is x and seq.layers[1].h_in is lin.h_out
    np.testing.assert_allclose(lin.grad_in, lin.grad_out @ lin.params["W"].T)


def test_float32_layer_check_says_not_meaningful():
    rng = np.random.default_rng(8)
    W = init_weight("he_normal", 4, 3, rng, dtype=np.float32)
    report = check_layer(Linear(W), _x().astype(np.float32))
    assert not report.meaningful and "not meaningful" in report.summary()

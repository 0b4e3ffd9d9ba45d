"""Losses: values against direct formulas, gradients against the float64 check."""

import numpy as np
import pytest

from harness.gradcheck import check_loss
from harness.nn import LinearProbe, MSELoss, SoftmaxCrossEntropy, make_loss
from tests.conftest import MODES


def _y(seed=0):
    return 2.0 * np.random.default_rng(seed).standard_normal((6, 4))


@pytest.mark.parametrize("mode", MODES)
def test_mse(mode):
    y, t = _y(0), _y(1)
    assert MSELoss().forward(y, t) == pytest.approx(0.5 * np.sum((y - t) ** 2) / 6, rel=1e-14)
    report = check_loss(MSELoss(), y, t, mode=mode)
    assert report.passed and not any(r.noise for r in report.rows), report.summary()


@pytest.mark.parametrize("mode", MODES)
def test_cross_entropy(mode):
    y, labels = _y(0), np.array([0, 1, 2, 3, 1, 0])
    p = np.exp(y) / np.exp(y).sum(axis=1, keepdims=True)
    expected = -np.mean(np.log(p[np.arange(6), labels]))
    assert SoftmaxCrossEntropy().forward(y, labels) == pytest.approx(expected, rel=1e-13)
    report = check_loss(SoftmaxCrossEntropy(), y, labels, mode=mode)
    assert report.passed and not any(r.noise for r in report.rows), report.summary()


def test_cross_entropy_is_stable_for_huge_logits():
    y = np.array([[1000.0, 0.0, -1000.0]])
    loss = SoftmaxCrossEntropy()
    assert loss.forward(y, np.array([0])) == pytest.approx(0.0, abs=1e-300)
    assert loss.forward(y, np.array([1])) == pytest.approx(1000.0)
    # softmax of (1000, 0, -1000) is (1, e^-1000, e^-2000) = (1, 0, 0) in float64 (e^-1000 underflows
    # below the smallest subnormal), so dL/dy = p - onehot(1) is exactly (1, -1, 0): no NaN from inf - inf
    np.testing.assert_array_equal(loss.backward(), [[1.0, -1.0, 0.0]])


@pytest.mark.parametrize("mode", MODES)
def test_probe(mode):
    rng = np.random.default_rng(2)
    probe = LinearProbe.random((6, 4), rng)
    y = _y(0)
    assert probe.forward(y) == pytest.approx(np.sum(y * probe.v))
    assert probe.backward() is probe.v  # dL/dy = v exactly
    report = check_loss(probe, y, mode=mode)
    assert report.passed and not any(r.noise for r in report.rows), report.summary()


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda: make_loss("hinge"), "loss: unknown value 'hinge'; allowed: mse, cross_entropy, probe"),
        (lambda: MSELoss().forward(np.zeros((2, 3)), np.zeros((2, 2))), "target: expected shape"),
        (lambda: SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.array([0, 3])), "target: labels"),
        (lambda: SoftmaxCrossEntropy().forward(np.zeros((2, 3)), np.zeros(2)), "target: expected"),
    ],
)
def test_bad_loss_input(call, field):
    with pytest.raises(ValueError, match=field.replace("(", r"\(")):
        call()

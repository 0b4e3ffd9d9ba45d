"""The residual stream at finite width (``harness.residual_theory``): its moments, its mean-field limit,
and measured rates of residual networks where gradient independence fails."""

import math

import numpy as np
import pytest
from scipy import stats

from harness import prediction, residual_theory
from harness.nn import NetworkSpec
from tests.conftest import probed

DEPTH = 20


def test_moments_by_quadrature_match_relus_closed_forms():
    """The quadrature path every other activation takes, on relu against its closed forms."""
    for q in (0.01, 1.0, 40.0):
        closed = residual_theory.moments("relu", q)
        quad = residual_theory.moments.__wrapped__("leaky_relu", q)  # leaky slope 0.01: relu to ~1e-2
        for name in ("mu", "phi2", "d2", "pp", "z2d2", "phid2", "phi2d2"):
            assert getattr(quad, name) == pytest.approx(getattr(closed, name), rel=3e-2, abs=1e-3 * q), name


def test_residual_theory_tends_to_mean_field_at_infinite_width():
    """As n -> infinity the overlaps vanish: each ReLU block multiplies E||dL/dh||^2 by
    1 + alpha^2 sigma^2 / 2 (= 1 + 1 / depth for He and alpha = 1 / sqrt(depth)), gradient independence."""
    wide = prediction.predict(
        "relu",
        [10**9] * DEPTH,
        10**9,
        "he_normal",
        1.0,
        0.0,
        skip=True,
        alpha=1 / math.sqrt(DEPTH),
        output_dim=1,
    )
    np.testing.assert_allclose(wide.chi[1:], 1 + 1 / DEPTH, rtol=1e-6)
    narrow = prediction.predict(
        "relu", [64] * DEPTH, 64, "he_normal", 1.0, 0.0, skip=True, alpha=1 / math.sqrt(DEPTH), output_dim=1
    )
    assert np.all(narrow.chi[1:] > wide.chi[1:])  # the overlaps only add


def _mean_field_residual_rate(alpha):
    """The old theory: gradient independence, 1 + alpha^2 sigma^2 E[phi'^2] per He ReLU block."""
    return -math.log(1 + alpha**2)


@pytest.mark.parametrize("width", [128, pytest.param(512, marks=pytest.mark.slow)])
@pytest.mark.parametrize("depth", [50, 100])
def test_residual_relu_rates_follow_the_finite_width_theory(width, depth):
    """relu, He, alpha = 0.1: the stream's mean builds up and the coherent overlaps amplify an O(1/n)
    seed, so the measured rate lies far beyond gradient independence's -log(1 + alpha^2) = -0.010 and
    shrinks only slowly with width. Per seed d = measured - predicted; the allowance is the t-quantile
    (two-sided 99.9%) of their spread plus the next order the theory leaves out: the measured rate
    averages logs of a batch sum whose coherent part is a chi-square of one degree of freedom per sample
    (relative variance 2 / B, so log bias within [-1/B, 0] at every layer, at most 3 / (B D) on a
    least-squares slope over D layers), and the log of a random product (each block's factor has
    relative variance 4 alpha^2 / n: bias 2 alpha^2 / n per block). The old formula must fail it."""
    seeds, batch, alpha = 8, 64, 0.1
    diffs, old = [], []
    for seed in range(seeds):
        spec = NetworkSpec(
            input_dim=width,
            width=width,
            depth=depth,
            output_dim=width,
            activation="relu",
            init="he_normal",
            skip=True,
            skip_scale=alpha,
            seed=seed,
        )
        net = probed(spec, batch, 500 + seed)
        measured = np.polyfit(
            np.arange(1, depth + 1), np.log([np.sum(b.grad_out**2) for b in net.hidden]), 1
        )[0]
        pred = prediction.predict(
            "relu",
            spec.widths,
            width,
            "he_normal",
            1.0,
            0.0,
            skip=True,
            alpha=alpha,
            output_dim=width,
            batch=batch,
        )
        diffs.append(measured - pred.rate)
        old.append(measured - _mean_field_residual_rate(alpha))
    diffs, old = np.array(diffs), np.array(old)
    spread = stats.t.ppf(0.9995, seeds - 1) * diffs.std(ddof=1) / math.sqrt(seeds)
    tol = spread + 3 / (batch * depth) + 2 * alpha**2 / width
    assert abs(diffs.mean()) < tol, (diffs.mean(), tol)
    assert abs(old.mean()) > tol, (old.mean(), tol)


def _rates(activation, init, width, depth, alpha, block_layers, seeds, batch):
    """Per seed, measured minus predicted rate, and measured minus the mean-field (old) prediction."""
    new, old = [], []
    for seed in range(seeds):
        spec = NetworkSpec(
            input_dim=width,
            width=width,
            depth=depth,
            output_dim=width,
            activation=activation,
            init=init,
            skip=True,
            skip_scale=alpha,
            block_layers=block_layers,
            seed=seed,
        )
        net = probed(spec, batch, 500 + seed)
        measured = np.polyfit(
            np.arange(1, depth + 1), np.log([np.sum(b.grad_out**2) for b in net.hidden]), 1
        )[0]
        pred = prediction.predict(
            activation,
            spec.widths,
            width,
            init,
            1.0,
            0.0,
            skip=True,
            alpha=alpha,
            block_layers=block_layers,
            output_dim=width,
            batch=batch,
        )
        wide = prediction.predict(
            activation,
            [10**9] * depth,
            10**9,
            init,
            1.0,
            0.0,
            skip=True,
            alpha=alpha,
            block_layers=block_layers,
            output_dim=width,
            batch=batch,
        )
        new.append(measured - pred.rate)
        old.append(measured - wide.rate)
    return np.array(new), np.array(old)


@pytest.mark.parametrize(("activation", "block_layers"), [("gelu", 1), ("relu", 2)])
def test_other_branches_follow_the_finite_width_theory(activation, block_layers):
    """gelu (the quadrature path) and two-layer relu branches, He, width 256, depth 50, alpha 0.15: the
    same allowance as above; the mean-field rate (the theory at n = 10^9) must fail it."""
    seeds, batch, depth, width, alpha = 6, 64, 50, 256, 0.15
    new, old = _rates(activation, "he_normal", width, depth, alpha, block_layers, seeds, batch)
    spread = stats.t.ppf(0.9995, seeds - 1) * new.std(ddof=1) / math.sqrt(seeds)
    tol = spread + 3 / (batch * depth) + 2 * block_layers * alpha**2 / width
    assert abs(new.mean()) < tol, (new.mean(), tol)
    assert abs(old.mean()) > tol, (old.mean(), tol)

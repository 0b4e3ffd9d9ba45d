"""BatchNorm's gradient explosion (Yang et al. 2019) against a Monte Carlo of its own expectations and
against networks."""

import math

import numpy as np
import pytest
from scipy import stats

from harness import batchnorm_theory, prediction
from harness.nn import NetworkSpec
from tests.conftest import probed


def _sphere(batch, draws, rng):
    """Points z_hat uniform on the sphere of radius sqrt(B) orthogonal to 1 (BatchNorm's fixed point)."""
    z = rng.standard_normal((draws, batch))
    z -= z.mean(axis=1, keepdims=True)
    return math.sqrt(batch) * z / np.linalg.norm(z, axis=1, keepdims=True)


@pytest.mark.parametrize("batch", [6, 16])
def test_closed_form_matches_a_monte_carlo_of_its_expectations(batch):
    """kappa's kernel term and the trace E tr(Q D G D Q) by sampling the sphere directly; the allowance
    is 5 standard errors of the sample means."""
    rng = np.random.default_rng(0)
    draws = 200_000
    zh = _sphere(batch, draws, rng)
    y = np.maximum(zh, 0.0)
    second = y[:, 0] ** 2 - y[:, 0] * y[:, 1]  # E[phi(z_a)^2] - E[phi(z_a) phi(z_b)]
    u = zh / math.sqrt(batch)
    d = (zh > 0).astype(float)
    # tr(Q D G D Q) = sum_a d_a (1 - 1/B - u_a^2) - (|d|^2 - (sum d)^2 / B - (u . d)^2) / B
    k, s1 = d.sum(axis=1), (u * d).sum(axis=1)
    trace = k * (1 - 1 / batch) - (u * u * d).sum(axis=1) - (k - k * k / batch - s1 * s1) / batch
    kappa = batch / ((batch - 3) * second.mean())
    lam = kappa * trace.mean() / (batch - 1)
    rel_se = math.hypot(second.std() / second.mean(), trace.std() / trace.mean()) / math.sqrt(draws)
    closed, _ = batchnorm_theory.relu_factors(batch)
    assert abs(lam / closed - 1) < 5 * rel_se, (lam, closed, rel_se)


def test_the_large_batch_limit_is_pi_over_pi_minus_one():
    lams = [batchnorm_theory.relu_factors(b)[0] for b in (8, 16, 64, 256, 10**6)]
    assert lams == sorted(lams, reverse=True)  # smaller batches explode faster
    assert lams[-1] == pytest.approx(math.pi / (math.pi - 1), rel=1e-5)
    assert batchnorm_theory.relu_factors(3) == (math.inf, math.inf)  # E[1 / chi^2_2] diverges


@pytest.mark.parametrize("batch", [8, 16, pytest.param(64, marks=pytest.mark.slow)])
def test_batchnorm_relu_networks_explode_at_the_predicted_rate(batch):
    """ReLU/He with BatchNorm, width 1024, depth 30: the measured rate (slope of log ||dL/dh_l||^2)
    against the theory. Per seed d = measured - predicted; the allowance is the t-quantile (two-sided
    99.9%) of their spread plus the next order the width -> infinity theory leaves out: the log of a
    random product, whose factor per layer has relative variance (2 + v) / n (the weights' chi-square,
    2; the spread over units of each unit's factor, v = (1 + 1)(1 + 2 / (B - 5)) - 1 from relu's mask
    and the inverse radius 1 / chi^2_{B-1}), a bias of (2 + v) / (2n) per layer, and the batch Gram's
    spread, which raises E[1 / |G z|^2] by 2 / n. sigma_w drops out (He or Xavier alike), and the
    large-batch limit pi / (pi - 1) must fail it at B = 16 and 64."""
    width, depth, seeds = 1024, 30, 6
    pred = prediction.predict(
        "relu", [width] * depth, width, "he_normal", 1.0, 0.0, norm="batch", output_dim=width, batch=batch
    )
    rates = []
    for seed in range(seeds):
        init = ("he_normal", "xavier_normal")[seed % 2]
        spec = NetworkSpec(
            input_dim=width,
            width=width,
            depth=depth,
            output_dim=width,
            activation="relu",
            init=init,
            norm="batch",
            seed=seed,
        )
        net = probed(spec, batch, 700 + seed)
        rates.append(
            np.polyfit(np.arange(1, depth + 1), np.log([np.sum(b.grad_out**2) for b in net.hidden]), 1)[0]
        )
    rates = np.array(rates)
    v = 2 * (1 + 2 / (batch - 5)) - 1
    tol = (
        stats.t.ppf(0.9995, seeds - 1) * rates.std(ddof=1) / math.sqrt(seeds)
        + (2 + v) / (2 * width)
        + 2 / width
    )
    assert abs(rates.mean() - pred.rate) < tol, (rates.mean(), pred.rate, tol)
    assert abs(rates.mean() + math.log(math.pi / (math.pi - 1))) > tol  # the large-batch limit is rejected


def test_what_is_not_modelled_has_no_prediction():
    """BatchNorm with another activation or with skips, LayerNorm, and residual widths that change after
    the first block: predict returns None (the runs then log no theory and say "(no theory)")."""
    widths = [64] * 6
    assert prediction.predict("tanh", widths, 64, "lecun_normal", 1.0, 0.0, norm="batch", batch=16) is None
    assert prediction.predict("relu", widths, 64, "he_normal", 1.0, 0.0, norm="batch", skip=True) is None
    assert prediction.predict("relu", widths, 64, "he_normal", 1.0, 0.0, norm="layer") is None
    changing = [64, 64, 32, 32, 32, 32]
    assert prediction.predict("relu", changing, 64, "he_normal", 1.0, 0.0, skip=True, alpha=0.1) is None
    assert prediction.predict("relu", widths, 64, "he_normal", 1.0, 0.0, norm="batch", batch=16) is not None

"""Backpropagated gradients in deep ReLU networks at initialisation, against the variance recursion.

For a square ReLU layer with weights of variance sigma_w^2 / n, dL/dh_{l-1} = (dL/dh_l * relu'(z_l)) W_l^T
gives E||dL/dh_{l-1}||^2 = (sigma_w^2 / 2) E||dL/dh_l||^2. He init (sigma_w^2 = 2) keeps the mean
squared gradient constant; Xavier init (2 / (n + n) = 1 / n, sigma_w^2 = 1) halves it at every layer
going down.

We measure q_l = mean over batch and units of (dL/dh_l)^2 for l = 1..30, fit the slope of log q_l
against l per seed, and compare the mean slope over seeds with the prediction (0 for He, log 2 per
layer for Xavier: q grows towards the output). The tolerance comes from the statistics, not from
tuning: the t-quantile (two-sided 99.9%) of the seeds' spread, plus the finite-width bias of a log of
a chi-square-like ratio, E[log(chi2_n / n)] ~ -1/n per layer, taken with a factor 2 for the ReLU mask.
"""

import math

import numpy as np
import pytest
from scipy import stats

from harness.nn import NetworkSpec
from tests.conftest import probed

WIDTH, DEPTH, BATCH, SEEDS = 256, 30, 64, 8


def _slopes(init: str) -> np.ndarray:
    slopes = []
    layers = np.arange(1, DEPTH + 1)
    for seed in range(SEEDS):
        spec = NetworkSpec(
            input_dim=WIDTH,
            width=WIDTH,
            depth=DEPTH,
            output_dim=WIDTH,
            activation="relu",
            init=init,
            seed=seed,
        )
        net = probed(spec, BATCH, 10_000 + seed)
        q = np.array([np.mean(layer.grad_out**2) for layer in net.hidden])
        slopes.append(np.polyfit(layers, np.log(q), 1)[0])
    return np.array(slopes)


@pytest.mark.parametrize(("init", "predicted"), [("he_normal", 0.0), ("xavier_normal", math.log(2))])
def test_relu_gradient_slope_matches_variance_recursion(init, predicted):
    slopes = _slopes(init)
    t = stats.t.ppf(1 - 0.0005, SEEDS - 1)
    tolerance = t * slopes.std(ddof=1) / math.sqrt(SEEDS) + 2.0 / WIDTH
    assert abs(slopes.mean() - predicted) < tolerance, (slopes.mean(), predicted, tolerance)
    # and the two regimes are told apart: the tolerance is far below their separation
    assert tolerance < math.log(2) / 4

"""The Jacobian's spectral density by free probability (``harness.free_probability``) against its closed
moments, against networks at the fixed point, and where depth nears width."""

import math

import numpy as np
import pytest
from scipy import stats

from harness import free_probability, prediction, theory
from harness.nn import NetworkSpec, build_network
from harness.stats import input_output_jacobian

SCALE, BIAS = 1.0421259, 0.01  # tanh at criticality with small q* (the dynamical isometry figure)
SW2 = SCALE**2
Q_STAR = theory.fixed_point("tanh", SW2, BIAS**2)


def _moments_of_density(depth, gaussian):
    mean, _ = free_probability.moments("tanh", SW2, Q_STAR, depth, gaussian)
    x = mean * (np.geomspace(1e-300, 1e4, 6000) if gaussian else np.geomspace(0.05, 20, 1500))
    rho = free_probability.density("tanh", SW2, Q_STAR, depth, x, gaussian)
    weights = np.where(np.isfinite(rho), rho * x, 0.0)  # integrate in log x
    mass, first, second = (np.trapezoid(weights * x**k, np.log(x)) for k in (0, 1, 2))
    return mass, first / mean, second / first**2 - 1


@pytest.mark.parametrize(("depth", "gaussian"), [(8, False), (32, False), (8, True), (32, True)])
def test_density_integrates_to_the_closed_moments(depth, gaussian):
    """Mass 1, the mean (E d)^L and the spread L (v_W + E[d^2] / E[d]^2 - 1): the Newton continuation
    against the moments' own formulas; the trapezoid rule on the grid allows 5e-3 relative. A
    density solved with the other weights' S-transform (a planted error) must miss the spread."""
    _, spread = free_probability.moments("tanh", SW2, Q_STAR, depth, gaussian)
    mass, mean, measured = _moments_of_density(depth, gaussian)
    assert abs(mass - 1) < 5e-3 and abs(mean - 1) < 5e-3 and abs(measured / spread - 1) < 5e-3
    _, _, wrong = _moments_of_density(depth, not gaussian)
    assert abs(wrong / spread - 1) > 0.1


def _spectra(init, width, depth, seeds, activation="tanh", scale=SCALE, bias=BIAS, p_in=None):
    """Per seed, the squared singular values of dh_D/dx at one input of second moment ``p_in`` (default:
    the first layer at q*)."""
    p_in = (Q_STAR - bias**2) / scale**2 if p_in is None else p_in
    out = []
    for seed in range(seeds):
        spec = NetworkSpec(
            input_dim=width,
            width=width,
            depth=depth,
            output_dim=1,
            activation=activation,
            init=init,
            init_scale=scale,
            bias_std=bias,
            seed=seed,
        )
        x = np.random.default_rng(seed).standard_normal(width) * math.sqrt(p_in)
        out.append(np.linalg.svd(input_output_jacobian(build_network(spec), x), compute_uv=False) ** 2)
    return np.array(out)


def test_orthogonal_spectrum_at_q_star_is_free_probabilitys():
    """Orthogonal tanh at criticality, width 128, depth 32, inputs at q* (Pennington et al.'s regime).
    The spread (variance / mean^2) and the quartiles of log lambda against the density. Over S seeds
    the allowance is the t-quantile (99.9%) of their spread plus the finite-width bias: 1/n relative
    for the spread, one eigenvalue's worth of probability (1/n, in log lambda: 1 / (n x rho(x))) for a
    quantile. The Gaussian-weight density, and the old regime (inputs of unit variance), must fail it."""
    width, depth, seeds = 128, 32, 4
    eig = _spectra("orthogonal", width, depth, seeds)
    spread = eig.var(axis=1) / eig.mean(axis=1) ** 2
    _, predicted = free_probability.moments("tanh", SW2, Q_STAR, depth)
    t = stats.t.ppf(0.9995, seeds - 1) / math.sqrt(seeds)
    tol = t * spread.std(ddof=1) + predicted / width
    assert abs(spread.mean() - predicted) < tol, (spread.mean(), predicted, tol)
    unit = _spectra("orthogonal", width, depth, seeds, p_in=1.0)  # q_1 = 1.09: the transient
    assert abs((unit.var(axis=1) / unit.mean(axis=1) ** 2).mean() - predicted) > tol
    mean, _ = free_probability.moments("tanh", SW2, Q_STAR, depth)

    def quantiles(gaussian):
        x = mean * (np.geomspace(1e-300, 1e3, 3000) if gaussian else np.geomspace(1e-2, 1e2, 800))
        rho = free_probability.density("tanh", SW2, Q_STAR, depth, x, gaussian)
        w = np.where(np.isfinite(rho), rho * x, 0.0)
        cdf = np.concatenate([[0.0], np.cumsum(np.diff(np.log(x)) * 0.5 * (w[1:] + w[:-1]))])
        qs = np.array([np.interp(p, cdf, x) for p in (0.25, 0.5, 0.75)])
        return np.log(qs), np.interp(qs, x, rho)

    predicted_q, rho_q = quantiles(False)
    measured = np.log(np.quantile(eig, [0.25, 0.5, 0.75], axis=1))  # (3, seeds)
    allowed = t * measured.std(axis=1, ddof=1) + 1 / (width * np.exp(predicted_q) * rho_q)
    assert np.all(np.abs(measured.mean(axis=1) - predicted_q) < allowed), (measured.mean(axis=1), predicted_q)
    gaussian_q, _ = quantiles(True)
    assert np.all(np.abs(measured.mean(axis=1) - gaussian_q) > allowed), (measured.mean(axis=1), gaussian_q)


def test_gaussian_spread_departs_from_free_probability_by_depth_over_width():
    """Free probability is n -> infinity at fixed depth L. Linear networks with Gaussian weights, whose
    free spread is exactly L: at tau = L / n = 1 the measured spread is the same fraction of L at n = 32
    and 64 (a function of tau alone, ~0.64; not rounding: setting every singular value below
    n eps sigma_max to 0 does not move it), and at tau = 1/4 it is L within the seeds' spread and the
    1/n bias."""
    ratios = {}
    for width, depth, seeds in ((32, 32, 60), (64, 64, 60), (64, 16, 60)):
        eig = _spectra(
            "lecun_normal", width, depth, seeds, activation="identity", scale=1.0, bias=0.0, p_in=1.0
        )
        floor = (width * np.finfo(float).eps * np.sqrt(eig.max(axis=1, keepdims=True))) ** 2
        kept = np.where(eig < floor, 0.0, eig)  # what rounding could change: the spread does not move
        np.testing.assert_allclose(
            kept.var(axis=1) / kept.mean(axis=1) ** 2, eig.var(axis=1) / eig.mean(axis=1) ** 2, rtol=1e-9
        )
        ratios[(width, depth)] = eig.var(axis=1) / eig.mean(axis=1) ** 2 / depth
    t = stats.t.ppf(0.9995, 59) / math.sqrt(60)
    a, b, quarter = ratios[(32, 32)], ratios[(64, 64)], ratios[(64, 16)]
    assert abs(a.mean() - b.mean()) < t * math.hypot(a.std(ddof=1), b.std(ddof=1)) + 1 / 32
    assert a.mean() < 0.8 and b.mean() < 0.8
    assert abs(quarter.mean() - 1) < t * quarter.std(ddof=1) + 1 / 64
    free = prediction.predict("identity", [64] * 16, 64, "lecun_normal", 1.0, 0.0).jacobian_rel_var
    assert free == 16  # the free spread: 1 per Gaussian layer

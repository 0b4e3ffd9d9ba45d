"""Mean-field theory against exact integrals, closed forms, and measured networks.

Statistical tolerances: rates are compared per seed as d = measured - predicted slope of
log ||dL/dh_l||^2. Over S seeds the allowance is the t-quantile (two-sided 99.9%) of their spread,
plus the finite-width bias of a log of a random product: each layer multiplies ||dL/dh||^2 by a factor
r with E[r] = chi and Var(r) / chi^2 <= (2 + v_D) / n (chi-square weights plus the spread of phi'^2,
v_D = E[phi'^4] / E[phi'^2]^2 - 1, from the theory itself), so E[log r] = log chi - (2 + v_D) / (2n).
"""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from harness import prediction, theory
from harness.nn import ACTIVATIONS, NetworkSpec, build_network
from harness.stats import input_output_jacobian
from tests.conftest import probed

QS = [1e-4, 1e-2, 1.0, 30.0, 1e3, 1e5]


def _quad(g, q):
    dens = lambda u: g(u) * math.exp(-u * u / (2 * q)) / math.sqrt(2 * math.pi * q)  # noqa: E731
    opts = dict(epsabs=0, epsrel=1e-13, limit=1000)
    return integrate.quad(dens, -np.inf, 0, **opts)[0] + integrate.quad(dens, 0, np.inf, **opts)[0]


@pytest.mark.parametrize("name", [a for a in ACTIVATIONS if a not in ("identity",)])
@pytest.mark.parametrize("q", QS)
def test_expectations_match_an_adaptive_integral(name, q):
    fn = ACTIVATIONS[name]
    scalar = lambda f: lambda u: float(f(np.array([u]))[0])  # noqa: E731
    phi2 = scalar(lambda u: fn.f(u) ** 2)
    dphi2 = scalar(lambda u: fn.df(u, fn.f(u)) ** 2)
    for mine, ref in [(theory.second_moment(name, q), _quad(phi2, q)),
                      (theory.slope_moment(name, q), _quad(dphi2, q))]:  # fmt: skip
        assert abs(mine - ref) <= 1e-9 * max(1.0, abs(ref)), (mine, ref)


def test_plain_gauss_hermite_is_not_enough_at_large_q():
    # the reason for the panel quadrature: tanh'(sqrt(q) z)^2 is a spike of width 1/sqrt(q)
    q = 1e4
    z, w = np.polynomial.hermite_e.hermegauss(300)
    hermite = float(np.sum(w * (1 - np.tanh(np.sqrt(q) * z) ** 2) ** 2) / np.sqrt(2 * np.pi))
    ref = _quad(lambda u: (1 - math.tanh(u) ** 2) ** 2, q)
    assert abs(hermite - ref) > 1e-6 * ref
    assert abs(theory.slope_moment("tanh", q) - ref) < 1e-9 * ref


def test_closed_forms_and_known_values():
    for q in QS:
        assert theory.second_moment("relu", q) == q / 2 and theory.slope_moment("relu", q) == 0.5
        assert math.isclose(theory.gauss_expect(lambda u: np.maximum(u, 0) ** 2, q), q / 2, rel_tol=1e-12)
    assert theory.chi1("relu", 2.0, 0.3) == 1.0 and theory.chi1("identity", 0.8, 0.0) == 0.8
    assert theory.critical_sw2("relu", 0.0) == 2.0  # relu's edge of chaos is the point sigma_b^2 = 0
    assert math.isnan(theory.critical_sw2("relu", 0.1))  # q* = 0.1 / (1 - sw2 / 2): none at chi_1 = 1
    assert math.isclose(theory.critical_sw2("tanh", 0.0), 1.0, rel_tol=1e-6)  # chi_1 = sigma_w^2 phi'(0)^2
    # Schoenholz et al. (2017), Fig. 1: tanh at sigma_b^2 = 0.05 is critical near sigma_w^2 = 1.76
    assert abs(theory.critical_sw2("tanh", 0.05) - 1.76) < 0.01
    q = theory.fixed_point("tanh", 1.5, 0.05)
    assert math.isclose(theory.variance_map("tanh", 1.5, 0.05, q), q, rel_tol=1e-12)
    assert theory.fixed_point("relu", 3.0, 0.0) == math.inf
    assert theory.depth_scale(math.exp(-0.1)) == pytest.approx(10.0)


def test_init_schemes_map_to_sigma_w2():
    g = 1.3
    assert theory.sigma_w2("he_normal", 100, 50, g) == pytest.approx(2 * g**2)
    assert theory.sigma_w2("he_uniform", 100, 50, g) == pytest.approx(2 * g**2)
    assert theory.sigma_w2("xavier_uniform", 100, 50, g) == pytest.approx(2 * 100 / 150 * g**2)
    assert theory.sigma_w2("lecun_normal", 100, 50, g) == pytest.approx(g**2)
    assert theory.sigma_w2("orthogonal", 100, 50, g) == pytest.approx(g**2)
    assert theory.sigma_w2("orthogonal", 50, 100, g) == pytest.approx(g**2 / 2)
    assert theory.sigma_w2("standard", 100, 50, g) == pytest.approx(g**2 / 3)


WIDTH, DEPTH, BATCH, SEEDS = 256, 20, 64, 6


def _rate_differences(activation, init, scale, bias_std, skip=False, skip_scale=1.0):
    diffs, preds = [], []
    for seed in range(SEEDS):
        spec = NetworkSpec(input_dim=WIDTH, width=WIDTH, depth=DEPTH, output_dim=WIDTH, activation=activation,
                           init=init, init_scale=scale, bias_std=bias_std, skip=skip, skip_scale=skip_scale,
                           seed=seed)  # fmt: skip
        net = probed(spec, BATCH, 500 + seed)
        measured = np.polyfit(
            np.arange(1, DEPTH + 1), np.log([np.sum(b.grad_out**2) for b in net.hidden]), 1
        )[0]
        pred = prediction.predict(activation, spec.widths, WIDTH, init, scale, bias_std, skip=skip,
                              alpha=spec.alpha, output_dim=WIDTH, batch=BATCH)  # fmt: skip
        diffs.append(measured - pred.rate)
        preds.append(pred)
    return np.array(diffs), preds[0]


def _tolerance(diffs, activation, q):
    d1, d2 = theory.slope_moment(activation, q, 2), theory.slope_moment(activation, q, 4)
    v_d = d2 / d1**2 - 1
    return stats.t.ppf(1 - 0.0005, SEEDS - 1) * diffs.std(ddof=1) / math.sqrt(SEEDS) + (2 + v_d) / (2 * WIDTH)


TANH_CRITICAL = math.sqrt(theory.critical_sw2("tanh", 0.05))


@pytest.mark.parametrize(
    ("activation", "init", "scale", "bias_std", "regime"),
    [
        ("tanh", "lecun_normal", math.sqrt(0.5), math.sqrt(0.05), "ordered"),
        ("tanh", "lecun_normal", TANH_CRITICAL, math.sqrt(0.05), "critical"),
        ("tanh", "lecun_normal", 2.0, math.sqrt(0.05), "chaotic"),
        ("relu", "he_normal", 1.0, 0.0, "critical"),
        ("relu", "xavier_normal", 1.0, 0.0, "ordered"),
    ],
)
def test_measured_rates_match_theory(activation, init, scale, bias_std, regime):
    diffs, pred = _rate_differences(activation, init, scale, bias_std)
    tol = _tolerance(diffs, activation, pred.q[-1])
    assert abs(diffs.mean()) < tol, (diffs.mean(), tol)
    log_chi1 = pred.log_chi1
    assert {"ordered": log_chi1 < -0.1, "critical": abs(log_chi1) < 1e-6, "chaotic": log_chi1 > 0.1}[regime]
    assert tol < 0.1  # a third of the smallest rate that tells the regimes apart (|log chi_1| >= 0.3 here)


@pytest.mark.parametrize(("activation", "init"), [("relu", "he_normal"), ("tanh", "lecun_normal")])
def test_residual_networks_grow_as_predicted(activation, init):
    diffs, pred = _rate_differences(activation, init, 1.0, 0.0, skip=True, skip_scale="1/sqrt(depth)")
    assert abs(diffs.mean()) < _tolerance(diffs, activation, pred.q[-1])
    assert np.all(pred.chi > 1)  # a residual block never shrinks the gradient


def test_deep_linear_orthogonal_jacobian_is_an_isometry_times_the_scales():
    g, depth, width = 1.1, 12, 16
    spec = NetworkSpec(input_dim=width, width=width, depth=depth, output_dim=3, activation="identity",
                       init="orthogonal", init_scale=g, seed=4)  # fmt: skip
    jac = input_output_jacobian(build_network(spec), np.random.default_rng(0).standard_normal(width))
    sv = np.linalg.svd(jac, compute_uv=False)
    np.testing.assert_allclose(sv, g**depth, rtol=1e-12)
    pred = prediction.predict("identity", spec.widths, width, "orthogonal", g, 0.0)
    assert pred.jacobian_mean == pytest.approx(g ** (2 * depth)) and pred.jacobian_rel_var == 0.0
    gaussian = prediction.predict("identity", spec.widths, width, "lecun_normal", g, 0.0)
    assert gaussian.jacobian_rel_var == depth  # Marchenko-Pastur: +1 per i.i.d. Gaussian layer


def test_trigamma_against_scipy():
    from scipy import special

    for x in (0.3, 0.5, 1.0, 3.7, 8.0, 64.0, 1e4):
        assert theory.trigamma(x) == pytest.approx(float(special.polygamma(1, x)), rel=1e-12)


def test_psi_and_trigamma_against_scipy():
    from scipy import special

    x = np.array([0.3, 0.5, 1.0, 3.7, 8.0, 11.99, 12.0, 64.0, 1e4])
    psi, tri = theory.psi_and_trigamma(x)
    np.testing.assert_allclose(psi, special.digamma(x), rtol=0, atol=1e-10)
    np.testing.assert_allclose(tri, special.polygamma(1, x), rtol=0, atol=1e-12)


def test_relu_mask_variance_is_the_binomial_beta_law():
    """E[psi'(K/2)] - psi'(n/2) + Var[psi(K/2)], K ~ Bin(n, 1/2) | K >= 1, against scipy's pmf and
    polygamma, and its expansion 3/n + 33/(2 n^2): n^2 (M - 3/n) tends to 16.5 (next term ~85/n)."""
    from scipy import special
    from scipy import stats as st

    for n in (8, 16, 64, 300):
        k = np.arange(1, n + 1)
        p = st.binom.pmf(k, n, 0.5) / (1 - 0.5**n)
        psi = special.digamma(k / 2)
        exact = p @ special.polygamma(1, k / 2) - special.polygamma(1, n / 2) + p @ psi**2 - (p @ psi) ** 2
        assert prediction.relu_mask_variance(n) == pytest.approx(exact, rel=1e-9)
    n = 4096
    assert n**2 * (prediction.relu_mask_variance(n) - 3 / n) == pytest.approx(16.5, abs=100 / n)


def _log_ratio_draws(activation, init, scale, bias_std, width, depth, draws):
    """One sample per draw: log(||dL/dh_1||^2 / ||dL/dh_D||^2) over independent networks (finite ones:
    a layer with no active unit has no logarithm)."""
    from harness.study import sample_log_ratios

    out = []
    for seed in range(draws):
        spec = NetworkSpec(input_dim=64, width=width, depth=depth, output_dim=1, activation=activation,
                           init=init, init_scale=scale, bias_std=bias_std, seed=seed)  # fmt: skip
        net = probed(spec, 1, 10_000 + seed)
        out.append(sample_log_ratios(net)[0, 0])
    out = np.array(out)
    return out[np.isfinite(out)]


def _variance_allowance(values, sigmas=4.0):
    """``sigmas`` standard errors of a sample variance of R values, relative: sqrt(2 / (R - 1) plus
    their excess kurtosis / R), measured from the values themselves."""
    draws = len(values)
    return sigmas * math.sqrt(2 / (draws - 1) + max(float(stats.kurtosis(values)), 0.0) / draws)


def _leading_order(widths, first=64):
    """The leading order this replaced: psi'(fan_in / 2) + 3 / fan_out per layer from 2 to D."""
    dims = [first, *widths]
    return sum(theory.trigamma(dims[k] / 2) + 3 / dims[k + 1] for k in range(1, len(widths)))


def _pre_activation_law(widths):
    """The same law for dL/dz_l (pre-activations): both terms on each layer's own width,
    sum_j A(n_j), A = psi'(n/2) + M(n). Not what the harness measures (h_l, the blocks' outputs):
    the alternating case tells them apart."""
    return sum(theory.trigamma(n / 2) + prediction.relu_mask_variance(n) for n in widths[:-1])


@pytest.mark.parametrize("widths", [[16] * 20, [64] * 20, [16, 64] * 2], ids=["16", "64", "16-64"])
def test_relu_log_norm_variance_is_exact_at_any_width(widths):
    """ReLU/He, one sample per draw (so the R values are i.i.d.): Var log(||dL/dh_1||^2 / ||dL/dh_D||^2)
    against psi'(n_1/2) + sum_{j=2}^{D-1} (psi'(n_j/2) + M(n_j)) + M(n_D), the weights' chi-square on
    n_1..n_{D-1} and the masks' share on n_2..n_D (exact: no next order), at widths 16 and 64, depth 20,
    and alternating 16/64 at depth 4 (where the pre-activations' law differs by M(16) - M(64), 34%).
    The allowance is 4 standard errors of the sample variance. The leading order (3/n for the mask) must
    fail it where it differs by more than the allowance (width 16: 24% low), and so must the
    pre-activations' law where the widths alternate (the index)."""
    draws = 3000 if widths[0] == 16 else 1200
    values = _log_ratio_draws("relu", "he_normal", 1.0, 0.0, widths, len(widths), draws)
    measured = values.var(ddof=1)
    predicted = float(prediction.predict("relu", widths, 64, "he_normal", 1.0, 0.0).grad_h_logvar[0])
    by_hand = sum(theory.trigamma(n / 2) for n in widths[:-1])
    by_hand += sum(prediction.relu_mask_variance(n) for n in widths[1:])
    assert predicted == pytest.approx(by_hand, rel=1e-12)
    tol = _variance_allowance(values) * predicted
    assert abs(measured - predicted) < tol, (measured, predicted, tol)
    for other in (_leading_order(widths), _pre_activation_law(widths)):
        if abs(other - predicted) > 2 * tol:
            assert abs(measured - other) > tol, (measured, other, tol)
    if len(set(widths)) > 1:
        assert abs(_pre_activation_law(widths) - predicted) > 2 * tol  # the index is tested


def test_tanh_log_norm_variance_matches_the_leading_order():
    """tanh at criticality (sigma_b^2 = 0.05), width 64, depth 20: the leading order in 1/n (the
    weights' chi-square and phi'^2's spread on the same fan-in units), allowed 4 standard errors of the
    sample variance plus the O(depth / n^2) terms it leaves out (10 depth / n^2: relu's is 18.5)."""
    width, depth, draws = 64, 20, 800
    values = _log_ratio_draws("tanh", "lecun_normal", TANH_CRITICAL, math.sqrt(0.05), width, depth, draws)
    pred = prediction.predict("tanh", [width] * depth, 64, "lecun_normal", TANH_CRITICAL, math.sqrt(0.05))
    predicted = float(pred.grad_h_logvar[0])
    tol = _variance_allowance(values) * predicted + depth * 10 / width**2
    assert abs(values.var(ddof=1) - predicted) < tol, (values.var(ddof=1), predicted, tol)


def test_orthogonal_tanh_jacobian_spread_matches_free_probability():
    """Dynamical isometry (Pennington et al. 2017): orthogonal tanh at criticality, width 128. The
    relative variance of the squared singular values over S seeds against the prediction; the
    allowance is the t-quantile (99.9%) of their spread plus a 1/n relative finite-width bias."""
    width, seeds = 128, 4
    for depth in (8, 32):
        measured = []
        for seed in range(seeds):
            spec = NetworkSpec(
                input_dim=width, width=width, depth=depth, output_dim=1, activation="tanh",
                init="orthogonal", init_scale=TANH_CRITICAL, bias_std=math.sqrt(0.05), seed=seed,
            )  # fmt: skip
            x = np.random.default_rng(seed).standard_normal(width)
            eig = np.linalg.svd(input_output_jacobian(build_network(spec), x), compute_uv=False) ** 2
            measured.append(eig.var() / eig.mean() ** 2)
        measured = np.array(measured)
        pred = prediction.predict(
            "tanh", [width] * depth, width, "orthogonal", TANH_CRITICAL, math.sqrt(0.05)
        )
        tol = stats.t.ppf(0.9995, seeds - 1) * measured.std(ddof=1) / math.sqrt(seeds)
        tol += pred.jacobian_rel_var / width
        assert abs(measured.mean() - pred.jacobian_rel_var) < tol, (
            depth,
            measured,
            pred.jacobian_rel_var,
            tol,
        )
        gaussian = prediction.predict(
            "tanh", [width] * depth, width, "lecun_normal", TANH_CRITICAL, math.sqrt(0.05)
        )
        assert gaussian.jacobian_rel_var - pred.jacobian_rel_var == pytest.approx(depth)  # the +1 per layer
        assert abs(measured.mean() - gaussian.jacobian_rel_var) > tol  # orthogonal is told from Gaussian

"""The correlation map (c*, chi_c, xi_c) and the length map's depth scale xi_q, against independent
integrals, their own definitions (fixed points, finite-difference slopes) and a wide network."""

import math

import numpy as np
import pytest
from scipy import integrate, stats

from harness import correlation, theory
from harness.nn import ACTIVATIONS, NetworkSpec, build_network

SB2 = 0.05  # Schoenholz et al. (2017)'s tanh networks


def _reference(f, g, q, c):
    """E[f(u_1) g(u_2)] by nested adaptive quadrature, each integral split at its kink u = 0."""
    s, r = math.sqrt(1 - c * c), math.sqrt(q)
    opts = dict(epsabs=1e-14, epsrel=1e-12, limit=200)

    def inner(z1):
        h = lambda z2: g(r * (c * z1 + s * z2)) * math.exp(-z2 * z2 / 2)  # noqa: E731
        kink = -c * z1 / s
        return integrate.quad(h, -12, kink, **opts)[0] + integrate.quad(h, kink, 12, **opts)[0]

    outer = lambda z1: f(r * z1) * inner(z1) * math.exp(-z1 * z1 / 2)  # noqa: E731
    return (integrate.quad(outer, -12, 0, **opts)[0] + integrate.quad(outer, 0, 12, **opts)[0]) / (
        2 * math.pi
    )


@pytest.mark.parametrize("name", ["tanh", "sigmoid", "softplus", "relu", "leaky_relu", "selu"])
def test_pair_moments_match_an_adaptive_integral(name):
    fn = ACTIVATIONS[name]
    f = lambda u: float(fn.f(np.array([u]))[0])  # noqa: E731
    d = lambda u: float(fn.df(np.array([u]), fn.f(np.array([u])))[0])  # noqa: E731
    for q, c in [(0.7, 0.35), (3.0, -0.6)]:
        assert abs(correlation.pair_moment(name, q, c) - _reference(f, f, q, c)) < 1e-11
        assert abs(correlation.pair_slope_moment(name, q, c) - _reference(d, d, q, c)) < 1e-11


@pytest.mark.parametrize("sw2", [1.0, 1.5, 2.0, 2.5, 4.0])
def test_c_star_is_the_stable_fixed_point_and_chi_c_its_slope(sw2):
    c = correlation.c_star("tanh", sw2, SB2)
    chi1 = theory.chi1("tanh", sw2, SB2)
    assert (c == 1.0) == (chi1 <= 1.0)
    assert abs(correlation.correlation_map("tanh", sw2, SB2, c) - c) < 1e-12
    h = 1e-5  # the slope by a central difference (one-sided at c = 1), independent of E[phi' phi']
    m = lambda x: correlation.correlation_map("tanh", sw2, SB2, x)  # noqa: E731
    slope = (m(c) - m(c - h)) / h if c == 1.0 else (m(c + h) - m(c - h)) / (2 * h)
    tol = 1e-4 if c == 1.0 else 1e-7  # one-sided: the curvature times h / 2
    assert abs(correlation.chi_c("tanh", sw2, SB2) - slope) < tol
    assert correlation.chi_c("tanh", sw2, SB2) < 1.0  # stable


def test_xi_q_is_the_length_maps_slope():
    for sw2 in (1.0, 2.5, 4.0):
        q = theory.fixed_point("tanh", sw2, SB2)
        h = 1e-5 * q
        slope = (
            theory.variance_map("tanh", sw2, SB2, q + h) - theory.variance_map("tanh", sw2, SB2, q - h)
        ) / (2 * h)
        assert correlation.length_slope("tanh", sw2, SB2) == pytest.approx(slope, rel=1e-7)
        assert correlation.xi_q("tanh", sw2, SB2) == pytest.approx(-1 / math.log(slope), rel=1e-6)


def test_depth_scales_diverge_at_the_critical_line():
    critical = theory.critical_sw2("tanh", SB2)
    assert abs(critical - 1.76) < 0.01  # Schoenholz et al. (2017), Fig. 1
    assert correlation.xi_c("tanh", 2.5, SB2) == pytest.approx(11.80, abs=0.01)  # the value
    ordered = [correlation.xi_c("tanh", critical * (1 - e), SB2) for e in (0.1, 0.03, 0.01)]
    chaotic = [correlation.xi_c("tanh", critical * (1 + e), SB2) for e in (0.1, 0.03, 0.01)]
    assert ordered == sorted(ordered) and chaotic == sorted(chaotic) and min(ordered[-1], chaotic[-1]) > 50
    # in the ordered phase xi_c = 1 / |log chi_1|, the gradient's depth scale
    assert correlation.xi_c("tanh", 1.2, SB2) == pytest.approx(
        theory.depth_scale(theory.chi1("tanh", 1.2, SB2))
    )
    assert theory.depth_scale(math.exp(0.25)) == pytest.approx(4.0)  # chaotic: positive too
    summary = correlation.phase_summary("tanh", 1.2, SB2)  # a finite q*: exponential, no power law
    assert math.isnan(summary["theory_c_power"])


def test_zero_bias_has_no_correlation_depth_scale():
    """sigma_b^2 = 0 (the default): q* = 0 or no interior fixed point, so no exponential approach.
    tanh below the critical line freezes (no c*, p = 0); relu at any sigma_w^2 is a power law (c* = 1,
    p = 2); a bias gives relu a finite xi_c in the ordered phase only, and no edge of chaos."""
    frozen = correlation.phase_summary("tanh", 0.81, 0.0)
    assert frozen["theory_q_star"] == 0.0 and math.isnan(frozen["theory_c_star"])
    assert frozen["theory_xi_c"] == math.inf and frozen["theory_c_power"] == 0.0
    assert frozen["theory_chi_c"] == 1.0
    assert frozen["theory_xi_q"] == pytest.approx(-1 / math.log(0.81))  # q_l ~ 0.81^l -> 0
    for sw2 in (1.0, 2.0, 3.0):
        relu = correlation.phase_summary("relu", sw2, 0.0)
        assert relu["theory_c_star"] == 1.0 and relu["theory_chi_c"] == 1.0
        assert relu["theory_xi_c"] == math.inf and relu["theory_c_power"] == 2.0
    ordered = correlation.phase_summary("relu", 1.5, 0.1)  # q* = 0.1 / (1 - 0.75) = 0.4
    assert ordered["theory_q_star"] == pytest.approx(0.4)
    assert ordered["theory_xi_c"] == pytest.approx(-1 / math.log(0.75)) and math.isnan(
        ordered["theory_c_power"]
    )
    assert correlation.phase_summary("relu", 2.5, 0.1)["theory_c_power"] == 2.0  # q grows without bound
    assert theory.critical_sw2("relu", 0.0) == 2.0 and math.isnan(theory.critical_sw2("relu", 0.1))


def test_relu_correlations_approach_one_as_the_inverse_square_of_depth():
    """The arc-cosine kernel map near c = 1: eps' = eps - a eps^(3/2), a = 2 sqrt(2) / (3 pi), so
    eps_l -> 4 / (a l)^2 = 9 pi^2 / (2 l^2) whatever sigma_w^2 (the map is the normalised kernel's);
    the next order is O(log l / l), so the relative gap must shrink about 4x from l = 1000 to 4000.
    The exponential law of the old xi_c (-1 / log chi_1 = 1.44 at sigma_w^2 = 1) is rejected."""
    _, c = correlation.trajectory("relu", 2.0, 0.0, 1.0, 0.0, 4000)
    _, c_xavier = correlation.trajectory("relu", 1.0, 0.0, 1.0, 0.0, 1000)
    np.testing.assert_allclose(c_xavier, c[:1000], rtol=1e-12)  # sigma_w^2 drops out
    gap = lambda k: abs(k**2 * (1 - c[k - 1]) / (9 * math.pi**2 / 2) - 1)  # noqa: E731
    assert gap(4000) < gap(1000) / 3 and gap(4000) < 0.02, (gap(1000), gap(4000))
    old = (1 - c[19]) * math.exp(-20 / (-1 / math.log(0.5)))  # 1 - c_40 by exp(-l / xi_c) from l = 20
    assert (1 - c[39]) > 100 * old


def _pair_correlations(activation, sw2, sb2, c_in, width, depth, layers, seeds):
    """Per seed, the correlation of two inputs' pre-activations at ``layers`` (inputs of norm^2 = width
    and correlation exactly ``c_in``)."""
    out = []
    for seed in range(seeds):
        spec = NetworkSpec(
            input_dim=width,
            width=width,
            depth=depth,
            output_dim=1,
            activation=activation,
            init="lecun_normal",
            init_scale=math.sqrt(sw2),
            bias_std=math.sqrt(sb2),
            seed=seed,
        )
        net = build_network(spec)
        rng = np.random.default_rng(200 + seed)
        a, b = rng.standard_normal((2, width))
        a *= math.sqrt(width) / np.linalg.norm(a)
        b -= a * (a @ b) / width
        b *= math.sqrt(width) / np.linalg.norm(b)
        net.forward(np.stack([a, c_in * a + math.sqrt(1 - c_in**2) * b]))
        h = [net.hidden[k - 1].layers[0].h_out for k in layers]  # the Linear's output: pre-activations
        out.append([float(z[0] @ z[1] / math.sqrt((z[0] @ z[0]) * (z[1] @ z[1]))) for z in h])
    return np.array(out)


@pytest.mark.parametrize(
    ("activation", "sw2", "c_in", "layers", "old_xi"),
    [("tanh", 0.81, 0.5, (10, 30), -1 / math.log(0.81)), ("relu", 1.0, 0.2, (20, 40), -1 / math.log(0.5))],
)
def test_networks_at_zero_bias_follow_the_iterated_maps(activation, sw2, c_in, layers, old_xi):
    """Width-1000 networks at sigma_b^2 = 0 against the exact maps iterated from the inputs: tanh's
    correlations freeze (1 - c_l ~ 0.54 from layer 10 on), relu's approach 1 as a power law (at
    sigma_w^2 = 1; the map itself does not depend on it). Over S seeds the allowance is the
    t-quantile (99.9%) of their spread plus the O(1/n) bias of a ratio of sample moments. Frozen
    correlations have no restoring force, so each network's c_l wanders off the mean as l grows:
    hence layer 30, not 60. The old logged law, c -> c* = 1 like exp(-l / xi_c) with
    xi_c = -1 / log chi_1 from the first layer shown, is rejected."""
    width, seeds = 1000, 8
    measured = _pair_correlations(activation, sw2, 0.0, c_in, width, layers[-1], layers, seeds)
    _, c = correlation.trajectory(activation, sw2, 0.0, 1.0, c_in, layers[-1])
    predicted = np.array([c[k - 1] for k in layers])
    tol = stats.t.ppf(0.9995, seeds - 1) * measured.std(axis=0, ddof=1) / math.sqrt(seeds) + 1 / width
    assert np.all(np.abs(measured.mean(axis=0) - predicted) < tol), (measured.mean(axis=0), predicted, tol)
    old = 1 - (1 - predicted[0]) * math.exp(-(layers[1] - layers[0]) / old_xi)
    assert abs(measured[:, 1].mean() - old) > tol[1], (measured[:, 1].mean(), old, tol[1])


def test_a_wide_chaotic_network_decorrelates_two_inputs_to_c_star():
    """Two inputs with correlation 0.9 through 30 tanh layers of width 1000 at sigma_w^2 = 2.5: the
    pre-activations' correlation reaches c*. Over S seeds the allowance is the t-quantile (99.9%) of
    their spread plus the O(1/n) bias of a ratio of sample moments."""
    sw2, width, depth, seeds = 2.5, 1000, 30, 6
    target = correlation.c_star("tanh", sw2, SB2)
    measured = []
    for seed in range(seeds):
        spec = NetworkSpec(
            input_dim=width,
            width=width,
            depth=depth,
            output_dim=1,
            activation="tanh",
            init="lecun_normal",
            init_scale=math.sqrt(sw2),
            bias_std=math.sqrt(SB2),
            seed=seed,
        )
        net = build_network(spec)
        rng = np.random.default_rng(100 + seed)
        a = rng.standard_normal(width)
        x = np.stack([a, 0.9 * a + math.sqrt(1 - 0.9**2) * rng.standard_normal(width)])
        y = x
        for block in net.hidden[:-1]:
            y = block.forward(y)
        h = net.hidden[-1].layers[0].forward(y)  # the last layer's pre-activations
        measured.append(float(np.sum(h[0] * h[1]) / math.sqrt(np.sum(h[0] ** 2) * np.sum(h[1] ** 2))))
    measured = np.array(measured)
    tol = stats.t.ppf(0.9995, seeds - 1) * measured.std(ddof=1) / math.sqrt(seeds) + 1 / width
    assert abs(measured.mean() - target) < tol, (measured.mean(), target, tol)
    assert tol < 0.5 * (0.9 - target)  # the test can tell c* from the input's correlation


def test_trainable_depth_is_set_by_the_correlation_depth_scale():
    """Schoenholz et al. (2017): tanh networks train only while the signal that tells inputs apart,
    which decays like exp(-L / xi_c), stands above the noise of training. T steps of B samples average
    that noise down to ~1 / sqrt(B T), so the trainable depth is n xi_c with n = ln(B T) / 2 (5.2 here,
    near the paper's 6 after its longer training). The constant in the noise floor is not known: allowing
    it a factor e^(n / 2) either way, networks of depth n xi_c / 2 must train (training accuracy over
    half, chance is 0.1) and networks of depth 2 n xi_c must not, on both sides of criticality. One seed
    per network: an accuracy near the threshold would be a coin flip, and these depths are a factor of 2
    away from it on either side."""
    from harness.config import parse_config
    from harness.study import run_study

    steps, batch = 1000, 32
    n = math.log(batch * steps) / 2
    for sw2 in (1.0, 4.0):  # ordered (chi_1 = 0.76) and chaotic (chi_1 = 1.34)
        xi = correlation.xi_c("tanh", sw2, SB2)
        for depth, trains in ((math.ceil(n * xi / 2), True), (math.floor(2 * n * xi), False)):
            config = parse_config(
                {
                    "mode": "train",
                    "seed": 0,
                    "data": {"name": "digits"},
                    "loss": {"name": "cross_entropy"},
                    "optim": {"name": "sgd", "lr": 0.01},
                    "gradcheck": {"mode": "off"},
                    "train": {"steps": steps, "batch_size": batch, "log_every": steps},
                    "model": {
                        "depth": depth,
                        "width": 64,
                        "activation": "tanh",
                        "init": "lecun_normal",
                        "init_scale": math.sqrt(sw2),
                        "bias_std": math.sqrt(SB2),
                    },
                }
            )
            accuracy = run_study(config).summary["final_train_accuracy"]
            assert (accuracy > 0.5) == trains, (sw2, xi, depth, accuracy)

"""The correlation map beside the length map: the depth scales that bound trainability (mean-field theory,
apart from the simulation code; Poole et al. 2016, Schoenholz et al. 2017).

Two inputs whose pre-activations at the fixed point q* have correlation c: one layer maps it to

    c' = (sigma_w^2 E[phi(u_1) phi(u_2)] + sigma_b^2) / q*,   (u_1, u_2) ~ N(0, q* [[1, c], [c, 1]])

c = 1 is always a fixed point. Its slope there is chi_1 = sigma_w^2 E[phi'(u)^2]: for chi_1 <= 1
(ordered) c = 1 is stable and c* = 1; for chi_1 > 1 (chaotic) the stable fixed point c* < 1. The slope
at c*, chi_c = sigma_w^2 E[phi'(u_1) phi'(u_2)], sets the correlation depth scale xi_c = -1 / log chi_c:
information about how two inputs differ survives ~xi_c layers, and networks train up to ~6 xi_c
layers (Schoenholz et al. 2017, Fig. 6). The length map's depth scale is xi_q = -1 / log q'(q*), with
q'(q*) = sigma_w^2 E[phi'(u)^2 + phi(u) phi''(u)] = sigma_w^2 E[u phi(u) phi'(u)] / q* (Stein's lemma,
no second derivative needed). Both diverge on the critical line chi_1 = 1 (``theory.critical_sw2``).

Without a finite fixed point q* > 0 there is no c* to settle on exponentially (``convergence``). At
sigma_b^2 = 0 below the critical line q_l -> 0, where a smooth phi is linear (tanh, elu, gelu, silu):
the map tends to c' = c and correlations freeze at what the first layers left (xi_c = inf, no c*). A
phi with a kink at 0 (relu, leaky_relu; selu as q -> 0) is positively homogeneous there, so the
normalised map is its kernel's at any q, with slope exactly 1 at c = 1: c_l -> 1 as a power law,
1 - c_l ~ 9 pi^2 / (2 l^2) for relu (its arc-cosine kernel: eps' = eps - (2 sqrt 2 / (3 pi)) eps^(3/2)),
not exponentially (xi_c = inf again). ReLU has no edge of chaos at sigma_b^2 > 0: q* is finite only for
sigma_w^2 < 2 (ordered), and beyond it q grows without bound and the power law returns.

Two-dimensional expectations: u_1 = sqrt(q) z_1, u_2 = sqrt(q) (c z_1 + sqrt(1 - c^2) z_2), composite
Gauss-Legendre rules in z_1 and, for each z_1, in z_2 on [-10, 10], with panel edges at each variable's
kink u = 0 and panels no wider than 1 / (2 sqrt(q)) (so the activation's own scale is resolved);
closed forms for relu (the arc-cosine kernel) and identity.
"""

from __future__ import annotations

import math
from functools import lru_cache

import numpy as np

from harness import theory
from harness.nn.activations import get_activation

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(8)
_Z_MAX = 10.0


def _panels(lo: np.ndarray, hi: np.ndarray, count: int) -> tuple[np.ndarray, np.ndarray]:
    """Composite Gauss-Legendre nodes and weights on [lo_i, hi_i] for each row i, ``count`` panels each."""
    edges = lo[:, None] + (hi - lo)[:, None] * np.linspace(0.0, 1.0, count + 1)
    a, b = edges[:, :-1, None], edges[:, 1:, None]
    nodes = (0.5 * (b - a) * _NODES + 0.5 * (a + b)).reshape(len(lo), -1)
    weights = (0.5 * (b - a) * _WEIGHTS).reshape(len(lo), -1)
    return nodes, weights * np.exp(-0.5 * nodes * nodes) / math.sqrt(2 * math.pi)


def _per_side(q: float) -> int:
    return max(20, int(math.ceil(_Z_MAX * 2.0 * max(1.0, math.sqrt(q)))))


@lru_cache(maxsize=32)
def _outer(q: float) -> tuple[np.ndarray, np.ndarray]:
    """The z_1 rule (panels meeting at 0), cached per q; the z_2 rule depends on c and is not."""
    half, zero = np.array([_Z_MAX]), np.zeros(1)
    z_neg, w_neg = _panels(-half, zero, _per_side(q))
    z_pos, w_pos = _panels(zero, half, _per_side(q))
    return np.concatenate([z_neg[0], z_pos[0]]), np.concatenate([w_neg[0], w_pos[0]])


def _pair(q: float, c: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """u_1 (n, 1), u_2 (n, m) and the weights (n, m) of the two-dimensional rule: the outer variable's
    panels meet at z_1 = 0, the inner one's, for each z_1, where u_2 = 0 (the kinks of relu-like
    activations fall on panel edges, where Gauss-Legendre needs no smoothness)."""
    z1, w1 = _outer(q)
    s = math.sqrt(max(0.0, 1.0 - c * c))
    kink = np.clip(-c * z1 / s, -_Z_MAX, _Z_MAX) if s > 0 else np.zeros_like(z1)
    left, wl = _panels(np.full_like(z1, -_Z_MAX), kink, _per_side(q))
    right, wr = _panels(kink, np.full_like(z1, _Z_MAX), _per_side(q))
    z2, w2 = np.concatenate([left, right], 1), np.concatenate([wl, wr], 1)
    r = math.sqrt(q)
    return r * z1[:, None], r * (c * z1[:, None] + s * z2), w1[:, None] * w2


def pair_moment(activation: str, q: float, c: float) -> float:
    """E[phi(u_1) phi(u_2)] for pre-activations of variance q and correlation c."""
    c = min(1.0, max(-1.0, c))
    if activation == "identity":
        return q * c
    if activation == "relu":  # Cho & Saul's arc-cosine kernel of degree 1
        return q / (2 * math.pi) * (math.sqrt(1 - c * c) + (math.pi - math.acos(c)) * c)
    fn = get_activation(activation)
    u1, u2, w = _pair(q, c)
    with np.errstate(all="ignore"):
        return float(np.sum(w * fn.f(u1) * fn.f(u2)))


def pair_slope_moment(activation: str, q: float, c: float) -> float:
    """E[phi'(u_1) phi'(u_2)] for pre-activations of variance q and correlation c."""
    c = min(1.0, max(-1.0, c))
    if activation == "identity":
        return 1.0
    if activation == "relu":  # P(u_1 > 0, u_2 > 0)
        return (math.pi - math.acos(c)) / (2 * math.pi)
    fn = get_activation(activation)
    u1, u2, w = _pair(q, c)
    with np.errstate(all="ignore"):
        return float(np.sum(w * fn.df(u1, fn.f(u1)) * fn.df(u2, fn.f(u2))))


def correlation_map(activation: str, sw2: float, sb2: float, c: float) -> float:
    """c' for two inputs at correlation c, both at the fixed point q*."""
    q = theory.fixed_point(activation, sw2, sb2)
    return (sw2 * pair_moment(activation, q, c) + sb2) / q


PIECEWISE_LINEAR = (
    "relu",
    "leaky_relu",
    "identity",
)  # phi(a u) = a phi(u) for a > 0: the normalised map is q's


def _slopes_at_zero(activation: str) -> tuple[float, float]:
    """phi'(0+) and phi'(0-): phi near 0 is the piecewise linear d+ u (u > 0), d- u (u < 0)."""
    fn = get_activation(activation)
    u = np.array([1e-200, -1e-200])
    d = fn.df(u, fn.f(u))
    return float(d[0]), float(d[1])


@lru_cache(maxsize=4096)
def convergence(activation: str, sw2: float, sb2: float) -> str:
    """How the correlation c_l of two inputs settles with depth:

    - ``"exponential"``: a stable fixed point c* of the correlation map at a finite q* > 0, approached
      like exp(-l / xi_c) (ordered: c* = 1; chaotic: c* < 1);
    - ``"power law"``: no finite q* > 0 (sigma_b^2 = 0, or q growing without bound) and phi piecewise
      linear with a kink at 0 (relu, leaky_relu; selu as q -> 0): the normalised map is the kink's
      kernel map, whose slope at c = 1 is 1, so 1 - c_l ~ C / l^2 (relu: C = 9 pi^2 / 2);
    - ``"frozen"``: q -> 0 and phi is linear there (tanh, elu, gelu, silu at sigma_b^2 = 0 below the
      critical line; identity): the map tends to c' = c, every correlation is a fixed point and c_l
      keeps what the first layers gave it;
    - ``"unknown"``: q grows without bound for a phi that is not piecewise linear (not modelled)."""
    q = theory.fixed_point(activation, sw2, sb2)
    if activation == "identity":
        return "exponential" if sb2 > 0 and math.isfinite(q) else "frozen"
    if activation in PIECEWISE_LINEAR:
        return "exponential" if sb2 > 0 and 0 < q < math.inf else "power law"
    if q == 0.0:
        d_plus, d_minus = _slopes_at_zero(activation)
        return "frozen" if math.isclose(d_plus, d_minus, rel_tol=1e-6) else "power law"
    return "unknown" if q == math.inf else "exponential"


POWER = {"frozen": 0.0, "power law": 2.0}  # 1 - c_l ~ l^-p


def c_power(activation: str, sw2: float, sb2: float) -> float:
    """p in 1 - c_l ~ l^-p where c_l does not settle exponentially (``convergence``): 2 for a power
    law, 0 where correlations freeze; NaN where xi_c is finite (or not modelled)."""
    return POWER.get(convergence(activation, sw2, sb2), float("nan"))


@lru_cache(maxsize=4096)
def c_star(activation: str, sw2: float, sb2: float) -> float:
    """The stable fixed point of the correlation map: 1 in the ordered phase and for a power law, below
    1 in the chaotic one (bisection of c' - c on [-1, 1 - delta]); NaN where correlations freeze (every
    c is fixed) or q* grows without bound for a phi that is not piecewise linear."""
    kind = convergence(activation, sw2, sb2)
    if kind != "exponential":
        return 1.0 if kind == "power law" else float("nan")
    if theory.chi1(activation, sw2, sb2) <= 1.0 or activation in PIECEWISE_LINEAR:
        return 1.0
    gap = lambda c: correlation_map(activation, sw2, sb2, c) - c  # noqa: E731
    hi = 1.0 - 1e-3  # resolves 1 - c* down to ~1e-7 (xi_c up to ~1e7 layers) next to the critical line
    while gap(hi) >= 0:  # just below 1 the map falls under the diagonal (its slope there is chi_1 > 1)
        hi = 1.0 - (1.0 - hi) / 10
        if 1.0 - hi < 1e-12:
            return 1.0  # at the edge of chaos, numerically
    lo = -1.0
    for _ in range(64):
        mid = 0.5 * (lo + hi)
        lo, hi = (mid, hi) if gap(mid) > 0 else (lo, mid)
        if hi - lo < 1e-14:
            break
    return 0.5 * (lo + hi)


def chi_c(activation: str, sw2: float, sb2: float) -> float:
    """Slope of the correlation map at c*: sigma_w^2 E[phi'(u_1) phi'(u_2)] (= chi_1 when c* = 1); 1
    for a power law (the kernel map's slope at c = 1) and where correlations freeze (c' = c)."""
    kind = convergence(activation, sw2, sb2)
    if kind in POWER:
        return 1.0
    c = c_star(activation, sw2, sb2)
    if not math.isfinite(c):
        return float("nan")
    if c == 1.0:
        return theory.chi1(activation, sw2, sb2)
    return sw2 * pair_slope_moment(activation, theory.fixed_point(activation, sw2, sb2), c)


def length_slope(activation: str, sw2: float, sb2: float) -> float:
    """Slope of the length map at q*: sigma_w^2 E[u phi(u) phi'(u)] / q*; at q* = 0 the slope of the
    piecewise linear limit, sigma_w^2 (phi'(0+)^2 + phi'(0-)^2) / 2."""
    if activation in theory.LINEAR_IN_Q:
        return sw2 * theory.LINEAR_IN_Q[activation]
    q = theory.fixed_point(activation, sw2, sb2)
    if q == 0.0 and sb2 == 0.0:
        d_plus, d_minus = _slopes_at_zero(activation)
        return sw2 * (d_plus**2 + d_minus**2) / 2
    if not (0 < q < math.inf):
        return float("nan")
    fn = get_activation(activation)
    return sw2 * theory.gauss_expect(lambda u: u * fn.f(u) * fn.df(u, fn.f(u)), q) / q


def depth(slope: float) -> float:
    """-1 / log(slope) for a map's slope in (0, 1] at a stable fixed point (inf at 1, NaN otherwise)."""
    if not math.isfinite(slope) or slope <= 0 or slope > 1 + 1e-12:
        return float("nan")
    return math.inf if slope >= 1 - 1e-15 else -1.0 / math.log(slope)


def xi_c(activation: str, sw2: float, sb2: float) -> float:
    """Correlation depth scale -1 / log chi_c (layers); inf on the critical line."""
    return depth(chi_c(activation, sw2, sb2))


def xi_q(activation: str, sw2: float, sb2: float) -> float:
    """Length depth scale -1 / log q'(q*) (layers)."""
    return depth(length_slope(activation, sw2, sb2))


def phase_summary(activation: str, sw2: float, sb2: float) -> dict[str, float]:
    """The numbers a run logs beside its measurements (``theory_*``): q*, chi_1, c*, chi_c, xi_q, xi_c
    and, where c_l does not settle exponentially, the power p of 1 - c_l ~ l^-p."""
    return {
        "theory_q_star": theory.fixed_point(activation, sw2, sb2),
        "theory_chi1": theory.chi1(activation, sw2, sb2),
        "theory_c_star": c_star(activation, sw2, sb2),
        "theory_chi_c": chi_c(activation, sw2, sb2),
        "theory_xi_q": xi_q(activation, sw2, sb2),
        "theory_xi_c": xi_c(activation, sw2, sb2),
        "theory_c_power": c_power(activation, sw2, sb2),
    }


def trajectory(
    activation: str, sw2: float, sb2: float, p_in: float, c_in: float, depth: int
) -> tuple[np.ndarray, np.ndarray]:
    """q_l and c_l, l = 1..depth, of two inputs with second moment ``p_in`` and correlation ``c_in``
    through a plain network (the length and correlation maps iterated from the input, not from q*):
    q_1 = sigma_w^2 p_in + sigma_b^2, c_1 = (sigma_w^2 p_in c_in + sigma_b^2) / q_1, then
    q' = sigma_w^2 E[phi(u)^2] + sigma_b^2 and c' = (sigma_w^2 E[phi(u_1) phi(u_2)] + sigma_b^2) / q'."""
    q, c = sw2 * p_in + sb2, (sw2 * p_in * c_in + sb2) / (sw2 * p_in + sb2)
    qs, cs = np.empty(depth), np.empty(depth)
    for l in range(depth):  # noqa: E741
        qs[l], cs[l] = q, c
        if not (0 < q < math.inf):
            qs[l + 1 :], cs[l + 1 :] = q, math.nan
            break
        new = sw2 * theory.second_moment(activation, q) + sb2
        c, q = (sw2 * pair_moment(activation, q, c) + sb2) / new, new
    return qs, cs

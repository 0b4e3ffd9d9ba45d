"""Mean-field theory of signal and gradient propagation, apart from the simulation code.

For a network whose layer l has weights of variance sigma_l^2 / fan_in and biases of variance
sigma_b^2 (Poole et al. 2016; Schoenholz et al. 2017):

    q_l   = sigma_l^2 E[phi(sqrt(q_{l-1}) z)^2] + sigma_b^2    (pre-activation variance; q_1 from the
                                                                  input's second moment)
    chi_l = sigma_l^2 E[phi'(sqrt(q_l) z)^2]                    (E||dL/dh_{l-1}||^2 = chi_l E||dL/dh_l||^2)

with z ~ N(0, 1). At the fixed point q* of the first map, chi_1 = chi(q*) decides the phase: ordered
(chi_1 < 1, gradients vanish towards the input), critical (chi_1 = 1), chaotic (chi_1 > 1, they
explode); 1 / |log chi_1| is the depth scale over which E||dL/dh||^2 changes by e (the correlation
depth scale xi_c that bounds trainability is ``harness.correlation``'s).

Residual blocks are ``harness.residual_theory``'s (the stream's mean and the overlaps that gradient
independence drops); batch-normalised networks ``harness.batchnorm_theory``'s; ``harness.prediction``
puts a network's prediction together.

Gaussian expectations E[f(sqrt(q) z)] are integrated in u = sqrt(q) z by composite Gauss-Legendre
quadrature on a geometric grid of panels with a breakpoint at the kink u = 0, which resolves both the
activation's own scale (~1) and the Gaussian's (sqrt(q)) for any q: accurate to ~1e-12 where plain
Gauss-Hermite with a few hundred nodes is not (for large q the integrand's structure falls between its
nodes).

Finite width (Hanin 2018; Hanin & Nica 2019): the mean-field values are means; one sample's squared
gradient norm fluctuates from draw to draw. Backpropagating through layer l multiplies ||dL/dh||^2 by
r_l = ||W_l^T (phi'(z_l) * g)||^2 / ||g||^2 with g the gradient at the layer's output, Gaussian with i.i.d.
entries at large width. Its two independent parts: the weights, a chi-square with n_{l-1} degrees of
freedom (Var log = psi'(n_{l-1} / 2), 0 for orthogonal weights), and the mask phi'(z_l)^2 weighting the
n_l entries of g (Var log ~ 3 (E[phi'^4] / E[phi'^2]^2 - 1) / n_l, the 3 from E[g^4] = 3 E[g^2]^2).
So Var[log ||dL/dh_l||^2 / ||dL/dh_D||^2] is the sum of both over layers l+1..D, growing like
beta = sum 1/n_l; for ReLU with i.i.d. weights each layer adds ~5 / n, Hanin's 5 beta.

The input-output Jacobian J = dh_D / dx: the mean of its squared singular values is prod_l chi_l, and
by free probability its normalised variance (var / mean^2) is the sum over layers of
v_W + E[phi'^4] / E[phi'^2]^2 - 1, with v_W = 1 for i.i.d. weights (Marchenko-Pastur) and 0 for
orthogonal ones (Pennington, Schoenholz & Ganguli 2017): dynamical isometry needs both terms small.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import numpy as np

from harness.nn.activations import LEAKY_SLOPE, get_activation
from harness.nn.init import init_std

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(24)
LINEAR_IN_Q = {"relu": 0.5, "identity": 1.0}  # E[phi(sqrt(q) z)^2] = c q, E[phi'^2] = c (closed forms)
# E[phi'^2] of the piecewise linear phi, for any q: chi_1 = sigma_w^2 times it
PIECEWISE_LINEAR_CHI = LINEAR_IN_Q | {"leaky_relu": (1 + LEAKY_SLOPE**2) / 2}


def _grid(q: float) -> np.ndarray:
    """Panel edges on [0, 14 sqrt(q) + 8]: fine near 0 at both scales, geometric outwards."""
    s = math.sqrt(q)
    lo = min(1.0, s) / 256.0
    hi = 14.0 * s + 8.0
    edges = np.geomspace(lo, hi, int(math.ceil(math.log2(hi / lo) * 2)) + 1)
    return np.concatenate([[0.0], edges])


def gauss_expect(f: Callable[[np.ndarray], np.ndarray], q: float) -> float:
    """E[f(sqrt(q) z)] for z ~ N(0, 1); ``f`` is vectorised. q = 0 gives f(0)."""
    if q <= 0:
        return float(f(np.zeros(1))[0])
    if not math.isfinite(q):
        return float("nan")
    edges = _grid(q)
    a, b = edges[:-1, None], edges[1:, None]
    u = (0.5 * (b - a) * _NODES + 0.5 * (a + b)).ravel()
    w = (0.5 * (b - a) * _WEIGHTS).ravel()
    density = np.exp(-0.5 * u * u / q) / math.sqrt(2 * math.pi * q)
    with np.errstate(all="ignore"):
        return float(np.sum(w * density * (f(u) + f(-u))))


def _phi2(activation: str) -> Callable[[np.ndarray], np.ndarray]:
    fn = get_activation(activation)
    return lambda u: fn.f(u) ** 2


def _dphi_power(activation: str, power: int) -> Callable[[np.ndarray], np.ndarray]:
    fn = get_activation(activation)
    return lambda u: fn.df(u, fn.f(u)) ** power


def second_moment(activation: str, q: float) -> float:
    """E[phi(sqrt(q) z)^2]."""
    if activation in LINEAR_IN_Q:
        return LINEAR_IN_Q[activation] * q
    return gauss_expect(_phi2(activation), q)


def slope_moment(activation: str, q: float, power: int = 2) -> float:
    """E[phi'(sqrt(q) z)^power] (power 2 for chi, 4 for the Jacobian's spread)."""
    if activation in LINEAR_IN_Q:
        return LINEAR_IN_Q[activation]  # relu: phi'^k = 1[z > 0]; identity: 1
    return gauss_expect(_dphi_power(activation, power), q)


def variance_map(activation: str, sw2: float, sb2: float, q: float) -> float:
    return sw2 * second_moment(activation, q) + sb2


@lru_cache(maxsize=4096)
def fixed_point(activation: str, sw2: float, sb2: float, q0: float = 1.0) -> float:
    """q* of the variance map reached from q0 (the stable one the network flows to): 0 when q decays
    to zero, inf when it grows without bound. Iterates, then bisects h(q) = map(q) - q in log q."""
    h = lambda q: variance_map(activation, sw2, sb2, q) - q  # noqa: E731
    q = q0
    for _ in range(100):
        new = variance_map(activation, sw2, sb2, q)
        if not math.isfinite(new) or new > 1e12:
            return math.inf
        if abs(new - q) <= 1e-13 * max(q, 1e-300):
            return new
        q = new
    if h(q) > 0:  # still rising: bracket above
        lo, hi = q, q
        while h(hi) > 0:
            hi *= 2.0
            if hi > 1e12:
                return math.inf
    else:  # still falling: bracket below, or the attractor is 0
        lo, hi = q, q
        while h(lo) < 0:
            lo /= 2.0
            if lo < 1e-14:
                return 0.0
    for _ in range(200):
        mid = math.sqrt(lo * hi)
        lo, hi = (mid, hi) if h(mid) > 0 else (lo, mid)
        if hi - lo <= 1e-14 * hi:
            break
    return math.sqrt(lo * hi)


def chi(activation: str, sw2: float, q: float) -> float:
    return sw2 * slope_moment(activation, q)


@lru_cache(maxsize=4096)
def chi1(activation: str, sw2: float, sb2: float) -> float:
    """chi at the fixed point (for relu and identity chi does not depend on q)."""
    if activation in LINEAR_IN_Q:
        return sw2 * LINEAR_IN_Q[activation]
    return chi(activation, sw2, fixed_point(activation, sw2, sb2))


def depth_scale(chi_1: float) -> float:
    """1 / |log chi_1|: layers over which E||dL/dh||^2 changes by a factor e, shrinking (ordered) or
    growing (chaotic); inf at chi_1 = 1. The depth that bounds trainability is the correlation scale
    ``harness.correlation.xi_c``, which equals this only in the ordered phase."""
    return math.inf if chi_1 == 1 else 1.0 / abs(math.log(chi_1))


def trigamma(x: float) -> float:
    """psi'(x) = Var[log G] for G ~ Gamma(x): Var[log chi^2_k] = psi'(k / 2). Recurrence up to x >= 12,
    then the asymptotic series (error < 1e-12)."""
    if x <= 0:
        return math.inf
    acc = 0.0
    while x < 12:
        acc += 1.0 / (x * x)
        x += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    return acc + inv + inv2 / 2 + inv * inv2 * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30)))


def psi_and_trigamma(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """psi(x) and psi'(x) elementwise (x > 0): recurrence up to x >= 12, then the asymptotic series
    (absolute error < 1e-10 for psi, 1e-12 for psi'), as ``trigamma``."""
    x = np.array(x, dtype=float)
    psi, tri = np.zeros_like(x), np.zeros_like(x)
    for _ in range(12):
        low = x < 12
        psi[low] -= 1.0 / x[low]
        tri[low] += 1.0 / (x[low] * x[low])
        x[low] += 1.0
    inv = 1.0 / x
    inv2 = inv * inv
    psi += np.log(x) - inv / 2 - inv2 * (1 / 12 - inv2 * (1 / 120 - inv2 / 252))
    tri += inv + inv2 / 2 + inv * inv2 * (1 / 6 - inv2 * (1 / 30 - inv2 * (1 / 42 - inv2 / 30)))
    return psi, tri


@lru_cache(maxsize=1024)
def critical_sw2(activation: str, sb2: float, lo: float = 1e-3, hi: float = 1e3) -> float:
    """sigma_w^2 with chi_1(sigma_w^2, sigma_b^2) = 1 at a fixed point q* (bisection in log sigma_w^2);
    NaN if none in range. ReLU-like phi (chi does not depend on q) have one only at sigma_b^2 = 0
    (2 for relu): with a bias q* = sigma_b^2 / (1 - sigma_w^2 E[phi'^2]) is finite only while chi_1 < 1,
    and at chi_1 = 1 q grows without bound (no fixed point, no edge of chaos)."""
    if activation in PIECEWISE_LINEAR_CHI:
        return 1.0 / PIECEWISE_LINEAR_CHI[activation] if sb2 == 0 else float("nan")
    f = lambda s: math.log(chi1(activation, s, sb2))  # noqa: E731
    flo, fhi = f(lo), f(hi)
    if not (flo < 0 < fhi):
        return float("nan")
    for _ in range(80):
        mid = math.sqrt(lo * hi)
        fm = f(mid)
        lo, hi = (mid, hi) if fm < 0 else (lo, mid)
    return math.sqrt(lo * hi)


def sigma_w2(scheme: str, fan_in: int, fan_out: int, scale: float) -> float:
    """The weight variance times fan_in for an init scheme and scale: uniform and orthogonal included."""
    return fan_in * init_std(scheme, fan_in, fan_out, scale) ** 2

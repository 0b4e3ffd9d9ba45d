"""The spectral density of J J^T for the input-output Jacobian J of a deep plain network at its fixed
point, by free probability (Pennington, Schoenholz & Ganguli 2017, "Resurrecting the sigmoid"; 2018,
"The emergence of spectral universality in deep networks").

With every layer at q*, J = D_L W_L ... D_1 W_1 with D = diag phi'(h) and the weights either Haar
orthogonal (times sigma_w) or Gaussian (variance sigma_w^2 / n). In the large-width limit at fixed depth
L the factors are free, so the S-transform of J J^T is the product of the layers': S_d(w)^L for
orthogonal weights (d = sigma_w^2 phi'(sqrt(q*) z)^2), S_d(w)^L (1 + w)^-L for Gaussian ones
(Marchenko-Pastur's S(w) = 1 / (1 + w)). With M(z) = E[lambda / (z - lambda)] and
M^{-1}(w) = (1 + w) / (w S(w)), write s = M_d^{-1}(w), so w = M_d(s) is an explicit integral and

    orthogonal:  z(s) = s^L (w / (1 + w))^(L-1),        Gaussian:  z(s) = s^L w^(L-1) (1 + w).

For each x the density is rho(x) = |Im w| / (pi x) at the root s of z(s) = x - i eta x (eta = 1e-9,
a Cauchy smoothing of relative width 1e-9), found by Newton's method on the L-th root of the equation
(log s + ((L - 1) / L) log(...) = log(z) / L, whose terms stay on their principal branches): the
root is followed at eta = 1e-3 from the top of the spectrum, where s is real, downwards, and polished at
each x.

This is the n -> infinity limit at fixed L. When depth nears width the finite-width spectrum departs
from it by an amount set by tau = L / n (products of many random matrices: a double-scaling limit).
"""

from __future__ import annotations

import math

import numpy as np

from harness.nn.activations import get_activation

_NODES, _WEIGHTS = np.polynomial.legendre.leggauss(64)


def layer_law(activation: str, sw2: float, q: float, panels: int = 80) -> tuple[np.ndarray, np.ndarray]:
    """Nodes d and weights of the law of d = sigma_w^2 phi'(sqrt(q) z)^2, z ~ N(0, 1) (on |z| <= 10)."""
    edges = np.linspace(-10.0, 10.0, panels + 1)
    a, b = edges[:-1, None], edges[1:, None]
    z = (0.5 * (b - a) * _NODES + 0.5 * (a + b)).ravel()
    w = (0.5 * (b - a) * _WEIGHTS).ravel() * np.exp(-0.5 * z * z) / math.sqrt(2 * math.pi)
    fn = get_activation(activation)
    u = math.sqrt(q) * z
    return sw2 * fn.df(u, fn.f(u)) ** 2, w / w.sum()


def _equation(
    s: complex, d: np.ndarray, p: np.ndarray, depth: int, gaussian: bool
) -> tuple[complex, complex, complex]:
    """(f(s), f'(s), w) of f(s) = log s + ((L - 1) / L) log(w / (1 + w)) [orthogonal] or
    log s + ((L - 1) / L) log w + log(1 + w) / L [Gaussian], w = M_d(s)."""
    r = 1.0 / (s - d)
    w = complex(np.sum(p * d * r))
    dw = complex(-np.sum(p * d * r * r))
    k = (depth - 1) / depth
    if gaussian:
        f = np.log(s) + k * np.log(w) + np.log(1 + w) / depth
        df = 1 / s + (k / w + 1 / (depth * (1 + w))) * dw
    else:
        f = np.log(s) + k * (np.log(w) - np.log(1 + w))
        df = 1 / s + k * (1 / w - 1 / (1 + w)) * dw
    return f, df, w


def density(
    activation: str,
    sw2: float,
    q: float,
    depth: int,
    x: np.ndarray,
    gaussian: bool = False,
    eta: float = 1e-9,
) -> np.ndarray:
    """rho(x) of the squared singular values of J at ``x`` (positive, any order): free probability, every
    layer at pre-activation variance ``q``; NaN where Newton's method did not converge."""
    d, p = layer_law(activation, sw2, q)
    out = np.full(len(x), np.nan)
    s = complex(2.0 * d.max() * (1 + 4.0 / depth) ** depth + 1.0)  # right of everything: real root region
    for i in np.argsort(x)[::-1]:  # from the top down
        s = _newton(s, np.log(x[i]) + np.log(complex(1.0, -1e-3)), d, p, depth, gaussian)  # the path
        if s is None:
            return out
        root = _newton(s, np.log(x[i]) + np.log(complex(1.0, -eta)), d, p, depth, gaussian)  # polished
        if root is not None:
            out[i] = abs(_equation(root, d, p, depth, gaussian)[2].imag) / (math.pi * x[i])
    return out


def _newton(s: complex, log_z: complex, d: np.ndarray, p: np.ndarray, depth: int, gaussian: bool):  # noqa: ANN202
    """The root of f(s) = log(z) / L from ``s`` (steps capped at half of |s|), or None."""
    target = log_z / depth
    for _ in range(200):
        f, df, _ = _equation(s, d, p, depth, gaussian)
        delta = (f - target) / df
        step = delta if abs(delta) < 0.5 * abs(s) else 0.5 * abs(s) * delta / abs(delta)
        s -= step
        if abs(step) < 1e-12 * abs(s):
            return s
    return None


def moments(activation: str, sw2: float, q: float, depth: int, gaussian: bool = False) -> tuple[float, float]:
    """Mean and variance / mean^2 of the squared singular values, in closed form (the density's check):
    (E d)^L and L (v_W + E[d^2] / E[d]^2 - 1)."""
    d, p = layer_law(activation, sw2, q)
    mean = float(np.sum(p * d))
    return mean**depth, depth * (float(gaussian) + float(np.sum(p * d * d)) / mean**2 - 1)

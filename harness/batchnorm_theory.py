"""Batch normalisation's gradient explosion at initialisation (Yang, Pennington, Rao, Sohl-Dickstein &
Schoenholz 2019, "A mean field theory of batch normalization"), for the engine's plain blocks
h_l = phi(BN(h_{l-1} W_l)) with BatchNorm over a batch of B samples (gamma = 1, beta = 0).

Mean field over the width at fixed B. For one unit, the batch's pre-activations z in R^B are Gaussian
with the batch Gram of the previous layer as covariance; BatchNorm maps them to
z_hat = sqrt(B) G z / |G z| with G = I - 11^T / B. Once that Gram is permutation-symmetric (one layer
suffices), G z is an isotropic Gaussian in the (B-1)-dimensional space orthogonal to 1, so z_hat is
uniform on the sphere of radius sqrt(B) there, whatever sigma_w: BatchNorm's fixed point is reached at
once and the weights' scale drops out. Backward, dL/dz = (sqrt(B) / |G z|) Q (phi'(z_hat) * dL/dy) with
Q = G - u u^T (u = z_hat / sqrt B), the projector orthogonal to 1 and u. With the backward weights
independent of the forward ones the batch x batch gradient Gram Pi maps to

    Pi' = kappa E[Q D Pi D Q],   kappa = B / ((B - 3) (E[phi(z_hat_a)^2] - E[phi(z_hat_a) phi(z_hat_b)]))

(D = diag phi'(z_hat), 1 / (B - 3) = E[1 / chi^2_{B-1}], the inverse radius). After one layer Pi is a
multiple of G, and every layer multiplies E||dL/dh||^2 by lambda = kappa E[tr(Q D G D Q)] / (B - 1).
For ReLU every expectation reduces to one- and two-coordinate marginals of the sphere (a pair's
correlation is -1 / (B - 1)), in closed form through the arc-cosine kernel and orthant probabilities:
lambda(B) decreases to pi / (pi - 1) = 1.4669 as B grows (1.590 at B = 16, 1.493 at 64, 1.473 at 256).
For B <= 3 the inverse radius has no mean and the second moment diverges.

The theory is a width -> infinity limit at fixed B: finite width adds O(1/n) per layer, and the batch
Gram's own spread (of relative size B / n) is not in it.
"""

from __future__ import annotations

import math

import numpy as np

MODELLED = ("relu",)  # activations with a closed form here


def _pair_kernel(rho: float) -> float:
    """E[relu(x) relu(y)] for unit-variance x, y of correlation rho (Cho & Saul's arc-cosine kernel)."""
    return (math.sqrt(1 - rho * rho) + (math.pi - math.acos(rho)) * rho) / (2 * math.pi)


def relu_factors(batch: int) -> tuple[float, float]:
    """For ReLU at batch B >= 4: (lambda, first), E||dL/dh_{l-1}||^2 / E||dL/dh_l||^2 between hidden
    layers and from the last hidden layer down (where the probe's gradient is still i.i.d. over the
    batch, Pi = I: ratio kappa (B - 2) / (2 B)). (inf, inf) for B <= 3."""
    if batch <= 3:
        return math.inf, math.inf
    b = float(batch)
    rho = -1.0 / (b - 1)  # two coordinates of a uniform point on the sphere orthogonal to 1
    kernel = _pair_kernel(rho)
    kappa = b / ((b - 3) * (0.5 - kernel))  # E[relu(z_hat)^2] = 1/2
    # E tr(Q D G D Q) = E[k (1 - 1/B) - S2 - (k - k^2 / B - S1^2) / B], k = #{z_hat_a > 0},
    # S2 = sum_+ u_a^2, S1 = sum_+ u_a (u = z_hat / sqrt B)
    e_k, e_s2 = b / 2, 0.5
    e_k2 = b / 2 + b * (b - 1) * (0.25 + math.asin(rho) / (2 * math.pi))
    e_s1_2 = 0.5 + b * (1 - 1 / b) * kernel  # sum_a E[u_a^2 1_+] + B (B - 1) E[u_a u_b 1_{++}]
    trace = e_k * (1 - 1 / b) - e_s2 - (e_k - e_k2 / b - e_s1_2) / b
    return kappa * trace / (b - 1), kappa * (b - 2) / (2 * b)


def grad_profile(activation: str, depth: int, batch: int, top: float) -> np.ndarray | None:
    """E||dL/dh_l||^2, l = 1..depth, from E||dL/dh_D||^2 = ``top`` (None where not modelled)."""
    if activation not in MODELLED:
        return None
    lam, first = relu_factors(batch)
    grad = np.full(depth, float(top))
    if depth > 1:
        grad[-2] = top * first
        grad[: depth - 2] = grad[-2] * lam ** np.arange(depth - 2, 0, -1)
    return grad

"""A network's theory, put together: ``predict`` gives E||dL/dh_l||^2 across layers, its rate, the
Jacobian's moments and the finite-width spread for a network as ``harness.nn.build_network`` builds it,
under the probe loss L = sum(y * v), v ~ N(0, 1) of shape (batch, output_dim).

- plain networks: mean-field theory (``harness.theory``), with free probability for the Jacobian's
  spread and the finite-width log-norm variance;
- residual networks: the stream's mean and its overlaps at finite width (``harness.residual_theory``);
- BatchNorm: Yang et al.'s batch-size dependent explosion for ReLU (``harness.batchnorm_theory``);
- anything else (LayerNorm, BatchNorm with another activation or with skips, residual widths that change
  after the first block): None, and a run says it has no theory instead of drawing a line.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

from harness import batchnorm_theory, residual_theory
from harness.nn.init import canonical_init
from harness.theory import chi1, psi_and_trigamma, second_moment, sigma_w2, slope_moment, trigamma

GAUSSIAN = ("he_normal", "xavier_normal", "lecun_normal")  # i.i.d. Gaussian weights


@dataclass
class Prediction:
    q: np.ndarray  # pre-activation variance per layer (of the branch's last layer, for residual blocks)
    chi: np.ndarray  # E||dh_{l-1}||^2 / E||dh_l||^2 per layer l = 1..D
    grad_h2: np.ndarray  # E||dL/dh_l||^2, l = 1..D
    rate: float  # least-squares slope of log E||dL/dh_l||^2 against l
    log_chi1: float  # log chi at the fixed point (plain networks; NaN otherwise)
    jacobian_mean: float  # mean squared singular value of dh_D/dx
    jacobian_rel_var: float  # variance / mean^2 of the squared singular values (plain networks)
    grad_h_logvar: np.ndarray  # Var[log(||dL/dh_l||^2 / ||dL/dh_D||^2)] of one sample at finite width


@lru_cache(maxsize=256)
def relu_mask_variance(n: int) -> float:
    """Var log of the share of ||dL/dh||^2 that a ReLU layer of width n passes back (its active units):
    Beta(K/2, (n - K)/2) with K ~ Bin(n, 1/2) active (K >= 1: a dead layer has no logarithm), so
    E[psi'(K/2)] - psi'(n/2) + Var[psi(K/2)] = 3/n + 33/(2 n^2) + O(1/n^3)."""
    k = np.arange(1, n + 1)
    log_choose = np.cumsum(np.log((n - k + 1) / k))  # log C(n, k), k = 1..n
    p = np.exp(log_choose - log_choose.max())
    p /= p.sum()
    psi, tri = psi_and_trigamma(k / 2)
    return float(p @ tri - trigamma(n / 2) + p @ psi**2 - (p @ psi) ** 2)


def _plain_layer(
    activation: str, init: str, scale: float, sb2: float, fan_in: int, fan_out: int, p: float
) -> tuple:
    """A plain layer: its q, chi, what it adds to the Jacobian's relative variance and to the
    finite-width log-norm variance, and the second moment it passes on.

    The log-norm variance of the layer's backward step dL/dh_{l-1} = W^T (phi'(z_l) * dL/dh_l), h the
    blocks' outputs: the weights' chi-square on its fan_in units, v_W psi'(fan_in / 2), and the share
    phi'^2 passes on over its fan_out units, 3 kurtosis / fan_out to leading order in 1/n. For ReLU with
    Gaussian weights and zero bias both are exact and the layers' factors independent (the weights
    split along each layer's input: a Gamma-Beta argument), so the sum is exact at any width."""
    sw2 = sigma_w2(init, fan_in, fan_out, scale)
    v_w = 0.0 if init == "orthogonal" else 1.0
    q = sw2 * p + sb2
    d1, d2 = slope_moment(activation, q, 2), slope_moment(activation, q, 4)
    kurtosis = d2 / d1**2 - 1 if d1 > 0 else math.inf
    exact = activation == "relu" and sb2 == 0 and init in GAUSSIAN
    mask = relu_mask_variance(fan_out) if exact else 3 * kurtosis / fan_out
    log_var = v_w * trigamma(fan_in / 2) + mask
    return q, sw2 * d1, v_w + kurtosis, log_var, second_moment(activation, q)


def _rate(grad: np.ndarray) -> float:
    with np.errstate(all="ignore"):
        logs = np.log(grad)
        return float(np.polyfit(np.arange(1, len(grad) + 1), logs, 1)[0]) if len(grad) > 1 else math.nan


def _plain(activation: str, dims: list[int], init: str, scale: float, sb2: float, top: float, p: float):  # noqa: ANN202
    depth = len(dims) - 1
    q, chis, log_var, rel_var = np.zeros(depth), np.zeros(depth), np.zeros(depth), 0.0
    for l in range(depth):  # noqa: E741
        q[l], chis[l], spread, log_var[l], p = _plain_layer(
            activation, init, scale, sb2, dims[l], dims[l + 1], p
        )
        rel_var += spread
    grad = np.zeros(depth)
    grad[-1] = top
    with np.errstate(over="ignore"):  # an exploding network's prediction overflows to inf: a result
        for l in range(depth - 1, 0, -1):  # noqa: E741
            grad[l - 1] = grad[l] * chis[l]
    log_chi1 = math.log(chi1(activation, sigma_w2(init, dims[-1], dims[-1], scale), sb2))
    spread = np.append(np.cumsum(log_var[:0:-1])[::-1], 0.0)  # layer l: the sum over l+1..D
    return Prediction(q, chis, grad, _rate(grad), log_chi1, float(np.prod(chis)), rel_var, spread)


def _residual(activation, dims, init, scale, sb2, alpha, block_layers, top, p):  # noqa: ANN001, ANN202
    if any(a != b for a, b in zip(dims[1:-1], dims[2:], strict=True)):
        return None  # projections after the first block: not modelled
    flow = residual_theory.stream(activation, dims, init, scale, sb2, alpha, block_layers, p)
    gain = residual_theory.energy_gain(flow, dims)
    below = residual_theory.jacobian_mean(flow, dims[0], p)  # E[e_D] from the input
    chis = np.append(below, gain[:-1]) / gain
    nan = np.full(len(gain), math.nan)
    return Prediction(flow.q, chis, top * gain, _rate(top * gain), math.nan, below, math.nan, nan)


def _batchnorm(activation: str, dims: list[int], batch: int, top: float):  # noqa: ANN202
    grad = batchnorm_theory.grad_profile(activation, len(dims) - 1, batch, top)
    if grad is None:
        return None
    depth = len(grad)
    chis = np.append(math.nan, grad[:-1] / grad[1:])
    nan = np.full(depth, math.nan)
    return Prediction(np.ones(depth), chis, grad, _rate(grad), math.nan, math.nan, math.nan, nan)


def predict(
    activation: str,
    widths: list[int],
    input_dim: int,
    init: str,
    init_scale: float,
    bias_std: float,
    *,
    skip: bool = False,
    alpha: float = 1.0,
    block_layers: int = 1,
    norm: str = "none",
    output_dim: int = 1,
    batch: int = 1,
    input_moment: float = 1.0,
) -> Prediction | None:
    """The prediction for a network as ``build_network`` builds it; None where nothing is modelled."""
    init = canonical_init(init)
    dims = [input_dim, *widths]
    top = batch * output_dim * sigma_w2(init, dims[-1], output_dim, init_scale)  # dh_D = v W_out^T
    if norm == "batch":
        return None if skip else _batchnorm(activation, dims, batch, top)
    if norm != "none":
        return None
    if skip:
        return _residual(
            activation, dims, init, init_scale, bias_std**2, alpha, block_layers, top, input_moment
        )
    return _plain(activation, dims, init, init_scale, bias_std**2, top, input_moment)

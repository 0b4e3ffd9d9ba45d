"""Elementwise activations phi and their derivatives phi'.

Each entry gives ``f(x)`` and ``df(x, y)`` (phi'(x), given y = phi(x) so that sigmoid and tanh reuse
their output). Both take and return arrays of the input's dtype. ``kinks`` lists the points where phi is
not twice differentiable: a central difference that straddles one is not a fair check, so the gradient
checker flags such entries instead of reporting a false alarm.

The same functions serve the engine (``Activation`` layer) and, later, mean-field theory.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

LEAKY_SLOPE = 0.01
SELU_ALPHA = 1.6732632423543772
SELU_SCALE = 1.0507009873554805
_GELU_C = math.sqrt(2.0 / math.pi)
_GELU_K = 0.044715


@dataclass(frozen=True)
class ActivationFn:
    """phi (``f``), phi' in terms of x and y = phi(x) (``df``), and phi's kinks."""

    name: str
    f: Callable[[np.ndarray], np.ndarray]
    df: Callable[[np.ndarray, np.ndarray], np.ndarray]
    kinks: tuple[float, ...] = ()


def _sigmoid(x: np.ndarray) -> np.ndarray:
    # 0.5 (1 + tanh(x/2)) never overflows, unlike 1 / (1 + exp(-x)).
    y = np.tanh(0.5 * x)
    y += 1.0
    y *= 0.5
    return y


def _step(x: np.ndarray) -> np.ndarray:
    """1[x > 0] in x's dtype, written once."""
    out = np.empty_like(x)
    np.greater(x, 0.0, out=out)
    return out


def _tanh_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """tanh' = 1 - y^2, with one array allocated."""
    d = y * y
    np.subtract(1.0, d, out=d)
    return d


def _sigmoid_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """sigmoid' = (1 - y) y, with one array allocated (y is cached: not written)."""
    d = 1.0 - y
    d *= y
    return d


def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    neg = np.expm1(np.minimum(x, 0.0))
    neg *= alpha
    return np.where(x > 0, x, neg)


def _gelu_parts(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """t = tanh(c (x + k x^3)) and x^2, shared by gelu's value and derivative."""
    x2 = x * x
    t = np.tanh(_GELU_C * x * (1.0 + _GELU_K * x2))
    return t, x2


def _gelu(x: np.ndarray) -> np.ndarray:
    t, _ = _gelu_parts(x)
    t += 1.0
    t *= 0.5 * x
    return t


def _gelu_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # d/dx [x/2 (1 + t)] = (1 + t)/2 + x/2 (1 - t^2) c (1 + 3k x^2)
    t, x2 = _gelu_parts(x)
    inner = _GELU_C * (1.0 + 3.0 * _GELU_K * x2)
    inner *= 0.5 * x
    inner *= 1.0 - t * t
    t += 1.0
    t *= 0.5
    t += inner
    return t


def _silu_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    # s (1 + x (1 - s))
    s = _sigmoid(x)
    d = 1.0 - s
    d *= x
    d += 1.0
    d *= s
    return d


# Named module-level functions, not lambdas: a network (and everything holding an activation) pickles,
# which joblib, Ray and a notebook user's copy.deepcopy / pickle need.
def _identity(x: np.ndarray) -> np.ndarray:
    return x


def _ones(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.ones_like(x)


def _relu(x: np.ndarray) -> np.ndarray:
    return np.maximum(x, 0.0)


def _relu_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _step(x)


def _leaky_relu(x: np.ndarray) -> np.ndarray:
    return np.where(x > 0, x, LEAKY_SLOPE * x)


def _leaky_relu_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(x > 0, 1.0, LEAKY_SLOPE).astype(x.dtype)


def _elu1(x: np.ndarray) -> np.ndarray:
    return _elu(x, 1.0)


def _elu1_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(x > 0, 1.0, y + 1.0)


def _selu(x: np.ndarray) -> np.ndarray:
    return SELU_SCALE * _elu(x, SELU_ALPHA)


def _selu_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return np.where(x > 0, SELU_SCALE, y + SELU_SCALE * SELU_ALPHA).astype(x.dtype)


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(0.0, x)


def _softplus_df(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    return _sigmoid(x)


def _silu(x: np.ndarray) -> np.ndarray:
    return x * _sigmoid(x)


ACTIVATIONS: dict[str, ActivationFn] = {
    fn.name: fn
    for fn in (
        ActivationFn("identity", _identity, _ones),
        ActivationFn("relu", _relu, _relu_df, kinks=(0.0,)),
        ActivationFn("leaky_relu", _leaky_relu, _leaky_relu_df, kinks=(0.0,)),
        # elu (alpha = 1) is C1 but not C2 at 0: still a kink for a central difference.
        ActivationFn("elu", _elu1, _elu1_df, kinks=(0.0,)),
        ActivationFn("selu", _selu, _selu_df, kinks=(0.0,)),
        # gelu in its tanh form (Hendrycks & Gimpel; PyTorch's approximate="tanh"): exact in NumPy.
        ActivationFn("gelu", _gelu, _gelu_df),
        ActivationFn("softplus", _softplus, _softplus_df),
        ActivationFn("silu", _silu, _silu_df),
        ActivationFn("sigmoid", _sigmoid, _sigmoid_df),
        ActivationFn("tanh", np.tanh, _tanh_df),
    )
}


def get_activation(name: str) -> ActivationFn:
    """The activation called ``name``; ValueError naming the allowed values otherwise."""
    try:
        return ACTIVATIONS[name]
    except (KeyError, TypeError):
        raise ValueError(f"activation: unknown value {name!r}; allowed: {', '.join(ACTIVATIONS)}") from None

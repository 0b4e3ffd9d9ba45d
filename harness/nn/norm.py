"""Normalisation layers: LayerNorm (over features, per sample) and BatchNorm (over the batch, per
feature, training-mode statistics).

x is (batch, features), or stacked (R, batch, features) with gamma, beta of shape (R, 1, features).
Both compute x_hat = (x - mean) / sqrt(var + eps) along their axis and y = gamma * x_hat + beta, with
gamma, beta of shape (features,). Backward along the same axis, with m entries averaged:

    dx_hat = dout * gamma
    dx     = (dx_hat - mean(dx_hat) - x_hat * mean(dx_hat * x_hat)) / sqrt(var + eps)
    dgamma = sum_batch(dout * x_hat),   dbeta = sum_batch(dout)
"""

from __future__ import annotations

import numpy as np

from harness.nn.layers import Layer


def _batch_sum_into(out: np.ndarray, a: np.ndarray) -> None:
    """``out`` = the sum of ``a`` (..., batch, n) over its batch axis, in place; ``out`` has its
    parameter's shape, (n,) or stacked (R, 1, n)."""
    np.sum(a, axis=-2, out=out.reshape(a.shape[:-2] + a.shape[-1:]))


def _normalize(x: np.ndarray, axis: int, eps: float) -> tuple[np.ndarray, np.ndarray]:
    """x_hat and 1/sqrt(var + eps) along ``axis`` (kept as a broadcastable dimension)."""
    xc = x - x.mean(axis=axis, keepdims=True)
    var = np.mean(xc * xc, axis=axis, keepdims=True)
    inv_std = 1.0 / np.sqrt(var + eps)
    xc *= inv_std
    return xc, inv_std


def _normalize_backward(dx_hat: np.ndarray, x_hat: np.ndarray, inv_std: np.ndarray, axis: int) -> np.ndarray:
    proj = np.mean(dx_hat * x_hat, axis=axis, keepdims=True)
    dx = dx_hat - dx_hat.mean(axis=axis, keepdims=True)
    dx -= x_hat * proj
    dx *= inv_std
    return dx


class _Normalization(Layer):
    """Shared body of LayerNorm and BatchNorm; ``axis`` is what they average over."""

    axis = -1

    def __init__(
        self, features: int, dtype: np.dtype | type = np.float64, eps: float = 1e-5, stack: int | None = None
    ) -> None:
        super().__init__()
        self.eps = eps
        shape = (features,) if stack is None else (stack, 1, features)
        self.params["gamma"] = np.ones(shape, dtype=dtype)
        self.params["beta"] = np.zeros(shape, dtype=dtype)
        self.grads["gamma"] = np.zeros(shape, dtype=dtype)
        self.grads["beta"] = np.zeros(shape, dtype=dtype)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x_hat, self.inv_std = _normalize(x, self.axis, self.eps)
        y = self.x_hat * self.params["gamma"]
        y += self.params["beta"]
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        _batch_sum_into(self.grads["gamma"], dout * self.x_hat)
        _batch_sum_into(self.grads["beta"], dout)
        return _normalize_backward(dout * self.params["gamma"], self.x_hat, self.inv_std, self.axis)


class LayerNorm(_Normalization):
    """Normalises each sample over its features."""

    name = "layernorm"
    axis = -1


class BatchNorm(_Normalization):
    """Normalises each feature over the batch, always with the batch's own statistics (training
    mode); needs batch >= 2."""

    name = "batchnorm"
    axis = -2

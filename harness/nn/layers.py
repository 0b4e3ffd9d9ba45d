"""Primitive layers: each has ``params`` and ``grads`` dicts with the same keys, ``forward(x)`` that
caches what ``backward`` needs, and ``backward(dout) -> dx`` that overwrites ``grads`` in place.

Shapes: x is (batch, fan_in), the output (batch, fan_out). Gradients are not accumulated: each backward
pass overwrites ``grads`` with the gradient of the last forward pass.

A stack of R networks (``build_network(spec, seeds=...)``) runs R independent draws at once: every array
gains a leading axis of length R (x (R, batch, fan_in), W (R, fan_in, fan_out), b (R, 1, fan_out)) and
every product is NumPy's stacked matmul, which computes each draw's slice with the same BLAS call as a
lone network: the numbers are bit for bit a lone network's.
"""

from __future__ import annotations

import numpy as np

from harness.nn.activations import get_activation


class Layer:
    """What every layer has. Containers (``Sequential``) record on each child after a pass:
    ``h_in``/``h_out`` (its forward input and output) and ``grad_in``/``grad_out``
    (dL/dh_in and dL/dh_out, the gradient flowing through it)."""

    name: str = "layer"

    def __init__(self) -> None:
        self.params: dict[str, np.ndarray] = {}
        self.grads: dict[str, np.ndarray] = {}
        self.h_in: np.ndarray | None = None
        self.h_out: np.ndarray | None = None
        self.grad_in: np.ndarray | None = None
        self.grad_out: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def backward(self, dout: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def sublayers(self) -> list[Layer]:
        """Direct children (none for a primitive layer)."""
        return []


class Linear(Layer):
    """y = x @ W + b, W of shape (fan_in, fan_out), b of shape (fan_out,) (stacked: a leading R axis).

    Backward: dW = x^T dout, db = sum_batch dout = 1^T dout, dx = dout W^T (all three by BLAS: the
    sum as a matrix-vector product with ones is 3-5x faster than a reduction over the batch axis).
    """

    name = "linear"

    def __init__(self, W: np.ndarray, b: np.ndarray | None = None, grads: dict | None = None) -> None:
        """``grads``: arrays to hold dW (and db), e.g. views into a network's flat buffer; else zeros."""
        super().__init__()
        grads = grads or {}
        self.params["W"] = W
        self.grads["W"] = grads["W"] if "W" in grads else np.zeros(W.shape, W.dtype)
        if b is not None:
            self.params["b"] = b
            self.grads["b"] = grads["b"] if "b" in grads else np.zeros(b.shape, b.dtype)
        self.x: np.ndarray | None = None
        self._ones = np.ones(0, W.dtype)  # 1 of the batch's length, for db

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        y = x @ self.params["W"]
        if "b" in self.params:
            y += self.params["b"]
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        W = self.params["W"]
        np.matmul(self.x.swapaxes(-1, -2), dout, out=self.grads["W"])
        if "b" in self.params:
            db = self.grads["b"]
            if self._ones.shape[0] != dout.shape[-2] or self._ones.dtype != dout.dtype:
                self._ones = np.ones(dout.shape[-2], dout.dtype)
            np.matmul(self._ones, dout, out=db if db.ndim == 1 else db.reshape(db.shape[0], -1))
        return dout @ W.swapaxes(-1, -2)


class Activation(Layer):
    """y = phi(x) elementwise; backward dx = dout * phi'(x). No parameters."""

    def __init__(self, name: str) -> None:
        super().__init__()
        self.fn = get_activation(name)
        self.name = name
        self.x: np.ndarray | None = None
        self.y: np.ndarray | None = None

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.x = x
        self.y = self.fn.f(x)
        return self.y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        dx = self.fn.df(self.x, self.y)
        dx *= dout
        return dx

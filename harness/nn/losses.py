"""Losses: ``forward(y, target) -> L`` (a float) caches what ``backward() -> dL/dy`` needs.

y is (batch, out). N below is the batch size. Stacked, y is (R, batch, out) for R independent draws
(targets (R, batch, ...), v (R, batch, out)): ``forward`` returns the R losses as an array, each bit
for bit the loss of its draw alone, and ``backward`` each draw's own gradient (the gradient of their sum).

- ``MSELoss``:       L = 1/N sum_i 1/2 ||y_i - t_i||^2           dL/dy = (y - t) / N
- ``SoftmaxCrossEntropy``: t integer labels (N,); p = softmax(y) computed stably (shifted by max),
                     L = -1/N sum_i log p_i[t_i]                 dL/dy = (p - onehot(t)) / N
- ``LinearProbe``:   L = sum(y * v) for a fixed v of y's shape   dL/dy = v
  (the standard loss for gradient flow at initialisation: the upstream gradient is v itself).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

LOSSES = ("mse", "cross_entropy", "probe")


def _per_draw(y: np.ndarray, value: Callable[[np.ndarray], float]) -> float | np.ndarray:
    """``value`` of y (batch, out), or of each draw's slice of a stack (R, batch, out)."""
    if y.ndim == 2:
        return value(y)
    return np.array([value(draw) for draw in y])


class MSELoss:
    name = "mse"

    def forward(self, y: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        if target.shape != y.shape:
            raise ValueError(f"target: expected shape {y.shape} for mse, got {target.shape}")
        self.diff = y - target
        return _per_draw(self.diff, lambda d: 0.5 * float(np.vdot(d, d)) / d.shape[0])

    def backward(self) -> np.ndarray:
        return self.diff / self.diff.shape[-2]


class SoftmaxCrossEntropy:
    name = "cross_entropy"

    def forward(self, y: np.ndarray, target: np.ndarray) -> float | np.ndarray:
        target = np.asarray(target)
        if target.shape != y.shape[:-1] or not np.issubdtype(target.dtype, np.integer):
            raise ValueError(
                f"target: expected integer labels of shape {y.shape[:-1]}, got {target.dtype} {target.shape}"
            )
        if target.size and (target.min() < 0 or target.max() >= y.shape[-1]):
            raise ValueError(f"target: labels must lie in [0, {y.shape[-1] - 1}]")
        z = y - y.max(axis=-1, keepdims=True)
        log_norm = np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
        z -= log_norm  # log-probabilities
        self.target = target
        picked = np.take_along_axis(z, target[..., None], axis=-1)[..., 0]  # log p_i[t_i]: (..., batch)
        loss = -float(np.mean(picked)) if picked.ndim == 1 else -np.array([float(np.mean(p)) for p in picked])
        np.exp(z, out=z)  # probabilities, kept for backward
        self.probs = z
        return loss

    def backward(self) -> np.ndarray:
        d = self.probs.copy()
        rows = d.reshape(-1, d.shape[-1])  # a view: one row per sample (of every draw)
        rows[np.arange(self.target.size), self.target.ravel()] -= 1.0
        d /= d.shape[-2]
        return d


class LinearProbe:
    """L = sum(y * v) with a fixed direction v (dL/dy = v). ``target`` is ignored."""

    name = "probe"

    def __init__(self, v: np.ndarray) -> None:
        self.v = v

    @classmethod
    def random(
        cls, shape: tuple[int, int], rng: np.random.Generator, dtype: np.dtype | type = np.float64
    ) -> LinearProbe:
        """v with i.i.d. N(0, 1) entries."""
        return cls(rng.standard_normal(shape).astype(dtype, copy=False))

    def forward(self, y: np.ndarray, target: np.ndarray | None = None) -> float | np.ndarray:
        if y.shape != self.v.shape:
            raise ValueError(f"y: the probe's v has shape {self.v.shape}, got {y.shape}")
        if y.ndim == 2:
            return float(np.vdot(y, self.v))
        return np.array([float(np.vdot(draw, v)) for draw, v in zip(y, self.v, strict=True)])

    def backward(self) -> np.ndarray:
        return self.v


def make_loss(
    name: str,
    shape: tuple[int, int] | None = None,
    rng: np.random.Generator | None = None,
    dtype: np.dtype | type = np.float64,
) -> MSELoss | SoftmaxCrossEntropy | LinearProbe:
    """A loss by name; ``probe`` needs the output ``shape`` and a ``rng`` to draw v."""
    if name == "mse":
        return MSELoss()
    if name == "cross_entropy":
        return SoftmaxCrossEntropy()
    if name == "probe":
        if shape is None or rng is None:
            raise ValueError("loss: 'probe' needs the output shape and a Generator to draw v")
        return LinearProbe.random(shape, rng, dtype)
    raise ValueError(f"loss: unknown value {name!r}; allowed: {', '.join(LOSSES)}")

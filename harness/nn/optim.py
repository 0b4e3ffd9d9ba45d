"""Optimisers over (name, param, grad) triples, e.g. ``Network.parameters()``; updates are in place.

- ``SGD(lr, momentum=0)``: v = momentum * v + g;  p -= lr * v   (plain SGD when momentum = 0)
- ``Adam(lr, beta1, beta2, eps)``: m = b1 m + (1-b1) g; s = b2 s + (1-b2) g^2;
  p -= lr * (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)
- ``clip_norm``: before the update, all gradients are scaled by min(1, clip_norm / ||g||), ||g|` the
  global norm over every gradient; ``step()`` returns ||g|| before clipping.
"""

from __future__ import annotations

import math

import numpy as np

Triples = list[tuple[str, np.ndarray, np.ndarray]]
OPTIMIZERS = ("sgd", "momentum", "adam")


def global_grad_norm(params: Triples) -> float:
    """sqrt(sum over all gradients of their squared entries)."""
    return math.sqrt(sum(float(np.vdot(g, g)) for _, _, g in params))


def clip_grad_norm(params: Triples, max_norm: float) -> float:
    """Scale all gradients in place so their global norm is at most ``max_norm``; return the norm
    before clipping."""
    norm = global_grad_norm(params)
    if math.isfinite(norm) and norm > max_norm:
        scale = max_norm / norm
        for _, _, g in params:
            g *= scale
    return norm


class _Optimizer:
    def __init__(self, params: Triples, lr: float, clip_norm: float | None) -> None:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr: must be a finite number > 0, got {lr!r}")
        if clip_norm is not None and not (math.isfinite(clip_norm) and clip_norm > 0):
            raise ValueError(f"clip_norm: must be null or a finite number > 0, got {clip_norm!r}")
        self.params = params
        self.lr = lr
        self.clip_norm = clip_norm

    def step(self) -> float:
        """Apply one update from the current gradients; return their global norm (pre-clipping)."""
        if self.clip_norm is None:
            norm = global_grad_norm(self.params)
        else:
            norm = clip_grad_norm(self.params, self.clip_norm)
        self._update()
        return norm

    def _update(self) -> None:
        raise NotImplementedError


class SGD(_Optimizer):
    def __init__(
        self, params: Triples, lr: float = 0.01, momentum: float = 0.0, clip_norm: float | None = None
    ) -> None:
        super().__init__(params, lr, clip_norm)
        if not 0.0 <= momentum < 1.0:
            raise ValueError(f"momentum: must be in [0, 1), got {momentum!r}")
        self.momentum = momentum
        self.velocity = [np.zeros_like(p) for _, p, _ in params] if momentum else []

    def _update(self) -> None:
        if not self.momentum:
            for _, p, g in self.params:
                p -= self.lr * g
            return
        for (_, p, g), v in zip(self.params, self.velocity, strict=True):
            v *= self.momentum
            v += g
            p -= self.lr * v


class Adam(_Optimizer):
    def __init__(
        self,
        params: Triples,
        lr: float = 1e-3,
        beta1: float = 0.9,
        beta2: float = 0.999,
        eps: float = 1e-8,
        clip_norm: float | None = None,
    ) -> None:
        super().__init__(params, lr, clip_norm)
        for name, beta in (("beta1", beta1), ("beta2", beta2)):
            if not 0.0 <= beta < 1.0:
                raise ValueError(f"{name}: must be in [0, 1), got {beta!r}")
        self.beta1, self.beta2, self.eps = beta1, beta2, eps
        self.m = [np.zeros_like(p) for _, p, _ in params]
        self.s = [np.zeros_like(p) for _, p, _ in params]
        self.t = 0

    def _update(self) -> None:
        self.t += 1
        step = self.lr * math.sqrt(1.0 - self.beta2**self.t) / (1.0 - self.beta1**self.t)
        eps_hat = self.eps * math.sqrt(1.0 - self.beta2**self.t)
        for (_, p, g), m, s in zip(self.params, self.m, self.s, strict=True):
            m *= self.beta1
            m += (1.0 - self.beta1) * g
            s *= self.beta2
            s += (1.0 - self.beta2) * (g * g)
            denom = np.sqrt(s)
            denom += eps_hat
            np.divide(m, denom, out=denom)
            denom *= step
            p -= denom


def make_optimizer(name: str, params: Triples, lr: float, **kwargs: float) -> _Optimizer:
    """``sgd`` | ``momentum`` (SGD with momentum, default 0.9) | ``adam``."""
    if name == "sgd":
        return SGD(params, lr, **kwargs)
    if name == "momentum":
        kwargs.setdefault("momentum", 0.9)
        return SGD(params, lr, **kwargs)
    if name == "adam":
        return Adam(params, lr, **kwargs)
    raise ValueError(f"optim: unknown value {name!r}; allowed: {', '.join(OPTIMIZERS)}")

"""Optimisers over (name, param, grad) triples, e.g. ``Network.parameters()``; updates are in place.

- ``SGD(lr, momentum=0)``: v = momentum * v + g;  p -= lr * v   (plain SGD when momentum = 0)
- ``Adam(lr, beta1, beta2, eps)``: m = b1 m + (1-b1) g; s = b2 s + (1-b2) g^2;
  p -= lr * (m / (1 - b1^t)) / (sqrt(s / (1 - b2^t)) + eps)
- ``clip_norm``: before the update, all gradients are scaled by min(1, clip_norm / ||g||), ||g|| the
  global norm over every gradient; ``step()`` then returns ||g|| before clipping (else None).

A ``Network`` keeps all parameters in one buffer and all gradients in another; an optimiser given its
``parameters()`` updates the whole buffer with one operation instead of looping over arrays.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

Triples = list[tuple[str, np.ndarray, np.ndarray]]
BLOCK = 2**18  # entries per update block (2 MB in float64): the scratch's size, in cache
OPTIMIZERS = ("sgd", "momentum", "adam")


def flat_base(arrays: list[np.ndarray]) -> np.ndarray | None:
    """The 1-D buffer that ``arrays`` tile exactly, in order (as ``Network`` lays out its parameters
    and gradients), or None: then one operation on the buffer does the work of a loop over arrays."""
    base = arrays[0].base if arrays else None
    if base is None or base.ndim != 1 or not base.flags.c_contiguous:
        return None
    start = base.__array_interface__["data"][0]
    offset = 0
    for a in arrays:
        if a.base is not base or a.__array_interface__["data"][0] != start + offset * a.itemsize:
            return None
        offset += a.size
    return base if offset == base.size else None


def _gradients(params: Triples) -> list[np.ndarray]:
    """The gradient arrays of ``params``, or the one buffer they tile (a Network's ``flat_grads``)."""
    grads = [g for _, _, g in params]
    flat = flat_base(grads)
    return [flat] if flat is not None else grads


def _clip(grads: list[np.ndarray], max_norm: float | None) -> float:
    """The global norm of ``grads``; with ``max_norm``, scale them in place to at most that."""
    norm = math.sqrt(sum(float(np.vdot(g, g)) for g in grads))
    if max_norm is not None and math.isfinite(norm) and norm > max_norm:
        for g in grads:
            g *= max_norm / norm
    return norm


def global_grad_norm(params: Triples) -> float:
    """sqrt(sum over all gradients of their squared entries)."""
    return _clip(_gradients(params), None)


def clip_grad_norm(params: Triples, max_norm: float) -> float:
    """Scale all gradients in place so their global norm is at most ``max_norm``; return the norm
    before clipping."""
    return _clip(_gradients(params), max_norm)


class _Optimizer:
    def __init__(self, params: Triples, lr: float, clip_norm: float | None) -> None:
        if not (isinstance(lr, int | float) and math.isfinite(lr) and lr > 0):
            raise ValueError(f"lr: must be a finite number > 0, got {lr!r}")
        if clip_norm is not None and not (math.isfinite(clip_norm) and clip_norm > 0):
            raise ValueError(f"clip_norm: must be null or a finite number > 0, got {clip_norm!r}")
        self.params = params
        self.lr = lr
        self.clip_norm = clip_norm
        # one (param, grad) pair for the whole network when it keeps them in flat buffers
        flat_p, flat_g = flat_base([p for _, p, _ in params]), flat_base([g for _, _, g in params])
        self.pairs = (
            [(flat_p, flat_g)]
            if flat_p is not None and flat_g is not None
            else [(p, g) for _, p, g in params]
        )
        # updates run over blocks of at most BLOCK entries: a scratch of one block, not of the network
        self.scratch = np.empty(min(BLOCK, max(p.size for p, _ in self.pairs)), self.pairs[0][0].dtype)

    def blocks(self, *state: list[np.ndarray]) -> Iterator[tuple[np.ndarray, ...]]:
        """(param, grad, *state, scratch) over consecutive blocks of every pair, flat views (the update
        is elementwise: blocks give the same numbers as whole arrays)."""
        for i, (p, g) in enumerate(self.pairs):
            arrays = [a.reshape(-1) for a in (p, g, *(s[i] for s in state))]
            for start in range(0, p.size, BLOCK):
                stop = min(start + BLOCK, p.size)
                yield (*(a[start:stop] for a in arrays), self.scratch[: stop - start])

    def step(self) -> float | None:
        """Apply one update from the current gradients. With ``clip_norm``, clip first and return the
        global gradient norm before clipping; without, return None (the norm costs a pass over every
        gradient: ``global_grad_norm`` computes it on demand)."""
        norm = None if self.clip_norm is None else _clip([g for _, g in self.pairs], self.clip_norm)
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
        self.velocity = [np.zeros_like(p) for p, _ in self.pairs] if momentum else []

    def _update(self) -> None:
        for p, g, *v, tmp in self.blocks(*([self.velocity] if self.momentum else [])):
            if self.momentum:
                v[0] *= self.momentum
                v[0] += g
                g = v[0]
            step = np.multiply(g, self.lr, out=tmp)
            p -= step


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
        self.m = [np.zeros_like(p) for p, _ in self.pairs]
        self.s = [np.zeros_like(p) for p, _ in self.pairs]
        self.t = 0

    def _update(self) -> None:
        self.t += 1
        step = self.lr * math.sqrt(1.0 - self.beta2**self.t) / (1.0 - self.beta1**self.t)
        eps_hat = self.eps * math.sqrt(1.0 - self.beta2**self.t)
        for p, g, m, s, tmp in self.blocks(self.m, self.s):
            m *= self.beta1
            m += np.multiply(g, 1.0 - self.beta1, out=tmp)
            s *= self.beta2
            np.multiply(g, g, out=tmp)
            tmp *= 1.0 - self.beta2
            s += tmp
            np.sqrt(s, out=tmp)
            tmp += eps_hat
            np.divide(m, tmp, out=tmp)
            tmp *= step
            p -= tmp


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

"""Central differences against analytic gradients, row by row: the engine of ``harness.gradcheck``.

A ``Problem`` is a scalar function of some arrays (perturbed in place) and its analytic gradient;
``run_entries`` and ``run_directional`` compare the two per entry or along random directions, retry a
step that straddles a kink at a step ten times smaller, and give one ``CheckRow`` per tensor, per layer
(and for directions, over everything). ``harness.gradcheck``'s docstring gives the method and the
error measures; this module holds no policy (thresholds, dtypes), only the arithmetic.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from harness.nn.layers import Activation, Layer

MAX_RETRIES = 30  # a straddled kink: retry at step / 10, down to eps * 1e-30
SHRINK = 10.0


@dataclass
class CheckRow:
    """One tensor, one layer, or all tensors ("all")."""

    layer: str
    tensor: str  # a param key, "x" for the input, or "*" for a whole layer / everything
    size: int  # entries in the tensor(s)
    checked: int  # entries (entries mode) or directions (directional mode) compared
    kinks: int  # attempts whose +-step straddled a kink (each retried at a step ten times smaller)
    rel_error: float
    max_rel_error: float
    passed: bool
    noise: bool = False  # passed only because a - n is below the rounding floor


@dataclass
class Problem:
    """A scalar function of some arrays, perturbed in place, and its analytic gradient."""

    loss: Callable[[], float]
    tensors: list[tuple[str, str, np.ndarray]]  # (layer, tensor name, array)
    analytic: list[np.ndarray]
    signature: Callable[[], bytes] | None = None  # which side of each kink, for the last pass
    loss_at: Callable[[str], float] | None = None  # the loss when only this layer's tensors moved

    def loss_of(self, layer: str) -> float:
        """loss() with only ``layer``'s tensors perturbed: a partial pass where the model allows."""
        return self.loss_at(layer) if self.loss_at is not None else self.loss()


def _errors(a: np.ndarray, n: np.ndarray) -> tuple[float, float]:
    diff = np.abs(a - n)
    denom = np.linalg.norm(a) + np.linalg.norm(n)
    rel = float(np.linalg.norm(diff) / denom) if denom > 0 else 0.0
    elem = float(np.max(diff / np.maximum(1e-8, np.abs(a) + np.abs(n)))) if a.size else 0.0
    return rel, elem


def _row(layer, tensor, size, a, n, kinks, threshold, floors, lost=0) -> CheckRow:
    """``floors``: each comparison's rounding floor (its own step's). ``lost``: entries or directions
    whose step, shrunk to clear a kink, fell below what the dtype can add to the tensor. A row that
    misses the threshold is unresolved (``noise``) only if every difference a - n lies within its own
    floor (root-mean-square of (a - n) / floor below 1): one tiny step cannot excuse the others. A row
    with nothing to compare because of kinks or rounding is unresolved; with nothing at all, it fails."""
    a, n = np.asarray(a, float), np.asarray(n, float)
    rel, elem = _errors(a, n)
    with np.errstate(divide="ignore", invalid="ignore"):  # a zero loss has a zero floor: never within
        within = bool(np.sqrt(np.mean(((a - n) / np.asarray(floors, float)) ** 2)) < 1.0) if a.size else False
    noise = bool(not rel < threshold and within) or (a.size == 0 and (lost > 0 or kinks > 0))
    ok = (bool(rel < threshold) or noise) and (a.size > 0 or noise)  # NaN fails; so does nothing compared
    return CheckRow(layer, tensor, size, len(a), kinks, rel, elem, ok, noise)


def _floor(loss0: float, eps: float) -> float:
    """Rounding floor of a central difference: 100 ulp of L over the step."""
    return 100.0 * np.finfo(np.float64).eps * abs(loss0) / eps


def kinked(model: Layer) -> list[Activation]:
    """Every activation with kinks inside ``model``, in forward order."""
    if isinstance(model, Activation):
        return [model] if model.fn.kinks else []
    return [a for child in model.sublayers() for a in kinked(child)]


def sides(acts: list[Activation]) -> bytes:
    """For the last forward pass, the side of every kink of every activation in ``acts``."""
    return b"".join(np.packbits(a.x > k).tobytes() for a in acts for k in a.fn.kinks)


def kink_signature(model: Layer) -> Callable[[], bytes] | None:
    """A function giving, for the last forward pass, the side of every kink of every activation."""
    acts = kinked(model)
    return (lambda: sides(acts)) if acts else None


def _signature(p: Problem) -> bytes | None:
    return p.signature() if p.signature else None


def _entry(p: Problem, layer: str, flat: np.ndarray, i: int, eps: float, base: bytes | None) -> tuple:
    """One entry's central difference: (analytic index or None, numeric, floor step, kinks, lost,
    passes); None when every step straddled a kink or rounding left nothing to compare."""
    orig, step, kinks, passes = flat[i], eps, 0, 0
    for _ in range(MAX_RETRIES + 1):
        flat[i] = orig + step
        up, lp = float(flat[i]), p.loss_of(layer)
        sig_p = _signature(p)
        flat[i] = orig - step
        down, lm = float(flat[i]), p.loss_of(layer)
        sig_m = _signature(p)
        flat[i] = orig
        passes += 2
        if base is None or (sig_p == base and sig_m == base):
            break
        kinks += 1
        step /= SHRINK
        if float(orig + step) == float(orig - step):  # below the entry's resolution
            break
    else:
        return None, kinks, 0, passes  # every step straddled a kink: this entry is not compared
    if up == down or float(orig + step) == float(orig - step):  # the loop stopped here
        return None, kinks, 1, passes
    return ((lp - lm) / (up - down), (up - down) / 2), kinks, 0, passes


def run_entries(p: Problem, eps: float, entries: int | None, rng, threshold) -> tuple[list, int]:
    """Per-entry central differences; rows per tensor and per layer, and the forward-pass count."""
    loss0 = p.loss()  # one unperturbed pass: also the reference side of every kink
    base = _signature(p)
    passes = 1
    per_tensor = []
    for (layer, name, arr), grad in zip(p.tensors, p.analytic, strict=True):
        if not arr.flags.c_contiguous:
            raise ValueError(f"{layer}.{name}: gradcheck perturbs arrays in place; make it contiguous")
        flat = arr.reshape(-1)  # a view, since arr is contiguous
        idx = np.arange(flat.size)
        if entries is not None and entries < flat.size:
            idx = np.sort(rng.choice(flat.size, size=entries, replace=False))
        a, n, floors, kinks, lost = [], [], [], 0, 0
        for i in idx:
            found, k, gone, cost = _entry(p, layer, flat, i, eps, base)
            kinks, lost, passes = kinks + k, lost + gone, passes + cost
            if found is not None:
                a.append(grad.reshape(-1)[i])
                n.append(found[0])
                floors.append(_floor(loss0, found[1]))
        per_tensor.append((layer, name, flat.size, np.array(a), np.array(n), kinks, np.array(floors), lost))
    rows = [_row(*t[:6], threshold, *t[6:]) for t in per_tensor]
    for layer in dict.fromkeys(t[0] for t in per_tensor):
        mine = [t for t in per_tensor if t[0] == layer]
        a = np.concatenate([t[3] for t in mine])
        n = np.concatenate([t[4] for t in mine])
        floors = np.concatenate([t[6] for t in mine])
        size, kinks, lost = sum(t[2] for t in mine), sum(t[5] for t in mine), sum(t[7] for t in mine)
        rows.append(_row(layer, "*", size, a, n, kinks, threshold, floors, lost))
    return rows, passes


def _groups(p: Problem) -> list[tuple[str, str, list[int]]]:
    """What a direction moves: everything ("all"), each layer's tensors, each tensor alone."""
    groups: list[tuple[str, str, list[int]]] = [("all", "*", list(range(len(p.tensors))))]
    for layer in dict.fromkeys(t[0] for t in p.tensors):
        members = [k for k, t in enumerate(p.tensors) if t[0] == layer]
        groups.append((layer, "*", members))
        groups += [(layer, p.tensors[k][1], [k]) for k in members]
    return groups


def _along(p: Problem, originals: list, members: list[int], u: list, step: float) -> tuple[float, list]:
    """The loss at x + step u, and the perturbation as stored (rounded to the dtype)."""
    for k, uk in zip(members, u, strict=True):
        np.add(originals[k], step * uk, out=p.tensors[k][2], casting="unsafe")
    moved = [p.tensors[k][2] - originals[k] for k in members]
    layers = {p.tensors[k][0] for k in members}
    value = p.loss_of(layers.pop()) if len(layers) == 1 else p.loss()
    for k in members:
        p.tensors[k][2][...] = originals[k]
    return value, moved


def _direction(
    p: Problem, originals: list, members: list[int], u: list, eps: float, base: bytes | None
) -> tuple:
    """One direction's comparison: ((analytic, numeric, step) or None, kinks, lost, passes)."""
    step, kinks, passes = eps, 0, 0
    for _ in range(MAX_RETRIES + 1):
        lp, plus = _along(p, originals, members, u, step)
        sig_p = _signature(p)
        lm, minus = _along(p, originals, members, u, -step)
        sig_m = _signature(p)
        passes += 2
        stored = np.sqrt(sum(float(np.vdot(d1 - d2, d1 - d2)) for d1, d2 in zip(plus, minus, strict=True)))
        if stored < step:  # less than half of x +- step u survived rounding: no test
            break
        if base is None or (sig_p == base and sig_m == base):
            break
        kinks += 1
        step /= SHRINK
    else:
        return None, kinks, 0, passes  # every step straddled a kink: this direction is not compared
    if stored < step:  # the loop stopped here
        return None, kinks, 1, passes
    # <g, x+ - x-> / 2 step: the analytic side of the difference actually taken
    a = sum(float(np.vdot(p.analytic[k], d1 - d2)) for k, d1, d2 in zip(members, plus, minus, strict=True))
    return (a / (2 * step), (lp - lm) / (2 * step), step), kinks, 0, passes


def run_directional(p: Problem, eps: float, directions: int, rng, threshold) -> tuple[list, int]:
    """Directional derivatives for "all", each layer, and each tensor."""
    loss0 = p.loss()  # one unperturbed pass: also the reference side of every kink
    base = _signature(p)
    originals = [arr.copy() for _, _, arr in p.tensors]
    passes, rows = 1, []
    for layer, tensor, members in _groups(p):
        a, n, floors, kinks, lost = [], [], [], 0, 0
        for _ in range(directions):
            u = [rng.standard_normal(originals[k].shape) for k in members]
            norm = np.sqrt(sum(float(np.vdot(x, x)) for x in u))
            found, k, gone, cost = _direction(p, originals, members, [x / norm for x in u], eps, base)
            kinks, lost, passes = kinks + k, lost + gone, passes + cost
            if found is not None:
                a.append(found[0])
                n.append(found[1])
                floors.append(_floor(loss0, found[2]))
        size = sum(originals[k].size for k in members)
        rows.append(_row(layer, tensor, size, np.array(a), np.array(n), kinks, threshold, floors, lost))
    return rows, passes

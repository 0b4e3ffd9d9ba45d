"""Gradient checking: analytic gradients (one backward pass) against central differences.

The step ``eps`` defaults to 6e-6, about eps_machine^(1/3): the step that balances a central
difference's rounding error (~eps_machine |L| / eps) against its truncation error
(~eps^2 |L'''| / 6).

Two modes:

- ``entries``: per entry, n = (L(theta + eps) - L(theta - eps)) / 2 eps, for every entry of every
  parameter tensor and the input, or a seeded random sample of ``entries`` of each (2 forward passes
  per entry: the 2n passes that backpropagation saves; in a network, a pass perturbing layer l runs
  from layer l on, since the layers before it are unchanged).
- ``directional``: for random unit directions u, <grad L, u> against
  (L(theta + eps u) - L(theta - eps u)) / 2 eps, with u over all tensors at once, over each layer's
  tensors, and over each tensor alone, so a wrong layer is named (2 forward passes per direction).

Errors, for analytic a and numeric n (per tensor, per layer, and for directional mode "all"):
``rel_error`` = ||a - n|| / (||a|| + ||n||) (the seed's norm-based error; 0 when both are 0) and
``max_rel_error`` = max |a - n| / max(1e-8, |a| + |n|) elementwise (a diagnostic: it is noisy on
entries whose gradient is tiny). A row passes when ``rel_error < threshold``, or, flagged ``noise``,
when the root-mean-square of (a - n) / floor is below 1, floor being each difference's rounding floor
100 * eps_machine * |L| / step: a gradient that small (e.g. one that is exactly zero, like a BatchNorm
beta followed by another BatchNorm) cannot be resolved by differences.

Kinks: where phi is not C2 (relu, leaky_relu, elu, selu at 0) a difference whose +-eps straddles the
kink is no fair test. Every forward pass records which side of each kink every pre-activation is on; an
entry (or direction) whose +-step changes any side is counted in ``kinks`` and tried again at a step
ten times smaller, up to ``MAX_RETRIES`` times: in a deep network at a vanishing scale every
pre-activation is tiny, and the step must shrink with it. The error is measured against the
perturbation actually stored (x + step u, rounded), and each comparison has the rounding floor of its
own step. An entry that sits exactly on a kink (say a bias whose unit is 0 for a sample), or whose step
falls below what the dtype can add to the tensor, cannot be compared: it is left out, and a row left
with nothing to compare is unresolved (like a gradient below the rounding floor). No kink raises a
false alarm.

Dtype: float64 is the meaningful setting. A float32 *network* is checked against central differences
of a float64 copy (``Network.astype``), with threshold 1e-4 by default: float32 rounding, not bugs,
lies below it. Float32 layers and losses are checked as they are and the report says it is not
meaningful.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from harness.nn.layers import Activation, Layer, Linear
from harness.nn.network import Network

THRESHOLD64 = 1e-7
THRESHOLD32 = 1e-4
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
class GradcheckReport:
    mode: str
    threshold: float
    eps: float
    dtype: str
    rows: list[CheckRow]
    forward_passes: int  # what the numerical check cost ...
    backward_passes: int = 1  # ... next to the one backward pass it checks
    meaningful: bool = True
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return all(row.passed for row in self.rows)

    @property
    def failed_layers(self) -> list[str]:
        """Layers with a failing row (each named once, in order)."""
        names = [r.layer for r in self.rows if not r.passed and r.layer != "all"]
        return list(dict.fromkeys(names))

    def layer_rows(self) -> list[CheckRow]:
        """One row per layer (tensor "*")."""
        return [r for r in self.rows if r.tensor == "*" and r.layer != "all"]

    @property
    def max_rel_error(self) -> float:
        return max((max(r.rel_error, r.max_rel_error) for r in self.rows), default=0.0)

    def summary(self) -> str:
        """A table of every row, then the verdict and the cost."""
        unit = "dirs" if self.mode == "directional" else "entries"
        lines = [
            f"gradcheck ({self.mode}, {self.dtype}, eps={self.eps:g}, threshold={self.threshold:g})",
            f"{'layer':<14}{'tensor':<26}{unit:>8}{'kinks':>7}{'rel_err':>11}{'max_rel':>11}  ok",
        ]
        for r in self.rows:
            lines.append(
                f"{r.layer:<14}{r.tensor:<26}{r.checked:>8}{r.kinks:>7}"
                f"{r.rel_error:>11.2e}{r.max_rel_error:>11.2e}  "
                + ("NO" if not r.passed else "noise" if r.noise else "yes")
            )
        verdict = "PASSED" if self.passed else f"FAILED in {', '.join(self.failed_layers) or 'all'}"
        lines.append(
            f"{verdict}; cost: {self.forward_passes} forward passes vs {self.backward_passes} backward pass"
        )
        lines += [f"note: {n}" for n in self.notes]
        return "\n".join(lines)


@dataclass
class _Problem:
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


def _kinked(model: Layer) -> list[Activation]:
    """Every activation with kinks inside ``model``, in forward order."""
    if isinstance(model, Activation):
        return [model] if model.fn.kinks else []
    return [a for child in model.sublayers() for a in _kinked(child)]


def _sides(acts: list[Activation]) -> bytes:
    """For the last forward pass, the side of every kink of every activation in ``acts``."""
    return b"".join(np.packbits(a.x > k).tobytes() for a in acts for k in a.fn.kinks)


def _kink_signature(model: Layer) -> Callable[[], bytes] | None:
    """A function giving, for the last forward pass, the side of every kink of every activation."""
    acts = _kinked(model)
    return (lambda: _sides(acts)) if acts else None


def _run_entries(p: _Problem, eps: float, entries: int | None, rng, threshold) -> tuple[list, int]:
    """Per-entry central differences; rows per tensor and per layer, and the forward-pass count."""
    loss0 = p.loss()  # one unperturbed pass: also the reference side of every kink
    base_sig = p.signature() if p.signature else None
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
            orig, step = flat[i], eps
            for _ in range(MAX_RETRIES + 1):
                flat[i] = orig + step
                up, lp = float(flat[i]), p.loss_of(layer)
                sig_p = p.signature() if p.signature else None
                flat[i] = orig - step
                down, lm = float(flat[i]), p.loss_of(layer)
                sig_m = p.signature() if p.signature else None
                flat[i] = orig
                passes += 2
                if base_sig is None or (sig_p == base_sig and sig_m == base_sig):
                    break
                kinks += 1
                step /= SHRINK
                if float(orig + step) == float(orig - step):  # below the entry's resolution
                    break
            else:
                continue  # every step straddled a kink: this entry is not compared
            if up == down or float(orig + step) == float(orig - step):  # the loop stopped here
                lost += 1
                continue
            a.append(grad.reshape(-1)[i])
            n.append((lp - lm) / (up - down))
            floors.append(_floor(loss0, (up - down) / 2))
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


def _run_directional(p: _Problem, eps: float, directions: int, rng, threshold) -> tuple[list, int]:
    """Directional derivatives for "all", each layer, and each tensor."""
    loss0 = p.loss()  # one unperturbed pass: also the reference side of every kink
    base_sig = p.signature() if p.signature else None
    originals = [arr.copy() for _, _, arr in p.tensors]
    passes = 1

    def along(members: list[int], u: list[np.ndarray], step: float) -> tuple[float, list[np.ndarray]]:
        """The loss at x + step u, and the perturbation as stored (rounded to the dtype)."""
        for k, uk in zip(members, u, strict=True):
            np.add(originals[k], step * uk, out=p.tensors[k][2], casting="unsafe")
        moved = [p.tensors[k][2] - originals[k] for k in members]
        layers = {p.tensors[k][0] for k in members}
        value = p.loss_of(layers.pop()) if len(layers) == 1 else p.loss()
        for k in members:
            p.tensors[k][2][...] = originals[k]
        return value, moved

    groups: list[tuple[str, str, list[int]]] = [("all", "*", list(range(len(p.tensors))))]
    for layer in dict.fromkeys(t[0] for t in p.tensors):
        members = [k for k, t in enumerate(p.tensors) if t[0] == layer]
        groups.append((layer, "*", members))
        groups += [(layer, p.tensors[k][1], [k]) for k in members]
    rows = []
    for layer, tensor, members in groups:
        a, n, floors, kinks, lost = [], [], [], 0, 0
        for _ in range(directions):
            u = [rng.standard_normal(originals[k].shape) for k in members]
            norm = np.sqrt(sum(float(np.vdot(x, x)) for x in u))
            u = [x / norm for x in u]
            step = eps
            for _ in range(MAX_RETRIES + 1):
                lp, plus = along(members, u, step)
                sig_p = p.signature() if p.signature else None
                lm, minus = along(members, u, -step)
                sig_m = p.signature() if p.signature else None
                passes += 2
                stored = np.sqrt(
                    sum(float(np.vdot(d1 - d2, d1 - d2)) for d1, d2 in zip(plus, minus, strict=True))
                )
                if stored < step:  # less than half of x +- step u survived rounding: no test
                    break
                if base_sig is None or (sig_p == base_sig and sig_m == base_sig):
                    break
                kinks += 1
                step /= SHRINK
            else:
                continue  # every step straddled a kink: this direction is not compared
            if stored < step:  # the loop stopped here
                lost += 1
                continue
            # <g, x+ - x-> / 2 step: the analytic side of the difference actually taken
            a.append(sum(float(np.vdot(p.analytic[k], d1 - d2))
                         for k, d1, d2 in zip(members, plus, minus, strict=True)) / (2 * step))  # fmt: skip
            n.append((lp - lm) / (2 * step))
            floors.append(_floor(loss0, step))
        size = sum(originals[k].size for k in members)
        rows.append(_row(layer, tensor, size, np.array(a), np.array(n), kinks, threshold, floors, lost))
    return rows, passes


def _check(
    p: _Problem,
    mode: str,
    eps: float,
    threshold: float,
    entries: int | None,
    directions: int,
    seed: int,
    dtype: np.dtype,
) -> GradcheckReport:
    if mode not in ("entries", "directional"):
        raise ValueError(f"mode: unknown value {mode!r}; allowed: entries, directional")
    rng = np.random.default_rng(seed)
    if mode == "entries":
        rows, passes = _run_entries(p, eps, entries, rng, threshold)
    else:
        rows, passes = _run_directional(p, eps, directions, rng, threshold)
    return GradcheckReport(mode, threshold, eps, str(dtype), rows, passes)


def _not_meaningful(report: GradcheckReport) -> GradcheckReport:
    if report.dtype != "float64":
        report.meaningful = False
        report.notes.append(
            f"{report.dtype}: central differences drown in rounding; this check is not meaningful. "
            "Check in float64."
        )
    return report


def check_function(
    loss: Callable[[], float],
    tensors: dict[str, np.ndarray],
    grads: dict[str, np.ndarray],
    *,
    mode: str = "entries",
    eps: float = 6e-6,
    threshold: float = THRESHOLD64,
    entries: int | None = None,
    directions: int = 4,
    seed: int = 0,
) -> GradcheckReport:
    """Check ``grads`` (analytic dL/d tensor) of any scalar ``loss()`` that reads ``tensors``,
    which are perturbed in place and restored."""
    p = _Problem(loss, [("fn", k, v) for k, v in tensors.items()], [grads[k] for k in tensors])
    dtype = np.result_type(*tensors.values())
    return _not_meaningful(_check(p, mode, eps, threshold, entries, directions, seed, dtype))


def check_layer(
    layer: Layer,
    x: np.ndarray,
    dout: np.ndarray | None = None,
    *,
    mode: str = "entries",
    eps: float = 6e-6,
    threshold: float = THRESHOLD64,
    entries: int | None = None,
    directions: int = 4,
    seed: int = 0,
) -> GradcheckReport:
    """Check one layer (or block) with upstream gradient ``dout``, i.e. L = sum(layer(x) * dout).
    ``dout`` defaults to N(0, 1) entries drawn from ``seed``. Checks every param and the input."""
    x = np.array(x, copy=True)
    y = layer.forward(x)
    if dout is None:
        dout = np.random.default_rng([seed, 1]).standard_normal(y.shape).astype(y.dtype)
    dx = layer.backward(dout)
    tensors = [(layer.name, k, v) for k, v in layer.params.items()] + [("input", "x", x)]
    analytic = [layer.grads[k].copy() for k in layer.params] + [dx.copy()]
    p = _Problem(lambda: float(np.vdot(layer.forward(x), dout)), tensors, analytic, _kink_signature(layer))
    report = _check(p, mode, eps, threshold, entries, directions, seed, x.dtype)
    return _not_meaningful(report)


def check_loss(
    loss,
    y: np.ndarray,
    target: np.ndarray | None = None,
    *,
    mode: str = "entries",
    eps: float = 6e-6,
    threshold: float = THRESHOLD64,
    entries: int | None = None,
    directions: int = 4,
    seed: int = 0,
) -> GradcheckReport:
    """Check a loss's dL/dy at ``y``."""
    y = np.array(y, copy=True)
    loss.forward(y, target)
    p = _Problem(lambda: loss.forward(y, target), [("loss", "y", y)], [loss.backward().copy()])
    return _not_meaningful(_check(p, mode, eps, threshold, entries, directions, seed, y.dtype))


def check_network(
    net: Network,
    x: np.ndarray,
    loss,
    target: np.ndarray | None = None,
    *,
    mode: str = "entries",
    eps: float = 6e-6,
    threshold: float | None = None,
    entries: int | None = None,
    directions: int = 4,
    seed: int = 0,
) -> GradcheckReport:
    """Check a whole network under ``loss``: every parameter tensor of every layer, and the input.
    Rows are named by network layer ("layer1" ... "readout", "input")."""
    x = np.array(x, dtype=net.dtype, copy=True)
    loss.forward(net.forward(x), target)
    dx = net.backward(loss.backward())
    analytic = [g.copy() for _, _, g in net.parameters()] + [dx.copy()]
    ref = net if net.dtype == np.float64 else net.astype("float64")
    x_ref = x.astype(np.float64)
    tensors = [(k.split(".")[0], k.split(".", 1)[1], v) for k, v, _ in ref.parameters()]
    tensors.append(("input", "x", x_ref))
    # Perturbing layer i leaves the layers before it as they were: run the pass from layer i on the
    # input it had unperturbed (the loss is bit for bit the full pass's; the cost about halves). Kink
    # sides before layer i are the unperturbed pass's; their caches may hold an earlier perturbation.
    ref.forward(x_ref)
    start = {name: i for i, name in enumerate(ref.names)}
    inputs = [layer.h_in.copy() for layer in ref.layers]
    acts = [_kinked(layer) for layer in ref.layers]
    base_sides = [_sides(a) for a in acts]
    fresh = [0]  # the first layer the last pass ran

    def loss_at(layer: str) -> float:
        fresh[0] = i = start.get(layer, 0)  # the input x: the whole pass
        return loss.forward(ref.forward_from(i, inputs[i] if i else x_ref), target)

    def full() -> float:
        fresh[0] = 0
        return loss.forward(ref.forward(x_ref), target)

    def signature() -> bytes:
        i = fresh[0]
        return b"".join(base_sides[:i]) + b"".join(_sides(a) for a in acts[i:])

    p = _Problem(full, tensors, analytic, signature if any(acts) else None, loss_at)
    if threshold is None:
        threshold = THRESHOLD64 if net.dtype == np.float64 else THRESHOLD32
    report = _check(p, mode, eps, threshold, entries, directions, seed, net.dtype)
    if net.dtype != np.float64:
        report.notes.append(
            f"{net.dtype} gradients checked against central differences of a float64 copy; "
            f"errors up to ~{THRESHOLD32:g} are {net.dtype} rounding."
        )
    return report


PLANTED = ("scale", "transpose", "bias_entry", "dx_untransposed")


def plant_error(linear: Linear, kind: str) -> None:
    """A negative control: wrap ``linear.backward`` with one of the classic bugs, which every check
    must catch and name: dW scaled by 1.01 ("scale"), dW transposed ("transpose", square W), one bias
    entry off by 1% of ||db|| ("bias_entry"), or dx = dout W instead of dout W^T ("dx_untransposed")."""
    if kind not in PLANTED:
        raise ValueError(f"kind: unknown value {kind!r}; allowed: {', '.join(PLANTED)}")
    original = linear.backward

    def backward(dout: np.ndarray) -> np.ndarray:
        dx = original(dout)
        g = linear.grads
        if kind == "scale":
            g["W"] *= 1.01
        elif kind == "transpose":
            g["W"][...] = g["W"].T.copy()
        elif kind == "bias_entry":
            g["b"][1] += 0.01 * np.linalg.norm(g["b"])
        else:
            return dout @ linear.params["W"]
        return dx

    linear.backward = backward

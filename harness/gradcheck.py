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

from harness.differences import CheckRow, Problem, kink_signature, kinked, run_directional, run_entries, sides
from harness.nn.layers import Layer, Linear
from harness.nn.network import Network

__all__ = ["CheckRow", "GradcheckReport", "check_function", "check_layer", "check_loss", "check_network",
           "plant_error"]  # fmt: skip
THRESHOLD64 = 1e-7
THRESHOLD32 = 1e-4


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


def _check(
    p: Problem,
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
        rows, passes = run_entries(p, eps, entries, rng, threshold)
    else:
        rows, passes = run_directional(p, eps, directions, rng, threshold)
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
    p = Problem(loss, [("fn", k, v) for k, v in tensors.items()], [grads[k] for k in tensors])
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
    p = Problem(lambda: float(np.vdot(layer.forward(x), dout)), tensors, analytic, kink_signature(layer))
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
    p = Problem(lambda: loss.forward(y, target), [("loss", "y", y)], [loss.backward().copy()])
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
    p = Problem(tensors=tensors, analytic=analytic, **_passes(ref, x_ref, loss, target))
    if threshold is None:
        threshold = THRESHOLD64 if net.dtype == np.float64 else THRESHOLD32
    report = _check(p, mode, eps, threshold, entries, directions, seed, net.dtype)
    if net.dtype != np.float64:
        report.notes.append(
            f"{net.dtype} gradients checked against central differences of a float64 copy; "
            f"errors up to ~{THRESHOLD32:g} are {net.dtype} rounding."
        )
    return report


def _passes(ref: Network, x_ref: np.ndarray, loss, target: np.ndarray | None) -> dict:
    """The loss of a full pass, of a pass from a perturbed layer on, and the kink signature.

    Perturbing layer i leaves the layers before it as they were: run the pass from layer i on the
    input it had unperturbed (the loss is bit for bit the full pass's; the cost about halves). Kink
    sides before layer i are the unperturbed pass's; their caches may hold an earlier perturbation."""
    ref.forward(x_ref)
    start = {name: i for i, name in enumerate(ref.names)}
    inputs = [layer.h_in.copy() for layer in ref.layers]
    acts = [kinked(layer) for layer in ref.layers]
    base_sides = [sides(a) for a in acts]
    fresh = [0]  # the first layer the last pass ran

    def loss_at(layer: str) -> float:
        fresh[0] = i = start.get(layer, 0)  # the input x: the whole pass
        return loss.forward(ref.forward_from(i, inputs[i] if i else x_ref), target)

    def full() -> float:
        fresh[0] = 0
        return loss.forward(ref.forward(x_ref), target)

    def signature() -> bytes:
        i = fresh[0]
        return b"".join(base_sides[:i]) + b"".join(sides(a) for a in acts[i:])

    return {"loss": full, "signature": signature if any(acts) else None, "loss_at": loss_at}


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
            g["W"][...] = g["W"].swapaxes(-1, -2).copy()
        elif kind == "bias_entry":
            g["b"].reshape(-1)[1] += 0.01 * np.linalg.norm(g["b"])
        else:
            return dout @ linear.params["W"]
        return dx

    linear.backward = backward

"""Per-layer statistics of a network after a forward and a backward pass.

For hidden layer l = 1..depth (arrays of length depth, NaN where a quantity does not apply):

- ``grad_W``, ``grad_b``: ||dL/dW_l||, ||dL/db_l|| (Frobenius, over the block's weights/biases,
  shortcut projections excluded);
- ``grad_h``: ||dL/dh_l|| over the whole batch, h_l the block's output;
- ``act_mean``, ``act_std``: mean and standard deviation of the activation phi(z_l) over batch and units
  (for residual blocks, the branch's last activation);
- ``act_saturated`` (sigmoid, tanh): fraction of entries with phi(z) within 1% of its bounds
  (|tanh| > 0.99; sigmoid < 0.01 or > 0.99), where phi' is nearly 0;
- ``act_dead`` (relu): fraction of units that are 0 on every sample of the batch;
- ``preact_q``: q_l, the mean of z_l^2 over batch and units (z_l the activation's input: the length
  map's variable);
- ``preact_c``: c_l, the mean over pairs of samples a != b of z_a . z_b / (|z_a| |z_b|), over the
  batch's first 64 samples (the correlation map's variable; NaN for a batch of one).

For a stack of R networks (``Network.stack``) every statistic gains a leading axis: row r is network
r's, bit for bit what the same network alone gives (the same reductions over the same slices).
"""

from __future__ import annotations

import weakref

import numpy as np

from harness.metrics import STATS
from harness.nn.layers import Activation, Layer
from harness.nn.network import Network


def _last_activation(layer: Layer) -> Activation | None:
    found = None
    stack = [layer]
    while stack:
        node = stack.pop(0)
        if isinstance(node, Activation):
            found = node
        stack.extend(node.sublayers())
    return found


_ACTIVATIONS: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()  # net -> its blocks' last activations


def _activations(net: Network) -> list[Activation | None]:
    if net not in _ACTIVATIONS:
        _ACTIVATIONS[net] = [_last_activation(block) for block in net.hidden]
    return _ACTIVATIONS[net]


_BOUNDS = {"tanh": (-0.99, 0.99), "sigmoid": (0.01, 0.99)}


def _saturated(name: str, y: np.ndarray) -> np.ndarray | float:
    """Per draw (all axes but the leading one of a stack), the fraction of y beyond the bounds."""
    bounds = _BOUNDS.get(name)
    axes = (-2, -1)
    if bounds is None:
        return np.full(y.shape[:-2], np.nan) if y.ndim > 2 else float("nan")
    count = np.count_nonzero(y < bounds[0], axis=axes) + np.count_nonzero(y > bounds[1], axis=axes)
    return count / (y.shape[-2] * y.shape[-1])


def _dead(name: str, y: np.ndarray) -> np.ndarray | float:
    if name != "relu":
        return np.full(y.shape[:-2], np.nan) if y.ndim > 2 else float("nan")
    return np.count_nonzero(~np.any(y > 0, axis=-2), axis=-1) / y.shape[-1]


def _moments(y: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation of one draw's y, the sums accumulated in float64 (float32 y: one
    float64 copy for the dot)."""
    y = y.reshape(-1)
    y64 = y if y.dtype == np.float64 else y.astype(np.float64)
    mean = float(np.add.reduce(y64)) / y.size
    square = float(np.dot(y64, y64))
    return mean, np.sqrt(max(square / y.size - mean * mean, 0.0))


def layer_stats(net: Network) -> dict[str, np.ndarray]:
    """The statistics above, read from the network's last forward and backward pass: arrays (depth,),
    or (R, depth) for a stack."""
    lead = () if net.stack is None else (net.stack,)
    out = {k: np.full((*lead, net.spec.depth), np.nan) for k in STATS}
    norms = net.gradient_norms()
    out["grad_W"], out["grad_b"], out["grad_h"] = norms["W"], norms["b"], norms["h"]
    for i, act in enumerate(_activations(net)):
        y = act.y
        draws = [y] if net.stack is None else y  # each draw's slice: the reductions a lone network makes
        moments = np.array([_moments(d) for d in draws])
        out["act_mean"][..., i] = moments[:, 0].reshape(lead)
        out["act_std"][..., i] = moments[:, 1].reshape(lead)
        out["act_saturated"][..., i] = _saturated(act.name, y)
        out["act_dead"][..., i] = _dead(act.name, y)
        pre = np.array([_pre_moments(d) for d in ([act.x] if net.stack is None else act.x)])
        out["preact_q"][..., i] = pre[:, 0].reshape(lead)
        out["preact_c"][..., i] = pre[:, 1].reshape(lead)
    return out


PAIRS_OF = 64  # preact_c: the pairs of the batch's first 64 samples (bounded cost: 64^2 x width)


def _pre_moments(x: np.ndarray) -> tuple[float, float]:
    """q and c of one draw's pre-activations z (batch, width), in float64."""
    z = x if x.dtype == np.float64 else x.astype(np.float64)
    flat = z.reshape(-1)
    q = float(np.dot(flat, flat)) / flat.size
    z = z[:PAIRS_OF]
    if len(z) < 2:
        return q, float("nan")
    with np.errstate(all="ignore"):
        gram = z @ z.T
        scale = 1.0 / np.sqrt(np.diag(gram))
        cosines = gram * scale[:, None] * scale[None, :]
        c = (float(cosines.sum()) - float(np.trace(cosines))) / (len(z) * (len(z) - 1))
    return q, c


def log_slope(values: np.ndarray) -> float:
    """Least-squares slope of log(values) against the layer index 1..n (NaN if any is not > 0)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        return float("nan")
    return float(np.polyfit(np.arange(1, values.size + 1), np.log(values), 1)[0])


def first_nonfinite_layer(net: Network, draw: int | None = None) -> int:
    """Hidden layer (1-based, readout = depth + 1) where a non-finite value first shows, or 0 (in a
    stack, in network ``draw``).

    Forward order for activations first (where an overflow is born), then backward order for
    gradients (a finite forward pass can still overflow on the way back)."""
    pick = (lambda a: a) if draw is None else (lambda a: a[draw])  # noqa: E731
    finite = lambda a: a is None or bool(np.all(np.isfinite(pick(a))))  # noqa: E731
    for i, layer in enumerate(net.layers):
        if not finite(layer.h_out):
            return i + 1
    for i in range(len(net.layers) - 1, -1, -1):
        layer = net.layers[i]
        if not (all(finite(g) for g in layer.grads.values()) and finite(layer.grad_in)):
            return i + 1
    return 0


HIST_EDGES = np.linspace(-45.0, 45.0, 91)  # log10 |dL/dh| bins, a decade each; beyond: the end bins


def gradient_histograms(net: Network, edges: np.ndarray = HIST_EDGES) -> dict[str, np.ndarray]:
    """Per hidden layer, a histogram of log10 |dL/dh_l| over the batch's entries (of every network of a
    stack), and what it cannot place: ``hist`` (depth, bins), ``zero``, ``nan``, ``inf`` (depth,)
    counts. Out-of-range finite values are counted in the first or last bin. Nothing is dropped: the
    counts add up to the size. Bins are np.histogram's, [e_k, e_k+1), the last one closed; on edges
    one apart at whole numbers (``HIST_EDGES``) the bin is floor(log10 |g|) - e_0, exactly, without a
    search."""
    depth, bins = len(net.hidden), len(edges) - 1
    unit = bool(np.all(np.diff(edges) == 1.0) and edges[0] == np.floor(edges[0]))
    out = {k: np.zeros(depth, np.int64) for k in ("nan", "inf", "zero")}
    out["hist"] = np.zeros((depth, bins), np.int64)
    for i, layer in enumerate(net.hidden):  # one layer at a time: no copy of every layer at once
        g = np.abs(layer.grad_out).ravel()
        nan, inf, zero = np.isnan(g), np.isinf(g), g == 0
        out["nan"][i], out["inf"][i], out["zero"][i] = (np.count_nonzero(m) for m in (nan, inf, zero))
        logs = np.log10(g[~(nan | inf | zero)])
        np.clip(logs, edges[0], edges[-1], out=logs)
        index = (np.floor(logs, out=logs) - edges[0]).astype(np.intp) if unit else (
            np.searchsorted(edges, logs, side="right") - 1)  # fmt: skip
        np.clip(index, 0, bins - 1, out=index)
        out["hist"][i] = np.bincount(index, minlength=bins)
    return out


def input_output_jacobian(net: Network, x: np.ndarray) -> np.ndarray | None:
    """J = dh_D / dx at one input x (input_dim,), exact, by one batched backward pass through the hidden
    blocks with the identity as upstream gradient: row i is dh_D,i / dx. None for BatchNorm networks
    (a batch of copies has no variance). Overwrites the hidden layers' traces. A lone network only
    (``Network.draw`` takes one out of a stack)."""
    if net.stack is not None:
        raise ValueError("input_output_jacobian: a lone network, not a stack (see Network.draw)")
    if net.spec.norm == "batch":
        return None
    n = net.spec.widths[-1]
    h = np.repeat(np.asarray(x, dtype=net.dtype)[None, :], n, axis=0)
    for layer in net.hidden:
        h = layer.forward(h)
    d = np.eye(n, dtype=net.dtype)
    for layer in reversed(net.hidden):
        d = layer.backward(d)
    return d

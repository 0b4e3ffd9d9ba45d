"""Per-layer statistics of a network after a forward and a backward pass.

For hidden layer l = 1..depth (arrays of length depth, NaN where a quantity does not apply):

- ``grad_W``, ``grad_b``: ||dL/dW_l||, ||dL/db_l|| (Frobenius, over the block's weights/biases,
  shortcut projections excluded);
- ``grad_h``: ||dL/dh_l|| over the whole batch, h_l the block's output;
- ``act_mean``, ``act_std``: mean and standard deviation of the activation phi(z_l) over batch and units
  (for residual blocks, the branch's last activation);
- ``act_saturated`` (sigmoid, tanh): fraction of entries with phi(z) within 1% of its bounds
  (|tanh| > 0.99; sigmoid < 0.01 or > 0.99), where phi' is nearly 0;
- ``act_dead`` (relu): fraction of units that are 0 on every sample of the batch.
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


def _saturated(name: str, y: np.ndarray) -> float:
    bounds = {"tanh": (-0.99, 0.99), "sigmoid": (0.01, 0.99)}.get(name)
    if bounds is None:
        return float("nan")
    return (np.count_nonzero(y < bounds[0]) + np.count_nonzero(y > bounds[1])) / y.size


def _dead(name: str, y: np.ndarray) -> float:
    if name != "relu":
        return float("nan")
    return float(np.count_nonzero(~np.any(y > 0, axis=0))) / y.shape[1]


def layer_stats(net: Network) -> dict[str, np.ndarray]:
    """The statistics above, read from the network's last forward and backward pass."""
    out = {k: np.full(net.spec.depth, np.nan) for k in STATS}
    norms = net.gradient_norms()
    out["grad_W"], out["grad_b"], out["grad_h"] = norms["W"], norms["b"], norms["h"]
    for i, act in enumerate(_activations(net)):
        y = act.y.reshape(-1)
        # the sum and the sum of squares, accumulated in float64 (float32 y: one float64 copy for the dot)
        y64 = y if y.dtype == np.float64 else y.astype(np.float64)
        mean = float(np.add.reduce(y64)) / y.size
        square = float(np.dot(y64, y64))
        out["act_mean"][i] = mean
        out["act_std"][i] = np.sqrt(max(square / y.size - mean * mean, 0.0))
        out["act_saturated"][i] = _saturated(act.name, act.y)
        out["act_dead"][i] = _dead(act.name, act.y)
    return out


def log_slope(values: np.ndarray) -> float:
    """Least-squares slope of log(values) against the layer index 1..n (NaN if any is not > 0)."""
    values = np.asarray(values, dtype=float)
    if values.size < 2 or not np.all(np.isfinite(values)) or np.any(values <= 0):
        return float("nan")
    return float(np.polyfit(np.arange(1, values.size + 1), np.log(values), 1)[0])


def first_nonfinite_layer(net: Network) -> int:
    """Hidden layer (1-based, readout = depth + 1) where a non-finite value first shows, or 0.

    Forward order for activations first (where an overflow is born), then backward order for
    gradients (a finite forward pass can still overflow on the way back)."""
    for i, layer in enumerate(net.layers):
        if layer.h_out is not None and not np.all(np.isfinite(layer.h_out)):
            return i + 1
    for i in range(len(net.layers) - 1, -1, -1):
        layer = net.layers[i]
        grads_ok = all(np.all(np.isfinite(g)) for g in layer.grads.values())
        if not grads_ok or (layer.grad_in is not None and not np.all(np.isfinite(layer.grad_in))):
            return i + 1
    return 0


HIST_EDGES = np.linspace(-45.0, 45.0, 91)  # log10 |dL/dh| bins, a decade each; beyond: the end bins


def gradient_histograms(net: Network, edges: np.ndarray = HIST_EDGES) -> dict[str, np.ndarray]:
    """Per hidden layer, a histogram of log10 |dL/dh_l| over the batch's entries, and what it cannot
    place: ``hist`` (depth, bins), ``zero``, ``nan``, ``inf`` (depth,) counts. Out-of-range finite
    values are counted in the first or last bin. Nothing is dropped: the counts add up to the size."""
    depth, bins = len(net.hidden), len(edges) - 1
    g = np.concatenate([layer.grad_out.ravel() for layer in net.hidden])  # one buffer, every layer
    np.abs(g, out=g)
    layer_of = np.repeat(np.arange(depth), [layer.grad_out.size for layer in net.hidden])
    nan, inf, zero = np.isnan(g), np.isinf(g), g == 0
    out = {
        k: np.bincount(layer_of[m], minlength=depth) for k, m in (("nan", nan), ("inf", inf), ("zero", zero))
    }
    placed = ~(nan | inf | zero)
    logs = np.log10(g[placed])
    np.clip(logs, edges[0], edges[-1], out=logs)
    # np.histogram's bins: [e_k, e_k+1), the last one closed; one binary search per entry, no sort
    index = np.searchsorted(edges, logs, side="right") - 1
    np.clip(index, 0, bins - 1, out=index)
    index += layer_of[placed] * bins
    out["hist"] = np.bincount(index, minlength=depth * bins).reshape(depth, bins)
    return out


def input_output_jacobian(net: Network, x: np.ndarray) -> np.ndarray | None:
    """J = dh_D / dx at one input x (input_dim,), exact, by one batched backward pass through the hidden
    blocks with the identity as upstream gradient: row i is dh_D,i / dx. None for BatchNorm networks
    (a batch of copies has no variance). Overwrites the hidden layers' traces."""
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

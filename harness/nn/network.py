"""A network built from a plain spec.

What "depth" counts: the number of hidden layers, i.e. of nonlinearities. A network of depth D has
D hidden blocks and one linear readout, so D + 1 weight matrices (D + 1 Linear layers when there are no
skips). ``Network.layers`` is ``[block_1, ..., block_D, readout]``; the output of block l is the hidden
representation h_l (h_0 is the input).

- plain block (``skip=False``):  h_l = phi(norm(h_{l-1} @ W_l + b_l))
- residual block (``skip=True``): h_l = S(h_{l-1}) + alpha * F(h_{l-1}), F = ``block_layers`` (1 or 2)
  plain blocks, S the identity, or a bias-free projection where the widths differ (the first block
  when input_dim != width). alpha is ``skip_scale``: a number, or "1/sqrt(depth)".
- readout: y = h_D @ W_out + b_out, no activation.

Every weight matrix (projections included) uses the spec's init scheme and init scale; biases are
N(0, bias_std^2). With ``norm="batch"`` the Linear before the norm has no bias (BatchNorm's beta makes
it redundant: its gradient is exactly zero). The seed's ``SimpleNet([n0, n1, ..., nD, nout])`` is
``NetworkSpec(input_dim=n0, width=[n1, ..., nD], depth=D, output_dim=nout, activation="relu",
init="he_normal")``.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace

import numpy as np

from harness.nn.activations import ACTIVATIONS
from harness.nn.containers import ResidualBlock, Sequential
from harness.nn.init import INIT_ALIASES, INIT_SCHEMES, init_bias, init_weight
from harness.nn.layers import Activation, Layer, Linear
from harness.nn.norm import BatchNorm, LayerNorm

NORMS = ("none", "layer", "batch")
DTYPES = ("float32", "float64")
SKIP_SCALES = ("a positive number", "1/sqrt(depth)")


def _positive_int(name: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or value < 1:
        raise ValueError(f"{name}: must be an integer >= 1, got {value!r}")


def _finite_number(name: str, value: object, *, positive: bool) -> None:
    ok = isinstance(value, int | float | np.floating) and not isinstance(value, bool)
    ok = ok and math.isfinite(value) and (value > 0 if positive else value >= 0)
    if not ok:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name}: must be a finite number {bound}, got {value!r}")


@dataclass(kw_only=True)
class NetworkSpec:
    """Everything that defines a network; ``build_network(spec)`` turns it into one. The shape, the
    activation and the init scheme have no default (the app's defaults live in ``harness.config``);
    the rest default to off: no skips, no norm, scale 1, float64."""

    input_dim: int
    width: int | list[int]  # one width for all hidden layers, or a list of ``depth`` widths
    depth: int  # hidden layers (nonlinearities); the network has depth + 1 weight matrices
    output_dim: int
    activation: str
    init: str
    init_scale: float = 1.0  # multiplies every weight's standard deviation
    bias_std: float = 0.0
    skip: bool = False
    skip_scale: float | str = 1.0  # alpha in h + alpha F(h): a number or "1/sqrt(depth)"
    block_layers: int = 1  # plain layers inside each residual branch F (1 or 2)
    norm: str = "none"  # none | layer | batch
    dtype: str = "float64"
    seed: int = 0

    def __post_init__(self) -> None:
        self.validate()

    def validate(self) -> None:
        """Raise ValueError naming the first bad field and its allowed values."""
        for name in ("input_dim", "depth", "output_dim"):
            _positive_int(name, getattr(self, name))
        if isinstance(self.width, list | tuple):
            if len(self.width) != self.depth:
                raise ValueError(f"width: a list must have depth={self.depth} entries, got {len(self.width)}")
            for w in self.width:
                _positive_int("width", w)
        else:
            _positive_int("width", self.width)
        if self.activation not in ACTIVATIONS:
            raise ValueError(
                f"activation: unknown value {self.activation!r}; allowed: {', '.join(ACTIVATIONS)}"
            )
        if self.init not in INIT_SCHEMES and self.init not in INIT_ALIASES:
            allowed = ", ".join(INIT_SCHEMES + tuple(INIT_ALIASES))
            raise ValueError(f"init: unknown value {self.init!r}; allowed: {allowed}")
        _finite_number("init_scale", self.init_scale, positive=True)
        _finite_number("bias_std", self.bias_std, positive=False)
        if not isinstance(self.skip, bool):
            raise ValueError(f"skip: must be true or false, got {self.skip!r}")
        if self.skip_scale != "1/sqrt(depth)":
            try:
                _finite_number("skip_scale", self.skip_scale, positive=True)
            except ValueError:
                raise ValueError(
                    f"skip_scale: allowed: {' or '.join(SKIP_SCALES)}; got {self.skip_scale!r}"
                ) from None
        if self.block_layers not in (1, 2) or isinstance(self.block_layers, bool):
            raise ValueError(f"block_layers: allowed: 1, 2; got {self.block_layers!r}")
        if self.norm not in NORMS:
            raise ValueError(f"norm: unknown value {self.norm!r}; allowed: {', '.join(NORMS)}")
        if self.dtype not in DTYPES:
            raise ValueError(f"dtype: unknown value {self.dtype!r}; allowed: {', '.join(DTYPES)}")
        if isinstance(self.seed, bool) or not isinstance(self.seed, int | np.integer) or self.seed < 0:
            raise ValueError(f"seed: must be an integer >= 0, got {self.seed!r}")

    @property
    def widths(self) -> list[int]:
        """Widths of h_1 ... h_depth."""
        if isinstance(self.width, list | tuple):
            return [int(w) for w in self.width]
        return [int(self.width)] * self.depth

    @property
    def alpha(self) -> float:
        """The residual scale alpha as a number."""
        if self.skip_scale == "1/sqrt(depth)":
            return 1.0 / math.sqrt(self.depth)
        return float(self.skip_scale)


class Network(Sequential):
    """``layers = [block_1, ..., block_depth, readout]``; see the module docstring.

    After ``forward``/``backward`` each layer l holds ``h_in``/``h_out`` (h_{l-1}, h_l),
    ``grad_in``/``grad_out`` (dL/dh_{l-1}, dL/dh_l) and its ``grads``. A stack (``seeds`` given,
    ``stack`` = R) holds R networks in arrays with a leading axis: every one of those gains it.
    """

    name = "network"

    def __init__(
        self,
        spec: NetworkSpec,
        layers: list[Layer],
        seeds: list[int] | None = None,
        flat: tuple | None = None,
    ) -> None:
        """``flat``: the (params, grads) buffers the layers' arrays are already views into, in order
        (``build_network``'s); without it every array is moved into new buffers."""
        names = [f"layer{i + 1}" for i in range(spec.depth)] + ["readout"]
        super().__init__(layers, names=names)
        for layer, layer_name in zip(layers, names, strict=True):
            layer.name = layer_name
        self.spec = spec
        self.seeds = seeds
        self.stack = None if seeds is None else len(seeds)
        self.dtype = np.dtype(spec.dtype)
        self.flat_params, self.flat_grads = self._flatten() if flat is None else flat
        if flat is not None and not self._views_of(flat):
            raise ValueError("flat: the layers' parameters are not views into it, in order")
        self._norm_arrays: list[tuple[list[np.ndarray], list[np.ndarray]]] | None = None

    def __setstate__(self, state: dict) -> None:
        """After copy.deepcopy: NumPy copies views as independent arrays, so the layers are moved back
        into flat buffers of the copy's own (else ``flat_grads`` would go stale)."""
        self.__dict__.update(state)
        self.flat_params, self.flat_grads = self._flatten()
        self._norm_arrays = None

    def _flatten(self) -> tuple[np.ndarray, np.ndarray]:
        """Move every parameter and every gradient into one contiguous buffer each; all layers keep
        views into them (same keys, same shapes). Optimisers and norms then work on one array.

        Each array is swapped for its view everywhere as soon as it is copied, so it is freed at once:
        the copy never holds the parameters twice (a depth-1000, width-1024 network is 4 GB in float32)."""
        keys = list(self.params)
        total = sum(self.params[k].size for k in keys)
        flat_p, flat_g = np.empty(total, self.dtype), np.zeros(total, self.dtype)
        holders: dict[int, list[tuple[dict, str]]] = {}  # id of an array -> the dicts that hold it
        stack: list[Layer] = [self]
        while stack:
            layer = stack.pop()
            for store in (layer.params, layer.grads):
                for key, value in store.items():
                    holders.setdefault(id(value), []).append((store, key))
            stack.extend(layer.sublayers())
        offset = 0
        for k in keys:
            p, g = self.params[k], self.grads[k]
            views = (
                flat_p[offset : offset + p.size].reshape(p.shape),
                flat_g[offset : offset + p.size].reshape(p.shape),
            )
            views[0][...] = p
            for array, view in zip((p, g), views, strict=True):
                for store, key in holders.pop(id(array)):
                    store[key] = view
            offset += p.size
            del p, g
        return flat_p, flat_g

    def _views_of(self, flat: tuple[np.ndarray, np.ndarray]) -> bool:
        """Every parameter and gradient is the view of ``flat`` at its place in parameter order."""
        offset = 0
        for key, p in self.params.items():
            for array, buffer in ((p, flat[0]), (self.grads[key], flat[1])):
                if array.base is not buffer or array.__array_interface__["data"][0] != (
                    buffer.__array_interface__["data"][0] + offset * buffer.itemsize):  # fmt: skip
                    return False
            offset += p.size
        return offset == flat[0].size

    @property
    def hidden(self) -> list[Layer]:
        """The ``depth`` hidden blocks (all layers but the readout)."""
        return self.layers[:-1]

    def forward(self, x: np.ndarray) -> np.ndarray:
        """x: (batch, input_dim) -> y: (batch, output_dim), computed in the spec's dtype (stacked:
        (R, batch, input_dim) -> (R, batch, output_dim))."""
        x = np.asarray(x)
        lead = () if self.stack is None else (self.stack,)
        if x.shape[:-2] != lead or x.ndim != len(lead) + 2 or x.shape[-1] != self.spec.input_dim:
            want = ", ".join(map(str, lead + ("batch", self.spec.input_dim)))
            raise ValueError(f"x: expected shape ({want}) for input_dim={self.spec.input_dim}, got {x.shape}")
        return super().forward(x.astype(self.dtype, copy=False))

    def backward(self, dy: np.ndarray) -> np.ndarray:
        """dy = dL/dy: (batch, output_dim) -> dL/dx: (batch, input_dim); fills every ``grads``."""
        return super().backward(np.asarray(dy, dtype=self.dtype))

    def parameters(self) -> list[tuple[str, np.ndarray, np.ndarray]]:
        """(name, param, grad) triples in a fixed order, for optimisers."""
        return [(k, self.params[k], self.grads[k]) for k in self.params]

    def astype(self, dtype: str) -> Network:
        """A copy in another dtype ("float32" or "float64") with the same parameter values."""
        spec = replace(self.spec, dtype=dtype)
        twin = _build(spec, _Source(spec, None, self.stack), self.seeds)
        for key, value in self.params.items():
            twin.params[key][...] = value
        return twin

    def draw(self, r: int) -> Network:
        """Network r of a stack as a lone network, with a copy of its parameters."""
        if self.stack is None:
            raise ValueError("draw: this network is not a stack (see build_network's seeds)")
        spec = replace(self.spec, seed=self.seeds[r])
        twin = _build(spec, _Source(spec, None), None)
        for key, value in self.params.items():
            twin.params[key][...] = value[r]
        return twin

    def gradient_norms(self) -> dict[str, np.ndarray]:
        """Per hidden layer l = 1..depth, after a backward pass (arrays of length depth; stacked,
        (R, depth): network r's norms in row r, each bit for bit a lone network's):

        - ``W``: ||dL/dW_l||, Frobenius norm over the block's weight matrices (shortcut excluded);
        - ``b``: ||dL/db_l|| over its biases (0 where it has none);
        - ``h``: ||dL/dh_l||, over the whole batch, at the block's output.
        """

        if self._norm_arrays is None:  # the gradient arrays never move (views into flat_grads)
            pick = lambda layer, last: [g for k, g in layer.grads.items()  # noqa: E731
                                        if k.endswith(last) and not k.startswith("shortcut")]  # fmt: skip
            self._norm_arrays = [(pick(layer, "W"), pick(layer, "b")) for layer in self.hidden]
        outs = [layer.grad_out for layer in self.hidden]
        if self.stack is None:
            weights, biases = zip(*self._norm_arrays, strict=True)
            return {"W": _norms(list(weights)), "b": _norms(list(biases)), "h": _norms([[g] for g in outs])}
        slices = range(self.stack)  # one BLAS dot per draw and array, as a lone network takes
        return {
            "W": np.stack([_norms([[g[r] for g in w] for w, _ in self._norm_arrays]) for r in slices]),
            "b": np.stack([_norms([[g[r] for g in b] for _, b in self._norm_arrays]) for r in slices]),
            "h": np.stack([_norms([[g[r]] for g in outs]) for r in slices]),
        }


def _norms(groups: list[list[np.ndarray]]) -> np.ndarray:
    """sqrt(sum of squares) of each group of arrays (0 for an empty group)."""
    return np.sqrt([sum(float(np.vdot(g, g)) for g in arrays) for arrays in groups])


def parameter_count(spec: NetworkSpec) -> int:
    """The number of parameter entries of the network ``spec`` describes (of each network of a stack)."""
    dims = [spec.input_dim] + spec.widths

    def plain(a: int, b: int) -> int:  # W, b unless BatchNorm follows, gamma and beta of a norm
        return a * b + (spec.norm != "batch") * b + (spec.norm != "none") * 2 * b

    total = dims[-1] * spec.output_dim + spec.output_dim
    for a, b in zip(dims, dims[1:], strict=False):
        if spec.skip:
            total += plain(a, b) + (spec.block_layers - 1) * plain(b, b) + (a != b) * a * b
        else:
            total += plain(a, b)
    return total


class _Source:
    """Where a network's parameters come from: one Generator per network (``seeds``), each drawing in
    layer order exactly what a lone network of that seed draws; without seeds, zeros (for a copy whose
    values are written in afterwards). With ``stack`` = R every array has a leading axis of length R.

    Every parameter and gradient is a view into the network's two flat buffers, allocated first: a
    network's parameters are never held twice while it is built (the gradients' buffer is calloc'd,
    so it costs no memory until a backward pass writes it)."""

    def __init__(self, spec: NetworkSpec, seeds: list[int] | None, stack: int | None = None) -> None:
        self.spec, self.dtype, self.stack = spec, np.dtype(spec.dtype), stack
        self.rngs = None if seeds is None else [np.random.default_rng(s) for s in seeds]
        total = parameter_count(spec) * (stack or 1)
        self.flat = (
            (np.empty if seeds is not None else np.zeros)(total, self.dtype),
            np.zeros(total, self.dtype),
        )
        self.offset = 0

    def _take(self, shape: tuple[int, ...]) -> tuple[np.ndarray, np.ndarray]:
        """The next parameter's view and its gradient's, in the network's parameter order."""
        shape = shape if self.stack is None else (self.stack, *shape)
        size = math.prod(shape)
        start, self.offset = self.offset, self.offset + size
        return tuple(flat[start : self.offset].reshape(shape) for flat in self.flat)

    def _fill(self, shape: tuple[int, ...], draw: Callable[[np.random.Generator, np.ndarray], None]) -> tuple:
        """The next parameter's view and its gradient's; ``draw(rng, out)`` writes each network's
        values into its slice of the parameter (zeros without seeds)."""
        param, grad = self._take(shape)
        if self.rngs is None:  # zeros
            return param, grad
        if self.stack is None:
            draw(self.rngs[0], param)
        else:
            for r, rng in enumerate(self.rngs):
                draw(rng, param[r])
        return param, grad

    def linear(self, fan_in: int, fan_out: int, bias: bool = True) -> Linear:
        s = self.spec

        def weight(rng: np.random.Generator, out: np.ndarray) -> None:
            init_weight(s.init, fan_in, fan_out, rng, s.init_scale, self.dtype, out=out)

        def bias_of(rng: np.random.Generator, out: np.ndarray) -> None:
            out.reshape(-1)[...] = init_bias(fan_out, rng, s.bias_std, self.dtype)

        W, dW = self._fill((fan_in, fan_out), weight)
        if not bias:
            return Linear(W, None, {"W": dW})
        shape = (fan_out,) if self.stack is None else (1, fan_out)  # stacked: broadcasts over the batch
        b, db = self._fill(shape, bias_of)
        return Linear(W, b, {"W": dW, "b": db})

    def norm(self, fan_out: int) -> Layer:
        layer = (LayerNorm if self.spec.norm == "layer" else BatchNorm)(fan_out, self.dtype, stack=self.stack)
        for key in ("gamma", "beta"):
            param, grad = self._take((fan_out,) if self.stack is None else (1, fan_out))
            param[...] = layer.params[key]
            layer.params[key], layer.grads[key] = param, grad
        return layer


def _plain_block(fan_in: int, fan_out: int, src: _Source) -> Sequential:
    """Linear -> [LayerNorm | BatchNorm] -> activation."""
    spec = src.spec
    layers: list[Layer] = [src.linear(fan_in, fan_out, bias=spec.norm != "batch")]
    names = ["linear"]
    if spec.norm != "none":
        layers.append(src.norm(fan_out))
        names.append("norm")
    layers.append(Activation(spec.activation))
    names.append("act")
    return Sequential(layers, names=names, name="block")


def _residual_block(fan_in: int, fan_out: int, src: _Source) -> ResidualBlock:
    spec = src.spec
    dims = [fan_in] + [fan_out] * spec.block_layers
    inner = [_plain_block(dims[i], dims[i + 1], src) for i in range(spec.block_layers)]
    branch = inner[0] if spec.block_layers == 1 else Sequential(inner, name="branch")
    shortcut = src.linear(fan_in, fan_out, bias=False) if fan_in != fan_out else None
    return ResidualBlock(branch, spec.alpha, shortcut)


def _build(spec: NetworkSpec, src: _Source, seeds: list[int] | None) -> Network:
    dims = [spec.input_dim] + spec.widths
    make_block = _residual_block if spec.skip else _plain_block
    layers: list[Layer] = [make_block(dims[i], dims[i + 1], src) for i in range(spec.depth)]
    layers.append(src.linear(dims[-1], spec.output_dim))
    return Network(spec, layers, seeds, flat=src.flat)


def build_network(spec: NetworkSpec, seeds: Sequence[int] | None = None) -> Network:
    """Build the network ``spec`` describes, drawing every parameter from
    ``np.random.default_rng(spec.seed)`` in layer order (same spec, same numbers).

    With ``seeds``: a stack of len(seeds) networks that differ only in their seed, network r drawn
    exactly as ``build_network(replace(spec, seed=seeds[r]))`` (its parameters are slice r of arrays
    with a leading stack axis); it takes x of shape (R, batch, input_dim)."""
    spec.validate()
    if seeds is None:
        return _build(spec, _Source(spec, [spec.seed]), None)
    seeds = [int(s) for s in seeds]
    if not seeds:
        raise ValueError("seeds: a stack needs at least one seed")
    return _build(spec, _Source(spec, seeds, len(seeds)), seeds)

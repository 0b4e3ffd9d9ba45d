"""Layers made of layers: ``Sequential`` (a chain) and ``ResidualBlock`` (h + alpha * F(h)).

A container's ``params``/``grads`` hold its children's arrays (the same objects, not copies) under
dotted keys ``"<child name>.<key>"``, like PyTorch's state-dict names. After each pass it records on
every child ``h_in``, ``h_out`` (forward) and ``grad_in``, ``grad_out`` (backward).
"""

from __future__ import annotations

import numpy as np

from harness.nn.layers import Layer, Linear


def _collect(children: dict[str, Layer], params: dict, grads: dict) -> None:
    for child_name, child in children.items():
        for key, value in child.params.items():
            params[f"{child_name}.{key}"] = value
            grads[f"{child_name}.{key}"] = child.grads[key]


class Sequential(Layer):
    """h_k = layer_k(h_{k-1}); backward runs the chain rule in reverse.

    ``names`` label the children (default: "0", "1", ...); they prefix the children's param keys.
    """

    name = "sequential"

    def __init__(self, layers: list[Layer], names: list[str] | None = None, name: str = "") -> None:
        super().__init__()
        if name:
            self.name = name
        names = names or [str(i) for i in range(len(layers))]
        if len(names) != len(layers) or len(set(names)) != len(names):
            raise ValueError(f"names: need {len(layers)} distinct names, got {names}")
        self.layers = layers
        self.names = names
        _collect(dict(zip(names, layers, strict=True)), self.params, self.grads)

    def forward(self, x: np.ndarray) -> np.ndarray:
        return self.forward_from(0, x)

    def forward_from(self, start: int, x: np.ndarray) -> np.ndarray:
        """Run children ``start``, ``start + 1``, ... on x, their input: the rest of a forward pass
        whose earlier children are unchanged (a gradient check perturbing one layer needs no more)."""
        for layer in self.layers[start:]:
            layer.h_in = x
            x = layer.forward(x)
            layer.h_out = x
        return x

    def backward(self, dout: np.ndarray) -> np.ndarray:
        for layer in reversed(self.layers):
            layer.grad_out = dout
            dout = layer.backward(dout)
            layer.grad_in = dout
        return dout

    def sublayers(self) -> list[Layer]:
        return list(self.layers)


class ResidualBlock(Layer):
    """y = S(x) + alpha * F(x), F a ``Sequential`` branch, S the identity or, where the widths
    differ, a bias-free projection x @ P (P of shape (fan_in, fan_out)).

    Backward: dF = alpha * dout; dx = F.backward(dF) + dout (identity) or + dout @ P^T;
    dP = x^T dout. Param keys: "branch.<...>" and "shortcut.W".
    """

    name = "residual"

    def __init__(self, branch: Sequential, alpha: float, shortcut: Linear | None = None) -> None:
        super().__init__()
        self.branch = branch
        self.alpha = alpha
        self.shortcut = shortcut
        children = {"branch": branch} | ({"shortcut": shortcut} if shortcut else {})
        _collect(children, self.params, self.grads)

    def forward(self, x: np.ndarray) -> np.ndarray:
        self.branch.h_in = x
        f = self.branch.forward(x)
        self.branch.h_out = f
        shortcut = x if self.shortcut is None else self.shortcut.forward(x)
        if self.alpha == 1.0:
            return f + shortcut  # a new array: f stays cached inside the branch
        y = self.alpha * f
        y += shortcut
        return y

    def backward(self, dout: np.ndarray) -> np.ndarray:
        df = dout * self.alpha if self.alpha != 1.0 else dout
        self.branch.grad_out = df
        d_branch = self.branch.backward(df)
        self.branch.grad_in = d_branch
        return d_branch + (dout if self.shortcut is None else self.shortcut.backward(dout))

    def sublayers(self) -> list[Layer]:
        return [self.branch] + ([self.shortcut] if self.shortcut else [])

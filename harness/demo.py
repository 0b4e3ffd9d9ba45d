"""A small demonstration of the engine: the seed lecture's sigmoid vs ReLU gradient flow, measured on
real networks, and a gradient check. Run with ``python -m harness.demo``."""

from __future__ import annotations

import numpy as np

from harness.gradcheck import check_network
from harness.nn import LinearProbe, NetworkSpec, build_network


def gradient_profile(activation: str, init: str, depth: int = 20, width: int = 256) -> np.ndarray:
    """||dL/dh_l|| for l = 1..depth under the linear probe loss, at initialisation."""
    spec = NetworkSpec(
        input_dim=width, width=width, depth=depth, output_dim=10, activation=activation, init=init, seed=0
    )
    net = build_network(spec)
    rng = np.random.default_rng(1)
    x = rng.standard_normal((64, width))
    probe = LinearProbe.random((64, 10), rng)
    probe.forward(net.forward(x))
    net.backward(probe.backward())
    return net.gradient_norms()["h"]


def main() -> None:
    print("Gradient norm ||dL/dh_l|| per layer at initialisation (width 256, probe loss):")
    profiles = {
        "sigmoid/xavier": gradient_profile("sigmoid", "xavier_normal"),
        "relu/he": gradient_profile("relu", "he_normal"),
    }
    print(f"{'layer':>5}" + "".join(f"{name:>16}" for name in profiles))
    for layer in range(len(next(iter(profiles.values())))):
        print(f"{layer + 1:>5}" + "".join(f"{p[layer]:>16.3e}" for p in profiles.values()))
    for name, p in profiles.items():
        print(f"{name}: first/last layer gradient ratio = {p[0] / p[-1]:.3e}")

    spec = NetworkSpec(
        input_dim=4,
        width=8,
        depth=3,
        output_dim=2,
        activation="tanh",
        init="xavier_normal",
        skip=True,
        norm="layer",
        seed=0,
    )
    net = build_network(spec)
    rng = np.random.default_rng(2)
    report = check_network(net, rng.standard_normal((8, 4)), LinearProbe.random((8, 2), rng))
    print()
    print(report.summary())


if __name__ == "__main__":
    main()

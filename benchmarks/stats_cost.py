"""2. Per-layer statistics at every step as a share of the step: the norms of dW, db and dL/dh and the
activations' mean, std and saturated/dead fraction (``harness.stats.layer_stats``) against a training
step (forward, MSE, backward, SGD) of the same network; overhead = stats time / step time.

    python benchmarks/stats_cost.py [--threads 1] [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import limit_threads, machine, median_ms, table, write_json  # noqa: E402

from harness.nn import SGD, MSELoss, NetworkSpec, build_network  # noqa: E402
from harness.stats import layer_stats  # noqa: E402


def measure(width: int, depth: int, batch: int, act: str) -> dict[str, float]:
    """Median ms of one training step and of ``layer_stats`` on the network it leaves behind."""
    net = build_network(
        NetworkSpec(
            input_dim=width, width=width, depth=depth, output_dim=width, activation=act, init="he_normal"
        )
    )
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((batch, width)), rng.standard_normal((batch, width))
    loss, opt = MSELoss(), SGD(net.parameters(), lr=1e-6)

    def step() -> None:
        loss.forward(net.forward(x), y)
        net.backward(loss.backward())
        opt.step()

    return median_ms({"step": step, "stats": lambda: layer_stats(net)}, repeats=5, budget_s=0.6)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--json")
    args = ap.parse_args()
    limit_threads(args.threads)
    rows = []
    cols = ["width", "depth", "batch", "act", "step_ms", "stats_ms", "overhead_pct"]
    print(machine(), f"threads={args.threads}")
    print(table([], cols))
    for width, depth, batch, act in itertools.product([64, 256, 1024], [10, 50], [64, 256], ["tanh", "relu"]):
        ms = measure(width, depth, batch, act)
        row = dict(width=width, depth=depth, batch=batch, act=act, step_ms=ms["step"], stats_ms=ms["stats"],
                   overhead_pct=100 * ms["stats"] / ms["step"])  # fmt: skip
        rows.append(row)
        print(table([row], cols).splitlines()[1], flush=True)
    write_json(args.json, "stats_cost", rows, threads=args.threads)


if __name__ == "__main__":
    main()

"""10. Init mode's draws: R draws one at a time (a lone network each: build, forward, backward,
statistics) against the same R draws stacked in one pass (``build_network(spec, seeds=...)``), side by
side in one process, for a few widths at depth 20 (tanh, Xavier, batch 64, probe loss). "passes" leaves
out the build (whose cost is the Generator's normal draws, the same in both); "draws" includes it.

The floor no path can go below while drawing the same numbers: ``rng`` is the R Generators' normal
draws alone (every weight, as the build draws them), ``mm`` the pass's matrix products alone (forward,
dW and dx of every layer of every draw, stacked, on distinct arrays); ``best_x`` = lone_draws / (rng +
mm) is the most any way of running the draws could gain over running them one at a time.

The process is set up as a ``harness`` process is (``harness.runtime.keep_freed_memory``);
``--plain-malloc`` leaves glibc's allocator as it starts.

    python benchmarks/init_stack.py [--repeats 16] [--threads 1] [--plain-malloc] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import limit_threads, machine, median_ms, table, write_json  # noqa: E402

from harness import runtime  # noqa: E402
from harness.nn import LinearProbe, NetworkSpec, build_network  # noqa: E402
from harness.stats import gradient_histograms, layer_stats  # noqa: E402


def cases(width: int, depth: int, repeats: int, batch: int) -> dict:
    spec = NetworkSpec(input_dim=width, width=width, depth=depth, output_dim=10, activation="tanh",
                       init="xavier_normal")  # fmt: skip
    seeds = list(range(repeats))
    rng = np.random.default_rng(0)
    x, v = rng.standard_normal((repeats, batch, width)), rng.standard_normal((repeats, batch, 10))
    lone_nets = [build_network(replace(spec, seed=s)) for s in seeds]
    stack = build_network(spec, seeds=seeds)
    dims = [width] * (depth + 1) + [10]
    shapes = list(zip(dims, dims[1:], strict=False))
    acts = [rng.standard_normal((repeats, batch, a)) for a, _ in shapes]
    grads = [rng.standard_normal((repeats, batch, b)) for _, b in shapes]
    weights = [rng.standard_normal((repeats, a, b)) for a, b in shapes]
    weight_grads = [np.empty_like(w) for w in weights]

    def draw_only():  # every weight entry, from each draw's own Generator (the biases are zeros)
        for s in seeds:
            g = np.random.default_rng(s)
            for a, b in shapes:
                g.standard_normal((a, b))

    def products_only():
        for x, w in zip(acts, weights, strict=True):
            x @ w
        for x, d, w, gw in zip(acts, grads, weights, weight_grads, strict=True):
            np.matmul(x.swapaxes(-1, -2), d, out=gw)
            d @ w.swapaxes(-1, -2)

    def passes(net, xs, vs):
        loss = LinearProbe(vs)
        loss.forward(net.forward(xs))
        net.backward(loss.backward())
        layer_stats(net)
        gradient_histograms(net)

    return {
        "lone_passes": lambda: [passes(n, x[r], v[r]) for r, n in enumerate(lone_nets)],
        "stacked_passes": lambda: passes(stack, x, v),
        "lone_draws": lambda: [
            passes(build_network(replace(spec, seed=s)), x[r], v[r]) for r, s in enumerate(seeds)
        ],
        "stacked_draws": lambda: passes(build_network(spec, seeds=seeds), x, v),
        "build_only": lambda: build_network(spec, seeds=seeds),
        "rng": draw_only,
        "mm": products_only,
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=16)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--widths", default="16,32,64,128")
    ap.add_argument("--depth", type=int, default=20)
    ap.add_argument("--plain-malloc", action="store_true", help="glibc's allocator as it starts")
    ap.add_argument("--json")
    args = ap.parse_args()
    limit_threads(args.threads)
    kept = False if args.plain_malloc else runtime.keep_freed_memory()
    cols = ["width", "depth", "lone_passes", "stacked_passes", "x_passes", "lone_draws", "stacked_draws", "x_draws",
            "build_only", "rng", "mm", "best_x"]  # fmt: skip
    print(
        f"{machine()} threads={args.threads} repeats={args.repeats} freed memory kept={kept} (milliseconds, medians)"
    )
    print(table([], cols))
    rows = []
    for width in map(int, args.widths.split(",")):
        ms = median_ms(cases(width, args.depth, args.repeats, 64), repeats=5, budget_s=1.0)
        row = dict(width=width, depth=args.depth, **ms, x_passes=ms["lone_passes"] / ms["stacked_passes"],
                   x_draws=ms["lone_draws"] / ms["stacked_draws"],
                   best_x=ms["lone_draws"] / (ms["rng"] + ms["mm"]))  # fmt: skip
        rows.append(row)
        print(table([row], cols).splitlines()[1], flush=True)
    write_json(
        args.json, "init_stack", rows, threads=args.threads, repeats=args.repeats, freed_memory_kept=kept
    )


if __name__ == "__main__":
    main()

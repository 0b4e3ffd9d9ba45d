"""5. Depth 1000 at width 64: milliseconds per training step (forward, MSE, backward, SGD), against the
step's matrix products alone and PyTorch eager's step (when installed), for a few batch sizes, dtypes
and thread counts. "mm" reuses one weight and one activation for every layer (in cache); "own_mm" runs
the same products on distinct arrays per layer, as the step does (its weights stream from memory): the
floor a step of this network can reach.

    python benchmarks/deep_narrow.py [--json out.json]
"""

from __future__ import annotations

import argparse
import itertools
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import limit_threads, machine, median_ms, table, write_json  # noqa: E402
from step_vs_torch import engine_step, matmuls_only, own_matmuls_only, torch, torch_step  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depth", type=int, default=1000)
    ap.add_argument("--width", type=int, default=64)
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    cols = [
        "threads",
        "batch",
        "dtype",
        "act",
        "step_ms",
        "torch_ms",
        "mm_ms",
        "own_mm_ms",
        "vs_own_mm",
        "us_per_layer",
    ]
    print(machine())
    print(table([], cols))
    for threads, batch, dtype, act in itertools.product(
        [1, 2], [1, 16, 64], ["float32", "float64"], ["relu"]
    ):
        limit_threads(threads)
        fns = {"step": engine_step(args.width, args.depth, batch, dtype, act, False),
               "mm": matmuls_only(args.width, args.depth, batch, dtype),
               "own_mm": own_matmuls_only(args.width, args.depth, batch, dtype)}  # fmt: skip
        if torch is not None:
            fns["torch"] = torch_step(args.width, args.depth, batch, dtype, act, False)
        ms = median_ms(fns, repeats=5, budget_s=1.0)
        row = dict(threads=threads, batch=batch, dtype=dtype, act=act, step_ms=ms["step"], torch_ms=ms.get("torch", ""),
                   mm_ms=ms["mm"], own_mm_ms=ms["own_mm"], vs_own_mm=ms["step"] / ms["own_mm"],
                   us_per_layer=1e3 * ms["step"] / args.depth)  # fmt: skip
        rows.append(row)
        print(table([row], cols).splitlines()[1], flush=True)
    write_json(args.json, "deep_narrow", rows, depth=args.depth, width=args.width)


if __name__ == "__main__":
    main()

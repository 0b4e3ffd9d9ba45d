"""3. Gradient checking: what each mode costs (forward passes, seconds) and whether it catches the
planted errors of the test suite (one layer's weight gradient scaled by 1.01, a transposed weight
gradient, one wrong bias entry), and names the layer. A pass that perturbs layer l runs from layer l
on and counts as one forward pass.

    python benchmarks/gradcheck_cost.py [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import limit_threads, machine, table, write_json  # noqa: E402

from harness.gradcheck import check_network, plant_error  # noqa: E402
from harness.nn import LinearProbe, NetworkSpec, build_network  # noqa: E402

PLANTS = ("none", "scale", "transpose", "bias_entry")
MODES = {"entries (all)": dict(mode="entries"), "entries (k=3)": dict(mode="entries", entries=3),
         "directional (2)": dict(mode="directional", directions=2),
         "directional (4)": dict(mode="directional", directions=4)}  # fmt: skip


def planted(kind: str, width: int, depth: int):
    net = build_network(NetworkSpec(input_dim=width, width=width, depth=depth, output_dim=4, activation="tanh",
                                    init="xavier_normal", bias_std=0.2, seed=1))  # fmt: skip
    if kind != "none":
        plant_error(net.layers[depth // 2].layers[0], kind)
    return net, f"layer{depth // 2 + 1}"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--width", type=int, default=16)
    ap.add_argument("--depth", type=int, default=8)
    ap.add_argument("--json")
    args = ap.parse_args()
    limit_threads(1)
    rows = []
    cols = ["mode", "plant", "forward_passes", "seconds", "passed", "named"]
    print(machine(), f"width={args.width} depth={args.depth} batch=8")
    print(table([], cols))
    for mode, kwargs in MODES.items():
        for kind in PLANTS:
            net, culprit = planted(kind, args.width, args.depth)
            rng = np.random.default_rng(2)
            x, probe = rng.standard_normal((8, args.width)), LinearProbe.random((8, 4), rng)
            t0 = time.perf_counter()
            report = check_network(net, x, probe, **kwargs)
            row = dict(mode=mode, plant=kind, forward_passes=report.forward_passes,
                       seconds=time.perf_counter() - t0, passed=report.passed,
                       named=",".join(report.failed_layers) or "-")  # fmt: skip
            row["caught"] = (kind == "none") == report.passed and (
                kind == "none" or report.failed_layers == [culprit]
            )
            rows.append(row)
            print(table([row], cols).splitlines()[1], flush=True)
    missed = [f"{r['mode']} / {r['plant']}" for r in rows if not r["caught"]]
    print("every planted error caught and its layer named, every clean network passed" if not missed
          else f"not caught: {'; '.join(missed)} (a sample of k entries per tensor can miss one wrong entry)")  # fmt: skip
    write_json(args.json, "gradcheck_cost", rows, width=args.width, depth=args.depth)


if __name__ == "__main__":
    main()

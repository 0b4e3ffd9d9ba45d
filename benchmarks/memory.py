"""11. Peak memory (the process's peak resident set, VmHWM), each case in a fresh process: a training step
of a depth-1000, width-1024 network (forward, MSE, backward, SGD), and a 16-draw init study at depth
200, width 512 under the default ``init.stack_mb`` cap (chunks) and with the cap raised so that all 16
draws run stacked in one pass; beside each, the parameters' own size and the cap's estimate. Each child
is set up as a ``harness`` process is (``harness.runtime.keep_freed_memory``); ``--plain-malloc`` leaves
glibc's allocator as it starts.

    python benchmarks/memory.py [--cases step64,step32,init,init_one_pass] [--plain-malloc] [--json out.json]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table, write_json  # noqa: E402

CASES = {
    "step64": "step(1000, 1024, 64, 'float64')",
    "step32": "step(1000, 1024, 64, 'float32')",
    "init": "init(200, 512, None)",
    "init_one_pass": "init(200, 512, 1e6)",
}

CHILD = r"""
import json, resource, sys, time
import numpy as np
from harness import runtime
if sys.argv[2] == "kept":
    runtime.keep_freed_memory()

def peak_mb():
    for line in open("/proc/self/status"):
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024

def step(depth, width, batch, dtype):
    from harness.nn import SGD, MSELoss, NetworkSpec, build_network
    spec = NetworkSpec(input_dim=width, width=width, depth=depth, output_dim=width, activation="relu",
                       init="he_normal", dtype=dtype)
    t = time.perf_counter()
    net = build_network(spec)
    built = peak_mb()
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((batch, width)).astype(dtype) for _ in range(2))
    loss, opt = MSELoss(), SGD(net.parameters(), lr=1e-6)
    loss.forward(net.forward(x), y); net.backward(loss.backward()); opt.step()
    params_mb = net.flat_params.nbytes / 2**20
    return dict(params_mb=params_mb, built_mb=built, seconds=time.perf_counter() - t)

def init(depth, width, cap):
    from harness.config import parse_config
    from harness.study import draws_per_pass, run_study
    values = {"model": {"depth": depth, "width": width}, "data": {"input_dim": width}, "gradcheck": {"mode": "off"},
              "init": {"jacobian_max_width": 0}}
    if cap is not None:
        values["init"]["stack_mb"] = cap
    cfg = parse_config(values)
    t = time.perf_counter()
    run_study(cfg)
    per_draw = 8 * ((depth + 1) * width * width) / 2**20
    return dict(params_mb=per_draw, draws_per_pass=draws_per_pass(cfg, width, 10), stack_mb=cfg.init.stack_mb,
                seconds=time.perf_counter() - t)

out = eval(sys.argv[1])
out["peak_mb"] = peak_mb()
print(json.dumps(out))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--cases", default=",".join(CASES))
    ap.add_argument("--plain-malloc", action="store_true", help="glibc's allocator as it starts")
    ap.add_argument("--json")
    args = ap.parse_args()
    import json

    malloc = "plain" if args.plain_malloc else "kept"
    rows, cols = [], ["case", "peak_mb", "params_mb", "built_mb", "draws_per_pass", "stack_mb", "seconds"]
    print(machine(), f"freed memory {malloc}")
    print(table([], cols))
    for case in args.cases.split(","):
        t = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", CHILD, CASES[case], malloc], capture_output=True, text=True
        )
        if out.returncode != 0:
            sys.exit(f"{case} failed:\n{out.stderr[-2000:]}")
        row = {
            "case": case,
            **json.loads(out.stdout.strip().splitlines()[-1]),
            "wall_s": time.perf_counter() - t,
        }
        rows.append(row)
        print(table([row], cols).splitlines()[1], flush=True)
    write_json(args.json, "memory", rows, malloc=malloc)


if __name__ == "__main__":
    main()

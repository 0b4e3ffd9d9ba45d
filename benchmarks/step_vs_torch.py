"""Training-step time of the harness engine against PyTorch eager on the CPU, side by side.

Same MLP (Linear + activation blocks, linear readout), widths, depth, batch, dtype and thread count;
a step is forward + MSE loss + backward + SGD update. Medians of repeated runs, interleaved so that
machine load hits both alike. torch is optional: without it only the engine is timed.

    python benchmarks/step_vs_torch.py                 # the default grid
    python benchmarks/step_vs_torch.py --quick         # one small point
    python benchmarks/step_vs_torch.py --json out.json
    python benchmarks/step_vs_torch.py --threads 2     # both libraries on 2 threads (default 1)

Prints a table (engine ms, torch ms, ratio engine/torch) and, with --json, writes the rows.
"""

from __future__ import annotations

import argparse
import itertools
import json
import platform
import time

import numpy as np

from harness.nn import SGD, MSELoss, NetworkSpec, build_network

try:
    import torch
except ImportError:  # optional
    torch = None


def engine_step_fn(width: int, depth: int, batch: int, dtype: str, act: str):
    spec = NetworkSpec(
        input_dim=width,
        width=width,
        depth=depth,
        output_dim=width,
        activation=act,
        init="he_normal",
        dtype=dtype,
        seed=0,
    )
    net = build_network(spec)
    rng = np.random.default_rng(0)
    x = rng.standard_normal((batch, width)).astype(dtype)
    y = rng.standard_normal((batch, width)).astype(dtype)
    loss, opt = MSELoss(), SGD(net.parameters(), lr=1e-6)

    def step():
        loss.forward(net.forward(x), y)
        net.backward(loss.backward())
        opt.step()

    return step


def torch_step_fn(width: int, depth: int, batch: int, dtype: str, act: str):
    tdtype = getattr(torch, dtype)
    layers = []
    for _ in range(depth):
        layers += [
            torch.nn.Linear(width, width, dtype=tdtype),
            torch.nn.ReLU() if act == "relu" else torch.nn.Tanh(),
        ]
    model = torch.nn.Sequential(*layers, torch.nn.Linear(width, width, dtype=tdtype))
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(batch, width, dtype=tdtype, generator=gen)
    y = torch.randn(batch, width, dtype=tdtype, generator=gen)
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step():
        opt.zero_grad(set_to_none=False)
        loss = 0.5 * ((model(x) - y) ** 2).sum() / batch
        loss.backward()
        opt.step()

    return step


def median_ms(fn, repeats: int, inner: int) -> float:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        for _ in range(inner):
            fn()
        times.append((time.perf_counter() - t0) / inner)
    return 1e3 * float(np.median(times))


def blas_info() -> str:
    try:
        from threadpoolctl import threadpool_info

        info = [i for i in threadpool_info() if i.get("user_api") == "blas"]
        return ", ".join(f"{i['internal_api']} {i.get('architecture', '')} x{i['num_threads']}" for i in info)
    except ImportError:
        return "unknown (pip install threadpoolctl)"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="one small point")
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--json", help="write the rows to this file")
    ap.add_argument("--threads", type=int, default=1, help="threads for both BLAS and torch")
    args = ap.parse_args()
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(args.threads)
    except ImportError:
        print("threadpoolctl is not installed: numpy's BLAS uses its default thread count")
    if torch:
        torch.set_num_threads(args.threads)

    if args.quick:
        grid = [(64, 10, 64, "float32", "relu")]
    else:
        grid = list(
            itertools.product([64, 256, 1024], [10, 50], [64, 256], ["float32", "float64"], ["relu", "tanh"])
        )
    threads = args.threads
    print(
        f"machine: {platform.processor() or platform.machine()}, python {platform.python_version()}, "
        f"numpy {np.__version__}, torch {torch.__version__ if torch else 'not installed'}"
    )
    print(f"BLAS: {blas_info()}; threads (BLAS and torch): {threads}")
    if torch is None:
        print("torch is not installed: timing the engine only (pip install torch to compare)")
    print(
        f"{'width':>6}{'depth':>6}{'batch':>6}{'dtype':>8}{'act':>6}"
        f"{'engine ms':>11}{'torch ms':>10}{'ratio':>7}"
    )
    rows = []
    for width, depth, batch, dtype, act in grid:
        inner = max(1, int(2e8 // (width * width * depth * batch * 6)))
        eng = engine_step_fn(width, depth, batch, dtype, act)
        ref = torch_step_fn(width, depth, batch, dtype, act) if torch else None
        eng()  # warm up
        if ref:
            ref()
        e_ms, t_ms = [], []
        for _ in range(args.repeats):  # interleaved
            e_ms.append(median_ms(eng, 1, inner))
            if ref:
                t_ms.append(median_ms(ref, 1, inner))
        e = float(np.median(e_ms))
        t = float(np.median(t_ms)) if ref else float("nan")
        rows.append(
            dict(
                width=width,
                depth=depth,
                batch=batch,
                dtype=dtype,
                act=act,
                engine_ms=e,
                torch_ms=t,
                ratio=e / t if ref else None,
            )
        )
        print(
            f"{width:>6}{depth:>6}{batch:>6}{dtype:>8}{act:>6}{e:>11.3f}{t:>10.3f}"
            f"{(e / t if ref else float('nan')):>7.2f}",
            flush=True,
        )
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"threads": threads, "blas": blas_info(), "rows": rows}, f, indent=1)


if __name__ == "__main__":
    main()

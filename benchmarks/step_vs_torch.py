"""1. Training step of the engine against PyTorch eager on the CPU, and against its matmuls alone.

A step is forward + MSE loss + backward + SGD update on the same MLP (plain: Linear + activation
blocks; residual: h + F(h) blocks, F = Linear + activation), same width, depth, batch, dtype and thread
count, timed interleaved in one process (medians). "mm" is the time of the step's matrix products
alone (forward x W, backward x^T dY and dY W^T for every layer) on preallocated arrays: the BLAS floor;
"torch_mm" the same products in torch, whose matrix library may be faster than NumPy's.
torch is optional: without it only the engine and the matmuls are timed.

    python benchmarks/step_vs_torch.py [--quick] [--threads 1] [--json out.json]
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

try:
    import torch
except ImportError:  # optional
    torch = None


def engine_step(width, depth, batch, dtype, act, residual):
    spec = NetworkSpec(input_dim=width, width=width, depth=depth, output_dim=width, activation=act,
                       init="he_normal" if act == "relu" else "xavier_normal", skip=residual,
                       skip_scale="1/sqrt(depth)", dtype=dtype, seed=0)  # fmt: skip
    net = build_network(spec)
    rng = np.random.default_rng(0)
    x, y = (rng.standard_normal((batch, width)).astype(dtype) for _ in range(2))
    loss, opt = MSELoss(), SGD(net.parameters(), lr=1e-6)

    def step():
        loss.forward(net.forward(x), y)
        net.backward(loss.backward())
        opt.step()

    return step


def torch_step(width, depth, batch, dtype, act, residual):
    tdtype = getattr(torch, dtype)
    alpha = 1.0 / np.sqrt(depth)

    class Block(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.lin = torch.nn.Linear(width, width, dtype=tdtype)
            self.act = torch.nn.ReLU() if act == "relu" else torch.nn.Tanh()

        def forward(self, h):
            f = self.act(self.lin(h))
            return h + alpha * f if residual else f

    model = torch.nn.Sequential(*[Block() for _ in range(depth)], torch.nn.Linear(width, width, dtype=tdtype))
    gen = torch.Generator().manual_seed(0)
    x, y = (torch.randn(batch, width, dtype=tdtype, generator=gen) for _ in range(2))
    opt = torch.optim.SGD(model.parameters(), lr=1e-6)

    def step():
        opt.zero_grad(set_to_none=False)
        (0.5 * ((model(x) - y) ** 2).sum() / batch).backward()
        opt.step()

    return step


def matmuls_only(width, depth, batch, dtype):
    rng = np.random.default_rng(0)
    x, d = (rng.standard_normal((batch, width)).astype(dtype) for _ in range(2))
    w = rng.standard_normal((width, width)).astype(dtype)
    out, gw = np.empty((batch, width), dtype), np.empty((width, width), dtype)

    def step():
        for _ in range(depth + 1):
            np.matmul(x, w, out=out)
            np.matmul(x.T, d, out=gw)
            np.matmul(d, w.T, out=out)

    return step


def own_matmuls_only(width, depth, batch, dtype):
    """The step's products on arrays of its own size: a weight, an activation, a gradient and a weight
    gradient per layer, all distinct (as in the network), so the weights stream from memory as in the
    step; ``matmuls_only`` reuses one of each, which stays in cache."""
    rng = np.random.default_rng(0)
    xs, ds = (rng.standard_normal((depth + 1, batch, width)).astype(dtype) for _ in range(2))
    ws = rng.standard_normal((depth + 1, width, width)).astype(dtype)
    gws, outs = np.empty_like(ws), np.empty_like(xs)

    def step():
        for l in range(depth + 1):  # noqa: E741
            np.matmul(xs[l], ws[l], out=outs[l])
        for l in range(depth, -1, -1):  # noqa: E741
            np.matmul(xs[l].T, ds[l], out=gws[l])
            np.matmul(ds[l], ws[l].T, out=outs[l])

    return step


def torch_matmuls_only(width, depth, batch, dtype):
    """The same products in torch (its BLAS): tells how much of a gap is the matrix library's."""
    tdtype = getattr(torch, dtype)
    gen = torch.Generator().manual_seed(0)
    x, d = (torch.randn(batch, width, dtype=tdtype, generator=gen) for _ in range(2))
    w = torch.randn(width, width, dtype=tdtype, generator=gen)
    out, gw = torch.empty(batch, width, dtype=tdtype), torch.empty(width, width, dtype=tdtype)

    def step():
        for _ in range(depth + 1):
            torch.mm(x, w, out=out)
            torch.mm(x.T, d, out=gw)
            torch.mm(d, w.T, out=out)

    return step


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="a few representative points")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--only", help="WIDTH,DEPTH,BATCH: the full grid's points of that shape only")
    ap.add_argument("--json")
    args = ap.parse_args()
    limit_threads(args.threads)
    if args.quick:
        grid = [(64, 10, 64, "float32", "tanh", False), (256, 10, 64, "float32", "relu", False),
                (256, 50, 256, "float64", "tanh", True), (1024, 10, 256, "float32", "relu", False)]  # fmt: skip
    else:
        grid = list(itertools.product([64, 256, 1024], [10, 50], [64, 256], ["float32", "float64"],
                                      ["tanh", "relu"], [False, True]))  # fmt: skip
    if args.only:
        shape = tuple(map(int, args.only.split(",")))
        grid = [point for point in grid if point[:3] == shape]
    print(f"{machine()} threads={args.threads} torch={torch.__version__ if torch else 'not installed'}")
    rows = []
    cols = [
        "width",
        "depth",
        "batch",
        "dtype",
        "act",
        "kind",
        "engine_ms",
        "torch_ms",
        "mm_ms",
        "torch_mm_ms",
        "vs_torch",
        "vs_mm",
    ]
    print(table([], cols))
    for width, depth, batch, dtype, act, residual in grid:
        fns = {"engine": engine_step(width, depth, batch, dtype, act, residual),
               "mm": matmuls_only(width, depth, batch, dtype)}  # fmt: skip
        if torch:
            fns["torch"] = torch_step(width, depth, batch, dtype, act, residual)
            fns["torch_mm"] = torch_matmuls_only(width, depth, batch, dtype)
        ms = median_ms(fns, args.repeats, budget_s=0.6)
        row = dict(width=width, depth=depth, batch=batch, dtype=dtype, act=act,
                   kind="residual" if residual else "plain", engine_ms=ms["engine"], torch_ms=ms.get("torch", np.nan),
                   mm_ms=ms["mm"], torch_mm_ms=ms.get("torch_mm", np.nan), vs_torch=ms["engine"] / ms.get("torch", np.nan), vs_mm=ms["engine"] / ms["mm"])  # fmt: skip
        rows.append(row)
        print(table([row], cols).splitlines()[1], flush=True)
    write_json(args.json, "step_vs_torch", rows, threads=args.threads,
               torch=torch.__version__ if torch else None)  # fmt: skip


if __name__ == "__main__":
    main()

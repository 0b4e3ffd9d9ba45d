"""Shared by the benchmark scripts: thread limits, BLAS report, timing, tables, JSON."""

from __future__ import annotations

import json
import os
import platform
import time
from collections.abc import Callable

import numpy as np


def limit_threads(n: int) -> None:
    """Limit numpy's BLAS (and torch, if loaded) to ``n`` threads."""
    from threadpoolctl import threadpool_limits

    threadpool_limits(n)
    try:
        import torch

        torch.set_num_threads(n)
    except ImportError:
        pass


def blas_info() -> str:
    from threadpoolctl import threadpool_info

    found = [i for i in threadpool_info() if i.get("user_api") == "blas"]
    return ", ".join(f"{i['internal_api']} {i.get('version', '')} {i.get('architecture', '')} x{i['num_threads']}"
                     for i in found) or "none found"  # fmt: skip


def machine() -> dict:
    return {
        "cpu": platform.processor() or platform.machine(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
        "numpy": np.__version__,
        "blas": blas_info(),
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE", ""),
    }


def seconds(fn: Callable[[], object], inner: int = 1) -> float:
    t0 = time.perf_counter()
    for _ in range(inner):
        fn()
    return (time.perf_counter() - t0) / inner


def median_ms(
    fns: dict[str, Callable[[], object]], repeats: int = 7, budget_s: float = 0.2
) -> dict[str, float]:
    """Median milliseconds per call of each function, measured interleaved (so load hits all alike);
    each repeat runs enough calls to last about ``budget_s / repeats``."""
    inner = {}
    for name, fn in fns.items():
        fn()  # warm up
        once = seconds(fn)
        inner[name] = max(1, int(budget_s / repeats / max(once, 1e-6)))
    samples = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(seconds(fn, inner[name]))
    return {name: 1e3 * float(np.median(v)) for name, v in samples.items()}


def table(rows: list[dict], columns: list[str]) -> str:
    """A header line and one line per row, each column at least 9 characters wide."""

    def cell(v: object) -> str:
        return f"{v:.3g}" if isinstance(v, float) else str(v)

    widths = [max(9, len(c)) for c in columns]
    lines = ["  ".join(c.rjust(w) for c, w in zip(columns, widths, strict=True))]
    lines += [
        "  ".join(cell(r.get(c, "")).rjust(w) for c, w in zip(columns, widths, strict=True)) for r in rows
    ]
    return "\n".join(lines)


def write_json(path: str | None, name: str, rows: list[dict], **meta: object) -> None:
    if path:
        with open(path, "w") as f:
            json.dump({"benchmark": name, "machine": machine(), **meta, "rows": rows}, f, indent=1)


def overrides_of(run) -> dict[str, str]:  # noqa: ANN001 - an MLflow Run
    """The job's overrides as written (the ``harness.overrides`` tag): ``tracking.*`` is no param."""
    words = run.data.tags.get("harness.overrides", "").split()
    return dict(w.lstrip("+~").split("=", 1) for w in words if "=" in w)

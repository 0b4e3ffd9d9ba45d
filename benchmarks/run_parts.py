"""12. Where a run's time goes, alone in one process: ``run_study`` of the default init config at a few
depths (gradient check on, as by default), and that run's per-run figures, drawn and encoded as
``tracking.Run.log_figure`` writes them (into memory, no upload); medians. To compare with an older
checkout, run this script with that checkout first on the path. The process is set up as a ``harness``
job's is, where the checkout has ``harness.runtime`` (freed memory kept, the imports' objects frozen
after the warm-up run); ``--plain`` leaves it as Python starts:

    python benchmarks/run_parts.py [--depths 10,20,30,50] [--plain] [--json out.json]
    git worktree add /tmp/before <commit> && PYTHONPATH=/tmp/before python benchmarks/run_parts.py
"""

from __future__ import annotations

import argparse
import io
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table, write_json  # noqa: E402


class _MemoryRun:
    """What ``runner._log_figures`` needs of a run: ``log_figure``, as the tracking module writes it."""

    def __init__(self) -> None:
        from harness.tracking import runs

        level = getattr(runs, "PNG_LEVEL", None)  # absent before PNGs were written at level 1
        self.png = {} if level is None else {"pil_kwargs": {"compress_level": level}}

    def log_figure(self, figure, path: str) -> None:  # noqa: ANN001
        figure.savefig(io.BytesIO(), format="png", **self.png)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--depths", default="10,20,30,50")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--plain", action="store_true", help="the process as Python starts it")
    ap.add_argument("--json")
    args = ap.parse_args()
    try:
        from harness import runtime
    except ImportError:  # an older checkout
        runtime = None
    tuned = runtime is not None and not args.plain
    if tuned:
        runtime.keep_freed_memory()
    import harness
    from harness import runner
    from harness.config import parse_config
    from harness.study import run_study

    print(f"{machine()} harness from {Path(harness.__file__).parent}, tuned as a job process: {tuned}")
    cols = ["depth", "study_ms", "figures_ms"]
    print(table([], cols))
    run, rows = _MemoryRun(), []
    for depth in map(int, args.depths.split(",")):
        cfg = parse_config({"model": {"depth": depth}})
        result = run_study(cfg)
        runner._log_figures(run, result, "warm")  # imports, fonts: once a process
        if tuned:
            runtime.freeze_long_lived()
        study, figures = [], []
        for i in range(args.repeats):
            t = time.perf_counter()
            result = run_study(cfg)
            study.append(time.perf_counter() - t)
            t = time.perf_counter()
            runner._log_figures(run, result, f"bench-job-{i}")
            figures.append(time.perf_counter() - t)
        row = dict(depth=depth, study_ms=1e3 * np.median(study), figures_ms=1e3 * np.median(figures))
        rows.append(row)
        print(table([row], cols).splitlines()[1], flush=True)
    write_json(args.json, "run_parts", rows, harness=str(Path(harness.__file__).parent), tuned=tuned)


if __name__ == "__main__":
    main()

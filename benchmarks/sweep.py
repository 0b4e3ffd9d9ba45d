"""4. A whole sweep: the 3 x 3 x 3 x 2 init-mode grid (depth 10, 30, 50 x sigmoid, tanh, relu x init
scale 0.5, 1, 2 x skip off, on; 54 runs) with MLflow logging at default settings, once with the basic
launcher and once with joblib on the local cores: wall time, runs per minute, and the share of the
runs' time spent in MLflow calls and in figures (each run logs ``time/*`` metrics).

    python benchmarks/sweep.py [--launchers basic,joblib] [--json out.json]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table, write_json  # noqa: E402

GRID = ["model.depth=10,30,50", "model.activation=sigmoid,tanh,relu", "model.init_scale=0.5,1,2",
        "model.skip=false,true"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launchers", default="basic,joblib")
    ap.add_argument("--extra", default="", help="more overrides, e.g. tracking.figures=false")
    ap.add_argument("--json")
    args = ap.parse_args()
    from mlflow.tracking import MlflowClient

    rows = []
    cols = ["launcher", "runs", "wall_s", "runs_per_min", "run_s", "study_pct", "mlflow_pct", "figures_pct"]
    print(machine())
    print(table([], cols))
    for launcher in args.launchers.split(","):
        with tempfile.TemporaryDirectory() as tmp:
            env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
            command = [sys.executable, "-m", "harness", "-m", f"launcher={launcher}", "study=bench", *GRID,
                       *args.extra.split()]  # fmt: skip
            t0 = time.perf_counter()
            out = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
            wall = time.perf_counter() - t0
            if out.returncode != 0:
                sys.exit(f"sweep failed:\n{out.stderr[-2000:]}")
            client = MlflowClient(f"sqlite:///{tmp}/mlruns/mlflow.db")
            exp = client.get_experiment_by_name("bench")
            runs = [r for r in client.search_runs([exp.experiment_id], max_results=1000)
                    if "mlflow.parentRunId" in r.data.tags]  # fmt: skip
            total = {
                k: sum(r.data.metrics[f"time/{k}_s"] for r in runs)
                for k in ("study", "tracking", "figures", "total")
            }
            row = dict(launcher=launcher, runs=len(runs), wall_s=wall, runs_per_min=60 * len(runs) / wall,
                       run_s=total["total"] / len(runs), study_pct=100 * total["study"] / total["total"],
                       mlflow_pct=100 * total["tracking"] / total["total"],
                       figures_pct=100 * total["figures"] / total["total"])  # fmt: skip
            for depth in (10, 30, 50):  # mean seconds per run by depth: where the time goes
                mine = [r.data.metrics for r in runs if r.data.params["model.depth"] == str(depth)]
                for k in ("study", "tracking", "figures"):
                    row[f"d{depth}_{k}_s"] = sum(m[f"time/{k}_s"] for m in mine) / max(1, len(mine))
            rows.append(row)
            print(table([row], cols).splitlines()[1], flush=True)
            print("   seconds per run by depth:", {k: round(v, 3) for k, v in row.items() if k[0] == "d"})
    write_json(args.json, "sweep", rows, grid=GRID, extra=args.extra)


if __name__ == "__main__":
    main()

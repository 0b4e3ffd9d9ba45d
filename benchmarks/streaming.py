"""6. Streaming cost: train-mode runs whose series (loss, accuracy, per-layer gradient and activation
statistics) are streamed to the store while they train, at several ``train.log_every``: the share of
each run's time spent in MLflow calls (streaming included), the rows written, and the study's time;
each point also runs with ``tracking.flush_seconds=1e9`` (every row written once, at the end), which
tells what streaming itself costs.

    python benchmarks/streaming.py [--steps 2000] [--log-every 1,10,100] [--depths 8,30] [--json out.json]
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
from _common import machine, overrides_of, table, write_json  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--log-every", default="1,10,100")
    ap.add_argument("--depths", default="8,30")
    ap.add_argument("--json")
    args = ap.parse_args()
    from mlflow.tracking import MlflowClient

    cols = [
        "depth",
        "log_every",
        "flush_s",
        "rows",
        "total_s",
        "study_s",
        "mlflow_s",
        "mlflow_pct",
        "figures_s",
    ]
    print(machine())
    print(table([], cols))
    with tempfile.TemporaryDirectory() as tmp:
        env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
        command = [sys.executable, "-m", "harness", "-m", "study=bench_stream", "mode=train", "data=spirals",
                   "loss=cross_entropy", "optim=adam", "model.width=64", "model.activation=tanh",
                   f"train.steps={args.steps}", f"model.depth={args.depths}",
                   f"train.log_every={args.log_every}", "tracking.flush_seconds=2,1e9"]  # fmt: skip
        t0 = time.perf_counter()
        out = subprocess.run(command, cwd=tmp, env=env, capture_output=True, text=True)
        wall = time.perf_counter() - t0
        if out.returncode != 0:
            sys.exit(f"sweep failed:\n{out.stderr[-2000:]}")
        uri = f"sqlite:///{tmp}/mlruns/mlflow.db"
        client = MlflowClient(uri)
        exp = client.get_experiment_by_name("bench_stream")
        runs = [r for r in client.search_runs([exp.experiment_id], max_results=1000)
                if "mlflow.parentRunId" in r.data.tags]  # fmt: skip
        import sqlite3

        with sqlite3.connect(f"{tmp}/mlruns/mlflow.db") as db:
            counts = dict(db.execute("SELECT run_uuid, COUNT(*) FROM metrics GROUP BY run_uuid").fetchall())
        rows = []
        for r in runs:
            m, p = r.data.metrics, r.data.params
            # the run's own clock (create to end) also covers the last batch, written after time/*
            total = (r.info.end_time - r.info.start_time) / 1000
            mlflow_s = total - m["time/study_s"] - m["time/figures_s"]
            rows.append(dict(depth=int(p["model.depth"]), log_every=int(p["train.log_every"]),
                             flush_s=float(overrides_of(r)["tracking.flush_seconds"]),
                             rows=counts.get(r.info.run_id, 0), total_s=total,
                             study_s=m["time/study_s"], mlflow_s=mlflow_s, mlflow_pct=100 * mlflow_s / total,
                             figures_s=m["time/figures_s"]))  # fmt: skip
        rows.sort(key=lambda r: (r["depth"], r["log_every"], r["flush_s"]))
        print("\n".join(table(rows, cols).splitlines()[1:]))
        print(f"sweep wall time {wall:.1f} s")
    write_json(args.json, "streaming", rows, steps=args.steps, wall_s=wall)


if __name__ == "__main__":
    main()

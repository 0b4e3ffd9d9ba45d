"""9. One init-mode sweep through a launcher and a store: wall time, runs per minute, each run's own
time, the launcher's overhead per job, and every metric row counted in the store against the rows the
same job writes on a local SQLite store (so "zero lost rows" is a count, not a hope).

    python benchmarks/cluster_sweep.py --launcher joblib                       # local SQLite
    python benchmarks/cluster_sweep.py --launcher slurm --uri http://127.0.0.1:5000 \\
        --db postgresql+psycopg2://postgres@127.0.0.1:5432/mlflow [--jobs 16] [--json out.json]

The sweep is ``model.depth=10,20 x seed=0..jobs/2-1`` (figures on). ``--db`` is the server's database,
read directly to count rows. Credentials: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
``--extra`` passes more overrides (e.g. ``hydra.launcher.ray.init.address=HOST:PORT``).
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

DEPTHS = (10, 20)


def sweep(cwd: str, launcher: str, study: str, jobs: int, uri: str | None, extra: list[str]) -> float:
    seeds = ",".join(map(str, range(max(1, jobs // len(DEPTHS)))))
    words = ["-m", f"launcher={launcher}", f"study={study}", "mode=init", f"model.depth={','.join(map(str, DEPTHS))}",
             f"seed={seeds}", *extra]  # fmt: skip
    if uri:
        words += ["tracking=server", f"tracking.uri={uri}"]
    env = (
        dict(os.environ)
        if uri
        else {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    )
    t0 = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", *words], cwd=cwd, env=env, capture_output=True,
                          text=True)  # fmt: skip
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"the sweep failed:\n{done.stderr[-3000:]}")
    return wall


def stored_rows(uri: str, db: str | None, run_ids: list[str]) -> dict[str, int]:
    """Metric rows per run, counted in the database itself."""
    import sqlalchemy as sa

    engine = sa.create_engine(db or uri)
    with engine.connect() as conn:
        got = conn.execute(sa.text("select run_uuid, count(*) from metrics group by run_uuid")).all()
    wanted = set(run_ids)
    return {r: n for r, n in got if r in wanted}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--launcher", required=True, help="basic, joblib, slurm, submitit_local, ray")
    ap.add_argument("--uri", help="an MLflow server (default: a scratch SQLite store)")
    ap.add_argument("--db", help="the server's database, to count rows")
    ap.add_argument("--jobs", type=int, default=16)
    ap.add_argument("--parallel", type=int, default=2, help="jobs that run at once (for the overhead)")
    ap.add_argument("--extra", default="", help="more overrides, space separated")
    ap.add_argument("--json")
    args = ap.parse_args()
    os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
    from mlflow.tracking import MlflowClient

    study = f"bench_cluster_{args.launcher}_{int(time.time())}"
    with tempfile.TemporaryDirectory() as tmp:
        # the rows each depth's job writes, from a local SQLite sweep of one seed
        (Path(tmp) / "ref").mkdir()
        sweep(str(Path(tmp) / "ref"), "basic", "ref", len(DEPTHS), None, [])
        ref_uri = f"sqlite:///{tmp}/ref/mlruns/mlflow.db"
        ref = MlflowClient(ref_uri)
        runs = ref.search_runs(
            [ref.get_experiment_by_name("ref").experiment_id], "tags.mlflow.parentRunId != ''"
        )
        counts = stored_rows(ref_uri, None, [r.info.run_id for r in runs])
        expected = {r.data.params["model.depth"]: counts[r.info.run_id] for r in runs}
        wall = sweep(tmp, args.launcher, study, args.jobs, args.uri, args.extra.split())
        uri = args.uri or f"sqlite:///{tmp}/mlruns/mlflow.db"
        c = MlflowClient(uri)
        every = c.search_runs([c.get_experiment_by_name(study).experiment_id], max_results=10000)
        parent = [r for r in every if r.data.tags.get("harness.kind") == "sweep"]
        kids = [r for r in every if "mlflow.parentRunId" in r.data.tags]
        got = stored_rows(uri, args.db if args.uri else None, [r.info.run_id for r in kids])
    want = {r.info.run_id: expected[r.data.params["model.depth"]] for r in kids}
    lost = sum(max(0, want[i] - got.get(i, 0)) for i in want)
    statuses = sorted({r.info.status for r in kids})
    run_s = sum((r.info.end_time - r.info.start_time) / 1000 for r in kids) / len(kids)
    row = dict(launcher=args.launcher, store="server" if args.uri else "sqlite", jobs=len(kids), wall_s=wall,
               runs_per_min=60 * len(kids) / wall, run_s=run_s,
               overhead_s=wall * args.parallel / len(kids) - run_s, status="/".join(statuses),
               parent=parent[0].info.status if parent else "none", rows_expected=sum(want.values()),
               rows_stored=sum(got.values()), rows_lost=lost)  # fmt: skip
    cols = list(row)
    print(machine())
    print(table([row], cols))
    write_json(args.json, "cluster_sweep", [row], uri=args.uri, expected_rows_per_depth=expected)


if __name__ == "__main__":
    main()

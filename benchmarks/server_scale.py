"""8. Query times of a PostgreSQL-backed MLflow server as a study grows to 10,000+ runs: the queries
the harness makes at every launch (lost runs, sweeps, a parent's children, a finished run by config
hash) and the ones a researcher makes in the UI (newest 100, best 100 by a metric, a param filter),
timed through the server at several experiment sizes; then a second, small experiment (the
"one experiment per study" layout) queried while the big one exists.

    python benchmarks/server_scale.py --uri http://127.0.0.1:5000 --db postgresql+psycopg2://...@host/mlflow
        [--sizes 1010,2525,5050,10100] [--small 1010] [--writers 2] [--json out.json]

Runs have the shape of a real harness init run of the default config, made first into a scratch
SQLite store (its params, tag keys and every metric key and step), 100 children per sweep parent,
with values from a seeded generator. They are written straight into
the server's database with MLflow's own SqlAlchemyStore by ``--writers`` processes (what the store
holds, not how it got there, sets query times); the first 200 also go through the server, two
writers, to measure its ingest rate. Credentials: MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD.
"""

from __future__ import annotations

import argparse
import multiprocessing as mp
import os
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, table, write_json  # noqa: E402

os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")
CHILDREN = 100  # per sweep parent, as in a 100-job sweep
REPEATS = 5


def real_shape(tmp: str) -> dict:
    """Param keys and values, tag keys and (metric key, step) pairs of one real harness init run (the
    default config, no figures), read back from a scratch SQLite store."""
    from mlflow.tracking import MlflowClient

    env = {k: v for k, v in os.environ.items() if not k.startswith("MLFLOW_TRACKING")}
    done = subprocess.run([sys.executable, "-m", "harness", "study=shape", "tracking.figures=false"], cwd=tmp,
                          env=env, capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        sys.exit(f"the shape run failed:\n{done.stderr[-2000:]}")
    c = MlflowClient(f"sqlite:///{tmp}/mlruns/mlflow.db")
    run = c.search_runs([c.get_experiment_by_name("shape").experiment_id])[0]
    steps = [(k, m.step) for k in run.data.metrics for m in c.get_metric_history(run.info.run_id, k)]
    tags = [k for k in run.data.tags if not k.startswith("mlflow.")]
    return {"params": dict(run.data.params), "tags": tags, "metrics": steps}


def entities(
    shape: dict, rng: np.random.Generator, index: int, parent: str | None
) -> tuple[list, list, list]:
    """One run of ``shape``: its params with the swept ones varied, random tag values and metric values."""
    from mlflow.entities import Metric, Param, RunTag

    swept = {"model.depth": str([10, 20, 50, 100, 200][index % 5]),
             "model.activation": ["relu", "tanh"][index // 5 % 2], "seed": str(index % 7)}  # fmt: skip
    p = [Param(k, swept.get(k, v)) for k, v in shape["params"].items()]
    t = [RunTag(k, f"{rng.integers(0, 1 << 62):x}") for k in shape["tags"]]
    if parent:
        t.append(RunTag("mlflow.parentRunId", parent))
    now, metrics = int(time.time() * 1000), shape["metrics"]
    m = [
        Metric(k, float(v), now, s) for (k, s), v in zip(metrics, rng.normal(size=len(metrics)), strict=True)
    ]
    return p, t, m


def write_direct(shape: dict, db: str, experiment_id: str, start: int, stop: int, seed: int) -> None:
    """Runs ``start..stop`` (every CHILDREN-th a sweep parent) straight into the database."""
    from mlflow.entities import RunStatus
    from mlflow.store.tracking.sqlalchemy_store import SqlAlchemyStore

    store = SqlAlchemyStore(db, "/tmp/unused-artifacts")
    rng = np.random.default_rng([seed, start])
    parent = None
    for i in range(start, stop):
        if i % (CHILDREN + 1) == 0:
            run = store.create_run(experiment_id, "bench", int(time.time() * 1000),
                                   [_tag("harness.kind", "sweep")], f"sweep {i}")  # fmt: skip
            store.update_run_info(run.info.run_id, RunStatus.FINISHED, int(time.time() * 1000), None)
            parent = run.info.run_id
            continue
        p, t, m = entities(shape, rng, i, parent)
        run = store.create_run(experiment_id, "bench", int(time.time() * 1000), t, f"job {i}")
        store.log_batch(run.info.run_id, metrics=m, params=p, tags=[])
        store.update_run_info(run.info.run_id, RunStatus.FINISHED, int(time.time() * 1000), None)


def _tag(k: str, v: str):  # noqa: ANN202
    from mlflow.entities import RunTag

    return RunTag(k, v)


def fill(shape: dict, db: str, experiment_id: str, start: int, stop: int, writers: int, seed: int) -> float:
    """Write runs ``start..stop`` with ``writers`` processes; the seconds it took."""
    t0 = time.perf_counter()
    block = CHILDREN + 1  # a writer's share starts at a sweep parent
    edges = [start + (stop - start) // block * k // writers * block for k in range(writers)] + [stop]
    ctx = mp.get_context("spawn")
    procs = [ctx.Process(target=write_direct, args=(shape, db, experiment_id, int(a), int(b), seed))
             for a, b in zip(edges[:-1], edges[1:], strict=True)]  # fmt: skip
    for p in procs:
        p.start()
    for p in procs:
        p.join()
        if p.exitcode != 0:
            sys.exit(f"a writer failed (exit code {p.exitcode})")
    return time.perf_counter() - t0


def ingest_rate(shape: dict, uri: str, experiment_id: str, n: int, writers: int = 2) -> dict:
    """Runs of the same shape through the server, as the harness writes them (create with tags, one
    log_batch, terminate): runs per second and the client's ms per call."""
    from mlflow.tracking import MlflowClient

    client = MlflowClient(uri)
    parent = client.create_run(experiment_id, run_name="ingest parent", tags={"harness.kind": "sweep"})
    spent = {"create": [], "log_batch": [], "terminate": []}

    def one(i: int) -> None:
        p, t, m = entities(shape, np.random.default_rng([1, i]), i, parent.info.run_id)
        c0 = time.perf_counter()
        run = client.create_run(experiment_id, run_name=f"ingest {i}", tags={x.key: x.value for x in t})
        c1 = time.perf_counter()
        client.log_batch(run.info.run_id, metrics=m, params=p)
        c2 = time.perf_counter()
        client.set_terminated(run.info.run_id)
        spent["create"].append(c1 - c0)
        spent["log_batch"].append(c2 - c1)
        spent["terminate"].append(time.perf_counter() - c2)

    t0 = time.perf_counter()
    with ThreadPoolExecutor(writers) as pool:
        list(pool.map(one, range(n)))
    wall = time.perf_counter() - t0
    client.set_terminated(parent.info.run_id)
    return {"runs": n, "writers": writers, "runs_per_s": n / wall,
            **{f"{k}_ms": 1e3 * float(np.median(v)) for k, v in spent.items()}}  # fmt: skip


def queries(uri: str, experiment_id: str) -> dict[str, float]:
    """Median ms of each query (REPEATS times) against the experiment."""
    from mlflow.tracking import MlflowClient

    from harness import tracking

    client = MlflowClient(uri)
    some = client.search_runs([experiment_id], "tags.`harness.kind` = 'sweep'", max_results=1)[0]
    child = client.search_runs(
        [experiment_id], f"tags.mlflow.parentRunId = '{some.info.run_id}'", max_results=1
    )
    config_hash = child[0].data.tags["harness.config_hash"]
    cases = {
        "lost_runs": lambda: tracking.mark_lost(uri, experiment_id),
        "sweeps": lambda: tracking.sweeps(uri, experiment_id),
        "children_100": lambda: tracking.children(uri, experiment_id, some.info.run_id),
        "by_config_hash": lambda: tracking.finished_runs_by_hash(uri, experiment_id, config_hash),
        "newest_100": lambda: client.search_runs([experiment_id], max_results=100),
        "best_100_by_metric": lambda: client.search_runs(
            [experiment_id], max_results=100, order_by=["metrics.grad_h_slope DESC"]
        ),  # fmt: skip
        "page_1000": lambda: client.search_runs([experiment_id], max_results=1000),
        "param_filter_100": lambda: client.search_runs(
            [experiment_id],
            "params.`model.depth` = '50' and params.`model.activation` = 'tanh'",
            max_results=100,
        ),
    }
    out = {}
    for name, fn in cases.items():
        samples = []
        for _ in range(REPEATS):
            t0 = time.perf_counter()
            fn()
            samples.append(time.perf_counter() - t0)
        out[name] = 1e3 * float(np.median(samples))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", required=True, help="the MLflow server, http://host:port")
    ap.add_argument("--db", required=True, help="the server's backend store URI (SQLAlchemy)")
    ap.add_argument("--sizes", default="1010,2525,5050,10100")
    ap.add_argument("--small", type=int, default=1010, help="runs of the second experiment")
    ap.add_argument("--writers", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    from mlflow.tracking import MlflowClient

    client = MlflowClient(args.uri)
    stamp = int(time.time())
    big = client.create_experiment(f"bench_scale_{stamp}")
    print(machine(), flush=True)
    with tempfile.TemporaryDirectory() as tmp:
        shape = real_shape(tmp)
    print(
        f"run shape: {len(shape['params'])} params, {len(shape['tags'])} tags, "
        f"{len({k for k, _ in shape['metrics']})} metric keys, {len(shape['metrics'])} metric rows",
        flush=True,
    )
    ingest = ingest_rate(shape, args.uri, client.create_experiment(f"bench_ingest_{stamp}"), 200)
    print(f"ingest through the server: {ingest}", flush=True)
    names = ["lost_runs", "sweeps", "children_100", "by_config_hash", "newest_100", "best_100_by_metric",
             "page_1000", "param_filter_100"]  # fmt: skip
    cols = ["experiment", "runs", "fill_s", *names]
    print(table([], cols), flush=True)
    rows, done = [], 0
    for size in map(int, args.sizes.split(",")):
        fill_s = fill(shape, args.db, big, done, size, args.writers, seed=stamp)
        done = size
        rows.append(dict(experiment="one big", runs=size, fill_s=fill_s, **queries(args.uri, big)))
        print(table([rows[-1]], cols).splitlines()[1], flush=True)
    small = client.create_experiment(f"bench_scale_small_{stamp}")
    fill_s = fill(shape, args.db, small, 0, args.small, args.writers, seed=stamp + 1)
    rows.append(dict(experiment="small beside", runs=args.small, fill_s=fill_s, **queries(args.uri, small)))
    print(table([rows[-1]], cols).splitlines()[1], flush=True)
    write_json(args.json, "server_scale", rows, uri=args.uri, ingest=ingest)


if __name__ == "__main__":
    main()

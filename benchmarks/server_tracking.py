"""7. Tracking cost on an MLflow server: every HTTP request a sweep makes, timed in the client and
attributed to the run it writes, so the cost of one run's records (create, params + tags + metrics,
status) and of its artifacts (figures, arrays, config) can be read per run, with and without figures.

    python benchmarks/server_tracking.py --uri http://127.0.0.1:5000 [--jobs 4] [--depth 10] [--json out.json]

Credentials come from MLFLOW_TRACKING_USERNAME / MLFLOW_TRACKING_PASSWORD, as for the harness. The
sweep is ``seed=0..jobs-1 x tracking.figures=true,false`` in init mode through the basic launcher (one
process, jobs one after another, so no job's requests wait on another's). Times are the client's
wall time per request (server, database and loopback included), medians over the runs; per-launch requests (experiment
lookup, lost-run and resume searches, the parent run) are reported apart.
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
from _common import machine, overrides_of, table, write_json  # noqa: E402

# the run a request writes: run_id in a JSON body or a query, or the run folder of an artifact path
RUN_ID = re.compile(rb'run_id(?:": ?"|=)([0-9a-f]{32})|/([0-9a-f]{32})/artifacts/')


def child(out: str, argv: list[str]) -> None:
    """Run ``harness argv`` in this process with every requests call recorded into ``out`` (JSON)."""
    import requests

    calls: list[dict] = []
    send = requests.Session.send

    def timed(self, request, **kwargs):  # noqa: ANN001, ANN202 - requests' own signature
        clock = time.perf_counter()
        try:
            return send(self, request, **kwargs)
        finally:
            body = request.body if isinstance(request.body, bytes | str) else b""  # a PUT sends a file
            body = body.encode() if isinstance(body, str) else body
            found = RUN_ID.search(request.url.encode() + b" " + body)
            path = re.sub(r"/artifacts/.*", "/artifacts/...", request.path_url.split("?")[0])
            calls.append(dict(method=request.method, path=path, seconds=time.perf_counter() - clock,
                              run_id=(found.group(1) or found.group(2)).decode() if found else None,
                              child=b"mlflow.parentRunId" in body))  # fmt: skip

    requests.Session.send = timed
    sys.argv = ["harness", *argv]
    from harness.app import main

    try:
        main()
    finally:
        Path(out).write_text(json.dumps(calls))


def kind(call: dict) -> str:
    if "mlflow-artifacts" in call["path"]:
        return "artifacts"
    return call["path"].rsplit("/mlflow/", 1)[-1]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--uri", required=True, help="the MLflow server, http://host:port")
    ap.add_argument("--jobs", type=int, default=4, help="seeds per figures setting")
    ap.add_argument("--depth", type=int, default=10)
    ap.add_argument("--label", default="", help="a name for this server in the table")
    ap.add_argument("--json")
    args = ap.parse_args()
    from mlflow.tracking import MlflowClient

    study = f"bench_server_{int(time.time())}"
    overrides = ["-m", f"study={study}", "mode=init", "tracking=server", f"tracking.uri={args.uri}",
                 f"model.depth={args.depth}", f"seed={','.join(map(str, range(args.jobs)))}",
                 "tracking.figures=true,false", "launcher=basic"]  # fmt: skip
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "calls.json"
        t0 = time.perf_counter()
        done = subprocess.run([sys.executable, __file__, "--child", str(out), "--", *overrides], cwd=tmp,
                              capture_output=True, text=True)  # fmt: skip
        wall = time.perf_counter() - t0
        if done.returncode != 0:
            sys.exit(f"sweep failed:\n{done.stderr[-3000:]}")
        calls = json.loads(out.read_text())
    client = MlflowClient(args.uri)
    exp = client.get_experiment_by_name(study)
    runs = {r.info.run_id: r for r in client.search_runs([exp.experiment_id], max_results=1000)}
    kids = {i: r for i, r in runs.items() if "mlflow.parentRunId" in r.data.tags}
    per_run: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
    launch: dict[str, list[float]] = defaultdict(list)
    order = sorted(kids, key=lambda i: kids[i].info.start_time)
    # a child's create request names no run yet: it goes to the children in the order they started
    creates = iter(order)
    for c in calls:
        if kind(c) == "runs/create" and c["child"]:
            per_run[next(creates)]["runs/create"].append(c["seconds"])
        elif c["run_id"] in kids and kind(c) != "metrics/get-history":
            per_run[c["run_id"]][kind(c)].append(c["seconds"])
        # (a child's profile read back by the launcher for the parent's figure is the sweep's cost)
        else:
            launch[kind(c)].append(c["seconds"])
    rows = []
    for figures in ("True", "False"):
        chosen = [i for i in order if overrides_of(kids[i])["tracking.figures"].lower() == figures.lower()]
        records, artifacts, requests_n, wall_run = [], [], [], []
        breakdown: dict[str, list[float]] = defaultdict(list)
        for i in chosen:
            calls_i = per_run[i]
            records.append(sum(sum(v) for k, v in calls_i.items() if k != "artifacts"))
            artifacts.append(sum(calls_i.get("artifacts", [])))
            requests_n.append(sum(len(v) for v in calls_i.values()))
            wall_run.append((kids[i].info.end_time - kids[i].info.start_time) / 1000)
            for k, v in calls_i.items():
                breakdown[k] += v
        n, med = len(chosen), lambda v: 1e3 * float(np.median(v))
        total = [a + b for a, b in zip(records, artifacts, strict=True)]
        rows.append(dict(server=args.label, figures=figures.lower(), runs=n, requests=float(np.median(requests_n)),
                         records_ms=med(records), artifacts_ms=med(artifacts), http_ms=med(total),
                         run_s=med(wall_run) / 1e3,
                         calls={k: dict(n=len(v) / n, ms=med(v)) for k, v in sorted(breakdown.items())}))  # fmt: skip
    cols = ["server", "figures", "runs", "requests", "records_ms", "artifacts_ms", "http_ms", "run_s"]
    print(machine())
    print(table(rows, cols))
    for r in rows:
        calls_s = ", ".join(f"{k} {v['n']:.3g}x{v['ms']:.1f} ms" for k, v in r["calls"].items())
        print(f"  figures={r['figures']}: {calls_s}")
    per_launch = ", ".join(f"{k} {len(v)}x{1e3 * sum(v) / len(v):.1f} ms" for k, v in sorted(launch.items()))
    print(f"per launch ({len(kids)} jobs, parent included): {per_launch}")
    print(f"sweep wall time {wall:.1f} s")
    write_json(args.json, "server_tracking", rows, uri=args.uri, depth=args.depth, wall_s=wall,
               launch={k: [1e3 * s for s in v] for k, v in launch.items()})  # fmt: skip


if __name__ == "__main__":
    if len(sys.argv) > 2 and sys.argv[1] == "--child":
        child(sys.argv[2], sys.argv[4:])
    else:
        main()

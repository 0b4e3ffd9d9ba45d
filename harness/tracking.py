"""Everything MLflow: the only module that imports it (lazily, so that validating a config or printing
help does not pay ~1.5 s for it).

Runs are created with ``MlflowClient.create_run`` and an explicit experiment id; a child names its
parent with the ``mlflow.parentRunId`` tag. No fluent ``mlflow.start_run`` state is used, so runs
cannot land in the wrong experiment or reopen the parent, whichever process or launcher starts them.
"""

from __future__ import annotations

import os
import re
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

MLRUNS = "mlruns"
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100  # MLflow's per-call limits of log_batch

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")


def resolve_uri(uri: str | None, cwd: str | Path) -> str:
    """The tracking URI with any SQLite path made absolute: config, else $MLFLOW_TRACKING_URI, else
    ``sqlite:///<cwd>/mlruns/mlflow.db``."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{MLRUNS}/mlflow.db"
    match = re.match(r"sqlite:///(.*)$", uri)
    if match and not match.group(1).startswith("/") and match.group(1) != ":memory:":
        uri = f"sqlite:///{(Path(cwd) / match.group(1)).resolve()}"
    if match:
        Path(uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    return uri


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """For a SQLite store: ``<folder of the .db>/<experiment>`` (absolute). Else the server decides."""
    if not uri.startswith("sqlite:///"):
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
    return (Path(uri[len("sqlite:///") :]).parent / slug).resolve().as_uri()


def client(uri: str):  # noqa: ANN201 - MlflowClient, imported lazily
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri=uri)


def prepare(uri: str, experiment: str) -> str:
    """Create the store (tables) and the experiment once, in the launching process; its id."""
    c = client(uri)
    c.search_experiments(max_results=1)  # creates the database and its tables
    found = c.get_experiment_by_name(experiment)
    if found is not None:
        if found.lifecycle_stage == "deleted":
            raise RuntimeError(
                f"experiment {experiment!r} is deleted in {uri}; restore it in the UI or choose "
                "another study name (study=...)"
            )
        return found.experiment_id
    try:
        return c.create_experiment(experiment, artifact_location=default_artifact_location(uri, experiment))
    except Exception:  # created meanwhile by another process
        found = c.get_experiment_by_name(experiment)
        if found is None:
            raise
        return found.experiment_id


class Run:
    """One MLflow run, written through batched calls."""

    def __init__(self, uri: str, run_id: str) -> None:
        self.uri, self.run_id, self._client = uri, run_id, client(uri)

    @classmethod
    def start(
        cls, uri: str, experiment_id: str, name: str, tags: dict[str, str], parent_id: str | None = None
    ) -> Run:
        tags = dict(tags)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run = client(uri).create_run(experiment_id, run_name=name, tags=tags)
        return cls(uri, run.info.run_id)

    def log_params(self, params: dict[str, Any]) -> None:
        from mlflow.entities import Param

        items = [Param(k, "null" if v is None else str(v)) for k, v in params.items()]
        for i in range(0, len(items), MAX_PARAMS):
            self._client.log_batch(self.run_id, params=items[i : i + MAX_PARAMS])

    def set_tags(self, tags: dict[str, str]) -> None:
        from mlflow.entities import RunTag

        items = [RunTag(k, str(v)) for k, v in tags.items()]
        for i in range(0, len(items), MAX_TAGS):
            self._client.log_batch(self.run_id, tags=items[i : i + MAX_TAGS])

    def log_metrics(self, metrics: list[tuple[str, float, int]]) -> None:
        """(key, value, step) triples, 1,000 per call. NaN is kept (MLflow stores it)."""
        import time

        from mlflow.entities import Metric

        now = int(time.time() * 1000)
        items = [Metric(k, float(v), now, int(s)) for k, v, s in metrics]
        for i in range(0, len(items), MAX_METRICS):
            self._client.log_batch(self.run_id, metrics=items[i : i + MAX_METRICS])

    def log_figure(self, figure: Any, path: str) -> None:
        self._client.log_figure(self.run_id, figure, path)

    def log_arrays(self, arrays: dict[str, np.ndarray], path: str) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / Path(path).name
            np.savez_compressed(file, **arrays)
            self._client.log_artifact(self.run_id, str(file), str(Path(path).parent))

    def log_text(self, text: str, path: str) -> None:
        self._client.log_text(self.run_id, text, path)

    def log_dir(self, local: str | Path, path: str) -> None:
        if Path(local).is_dir():
            self._client.log_artifacts(self.run_id, str(local), path)

    def end(self, status: str = "FINISHED") -> None:
        self._client.set_terminated(self.run_id, status)


def child_statuses(uri: str, experiment_id: str, parent_id: str) -> dict[str, str]:
    """run id -> status of the parent's children."""
    runs = client(uri).search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", max_results=50000
    )
    return {r.info.run_id: r.info.status for r in runs}


def ui_hint(uri: str) -> str:
    """The command that opens the UI on this store, bound to 127.0.0.1."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000  (then http://127.0.0.1:5000)"


def finished_runs_by_hash(uri: str, experiment_id: str, config_hash: str) -> list:
    """FINISHED runs of the experiment whose ``harness.config_hash`` tag is ``config_hash``, oldest
    first (so that a figure keeps using the run it used before)."""
    runs = client(uri).search_runs(
        [experiment_id],
        filter_string=f"tags.`harness.config_hash` = '{config_hash}' and attributes.status = 'FINISHED'",
        order_by=["attributes.start_time ASC"],
        max_results=1000,
    )
    return list(runs)


def load_arrays(uri: str, run_id: str, path: str = "arrays/stats.npz") -> dict[str, np.ndarray]:
    """The arrays a run logged as a ``.npz`` artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        local = client(uri).download_artifacts(run_id, path, tmp)
        with np.load(local) as f:
            return {k: f[k] for k in f.files}


def log_file(uri: str, run_id: str, local: str | Path, path: str) -> None:
    client(uri).log_artifact(run_id, str(local), path)

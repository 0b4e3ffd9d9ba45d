"""Reading the store back (children, sweeps, runs by config hash, metrics, arrays) and the UI's links."""

from __future__ import annotations

import json
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

from harness import processes
from harness.tracking.store import KIND, client


def children(uri: str, experiment_id: str, parent_id: str) -> list:
    """The parent's child runs (MLflow ``Run`` entities), oldest first."""
    runs = client(uri).search_runs(
        [experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'", max_results=50000,
        order_by=["attributes.start_time ASC"],
    )  # fmt: skip
    return list(runs)


def sweeps(uri: str, experiment_id: str) -> list:
    """The experiment's sweep parents, newest first."""
    runs = client(uri).search_runs(
        [experiment_id], filter_string="tags.`harness.kind` = 'sweep'", max_results=50000,
        order_by=["attributes.start_time DESC"],
    )  # fmt: skip
    return list(runs)


def get_run(uri: str, run_id: str):  # noqa: ANN201 - an MLflow Run, or None
    try:
        return client(uri).get_run(run_id)
    except Exception:
        return None


def finished_child(uri: str, experiment_id: str, parent_id: str, config_hash: str) -> str | None:
    """The id of a FINISHED child of ``parent_id`` with this config hash, if one exists."""
    runs = client(uri).search_runs(
        [experiment_id], max_results=1,
        filter_string=f"tags.mlflow.parentRunId = '{parent_id}' and tags.`harness.config_hash` = "
        f"'{config_hash}' and attributes.status = 'FINISHED'",
    )  # fmt: skip
    return runs[0].info.run_id if runs else None


UI = "http://127.0.0.1:5000"  # where ``mlflow ui`` answers by default
VIEW_TAG = "mlflow.sharedViewState."  # an experiment tag the UI reads for ?viewStateShareKey=<key>
ML_VIEW = "workflowType=machine_learning"  # else MLflow 3.17 opens an experiment on its GenAI overview


def ui_hint(uri: str) -> str:
    """The command that opens the UI on this store, bound to 127.0.0.1."""
    if uri.startswith(("http://", "https://")):
        return f"open {uri} in a browser"
    return f"mlflow ui --backend-store-uri {uri} --host 127.0.0.1 --port 5000"


def ui_start(uri: str) -> str:
    """For a database store, a line saying how to start the UI that a printed link opens."""
    return "" if uri.startswith(("http://", "https://")) else f"\nstart the UI first: {ui_hint(uri)}"


def ui_base(uri: str) -> str:
    """The UI's address: the server itself, or ``mlflow ui``'s default for a database store."""
    return uri.rstrip("/") if uri.startswith(("http://", "https://")) else UI


def column(kind: str, key: str) -> str:
    """A runs-table column as the UI names it: ``metrics.`grad_h_slope```, ``attributes.`Description```."""
    return f"{kind}.`{key}`"


def runs_view(
    uri: str, experiment_id: str, key: str, metrics: list[str], params: list[str], search: str = "",
    sort: str | None = None, ascending: bool = True,
) -> str:  # fmt: skip
    """Save a view of the runs table in the experiment (the UI's "share view": the runs that match
    ``search``, sorted by the metric ``sort``, with the description, ``metrics`` and ``params`` as
    columns and the name and description wide enough to read); the link that opens it."""
    columns = [column("attributes", "Description")] + [column("metrics", m) for m in metrics]
    columns += [column("params", p) for p in params]
    name = column("attributes", "Run Name")
    # widths apply to the columns listed in columnOrder (the UI's ids; "runDateAndNestInfo" is Created)
    order = [name, "runDateAndNestInfo", "duration", *columns]
    widths = {name: 250, columns[0]: 370} | {c: 130 if c.startswith("metrics") else 120 for c in columns[1:]}
    state = {"searchFilter": search, "orderByKey": column("metrics", sort or metrics[0]),
             "orderByAsc": ascending, "selectedColumns": columns, "columnOrder": order,
             "columnWidths": widths}  # fmt: skip
    c = client(uri)
    with processes.deferred():
        c.set_experiment_tag(experiment_id, VIEW_TAG + key, json.dumps(state))
        for k, v in KIND.items():  # also on experiments created before this tag was set
            c.set_experiment_tag(experiment_id, k, v)
    return f"{ui_base(uri)}/#/experiments/{experiment_id}/runs?{ML_VIEW}&viewStateShareKey={key}"


def run_link(uri: str, experiment_id: str, run_id: str, tab: str = "overview") -> str:
    """A run's page in the UI (``tab``: overview, model-metrics, artifacts)."""
    return f"{ui_base(uri)}/#/experiments/{experiment_id}/runs/{run_id}/{tab}?{ML_VIEW}"


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


def run_with_tags(uri: str, experiment_id: str, tags: dict[str, str]):  # noqa: ANN201 - Run or None
    """The oldest run of the experiment with all these tag values (deleted runs not counted)."""
    where = " and ".join(f"tags.`{k}` = '{v}'" for k, v in tags.items())
    runs = client(uri).search_runs(
        [experiment_id], filter_string=where, max_results=1,
        order_by=["attributes.start_time ASC"],
    )  # fmt: skip
    return runs[0] if runs else None


def metrics_of(run: Any) -> dict[str, float]:
    """A run's latest metrics, with the +-1.797e308 that MLflow's SQL stores keep for +-inf read back as
    +-inf (a depth scale on the critical line is infinite, not the largest float)."""
    big = sys.float_info.max
    return {k: math.copysign(math.inf, v) if abs(v) >= big else v for k, v in run.data.metrics.items()}


def load_arrays(uri: str, run_id: str, path: str = "arrays/stats.npz") -> dict[str, np.ndarray]:
    """The arrays a run logged as a ``.npz`` artifact."""
    with tempfile.TemporaryDirectory() as tmp:
        local = client(uri).download_artifacts(run_id, path, tmp)
        with np.load(local) as f:
            return {k: f[k] for k in f.files}


def metric_series(uri: str, run_id: str, key: str) -> np.ndarray:
    """A metric's values ordered by step (empty if the run has none)."""
    history = sorted(client(uri).get_metric_history(run_id, key), key=lambda m: m.step)
    return np.array([m.value for m in history], dtype=float)


def log_file(uri: str, run_id: str, local: str | Path, path: str) -> None:
    client(uri).log_artifact(run_id, str(local), path)

"""Everything MLflow: the only module that imports it (lazily, so that validating a config or printing
help does not pay ~1.5 s for it).

Runs are created with ``MlflowClient.create_run`` and an explicit experiment id; a child names its
parent with the ``mlflow.parentRunId`` tag. No fluent ``mlflow.start_run`` state is used, so runs
cannot land in the wrong experiment or reopen the parent, whichever process or launcher starts them.

Every run carries its liveness: ``harness.host``, ``harness.pid`` (+ ``harness.pid_start``) and a
heartbeat tag ``harness.heartbeat`` rewritten every ``harness.heartbeat_s`` seconds by a thread. A
RUNNING run whose process is gone (same host) or whose heartbeat is stale (any host) is lost:
``mark_lost`` ends it FAILED with a ``harness.lost`` tag. Writes run inside ``processes.deferred()``,
so a signal never cuts one in half.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import logging
import math
import os
import posixpath
import re
import shutil
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np

from harness import processes

MLRUNS = "mlruns"
MAX_METRICS, MAX_PARAMS, MAX_TAGS = 1000, 100, 100  # MLflow's per-call limits of log_batch
MIN_FREE_MB = 64  # a SQLite store on a disk with less free space is refused before any run
HEARTBEAT_SECONDS = 30.0
NOTE = "mlflow.note.content"  # a run's description in the UI (harness: its one-line verdict)
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own tag: the UI shows it as the run's git commit
LOST_AFTER = 3  # heartbeats missed before a run on another host counts as lost

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# else every ended run on a server costs two more requests (get run, get experiment) for a printed link
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


class StoreError(RuntimeError):
    """The store cannot be used: one line naming it and what to do."""


def first_line(err: BaseException) -> str:
    """An exception as one short line (SQLAlchemy's carry the SQL on further lines)."""
    lines = str(err).strip().splitlines() or [""]
    driver = [line for line in lines if re.match(r"\((\w+\.)*\w+Error\) ", line)]  # SQLAlchemy's
    return f"{type(err).__name__}: {(driver or lines)[0][:300]}"


def sqlite_path(uri: str) -> Path | None:
    """The database file of a ``sqlite:///`` URI (None for other stores)."""
    match = re.match(r"sqlite:///(.*)$", uri)
    return Path(match.group(1)) if match and match.group(1) != ":memory:" else None


@contextlib.contextmanager
def _store_lock(uri: str) -> Iterator[None]:
    """For a SQLite store, an exclusive lock on ``<db>.lock``: one process at a time creates or migrates
    the database and creates experiments (MLflow's own creation races otherwise)."""
    db = sqlite_path(uri)
    if db is None:
        yield
        return
    db.parent.mkdir(parents=True, exist_ok=True)
    with open(f"{db}.lock", "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def check_store(uri: str) -> None:
    """Refuse, in a second, a SQLite store whose folder cannot be written or whose disk is full (MLflow
    would retry for minutes)."""
    if re.match(r"[a-z+]+://[^/@]*@", uri):
        raise StoreError(
            "tracking.uri must not carry credentials (configs are logged): set MLFLOW_TRACKING_USERNAME "
            "and MLFLOW_TRACKING_PASSWORD in the environment instead"
        )
    if uri.startswith(("http://", "https://")):
        _check_server(uri)
    db = sqlite_path(uri)
    if db is None:
        return
    folder = db.parent
    what = f"tracking store {uri}"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".harness-probe-") as probe:
            probe.write(b"\0" * 65536)
            probe.flush()
            os.fsync(probe.fileno())
    except OSError as err:
        raise StoreError(
            f"{what}: cannot write in {folder} ({err.strerror}); make the folder writable or choose "
            "another store with tracking.uri=sqlite:////path/to/mlflow.db"
        ) from None
    if db.exists() and not os.access(db, os.W_OK):
        raise StoreError(f"{what}: {db} is read-only; make it writable or choose another tracking.uri")
    free = shutil.disk_usage(folder).free / 2**20
    if free < MIN_FREE_MB:
        raise StoreError(
            f"{what}: only {free:.0f} MB free on the disk of {folder} (needs {MIN_FREE_MB} MB); "
            "free some space or choose another tracking.uri"
        )


def _check_server(uri: str, timeout: float = 10.0) -> None:
    """Refuse, in seconds, a server that does not answer its ``/health`` (MLflow's client would retry
    for about four minutes before saying so)."""
    import requests

    try:
        requests.get(uri.rstrip("/") + "/health", timeout=timeout).raise_for_status()
    except requests.RequestException as err:
        raise StoreError(
            f"tracking store {uri} does not answer ({type(err).__name__}); start the server (README, "
            "'Scale out') or fix tracking.uri"
        ) from None


def resolve_uri(uri: str | None, cwd: str | Path) -> str:
    """The tracking URI with any SQLite path made absolute: config, else $MLFLOW_TRACKING_URI, else
    ``sqlite:///<cwd>/mlruns/mlflow.db``."""
    uri = uri or os.environ.get("MLFLOW_TRACKING_URI") or f"sqlite:///{MLRUNS}/mlflow.db"
    db = sqlite_path(uri)
    if db is not None and not db.is_absolute():
        uri = f"sqlite:///{(Path(cwd) / db).resolve()}"
    return uri


def default_artifact_location(uri: str, experiment: str) -> str | None:
    """For a SQLite store: ``<folder of the .db>/<experiment>`` (absolute). Else the server decides."""
    db = sqlite_path(uri)
    if db is None:
        return None
    slug = re.sub(r"[^A-Za-z0-9_.-]+", "_", experiment)
    return (db.parent / slug).resolve().as_uri()


def client(uri: str):  # noqa: ANN201 - MlflowClient, imported lazily
    from mlflow.tracking import MlflowClient

    # a failed write is reported once, as one line (StoreError), not as MLflow's logged SQL and traceback
    logging.getLogger("mlflow.store.db.utils").setLevel(logging.CRITICAL)
    return MlflowClient(tracking_uri=uri)


def _local_folder(location: str) -> Path | None:
    return Path(location[len("file://") :]) if location.startswith("file://") else None


def prepare(uri: str, experiment: str) -> str:
    """Create the store (tables) and the experiment once, under a lock; its id. An experiment whose
    artifact folder is gone (the project folder moved) is reported, not recreated elsewhere. A store
    that refuses (no server, wrong credentials) is one ``StoreError`` line."""
    try:
        return _prepare(uri, experiment)
    except StoreError:
        raise
    except Exception as err:
        line = first_line(err)
        if "401" in line or "403" in line:
            hint = ("the server refused the credentials: set MLFLOW_TRACKING_USERNAME and "
                    "MLFLOW_TRACKING_PASSWORD to a user of this server")  # fmt: skip
        else:
            hint = "is the server running and the address right (tracking.uri)?"
        raise StoreError(f"store {uri}: {hint} ({line[:200]})") from None


def _prepare(uri: str, experiment: str) -> str:
    with _store_lock(uri):
        c = client(uri)  # a SQLite store creates and migrates its tables here
        c.search_experiments(max_results=1)
        found = c.get_experiment_by_name(experiment)
        if found is None:
            try:
                experiment_id = c.create_experiment(
                    experiment, artifact_location=default_artifact_location(uri, experiment), tags=KIND
                )
            except Exception:  # created meanwhile by another process (server stores)
                found = c.get_experiment_by_name(experiment)
                if found is None:
                    raise
            else:
                folder = _local_folder(c.get_experiment(experiment_id).artifact_location)
                if folder is not None:
                    folder.mkdir(parents=True, exist_ok=True)
                return experiment_id
    if found.lifecycle_stage == "deleted":
        raise StoreError(
            f"experiment {experiment!r} is deleted in {uri}; restore it in the UI or choose "
            "another study name (study=...)"
        )
    folder = _local_folder(found.artifact_location)
    if folder is not None and not folder.is_dir():
        if c.search_runs([found.experiment_id], max_results=1, run_view_type=3):  # ALL: any run
            here = _local_folder(default_artifact_location(uri, experiment) or "")
            hint = f"ln -s {here} {folder}" if here and here.is_dir() else f"restore {folder}"
            raise StoreError(
                f"experiment {experiment!r} keeps its artifacts in {folder}, which does not exist (was the "
                f"project folder moved?); move it back, or: {hint}"
            )
        folder.mkdir(parents=True, exist_ok=True)
    return found.experiment_id


class Run:
    """One MLflow run, written in as few calls as MLflow allows: params, tags and metric rows wait in
    this object and go out together in one ``log_batch`` per flush (MLflow's limits: 1,000 entries,
    100 params, 100 tags per call). ``stream`` flushes at most every ``flush_seconds``; ``end`` flushes
    and sets the status. ``seconds`` is the time spent writing, ``rows`` the metric rows written."""

    def __init__(self, uri: str, run_id: str, flush_seconds: float = 2.0) -> None:
        self.uri, self.run_id, self._client = uri, run_id, client(uri)
        self.flush_seconds, self.seconds, self.rows = flush_seconds, 0.0, 0
        self._buffer: list[tuple[str, float, int]] = []
        self._params: dict[str, str] = {}
        self._tags: dict[str, str] = {}
        self._last_flush = time.monotonic()
        self._beat: threading.Event | None = None
        self.artifact_uri: str | None = None  # known at creation; else read once, at the first upload
        self._repo: Any = None  # the run's artifact repository, made at the first upload

    @classmethod
    def start(
        cls, uri: str, experiment_id: str, name: str, tags: dict[str, str], parent_id: str | None = None,
        heartbeat: float = HEARTBEAT_SECONDS, flush_seconds: float = 2.0,
    ) -> Run:  # fmt: skip
        """Create the run (all its tags in the one call) and start its heartbeat."""
        tags = dict(tags) | liveness_tags(heartbeat)
        if parent_id:
            tags["mlflow.parentRunId"] = parent_id
        run = None
        try:
            with processes.deferred():
                run = client(uri).create_run(experiment_id, run_name=name, tags=tags)
        except KeyboardInterrupt as stop:  # a signal while the run was created: it ends KILLED, empty
            if run is not None:
                _end_stopped(uri, run.info.run_id, processes.signal_name(stop))
            raise
        except Exception as err:
            raise StoreError(f"store {uri} could not create run {name!r}: {first_line(err)}") from None
        self = cls(uri, run.info.run_id, flush_seconds)
        self.artifact_uri = run.info.artifact_uri
        self.start_heartbeat(heartbeat)
        return self

    def start_heartbeat(self, seconds: float) -> None:
        """Rewrite ``harness.heartbeat`` every ``seconds`` from a thread until the run ends."""
        stop = self._beat = threading.Event()

        def beat() -> None:
            while not stop.wait(seconds):
                with contextlib.suppress(Exception):  # a missed beat is retried at the next one
                    self._client.set_tag(self.run_id, "harness.heartbeat", f"{time.time():.0f}")

        threading.Thread(target=beat, name=f"harness-heartbeat-{self.run_id[:8]}", daemon=True).start()

    def _call(self, write: Any, *args: Any, **kwargs: Any) -> None:
        """One write, timed, never cut by a signal; a store failure becomes one ``StoreError`` line."""
        clock = time.perf_counter()
        try:
            with processes.deferred():
                write(self.run_id, *args, **kwargs)
        except Exception as err:
            raise StoreError(
                f"store {self.uri} refused a write to run {self.run_id}: {first_line(err)}"
            ) from None
        finally:
            self.seconds += time.perf_counter() - clock

    def log_params(self, params: dict[str, Any]) -> None:
        """Params (None is written as ``null``), sent with the next flush."""
        self._params |= {k: "null" if v is None else str(v) for k, v in params.items()}

    def set_tags(self, tags: dict[str, str]) -> None:
        """Tags, sent with the next flush."""
        self._tags |= {k: str(v) for k, v in tags.items()}

    def log_metrics(self, metrics: list[tuple[str, float, int]]) -> None:
        """(key, value, step) triples, sent with the next flush. NaN is kept (MLflow stores it)."""
        self._buffer += metrics

    def stream(self, metrics: list[tuple[str, float, int]]) -> None:
        """Buffer rows; write them when ``flush_seconds`` have passed since the last write."""
        self._buffer += metrics
        if time.monotonic() - self._last_flush >= self.flush_seconds:
            self.flush()

    def flush(self) -> None:
        """Write every pending param, tag and row, in as few ``log_batch`` calls as MLflow's limits allow
        (nothing is dropped from this object before its call succeeded)."""
        from mlflow.entities import Metric, Param, RunTag

        with processes.deferred():
            params, tags = list(self._params.items()), list(self._tags.items())
            now = int(time.time() * 1000)
            while params or tags or self._buffer:
                p, t = params[:MAX_PARAMS], tags[:MAX_TAGS]
                m = self._buffer[: MAX_METRICS - len(p) - len(t)]
                self._call(
                    self._client.log_batch,
                    metrics=[Metric(k, float(v), now, int(s)) for k, v, s in m],
                    params=[Param(k, v) for k, v in p], tags=[RunTag(k, v) for k, v in t],
                )  # fmt: skip
                params, tags, self._buffer = params[len(p) :], tags[len(t) :], self._buffer[len(m) :]
                self._params, self._tags = dict(params), dict(tags)
                self.rows += len(m)
            self._last_flush = time.monotonic()

    def _upload(self, local: str | Path, path: str) -> None:
        """A file or a folder's files into the run's artifact folder ``path``, straight to its artifact
        store (MlflowClient would first ask the server for the run's artifact URI, once per run)."""
        from mlflow.store.artifact.artifact_repository_registry import get_artifact_repository

        def upload(run_id: str) -> None:
            if self._repo is None:
                uri = self.artifact_uri or self._client.get_run(run_id).info.artifact_uri
                self._repo = get_artifact_repository(uri, tracking_uri=self.uri)
            repo = self._repo
            if Path(local).is_dir():
                repo.log_artifacts(str(local), path or None)
            else:
                repo.log_artifact(str(local), path or None)

        self._call(upload)

    def _upload_as(self, path: str, write: Any) -> None:
        """``write(file)`` into a temporary file named like ``path``, then upload it there."""
        with tempfile.TemporaryDirectory() as tmp:
            file = Path(tmp) / Path(path).name
            write(file)
            self._upload(file, posixpath.dirname(path))

    def log_figure(self, figure: Any, path: str) -> None:
        self._upload_as(path, figure.savefig)

    def log_arrays(self, arrays: dict[str, np.ndarray], path: str) -> None:
        self._upload_as(path, lambda file: np.savez_compressed(file, **arrays))

    def log_text(self, text: str, path: str) -> None:
        self._upload_as(path, lambda file: file.write_text(text, encoding="utf-8"))

    def log_dir(self, local: str | Path, path: str) -> None:
        if Path(local).is_dir():
            self._upload(local, path)

    def end(self, status: str = "FINISHED") -> None:
        """Write what is pending, stop the heartbeat, set the status (one call more)."""
        if self._beat is not None:
            self._beat.set()
        with processes.deferred():
            self.flush()
            self._call(self._client.set_terminated, status)


def _end_stopped(uri: str, run_id: str, signal_name: str) -> None:
    """End a run that a signal stopped before anything was measured (best effort: else it is lost)."""
    c = client(uri)
    with contextlib.suppress(Exception), processes.deferred():
        c.set_tag(run_id, "harness.stopped_by", signal_name)
        c.set_tag(run_id, NOTE, f"stopped by {signal_name} before anything was measured")
        c.set_terminated(run_id, "KILLED")


def liveness_tags(heartbeat: float) -> dict[str, str]:
    """Who runs this run, and how often it says it is alive."""
    pid = os.getpid()
    return {"harness.host": processes.host(), "harness.pid": str(pid),
            "harness.pid_start": processes.start_time(pid), "harness.heartbeat_s": f"{heartbeat:g}",
            "harness.heartbeat": f"{time.time():.0f}"}  # fmt: skip


def lost_reason(tags: dict[str, str], now: float, here: str) -> str | None:
    """Why a RUNNING run is lost (None if it may still be alive): its process on this host is gone, or
    it missed ``LOST_AFTER`` heartbeats. Runs without liveness tags are not the harness's."""
    if "harness.heartbeat_s" not in tags:
        return None
    who = f"process {tags.get('harness.pid')} on {tags.get('harness.host')}"
    if tags.get("harness.host") == here and tags.get("harness.pid", "").isdigit():
        if not processes.alive(int(tags["harness.pid"]), tags.get("harness.pid_start", "")):
            return f"{who} is gone"
        return None
    last = float(tags.get("harness.heartbeat", 0))
    if now - last > LOST_AFTER * float(tags["harness.heartbeat_s"]) + 10:
        return f"no heartbeat from {who} since {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(last))}"
    return None


def mark_lost(uri: str, experiment_id: str) -> list[str]:
    """End FAILED every RUNNING run of the experiment that is lost, with a ``harness.lost`` tag; their ids."""
    c = client(uri)
    running = c.search_runs([experiment_id], filter_string="attributes.status = 'RUNNING'", max_results=50000)
    lost, now, here = [], time.time(), processes.host()
    for r in running:
        reason = lost_reason(r.data.tags, now, here)
        if reason:
            with processes.deferred():
                c.set_tag(r.info.run_id, "harness.lost", f"{reason}; marked FAILED by a later launch")
                c.set_terminated(r.info.run_id, "FAILED")
            lost.append(r.info.run_id)
    return lost


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


def reopen(uri: str, run_id: str, tags: dict[str, str], heartbeat: float = HEARTBEAT_SECONDS) -> Run:
    """Set an ended run RUNNING again (resume), owned by this process: new liveness tags, a heartbeat."""
    run = Run(uri, run_id)
    with processes.deferred():
        run._client.update_run(run_id, status="RUNNING")
        with contextlib.suppress(Exception):  # it was lost once; it is alive again
            run._client.delete_tag(run_id, "harness.lost")
    run.set_tags(tags | liveness_tags(heartbeat))
    run.flush()  # now: a later launch judges the run by these liveness tags
    run.start_heartbeat(heartbeat)
    return run


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
KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI's kind of experiment: training
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

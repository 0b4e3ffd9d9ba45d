"""The store: check it (SQLite path and free space, a server's reachability), resolve its URI, make the
MLflow client, create the experiment (once, under a lock, with its artifact folder)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import re
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

MLRUNS = "mlruns"
MIN_FREE_MB = 64  # a SQLite store on a disk with less free space is refused before any run
HEARTBEAT_SECONDS = 30.0
NOTE = "mlflow.note.content"  # a run's description in the UI (harness: its one-line verdict)
GIT_COMMIT_TAG = "mlflow.source.git.commit"  # MLflow's own tag: the UI shows it as the run's git commit
LOST_AFTER = 3  # heartbeats missed before a run on another host counts as lost
KIND = {"mlflow.experimentKind": "custom_model_development"}  # the UI's kind of experiment: training

os.environ.setdefault("MLFLOW_DISABLE_TELEMETRY", "true")
# else every ended run on a server costs two more requests (get run, get experiment) for a printed link
os.environ.setdefault("MLFLOW_SUPPRESS_PRINTING_URL_TO_STDOUT", "true")


class StoreError(RuntimeError):
    """The store cannot be used: one line naming it and what to do."""


class OutOfSpace(BaseException):  # noqa: N818 - named for what happened, like KeyboardInterrupt
    """The disk under the store or the sweep's folders is full: the sweep stops, no further job starts.
    Not an ``Exception``: Hydra's job runner and a job's own error handling let it through, so the
    launcher stops at once instead of failing every further job the same way."""


FULL_WORDS = ("database or disk is full", "No space left on device", "Disk quota exceeded")


def out_of_space(err: BaseException | None) -> bool:
    """Whether ``err`` or an error it came from is a full disk (ENOSPC/EDQUOT, or sqlite's own words)."""
    seen = set()
    while err is not None and id(err) not in seen:
        seen.add(id(err))
        if isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if any(w in str(err) for w in FULL_WORDS):
            return True
        err = err.__cause__ or err.__context__
    return False


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
def store_lock(uri: str) -> Iterator[None]:
    """For a SQLite store, an exclusive lock on ``<db>.lock``: one process at a time creates or migrates
    the database and creates experiments (MLflow's own creation races otherwise). Another program that
    may open a new store (a notebook's MlflowClient, a test) takes it too for its first call."""
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


DAMAGED = ("malformed", "not a database", "file is encrypted", "disk I/O error")  # sqlite3's own words


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
        elif sqlite_path(uri) is not None and any(w in line for w in DAMAGED):
            path = sqlite_path(uri)
            hint = (f"the file {path} is damaged and was left as it is: restore it from a backup, or move "
                    f"it aside (mv {path} {path}.damaged) to start a new store there; `sqlite3 {path} "
                    f"'.recover'` may rescue its rows")  # fmt: skip
        elif sqlite_path(uri) is not None:
            hint = ("the SQLite store could not be created or opened; if another program (mlflow ui, a "
                    "notebook) opened it while it was new, run the command again")  # fmt: skip
        else:
            hint = "is the server running and the address right (tracking.uri)?"
        raise StoreError(f"store {uri}: {hint} ({line[:200]})") from None


def _prepare(uri: str, experiment: str) -> str:
    with store_lock(uri):
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

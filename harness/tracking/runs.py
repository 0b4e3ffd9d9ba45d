"""A run as the harness writes it: batched params, tags and rows, a heartbeat, artifacts; liveness and
lost runs."""

from __future__ import annotations

import contextlib
import os
import posixpath
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from harness import processes
from harness.tracking.store import (
    HEARTBEAT_SECONDS,
    LOST_AFTER,
    NOTE,
    StoreError,
    client,
    first_line,
)

PNG_LEVEL = 1


class Run:
    """One MLflow run, written in as few calls as MLflow allows: params, tags and metric rows wait in
    this object and go out together in one ``log_batch`` per flush (which the client sends in requests
    of at most 1,000 entries, 100 params and tags). ``stream`` flushes at most every ``flush_seconds``;
    ``end`` flushes and sets the status. ``seconds`` is the time spent writing, ``rows`` the metric
    rows written."""

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
        """Write every pending param, tag and row in one ``log_batch`` (MlflowClient splits it into
        MLflow's per-request limits itself); nothing is dropped from this object before it succeeded."""
        from mlflow.entities import Metric, Param, RunTag

        with processes.deferred():
            if self._params or self._tags or self._buffer:
                now = int(time.time() * 1000)
                self._call(
                    self._client.log_batch,
                    metrics=[Metric(k, float(v), now, int(s)) for k, v, s in self._buffer],
                    params=[Param(k, v) for k, v in self._params.items()],
                    tags=[RunTag(k, v) for k, v in self._tags.items()],
                )  # fmt: skip
                self.rows += len(self._buffer)
                self._params, self._tags, self._buffer = {}, {}, []
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
        """A matplotlib figure as an image; a PNG at zlib level 1: the same pixels as Pillow's default
        level 6, files about a tenth larger, written faster."""
        png = {"pil_kwargs": {"compress_level": PNG_LEVEL}} if path.endswith(".png") else {}
        self._upload_as(path, lambda file: figure.savefig(file, **png))

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

"""What several test files share: ``harness`` and ``harness-figure`` started as a user starts them, the
SQLite store they write under the working folder and the runs in it, waiting for a condition, and a
network after one forward and backward pass.

Plain functions where a test calls them with arguments (``from tests.conftest import harness``),
fixtures where a test only needs the thing set up (``store_uri``)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest

MODES = ["entries", "directional"]  # the gradient checker's modes: every check runs in both


def environment() -> dict[str, str]:
    """This process's environment without MLFLOW_TRACKING_URI (a subprocess writes the store under its
    own working folder, never the developer's), telemetry off."""
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return env


def harness(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``harness *args`` (as ``python -m harness``) in ``cwd``, its output captured."""
    return subprocess.run([sys.executable, "-m", "harness", *args], cwd=cwd, env=environment(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def figure(cwd: Path, *args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    """``harness-figure *args`` (as ``python -m harness.figure_cli``) in ``cwd``, its output captured."""
    return subprocess.run([sys.executable, "-m", "harness.figure_cli", *args], cwd=cwd, env=environment(),
                          capture_output=True, text=True, timeout=timeout)  # fmt: skip


def store_path(cwd: Path) -> Path:
    """The default store of a command run in ``cwd``."""
    return cwd / "mlruns" / "mlflow.db"


def client(cwd: Path):  # noqa: ANN201 - an MlflowClient, imported lazily (the nn tests need no MLflow)
    """A client of the default store of a command run in ``cwd``."""
    from mlflow.tracking import MlflowClient

    from harness import tracking

    uri = f"sqlite:///{store_path(cwd)}"
    c = MlflowClient(uri)
    with tracking.store_lock(uri):  # not while a harness creates the database (MLflow's creation races)
        c.get_experiment("0")  # the first call opens (or creates) the store
    return c


def runs(cwd: Path, study: str) -> list:
    """Every run of the experiment ``study`` in the default store under ``cwd`` ([] if there is none)."""
    c = client(cwd)
    exp = c.get_experiment_by_name(study)
    return [] if exp is None else c.search_runs([exp.experiment_id], max_results=5000)


def children_of(all_runs: list) -> list:
    """The runs that are a sweep's children."""
    return [r for r in all_runs if "mlflow.parentRunId" in r.data.tags]


def assert_nothing_misfiled(c) -> None:
    """No run in MLflow's Default experiment, none left RUNNING."""
    assert c.search_runs(["0"]) == [], "runs landed in the Default experiment"
    every = c.search_runs([e.experiment_id for e in c.search_experiments()], max_results=5000)
    assert all(r.info.status != "RUNNING" for r in every), "a run was left RUNNING"


def wait_for(predicate, timeout: float = 120.0, what: str = "", poll: float = 0.2) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(poll)


def probed(spec, batch: int, seed: int):  # noqa: ANN201 - a harness.nn Network
    """The network of ``spec`` after one forward pass of ``batch`` standard normal inputs and one
    backward pass of a random linear probe, both drawn, in that order, from ``default_rng(seed)``."""
    from harness.nn import LinearProbe, build_network

    net = build_network(spec)
    rng = np.random.default_rng(seed)
    net.forward(rng.standard_normal((batch, spec.input_dim)))
    net.backward(LinearProbe.random((batch, spec.output_dim), rng).v)
    return net


def assert_strict_pass(report) -> None:
    """A gradient check passed on resolved gradients: no row leaned on the rounding-floor allowance."""
    assert report.passed, report.summary()
    assert not any(r.noise for r in report.rows), report.summary()
    assert report.meaningful
    assert not np.isnan(report.max_rel_error)


@pytest.fixture
def store_uri(tmp_path, monkeypatch) -> str:
    """The default SQLite store under ``tmp_path`` as the harness resolves it, MLFLOW_TRACKING_URI unset
    (a developer's own store is never written)."""
    from harness import tracking

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    return tracking.resolve_uri(None, tmp_path)

"""Store resolution and what a run logs, against a real SQLite store."""

import os
import signal
from pathlib import Path

import numpy as np
import pytest

from harness import processes, tracking
from harness.runner import layer_picks, metrics_of
from harness.study import StudyResult


def test_relative_sqlite_becomes_absolute(tmp_path, monkeypatch):
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    uri = tracking.resolve_uri(None, tmp_path)
    assert uri == f"sqlite:///{tmp_path.resolve()}/mlruns/mlflow.db"
    assert tracking.resolve_uri("sqlite:///x/y.db", tmp_path) == f"sqlite:///{tmp_path.resolve()}/x/y.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:////abs/env.db")
    assert tracking.resolve_uri(None, tmp_path) == "sqlite:////abs/env.db"
    assert tracking.resolve_uri("http://127.0.0.1:5000", tmp_path) == "http://127.0.0.1:5000"


def test_prepare_is_idempotent_and_places_artifacts_under_the_store(store_uri, tmp_path):
    a = tracking.prepare(store_uri, "study one")
    assert tracking.prepare(store_uri, "study one") == a
    exp = tracking.client(store_uri).get_experiment(a)
    assert Path(exp.artifact_location.removeprefix("file://")) == tmp_path / "mlruns" / "study_one"


def test_one_flush_beyond_mlflows_per_request_limits(store_uri):
    """2,500 rows, 250 params and 150 tags in one flush: past the 1,000 / 100 / 100 a request may carry
    (the client splits them), every one stored."""
    run = tracking.Run.start(store_uri, tracking.prepare(store_uri, "m"), "r", {})
    run.log_metrics([("x", float(i), i) for i in range(2500)] + [("nan", float("nan"), 0)])
    run.log_params({f"p{i}": i for i in range(250)})
    run.set_tags({f"t{i}": str(i) for i in range(150)})
    run.end()
    c = tracking.client(store_uri)
    assert [m.value for m in c.get_metric_history(run.run_id, "x")] == [float(i) for i in range(2500)]
    got = c.get_run(run.run_id).data
    assert np.isnan(got.metrics["nan"]) and run.rows == 2501
    assert got.params == {f"p{i}": str(i) for i in range(250)}
    assert all(got.tags[f"t{i}"] == str(i) for i in range(150))


def test_layer_picks_keep_first_and_last():
    assert list(layer_picks(5, 16)) == [1, 2, 3, 4, 5]
    picks = layer_picks(100, 8)
    assert len(picks) == 8 and picks[0] == 1 and picks[-1] == 100


def test_train_series_capped_at_max_layers():
    depth, steps = 40, np.array([0, 10, 20])
    arrays = {k: np.ones((3, depth)) for k in ("grad_W", "grad_b", "grad_h", "act_mean", "act_std")}
    arrays |= {k: np.full((3, depth), np.nan) for k in ("act_saturated", "act_dead", "preact_q", "preact_c")}
    arrays |= {"steps": steps, "loss": np.ones(3), "accuracy": np.ones(3)}
    profile = {k: v[-1] for k, v in arrays.items() if k.startswith(("grad", "act", "preact"))}
    result = StudyResult("train", {"final_loss": 1.0}, profile, profile, arrays)
    keys = {k for k, _, _ in metrics_of(result, max_layers=4)}
    layers = {k.split("/")[1] for k in keys if k.startswith("layer/")}
    assert layers == {"001", "014", "027", "040"}
    assert not any(k.endswith("act_dead") and k.startswith("layer/") for k in keys)  # all-NaN skipped


def test_streamed_rows_reach_the_store_while_the_run_is_running(store_uri):
    run = tracking.Run.start(store_uri, tracking.prepare(store_uri, "s"), "r", {}, flush_seconds=0.0)
    c = tracking.client(store_uri)
    run.stream([("loss", 1.0, 0)])
    assert len(c.get_metric_history(run.run_id, "loss")) == 1  # written, not held until the end
    run.flush_seconds = 3600.0
    run.stream([("loss", 2.0, 1)])
    assert len(c.get_metric_history(run.run_id, "loss")) == 1  # buffered until the interval passes
    run.end("KILLED")
    assert [m.step for m in c.get_metric_history(run.run_id, "loss")] == [0, 1]  # end writes the buffer
    assert c.get_run(run.run_id).info.status == "KILLED" and run.rows == 2


def test_a_run_whose_process_is_gone_or_silent_is_lost(store_uri):
    import subprocess
    import time

    exp = tracking.prepare(store_uri, "lost")
    mine = tracking.Run.start(store_uri, exp, "alive", {})
    dead = subprocess.Popen(["true"])
    dead.wait()
    ghost = tracking.Run.start(store_uri, exp, "dead", {})
    tracking.client(store_uri).set_tag(ghost.run_id, "harness.pid", str(dead.pid))
    far = tracking.Run.start(store_uri, exp, "elsewhere", {"harness.host": "another-node"}, heartbeat=10)
    tags = tracking.client(store_uri).get_run(far.run_id).data.tags
    assert tags["harness.host"] == processes.host()  # liveness tags win over what was passed
    now, here = time.time(), processes.host()
    remote = tags | {"harness.host": "another-node"}
    assert tracking.lost_reason(remote, now + 10, here) is None  # one beat late: still alive
    stale = tracking.lost_reason(remote, now + tracking.LOST_AFTER * 10 + 11, here)
    assert stale.startswith(f"no heartbeat from process {tags['harness.pid']} on another-node since")
    assert tracking.lost_reason({"mlflow.runName": "not ours"}, now + 1e6, here) is None
    assert tracking.mark_lost(store_uri, exp) == [ghost.run_id]  # only the one whose process is gone
    gone = tracking.client(store_uri).get_run(ghost.run_id)
    assert gone.info.status == "FAILED" and "is gone" in gone.data.tags["harness.lost"]
    assert tracking.client(store_uri).get_run(mine.run_id).info.status == "RUNNING"
    mine.end()
    far.end()


def test_check_store_refuses_a_folder_that_is_a_file(tmp_path):
    (tmp_path / "file").write_text("")
    uri = f"sqlite:///{tmp_path}/file/mlflow.db"
    try:
        tracking.check_store(uri)
    except tracking.StoreError as err:
        assert str(err).startswith(f"tracking store {uri}: cannot write in {tmp_path}/file")
    else:
        raise AssertionError("a store under a file was accepted")


def test_a_signal_while_a_run_is_created_ends_it_killed(store_uri, monkeypatch):
    """A real SIGTERM delivered while MLflow creates the run (the store's call is wrapped only to time
    the signal): the run is not left RUNNING for a later launch to call lost, it ends KILLED."""
    from mlflow.tracking import MlflowClient

    experiment_id = tracking.prepare(store_uri, "created")
    create = MlflowClient.create_run

    def create_then_signal(self, *args, **kwargs):
        run = create(self, *args, **kwargs)
        os.kill(os.getpid(), signal.SIGTERM)  # held back by processes.deferred() until the block ends
        return run

    monkeypatch.setattr(MlflowClient, "create_run", create_then_signal)
    processes.install()
    try:
        with pytest.raises(KeyboardInterrupt):
            tracking.Run.start(store_uri, experiment_id, "r", {})
    finally:
        processes.uninstall()
    monkeypatch.undo()
    (run,) = tracking.client(store_uri).search_runs([experiment_id])
    assert run.info.status == "KILLED" and run.data.tags["harness.stopped_by"] == "SIGTERM"
    assert run.data.tags["mlflow.note.content"] == "stopped by SIGTERM before anything was measured"

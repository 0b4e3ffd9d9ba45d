"""End to end: the ``harness`` command started as a user starts it (``python -m harness``), against a
real SQLite MLflow store in a temporary folder, with Hydra's basic and joblib launchers. No mocks."""

import math
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

DEBUG = ["debug=default", "gradcheck=directional"]


def harness(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "MLFLOW_TRACKING_URI"}
    env["MLFLOW_DISABLE_TELEMETRY"] = "true"
    return subprocess.run(
        [sys.executable, "-m", "harness", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )


def store(cwd: Path) -> MlflowClient:
    db = cwd / "mlruns" / "mlflow.db"
    assert db.is_file(), "the default store is mlruns/mlflow.db under the working directory"
    return MlflowClient(f"sqlite:///{db}")


def runs_of(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    return exp, client.search_runs([exp.experiment_id], max_results=1000)


def assert_nothing_misfiled(client: MlflowClient):
    assert client.search_runs(["0"]) == [], "runs landed in the Default experiment"
    every = client.search_runs([e.experiment_id for e in client.search_experiments()], max_results=1000)
    assert all(r.info.status != "RUNNING" for r in every), "a run was left RUNNING"


def test_single_run(tmp_path):
    out = harness(tmp_path, *DEBUG, "study=single", "model.depth=5")
    assert out.returncode == 0, out.stderr
    assert "open the UI: mlflow ui --backend-store-uri sqlite:///" in out.stderr
    assert "--host 127.0.0.1" in out.stderr
    client = store(tmp_path)
    exp, runs = runs_of(client, "single")
    assert Path(exp.artifact_location.removeprefix("file://")).parent == tmp_path / "mlruns"
    (run,) = runs
    assert run.info.status == "FINISHED" and run.info.run_name == "depth=5"
    assert run.data.params["model.depth"] == "5" and run.data.params["model.activation"] == "tanh"
    tags = run.data.tags
    assert tags["harness.overrides"] == "debug=default gradcheck=directional study=single model.depth=5"
    assert tags["harness.seed"] == "0" and len(tags["harness.config_hash"]) == 16
    assert tags["version.numpy"] and tags["version.mlflow"].startswith("3.17")
    m = run.data.metrics
    for key in ("grad_ratio_log10", "grad_h_slope", "grad_norm_min", "grad_norm_max",
                "gradcheck_max_rel_error", "diverged"):  # fmt: skip
        assert key in m, key
    assert m["diverged"] == 0 and m["gradcheck_max_rel_error"] < 1e-7 and m["gradcheck_passed"] == 1
    assert m["grad_norm_min"] <= m["grad_norm_max"]
    history = client.get_metric_history(run.info.run_id, "profile/grad_h")
    assert sorted(h.step for h in history) == [1, 2, 3, 4, 5]  # one point per layer
    predicted = client.get_metric_history(run.info.run_id, "profile/theory_grad_h")
    assert sorted(h.step for h in predicted) == [1, 2, 3, 4, 5]
    for key in (
        "theory_rate",
        "theory_log_chi1",
        "rate_diff",
        "jacobian_sv2_mean",
        "theory_jacobian_sv2_mean",
    ):
        assert math.isfinite(m[key]), key
    assert m["rate_diff"] == pytest.approx(m["grad_h_slope"] - m["theory_rate"])
    checks = client.get_metric_history(run.info.run_id, "gradcheck/rel_error")
    assert sorted(h.step for h in checks) == [0, 1, 2, 3, 4, 5, 6]  # input, layers 1-5, readout
    assert all(h.value < 1e-7 for h in checks)
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"config.yaml", "hydra", "arrays", "gradcheck.txt"} <= artifacts
    assert {a.path for a in client.list_artifacts(run.info.run_id, "hydra")} >= {"hydra/config.yaml"}
    assert_nothing_misfiled(client)


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_multirun_parent_and_named_children(tmp_path, launcher):
    out = harness(
        tmp_path, "-m", f"launcher={launcher}", "debug=default", "study=sweep", "model.depth=3,5",
        "mode=train", "data=spirals", "loss=cross_entropy", "tracking.figures=true",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    client = store(tmp_path)
    _, runs = runs_of(client, "sweep")
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["harness.swept"] == "model.depth"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.info.run_name for c in children) == ["depth=3", "depth=5"]
    assert sorted(c.data.tags["harness.job_num"] for c in children) == ["0", "1"]
    for child in children:
        depth = int(child.data.params["model.depth"])
        assert child.info.run_name == f"depth={depth}" and child.info.status == "FINISHED"
        m = child.data.metrics
        assert 0 <= m["final_accuracy"] <= 1 and math.isfinite(m["final_loss"]) and m["diverged"] == 0
        steps = [h.step for h in client.get_metric_history(child.info.run_id, "train/loss")]
        assert steps == [0, 5, 10, 15, 20]  # debug: 20 steps, log_every 5
        layer_series = client.get_metric_history(child.info.run_id, f"layer/{depth:03d}/grad_W")
        assert len(layer_series) == 5
        figures = {a.path for a in client.list_artifacts(child.info.run_id, "figures")}
        assert figures == {f"figures/{f}.png" for f in ("gradient_flow", "heatmap_grad_W", "gradcheck",
                                                          "activations", "gradient_histograms")}  # fmt: skip
    assert_nothing_misfiled(client)


def test_diverging_job_is_recorded_and_the_sweep_ends_normally(tmp_path):
    out = harness(
        tmp_path, "-m", "debug=default", "study=boom", "model.activation=relu", "model.init=he_normal",
        "model.depth=30", "model.dtype=float32", "model.init_scale=1,1000", "gradcheck=off",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    client = store(tmp_path)
    _, runs = runs_of(client, "boom")
    children = {r.info.run_name: r for r in runs if "mlflow.parentRunId" in r.data.tags}
    assert set(children) == {"scale=1", "scale=1000"}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert children["scale=1"].data.metrics["diverged"] == 0
    boom = children["scale=1000"].data.metrics
    assert boom["diverged"] == 1 and boom["diverged_step"] == 0 and 1 <= boom["diverged_layer"] <= 31
    assert_nothing_misfiled(client)


def test_training_divergence_records_step(tmp_path):
    out = harness(
        tmp_path, "debug=default", "study=lr", "mode=train", "data=teacher_student", "loss=mse",
        "model.activation=relu", "model.init=he_normal", "model.dtype=float32", "optim.lr=10",
        "gradcheck=off",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    (run,) = runs_of(store(tmp_path), "lr")[1]
    m = run.data.metrics
    assert run.info.status == "FINISHED" and m["diverged"] == 1 and 1 <= m["diverged_step"] < 20


def test_a_failing_job_fails_its_child_and_parent_but_not_the_others(tmp_path):
    # width 1e8: the first weight matrix (128 x 1e8 float64, 95 GiB) cannot be allocated, inside the job
    out = harness(tmp_path, "-m", "debug=default", "study=fail", "model.width=16,100000000", "gradcheck=off")
    assert out.returncode == 1
    assert "1 FAILED" in out.stderr
    client = store(tmp_path)
    _, runs = runs_of(client, "fail")
    parent = next(r for r in runs if "mlflow.parentRunId" not in r.data.tags)
    statuses = sorted(r.info.status for r in runs if "mlflow.parentRunId" in r.data.tags)
    assert parent.info.status == "FAILED" and statuses == ["FAILED", "FINISHED"]
    failed = next(r for r in runs if r.info.status == "FAILED" and r is not parent)
    assert "MemoryError" in failed.data.tags["harness.error"]
    assert_nothing_misfiled(client)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["model.depth=0"], "harness: error: model.depth: got 0; allowed: an integer > 0"),
        (["+model.foo=1"], "harness: error: model.foo: unknown key; allowed keys: model.depth"),
        (
            ["-m", "model.activation=tanh,swish"],
            "harness: error: model.activation: got 'swish'; allowed: one of:",
        ),
        (["model.depth=ten"], "harness: error: model.depth: got 'ten'; allowed: an integer"),
        (["data=nope"], "harness: error: data: unknown option 'nope'; allowed: blobs, digits, file"),
        (["mode=train"], "harness: error: loss.name: 'probe' is for mode=init"),
    ],
)
def test_bad_config_one_line_no_run(tmp_path, args, message):
    out = harness(tmp_path, *args)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(message), out.stderr
    assert not (tmp_path / "mlruns").exists()  # no store, no run
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()


def test_bad_config_leaves_an_existing_store_untouched(tmp_path):
    assert harness(tmp_path, "debug=default", "study=keep", "gradcheck=off").returncode == 0
    db = tmp_path / "mlruns" / "mlflow.db"
    before = db.read_bytes()
    assert harness(tmp_path, "-m", "study=keep", "model.norm=none,group").returncode == 2
    assert db.read_bytes() == before


@pytest.mark.parametrize("sweep", [[], ["-m", "seed=0,1"]])
def test_a_server_that_does_not_answer_is_refused_in_one_line_before_any_work(tmp_path, sweep):
    """MLflow's client retries an unreachable server for about four minutes; the harness asks /health
    once and stops (the bound below is that retry, not a speed goal)."""
    import socket

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.monotonic()
    out = harness(tmp_path, *sweep, "tracking=server", f"tracking.uri=http://127.0.0.1:{port}")
    assert time.monotonic() - t0 < 120
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and "does not answer" in lines[0] and "tracking.uri" in lines[0], out.stderr
    assert not (tmp_path / "multirun").exists() and not (tmp_path / "outputs").exists()

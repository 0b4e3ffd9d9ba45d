"""End to end: the ``harness`` command started as a user starts it (``python -m harness``), against a
real SQLite MLflow store in a temporary folder, with Hydra's basic and joblib launchers. No mocks."""

import csv
import importlib.metadata
import json
import math
import tempfile
import time
from pathlib import Path

import numpy as np
import pytest
from mlflow.tracking import MlflowClient

from harness.story import KEY_METRICS, verdict
from tests.conftest import assert_nothing_misfiled, children_of, client, harness, store_path

DEBUG = ["debug=default", "gradcheck=directional"]


def store(cwd: Path) -> MlflowClient:
    assert store_path(cwd).is_file(), "the default store is mlruns/mlflow.db under the working directory"
    return client(cwd)


def runs_of(client: MlflowClient, experiment: str):
    exp = client.get_experiment_by_name(experiment)
    assert exp is not None, f"no experiment {experiment!r}"
    return exp, client.search_runs([exp.experiment_id], max_results=1000)


def test_single_run(tmp_path):
    out = harness(tmp_path, *DEBUG, "study=single", "model.depth=5")
    assert out.returncode == 0, out.stderr
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("tanh xavier D=5 plain gradcheck=directional: stable 10^")  # its verdict
    assert lines[-2].startswith(
        "runs table (sorted by grad_h_ratio_log10): http://127.0.0.1:5000/#/experiments/"
    )
    assert lines[-1].startswith("start the UI first: mlflow ui --backend-store-uri sqlite:///")
    assert lines[-1].endswith("--host 127.0.0.1 --port 5000") and len(lines) == 4
    client = store(tmp_path)
    exp, runs = runs_of(client, "single")
    assert Path(exp.artifact_location.removeprefix("file://")).parent == tmp_path / "mlruns"
    (run,) = runs
    assert (
        run.info.status == "FINISHED" and run.info.run_name == "tanh xavier D=5 plain gradcheck=directional"
    )
    assert run.data.params["model.depth"] == "5" and run.data.params["model.activation"] == "tanh"
    assert not [k for k in run.data.params if k.startswith(("train.", "optim.", "tracking."))]  # init mode
    assert "init.repeats" in run.data.params and "study" not in run.data.params
    tags = run.data.tags
    assert tags["harness.overrides"] == "debug=default gradcheck=directional study=single model.depth=5"
    assert tags["harness.seed"] == "0" and len(tags["harness.config_hash"]) == 16
    assert tags["version.numpy"] and tags["version.mlflow"] == importlib.metadata.version("mlflow")
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
    children = children_of(runs)
    assert len(parents) == 1 and len(children) == 2
    parent = parents[0]
    assert parent.info.status == "FINISHED"
    assert parent.data.tags["harness.swept"] == "model.depth"
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parent.info.run_id}
    assert sorted(c.info.run_name for c in children) == ["tanh xavier D=3 plain", "tanh xavier D=5 plain"]
    assert sorted(c.data.tags["harness.job_num"] for c in children) == ["0", "1"]
    for child in children:
        depth = int(child.data.params["model.depth"])
        assert child.info.run_name == f"tanh xavier D={depth} plain" and child.info.status == "FINISHED"
        assert "init.repeats" not in child.data.params and child.data.params["optim.lr"]  # train mode
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


def test_essential_figures_keep_the_gradient_flow_only(tmp_path):
    out = harness(tmp_path, "-m", "debug=default", "model.depth=3,4", "tracking.figures=essential")
    assert out.returncode == 0, out.stderr
    children = children_of(runs_of(store(tmp_path), "default")[1])
    assert len(children) == 2
    for child in children:
        figures = {a.path for a in store(tmp_path).list_artifacts(child.info.run_id, "figures")}
        assert figures == {"figures/gradient_flow.png"}


def test_the_sweep_tells_its_story_in_the_store_and_on_the_terminal(tmp_path):
    out = harness(tmp_path, "-m", "debug=default", "gradcheck=off", "study=story", "model.depth=3,12",
                  "model.activation=relu,tanh", "tracking.figures=true")  # fmt: skip
    assert out.returncode == 0, out.stderr
    client = store(tmp_path)
    exp, runs = runs_of(client, "story")
    (parent,) = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = sorted(children_of(runs), key=lambda r: int(r.data.tags["harness.job_num"]))
    names = [c.info.run_name for c in children]
    assert names == ["relu xavier D=3 plain", "tanh xavier D=3 plain", "relu xavier D=12 plain",
                     "tanh xavier D=12 plain"]  # fmt: skip
    # the terminal: one line per job, its verdict; no Hydra lines without -v; a link at the end
    lines = out.stderr.strip().splitlines()
    assert not [line for line in lines if "[HYDRA]" in line]
    for i, child in enumerate(children):
        note = child.data.tags["mlflow.note.content"]
        assert note == verdict(child.data.metrics, "init") and note.split()[0] in ("vanishing", "stable")
        assert f"[{i + 1}/4] {names[i]}: {note}" in lines
    assert len(lines) == 1 + 4 + 5  # sweep start, the jobs, summary, findings, link, parent page, start UI
    # each child: the key metrics first, log10 profiles with theory beside them
    for child in children:
        assert list(child.data.metrics)[:4] == list(KEY_METRICS)
        depth = int(child.data.params["model.depth"])
        for key in ("profile/log10_grad_h", "profile/log10_grad_W", "profile/log10_theory_grad_h"):
            history = client.get_metric_history(child.info.run_id, key)
            assert sorted(h.step for h in history) == list(range(1, depth + 1)), key
        plain = {h.step: h.value for h in client.get_metric_history(child.info.run_id, "profile/grad_h")}
        logged = {
            h.step: h.value for h in client.get_metric_history(child.info.run_id, "profile/log10_grad_h")
        }
        assert logged == pytest.approx({k: math.log10(v) for k, v in plain.items()}, abs=1e-12)
    # the parent: swept values as params, the extremes as metrics and tags, the verdict, CSV and figures
    assert parent.data.params == {"model.depth": "3,12", "model.activation": "relu,tanh"}
    m, ratios = parent.data.metrics, [c.data.metrics["grad_h_ratio_log10"] for c in children]
    assert (m["jobs"], m["jobs_finished"], m["jobs_diverged"]) == (4, 4, 0)
    assert (m["grad_h_ratio_log10_min"], m["grad_h_ratio_log10_max"]) == (min(ratios), max(ratios))
    most = children[int(np.argmin(ratios))]
    assert parent.data.tags["harness.most_vanishing"] == most.info.run_id
    note = parent.data.tags["mlflow.note.content"]
    assert note.startswith(
        f"4 of 4 jobs FINISHED; most vanishing {most.info.run_name} (10^{min(ratios):+.1f})"
    )
    assert lines[-4] == note.removeprefix("4 of 4 jobs FINISHED; ")
    artifacts = {a.path for a in client.list_artifacts(parent.info.run_id, "sweep")}
    assert artifacts == {"sweep/summary.csv", "sweep/profiles.png", "sweep/rate_by_factor.png"}
    with tempfile.TemporaryDirectory() as tmp:
        path = client.download_artifacts(parent.info.run_id, "sweep/summary.csv", tmp)
        table = list(csv.DictReader(Path(path).read_text().splitlines()))
    assert [row["name"] for row in table] == names and [row["run_id"] for row in table] == [
        c.info.run_id for c in children]  # fmt: skip
    assert list(table[0])[:10] == ["run_id", "name", "status", "job", "model.depth", "model.activation",
                                   *KEY_METRICS]  # fmt: skip
    for row, child in zip(table, children, strict=True):
        assert float(row["grad_h_slope"]) == child.data.metrics["grad_h_slope"]
    # the link opens a saved view of the runs table: the children, sorted by the key metric
    view = lines[-3].split()[-1]
    key = view.rsplit("viewStateShareKey=", 1)[1]
    assert (
        view
        == f"http://127.0.0.1:5000/#/experiments/{exp.experiment_id}/runs?workflowType=machine_learning&viewStateShareKey={key}"
    )
    tags = client.get_experiment(exp.experiment_id).tags
    state = json.loads(tags[f"mlflow.sharedViewState.{key}"])
    assert state["searchFilter"] == f"tags.mlflow.parentRunId = '{parent.info.run_id}'"
    assert state["orderByKey"] == "metrics.`grad_h_ratio_log10`" and state["orderByAsc"] is True
    assert state["selectedColumns"] == ["attributes.`Description`", *(f"metrics.`{k}`" for k in KEY_METRICS),
                                        "params.`model.depth`", "params.`model.activation`"]  # fmt: skip
    assert tags["mlflow.experimentKind"] == "custom_model_development"
    assert lines[-2].endswith(f"/runs/{parent.info.run_id}/artifacts?workflowType=machine_learning")


def test_verbose_shows_hydra_and_progress(tmp_path):
    # a pass of stacked draws reports once: a cap of 10 kB runs them one at a time, 20 reports
    out = harness(tmp_path, "-v", "-m", "debug=default", "gradcheck=off", "study=loud", "model.depth=3,4",
                  "init.repeats=20", "init.stack_mb=0.01")  # fmt: skip
    assert out.returncode == 0, out.stderr
    assert "[HYDRA] Launching 2 jobs locally" in out.stdout + out.stderr
    progress = [line for line in out.stderr.splitlines() if line.startswith("[1/2] tanh xavier D=3 plain: ")]
    assert [line.split(": ")[1] for line in progress[:-1]] == ["1/20"] + [f"{2 * i}/20" for i in range(1, 11)]
    assert progress[-1].split(": ", 1)[1].startswith(("stable", "vanishing"))


def test_diverging_job_is_recorded_and_the_sweep_ends_normally(tmp_path):
    out = harness(
        tmp_path, "-m", "debug=default", "study=boom", "model.activation=relu", "model.init=he_normal",
        "model.depth=30", "model.dtype=float32", "model.init_scale=1,1000", "gradcheck=off",
    )  # fmt: skip
    assert out.returncode == 0, out.stderr
    client = store(tmp_path)
    _, runs = runs_of(client, "boom")
    children = {r.info.run_name: r for r in children_of(runs)}
    assert set(children) == {"relu he D=30 plain", "relu he*1000 D=30 plain"}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert children["relu he D=30 plain"].data.metrics["diverged"] == 0
    boom = children["relu he*1000 D=30 plain"].data.metrics
    assert (
        children["relu he*1000 D=30 plain"].data.tags["mlflow.note.content"].startswith("diverged: NaN/Inf")
    )
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
    statuses = sorted(r.info.status for r in children_of(runs))
    assert parent.info.status == "FAILED" and statuses == ["FAILED", "FINISHED"]
    failed = next(r for r in runs if r.info.status == "FAILED" and r is not parent)
    assert "MemoryError" in failed.data.tags["harness.error"]
    assert failed.data.tags["mlflow.note.content"].startswith("FAILED: MemoryError")
    assert parent.data.tags["mlflow.note.content"].startswith("1 of 2 jobs FINISHED")
    assert parent.data.metrics["jobs_finished"] == 1 and parent.data.metrics["jobs"] == 2
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
        (["init.stack_mb=0"], "harness: error: init.stack_mb: got 0.0; allowed: a finite number > 0"),
        (
            ["tracking.figures=some"],
            "harness: error: tracking.figures: got 'some'; allowed: true or false or",
        ),
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
    db = store_path(tmp_path)
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

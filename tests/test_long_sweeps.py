"""Long sweeps end to end: ``harness`` in a subprocess, real signals, kill -9, resume, concurrent
launches and broken stores, read back from the real SQLite store. No mocks."""

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from mlflow.tracking import MlflowClient

from harness import processes
from tests.conftest import (
    assert_nothing_misfiled,
    children_of,
    client,
    environment,
    harness,
    runs,
    store_path,
    wait_for,
)

pytestmark = pytest.mark.slow  # long sweeps, stress, real signals: pytest -m slow (CI runs every tier)

LONG_TRAIN = ["debug=default", "mode=train", "data=spirals", "loss=cross_entropy", "gradcheck=off",
              "train.steps=1000000", "train.log_every=50", "tracking.flush_seconds=0.2"]  # fmt: skip


def start(cwd: Path, *args: str) -> subprocess.Popen:
    """``harness`` as a user starts it, in its own session (signals reach only it, as from ``kill``)."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args], cwd=cwd, env=environment(), start_new_session=True,
        stdout=open(cwd / "stdout.txt", "a"), stderr=open(cwd / "stderr.txt", "a"),
    )  # fmt: skip


def running_with_rows(cwd: Path, study: str, n: int, rows: int = 1) -> list:
    """The RUNNING children (or single runs) that have streamed at least ``rows`` training steps."""
    found = []
    c = client(cwd)
    for r in runs(cwd, study):
        active = r.info.status == "RUNNING" and "harness.mode" in r.data.tags
        if active and len(c.get_metric_history(r.info.run_id, "train/loss")) >= rows:
            found.append(r)
    return found if len(found) >= n else []


def stderr_lines(cwd: Path) -> list[str]:
    return (cwd / "stderr.txt").read_text().strip().splitlines()


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_a_signal_ends_the_job_killed_with_its_metrics_and_the_parent_killed(tmp_path, launcher, sig):
    study = f"sig_{launcher}_{sig.name}"
    jobs = 2 if launcher == "joblib" else 1  # joblib runs both at once
    proc = start(tmp_path, "-m", f"launcher={launcher}", f"study={study}", *LONG_TRAIN, "model.depth=3,4")
    wait_for(lambda: running_with_rows(tmp_path, study, jobs, rows=3), what="jobs streaming metrics")
    before = {r.info.run_id: r for r in running_with_rows(tmp_path, study, jobs, rows=3)}
    workers = processes.descendants(proc.pid)
    rows_seen = {i: len(client(tmp_path).get_metric_history(i, "train/loss")) for i in before}
    proc.send_signal(sig)
    assert proc.wait(60) == 128 + sig
    last = stderr_lines(tmp_path)[-1]
    assert last.startswith(f"harness: stopped by {sig.name}: 0 of 2 jobs FINISHED")
    assert f"resume with: harness -m launcher={launcher} study={study}" in last and last.endswith(
        "resume=true"
    )
    assert not [p for p in workers if processes.alive(p)]  # none outlives the launcher (end_leftovers)
    every = runs(tmp_path, study)
    (parent,) = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    assert parent.info.status == "KILLED"
    for run_id, rows in rows_seen.items():
        run = client(tmp_path).get_run(run_id)
        assert run.info.status == "KILLED" and run.data.tags["harness.stopped_by"] == sig.name
        history = client(tmp_path).get_metric_history(run_id, "train/loss")
        steps = sorted(h.step for h in history)
        assert len(history) >= rows and steps == list(range(0, 50 * len(steps), 50))  # none lost, no gaps
        assert steps[-1] == int(run.data.tags["harness.completed"].split()[1])  # kept up to the stop
        assert run.data.metrics["final_loss"] == pytest.approx(history[-1].value if steps else 0)
        assert {a.path for a in client(tmp_path).list_artifacts(run_id)} >= {"arrays", "config.yaml"}
    assert_nothing_misfiled(client(tmp_path))


def test_an_interrupted_init_study_keeps_the_draws_it_finished(tmp_path):
    proc = start(tmp_path, "-v", "study=draws", "debug=default", "init.repeats=100000", "gradcheck=off")
    # -v: a progress line at each tenth passed (the draws run stacked: a pass's worth at a time)
    line = re.compile(r"repeats=100000 gradcheck=off: (\d+)/100000")

    def past_a_tenth() -> bool:
        return any(int(m) >= 10000 for m in line.findall((tmp_path / "stderr.txt").read_text()))

    wait_for(past_a_tenth, what="10% of the draws")
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(60) == 143
    (run,) = runs(tmp_path, "draws")
    assert run.info.status == "KILLED"
    draws = int(run.data.tags["harness.completed"].split()[0])
    assert draws >= 10000 and run.data.tags["harness.completed"] == f"{draws} of 100000 draws"
    assert "grad_h_ratio_log10" in run.data.metrics
    assert len(client(tmp_path).get_metric_history(run.info.run_id, "profile/grad_h")) == 4  # debug depth
    assert run.data.tags["mlflow.note.content"].startswith(
        f"stopped by SIGTERM after {draws} of 100000 draws: "
    )
    assert_nothing_misfiled(client(tmp_path))


def _kill_midway(cwd: Path, args: list[str], study: str) -> list:
    """Start a sweep, kill -9 its launcher once two jobs FINISHED and one is running; the runs then."""
    proc = start(cwd, *args)

    def progress() -> bool:
        statuses = [r.info.status for r in children_of(runs(cwd, study))]
        return statuses.count("FINISHED") >= 2 and "RUNNING" in statuses

    wait_for(progress, what="two finished jobs and a running one")
    workers = processes.descendants(proc.pid)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    wait_for(lambda: not any(processes.alive(p) for p in workers), timeout=5, what="workers to exit")
    return runs(cwd, study)


@pytest.mark.parametrize("launcher", ["basic", "joblib"])
def test_kill_9_then_resume_runs_exactly_the_unfinished_jobs(tmp_path, launcher):
    study = f"resume_{launcher}"
    args = ["-m", f"launcher={launcher}", f"study={study}", "debug=default", "mode=train", "data=spirals",
            "loss=cross_entropy", "gradcheck=off", "train.steps=3000", "model.depth=2,3,4,5,6"]  # fmt: skip
    before = _kill_midway(tmp_path, args, study)
    finished_before = {r.data.tags["harness.job_num"]: r.info.run_id for r in children_of(before)
                       if r.info.status == "FINISHED"}  # fmt: skip
    assert any(r.info.status == "RUNNING" for r in before)  # the launcher died: nobody ended these
    out = harness(tmp_path, *args, "resume=true")
    assert out.returncode == 0, out.stderr
    assert "marked" in out.stderr and "lost run(s) FAILED" in out.stderr
    n = len(finished_before)
    assert f"5 of 5 jobs FINISHED, {n} skipped as already FINISHED, {5 - n} run now" in out.stderr
    after = runs(tmp_path, study)
    parents = [r for r in after if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 1 and parents[0].info.status == "FINISHED"
    assert "harness.lost" not in parents[0].data.tags  # lost once, continued since
    finished = [r for r in children_of(after) if r.info.status == "FINISHED"]
    by_job = {}
    for r in finished:
        by_job.setdefault(r.data.tags["harness.job_num"], []).append(r.info.run_id)
    assert sorted(by_job) == ["0", "1", "2", "3", "4"] and all(len(v) == 1 for v in by_job.values())
    assert all(by_job[j] == [run_id] for j, run_id in finished_before.items())  # not run again
    # the job running at the kill is usually cut (its run lost, then FAILED); it may also have ended in the
    # second before its worker saw the launcher gone (then it is FINISHED and skipped like the others)
    unfinished = {r.info.run_id for r in children_of(before) if r.info.status != "FINISHED"}
    lost = [r for r in children_of(after) if r.info.status != "FINISHED"]
    assert {r.info.run_id for r in lost} == unfinished
    assert all(r.info.status in ("FAILED", "KILLED") for r in lost)
    assert_nothing_misfiled(client(tmp_path))
    again = harness(tmp_path, *args, "resume=true")  # nothing left to do
    assert again.returncode == 0 and "5 skipped as already FINISHED, 0 run now" in again.stderr


def test_resume_refuses_other_overrides_and_a_single_run_is_skipped(tmp_path):
    base = ["study=refuse", "debug=default", "gradcheck=off"]
    assert harness(tmp_path, "-m", *base, "model.depth=2,3").returncode == 0
    db = store_path(tmp_path)
    stored = db.read_bytes()
    out = harness(tmp_path, "-m", *base, "model.depth=2,3,4", "resume=true")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("harness: error: resume: no sweep of study 'refuse' has these overrides")
    assert line.endswith("differs: model.depth=2,3,4 here, model.depth=2,3 there")
    assert db.read_bytes() == stored
    parent = next(r for r in runs(tmp_path, "refuse") if "mlflow.parentRunId" not in r.data.tags)
    out = harness(tmp_path, "-m", *base, "model.depth=2,3,4", f"resume={parent.info.run_id}")
    assert out.returncode == 2 and "model.depth=2,3,4 here, model.depth=2,3 there" in out.stderr
    out = harness(tmp_path, "-m", *base, "model.depth=2,3", "resume=0123456789abcdef0123456789abcdef")
    assert out.returncode == 2 and "is not a sweep of study 'refuse'" in out.stderr
    assert db.read_bytes() == stored

    assert harness(tmp_path, *base, "model.depth=7").returncode == 0
    out = harness(tmp_path, *base, "model.depth=7", "resume=true")
    assert out.returncode == 0 and "resume: skipped: run" in out.stderr
    assert len([r for r in runs(tmp_path, "refuse") if r.data.params.get("model.depth") == "7"]) == 1
    out = harness(tmp_path, *base, "model.depth=8", "resume=true")  # no such run yet: it runs
    assert out.returncode == 0 and len(runs(tmp_path, "refuse")) == 5


def test_concurrent_launches_on_a_brand_new_store(tmp_path):
    """4 single runs started at once on a store that does not exist yet, three times over: every one
    succeeds, in its own output folder, and the store holds exactly what they measured."""
    for attempt in range(3):
        cwd = tmp_path / str(attempt)
        cwd.mkdir()
        procs = [start(cwd, f"study=crowd{i % 2}", "debug=default", "gradcheck=off", f"seed={i}")
                 for i in range(4)]  # fmt: skip
        codes = [p.wait(300) for p in procs]
        assert codes == [0] * 4, (cwd / "stderr.txt").read_text()[-3000:]
        every = runs(cwd, "crowd0") + runs(cwd, "crowd1")
        assert len(every) == 4 and all(r.info.status == "FINISHED" for r in every)
        assert sorted(int(r.data.params["seed"]) for r in every) == list(range(4))
        assert all(r.data.params["seed"] in r.data.tags["harness.overrides"] for r in every)
        rows = {len(client(cwd).get_metric_history(r.info.run_id, "profile/grad_h")) for r in every}
        assert rows == {4}
        assert len({r.data.metrics["grad_h_ratio_log10"] for r in every}) == 4  # four seeds, four numbers
        assert len(list((cwd / "outputs").glob("*/*"))) == 4  # no shared output folder
        assert_nothing_misfiled(client(cwd))
        healthy = harness(cwd, "study=crowd0", "debug=default", "gradcheck=off", "seed=99")
        assert healthy.returncode == 0, healthy.stderr  # the store is still usable


def test_two_sweeps_in_the_same_second_never_mix(tmp_path):
    args = ["-m", "study=twins", "debug=default", "gradcheck=off", "model.depth=2,3"]
    c = [start(tmp_path, *args, f"seed={s}") for s in (10, 20)]
    assert [p.wait(300) for p in c] == [0, 0], (tmp_path / "stderr.txt").read_text()[-3000:]
    every = runs(tmp_path, "twins")
    parents = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
    assert len(parents) == 2 and len({p.data.tags["harness.sweep_dir"] for p in parents}) == 2
    for parent in parents:
        seed = parent.data.tags["harness.overrides"].split("seed=")[1].split()[0]
        kids = [r for r in every if r.data.tags.get("mlflow.parentRunId") == parent.info.run_id]
        assert len(kids) == 2 and parent.info.status == "FINISHED"
        for kid in kids:
            assert kid.data.params["seed"] == seed
            assert kid.data.tags["harness.sweep_dir"] == parent.data.tags["harness.sweep_dir"]
            logged = client(tmp_path).download_artifacts(
                kid.info.run_id, "hydra/overrides.yaml", str(tmp_path)
            )
            assert f"seed={seed}" in Path(logged).read_text()
            Path(logged).unlink()


def _mount(path: Path, *options: str) -> None:
    path.mkdir(parents=True, exist_ok=True)
    out = subprocess.run(["mount", "-t", "tmpfs", "-o", ",".join(options), "tmpfs", str(path)],
                         capture_output=True, text=True)  # fmt: skip
    if out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({out.stderr.strip() or 'not root'}); CI runs as root")


def _umount(path: Path) -> None:
    subprocess.run(["umount", "-l", str(path)], check=False)


def test_a_read_only_or_full_store_fails_at_once_with_one_line(tmp_path):
    ro = tmp_path / "ro"
    _mount(ro, "size=8m")
    try:
        subprocess.run(["mount", "-o", "remount,ro", str(ro)], check=True)
        clock = time.monotonic()
        out = harness(tmp_path, "debug=default", f"tracking.uri=sqlite:///{ro}/mlflow.db")
        assert time.monotonic() - clock < 15
        assert out.returncode == 2
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith(
            f"harness: error: tracking store sqlite:///{ro}/mlflow.db: cannot write in {ro}"
        )
        assert "Read-only file system" in line and "tracking.uri=" in line
    finally:
        _umount(ro)
    small = tmp_path / "small"
    _mount(small, "size=8m")
    try:
        out = harness(
            tmp_path, "-m", "debug=default", f"tracking.uri=sqlite:///{small}/mlflow.db", "seed=1,2"
        )
        assert out.returncode == 2
        (line,) = out.stderr.strip().splitlines()
        assert line.startswith("harness: error: tracking store") and "MB free" in line
        assert not (small / "mlflow.db").exists()
    finally:
        _umount(small)


def test_a_disk_that_fills_during_a_sweep_leaves_nothing_running(tmp_path):
    """The disk fills between jobs: the sweep ends in seconds, saying what to do; once space is back,
    the next launch marks what was left RUNNING as FAILED and resume finishes the sweep."""
    disk = tmp_path / "disk"
    _mount(disk, "size=80m")
    try:
        uri = f"sqlite:///{disk}/mlflow.db"
        args = ["-m", "study=full", "debug=default", "gradcheck=off", "tracking.figures=true",
                f"tracking.uri={uri}", "model.depth=2,3,4,5,6,7"]  # fmt: skip
        proc = start(tmp_path, *args)
        c = MlflowClient(uri)
        wait_for(lambda: (disk / "mlflow.db").exists() and c.get_experiment_by_name("full") is not None
                 and any(r.info.status == "FINISHED" for r in c.search_runs(
                     [c.get_experiment_by_name("full").experiment_id])), what="a finished job")  # fmt: skip
        filler = disk / "filler"
        subprocess.run(["dd", "if=/dev/zero", f"of={filler}", "bs=1M"], capture_output=True)
        clock = time.monotonic()
        code = proc.wait(120)
        assert time.monotonic() - clock < 60 and code != 0
        text = (tmp_path / "stderr.txt").read_text()
        assert "Traceback" not in text
        assert "database or disk is full" in text or "No space left on device" in text
        filler.unlink()
        out = harness(tmp_path, *args, "resume=true")
        assert out.returncode == 0, out.stderr
        exp = c.get_experiment_by_name("full").experiment_id
        every = c.search_runs([exp])
        assert all(r.info.status != "RUNNING" for r in every)
        parent = next(r for r in every if "mlflow.parentRunId" not in r.data.tags)
        assert parent.info.status == "FINISHED" and parent.data.tags["harness.jobs_finished"] == "6"
    finally:
        _umount(disk)


def start_in(cwd: Path, logs: Path, *args: str) -> subprocess.Popen:
    """``start``, its output kept in ``logs`` (off a disk that is about to fill)."""
    return subprocess.Popen(
        [sys.executable, "-m", "harness", *args], cwd=cwd, env=environment(), start_new_session=True,
        stdout=open(logs / "stdout.txt", "a"), stderr=open(logs / "stderr.txt", "a"),
    )  # fmt: skip


def test_a_project_folder_whose_disk_fills_mid_job_stops_the_sweep_in_seconds(tmp_path):
    """The store and Hydra's folders on one small disk that fills while two jobs train: the sweep stops
    on its own, starts no further job, says so without a traceback; with space back, resume marks what
    was left RUNNING as FAILED and finishes every job."""
    disk = tmp_path / "disk"
    _mount(disk, "size=96m")
    try:
        study = "fills"
        args = ["-m", "launcher=joblib", f"study={study}", "mode=train", "data=spirals",
                "loss=cross_entropy", "gradcheck=off", "tracking.figures=false", "model.depth=5",
                "model.width=64", "train.steps=3000", "train.log_every=10", "tracking.flush_seconds=0.2",
                "seed=0,1,2,3"]  # fmt: skip
        proc = start_in(disk, tmp_path, *args)
        wait_for(lambda: running_with_rows(disk, study, 2), what="two jobs streaming metrics")
        workers = processes.descendants(proc.pid)
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=1M"], capture_output=True)
        clock = time.monotonic()
        assert proc.wait(60) == 1
        assert time.monotonic() - clock < 20  # on its own: no signal was sent
        wait_for(lambda: not any(processes.alive(p) for p in workers), timeout=5, what="workers to exit")
        text = (tmp_path / "stderr.txt").read_text()
        assert "Traceback" not in text, text[-3000:]
        assert "harness: out of disk space (" in text and "the sweep stops, no further job starts" in text
        (disk / "filler").unlink()
        started = children_of(runs(disk, study))
        assert len(started) == 2  # the two that were running; none after the disk filled
        out = harness(disk, *args, "resume=true")
        assert out.returncode == 0, out.stderr[-3000:]
        every = runs(disk, study)
        assert all(r.info.status != "RUNNING" for r in every)
        (parent,) = [r for r in every if "mlflow.parentRunId" not in r.data.tags]
        assert parent.info.status == "FINISHED" and parent.data.tags["harness.jobs_finished"] == "4"
        now = {r.info.run_id: r.info.status for r in every}
        assert all(now[r.info.run_id] == "FAILED" for r in started)  # recorded, or marked lost
    finally:
        _umount(disk)


def test_a_signal_on_a_full_disk_ends_in_seconds_and_the_next_launch_marks_the_runs(tmp_path):
    """A job that has not written for a while when the disk fills: SIGTERM ends the sweep within seconds
    (nothing can be recorded, nothing waits for the store); once there is space, the next launch of the
    study marks the child and the parent FAILED."""
    disk = tmp_path / "disk"
    _mount(disk, "size=96m")
    try:
        study = "stuck"
        args = ["-m", f"study={study}", *LONG_TRAIN, "tracking.flush_seconds=3600", "seed=0,1"]
        proc = start_in(disk, tmp_path, *args)

        def a_running_child() -> bool:
            return any(r.info.status == "RUNNING" for r in children_of(runs(disk, study)))

        wait_for(a_running_child, what="a running child")
        workers = processes.descendants(proc.pid)
        subprocess.run(["dd", "if=/dev/zero", f"of={disk / 'filler'}", "bs=1M"], capture_output=True)
        clock = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(60) == 143
        assert time.monotonic() - clock < 10
        assert not any(processes.alive(p) for p in workers)
        text = (tmp_path / "stderr.txt").read_text()
        assert "Traceback" not in text and "could not record the stop" in text, text[-3000:]
        (disk / "filler").unlink()
        out = harness(disk, f"study={study}", "debug=default")
        assert out.returncode == 0, out.stderr[-3000:]
        assert "harness: marked 2 lost run(s) FAILED in experiment 'stuck'" in out.stderr
        assert all(r.info.status != "RUNNING" for r in runs(disk, study))
    finally:
        _umount(disk)


def test_a_moved_project_folder_is_reported_not_silently_recreated(tmp_path):
    old, new = tmp_path / "old", tmp_path / "new"
    old.mkdir()
    assert harness(old, "study=moved", "debug=default", "gradcheck=off").returncode == 0
    old.rename(new)
    out = harness(new, "study=moved", "debug=default", "gradcheck=off", "seed=1")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert f"keeps its artifacts in {old}/mlruns/moved, which does not exist" in line
    assert line.endswith(f"ln -s {new}/mlruns/moved {old}/mlruns/moved")
    assert not old.exists()  # nothing recreated at the old place
    old.mkdir()
    (old / "mlruns").mkdir()
    (old / "mlruns" / "moved").symlink_to(new / "mlruns" / "moved")  # the fix the line gives
    assert harness(new, "study=moved", "debug=default", "gradcheck=off", "seed=1").returncode == 0


def test_a_data_file_with_nan_or_text_is_refused_before_any_run(tmp_path):
    good = Path(__file__).resolve().parent / "data" / "tiny.csv"
    bad = tmp_path / "bad.csv"
    bad.write_text("1,2,0\n3,nan,1\n5,6,0\n")
    out = harness(
        tmp_path, "-m", "mode=train", "data=file", "loss=mse", "debug=default", f"data.path={good},{bad}"
    )
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert (
        line
        == f"harness: error: data.path: {bad} row 2, column 2: nan (1 such cells); allowed: finite numbers"
    )
    assert not (tmp_path / "mlruns").exists()


def test_a_200_job_joblib_sweep(tmp_path):
    out = harness(tmp_path, "-m", "launcher=joblib", "study=big", "debug=default", "gradcheck=off",
                  "seed=range(200)", timeout=1800)  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    every = runs(tmp_path, "big")
    kids = children_of(every)
    assert len(kids) == 200 and all(r.info.status == "FINISHED" for r in kids)
    assert sorted(int(r.data.params["seed"]) for r in kids) == list(range(200))
    c = client(tmp_path)
    counts = {len(c.get_metric_history(r.info.run_id, "profile/grad_h")) for r in kids}
    assert counts == {4}
    assert len({len(r.data.metrics) for r in kids}) == 1  # identical metric keys in every child
    assert_nothing_misfiled(client(tmp_path))

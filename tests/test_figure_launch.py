"""A figure's missing jobs through Hydra launchers: product blocks that cover exactly the missing jobs,
and a real signal to ``harness-figure`` while its sweep runs."""

import itertools
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from harness.config import ConfigError
from harness.figure_launch import blocks, check_launcher, command
from harness.figures import jobs_of, parse_figure
from tests.conftest import environment, figure, runs

SPEC = parse_figure("f", {
    "sweep": {"model.depth": [2, 3, 4], "model.init_scale": [0.5, 1.0]}, "seeds": [0, 1],
    "cases": [{"label": "a", "model.activation": "tanh"}, {"label": "b", "model.activation": "relu"}],
    "plot": {"kind": "profile", "metric": "grad_h", "hue": "case"},
})  # fmt: skip


def _covered(parts):
    out = []
    for b in parts:
        out += [
            (b["case"][0], *p) for p in itertools.product(b["model.depth"], b["model.init_scale"], b["seed"])
        ]
    return out


def _key(job):
    return (job.factors["case"], job.factors["model.depth"], job.factors["model.init_scale"], str(job.seed))


def test_a_whole_grid_is_one_sweep_per_case():
    jobs = jobs_of(SPEC)
    parts = blocks(SPEC, jobs)
    assert len(parts) == 2 and sorted(_covered(parts)) == sorted(_key(j) for j in jobs)
    words = command(SPEC, parts[0], "joblib")
    assert words[1:4] == ["-m", "harness", "-m"] and "model.depth=2,3,4" in words and "seed=0,1" in words
    assert "model.activation=tanh" in words and "launcher=joblib" in words and "study=figure_f" in words


def test_blocks_cover_exactly_the_missing_jobs():
    jobs = jobs_of(SPEC)
    for drop in ([0], [0, 5, 7], list(range(0, 24, 2)), [3, 4, 5, 6, 20]):
        missing = [j for i, j in enumerate(jobs) if i not in drop]
        covered = _covered(blocks(SPEC, missing))
        assert sorted(covered) == sorted(_key(j) for j in missing)  # each once, nothing finished re-run
    assert len(blocks(SPEC, jobs[:8])) == 1  # case a, depths 2 and 3: still a product, one sweep
    assert len(blocks(SPEC, jobs[:6])) == 2  # depth 2 (both scales), depth 3 at scale 0.5: two


def test_unknown_launcher_is_one_line():
    with pytest.raises(
        ConfigError, match="^--launcher: got 'mpi'; allowed: basic, joblib, ray, slurm, submitit_local$"
    ):
        check_launcher("mpi")


FIGURE = """
study: fig_signal
base: {model.width: 16, data.input_dim: 16, init.repeats: 500, init.batch_size: 8, gradcheck: "off",
       tracking.figures: false, model.depth: 30}
sweep:
  model.init_scale: [0.5, 1.0, 1.5, 2.0]
plot: {kind: lines, metric: grad_h_slope, x: model.init_scale}
"""


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in Path(f"/proc/{pid}/status").read_text()


def _descendants(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        kids = Path(f"/proc/{p}/task/{p}/children")
        found = [int(c) for c in kids.read_text().split()] if kids.exists() else []
        out += found
        todo += found
    return out


@pytest.mark.slow  # a real figure through harness -m sweeps: pytest -m slow
@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT, signal.SIGHUP])
def test_a_signal_stops_the_figure_records_its_runs_and_the_rerun_finishes(tmp_path, signum):
    config = tmp_path / "sig.yaml"
    config.write_text(FIGURE)
    proc = subprocess.Popen([sys.executable, "-m", "harness.figure_cli", str(config)], cwd=tmp_path,
                            env=environment(), stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    deadline = time.time() + 120  # the first job's verdict line: "[1/4] ...: ..."
    while time.time() < deadline and not any(line.startswith("[1/4]") for line in lines):
        time.sleep(0.2)
    assert any(line.startswith("[1/4]") for line in lines), "".join(lines)  # a job finished, others run
    family = [proc.pid, *_descendants(proc.pid)]
    assert len(family) >= 3  # harness-figure, its harness -m, joblib's workers
    proc.send_signal(signum)
    proc.wait(timeout=180)
    reader.join(timeout=10)
    err = "".join(lines)
    assert proc.returncode == 128 + signum, err
    assert f"harness-figure: stopped by {signal.Signals(signum).name}" in err
    time.sleep(1)
    assert not [p for p in family if _alive(p)]  # no child left behind
    found = runs(tmp_path, "fig_signal")
    statuses = sorted(r.info.status for r in found if r.data.tags.get("harness.kind") != "sweep")
    parent = [r for r in found if r.data.tags.get("harness.kind") == "sweep"]
    # stopped part-way; a job the signal caught is KILLED with what it measured, never left RUNNING
    assert 1 <= statuses.count("FINISHED") < 4 and set(statuses) <= {"FINISHED", "KILLED"}
    assert len(parent) == 1 and parent[0].info.status == "KILLED"
    finished = {r.info.run_id for r in found if r.info.status == "FINISHED"}
    again = figure(tmp_path, str(config))
    assert again.returncode == 0, again.stderr
    # only the jobs without a FINISHED run ran again; every run measured before the signal is kept
    assert f"ran {4 - len(finished)} job(s), reused {len(finished)} run(s)" in again.stderr
    kept = {r.info.run_id for r in runs(tmp_path, "fig_signal") if r.info.status == "FINISHED"}
    assert finished <= kept

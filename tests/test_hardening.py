"""A user's worst day: names that would escape the project folder, deleted keys, data files as users
have them, a damaged store, a run too large for its store. Each check has its negative control (what
is allowed still runs). The full disk and the signals are in ``test_long_sweeps``."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

from harness.config import ConfigError, metric_rows
from harness.data import check_data_file, load_data
from harness.figure_cli import figure_path
from harness.preflight import validate_command
from harness.runner import layer_picks
from tests.conftest import client, harness, runs, store_path


def everything_under(root: Path) -> set[Path]:
    return set(root.rglob("*"))


@pytest.mark.parametrize(
    "words",
    [
        ["study=../../escape"],
        ["study="],
        ["study=étude"],
        ["study=a/b"],
        ["study=.hidden"],
        ["-m", "study=fine,../../x"],
        ["~study"],
    ],
)
def test_a_study_name_that_is_not_a_plain_label_is_refused_before_any_folder(tmp_path, words):
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    before = everything_under(tmp_path)
    out = harness(cwd, *words, "debug=default")
    assert out.returncode == 2, out.stderr[-2000:]
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("harness: error: study: ")
    assert "allowed: a plain name" in line or "set a plain name" in line
    assert everything_under(tmp_path) == before  # no Hydra folder, no store, anywhere


def test_a_plain_study_name_runs_and_its_folders_stay_in_the_project(tmp_path):
    cwd = tmp_path / "a" / "b" / "c"
    cwd.mkdir(parents=True)
    out = harness(cwd, "study=fine.name-1", "debug=default")
    assert out.returncode == 0, out.stderr[-2000:]
    assert (cwd / "outputs" / "fine.name-1").is_dir()
    assert {p.parent for p in everything_under(tmp_path) if p.parent.parent == tmp_path} == {tmp_path / "a"}
    assert [r.info.status for r in runs(cwd, "fine.name-1")] == ["FINISHED"]


@pytest.mark.parametrize(
    ("word", "start"),
    [
        ("~model.depth", "harness: error: model.depth: a key of the harness cannot be deleted"),
        ("~model", "harness: error: model: a config group cannot be deleted (~model); choose one of: mlp"),
        ("figure=trainability", "harness: error: figure: not a key of harness; a figure is built with"),
    ],
)
def test_a_deleted_key_or_a_figure_as_a_group_is_one_line(tmp_path, word, start):
    out = harness(tmp_path, word, "debug=default")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(start), line
    assert not (tmp_path / "mlruns").exists()


def test_no_figure_group_among_the_app_configs():
    from harness.preflight import CONF_DIR, group_options

    assert not (CONF_DIR / "figure").exists()
    assert group_options("model") == ["mlp"]


def test_a_figure_is_a_shipped_name_or_a_yaml_file_with_a_plain_name(tmp_path):
    assert figure_path("trainability").name == "trainability.yaml"  # the negative control
    with pytest.raises(ConfigError, match="figure: unknown figure '../conf/config'"):
        figure_path("../conf/config")  # a path that exists beside the figure configs
    odd = tmp_path / "...yaml"
    odd.write_text("study: x\n")
    with pytest.raises(ConfigError, match="figure: the file name '...yaml' is not a plain name"):
        figure_path(str(odd))


def csv(path: Path, text: str) -> str:
    path.write_text(text)
    return str(path)


def test_a_csv_with_a_header_row_reads_as_the_same_numbers(tmp_path):
    from harness.config import DataConfig

    rows = "1,2,0\n3,4,1\n5,6,0\n7,8,1\n1.5,2.5,1\n"
    plain = csv(tmp_path / "plain.csv", rows)
    named = csv(tmp_path / "named.csv", "x1,x2,label\n" + rows)
    check_data_file(named)
    a, b = (load_data(DataConfig(name="file", path=p), np.random.default_rng(0)) for p in (plain, named))
    for field in ("x_train", "y_train", "x_test", "y_test"):
        np.testing.assert_array_equal(getattr(a, field), getattr(b, field))
    assert len(a.x_train) + len(a.x_test) == 5 and a.classes == 2


def test_a_bad_cell_after_a_header_names_the_line_of_the_file(tmp_path):
    with pytest.raises(ConfigError, match=r"row 3, column 2: 'x' is not a number"):
        check_data_file(csv(tmp_path / "cell.csv", "a,b,y\n1,2,0\n3,x,1\n"))
    with pytest.raises(ConfigError, match=r"row 3: 2 columns where the rows above have 3"):
        check_data_file(csv(tmp_path / "short.csv", "a,b,y\n1,2,0\n3,1\n"))
    with pytest.raises(ConfigError, match=r"row 2, column 2: 'x' is not a number"):
        check_data_file(csv(tmp_path / "nohead.csv", "1,2,0\n3,x,1\n"))


def test_too_few_samples_are_refused_and_two_are_enough(tmp_path):
    with pytest.raises(ConfigError, match=r"has 1 data row\(s\); needs at least 2 \(one to test on"):
        check_data_file(csv(tmp_path / "one.csv", "1,2,0\n"))
    check_data_file(csv(tmp_path / "two.csv", "1,2,0\n3,4,1\n"))
    np.savez(tmp_path / "mismatch.npz", x=np.ones((4, 2)), y=np.ones(3))
    with pytest.raises(ConfigError, match=r"'x' and 'y' have shapes \(4, 2\) and \(3,\)"):
        check_data_file(str(tmp_path / "mismatch.npz"))
    np.savez(
        tmp_path / "split.npz", x=np.ones((1, 2)), y=np.ones(1), x_test=np.ones((1, 2)), y_test=np.ones(1)
    )
    check_data_file(str(tmp_path / "split.npz"))  # an explicit test set: one training sample is enough


@pytest.mark.parametrize(
    ("words", "start"),
    [
        (["data=file"], "harness: error: data.path: data=file needs your file: data.path=/path/to/data.csv"),
        (["data=file", "data.path=nope.csv"], "harness: error: data.path: no file at 'nope.csv'"),
        (["data=file", "data.path=one.csv"], "harness: error: data.path: one.csv has 1 data row(s)"),
    ],
)
def test_a_data_file_problem_is_one_line_before_any_run(tmp_path, words, start):
    csv(tmp_path / "one.csv", "1,2,0\n")
    out = harness(tmp_path, *words, "mode=train", "loss=cross_entropy", "debug=default")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith(start), line
    assert not (tmp_path / "mlruns").exists()


@pytest.mark.parametrize("damage", ["truncated", "overwritten"])
def test_a_damaged_store_is_named_as_damaged_and_left_as_it_was(tmp_path, damage):
    assert harness(tmp_path, "debug=default", "study=keep").returncode == 0
    db = store_path(tmp_path)
    healthy = tmp_path / "healthy.db"
    shutil.copy(db, healthy)
    if damage == "truncated":
        db.write_bytes(db.read_bytes()[: db.stat().st_size // 3])
    else:
        db.write_bytes(b"not a database, a user's notes\n" * 10)
    broken = db.read_bytes()
    out = harness(tmp_path, "debug=default", "study=keep")
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert f"the file {db} is damaged and was left as it is" in line and ".damaged" in line, line
    assert "another program" not in line
    assert db.read_bytes() == broken
    shutil.copy(healthy, db)  # the control: the same store, undamaged, runs again
    assert harness(tmp_path, "debug=default", "study=keep").returncode == 0


def logged_rows(cwd: Path, run_id: str) -> int:
    import sqlite3

    with sqlite3.connect(store_path(cwd)) as db:
        return db.execute("select count(*) from metrics where run_uuid = ?", (run_id,)).fetchone()[0]


@pytest.mark.parametrize(
    "words",
    [
        ["model.depth=12"],
        ["mode=train", "data=spirals", "loss=cross_entropy", "model.depth=6", "train.steps=40"],
    ],
)
def test_the_row_estimate_bounds_what_a_run_logs(tmp_path, words):
    out = harness(tmp_path, "debug=default", "study=rows", "gradcheck=directional", *words)
    assert out.returncode == 0, out.stderr[-2000:]
    (run,) = runs(tmp_path, "rows")
    _, config = validate_command(["debug=default", "gradcheck=directional", *words])
    estimate, _ = metric_rows(config)
    actual = logged_rows(tmp_path, run.info.run_id)
    assert actual <= estimate < 3 * actual  # an upper bound, and not a vacuous one


def test_a_run_over_the_row_budget_is_refused_before_it_starts(tmp_path):
    words = ["debug=default", "mode=train", "data=spirals", "loss=cross_entropy", "train.steps=100000000"]
    out = harness(tmp_path, *words)
    assert out.returncode == 2
    (line,) = out.stderr.strip().splitlines()
    assert line.startswith("harness: error: tracking.max_rows: this run would log up to 760,000,")
    assert "20,000,001 logged steps x 38 rows" in line and "train.log_every" in line
    assert not (tmp_path / "mlruns").exists()
    validate_command([*words, "tracking.max_rows=800000000"])  # the control: a budget that allows it


def test_profiles_beyond_profile_layers_are_spread_and_the_arrays_keep_every_layer(tmp_path):
    out = harness(tmp_path, "debug=default", "study=cap", "model.depth=40", "tracking.profile_layers=8")
    assert out.returncode == 0, out.stderr[-2000:]
    assert "per-layer profiles of 8 of 40 layers go to the store (tracking.profile_layers)" in out.stderr
    (run,) = runs(tmp_path, "cap")
    c = client(tmp_path)
    steps = sorted(m.step for m in c.get_metric_history(run.info.run_id, "profile/grad_h"))
    assert steps == list(layer_picks(40, 8)) and steps[0] == 1 and steps[-1] == 40
    checked = sorted(m.step for m in c.get_metric_history(run.info.run_id, "gradcheck/rel_error"))
    assert checked == [0, *steps, 41]
    from harness import tracking

    arrays = tracking.load_arrays(f"sqlite:///{store_path(tmp_path)}", run.info.run_id)
    assert arrays["profile_grad_h"].shape == (40,)
    assert run.data.tags["harness.profile_layers"] == "8 of 40, evenly spread"

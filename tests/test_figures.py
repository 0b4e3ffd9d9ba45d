"""Figures from configs: validation before any work, byte-identical rebuilds, no needless jobs."""

from pathlib import Path

import numpy as np
import pytest
import yaml

from harness.config import ConfigError, config_hash
from harness.figure_cli import prepare_jobs, shipped
from harness.figures import parse_figure
from tests.conftest import client, figure, runs, store_path

SMALL = """
title: small
study: fig_small
base: {model.width: 8, data.input_dim: 8, init.repeats: 2, init.batch_size: 8, gradcheck: "off",
       tracking.figures: false}
sweep:
  model.depth: [2, 3]
cases:
  - {label: tanh, model.activation: tanh}
  - {label: relu, model.activation: relu, model.init: he_normal}
seeds: [0, 1]
plot: {kind: profile, metric: grad_h, hue: case, col: model.depth}
"""


def runs_in(cwd: Path, experiment: str, kind: str = "job") -> list:
    """The experiment's runs of one kind: "job" (a sweep's children), "sweep" (their parents), or "all"."""
    every = runs(cwd, experiment)
    if kind == "all":
        return every
    return [r for r in every if (r.data.tags.get("harness.kind") == "sweep") == (kind == "sweep")]


@pytest.mark.parametrize("name", shipped())
def test_every_shipped_figure_validates_without_a_store(name, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    spec, jobs = prepare_jobs(name)
    assert jobs and all(len(job.config_hash) == 16 for job in jobs)
    # each job's config is what its overrides compose (the figure's study, the job's own seed), hashed
    assert [(j.config.study, j.config.seed) for j in jobs] == [(spec.study, j.seed) for j in jobs]
    assert all(job.config_hash == config_hash(job.config) for job in jobs)
    assert len({job.config_hash for job in jobs}) == len(jobs)  # every job is a different run
    assert not (tmp_path / "mlruns").exists()


def test_shipped_gallery_is_complete():
    assert set(shipped()) >= {"sigmoid_vs_relu", "glorot_bengio", "relu_he_vs_xavier", "plain_vs_residual",
                              "phase_diagram", "training_heatmap", "order_to_chaos"}  # fmt: skip


@pytest.mark.slow  # a real figure through harness -m sweeps: pytest -m slow
def test_build_twice_identical_csv_and_no_new_jobs(tmp_path):
    config = tmp_path / "small.yaml"
    config.write_text(SMALL)
    first, second = tmp_path / "a", tmp_path / "b"
    first.mkdir(), second.mkdir()
    out = figure(first, str(config))
    assert out.returncode == 0, out.stderr
    assert "ran 8 job(s), reused 0 run(s)" in out.stderr
    csv = first / "figures" / "small" / "small.csv"
    folder = first / "figures" / "small"
    assert (folder / "small.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"  # the PNG signature
    assert (folder / "small.pdf").read_bytes()[:5] == b"%PDF-"  # the PDF header
    # the same figure into an empty store: the same bytes
    out = figure(second, str(config))
    assert out.returncode == 0, out.stderr
    assert (second / "figures" / "small" / "small.csv").read_bytes() == csv.read_bytes()
    # rebuilding where every run exists runs nothing
    before = len(runs_in(first, "fig_small"))
    out = figure(first, str(config))
    assert out.returncode == 0 and "ran 0 job(s), reused 8 run(s)" in out.stderr
    assert len(runs_in(first, "fig_small")) == before == 8
    # the 8 jobs ran as one sweep per case, through the default launcher (joblib)
    parents = runs_in(first, "fig_small", "sweep")
    assert len(parents) == 2 and all(p.info.status == "FINISHED" for p in parents)
    assert all("launcher=joblib" in p.data.tags["harness.overrides"] for p in parents)
    # the figure's run records where the figure came from; a rebuild updates it, never a duplicate
    figure_runs = runs_in(first, "figures")
    assert len(figure_runs) == 1
    run = figure_runs[0]
    assert run.info.status == "FINISHED" and run.data.tags["harness.builds"] == "2"
    assert run.data.metrics["jobs_reused"] == 8  # the latest build's
    assert f"/runs/{run.info.run_id}/artifacts" in out.stderr
    sources = set(run.data.tags["harness.source_runs"].split(","))
    assert sources == {r.info.run_id for r in runs_in(first, "fig_small")}
    assert len(run.data.tags["harness.figure_hash"]) == 16 and run.data.tags["version.numpy"]
    logged = {a.path for a in client(first).list_artifacts(run.info.run_id, "figure")}
    assert logged == {
        f"figure/{f}" for f in ("small.csv", "small.png", "small.pdf", "sources.json", "small.yaml")
    }
    # the table: 2 cases x 2 depths x (2 + 3 layers), each aggregated over 2 seeds
    lines = csv.read_text().splitlines()
    assert lines[0] == "case,model.depth,layer,mean,std,n_seeds,theory"
    assert len(lines) == 1 + 2 * (2 + 3)  # 2 cases x (2 + 3 layers over the two depths)
    measured = np.array([float(line.split(",")[3]) for line in lines[1:]])
    predicted = np.array([float(line.split(",")[6]) for line in lines[1:]])
    assert np.all(np.abs(measured - predicted) < 1.0)  # log10 units: theory beside measurement, width 8


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (
            {"sweep": {"model.dpth": [2, 3]}, "plot": {"kind": "profile", "metric": "grad_h", "hue": "case"}},
            "sweep: unknown factor 'model.dpth'",
        ),
        ({"sweep": {"model.depth": []}}, "sweep.model.depth: empty sweep"),
        (
            {"plot": {"kind": "profile", "metric": "grad_q", "hue": "case"}},
            "plot.metric: 'grad_q' is not a metric",
        ),
        (
            {"plot": {"kind": "profile", "metric": "grad_h", "hue": "model.width"}},
            "plot.hue: unknown factor 'model.width'",
        ),
        (
            {"plot": {"kind": "lines", "metric": "final_accuracy", "x": "model.depth"}},
            "plot.metric: no run of this figure records 'final_accuracy'",
        ),
        (
            {"plot": {"kind": "pie", "metric": "grad_h"}},
            "plot.kind: got 'pie'; allowed: one of: profile, phase, lines, heatmap",
        ),
    ],
)
def test_bad_figure_config_one_line_nothing_changes(tmp_path, change, message):
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(yaml.safe_load(SMALL) | change))
    out = figure(tmp_path, str(bad))
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"harness-figure: error: {message}"), out.stderr
    assert not (tmp_path / "mlruns").exists() and not (tmp_path / "figures").exists()


def test_bad_config_leaves_an_existing_store_untouched(tmp_path):
    good = tmp_path / "small.yaml"
    good.write_text(SMALL)
    assert figure(tmp_path, str(good), "--launcher", "basic").returncode == 0
    db = store_path(tmp_path)
    before = db.read_bytes()
    bad = tmp_path / "bad.yaml"
    bad.write_text(SMALL.replace("model.depth: [2, 3]", "model.depth: [2, 0]"))
    out = figure(tmp_path, str(bad))
    assert out.returncode == 2 and "model.depth: got 0" in out.stderr
    assert db.read_bytes() == before


def test_parse_figure_rejects_unknown_keys_and_roles():
    base = {"plot": {"kind": "profile", "metric": "grad_h"}, "sweep": {"model.depth": [2]}}
    with pytest.raises(ConfigError, match="^colour: unknown key; allowed keys: plot, title, study"):
        parse_figure("f", base | {"colour": "red"})
    with pytest.raises(ConfigError, match="^plot.x: not used by kind=profile"):
        parse_figure("f", base | {"plot": {"kind": "profile", "metric": "grad_h", "x": "model.depth"}})
    with pytest.raises(ConfigError, match="^seeds: got"):
        parse_figure("f", base | {"seeds": []})
    spec = parse_figure("f", base | {"cases": [{"model.activation": "relu"}]})
    assert spec.cases[0]["label"] == "activation=relu" and spec.factors == ["case", "model.depth"]


def test_phase_table_and_figure_mark_diverged_cells():
    import pandas as pd

    from harness.sweep_plots import phase_figure

    frame = pd.DataFrame([
        {"model.init_scale": s, "model.depth": d, "mean": m, "std": 0.0, "n_seeds": 1, "diverged": div}
        for (s, d, m, div) in [("0.5", "5", -1.0, 0), ("2.0", "5", 2.0, 0), ("0.5", "10", -3.0, 0),
                               ("2.0", "10", np.nan, 1)]
    ])  # fmt: skip
    plot = {"kind": "phase", "metric": "grad_h_ratio_log10", "x": "model.init_scale", "y": "model.depth"}
    ax = phase_figure(frame, plot, {}, "t").axes[0]
    crosses = [line for line in ax.get_lines() if line.get_marker() == "x"]
    # numeric axes: the cross sits at the diverged cell's own values (init scale 2.0, depth 10)
    assert len(crosses) == 1 and (crosses[0].get_xdata()[0], crosses[0].get_ydata()[0]) == (2.0, 10.0)


def test_lines_with_theory_curve_and_sigma_w2_axis(tmp_path):
    config = tmp_path / "chaos.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "study": "fig_chaos",
                "base": {"model.depth": 4, "model.width": 16, "model.activation": "tanh",
                         "model.init": "lecun_normal", "data.input_dim": 16, "init.repeats": 2,
                         "gradcheck": "off", "tracking.figures": False},
                "sweep": {"model.bias_std": [0.1], "model.init_scale": [0.5, 2.0]},
                "plot": {"kind": "lines", "metric": "grad_h_slope", "x": "model.init_scale",
                         "x_as": "sigma_w2", "hue": "model.bias_std", "theory": True},
            }
        )
    )  # fmt: skip
    out = figure(tmp_path, str(config), "--launcher", "basic")
    assert out.returncode == 0, out.stderr
    import pandas as pd

    frame = pd.read_csv(tmp_path / "figures" / "chaos" / "chaos.csv")
    assert list(frame["source"].value_counts().sort_index().items()) == [("measured", 2), ("theory", 60)]
    theory_rows = frame[frame["source"] == "theory"]
    assert theory_rows["sigma_w2"].min() == pytest.approx(0.25) and theory_rows[
        "sigma_w2"
    ].max() == pytest.approx(4.0)
    # ordered at small sigma_w^2 (rate > 0), chaotic at large (rate < 0), in theory and measurement
    assert theory_rows["mean"].iloc[0] > 0 > theory_rows["mean"].iloc[-1]
    measured = frame[frame["source"] == "measured"]["mean"].to_numpy()
    assert measured[0] > 0 > measured[1]


def test_theory_options_are_validated():
    base = {"plot": {"kind": "profile", "metric": "grad_h", "theory": True}, "sweep": {"model.depth": [2]}}
    with pytest.raises(
        ConfigError, match="^plot.theory: a theory curve is drawn for kind=spectrum, or kind=lines"
    ):
        parse_figure("f", base)
    lines = {"plot": {"kind": "lines", "metric": "grad_h_slope", "x": "model.depth", "x_as": "sigma_b2"},
             "sweep": {"model.depth": [2]}}  # fmt: skip
    with pytest.raises(ConfigError, match="^plot.x_as: got 'sigma_b2'; allowed: one of: sigma_w2, chi1"):
        parse_figure("f", lines)


def test_spectrum_options_are_validated(tmp_path, monkeypatch):
    """kind=spectrum draws jacobian_sv2 of init-mode runs; its theory needs every layer at q*."""
    monkeypatch.chdir(tmp_path)
    spectrum = {"kind": "spectrum", "metric": "grad_h", "col": "model.depth"}
    with pytest.raises(ConfigError, match="^plot.metric: 'grad_h' is not a metric .* allowed: jacobian_sv2$"):
        parse_figure("f", {"plot": spectrum, "sweep": {"model.depth": [2]}})
    from harness.figure_cli import FIGURE_DIR

    values = yaml.safe_load((FIGURE_DIR / "dynamical_isometry_spectrum.yaml").read_text())
    density = "^plot.theory: the free-probability density is drawn for plain networks"
    train = {"mode": "train", "data": "digits", "loss": "cross_entropy"}
    for change, message in (
        ({"data.input_scale": 1.0}, density),
        ({"model.skip": True}, density + ".* got model.norm=none, model.skip=True"),
        (train, "^plot.metric: no run of this figure records"),
    ):
        path = tmp_path / "spectrum.yaml"
        path.write_text(yaml.safe_dump(values | {"base": values["base"] | change}))
        with pytest.raises(ConfigError, match=message):
            prepare_jobs(str(path))
    assert not (tmp_path / "mlruns").exists()

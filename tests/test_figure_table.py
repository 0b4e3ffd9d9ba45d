"""A figure's tidy table from the runs' stored arrays: what each kind aggregates over seeds, row by row."""

import numpy as np
import pytest

from harness.config import parse_config
from harness.figure_table import table
from harness.figures import jobs_of, parse_figure


def test_heatmap_table_averages_log10_over_seeds_per_step_and_layer():
    plot = {"kind": "heatmap", "metric": "grad_W", "col": "model.depth"}
    spec = parse_figure("h", {"sweep": {"model.depth": [2, 3]}, "seeds": [0, 1], "plot": plot})
    jobs = jobs_of(spec)
    steps = np.array([0, 10, 20])
    data, values = {}, {}
    for i, job in enumerate(jobs):
        depth = int(job.factors["model.depth"])
        job.run_id = f"run{i}"
        grid = 10.0 ** np.random.default_rng(i).uniform(
            -6, 1, (len(steps) + 1, depth)
        )  # a row past the steps
        if job.seed == 1:
            grid[1, 0] = 0.0  # no logarithm: this seed is left out of that cell
            grid[2, 1] = np.nan
        values[(depth, job.seed)] = grid
        data[job.run_id] = {"arrays": {"steps": steps, "grad_W": grid}, "metrics": {}}
    frame = table(spec, jobs, data)
    assert list(frame.columns) == ["model.depth", "step", "layer", "mean", "n_seeds"]
    assert len(frame) == len(steps) * (2 + 3)  # only the logged steps, every layer of each depth
    for row in frame.itertuples(index=False):
        depth, s, layer = int(row[0]), list(steps).index(row.step), row.layer - 1
        cells = np.array([values[(depth, seed)][s, layer] for seed in (0, 1)])
        kept = np.log10(cells[np.isfinite(cells) & (cells > 0)])
        assert row.n_seeds == kept.size
        assert row.mean == pytest.approx(kept.mean(), rel=1e-12)  # the mean of log10, not of the values
    assert set(frame[frame["n_seeds"] == 1][["model.depth", "step", "layer"]].itertuples(index=False)) == {
        ("2", 10, 1),
        ("2", 20, 2),
        ("3", 10, 1),
        ("3", 20, 2),
    }


def test_spectrum_table_is_the_density_of_log10_lambda_over_every_eigenvalue():
    """Pooled over seeds; normalised by every eigenvalue (width per run), so the bars' area is the
    resolved fraction: the zeros of a wide-input Jacobian and the squared singular values below rounding
    (n eps sigma_max)^2 are left out and counted."""
    plot = {"kind": "spectrum", "metric": "jacobian_sv2", "col": "model.depth"}
    spec = parse_figure("s", {"sweep": {"model.depth": [2]}, "seeds": [0, 1], "plot": plot})
    jobs = jobs_of(spec)
    rng, data = np.random.default_rng(0), {}
    for i, job in enumerate(jobs):
        job.run_id = f"run{i}"
        sv = 10.0 ** rng.uniform(-3, 1, 30)
        sv[:2] = [1e-20, 0.0]  # below rounding
        data[job.run_id] = {"arrays": {"jacobian_sv": sv, "jacobian_width": np.array(40)}, "metrics": {}}
    frame = table(spec, jobs, data)
    assert set(frame["source"]) == {"measured"} and (frame["n_below_rounding"] == 2 * (2 + 10)).all()
    area = float(np.sum(frame["density"] * (frame["hi"] - frame["lo"])))
    assert area == pytest.approx(2 * 28 / (2 * 40), rel=1e-12)
    logs = np.log10(np.concatenate([data[j.run_id]["arrays"]["jacobian_sv"][2:] ** 2 for j in jobs]))
    assert frame["lo"].min() == pytest.approx(logs.min()) and frame["hi"].max() == pytest.approx(logs.max())
    inside = (logs >= frame["lo"].iloc[1]) & (logs < frame["hi"].iloc[1])
    width = frame["hi"].iloc[1] - frame["lo"].iloc[1]
    assert frame["density"].iloc[1] == pytest.approx(inside.sum() / (80 * width), rel=1e-12)


def test_map_table_pairs_each_layer_with_the_next_averaged_over_seeds():
    plot = {"kind": "map", "metric": "preact_q", "hue": "model.depth"}
    spec = parse_figure("m", {"sweep": {"model.depth": [4]}, "seeds": [0, 1], "plot": plot})
    jobs = jobs_of(spec)
    profiles = {0: np.array([1.0, 2.0, 3.0, 4.0]), 1: np.array([3.0, 4.0, np.nan, 6.0])}
    data = {}
    for job in jobs:
        job.run_id, job.config = f"run{job.seed}", parse_config({"model": {"depth": 4}})
        data[job.run_id] = {"arrays": {"profile_preact_q": profiles[job.seed]}, "metrics": {}}
    whole = table(spec, jobs, data)
    frame = whole[whole["source"] == "measured"]
    assert set(whole["source"]) == {"measured", "theory"}  # the map beside its points
    assert list(frame["layer"]) == [1, 2, 3]
    assert list(frame["x"]) == [2.0, 3.0, 3.0] and list(frame["y"]) == [3.0, 3.0, 5.0]  # NaN left out

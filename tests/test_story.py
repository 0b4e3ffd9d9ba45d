"""Run names, verdicts, the params of a mode and the order of the summaries (``harness.story``)."""

import math

import pytest

from harness.config import parse_config, to_dict
from harness.story import (
    KEY_METRICS,
    run_name,
    run_params,
    summary_order,
    sweep_findings,
    sweep_verdict,
    verdict,
)


def config(**values):
    base = to_dict(parse_config({}))
    for key, value in values.items():
        *path, last = key.split("__")
        node = base
        for part in path:
            node = node[part]
        node[last] = value
    return parse_config(base)


def test_names_carry_the_factors_that_explain_the_result():
    assert run_name(config()) == "tanh xavier D=20 plain"  # init and skip although not swept
    c = config(model__depth=50, model__init_scale=1.5, model__skip=True, model__norm="layer")
    assert run_name(c, ["model.depth", "model.init_scale", "model.skip"]) == "tanh xavier*1.5 D=50 skip LN"
    c = config(model__activation="relu", model__init="he", model__width=256, seed=3)
    assert (
        run_name(c, ["model.width", "seed", "+optim", "tracking.figures"])
        == "relu he D=20 plain width=256 seed=3 optim=sgd"
    )
    assert run_name(config(gradcheck__mode="off"), ["gradcheck"]) == "tanh xavier D=20 plain gradcheck=off"


def test_params_are_those_of_the_runs_mode_model_first():
    init = run_params(config())
    assert list(init)[:6] == ["model.depth", "model.activation", "model.init", "model.init_scale",
                              "model.skip", "model.norm"]  # fmt: skip
    assert "init.repeats" in init and "gradcheck.directions" in init
    assert {k for k in init if k.startswith("data.")} == {
        "data.name",
        "data.input_dim",
        "data.output_dim",
        "data.n_train",
        "data.n_test",
        "data.input_scale",
    }  # gaussian's, and the input scale every dataset has
    assert not [k for k in init if k.startswith(("train.", "optim.", "tracking.", "study", "resume"))]
    train = run_params(
        config(mode="train", data__name="teacher_student", loss__name="mse", gradcheck__mode="off")
    )
    assert "optim.lr" in train and "train.steps" in train and "gradcheck.mode" in train
    assert not [k for k in train if k.startswith(("init.", "tracking."))]
    assert "data.teacher_width" in train and "data.classes" not in train
    swept = run_params(config(), ["train.steps", "tracking.figures", "gradcheck", "study"])
    assert swept["train.steps"] == 300 and swept["tracking.figures"] is True  # what a sweep varies stays
    assert "gradcheck.mode" in swept and "study" not in swept
    assert not [k for k in train if k.startswith("gradcheck.") and k != "gradcheck.mode"]


def test_the_key_metrics_are_logged_first():
    summary = {"grad_ratio_log10": 0.1, "diverged": 0.0, "grad_norm_min": 1.0, "grad_h_slope": 0.5,
               "grad_h_ratio_log10": -2.0, "theory_rate": 0.4}  # fmt: skip
    assert summary_order(summary) == [*KEY_METRICS, "grad_ratio_log10", "grad_norm_min"]
    assert summary_order({"grad_h_slope": 1.0, "x": 2.0}) == ["grad_h_slope", "x"]


VANISHING = {"grad_h_ratio_log10": -2.91, "grad_h_slope": 0.704, "theory_rate": 0.693, "diverged": 0.0}


@pytest.mark.parametrize(
    ("ratio", "kind"), [(-2.91, "vanishing"), (-1.0, "stable"), (0.99, "stable"), (1.01, "exploding")]
)
def test_verdict_names_the_regime_by_the_input_to_output_ratio(ratio, kind):
    assert verdict(VANISHING | {"grad_h_ratio_log10": ratio}).startswith(f"{kind} 10^{ratio:+.1f}, slope")


def test_verdict_says_it_in_what_the_table_shows():
    line = verdict(VANISHING)
    # MLflow's runs table shows the first 47 characters of a description
    assert line[:47] == "vanishing 10^-2.9, slope +0.70 (theory +0.69) |"
    assert line.endswith("||dL/dh_1||/||dL/dh_D||; slope of ln ||dL/dh_l||^2 per layer")
    # where nothing is modelled (LayerNorm, non-Gaussian data) an init run says so; train runs have none
    assert verdict(VANISHING | {"theory_rate": math.nan}).startswith(
        "vanishing 10^-2.9, slope +0.70 (no theory) |"
    )
    assert verdict(VANISHING | {"theory_rate": math.nan}, "train").startswith(
        "vanishing 10^-2.9, slope +0.70 |"
    )


def test_verdict_says_where_correlations_have_no_depth_scale():
    frozen = verdict(VANISHING | {"theory_c_power": 0.0})
    assert frozen[:45] == verdict(VANISHING)[:45]  # what the table shows is unchanged
    assert "; correlations freeze (q* = 0: no c*, xi_c = inf) |" in frozen
    assert "; 1 - c_l ~ l^-2 (no q* > 0: xi_c = inf) |" in verdict(VANISHING | {"theory_c_power": 2.0})
    assert "xi_c" not in verdict(VANISHING | {"theory_c_power": math.nan})


def test_verdict_of_divergence_a_failed_check_and_training():
    diverged = {"grad_h_ratio_log10": math.nan, "diverged": 1.0, "diverged_step": 12.0, "diverged_layer": 3.0}
    assert verdict(diverged, "train") == "diverged: NaN/Inf at step 12, layer 3"
    assert verdict(diverged | {"diverged_step": 0.0}, "init") == "diverged: NaN/Inf, layer 3"
    assert verdict({"grad_h_ratio_log10": math.nan, "diverged": 0.0}).startswith("no finite gradient ratio")
    trained = {"gradcheck_passed": 0.0, "gradcheck_max_rel_error": 2e-5, "final_loss": 0.1234,
               "final_accuracy": 0.97}  # fmt: skip
    line = verdict(VANISHING | trained, "train")
    assert "; gradient check FAILED (max rel. error 2.0e-05); final loss 0.123, accuracy 0.970 |" in line
    assert "final loss" not in verdict(VANISHING | {"final_loss": 0.1}, "init")


def test_sweep_verdict_names_the_extremes():
    rows = [{"name": "a", "status": "FINISHED", "grad_h_ratio_log10": -3.04, "diverged": 0.0},
            {"name": "b", "status": "FINISHED", "grad_h_ratio_log10": 2.0, "diverged": 0.0},
            {"name": "c", "status": "FINISHED", "grad_h_ratio_log10": math.nan, "diverged": 1.0},
            {"name": "d", "status": "FAILED"}]  # fmt: skip
    assert (
        sweep_verdict(rows)
        == "3 of 4 jobs FINISHED; most vanishing a (10^-3.0); most exploding b (10^+2.0); 1 diverged"
    )
    assert sweep_findings(rows[:1]) == ["most vanishing a (10^-3.0)"]  # nothing exploding: not named
    assert sweep_verdict([]) == "0 of 0 jobs FINISHED"
    assert sweep_verdict(rows, jobs=36).startswith("3 of 36 jobs FINISHED")  # jobs without a run count
    mild = [{"name": "m", "status": "FINISHED", "grad_h_ratio_log10": -0.3, "diverged": 0.0}]
    assert sweep_findings(mild) == []  # its own verdict says stable: not "most vanishing"


def test_every_dataset_names_the_data_keys_it_reads():
    from harness.config import DATASETS, DataConfig
    from harness.story import DATA_KEYS

    assert set(DATA_KEYS) == set(DATASETS)
    fields = set(DataConfig.__dataclass_fields__)
    assert all(set(keys) <= fields for keys in DATA_KEYS.values())

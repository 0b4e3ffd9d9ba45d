"""Study jobs without Hydra or MLflow: reproducible numbers, the regimes they should show."""

import numpy as np
import pytest

from harness import batchnorm_theory
from harness.config import parse_config
from harness.study import run_study


def _cfg(**kw):
    base = {"init": {"repeats": 4, "batch_size": 32}, "gradcheck": {"mode": "off"}}
    for key, value in kw.items():
        base[key] = base.get(key, {}) | value if isinstance(value, dict) else value
    return parse_config(base)


def test_same_config_same_numbers():
    cfg = _cfg(model={"depth": 6, "width": 32})
    a, b = run_study(cfg), run_study(cfg)
    for key, value in a.arrays.items():
        assert np.array_equal(value, b.arrays[key], equal_nan=True), key
    c = run_study(_cfg(model={"depth": 6, "width": 32}, seed=1))
    assert not np.array_equal(a.arrays["grad_W"], c.arrays["grad_W"])


def test_init_mode_shapes_and_log_space_average():
    r = run_study(_cfg(model={"depth": 5, "width": 16}))
    assert r.arrays["grad_W"].shape == (4, 5) and r.profile["grad_W"].shape == (5,)
    logs = np.log10(r.arrays["grad_W"])
    np.testing.assert_allclose(r.profile["grad_W"], 10 ** logs.mean(axis=0))
    np.testing.assert_allclose(r.spread["grad_W"], logs.std(axis=0))


def test_sigmoid_vanishes_and_he_relu_does_not():
    sig = run_study(_cfg(model={"depth": 15, "width": 128, "activation": "sigmoid"})).summary
    relu = run_study(
        _cfg(model={"depth": 15, "width": 128, "activation": "relu", "init": "he_normal"})
    ).summary
    assert sig["grad_ratio_log10"] < -2  # first layer's weight gradient 100x smaller than the last's
    assert abs(relu["grad_ratio_log10"]) < 0.5
    assert sig["grad_h_slope"] > 0.3 > abs(relu["grad_h_slope"])


def test_gradcheck_inside_a_study_runs_in_float64():
    r = run_study(_cfg(model={"depth": 3, "width": 8, "dtype": "float32"}, gradcheck={"mode": "entries"}))
    assert r.gradcheck.dtype == "float64" and r.gradcheck.passed
    assert r.summary["gradcheck_max_rel_error"] < 1e-7


def test_training_learns_spirals():
    cfg = _cfg(mode="train", data={"name": "spirals", "noise": 0.0}, loss={"name": "cross_entropy"},
               optim={"name": "adam", "lr": 0.01},
               model={"depth": 4, "width": 64, "activation": "relu", "init": "he_normal"},
               train={"steps": 600, "log_every": 100})  # fmt: skip
    r = run_study(cfg)
    assert r.summary["final_accuracy"] > 0.9 and r.summary["diverged"] == 0
    assert list(r.arrays["steps"]) == [0, 100, 200, 300, 400, 500, 600]
    assert r.arrays["loss"][-1] < 0.5 * r.arrays["loss"][0]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_divergence_is_a_result(dtype):
    cfg = _cfg(mode="train", data={"name": "teacher_student"}, loss={"name": "mse"}, optim={"lr": 1e4},
               model={"depth": 4, "width": 16, "activation": "relu", "init": "he_normal", "dtype": dtype},
               train={"steps": 200})  # fmt: skip
    s = run_study(cfg).summary
    assert s["diverged"] == 1 and s["diverged_step"] < 200 and s["diverged_layer"] >= 1


def test_init_runs_carry_theory_and_the_jacobian_spectrum():
    r = run_study(_cfg(model={"depth": 6, "width": 32}, data={"input_dim": 32}))
    s = r.summary
    assert s["rate_diff"] == s["grad_h_slope"] - s["theory_rate"]
    assert r.profile["theory_grad_h"].shape == (6,) and r.arrays["jacobian_sv"].shape == (32,)
    assert s["jacobian_sv2_mean"] == pytest.approx(np.sum(r.arrays["jacobian_sv"] ** 2) / 32)
    # norm layers are not modelled: no theory, said by absence rather than a wrong number
    normed = run_study(_cfg(model={"depth": 3, "width": 8, "norm": "layer"})).summary
    assert "theory_rate" not in normed
    # BatchNorm with relu carries Yang et al.'s rate, at the run's batch size
    bn = run_study(_cfg(model={"depth": 5, "width": 16, "norm": "batch", "activation": "relu"},
                        init={"batch_size": 8})).summary  # fmt: skip
    lam, first = batchnorm_theory.relu_factors(8)
    assert bn["theory_rate"] == pytest.approx(
        np.polyfit(np.arange(1, 6), np.log([lam**3, lam**2, lam, 1, 1 / first]), 1)[0]
    )
    # the Jacobian is skipped above the configured width
    wide = run_study(_cfg(model={"depth": 2, "width": 64}, init={"jacobian_max_width": 32}))
    assert "jacobian_sv" not in wide.arrays


def test_inputs_scaled_to_q_star_start_the_first_layer_there():
    """data.input_scale=q_star: the first layer's pre-activations have variance q* (the hidden layers'
    fixed point) over the training set, exactly, and every layer after it stays within the sample's
    O(1/sqrt(n)) of it; a number multiplies the inputs."""
    from harness.config import hidden_q_star
    from harness.data import load_data
    from harness.study import scale_inputs

    cfg = _cfg(model={"depth": 4, "width": 64, "activation": "tanh", "init": "lecun_normal", "bias_std": 0.3},
               data={"input_dim": 32, "input_scale": "q_star", "n_train": 4096})  # fmt: skip
    raw = load_data(cfg.data, np.random.default_rng(0))
    data = scale_inputs(cfg, raw)
    q_star = hidden_q_star(cfg)
    first = 1.0 * np.mean(data.x_train**2) + 0.3**2  # lecun: sigma_1^2 = 1
    assert first == pytest.approx(q_star, rel=1e-12) and q_star != pytest.approx(1.09, rel=0.05)
    twice = scale_inputs(_cfg(data={"input_scale": 2.0}), raw)
    np.testing.assert_array_equal(twice.x_test, 2.0 * raw.x_test)

"""Theory beside sweep figures: derived axes, n x xi overlays, the trainable depth, theory curves over
integer factors, and the options' validation."""

import math

import numpy as np
import pandas as pd
import pytest

from harness import correlation, figure_theory, prediction
from harness.config import ConfigError
from harness.figures import parse_figure
from harness.sweep_plots import phase_figure
from tests.conftest import figure

PHASE = {"kind": "phase", "metric": "final_train_accuracy", "x": "model.init_scale", "y": "model.depth"}


def _frame(rows, extra=()):
    return pd.DataFrame(
        [{"model.init_scale": s, "model.depth": d, "source": "measured", "mean": m, "std": 0.0, "n_seeds": 1,
          "diverged": 0, "sigma_w2": float(s) ** 2} for s, d, m in rows] + list(extra)
    )  # fmt: skip


def test_trainable_depth_is_the_deepest_depth_over_the_threshold():
    frame = _frame([("1.0", "10", 0.9), ("1.0", "20", 0.7), ("1.0", "40", 0.2),
                    ("2.0", "10", 0.95), ("2.0", "20", 0.3), ("2.0", "40", 0.6),  # deepest, not first gap
                    ("3.0", "10", 0.1), ("3.0", "20", 0.1), ("3.0", "40", 0.1)])  # fmt: skip
    plot = PHASE | {"trainable": 0.5, "x_as": "sigma_w2"}
    rows = figure_theory.trainable_rows(frame, plot, ["model.init_scale", "model.depth"])
    got = {r["model.init_scale"]: r["mean"] for r in rows}
    assert got["1.0"] == 20.0 and got["2.0"] == 40.0 and math.isnan(got["3.0"])
    assert [r["sigma_w2"] for r in rows] == [1.0, 4.0, 9.0]


def test_trainable_depth_seed_by_seed_gives_its_range():
    """Three seeds: the mean's deepest depth over the threshold, and each seed's, whose shallowest and
    deepest are lo and hi; a seed that reaches the threshold nowhere is counted out (n_reached)."""
    per_seed = {0: (0.9, 0.8, 0.6), 1: (0.9, 0.6, 0.1), 2: (0.2, 0.1, 0.1)}  # depths 10, 20, 40
    depths = ("10", "20", "40")
    rows = [{"model.init_scale": "1.0", "model.depth": d, "seed": s, "mean": m}
            for s, ms in per_seed.items() for d, m in zip(depths, ms, strict=True)]  # fmt: skip
    seeds = pd.DataFrame(rows)
    means = seeds.groupby("model.depth", sort=False)["mean"].mean()
    frame = _frame([("1.0", d, m) for d, m in means.items()])
    rows = figure_theory.trainable_rows(
        frame, PHASE | {"trainable": 0.5}, ["model.init_scale", "model.depth"], seeds
    )
    assert len(rows) == 1
    assert rows[0]["mean"] == 20.0  # means 0.67, 0.5, 0.27
    assert (rows[0]["lo"], rows[0]["hi"], rows[0]["n_reached"]) == (20.0, 40.0, 2)


def test_phase_figure_numeric_axes_sequential_colours_and_overlays():
    xi = lambda x: correlation.xi_c("tanh", x * x, 0.05)  # noqa: E731
    overlay = [{"model.init_scale": repr(float(x)), "source": "6 xi_c", "mean": 6 * xi(x), "sigma_w2": x * x}
               for x in np.linspace(1.0, 2.0, 9)]  # fmt: skip
    trainable = [{"model.init_scale": "1.0", "source": "trainable depth", "mean": 20.0, "sigma_w2": 1.0}]
    frame = _frame([(s, d, 0.5) for s in ("1.0", "2.0") for d in ("10", "20", "100")], overlay + trainable)
    frame.loc[0, "mean"] = 0.1
    fig = phase_figure(frame, PHASE | {"x_as": "sigma_w2"}, {"logy": False}, "t")
    ax = fig.axes[0]
    mesh = ax.collections[0]
    assert mesh.get_cmap().name == "viridis" and mesh.get_clim() == (0.0, 1.0)  # accuracy: its own bounds
    assert ax.get_xlabel() == "sigma_w^2" and ax.get_yscale() == "linear"
    # cells centred on the values: sigma_w^2 1 and 4 (edges halfway, 2.5), depths 10, 20, 100
    xedges = np.unique(mesh.get_coordinates()[..., 0])
    assert list(xedges) == pytest.approx([-0.5, 2.5, 5.5])
    labels = [line.get_label() for line in ax.get_lines()]
    assert "6 xi_c (theory)" in labels and "trainable depth (measured)" in labels
    curve = next(line for line in ax.get_lines() if line.get_label() == "6 xi_c (theory)")
    assert curve.get_xdata()[0] == pytest.approx(1.0) and curve.get_ydata()[0] == pytest.approx(
        6 * 3.627, rel=1e-3
    )
    signed = phase_figure(frame, PHASE | {"metric": "grad_h_ratio_log10"}, {}, "t").axes[0].collections[0]
    assert signed.get_cmap().name == "RdBu_r" and signed.get_clim()[0] == -signed.get_clim()[1]


def test_theory_curve_over_an_integer_factor_uses_whole_numbers(tmp_path, monkeypatch):
    from harness.figure_cli import prepare_jobs

    monkeypatch.chdir(tmp_path)
    spec, jobs = prepare_jobs("finite_width")
    rows = figure_theory.theory_rows(spec, jobs, points=20)
    depths = [int(r["model.depth"]) for r in rows if r["case"] == "n = 64"]
    assert depths == sorted(set(depths)) and depths[0] == 5 and depths[-1] == 40
    first = next(r for r in rows if r["case"] == "n = 64" and r["model.depth"] == "40")
    exact = figure_theory.theory.trigamma(32) + prediction.relu_mask_variance(64)  # per layer, ReLU
    assert first["mean"] == pytest.approx(39 * exact, rel=1e-9)


def test_a_log_axis_needs_positive_values():
    values = {
        "plot": PHASE,
        "sweep": {"model.init_scale": [0.0, 1.0], "model.depth": [2]},
        "style": {"logx": True},
    }
    with pytest.raises(ConfigError, match="^style.logx: model.init_scale has values <= 0"):
        parse_figure("f", values)
    parse_figure("f", values | {"style": {"logy": True}})  # depths are positive


@pytest.mark.parametrize(
    ("plot", "message"),
    [
        (
            {"kind": "profile", "metric": "grad_h", "x_as": "sigma_w2"},
            "^plot.x_as: kind=profile has no factor on x",
        ),
        (PHASE | {"x_as": "q_star"}, "^plot.x_as: got 'q_star'; allowed: one of: sigma_w2, chi1"),
        (
            PHASE | {"overlay": ["six xi_c"]},
            "^plot.overlay: got 'six xi_c'; allowed: '<n> xi_c' or '<n> xi_q'",
        ),
        (PHASE | {"overlay": "6 xi_c"}, "^plot.overlay: got '6 xi_c'; allowed: a list"),
        (
            PHASE | {"y": "model.width", "trainable": 0.5},
            "^plot.trainable: drawn on a phase diagram with y model.depth",
        ),
        (PHASE | {"trainable": "half"}, "^plot.trainable: got 'half'; allowed: a number"),
        (PHASE | {"trainable": True}, "^plot.trainable: got True; allowed: a number"),
        (
            {"kind": "lines", "metric": "theory_xi_c", "x": "model.depth", "theory": True},
            "^plot.theory: a theory",
        ),
    ],
)
def test_theory_options_are_checked(plot, message):
    values = {"plot": plot, "sweep": {"model.init_scale": [1.0], "model.depth": [2], "model.width": [4]}}
    with pytest.raises(ConfigError, match=message):
        parse_figure("f", values)


def test_any_logged_summary_is_a_metric_and_its_mode_is_checked(tmp_path, monkeypatch):
    from harness.figure_cli import prepare_jobs

    sweep = {"model.init_scale": [1.0, 2.0], "model.depth": [2]}
    for metric in ("theory_xi_c", "jacobian_sv2_rel_var", "grad_h_logvar", "final_train_accuracy"):
        parse_figure("f", {"plot": PHASE | {"metric": metric}, "sweep": sweep})
    path = tmp_path / "f.yaml"
    path.write_text("base: {mode: train, data: spirals, loss: cross_entropy}\nsweep: {model.depth: [2, 3]}\n"
                    "plot: {kind: lines, metric: jacobian_sv2_rel_var, x: model.depth}\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match="^plot.metric: no run of this figure records 'jacobian_sv2_rel_var'.*mode=init"
    ):
        prepare_jobs(str(path))


@pytest.mark.slow  # a real figure through harness -m sweeps: pytest -m slow
def test_a_phase_figure_end_to_end_with_overlays_and_trainable_depth(tmp_path):
    import yaml

    config = tmp_path / "band.yaml"
    config.write_text(yaml.safe_dump({
        "study": "fig_band",
        "base": {"model.width": 16, "data.input_dim": 16, "model.activation": "tanh",
                 "model.init": "lecun_normal", "model.bias_std": 0.2236068, "init.repeats": 2,
                 "init.batch_size": 8, "gradcheck": "off", "tracking.figures": False},
        "sweep": {"model.init_scale": [1.0, 2.0], "model.depth": [3, 6]},
        "plot": {"kind": "phase", "metric": "grad_h_ratio_log10", "x": "model.init_scale", "x_as": "sigma_w2",
                 "y": "model.depth", "overlay": ["6 xi_c", "1 xi_q"], "trainable": -0.5},
    }))  # fmt: skip
    out = figure(tmp_path, str(config), "--launcher", "basic")
    assert out.returncode == 0, out.stderr
    frame = pd.read_csv(tmp_path / "figures" / "band" / "band.csv")
    counts = frame["source"].value_counts().to_dict()
    assert counts == {"measured": 4, "6 xi_c": 80, "1 xi_q": 80, "trainable depth": 2}
    curve = frame[frame["source"] == "6 xi_c"]
    assert np.all(np.diff(curve["sigma_w2"]) > 0)  # one curve, left to right
    at_one = curve.iloc[0]
    assert at_one["sigma_w2"] == pytest.approx(1.0) and at_one["mean"] == pytest.approx(
        6 * correlation.xi_c("tanh", 1.0, 0.05), rel=1e-6
    )
    measured = frame[frame["source"] == "measured"]
    assert set(measured["critical_x"].round(3)) == {1.761}  # the critical line in sigma_w^2


def test_a_derived_axis_that_is_not_finite_is_refused_before_running(tmp_path, monkeypatch):
    from harness.figure_cli import prepare_jobs

    # leaky_relu at sigma_w^2 = 4: q* grows without bound, so chi_1 has no value there
    path = tmp_path / "f.yaml"
    path.write_text("base: {model.activation: leaky_relu, model.init: lecun_normal}\n"
                    "sweep: {model.init_scale: [1.0, 2.0], model.depth: [2]}\n"
                    "plot: {kind: lines, metric: grad_h_slope, x: model.init_scale,"
                    " x_as: chi1}\n")  # fmt: skip
    monkeypatch.chdir(tmp_path)
    with pytest.raises(
        ConfigError, match="^plot.x_as: chi1 is not finite for the job .*model.init_scale=2.0"
    ):
        prepare_jobs(str(path))
    assert not (tmp_path / "mlruns").exists()


def test_spectrum_theory_is_free_probabilitys_density_of_log10_lambda(tmp_path, monkeypatch):
    """The dashed curve of the spectrum figure is rho(lambda) lambda ln 10: over the orthogonal groups'
    support (the measured range and half a decade beyond) it integrates to 1 in log10 lambda, and its mean
    of lambda is free probability's closed (E d)^L, to the trapezoid rule's error at the support's two
    edges (where the density drops to 0 within a grid step h): at most 2 h max(rho)."""
    import numpy as np

    from harness import free_probability
    from harness.config import hidden_q_star
    from harness.figure_cli import prepare_jobs
    from harness.figure_theory import sigma_w2_of, spectrum_rows

    monkeypatch.chdir(tmp_path)
    _, jobs = prepare_jobs("dynamical_isometry_spectrum")
    orthogonal = [j for j in jobs if j.factors["model.init"] == "orthogonal" and j.seed == 0]
    measured = [j.factors | {"lo": -1.5, "hi": 0.7} for j in orthogonal]
    for job in orthogonal:
        rows = [r for r in spectrum_rows([job], measured) if r["source"] == "theory"]
        x = np.array([r["log10_sv2"] for r in rows])
        rho = np.nan_to_num(np.array([r["density"] for r in rows]))
        c = job.config
        mean, _ = free_probability.moments("tanh", sigma_w2_of(c), hidden_q_star(c), c.model.depth)
        edges = 2 * (x[1] - x[0]) * rho.max()
        assert abs(np.trapezoid(rho, x) - 1.0) < edges
        assert abs(np.trapezoid(rho * 10**x, x) / mean - 1.0) < edges * 10 ** x[rho > 0].max() / mean
        assert edges < 0.1  # the curve resolves the density


def test_theory_curves_start_where_data_input_scale_puts_the_inputs(tmp_path, monkeypatch):
    """A figure's theory starts from the inputs' second moment after data.input_scale: at q_star every
    layer sits at q*, so the spread is free probability's L (v_W + E d^2 / (E d)^2 - 1) at q*; at a
    number s the first layer's q is sigma_w^2 s^2 + sigma_b^2. The unit-variance start (the bug this
    replaced) gives another spread."""
    from harness import free_probability
    from harness.config import hidden_q_star
    from harness.figure_cli import prepare_jobs

    monkeypatch.chdir(tmp_path)
    _, jobs = prepare_jobs("dynamical_isometry")
    job = next(j for j in jobs if j.factors == {"model.init": "orthogonal", "model.depth": "32"})
    c = job.config
    q_star = hidden_q_star(c)
    spread = free_probability.moments("tanh", figure_theory.sigma_w2_of(c), q_star, 32)[1]
    assert figure_theory.theory_value(c, "jacobian_sv2_rel_var") == pytest.approx(spread, rel=1e-9)
    assert figure_theory.prediction(c).q == pytest.approx(np.full(32, q_star), rel=1e-9)
    doubled = figure_theory.with_value(c, "data.input_scale", 2.0)
    first = figure_theory.prediction(doubled).q[0]
    assert first == pytest.approx(figure_theory.sigma_w2_of(c) * 4 + c.model.bias_std**2, rel=1e-12)
    unit = figure_theory.with_value(c, "data.input_scale", 1.0)
    assert abs(figure_theory.theory_value(unit, "jacobian_sv2_rel_var") / spread - 1) > 0.5


def test_critical_curve_over_sigma_b(tmp_path, monkeypatch):
    """y model.bias_std (y_as sigma_b2): chi_1 = 1 is a curve, sigma_w^2 = critical_sw2(sigma_b^2) on a
    dense grid of sigma_b, drawn dashed over the cells (no vertical line: the critical x varies)."""
    import yaml

    from harness import theory
    from harness.figure_cli import FIGURE_DIR, prepare_jobs
    from harness.phase_plots import phase_figure

    monkeypatch.chdir(tmp_path)
    values = yaml.safe_load((FIGURE_DIR / "poole_phase_diagram.yaml").read_text())
    values["seeds"], values["sweep"]["model.init_scale"] = [0], [1.0, 2.0]  # its sigma_b, fewer jobs
    (tmp_path / "poole.yaml").write_text(yaml.safe_dump(values))
    spec, jobs = prepare_jobs(str(tmp_path / "poole.yaml"))
    rows = figure_theory.critical_rows(spec, jobs)
    assert len(rows) == 80 and {r["source"] for r in rows} == {"chi_1 = 1"}
    for r in rows[::9]:
        assert r["mean"] == pytest.approx(theory.critical_sw2("tanh", r["sigma_b2"]), rel=1e-12)
    assert rows[0]["mean"] == pytest.approx(1.0) and rows[-1]["sigma_b2"] == pytest.approx(0.3, rel=1e-6)
    cells = [{"model.init_scale": j.factors["model.init_scale"],
              "model.bias_std": j.factors["model.bias_std"], "source": "measured", "mean": 0.0,
              "std": 0.0, "n_seeds": 1, "diverged": 0,
              "sigma_w2": figure_theory.sigma_w2_of(j.config), "sigma_b2": j.config.model.bias_std**2,
              "critical_x": figure_theory.critical_x(j.config, "model.init_scale", "sigma_w2")}
             for j in jobs if j.seed == 0]  # fmt: skip
    fig = phase_figure(pd.DataFrame(cells + rows), spec.plot, spec.style, "t")
    ax = fig.axes[0]
    dashed = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(dashed) == 1 and ax.get_ylabel() == "sigma_b^2" and ax.get_xlabel() == "sigma_w^2"
    np.testing.assert_allclose(dashed[0].get_xdata(), [r["mean"] for r in rows])
    np.testing.assert_allclose(dashed[0].get_ydata(), [r["sigma_b2"] for r in rows])
    plot = {"kind": "phase", "metric": "grad_h_slope", "x": "model.init_scale", "y": "model.depth"}
    bad = {"plot": plot | {"y_as": "sigma_b2"}, "sweep": {"model.init_scale": [1.0], "model.depth": [2]}}
    with pytest.raises(
        ConfigError, match="^plot.y_as: got 'sigma_b2'; allowed: sigma_b2, for kind=phase with y"
    ):
        parse_figure("f", bad)


@pytest.mark.parametrize(("scale", "input_scale"), [(2.5, 1.0), (1.0, 4.0)], ids=["chaotic", "ordered"])
def test_length_and_correlation_maps_beside_networks(scale, input_scale):
    """The q-map and c-map figures' dashed lines (profile_theory of preact_q, preact_c) against tanh
    networks (sigma_b^2 = 0.09, width 512, depth 10, 8 draws of 64 inputs) in both phases, q from a
    large start. Per layer the allowance is the t-quantile (99.9%) of the draws' standard error plus the
    finite-width terms the maps leave out, O(1/n): 2/n (relative for q, absolute for c). The control:
    the same maps iterated without the bias (sigma_b^2 = 0, a planted error) must fail it."""
    from scipy import stats as st

    from harness.config import defaults, parse_config
    from harness.study import run_init

    d = defaults()
    d["model"].update(activation="tanh", init="lecun_normal", width=512, depth=10, init_scale=scale,
                      bias_std=0.3)  # fmt: skip
    d["data"].update(input_dim=512, input_scale=input_scale)
    d["init"].update(repeats=8, batch_size=64, jacobian_max_width=0)
    d["gradcheck"]["mode"] = "off"
    c = parse_config(d)
    result = run_init(c)
    t = st.t.ppf(0.9995, 7) / math.sqrt(8)
    for metric, relative in (("preact_q", True), ("preact_c", False)):
        theory = figure_theory.profile_theory(c, metric)
        measured, spread = result.profile[metric], result.spread[metric]
        bias = 2 / 512 * (theory if relative else 1.0)
        assert np.all(np.abs(measured - theory) < t * spread + bias), (metric, measured, theory)
        wrong = figure_theory.profile_theory(figure_theory.with_value(c, "model.bias_std", 0.0), metric)
        assert np.any(np.abs(measured - wrong) > t * spread + bias), metric


def test_map_curves_are_the_length_and_correlation_maps(tmp_path, monkeypatch):
    """length_map's curve is variance_map over the measured q range; correlation_map's is the
    correlation map at q*, which crosses the identity at c* in the chaotic phase (sigma_w = 2.5)."""
    from harness import theory
    from harness.config import hidden_q_star
    from harness.figure_cli import prepare_jobs

    monkeypatch.chdir(tmp_path)
    spec, jobs = prepare_jobs("length_map")
    measured = [{"model.init_scale": s, "x": x} for s in ("1.0", "2.5", "4.0") for x in (0.1, 100.0)]
    rows = figure_theory.map_rows(spec, jobs, measured)
    assert len(rows) == 3 * 120
    for r in rows[::37]:
        sw2 = float(r["model.init_scale"]) ** 2
        assert r["y"] == pytest.approx(theory.variance_map("tanh", sw2, 0.09, r["x"]), rel=1e-12)
    assert min(r["x"] for r in rows) == pytest.approx(0.1 / 1.5)
    spec, jobs = prepare_jobs("correlation_map")
    measured = [{"model.init_scale": j.factors["model.init_scale"], "x": 0.0} for j in jobs]
    rows = [r for r in figure_theory.map_rows(spec, jobs, measured) if r["model.init_scale"] == "2.5"]
    job = next(j for j in jobs if j.factors["model.init_scale"] == "2.5")
    x, y = np.array([r["x"] for r in rows]), np.array([r["y"] for r in rows])
    cross = x[np.argmax(y - x < 0)]  # the first grid point below the identity
    assert abs(cross - correlation.c_star("tanh", 6.25, 0.09)) < x[1] - x[0]
    assert y[-1] == pytest.approx(1.0, abs=1e-9) and hidden_q_star(job.config) > 0

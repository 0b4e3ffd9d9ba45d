"""Theory beside a sweep figure's measurements: derived axes (sigma_w^2, chi_1), the theory curve of a
lines plot, the critical line and n x xi curves of a phase diagram, and the trainable depth a phase
sweep measures. Tables in, rows out (the same tidy rows ``harness.figures.table`` writes to the CSV).
"""

from __future__ import annotations

import dataclasses
import math
import re
from typing import Any

import numpy as np

from harness import theory
from harness.config import ConfigError, StudyConfig
from harness.nn.init import canonical_init

DERIVED_AXES = ("sigma_w2", "chi1")  # plot.x_as
# a summary metric -> the logged theory metric drawn beside it (plot.theory)
THEORY_OF = {"grad_h_slope": "theory_rate", "grad_h_ratio_log10": "ratio",
             "jacobian_sv2_rel_var": "theory_jacobian_sv2_rel_var",
             "jacobian_sv2_mean": "theory_jacobian_sv2_mean",
             "grad_h_logvar": "theory_grad_h_logvar"}  # fmt: skip
OVERLAY = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(xi_c|xi_q)\s*$")


def with_value(config: StudyConfig, key: str, value: Any) -> StudyConfig:
    """A copy of ``config`` with the dotted ``key`` set to ``value`` (cast to the field's type)."""
    head, _, rest = key.partition(".")
    if not rest:
        old = getattr(config, head)
        if isinstance(old, int | float) and not isinstance(old, bool):
            value = round(float(value)) if isinstance(old, int) else float(value)
        return dataclasses.replace(config, **{head: value})
    return dataclasses.replace(config, **{head: with_value(getattr(config, head), rest, value)})


def prediction(config: StudyConfig):  # noqa: ANN201 - theory.Prediction | None
    """The mean-field prediction for an init-mode job on Gaussian inputs (None where not modelled)."""
    from harness.study import predict_for

    if config.mode != "init" or config.data.name != "gaussian":
        return None
    d = config.data
    return predict_for(config, d.input_dim, d.output_dim, config.init.batch_size, input_moment(config))


def input_moment(config: StudyConfig) -> float:
    """E x^2 of data=gaussian's inputs (unit variance) after ``data.input_scale``: the prediction's
    starting point, as ``harness.study.scale_inputs`` sets it (the study itself uses the drawn inputs')."""
    from harness.config import first_layer_sw2, hidden_q_star

    scale = config.data.input_scale
    if scale == "q_star":
        sw2 = first_layer_sw2(config, config.data.input_dim)
        return (hidden_q_star(config) - config.model.bias_std**2) / sw2
    return float(scale) ** 2


def profile_theory(config: StudyConfig, metric: str) -> np.ndarray | None:
    """A profile's theory per layer, in the table's units; None where there is none: grad_h, log10
    sqrt(E||dL/dh_l||^2) (the prediction); preact_q, q_l and preact_c, c_l, the length and correlation
    maps iterated from the inputs (plain networks without norm; c_0 = 0, independent Gaussian inputs)."""
    pred = prediction(config) if metric in ("grad_h", "preact_q", "preact_c") else None
    if pred is None:
        return None
    if metric == "grad_h":
        with np.errstate(all="ignore"):
            return 0.5 * np.log10(pred.grad_h2)
    m = config.model
    if m.skip or m.norm != "none":
        return None
    if metric == "preact_q":
        return pred.q
    from harness import correlation
    from harness.config import first_layer_sw2

    sw2 = sigma_w2_of(config)  # the first layer's sigma_w^2 enters through its input's moment
    p_in = input_moment(config) * first_layer_sw2(config, config.data.input_dim) / sw2
    return correlation.trajectory(m.activation, sw2, m.bias_std**2, p_in, 0.0, m.depth)[1]


def sigma_w2_of(config: StudyConfig) -> float:
    """sigma_w^2 of the hidden (width x width) layers."""
    m = config.model
    return theory.sigma_w2(m.init, m.width, m.width, m.init_scale)


def derived(config: StudyConfig, axis: str) -> float:
    """A derived axis' value for a job: sigma_w^2 of the hidden layers, or chi_1 at their fixed point."""
    if axis == "sigma_w2":
        return sigma_w2_of(config)
    return theory.chi1(config.model.activation, sigma_w2_of(config), config.model.bias_std**2)


def theory_value(config: StudyConfig, metric: str) -> float:
    """The prediction for a summary metric (``THEORY_OF``), NaN where it is not modelled."""
    pred = prediction(config)
    if pred is None:
        return float("nan")
    from harness.study import prediction_metrics

    if THEORY_OF[metric] == "ratio":
        return 0.5 * math.log10(pred.grad_h2[0] / pred.grad_h2[-1])
    return prediction_metrics(pred)[THEORY_OF[metric]]


def critical_x(config: StudyConfig, x: str, x_as: str | None) -> float:
    """Where chi_1 = 1 on the figure's x axis (NaN if nowhere): in sigma_w^2 or chi_1 units for a
    derived axis, else in init scale when x is ``model.init_scale``."""
    m = config.model
    sw2 = theory.critical_sw2(m.activation, m.bias_std**2)
    if x_as == "chi1":
        return 1.0
    if x_as == "sigma_w2":
        return sw2
    if x == "model.init_scale" and math.isfinite(sw2):
        return math.sqrt(sw2 / theory.sigma_w2(m.init, m.width, m.width, 1.0))
    return math.nan


def _grid(values: list[float], points: int, integer: bool) -> np.ndarray:
    lo, hi = min(values), max(values)
    grid = np.geomspace(lo, hi, points) if lo > 0 else np.linspace(lo, hi, points)
    return np.unique(np.round(grid)) if integer else grid


def _first_jobs(jobs: list, *axes: str) -> list:
    """One job per combination of the factors other than ``axes`` (one curve each)."""
    seen, out = set(), []
    for job in jobs:
        key = tuple(v for k, v in job.factors.items() if k not in axes)
        if key not in seen:
            seen.add(key)
            out.append(job)
    return out


def theory_rows(spec: Any, jobs: list, points: int = 60) -> list[dict]:
    """The theory curve of a lines plot: for each (hue, col) group, the prediction on a dense grid of
    the x factor between its smallest and largest value (whole numbers for an integer factor)."""
    xf, metric, x_as = spec.plot["x"], spec.plot["metric"], spec.plot.get("x_as")
    integer = all(float(v).is_integer() for v in spec.sweep[xf]) and isinstance(
        _field(jobs[0].config, xf), int
    )
    grid = _grid([float(v) for v in spec.sweep[xf]], points, integer)
    rows = []
    for job in _first_jobs(jobs, xf):
        factors = {k: v for k, v in job.factors.items() if k != xf}
        for x in grid:
            config = with_value(job.config, xf, float(x))
            value = repr(int(x)) if integer else repr(float(x))
            row = factors | {xf: value, "source": "theory", "mean": theory_value(config, metric)}
            row |= {"std": 0.0, "n_seeds": 0, "diverged": 0, "sigma_w2": sigma_w2_of(config)}
            rows.append(row | ({x_as: derived(config, x_as)} if x_as and x_as != "sigma_w2" else {}))
    return rows


def spectrum_rows(jobs: list, measured: list[dict], points: int = 400) -> list[dict]:
    """Free probability's density of log10 lambda (rho(lambda) lambda ln 10) for each group of a
    spectrum figure, every layer at q*, over its measured range and half a decade beyond each end."""
    from harness import free_probability
    from harness.config import hidden_q_star

    rows = []
    for job in _first_jobs(jobs):
        m = job.config.model
        mine = [r for r in measured if all(r[k] == v for k, v in job.factors.items())]
        lo, hi = min(r["lo"] for r in mine) - 0.5, max(r["hi"] for r in mine) + 0.5
        x = np.logspace(lo, hi, points)
        rho = free_probability.density(
            m.activation, sigma_w2_of(job.config), hidden_q_star(job.config), m.depth, x,
            gaussian=canonical_init(m.init) != "orthogonal",
        )  # fmt: skip
        for value, r in zip(np.log10(x), rho * x * math.log(10), strict=True):
            rows.append(job.factors | {"source": "theory", "log10_sv2": float(value), "density": float(r),
                                       "n_seeds": 0})  # fmt: skip
    return rows


def map_rows(spec: Any, jobs: list, measured: list[dict], points: int = 120) -> list[dict]:
    """The map itself beside a map figure's points, one curve per (hue, col): the length map
    q -> sigma_w^2 E[phi(sqrt(q) z)^2] + sigma_b^2 over the measured range of q (log-spaced), or the
    correlation map at q*, c -> (sigma_w^2 E[phi(u_1) phi(u_2)] + sigma_b^2) / q*, over [min c, 1].
    Plain networks without norm only (none otherwise)."""
    from harness import correlation
    from harness.config import hidden_q_star

    metric, roles = spec.plot["metric"], {spec.plot.get("hue"), spec.plot.get("col")}
    rows = []
    for job in _first_jobs(jobs, *(f for f in spec.factors if f not in roles)):
        m = job.config.model
        if m.skip or m.norm != "none":
            continue
        mine = {k: v for k, v in job.factors.items() if k in roles}
        xs = [r["x"] for r in measured if all(r[k] == v for k, v in mine.items()) and math.isfinite(r["x"])]
        sw2, sb2 = sigma_w2_of(job.config), m.bias_std**2
        if metric == "preact_q":
            grid = np.geomspace(min(xs) / 1.5, max(xs) * 1.5, points)
            values = [theory.variance_map(m.activation, sw2, sb2, float(q)) for q in grid]
        else:
            q = hidden_q_star(job.config)
            grid = np.linspace(min(min(xs), 0.0), 1.0, points)
            values = [(sw2 * correlation.pair_moment(m.activation, q, float(c)) + sb2) / q for c in grid]
        rows += [mine | {"source": "theory", "x": float(x), "y": float(y), "n_seeds": 0}
                 for x, y in zip(grid, values, strict=True)]  # fmt: skip
    return rows


def _field(config: Any, key: str) -> Any:
    for part in key.split("."):
        config = getattr(config, part)
    return config


def parse_overlay(words: Any) -> list[tuple[float, str]]:
    """``plot.overlay: ["6 xi_c", "1 xi_q"]`` -> [(6.0, "xi_c"), (1.0, "xi_q")]; ConfigError otherwise."""
    if not isinstance(words, list) or not words:
        raise ConfigError(f"plot.overlay: got {words!r}; allowed: a list like ['6 xi_c', '3 xi_q']")
    out = []
    for word in words:
        match = OVERLAY.match(str(word))
        if not match:
            raise ConfigError(f"plot.overlay: got {word!r}; allowed: '<n> xi_c' or '<n> xi_q' (n a number)")
        out.append((float(match.group(1)), match.group(2)))
    return out


def overlay_rows(spec: Any, jobs: list, points: int = 80) -> list[dict]:
    """The n x xi curves of a phase diagram over a dense grid of its x factor, one set per ``col``."""
    from harness.study import phase_theory

    xf, x_as = spec.plot["x"], spec.plot.get("x_as")
    grid = _grid([float(v) for v in spec.sweep[xf]], points, False)
    curves, rows = parse_overlay(spec.plot["overlay"]), []
    for job in _first_jobs(jobs, xf, spec.plot["y"]):
        factors = {k: v for k, v in job.factors.items() if k not in (xf, spec.plot["y"])}
        for x in grid:
            config = with_value(job.config, xf, float(x))
            scales = phase_theory(config)
            for n, scale in curves:
                row = factors | {xf: repr(float(x)), "source": f"{n:g} {scale}"}
                row["mean"] = n * scales.get(f"theory_{scale}", math.nan)
                rows.append(row | ({x_as: derived(config, x_as)} if x_as else {}))
    return rows


def critical_rows(spec: Any, jobs: list, points: int = 80) -> list[dict]:
    """The critical curve chi_1 = 1 of a phase diagram over sigma_b (y model.bias_std): for a dense grid
    of sigma_b, where it sits on the x axis (``mean``), one curve per ``col``; NaN where none exists."""
    xf, yf, x_as = spec.plot["x"], spec.plot["y"], spec.plot.get("x_as")
    values = [float(v) for v in spec.sweep[yf]]
    rows = []
    for job in _first_jobs(jobs, xf, yf):
        factors = {k: v for k, v in job.factors.items() if k not in (xf, yf)}
        for b in np.linspace(min(values), max(values), points):
            config = with_value(job.config, yf, float(b))
            rows.append(factors | {yf: repr(float(b)), "source": "chi_1 = 1", "sigma_b2": float(b) ** 2,
                                   "mean": critical_x(config, xf, x_as)})  # fmt: skip
    return rows


def _deepest(part: Any, yf: str, threshold: float) -> float:
    ok = part[part["mean"] >= threshold]
    return max((float(v) for v in ok[yf]), default=math.nan)


def trainable_rows(frame: Any, plot: dict, factors: list[str], seeds: Any = None) -> list[dict]:
    """Per x (and every other factor but the depth y): the deepest depth whose mean over seeds reaches
    ``plot.trainable``, NaN if none does; with ``seeds`` (one row per job: its factors, ``seed`` and
    ``mean``), the same depth seed by seed: ``lo`` and ``hi`` the shallowest and deepest of them
    (NaN where no seed reaches it), ``n_reached`` how many seeds reach it at any depth."""
    yf, threshold, x_as = plot["y"], float(plot["trainable"]), plot.get("x_as")
    measured = frame[frame["source"] == "measured"]
    keys = [k for k in factors if k != yf]
    rows = []
    for key, part in measured.groupby(keys, sort=False):
        key = key if isinstance(key, tuple) else (key,)
        row = dict(zip(keys, key, strict=True)) | {"source": "trainable depth"}
        row["mean"] = _deepest(part, yf, threshold)
        if seeds is not None:
            mine = seeds[np.all([seeds[k] == v for k, v in zip(keys, key, strict=True)], axis=0)]
            per_seed = np.array([_deepest(one, yf, threshold) for _, one in mine.groupby("seed")])
            reached = per_seed[np.isfinite(per_seed)]
            lo, hi = (float(reached.min()), float(reached.max())) if reached.size else (math.nan, math.nan)
            row |= {"lo": lo, "hi": hi, "n_reached": reached.size}
        rows.append(row | ({x_as: float(part[x_as].iloc[0])} if x_as else {}))
    return rows

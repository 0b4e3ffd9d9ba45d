"""Figures that rebuild from their config: ``harness/figure_configs/<name>.yaml`` names the study
(base overrides, cases, a sweep, seeds), the plot and its style.

Building a figure: validate everything first (no run, no write before the config is known good);
compose every job's study config; find a FINISHED run with the same config hash in the study's MLflow
experiment, or run the job; read the numbers back from the store (so a rebuild and a fresh build read
the same bytes); aggregate over seeds into a tidy table; plot it; write PNG, PDF and the CSV of exactly
the plotted data to ``figures/<name>/``; log them to a run in the ``figures`` experiment that records
the source run ids, git commit, figure hash and package versions.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from dataclasses import dataclass
from typing import Any, Literal

from harness import figure_theory as ft
from harness.config import ConfigError, StudyConfig, config_hash
from harness.metrics import STATS, SUMMARIES, only_in, phase_theory
from harness.schema import build, key

SPECTRA = ("jacobian_sv2",)  # kind=spectrum: the squared singular values of dh_D/dx each run stores
MAPS = ("preact_q", "preact_c")  # kind=map: layer l's value against layer l + 1's
# a figure kind: its roles here, its rows in harness.figure_table, its drawing in harness.sweep_plots.PLOTTERS
ROLES = {
    "profile": ["hue", "col"],
    "phase": ["x", "y", "col"],
    "lines": ["x", "hue", "col"],
    "heatmap": ["col"],
    "spectrum": ["hue", "col"],
    "map": ["hue", "col"],
}
KINDS = tuple(ROLES)
TRAIN_ONLY, INIT_ONLY, PHASE_THEORY = only_in("train"), only_in("init"), phase_theory()


@dataclass
class PlotConfig:
    """``plot:`` of a figure config (README: "Figure options"); a role names a factor of the sweep.
    A key left out is None (leave it out rather than write null)."""

    kind: Literal[KINDS] = key(doc="profile, phase, lines, heatmap or spectrum")  # type: ignore[valid-type]
    metric: str = key(
        doc="a statistic (profile, heatmap), a summary metric (phase, lines), jacobian_sv2 (spectrum)"
    )
    x: str = key(None, "the factor on x (phase, lines)")
    y: str = key(None, "the factor on y (phase)")
    hue: str = key(None, "one line per value (profile, lines)")
    col: str = key(None, "one panel per value")
    theory: bool = key(False, "lines, spectrum: the prediction beside the measurement")
    x_as: Literal["sigma_w2", "chi1"] = key(None, "lines, phase: x in a derived unit")
    y_as: Literal["sigma_b2"] = key(
        None, "phase with y model.bias_std: y as sigma_b^2 (chi_1 = 1 drawn over it)"
    )
    overlay: list[str] = key(None, 'phase with y model.depth: curves like "6 xi_c"')
    trainable: float = key(None, "phase with y model.depth: the trainable depth at this threshold")


@dataclass
class StyleConfig:
    """``style:`` of a figure config; a key left out takes the default named here."""

    width: float = key(None, "inches (default 4.2 per panel)")
    height: float = key(None, "inches (default 3.8)")
    logy: bool = key(None, "log y axis (default: for norms; phase: values spanning x8)")
    logx: bool = key(None, "log x axis (lines; phase: default for values spanning x8)")
    title: str = key(None, "the figure's title (default: the config's title)")
    palette: str = key(None, "a seaborn palette (default colorblind)")
    dpi: int = key(None, "the PNG's resolution (default 150)")


@dataclass
class FigureConfig:
    """A figure config's shape: ``harness/figure_configs/<name>.yaml``."""

    plot: PlotConfig
    title: str = key(None, "the figure's title")
    study: str = key(None, "the study (MLflow experiment) of its runs (default figure_<name>)")
    base: dict[str, Any] = key(None, "overrides every job shares")
    cases: list[Any] = key(None, "named sets of overrides, each a mapping (label: its name)")
    sweep: dict[str, Any] = key(None, "factor -> list of values: the product is swept")
    seeds: list[int] = key(None, "seeds per point (default [0])")
    style: StyleConfig = key(factory=StyleConfig)


@dataclass
class FigureSpec:
    name: str
    study: str
    base: dict[str, Any]
    cases: list[dict[str, Any]]  # each with a "label"
    sweep: dict[str, list[Any]]
    seeds: list[int]
    plot: dict[str, Any]
    style: dict[str, Any]
    title: str = ""

    @property
    def factors(self) -> list[str]:
        """Table columns that vary: "case" (when there are cases), then the swept keys."""
        return (["case"] if self.cases else []) + list(self.sweep)

    def digest(self) -> str:
        text = json.dumps(
            {k: getattr(self, k) for k in ("study", "base", "cases", "sweep", "seeds", "plot", "style")},
            sort_keys=True,
            default=str,
        )
        return hashlib.sha256(text.encode()).hexdigest()[:16]


@dataclass
class Job:
    factors: dict[str, str]  # factor -> value as written in the figure config
    seed: int
    overrides: list[str]
    config: StudyConfig | None = None
    config_hash: str = ""
    run_id: str = ""


def _as_override_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return "null"
    if isinstance(value, list):
        return "[" + ",".join(_as_override_value(v) for v in value) + "]"  # Hydra's list
    text = str(value)
    if re.fullmatch(r"[\w.+\-/:]*", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"  # Hydra's quoted string


def parse_figure(name: str, values: Any) -> FigureSpec:
    """Check a figure config's own shape (keys, kinds, metrics, factors): ConfigError, one line."""
    if not isinstance(values, dict):
        raise ConfigError(f"figure {name}: expected a mapping of {', '.join(FigureConfig.__annotations__)}")
    build(FigureConfig, values)  # keys and types; the spec keeps the values as written (its digest)
    plot, style = dict(values.get("plot") or {}), dict(values.get("style") or {})
    kind, metric = plot["kind"], plot["metric"]
    allowed = {"profile": STATS, "heatmap": STATS, "spectrum": SPECTRA, "map": MAPS}.get(
        kind, tuple(SUMMARIES)
    )
    if metric not in allowed:
        raise ConfigError(
            f"plot.metric: {metric!r} is not a metric runs record for kind={kind}; "
            f"allowed: {', '.join(allowed)}"
        )
    sweep = values.get("sweep") or {}
    for factor, vals in sweep.items():
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"sweep.{factor}: empty sweep; give a list of at least one value")
    cases = values.get("cases")
    if cases is not None and (not cases or not all(isinstance(c, dict) for c in cases)):
        raise ConfigError("cases: give a list of at least one case (a mapping of overrides)")
    cases = [dict(c) for c in cases or []]
    for i, case in enumerate(cases):
        case.setdefault("label", " ".join(f"{k.split('.')[-1]}={v}" for k, v in case.items()))
        if not isinstance(case["label"], str):
            raise ConfigError(f"cases[{i}].label: expected a string")
    seeds = values.get("seeds", [0])
    if not seeds or not all(isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds: got {seeds!r}; allowed: a non-empty list of integers >= 0")
    spec = FigureSpec(
        name=name, study=str(values.get("study") or f"figure_{name}"), base=dict(values.get("base") or {}),
        cases=cases, sweep={k: list(v) for k, v in sweep.items()}, seeds=list(seeds), plot=plot,
        style=style, title=str(values.get("title") or name),
    )  # fmt: skip
    _check_theory_options(plot, kind, metric)
    _check_roles(spec, kind)
    return spec


def _check_roles(spec: FigureSpec, kind: str) -> None:
    """Each role the kind uses names a factor of the sweep; x (and y) where the kind needs them; a log
    axis only over positive numbers."""
    plot, style, needed = spec.plot, spec.style, ROLES[kind]
    for role in ("x", "y", "hue", "col"):
        factor = plot.get(role)
        if factor is None:
            continue
        if role not in needed:
            raise ConfigError(f"plot.{role}: not used by kind={kind}; allowed roles: {', '.join(needed)}")
        if factor not in spec.factors:
            raise ConfigError(
                f"plot.{role}: unknown factor {factor!r}; "
                f"allowed: {', '.join(spec.factors) or '(none swept)'}"
            )
    for role in {"phase": ["x", "y"], "lines": ["x"]}.get(kind, []):
        if plot.get(role) is None:
            raise ConfigError(f"plot.{role}: kind={kind} needs a factor; allowed: {', '.join(spec.factors)}")
    for role in ("x", "y") if kind == "phase" else ():
        factor = plot[role]
        logged = style.get(f"log{role}") and not (role == "x" and plot.get("x_as"))
        values = spec.sweep.get(factor, [1])
        if logged and any(not isinstance(v, int | float) or v <= 0 for v in values):
            raise ConfigError(f"style.log{role}: {factor} has values <= 0 or not numbers; allowed: "
                              f"false, or positive numbers in sweep.{factor}")  # fmt: skip


def _check_theory_options(plot: dict, kind: str, metric: str) -> None:
    """plot.x_as, plot.theory, plot.overlay and plot.trainable: each where its kind can draw it."""
    if plot.get("x_as") is not None:
        if plot["x_as"] not in ft.DERIVED_AXES:
            raise ConfigError(
                f"plot.x_as: got {plot['x_as']!r}; allowed: {', '.join(ft.DERIVED_AXES)} (or leave it out)"
            )
        if kind not in ("lines", "phase"):
            raise ConfigError(f"plot.x_as: kind={kind} has no factor on x; allowed for kind=lines or phase")
    if plot.get("y_as") is not None and (
        plot["y_as"] != "sigma_b2" or kind != "phase" or plot.get("y") != "model.bias_std"
    ):
        raise ConfigError(
            f"plot.y_as: got {plot['y_as']!r}; allowed: sigma_b2, for kind=phase with y model.bias_std"
        )
    if plot.get("theory") and kind != "spectrum" and (kind != "lines" or metric not in ft.THEORY_OF):
        raise ConfigError(
            f"plot.theory: a theory curve is drawn for kind=spectrum, or kind=lines with metric "
            f"{', '.join(ft.THEORY_OF)}; profiles (metric grad_h) and phase diagrams (x model.init_scale) "
            "get theory automatically"
        )
    for option in ("overlay", "trainable"):
        if plot.get(option) is not None and (kind != "phase" or plot.get("y") != "model.depth"):
            raise ConfigError(f"plot.{option}: drawn on a phase diagram with y model.depth (kind=phase)")
    if plot.get("overlay") is not None:
        ft.parse_overlay(plot["overlay"])


def jobs_of(spec: FigureSpec) -> list[Job]:
    """Every (case, sweep point, seed), in config order."""
    jobs = []
    cases = spec.cases or [{"label": None}]
    points = list(itertools.product(*spec.sweep.values())) if spec.sweep else [()]
    for case in cases:
        for point in points:
            for seed in spec.seeds:
                factors = {"case": case["label"]} if spec.cases else {}
                factors |= {k: _as_override_value(v) for k, v in zip(spec.sweep, point, strict=True)}
                overrides = [f"{k}={_as_override_value(v)}" for k, v in spec.base.items()]
                overrides += [f"{k}={_as_override_value(v)}" for k, v in case.items() if k != "label"]
                overrides += [f"{k}={_as_override_value(v)}" for k, v in zip(spec.sweep, point, strict=True)]
                overrides += [f"study={spec.study}", f"seed={seed}"]
                jobs.append(Job(factors, seed, overrides))
    return jobs


def check_metric_is_recorded(spec: FigureSpec, jobs: list[Job]) -> None:
    """A metric that the jobs' mode does not record is an error before anything runs."""
    metric, kind = spec.plot["metric"], spec.plot["kind"]
    modes = {job.config.mode for job in jobs}
    for only, mode in (((*TRAIN_ONLY, "heatmap"), "train"), ((*INIT_ONLY, "spectrum", "map"), "init")):
        if (metric in only or kind in only) and modes != {mode}:
            raise ConfigError(
                f"plot.metric: no run of this figure records {metric!r} for kind={kind}: it needs "
                f"mode={mode} in every job (base: mode: {mode}), got mode {', '.join(sorted(modes))}"
            )
    x_as = spec.plot.get("x_as")
    for job in jobs if x_as else []:
        if not math.isfinite(ft.derived(job.config, x_as)):
            raise ConfigError(
                f"plot.x_as: {x_as} is not finite for the job {' '.join(job.overrides)} (q* grows "
                "without bound there); allowed: sigma_w2, or leave it out"
            )
    theory = metric.startswith("theory_") or metric == "rate_diff" or spec.plot.get("theory")
    if theory and kind == "spectrum":
        _check_spectrum_theory(jobs)
        theory = False
    for job in jobs:
        m = job.config.model
        if theory and metric in PHASE_THEORY and (m.norm != "none" or m.skip):
            raise ConfigError(
                f"plot.metric: {metric!r} has no theory for model.norm={m.norm}, model.skip={m.skip}; "
                "allowed: model.norm none and model.skip false"
            )
        if theory and metric not in PHASE_THEORY and job.config.data.name != "gaussian":
            raise ConfigError(f"plot.metric: the prediction for {metric!r} is made for data=gaussian; got "
                              f"data={job.config.data.name}")  # fmt: skip
        if theory and metric not in PHASE_THEORY and ft.prediction(job.config) is None:
            raise ConfigError(
                f"plot.metric: {metric!r} has no theory for model.norm={m.norm} with "
                f"model.activation={m.activation}, model.skip={m.skip}; modelled: model.norm none, "
                "or batch with relu and no skip"
            )
        widest = max(*job.config.hidden_widths, job.config.data.input_dim)
        too_wide = widest > job.config.init.jacobian_max_width
        if metric.startswith(("jacobian_", "theory_jacobian_")) and too_wide:
            raise ConfigError(f"plot.metric: {metric!r} needs init.jacobian_max_width >= "
                              f"{widest} (model.width or widths, data.input_dim); got "
                              f"{job.config.init.jacobian_max_width}")  # fmt: skip


def _check_spectrum_theory(jobs: list[Job]) -> None:
    """Free probability's density holds for plain networks with every layer at q*: inputs scaled there."""
    for job in jobs:
        m, scale = job.config.model, job.config.data.input_scale
        if m.norm != "none" or m.skip or scale != "q_star":
            raise ConfigError(
                "plot.theory: the free-probability density is drawn for plain networks whose layers all "
                f"sit at q*: model.norm none, model.skip false, data.input_scale q_star; got "
                f"model.norm={m.norm}, model.skip={m.skip}, data.input_scale={scale}"
            )


def attach_hashes(jobs: list[Job]) -> None:
    for job in jobs:
        job.config_hash = config_hash(job.config)


def nice(value: str) -> float | str:
    """A factor value as a number where it is one (for numeric axes)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if math.isfinite(number) else value

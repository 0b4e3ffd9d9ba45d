"""Figures that rebuild from their config: ``conf/figure/<name>.yaml`` names the study (base overrides,
cases, a sweep, seeds), the plot and its style.

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
from pathlib import Path
from typing import Any

import numpy as np

from harness import figure_theory as ft
from harness.config import ConfigError, StudyConfig, config_hash
from harness.stats import STATS

KINDS = ("profile", "phase", "lines", "heatmap")
TRAIN_ONLY = ("final_loss", "final_accuracy", "final_train_accuracy")
INIT_ONLY = ("grad_h_logvar", "jacobian_sv2_mean", "jacobian_sv2_rel_var", "jacobian_sv2_underflow",
             "theory_rate", "theory_log_chi1", "rate_diff", "theory_jacobian_sv2_mean",
             "theory_jacobian_sv2_rel_var", "theory_grad_h_logvar")  # fmt: skip
PHASE_THEORY = ("theory_q_star", "theory_chi1", "theory_c_star", "theory_chi_c", "theory_xi_q", "theory_xi_c")
# every summary a run logs (harness.study), so every one can be a sweep figure's metric
SUMMARY_METRICS = ("grad_ratio_log10", "grad_h_ratio_log10", "grad_h_slope", "grad_norm_min", "grad_norm_max",
                   "gradcheck_max_rel_error", "gradcheck_unresolved", "gradcheck_passed", "diverged",
                   "diverged_step", "diverged_layer") + TRAIN_ONLY + INIT_ONLY + PHASE_THEORY  # fmt: skip
NORMS = ("grad_W", "grad_b", "grad_h")
TOP_KEYS = ("title", "study", "base", "cases", "sweep", "seeds", "plot", "style")
PLOT_KEYS = ("kind", "metric", "x", "y", "hue", "col", "theory", "x_as", "overlay", "trainable")
STYLE_KEYS = ("width", "height", "logy", "logx", "title", "palette", "dpi")


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
    text = str(value)
    if re.fullmatch(r"[\w.+\-/:]*", text):
        return text
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"  # Hydra's quoted string


def parse_figure(name: str, values: Any) -> FigureSpec:
    """Check a figure config's own shape (keys, kinds, metrics, factors): ConfigError, one line."""
    if not isinstance(values, dict):
        raise ConfigError(f"figure {name}: expected a mapping of {', '.join(TOP_KEYS)}")
    for key in values:
        if key not in TOP_KEYS:
            raise ConfigError(f"{key}: unknown key in figure {name}; allowed keys: {', '.join(TOP_KEYS)}")
    plot, style = dict(values.get("plot") or {}), dict(values.get("style") or {})
    for key in plot:
        if key not in PLOT_KEYS:
            raise ConfigError(
                f"plot.{key}: unknown key; allowed keys: {', '.join('plot.' + k for k in PLOT_KEYS)}"
            )
    for key in style:
        if key not in STYLE_KEYS:
            raise ConfigError(
                f"style.{key}: unknown key; allowed: {', '.join('style.' + k for k in STYLE_KEYS)}"
            )
    kind = plot.get("kind")
    if kind not in KINDS:
        raise ConfigError(f"plot.kind: got {kind!r}; allowed: {', '.join(KINDS)}")
    metric = plot.get("metric")
    allowed = STATS if kind in ("profile", "heatmap") else SUMMARY_METRICS
    if metric not in allowed:
        raise ConfigError(
            f"plot.metric: {metric!r} is not a metric runs record for kind={kind}; "
            f"allowed: {', '.join(allowed)}"
        )
    sweep = values.get("sweep") or {}
    if not isinstance(sweep, dict):
        raise ConfigError("sweep: expected a mapping of factor -> list of values")
    for key, vals in sweep.items():
        if not isinstance(vals, list) or not vals:
            raise ConfigError(f"sweep.{key}: empty sweep; give a list of at least one value")
    cases = values.get("cases")
    if cases is not None and (not isinstance(cases, list) or not cases):
        raise ConfigError("cases: empty; give a list of at least one case (a mapping of overrides)")
    cases = [dict(c) for c in cases or []]
    for i, case in enumerate(cases):
        case.setdefault("label", " ".join(f"{k.split('.')[-1]}={v}" for k, v in case.items()))
        if not isinstance(case["label"], str):
            raise ConfigError(f"cases[{i}].label: expected a string")
    seeds = values.get("seeds", [0])
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds: got {seeds!r}; allowed: a non-empty list of integers >= 0")
    spec = FigureSpec(
        name=name, study=str(values.get("study") or f"figure_{name}"), base=dict(values.get("base") or {}),
        cases=cases, sweep={k: list(v) for k, v in sweep.items()}, seeds=list(seeds), plot=plot,
        style=style, title=str(values.get("title") or name),
    )  # fmt: skip
    needed = {"profile": ["hue", "col"], "heatmap": ["col"], "phase": ["x", "y", "col"],
              "lines": ["x", "hue", "col"]}[kind]  # fmt: skip
    _check_theory_options(plot, kind, metric)
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
    return spec


def _check_theory_options(plot: dict, kind: str, metric: str) -> None:
    """plot.x_as, plot.theory, plot.overlay and plot.trainable: each where its kind can draw it."""
    if plot.get("x_as") is not None:
        if plot["x_as"] not in ft.DERIVED_AXES:
            raise ConfigError(
                f"plot.x_as: got {plot['x_as']!r}; allowed: {', '.join(ft.DERIVED_AXES)} (or leave it out)"
            )
        if kind not in ("lines", "phase"):
            raise ConfigError(f"plot.x_as: kind={kind} has no factor on x; allowed for kind=lines or phase")
    if plot.get("theory") and (kind != "lines" or metric not in ft.THEORY_OF):
        raise ConfigError(
            f"plot.theory: a theory curve is drawn for kind=lines with metric {', '.join(ft.THEORY_OF)}; "
            "profiles (metric grad_h) and phase diagrams (x model.init_scale) get theory automatically"
        )
    for key in ("overlay", "trainable"):
        if plot.get(key) is not None and (kind != "phase" or plot.get("y") != "model.depth"):
            raise ConfigError(f"plot.{key}: drawn on a phase diagram with y model.depth (kind=phase)")
    if plot.get("overlay") is not None:
        ft.parse_overlay(plot["overlay"])
    trainable = plot.get("trainable")
    if trainable is not None and (isinstance(trainable, bool) or not isinstance(trainable, int | float)):
        raise ConfigError(
            f"plot.trainable: got {plot['trainable']!r}; allowed: a number (the metric's threshold)"
        )


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
    for only, mode in (((*TRAIN_ONLY, "heatmap"), "train"), (INIT_ONLY, "init")):
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
    for job in jobs:
        m = job.config.model
        if theory and (m.norm != "none" or (m.skip and metric in PHASE_THEORY)):
            raise ConfigError(f"plot.metric: {metric!r} has no theory for model.norm={m.norm}, "
                              f"model.skip={m.skip}; allowed: model.norm none (and model.skip false for "
                              f"{', '.join(PHASE_THEORY)})")  # fmt: skip
        if theory and metric not in PHASE_THEORY and job.config.data.name != "gaussian":
            raise ConfigError(f"plot.metric: the prediction for {metric!r} is made for data=gaussian; got "
                              f"data={job.config.data.name}")  # fmt: skip
        too_wide = max(m.width, job.config.data.input_dim) > job.config.init.jacobian_max_width
        if metric.startswith(("jacobian_", "theory_jacobian_")) and too_wide:
            raise ConfigError(f"plot.metric: {metric!r} needs init.jacobian_max_width >= "
                              f"{max(m.width, job.config.data.input_dim)} (model.width, data.input_dim); got "
                              f"{job.config.init.jacobian_max_width}")  # fmt: skip


def attach_hashes(jobs: list[Job]) -> None:
    for job in jobs:
        job.config_hash = config_hash(job.config)


def _log_stats(values: np.ndarray, log: bool) -> tuple[float, float, int]:
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values) & (values > 0 if log else True)
    if not ok.any():
        return float("nan"), float("nan"), 0
    v = np.log10(values[ok]) if log else values[ok]
    return float(v.mean()), float(v.std()), int(ok.sum())


def table(spec: FigureSpec, jobs: list[Job], data: dict[str, dict]) -> Any:
    """The tidy table of exactly what is plotted: one row per plotted point, seeds aggregated.

    ``data[run_id]`` holds the run's ``arrays`` (npz) and ``metrics``."""
    import pandas as pd

    kind, metric = spec.plot["kind"], spec.plot["metric"]
    log = metric in NORMS or kind == "heatmap"
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.factors.values()), []).append(job)
    rows = []
    for key, members in groups.items():
        factors = dict(zip(spec.factors, key, strict=True))
        if kind == "profile":
            stack = np.stack([data[j.run_id]["arrays"][f"profile_{metric}"] for j in members])
            pred = ft.prediction(members[0].config) if metric == "grad_h" else None
            for layer in range(stack.shape[1]):
                mean, std, n = _log_stats(stack[:, layer], log)
                row = factors | {"layer": layer + 1, "mean": mean, "std": std, "n_seeds": n}
                if metric == "grad_h":  # log10 sqrt(E||dL/dh_l||^2), the mean-field prediction
                    row["theory"] = 0.5 * math.log10(pred.grad_h2[layer]) if pred is not None else math.nan
                rows.append(row)
        elif kind == "heatmap":
            arrays = [data[j.run_id]["arrays"] for j in members]
            steps = arrays[0]["steps"]
            stack = np.stack([a[metric][: len(steps)] for a in arrays])
            for s, step in enumerate(steps):
                for layer in range(stack.shape[2]):
                    mean, std, n = _log_stats(stack[:, s, layer], log)
                    rows.append(factors | {"step": int(step), "layer": layer + 1, "mean": mean, "n_seeds": n})
        else:
            values = np.array([data[j.run_id]["metrics"].get(metric, np.nan) for j in members])
            diverged = max(data[j.run_id]["metrics"].get("diverged", 0.0) for j in members)
            mean, std, n = _log_stats(values, False)
            row = factors | {"source": "measured", "mean": mean, "std": std, "n_seeds": n}
            row["diverged"] = int(diverged)
            config, x_as = members[0].config, spec.plot.get("x_as")
            if kind == "lines":
                row["sigma_w2"] = ft.sigma_w2_of(config)
            if x_as and x_as not in row:
                row[x_as] = ft.derived(config, x_as)
            if kind == "phase":
                row["critical_x"] = ft.critical_x(config, spec.plot["x"], x_as)
            rows.append(row)
    if kind == "lines" and spec.plot.get("theory"):
        rows += ft.theory_rows(spec, jobs)
    if kind == "phase" and spec.plot.get("overlay"):
        rows += ft.overlay_rows(spec, jobs)
    if kind == "phase" and spec.plot.get("trainable") is not None:
        rows += ft.trainable_rows(pd.DataFrame(rows), spec.plot, spec.factors)
    frame = pd.DataFrame(rows)
    if frame["n_seeds"].sum() == 0:
        raise ConfigError(f"plot.metric: no run of figure {spec.name} has a finite value of {metric!r}")
    return frame


def write_csv(frame: Any, path: Path) -> None:
    """Full precision, fixed order and line endings: the same numbers give the same bytes."""
    frame.to_csv(path, index=False, float_format="%.17g", lineterminator="\n")


def nice(value: str) -> float | str:
    """A factor value as a number where it is one (for numeric axes)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return value
    return number if math.isfinite(number) else value

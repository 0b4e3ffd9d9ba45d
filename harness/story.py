"""What a run and a sweep say, in words a person reads in the MLflow table: run names, one-line
verdicts, the params that apply to a run's mode, and the order in which summaries are logged (MLflow's
compare views default to the first keys logged). Plain objects in, strings and dicts out.

The verdict's ``slope`` is ``grad_h_slope``: the least-squares slope of ln ||dL/dh_l||^2 per layer l.
Positive: the gradient grows towards the output, so it vanishes towards the input.
"""

from __future__ import annotations

import math
from typing import Any

from harness.config import StudyConfig, flatten, to_dict
from harness.nn.init import canonical_init

# logged first, in this order: the compare page's default metric and the scatter's axes
KEY_METRICS = ("grad_h_ratio_log10", "grad_h_slope", "theory_rate", "diverged")
STABLE_DECADES = 1.0  # |log10 ||dL/dh_1|| / ||dL/dh_D||| up to this: "stable"
SHORT_INIT = {"he_normal": "he", "xavier_normal": "xavier", "lecun_normal": "lecun",
              "he_uniform": "he_unif", "xavier_uniform": "xavier_unif", "orthogonal": "orth"}  # fmt: skip
NORMS = {"layer": "LN", "batch": "BN"}
IN_NAME = ("model.activation", "model.init", "model.init_scale", "model.depth", "model.skip", "model.norm")
FIRST_PARAMS = (
    "model.depth", "model.activation", "model.init", "model.init_scale", "model.skip", "model.norm",
    "model.width", "mode", "seed",
)  # fmt: skip
DATA_KEYS = {  # the data.* keys each dataset reads (harness.data.load_data)
    "gaussian": ("input_dim", "output_dim", "n_train", "n_test"),
    "teacher_student": ("input_dim", "output_dim", "n_train", "n_test", "noise", "teacher_width"),
    "spirals": ("n_train", "n_test", "noise"),
    "blobs": ("input_dim", "n_train", "n_test", "noise", "classes"),
    "digits": ("test_fraction",),
    "file": ("path", "test_fraction"),
}
GROUP_KEYS = {"data": "data.name", "loss": "loss.name", "optim": "optim.name", "gradcheck": "gradcheck.mode"}
NOT_PARAMS = ("study", "resume", "tracking.")  # where a run is recorded, not what it computes


def run_name(config: StudyConfig, swept: list[str] | None = None) -> str:
    """``tanh xavier D=20 plain``: activation, init (``he*2``: times its scale unless 1), depth,
    plain/skip, norm, and ``key=value`` for every other swept key (config keys: ``model.width``)."""
    m = config.model
    init = SHORT_INIT.get(canonical_init(m.init), m.init)
    scale = "" if m.init_scale == 1 else f"*{m.init_scale:g}"
    parts = [m.activation, f"{init}{scale}", f"D={m.depth}", "skip" if m.skip else "plain"]
    if m.norm != "none":
        parts.append(NORMS[m.norm])
    values = flatten(to_dict(config))
    for key in map(param_key, swept or []):
        if key in IN_NAME or key.startswith(NOT_PARAMS) or key not in values:
            continue
        short = key.split(".")[0] if key in GROUP_KEYS.values() else key.split(".")[-1]
        parts.append(f"{short}={_fmt(values[key])}")
    return " ".join(parts)


def param_key(key: str) -> str:
    """The param a swept key sets: ``model.depth`` itself, a config group its choice (``optim.name``)."""
    key = key.lstrip("+~")
    return GROUP_KEYS.get(key, key)


def _fmt(value: Any) -> str:
    return f"{value:g}" if isinstance(value, float) else str(value)


def run_params(config: StudyConfig, swept: list[str] | None = None) -> dict[str, Any]:
    """The params that apply to the run's mode, the model's first: no ``train.*``/``optim.*`` in init
    mode, no ``init.*`` in train mode, only ``gradcheck.mode`` when the check is off, only the
    ``data.*`` keys the dataset reads, no ``tracking.*`` (the full config is the run's ``config.yaml``);
    but every key in ``swept`` (what the sweep varies is a column of its table)."""
    values = flatten(to_dict(config))
    drop = ("init.",) if config.mode == "train" else ("train.", "optim.")
    if config.gradcheck.mode == "off":
        drop += tuple(f"gradcheck.{k}" for k in ("directions", "entries", "batch_size", "threshold"))
    used = {f"data.{k}" for k in ("name", "input_scale", *DATA_KEYS.get(config.data.name, ()))}
    kept = {k: v for k, v in values.items() if not k.startswith(NOT_PARAMS + drop)}
    kept = {k: v for k, v in kept.items() if not k.startswith("data.") or k in used}
    swept_params = [k for k in map(param_key, swept or []) if k in values and k not in ("study", "resume")]
    kept |= {k: values[k] for k in swept_params}  # what the sweep varies is always a column
    return {k: kept[k] for k in FIRST_PARAMS if k in kept} | kept


def summary_order(summary: dict[str, float]) -> list[str]:
    """The summary keys with ``KEY_METRICS`` first."""
    return [k for k in KEY_METRICS if k in summary] + [k for k in summary if k not in KEY_METRICS]


def _finite(value: float | None) -> bool:
    return value is not None and math.isfinite(value)


def verdict(summary: dict[str, float], mode: str = "init") -> str:
    """One line whose first 47 characters (what the runs table shows of a description) say it all:
    ``vanishing 10^-2.9, slope +0.70 (theory +0.69)``, then a failed gradient check, the final loss
    and accuracy (train mode) and what the numbers are."""
    ratio, slope = summary.get("grad_h_ratio_log10"), summary.get("grad_h_slope")
    explain = ""
    if summary.get("diverged"):
        step, layer = summary.get("diverged_step"), summary.get("diverged_layer")
        where = f" at step {step:.0f}" if _finite(step) and mode == "train" else ""
        where += f", layer {layer:.0f}" if _finite(layer) else ""
        text = f"diverged: NaN/Inf{where}"
    elif not _finite(ratio):
        text = "no finite gradient ratio (zero or non-finite gradients)"
    else:
        kind = "stable" if abs(ratio) <= STABLE_DECADES else "vanishing" if ratio < 0 else "exploding"
        text = f"{kind} 10^{ratio:+.1f}"
        explain = " | ||dL/dh_1||/||dL/dh_D||"
        if _finite(slope):
            text += f", slope {slope:+.2f}"
            theory = summary.get("theory_rate")
            if _finite(theory):
                text += f" (theory {theory:+.2f})"
            elif mode == "init":
                text += " (no theory)"
            explain += "; slope of ln ||dL/dh_l||^2 per layer"
    power = summary.get("theory_c_power")
    if power == 0:
        text += "; correlations freeze (q* = 0: no c*, xi_c = inf)"
    elif power == 2:
        text += "; 1 - c_l ~ l^-2 (no q* > 0: xi_c = inf)"
    if summary.get("gradcheck_passed") == 0:
        worst = summary.get("gradcheck_max_rel_error", math.nan)
        text += f"; gradient check FAILED (max rel. error {worst:.1e})"
    if mode == "train" and _finite(summary.get("final_loss")):
        text += f"; final loss {summary['final_loss']:.3g}"
        if _finite(summary.get("final_accuracy")):
            text += f", accuracy {summary['final_accuracy']:.3f}"
    return text + explain


def extremes(rows: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Among the finished rows with a finite ratio: ``min`` and ``max`` of ``grad_h_ratio_log10``, and
    ``vanishing`` / ``exploding``, the same rows when their own verdict says so (beyond a decade)."""
    finished = [r for r in rows if r.get("status") == "FINISHED" and _finite(r.get("grad_h_ratio_log10"))]
    if not finished:
        return {}
    low = min(finished, key=lambda r: r["grad_h_ratio_log10"])
    high = max(finished, key=lambda r: r["grad_h_ratio_log10"])
    out = {"min": low, "max": high}
    if low["grad_h_ratio_log10"] < -STABLE_DECADES:
        out["vanishing"] = low
    if high["grad_h_ratio_log10"] > STABLE_DECADES:
        out["exploding"] = high
    return out


def diverged_count(rows: list[dict[str, Any]]) -> int:
    return sum(r.get("status") == "FINISHED" and r.get("diverged") == 1 for r in rows)


def sweep_findings(rows: list[dict[str, Any]]) -> list[str]:
    """From the children's rows (``name``, ``status`` and summaries): the most vanishing and the most
    exploding finished child (where their verdicts say so), and how many diverged."""
    parts = []
    for kind, row in extremes(rows).items():
        if kind in ("vanishing", "exploding"):
            parts.append(f"most {kind} {row['name']} (10^{row['grad_h_ratio_log10']:+.1f})")
    if diverged_count(rows):
        parts.append(f"{diverged_count(rows)} diverged")
    return parts


def sweep_verdict(rows: list[dict[str, Any]], jobs: int = 0) -> str:
    """The parent's description: how many of the ``jobs`` (at least the rows) finished, then
    ``sweep_findings``."""
    finished = sum(r.get("status") == "FINISHED" for r in rows)
    return "; ".join([f"{finished} of {max(jobs, len(rows))} jobs FINISHED", *sweep_findings(rows)])

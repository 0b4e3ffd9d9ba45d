"""A figure's tidy table: one row per plotted point, seeds aggregated, and its CSV (the figure's data).

Measured rows come from the runs' stored arrays and metrics; theory rows (curves, overlays, the
trainable depth) from ``harness.figure_theory``. The CSV is written at full precision in a fixed order,
so the same runs give the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from harness import figure_theory as ft
from harness.config import ConfigError
from harness.figures import FigureSpec, Job
from harness.metrics import is_norm


def _log_stats(values: np.ndarray, log: bool) -> tuple[float, float, int]:
    values = np.asarray(values, dtype=float)
    ok = np.isfinite(values) & (values > 0 if log else True)
    if not ok.any():
        return float("nan"), float("nan"), 0
    v = np.log10(values[ok]) if log else values[ok]
    return float(v.mean()), float(v.std()), int(ok.sum())


def _profile_rows(factors: dict, members: list[Job], data: dict, metric: str) -> list[dict]:
    """Per layer: mean and std over seeds (of log10 for norms), and the theory where there is one
    (``figure_theory.profile_theory``)."""
    stack = np.stack([data[j.run_id]["arrays"][f"profile_{metric}"] for j in members])
    theory = ft.profile_theory(members[0].config, metric)
    rows = []
    for layer in range(stack.shape[1]):
        mean, std, n = _log_stats(stack[:, layer], is_norm(metric))
        row = factors | {"layer": layer + 1, "mean": mean, "std": std, "n_seeds": n}
        if theory is not None:  # in the mean's units: log10 for norms
            row["theory"] = float(theory[layer])
        rows.append(row)
    return rows


def _heatmap_rows(factors: dict, members: list[Job], data: dict, metric: str) -> list[dict]:
    """Per logged step and layer: the mean over seeds of log10 of the statistic."""
    arrays = [data[j.run_id]["arrays"] for j in members]
    steps = arrays[0]["steps"]
    stack = np.stack([a[metric][: len(steps)] for a in arrays])
    rows = []
    for s, step in enumerate(steps):
        for layer in range(stack.shape[2]):
            mean, _, n = _log_stats(stack[:, s, layer], True)
            rows.append(factors | {"step": int(step), "layer": layer + 1, "mean": mean, "n_seeds": n})
    return rows


def _spectrum_rows(factors: dict, members: list[Job], data: dict) -> list[dict]:
    """The density of log10 lambda, lambda the squared singular values of dh_D/dx, pooled over seeds,
    in bins of 2 IQR / N^(1/3) (Freedman-Diaconis).

    Normalised by every eigenvalue (zeros where input_dim < width, and those below rounding, which an
    SVD resolves only to ~n eps sigma_max), so the bars' area is the resolved fraction and the theory's
    is 1; ``n_below_rounding`` counts what is left out."""
    resolved, total, below = [], 0, 0
    for job in members:
        arrays = data[job.run_id]["arrays"]
        sv = np.asarray(arrays["jacobian_sv"], dtype=float)
        width = int(arrays["jacobian_width"])
        floor = (max(width, sv.size) * np.finfo(float).eps * sv.max()) ** 2
        eig = sv**2
        resolved.append(eig[eig >= floor])
        total, below = total + width, below + int(np.count_nonzero(eig < floor)) + width - sv.size
    logs = np.log10(np.concatenate(resolved))
    counts, edges = np.histogram(logs, bins="fd")  # Freedman-Diaconis: the bin from the quartiles
    density = counts / (total * np.diff(edges))
    base = factors | {"source": "measured", "n_seeds": len(members), "n_below_rounding": below}
    return [base | {"log10_sv2": float(0.5 * (a + b)), "lo": float(a), "hi": float(b), "density": float(d)}
            for a, b, d in zip(edges[:-1], edges[1:], density, strict=True)]  # fmt: skip


def _map_rows(factors: dict, members: list[Job], data: dict, metric: str) -> list[dict]:
    """Layer by layer, the mean over seeds of the statistic at layer l (x) and at l + 1 (y): the
    iterated map's points."""
    stack = np.stack([data[j.run_id]["arrays"][f"profile_{metric}"] for j in members])
    with np.errstate(all="ignore"):
        mean = np.nanmean(stack, axis=0)
    return [factors | {"source": "measured", "layer": i + 1, "x": float(mean[i]), "y": float(mean[i + 1]),
                       "n_seeds": len(members)} for i in range(len(mean) - 1)]  # fmt: skip


def _summary_row(factors: dict, members: list[Job], data: dict, spec: FigureSpec) -> dict:
    """A summary metric's mean and std over seeds, whether any seed diverged, and the derived x."""
    kind, metric = spec.plot["kind"], spec.plot["metric"]
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
    if spec.plot.get("y_as"):
        row["sigma_b2"] = config.model.bias_std**2
    return row


def _per_seed(spec: FigureSpec, jobs: list[Job], data: dict) -> Any:
    """One row per job: its factors, seed and metric (the trainable depth's spread over seeds)."""
    import pandas as pd

    metric = spec.plot["metric"]
    return pd.DataFrame(
        [
            job.factors | {"seed": job.seed, "mean": data[job.run_id]["metrics"].get(metric, np.nan)}
            for job in jobs
        ]
    )


def table(spec: FigureSpec, jobs: list[Job], data: dict[str, dict]) -> Any:
    """The tidy table of exactly what is plotted: one row per plotted point, seeds aggregated.

    ``data[run_id]`` holds the run's ``arrays`` (npz) and ``metrics``."""
    import pandas as pd

    kind, metric = spec.plot["kind"], spec.plot["metric"]
    groups: dict[tuple, list[Job]] = {}
    for job in jobs:
        groups.setdefault(tuple(job.factors.values()), []).append(job)
    rows = []
    for key, members in groups.items():
        factors = dict(zip(spec.factors, key, strict=True))
        if kind == "profile":
            rows += _profile_rows(factors, members, data, metric)
        elif kind == "heatmap":
            rows += _heatmap_rows(factors, members, data, metric)
        elif kind == "spectrum":
            rows += _spectrum_rows(factors, members, data)
        elif kind == "map":
            rows += _map_rows(factors, members, data, metric)
        else:
            rows.append(_summary_row(factors, members, data, spec))
    if kind == "lines" and spec.plot.get("theory"):
        rows += ft.theory_rows(spec, jobs)
    if kind == "map":
        rows += ft.map_rows(spec, jobs, rows)
    if kind == "spectrum" and spec.plot.get("theory"):
        rows += ft.spectrum_rows(jobs, rows)
    if kind == "phase" and spec.plot["y"] == "model.bias_std":
        rows += ft.critical_rows(spec, jobs)
    if kind == "phase" and spec.plot.get("overlay"):
        rows += ft.overlay_rows(spec, jobs)
    if kind == "phase" and spec.plot.get("trainable") is not None:
        rows += ft.trainable_rows(pd.DataFrame(rows), spec.plot, spec.factors, _per_seed(spec, jobs, data))
    frame = pd.DataFrame(rows)
    if frame["n_seeds"].sum() == 0:
        raise ConfigError(f"plot.metric: no run of figure {spec.name} has a finite value of {metric!r}")
    return frame


def write_csv(frame: Any, path: Path) -> None:
    """Full precision, fixed order and line endings: the same numbers give the same bytes."""
    frame.to_csv(path, index=False, float_format="%.17g", lineterminator="\n")

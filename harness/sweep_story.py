"""The sweep's story, written into its parent run when the sweep ends (also after a resume, a crash or
a signal), from each job's latest child run:

- ``sweep/summary.csv``: one tidy row per job: run id, name, status, job number, the swept values and
  every summary metric;
- ``sweep/profiles.png``: every child's ||dL/dh_l|| against the layer (log y, theory dashed; at most
  ``MAX_PROFILES`` children), and ``sweep/rate_by_factor.png``: the rate ``grad_h_slope`` and its theory
  against each swept factor (both left out after a signal: the time goes to recording);
- metrics ``jobs``, ``jobs_finished``, ``jobs_diverged``, ``grad_h_ratio_log10_min`` (the most vanishing
  child) and ``grad_h_ratio_log10_max`` (the most exploding); tags ``harness.most_vanishing`` and
  ``harness.most_exploding`` (their run ids) and the description (``mlflow.note.content``).
"""

from __future__ import annotations

import csv
import io
import math
from typing import Any

import numpy as np

from harness import tracking
from harness.story import KEY_METRICS, diverged_count, extremes, param_key, sweep_findings, sweep_verdict
from harness.tracking import NOTE

MAX_PROFILES = 48  # lines in the overlay beyond which it stops being readable


def rows_of(runs: list, swept: list[str]) -> list[dict[str, Any]]:
    """One row per child run (MLflow ``Run`` entities), in job order: identity, swept values, summaries."""
    rows = []
    for r in runs:
        row: dict[str, Any] = {"run_id": r.info.run_id, "name": r.info.run_name, "status": r.info.status,
                               "job": r.data.tags.get("harness.job_num", "")}  # fmt: skip
        row |= {k: r.data.params.get(param_key(k), "") for k in swept}
        summaries = {k: v for k, v in tracking.metrics_of(r).items() if "/" not in k}
        row |= {k: summaries[k] for k in KEY_METRICS if k in summaries}
        row |= dict(sorted(summaries.items()))
        rows.append(row)
    return sorted(rows, key=lambda row: int(row["job"]) if str(row["job"]).isdigit() else 1 << 30)


def csv_text(rows: list[dict[str, Any]]) -> str:
    """The rows as CSV, every key a column (blank where a row lacks it)."""
    columns = list(dict.fromkeys(k for row in rows for k in row))
    out = io.StringIO()
    writer = csv.DictWriter(out, columns, restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    return out.getvalue()


def _metric(row: dict[str, Any], key: str) -> float:
    value = row.get(key)
    return float(value) if isinstance(value, float | int) else math.nan


def metrics_and_tags(
    rows: list[dict[str, Any]], jobs: int = 0
) -> tuple[list[tuple[str, float, int]], dict[str, str]]:
    """The parent's metrics and tags from the rows (``jobs``: the sweep's, also those without a run)."""
    finished = [r for r in rows if r["status"] == "FINISHED"]
    metrics = [("jobs", max(jobs, len(rows)), 0), ("jobs_finished", len(finished), 0),
               ("jobs_diverged", diverged_count(rows), 0)]  # fmt: skip
    tags = {NOTE: sweep_verdict(rows, jobs)}
    found = extremes(rows)
    if found:
        metrics += [("grad_h_ratio_log10_min", found["min"]["grad_h_ratio_log10"], 0),
                    ("grad_h_ratio_log10_max", found["max"]["grad_h_ratio_log10"], 0)]  # fmt: skip
    tags |= {f"harness.most_{k}": found[k]["run_id"] for k in ("vanishing", "exploding") if k in found}
    return metrics, tags


def _figures(parent: tracking.Run, rows: list[dict[str, Any]], swept: list[str]) -> None:
    from harness import plots

    finished = [r for r in rows if r["status"] == "FINISHED"]
    shown = finished[:MAX_PROFILES]
    if shown:
        profiles = [tracking.metric_series(parent.uri, r["run_id"], "profile/log10_grad_h") for r in shown]
        theory = [
            tracking.metric_series(parent.uri, r["run_id"], "profile/log10_theory_grad_h") for r in shown
        ]
        more = len(finished) - len(shown)
        title = "||dL/dh_l|| per layer, every job"
        title += f" (the first {len(shown)}; {more} more in the CSV)" if more else ""
        fig = plots.sweep_profiles_figure([r["name"] for r in shown], profiles,
                                          [t if t.size else None for t in theory], title)  # fmt: skip
        parent.log_figure(fig, "sweep/profiles.png")
    if swept and rows:
        factors = {k: [str(r.get(k, "")) for r in rows] for k in swept}
        fig = plots.factor_figure(
            factors, np.array([_metric(r, "grad_h_slope") for r in rows]),
            np.array([_metric(r, "theory_rate") for r in rows]), "rate: slope of ln ||dL/dh_l||^2 per layer",
        )  # fmt: skip
        parent.log_figure(fig, "sweep/rate_by_factor.png")


def tell(parent: tracking.Run, runs: list, swept: list[str], jobs: int = 0, figures: bool = True) -> str:
    """Write the story of ``runs`` (the latest child of each job, of ``jobs``) into ``parent``; its
    findings."""
    rows = rows_of(runs, swept)
    metrics, tags = metrics_and_tags(rows, jobs)
    parent.log_metrics(metrics)
    parent.set_tags(tags)
    parent.log_text(csv_text(rows), "sweep/summary.csv")
    if figures:
        _figures(parent, rows, swept)
    parent.flush()
    return "; ".join(sweep_findings(rows))

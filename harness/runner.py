"""Run one study job and record it in MLflow: the glue between ``study`` (numbers), ``plots``
(figures) and ``tracking`` (MLflow). Plain objects in; no Hydra here."""

from __future__ import annotations

import contextlib
import subprocess
import sys
import time
import traceback
from dataclasses import dataclass, field
from importlib import metadata
from pathlib import Path

import numpy as np

from harness import tracking
from harness.config import StudyConfig, config_hash, flatten, to_dict
from harness.stats import STATS
from harness.study import StudyResult, progress_printer, run_study

PACKAGES = ("harness", "numpy", "mlflow", "hydra-core", "matplotlib")


@dataclass
class JobContext:
    uri: str
    experiment_id: str
    run_name: str
    parent_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # overrides, job number, sweep dir, ...
    output_dir: Path | None = None  # the job's Hydra output folder (its .hydra is logged)
    config_yaml: str = ""  # the resolved config, as logged


def git_commit(cwd: str | Path) -> str | None:
    try:
        out = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=cwd, capture_output=True, text=True, timeout=5, check=True
        )
        return out.stdout.strip() or None
    except (OSError, subprocess.SubprocessError):
        return None


def versions() -> dict[str, str]:
    found = {}
    for name in PACKAGES:
        with contextlib.suppress(metadata.PackageNotFoundError):
            found[name] = metadata.version(name)
    return found


def layer_picks(depth: int, cap: int) -> np.ndarray:
    """At most ``cap`` layers (1-based), evenly spread, always the first and the last."""
    if depth <= cap:
        return np.arange(1, depth + 1)
    return np.unique(np.round(np.linspace(1, depth, cap)).astype(int))


def metrics_of(result: StudyResult, max_layers: int) -> list[tuple[str, float, int]]:
    """Summaries (step 0), per-layer profiles and gradient-check errors (step = layer), and in train
    mode per-layer series over steps for at most ``max_layers`` layers, plus loss and accuracy."""
    out = [(k, v, 0) for k, v in result.summary.items()]
    for k in STATS:
        out += [(f"profile/{k}", v, l + 1) for l, v in enumerate(result.profile[k])]  # noqa: E741
        if result.mode == "init" and k.startswith("grad"):
            out += [(f"profile/{k}_log10_std", v, l + 1) for l, v in enumerate(result.spread[k])]  # noqa: E741
    if "theory_grad_h" in result.profile:
        out += [("profile/theory_grad_h", v, l + 1) for l, v in enumerate(result.profile["theory_grad_h"])]  # noqa: E741
    if result.gradcheck is not None:  # step = layer index: input 0, hidden 1..depth, readout depth + 1
        rows = result.gradcheck.layer_rows()
        readout = len(result.profile["grad_W"]) + 1
        for r in rows:
            step = 0 if r.layer == "input" else readout if r.layer == "readout" else int(r.layer[5:])
            out.append(("gradcheck/rel_error", r.rel_error, step))
    if result.mode == "train":
        steps = result.arrays["steps"]
        out += [("train/loss", v, s) for s, v in zip(steps, result.arrays["loss"], strict=True)]
        out += [("train/accuracy", v, s) for s, v in zip(steps, result.arrays["accuracy"], strict=True)]
        depth = result.arrays["grad_W"].shape[1]
        for layer in layer_picks(depth, max_layers):
            for k in STATS:
                series = result.arrays[k][:, layer - 1]
                if np.all(np.isnan(series)):
                    continue
                out += [(f"layer/{layer:03d}/{k}", v, s) for s, v in zip(steps, series, strict=True)]
    return out


def _log_figures(run: tracking.Run, result: StudyResult, name: str) -> None:
    from harness import plots  # matplotlib only when figures are wanted

    when = "at initialisation" if result.mode == "init" else f"after step {result.arrays['steps'][-1]}"
    theory_profile = result.profile.get("theory_grad_h") if result.mode == "init" else None
    fig = plots.gradient_flow_figure(result.profile, result.spread, f"{name} ({when})", theory_profile)
    run.log_figure(fig, "figures/gradient_flow.png")
    run.log_figure(plots.activation_figure(result.profile, result.spread, name), "figures/activations.png")
    a = result.arrays
    fig = plots.gradient_histogram_figure(
        a["hist_edges"], a["hist_hist"], a["hist_zero"], a["hist_nan"], a["hist_inf"], name
    )
    run.log_figure(fig, "figures/gradient_histograms.png")
    if "jacobian_sv" in a:
        fig = plots.jacobian_figure(
            a["jacobian_sv"], int(a["jacobian_width"]), result.summary.get("theory_jacobian_sv2_mean"), name
        )
        run.log_figure(fig, "figures/jacobian.png")
    if result.mode == "train" and len(result.arrays["steps"]) > 1:
        fig = plots.heatmap_figure(result.arrays["steps"], result.arrays["grad_W"], name)
        run.log_figure(fig, "figures/heatmap_grad_W.png")
    if result.gradcheck is not None:
        rows = result.gradcheck.layer_rows()
        fig = plots.gradcheck_figure(
            [r.layer for r in rows], np.array([r.rel_error for r in rows]), result.gradcheck.threshold,
            name, unresolved=np.array([r.noise for r in rows]),
        )  # fmt: skip
        run.log_figure(fig, "figures/gradcheck.png")


def execute(config: StudyConfig, ctx: JobContext, cwd: str | Path, raise_errors: bool) -> tracking.Run:
    """Create the run, run the study, log everything, end the run FINISHED (or FAILED and, when
    ``raise_errors``, re-raise)."""
    started = time.perf_counter()
    tags = dict(ctx.tags)
    tags |= {f"version.{k}": v for k, v in versions().items()}
    tags |= {"harness.config_hash": config_hash(config), "harness.seed": str(config.seed),
             "harness.mode": config.mode}  # fmt: skip
    commit = git_commit(cwd)
    if commit:
        tags["harness.git_commit"] = commit
    run = tracking.Run.start(ctx.uri, ctx.experiment_id, ctx.run_name, tags, ctx.parent_id)
    try:
        run.log_params(flatten(to_dict(config)))
        if ctx.config_yaml:
            run.log_text(ctx.config_yaml, "config.yaml")
        if ctx.output_dir is not None:
            run.log_dir(Path(ctx.output_dir) / ".hydra", "hydra")
        clock = time.perf_counter()
        result = run_study(config, progress_printer(ctx.run_name))
        study_s = time.perf_counter() - clock
        run.log_metrics(metrics_of(result, config.tracking.max_layers))
        run.log_arrays(
            result.arrays | {f"profile_{k}": v for k, v in result.profile.items()}, "arrays/stats.npz"
        )
        if result.gradcheck is not None:
            run.log_text(result.gradcheck.summary(), "gradcheck.txt")
        clock, figures_s = time.perf_counter(), 0.0
        if config.tracking.figures:
            _log_figures(run, result, ctx.run_name)
            figures_s = time.perf_counter() - clock
        total = time.perf_counter() - started
        tracking_s = total - study_s - figures_s
        run.log_metrics([("time/study_s", study_s, 0), ("time/figures_s", figures_s, 0),
                         ("time/tracking_s", tracking_s, 0), ("time/total_s", total, 0)])  # fmt: skip
    except BaseException as err:
        run.set_tags({"harness.error": f"{type(err).__name__}: {err}"[:5000]})
        run.end("FAILED" if not isinstance(err, KeyboardInterrupt) else "KILLED")
        if raise_errors or not isinstance(err, Exception):
            raise
        traceback.print_exc(file=sys.stderr)
        print(f"job {ctx.run_name!r} failed; recorded as FAILED in run {run.run_id}", file=sys.stderr)
        return run
    run.end("FINISHED")
    return run

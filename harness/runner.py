"""Run one study job and record it in MLflow: the glue between ``study`` (numbers), ``plots``
(figures) and ``tracking`` (MLflow). Plain objects in; no Hydra here."""

from __future__ import annotations

import os
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from harness import processes, tracking
from harness.config import StudyConfig, config_hash
from harness.metrics import STATS, is_norm
from harness.progress import JobLine
from harness.provenance import git_commit, versions
from harness.story import run_params, summary_order, verdict
from harness.study import StudyResult, run_study
from harness.tracking import NOTE

NOT_FOR_EVERY_ACTIVATION = ("act_saturated", "act_dead")  # NaN where the activation has no such thing


@dataclass
class JobContext:
    uri: str
    experiment_id: str
    run_name: str
    parent_id: str | None = None
    tags: dict[str, str] = field(default_factory=dict)  # overrides, job number, sweep dir, ...
    output_dir: Path | None = None  # the job's Hydra output folder (its .hydra is logged)
    config_yaml: str = ""  # the resolved config, as logged
    label: str = ""  # how the job's progress line starts (default: the run name)
    live: bool = True  # a live progress line (on a terminal); False in a launcher's worker
    swept: list[str] = field(default_factory=list)  # keys the command varies: always logged as params


def layer_picks(depth: int, cap: int) -> np.ndarray:
    """At most ``cap`` layers (1-based), evenly spread, always the first and the last."""
    if depth <= cap:
        return np.arange(1, depth + 1)
    return np.unique(np.round(np.linspace(1, depth, cap)).astype(int))


def log10_profile(values: np.ndarray) -> np.ndarray:
    """log10 of a per-layer norm profile, NaN where a norm is 0 or not finite."""
    values = np.asarray(values, dtype=float)
    with np.errstate(all="ignore"):
        return np.where(np.isfinite(values) & (values > 0), np.log10(values), np.nan)


def metrics_of(
    result: StudyResult, max_layers: int, series: bool = True, profile_layers: int | None = None
) -> list[tuple[str, float, int]]:
    """Summaries (step 0, ``story.KEY_METRICS`` first), per-layer profiles with their log10 for norms
    (step = layer) and gradient-check errors for at most ``profile_layers`` layers (evenly spread; all
    when None), and in train mode (``series``) per-layer series over steps for at most ``max_layers``
    layers, plus loss and accuracy (which ``execute`` streams as they are measured instead)."""
    out = [(k, result.summary[k], 0) for k in summary_order(result.summary)]
    depth = len(result.profile["grad_W"])
    kept = layer_picks(depth, profile_layers or depth) - 1  # 0-based indices of the profiled layers
    profiles = [(k, result.profile[k]) for k in STATS]
    for extra in ("theory_grad_h", "grad_h_logvar", "theory_grad_h_logvar"):
        if extra in result.profile:
            profiles.append((extra, result.profile[extra]))
    for k, values in profiles:
        out += _layer_rows(f"profile/{k}", values, kept)
        if is_norm(k):
            out += _layer_rows(f"profile/log10_{k}", log10_profile(values), kept)
        if result.mode == "init" and k in result.spread and is_norm(k):
            out += _layer_rows(f"profile/{k}_log10_std", result.spread[k], kept)
    if result.gradcheck is not None:  # step = layer index: input 0, hidden 1..depth, readout depth + 1
        rows = result.gradcheck.layer_rows()
        steps = {0, depth + 1, *(kept + 1)}
        for r in rows:
            step = 0 if r.layer == "input" else depth + 1 if r.layer == "readout" else int(r.layer[5:])
            if step in steps:
                out.append(("gradcheck/rel_error", r.rel_error, step))
    if result.mode == "train" and series:
        a = result.arrays
        picks = layer_picks(a["grad_W"].shape[1], max_layers)
        for i, step in enumerate(a["steps"]):
            stats = {k: a[k][i] for k in STATS}
            out += series_rows(int(step), stats, a["loss"][i], a["accuracy"][i], picks)
    return out


def _layer_rows(key: str, values: np.ndarray, kept: np.ndarray) -> list[tuple[str, float, int]]:
    """``key`` at each kept layer, step = the layer (1-based)."""
    return [(key, values[i], int(i) + 1) for i in kept]


def series_rows(
    step: int, stats: dict[str, np.ndarray], loss: float, accuracy: float, picks: np.ndarray
) -> list[tuple[str, float, int]]:
    """One training step's rows: ``train/loss``, ``train/accuracy`` and ``layer/<lll>/<stat>`` for the
    picked layers (statistics the activation does not have, e.g. act_saturated under relu, left out)."""
    out = [("train/loss", loss, step), ("train/accuracy", accuracy, step)]
    for k in STATS:
        values = stats[k]
        if k in NOT_FOR_EVERY_ACTIVATION and np.all(np.isnan(values)):
            continue
        out += [(f"layer/{layer:03d}/{k}", values[layer - 1], step) for layer in picks]
    return out


def _log_figures(run: tracking.Run, result: StudyResult, name: str, essential: bool = False) -> None:
    """The run's figures; ``essential``: the gradient flow figure only (``tracking.figures=essential``)."""
    from harness import plots  # matplotlib only when figures are wanted

    when = "at initialisation" if result.mode == "init" else f"after step {result.arrays['steps'][-1]}"
    theory_profile = result.profile.get("theory_grad_h") if result.mode == "init" else None
    fig = plots.gradient_flow_figure(result.profile, result.spread, f"{name} ({when})", theory_profile)
    run.log_figure(fig, "figures/gradient_flow.png")
    if essential:
        return
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


def _log_result(
    run: tracking.Run,
    result: StudyResult,
    config: StudyConfig,
    name: str,
    done: set[str],
    figures: bool = True,
) -> float:
    """Summaries, profiles, arrays, the gradient check and figures (unless ``tracking.figures`` is off);
    the figures' seconds. ``done`` collects the parts written, so that a second call (after a signal)
    writes only the rest."""
    if "metrics" not in done:
        t = config.tracking
        run.log_metrics(metrics_of(result, t.max_layers, series=False, profile_layers=t.profile_layers))
        done.add("metrics")
    if "arrays" not in done:
        run.log_arrays(
            result.arrays | {f"profile_{k}": v for k, v in result.profile.items()}, "arrays/stats.npz"
        )
        done.add("arrays")
    if result.gradcheck is not None and "gradcheck" not in done:
        run.log_text(result.gradcheck.summary(), "gradcheck.txt")
        done.add("gradcheck")
    clock = time.perf_counter()
    if figures and config.tracking.figures and "figures" not in done:
        _log_figures(run, result, name, essential=config.tracking.figures == "essential")
        done.add("figures")
        return time.perf_counter() - clock
    return 0.0


def _run_tags(config: StudyConfig, ctx: JobContext, cwd: str | Path) -> dict[str, str]:
    """The job's tags, versions, config hash, seed, mode, git commit and SLURM job."""
    tags = dict(ctx.tags)
    tags |= {f"version.{k}": v for k, v in versions().items()}
    tags |= {"harness.config_hash": config_hash(config), "harness.seed": str(config.seed),
             "harness.mode": config.mode}  # fmt: skip
    commit = git_commit(cwd)
    if commit:
        tags[tracking.GIT_COMMIT_TAG] = commit
    if os.environ.get("SLURM_JOB_ID"):  # which SLURM job ran it: scancel/sacct/the job's log
        array, task = os.environ.get("SLURM_ARRAY_JOB_ID"), os.environ.get("SLURM_ARRAY_TASK_ID")
        tags["harness.slurm_job"] = f"{array}_{task}" if array and task else os.environ["SLURM_JOB_ID"]
    return tags


def _log_inputs(run: tracking.Run, config: StudyConfig, ctx: JobContext) -> None:
    """The params, the resolved config and Hydra's own record of the job."""
    run.log_params(run_params(config, ctx.swept))
    if ctx.config_yaml:
        run.log_text(ctx.config_yaml, "config.yaml")
    if ctx.output_dir is not None:
        run.log_dir(Path(ctx.output_dir) / ".hydra", "hydra")


def _failed(run: tracking.Run, err: Exception, name: str, raise_errors: bool) -> None:
    """Record the failure (FAILED), and re-raise it (a single run's error) or say it in one line. The
    store's own failure is one line, not a trace (a single run then exits 1); a full disk stops a sweep."""
    recorded = _record_failure(run, err)
    store = isinstance(err, tracking.StoreError)
    if raise_errors and not store:
        raise err
    if not store:
        traceback.print_exc(file=sys.stderr)
    where = f"recorded as FAILED in run {run.run_id}" if recorded else "the next launch marks its run lost"
    processes.say(f"job {name!r} failed ({tracking.first_line(err)}); {where}")
    if raise_errors:
        raise SystemExit(1)
    if tracking.out_of_space(err):  # every further job would fail the same way: the sweep stops
        raise tracking.OutOfSpace(tracking.first_line(err)) from None


def execute(config: StudyConfig, ctx: JobContext, cwd: str | Path, raise_errors: bool) -> tracking.Run:
    """Create the run, run the study (train-mode series stream into the run as they are measured), log
    everything, end the run FINISHED. On an error: FAILED (re-raised when ``raise_errors``). On a signal
    (``KeyboardInterrupt``): everything measured so far is logged, the run ends KILLED, and the
    exception goes on up."""
    started = time.perf_counter()
    tags = _run_tags(config, ctx, cwd)
    t = config.tracking
    picks = layer_picks(config.model.depth, t.max_layers)
    label = ctx.label or ctx.run_name
    line = JobLine(label, ctx.live)
    if config.model.depth > t.profile_layers:  # said before the work starts
        tags["harness.profile_layers"] = f"{t.profile_layers} of {config.model.depth}, evenly spread"
        processes.say(f"{label}: per-layer profiles of {t.profile_layers} of "
                      f"{config.model.depth} layers go to the store (tracking.profile_layers); "
                      f"arrays/stats.npz keeps every layer")  # fmt: skip
    run = tracking.Run.start(ctx.uri, ctx.experiment_id, ctx.run_name, tags, ctx.parent_id,
                             heartbeat=t.heartbeat_seconds, flush_seconds=t.flush_seconds)  # fmt: skip
    streamed = [-1]  # the last training step handed to the stream
    result, done = None, set()
    try:
        _log_inputs(run, config, ctx)

        def on_log(step: int, stats: dict, loss: float, accuracy: float) -> None:
            with processes.deferred():  # rows handed over and the step noted, or neither
                run.stream(series_rows(step, stats, loss, accuracy, picks))
                streamed[0] = step

        def on_progress(done: int, total: int) -> None:
            line.report(done, total)
            run.stream([])  # a run longer than flush_seconds shows its params while it runs

        clock, before = time.perf_counter(), run.seconds
        result = run_study(config, on_progress, on_log)
        study_s = time.perf_counter() - clock - (run.seconds - before)  # streaming is tracking time
        figures_s = _log_result(run, result, config, ctx.run_name, done)
        total = time.perf_counter() - started
        tracking_s = total - study_s - figures_s
        # time/* go out in the run's last batch, so they cannot count it (nor the status update after it)
        run.log_metrics([("time/study_s", study_s, 0), ("time/figures_s", figures_s, 0),
                         ("time/tracking_s", tracking_s, 0), ("time/total_s", total, 0)])  # fmt: skip
        said = verdict(result.summary, result.mode)
        run.set_tags({NOTE: said})
    except KeyboardInterrupt as stop:
        line.interrupt()
        with processes.deferred():
            _record_stop(run, stop, result, done, config, ctx.run_name, streamed[0], picks)
        raise
    except Exception as err:
        line.interrupt()
        _failed(run, err, ctx.run_name, raise_errors)
        return run
    run.end("FINISHED")
    line.finish(said)
    return run


def _record_stop(
    run: tracking.Run,
    stop: KeyboardInterrupt,
    result: StudyResult | None,
    done: set[str],
    config: StudyConfig,
    name: str,
    streamed: int,
    picks: np.ndarray,
) -> None:
    """A signal: keep the streamed rows and whatever the study had measured (all of it if the study had
    ended: only its figures are left out), end the run KILLED."""
    partial = result or getattr(stop, "partial", None)
    try:
        if partial is not None and partial.mode == "train":  # a step measured but not yet streamed
            a = partial.arrays
            for i in np.flatnonzero(a["steps"] > streamed):
                stats = {k: a[k][i] for k in STATS}
                run.stream(series_rows(int(a["steps"][i]), stats, a["loss"][i], a["accuracy"][i], picks))
        run.flush()
        tags = {"harness.stopped_by": processes.signal_name(stop)}
        tags[NOTE] = f"stopped by {tags['harness.stopped_by']} before anything was measured"
        if partial is not None:
            _log_result(run, partial, config, name, done, figures=False)
            tags["harness.completed"] = partial.completed or "the study (its figures were not drawn)"
            tags[NOTE] = (f"stopped by {tags['harness.stopped_by']} after {tags['harness.completed']}: "
                          f"{verdict(partial.summary, partial.mode)}")  # fmt: skip
        run.set_tags(tags)
        run.end("KILLED")
    except Exception as err:  # the store itself failed: the next launch marks the run lost
        processes.say(f"job {name!r}: could not record the stop ({tracking.first_line(err)})")
        return
    kept = f"{run.rows} metric rows" + (f" ({tags['harness.completed']})" if partial is not None else "")
    processes.say(
        f"job {name!r} stopped by {tags['harness.stopped_by']}: run {run.run_id} KILLED, kept {kept}"
    )


def _record_failure(run: tracking.Run, err: Exception) -> bool:
    """End the run FAILED with the error as a tag; False if the store refused that too."""
    try:
        run.set_tags({"harness.error": f"{type(err).__name__}: {err}"[:5000],
                      NOTE: f"FAILED: {tracking.first_line(err)}"})  # fmt: skip
        run.end("FAILED")
    except Exception as again:  # the store itself failed: the next launch marks the run lost
        processes.say(f"could not record the failure of run {run.run_id} ({tracking.first_line(again)})")
        return False
    return True

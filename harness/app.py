"""The ``harness`` command: a Hydra app over ``harness/conf/`` that runs studies and records them in MLflow.

This is the edge where Hydra meets the library: configs are validated and turned into plain objects
(``harness.config``) here, and nothing past this module sees a ``DictConfig``. Before Hydra starts,
``main`` validates every job of the command (``harness.preflight``), prepares the store and decides a
``resume=``; a bad value gives one line naming the key and the allowed values, exit code 2, and no
MLflow run. What it decided reaches the sweep callback and the jobs as a ``Launch``.
"""

from __future__ import annotations

import contextlib
import os
import shlex
import sys
from pathlib import Path

import hydra
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from harness import processes, runtime
from harness.callbacks import (
    LAUNCH_ENV,
    SWEEP_ENV,
    Launch,
    end_parent,
    runs_link,
    sweep_info,
    sweep_started,
    without_resume,
)
from harness.config import ConfigError, StudyConfig, config_hash, parse_config
from harness.preflight import CONF_MODULE, composes_every_job, task_words, validate_command
from harness.progress import VERBOSE_ENV
from harness.story import FIRST_PARAMS, run_name
from harness.tracking import StoreError

INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve",
              "--shell-completion", "-sc", "--version", "--package", "-p"}  # fmt: skip


def _key_help() -> str:
    """``harness --help``'s list of every key, from the schema (harness.config); ``$`` escaped for the
    help template's own substitution."""
    from harness.config import key_table

    return key_table().replace("$", "$$")


OmegaConf.register_new_resolver("harness_keys", _key_help, use_cache=True)


def _unique_id() -> str:
    """Six hex digits, so that launches in the same second never share an output folder (cached per
    config: the launcher and every job of a sweep resolve the same value)."""
    import secrets

    return secrets.token_hex(3)


OmegaConf.register_new_resolver("harness_uid", _unique_id, use_cache=True)


@hydra.main(version_base="1.3", config_path=f"pkg://{CONF_MODULE}", config_name="config")
def _job(cfg: DictConfig) -> None:
    # Launchers pickle this function by value (its name points at Hydra's wrapper), with every global
    # it reads: it reads nothing but the function below, which pickles by reference.
    _run_job(cfg)


def _run_job(cfg: DictConfig) -> None:
    """One job: a single run, or a child of a multirun, in a process tuned by ``harness.runtime``."""
    runtime.keep_freed_memory()  # a launcher's worker never ran main()
    try:
        _one_job(cfg)
    finally:  # the first job of a process imports MLflow and matplotlib
        runtime.freeze_long_lived()


def _one_job(cfg: DictConfig) -> None:
    from harness.runner import JobContext, execute

    config = parse_config(OmegaConf.to_container(cfg, resolve=True))
    hc = HydraConfig.get()
    cwd = hc.runtime.cwd
    overrides = list(hc.overrides.task)
    tags = {"harness.overrides": " ".join(overrides) or "(none)"}
    common = dict(output_dir=Path(hc.runtime.output_dir), config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
    if hc.mode == RunMode.MULTIRUN:
        _sweep_job(config, hc, tags, common)
        return
    launch = Launch.from_env() or prepare_store(config)  # None: launched without main()
    keys = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    name = run_name(config, keys)
    ctx = JobContext(launch.uri, launch.experiment_id, name, None, tags, **common, swept=keys)
    run = execute(config, ctx, cwd, raise_errors=True)
    link = runs_link(launch.uri, launch.experiment_id, "study", list(FIRST_PARAMS[:6]))
    print(f"run {run.run_id} finished in experiment {launch.experiment!r} ({launch.uri})\n{link}",
          file=sys.stderr)  # fmt: skip


def _sweep_job(config: StudyConfig, hc: object, tags: dict, common: dict) -> None:
    """One job of a multirun, in the launcher's process or a worker's: a child of the parent whose id
    the launcher handed over. A worker records its run and exits on a signal, and stops itself when its
    launcher dies."""
    from harness import tracking
    from harness.runner import JobContext, execute

    info = sweep_info()
    worker = info["launcher"] != [processes.host(), os.getpid()]
    if worker:
        processes.install()
        if info["launcher"] == [processes.host(), os.getppid()]:
            processes.watch_parent()
    tags |= {"harness.job_num": str(hc.job.num), "harness.sweep_dir": info["sweep_dir"]}
    name = run_name(config, info["swept"])
    label = f"[{hc.job.num + 1}/{info['jobs']}] {name}" if info.get("jobs") else name
    try:
        try:
            if info["resume"]:
                done = tracking.finished_child(info["uri"], info["experiment_id"], info["parent_id"],
                                               config_hash(config))  # fmt: skip
                if done:
                    print(f"{label}: skipped, already FINISHED as run {done}", file=sys.stderr)
                    return
            ctx = JobContext(info["uri"], info["experiment_id"], name, info["parent_id"], tags, **common,
                             label=label, live=not worker, swept=info["swept"])  # fmt: skip
            execute(config, ctx, hc.runtime.cwd, raise_errors=False)
        finally:
            if worker:
                processes.uninstall()
    except KeyboardInterrupt as stop:
        if worker:  # recorded by execute; a worker ends here, the launcher has its own handler
            sys.stderr.flush()
            launcher = info["launcher"][1] if info["launcher"][0] == processes.host() else None
            processes.linger(launcher)
            processes.chained(stop)  # SIGUSR2 in a SLURM job: submitit requeues it or ends it
            os._exit(processes.exit_code(stop))
        raise
    except Exception as err:  # not even the child run could be created: the parent counts it missing
        line = f"job {name!r}: no run ({tracking.first_line(err)})"
        processes.say(line)
        with contextlib.suppress(OSError):
            (Path(hc.runtime.output_dir) / "harness_error.txt").write_text(line + "\n")


def prepare_store(config: StudyConfig) -> Launch:
    """Check and create the store and the experiment, and mark lost runs FAILED."""
    from harness import tracking

    uri = tracking.resolve_uri(config.tracking.uri, Path.cwd())
    tracking.check_store(uri)
    experiment = config.tracking.experiment or config.study
    experiment_id = tracking.prepare(uri, experiment)
    lost = tracking.mark_lost(uri, experiment_id)
    if lost:
        print(f"harness: marked {len(lost)} lost run(s) FAILED in experiment {experiment!r} (their process "
              f"is gone; tag harness.lost): {', '.join(lost)}", file=sys.stderr)  # fmt: skip
    return Launch(uri, experiment, experiment_id)


def _stop_line(stop: BaseException, argv: list[str], what: str) -> str:
    words = [a for a in argv if a.split("=", 1)[0].lstrip("+~") != "resume"]
    again = "harness " + " ".join(shlex.quote(a) for a in words) + " resume=true"
    return f"harness: stopped by {processes.signal_name(stop)}: {what}; resume with: {again}"


def _on_signal(signum: int) -> None:
    """In the launching process: stop the jobs it started (local workers; submitted SLURM jobs)."""
    processes.stop_children(signum)
    launchers = sys.modules.get("hydra_plugins.harness_launchers.launchers")
    if launchers is not None:
        launchers.cancel(signum)


def _plan(argv: list[str], multirun: bool) -> Launch | None:
    """Validate the command, prepare the store, decide ``resume=``; None: nothing to run."""
    from harness import resume

    jobs, config = validate_command(argv)
    launch = prepare_store(config)
    launch.jobs = jobs if multirun else 1
    launch.validated = composes_every_job(jobs)  # the sweeper then does not compose them again
    if config.resume is not False:
        where = (launch.uri, launch.experiment_id, launch.experiment)
        if multirun:
            launch.resume_id = resume.resume_sweep(config.resume, without_resume(task_words(argv)), *where)
        elif not resume.resume_single(config.resume, config, *where):
            return None
    return launch


def main(argv: list[str] | None = None) -> None:
    """The console script: validate, prepare the store, then hand over to Hydra. SIGINT, SIGTERM and
    SIGHUP end the running job KILLED (keeping what it measured) and the sweep's parent, and exit with
    128 + the signal's number."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if "-v" in argv or "--verbose" in argv:  # Hydra's own lines and progress every 10%, also in logs
        argv = [a for a in argv if a not in ("-v", "--verbose")] + ["hydra.hydra_logging.root.level=INFO"]
        os.environ[VERBOSE_ENV] = "1"
    sys.argv = [sys.argv[0], *argv]
    if any(a.split("=")[0] in INFO_FLAGS for a in argv):
        _job()
        return
    processes.install(on_signal=_on_signal)
    runtime.keep_freed_memory()
    for name in (LAUNCH_ENV, SWEEP_ENV):  # a launch earlier in this process is not this one's
        os.environ.pop(name, None)
    try:
        launch = _plan(argv, multirun="-m" in argv or "--multirun" in argv)
        if launch is None:
            return
        launch.export()
        runtime.freeze_long_lived()
    except (ConfigError, StoreError) as err:  # bad input, or a store that cannot be used
        print(f"harness: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as stop:
        processes.say(f"harness: stopped by {processes.signal_name(stop)} before any job ran")
        sys.exit(processes.exit_code(stop))
    _hand_to_hydra(argv)


def _hand_to_hydra(argv: list[str]) -> None:
    """Run the jobs; a sweep's parent is ended whatever happens (after a signal: KILLED)."""
    try:
        _job()
    except KeyboardInterrupt as stop:
        info = sweep_started()
        what = end_parent(info, stop).summary if info else "what was measured is kept (see above)"
        processes.end_leftovers()  # no worker outlives the launcher
        processes.say(_stop_line(stop, argv, what))
        sys.exit(processes.exit_code(stop))
    except BaseException:
        info = sweep_started()
        if info:
            end_parent(info, crashed=True)
        raise
    info = sweep_started()
    if info and end_parent(info, crashed=True).unfinished:  # ended by on_multirun_end: its outcome
        sys.exit(1)

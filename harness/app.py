"""The ``harness`` command: a Hydra app over ``conf/`` that runs studies and records them in MLflow.

This is the edge where Hydra meets the library: configs are validated and turned into plain objects
(``harness.config``) here, and nothing past this module sees a ``DictConfig``.

Before Hydra starts, ``main`` validates the command: every override key, every group option and every
combination a sweep will run, so a bad value gives one line naming the key and the allowed values, exit
code 2, and no MLflow run.
"""

from __future__ import annotations

import contextlib
import copy
import itertools
import json
import os
import shlex
import sys
from dataclasses import asdict
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from harness import processes
from harness.callbacks import STATE, end_parent, runs_link, sweep_info, without_resume
from harness.config import (
    ConfigError,
    DataConfig,
    GradcheckConfig,
    ModelConfig,
    OptimConfig,
    StudyConfig,
    config_hash,
    parse_config,
)
from harness.data import check_data_file
from harness.progress import VERBOSE_ENV
from harness.story import FIRST_PARAMS, run_name
from harness.tracking import StoreError

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
MAX_COMBINATIONS = 512  # beyond this, each swept value is validated on its own
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve",
              "--shell-completion", "-sc", "--version", "--package", "-p"}  # fmt: skip
NOT_COMPARED = ("hydra", "launcher", "resume")  # may differ between a sweep and its resumption
VALUE_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"}


def register_bases() -> None:
    """Each group's ``_base``: every key of its dataclass with the library's defaults, so that any
    key can be overridden whichever option is chosen."""
    store = ConfigStore.instance()
    for group, cls in (("model", ModelConfig), ("data", DataConfig), ("optim", OptimConfig),
                       ("gradcheck", GradcheckConfig)):  # fmt: skip
        store.store(group=group, name="_base", node=asdict(cls()))


register_bases()


def group_options(group: str) -> list[str]:
    folder = CONF_DIR / group
    return sorted(p.stem for p in folder.glob("*.yaml") if not p.stem.startswith("_"))


def _check_key(key: str, values: list[str]) -> None:
    """A group option that exists, or a key of the schema."""
    if key.startswith("hydra"):
        return
    if (CONF_DIR / key).is_dir():
        allowed = group_options(key)
        for v in values:
            if v not in allowed and not (v == "null" and key in ("experiment", "debug")):
                raise ConfigError(f"{key}: unknown option {v!r}; allowed: {', '.join(allowed)}")
        return
    node: object = StudyConfig
    parts = key.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in getattr(node, "__dataclass_fields__", {}).values()}
        prefix = ".".join(parts[:i])
        if part not in fields:
            names = [f"{prefix}.{n}" if prefix else n for n in fields] or ["(none: not a mapping)"]
            raise ConfigError(f"{key}: unknown key; allowed keys: {', '.join(names)}")
        node = fields[part].default_factory() if callable(fields[part].default_factory) else None


def _compose_and_parse(overrides: list[str]) -> StudyConfig:
    from hydra import compose

    try:
        cfg = compose("config", overrides=overrides)
        values = OmegaConf.to_container(cfg, resolve=True)
    except Exception as err:  # Hydra's own message, first line
        raise ConfigError(str(err).strip().splitlines()[0]) from None
    return parse_config(values)


def validate_command(argv: list[str]) -> tuple[int, StudyConfig]:
    """Validate every job the command would run; the number of jobs and the first job's config."""
    from hydra import compose, initialize_config_dir
    from hydra.core.override_parser.overrides_parser import OverridesParser

    words, skip = [], False
    for a in argv:
        if skip or a.startswith("-"):
            skip = a in VALUE_FLAGS
            continue
        words.append(a)
    try:
        parsed = OverridesParser.create().parse_overrides(words)
    except Exception as err:
        raise ConfigError(str(err).strip().splitlines()[0]) from None
    sweeps: dict[str, list[str]] = {}
    fixed = []
    for o in parsed:
        values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [o.get_value_element_as_str()]
        if not o.is_delete():
            _check_key(o.key_or_group, values)
        if o.is_sweep_override():
            sweeps[o.input_line.split("=", 1)[0]] = values
        else:
            fixed.append(o.input_line)
    _check_launcher(fixed)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        first = fixed + [f"{k}={v[0]}" for k, v in sweeps.items()]
        try:
            params = compose("config", overrides=first, return_hydra_config=True).hydra.sweeper.get("params")
        except Exception as err:
            raise ConfigError(str(err).strip().splitlines()[0]) from None
        for key, line in (params or {}).items():
            if key not in sweeps and not any(f.split("=")[0].lstrip("+") == key for f in fixed):
                o = OverridesParser.create().parse_overrides([f"{key}={line}"])[0]
                values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [str(line)]
                _check_key(key, values)
                sweeps[key] = values
        keys = list(sweeps)
        total = 1
        for v in sweeps.values():
            total *= len(v)
        if total <= MAX_COMBINATIONS:
            combos = list(itertools.product(*sweeps.values()))
        else:  # each value once, the others at their first value
            combos = [tuple(v[0] for v in sweeps.values())]
            for i, vals in enumerate(sweeps.values()):
                combos += [tuple(x if j == i else sweeps[k][0] for j, k in enumerate(keys)) for x in vals[1:]]
        first_config = _validate_combinations(fixed, keys, combos)
    return total, first_config


LAUNCHER_PLUGINS = {  # launcher= choice: (Hydra plugin module, the extra that installs it)
    "joblib": ("hydra_plugins.hydra_joblib_launcher", None),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "ray"),
}


def _check_launcher(fixed: list[str]) -> None:
    """One line naming the extra when the chosen launcher's Hydra plugin is not installed."""
    import importlib.util

    for word in fixed:
        key, _, value = word.partition("=")
        if key.lstrip("+") in ("launcher", "hydra/launcher"):
            module, extra = LAUNCHER_PLUGINS.get(value, (None, None))
            if module and importlib.util.find_spec(module) is None:
                how = f'pip install -e ".[{extra}]"' if extra else f"pip install {module.split('.')[1]}"
                raise ConfigError(f"launcher={value} needs Hydra's {module.split('.')[1]} plugin: {how}")


def _is_value_key(key: str) -> bool:
    """A plain ``a.b=value`` override: no config group, no +/~ edit, not Hydra's own settings."""
    return not (key.startswith(("+", "~", "hydra")) or (CONF_DIR / key).is_dir())


def _validate_combinations(fixed: list[str], keys: list[str], combos: list[tuple[str, ...]]) -> StudyConfig:
    """Parse every combination. Hydra composes a config in ~0.2 s, so each distinct choice of config
    groups is composed once, and swept plain values are set into a copy of it as Hydra would (typed
    by Hydra's override parser); a key the composed config lacks falls back to a full compose."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    typed = {}  # (key, value as written) -> the value Hydra would set
    merged = set()  # Hydra merges a mapping into the node it overrides: such keys are composed, not set
    for combo in combos:
        for k, v in zip(keys, combo, strict=True):
            if _is_value_key(k) and (k, v) not in typed:
                typed[(k, v)] = parser.parse_overrides([f"{k}={v}"])[0].value()
                if isinstance(typed[(k, v)], dict):
                    merged.add(k)
    plain = [k for k in keys if _is_value_key(k) and k not in merged]
    composed: dict[tuple, dict] = {}
    parsed: list[StudyConfig] = []
    checked_files: set[str] = set()
    for combo in combos:
        lines = [f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
        groups = tuple(line for k, line in zip(keys, lines, strict=True) if k not in plain)
        if groups not in composed:
            try:
                cfg = compose("config", overrides=fixed + lines)
            except Exception as err:  # Hydra's own message, first line
                raise ConfigError(str(err).strip().splitlines()[0]) from None
            composed[groups] = OmegaConf.to_container(cfg, resolve=False)
        values = copy.deepcopy(composed[groups])
        for k, v in zip(keys, combo, strict=True):
            if k not in plain:
                continue
            *path, last = k.split(".")
            node = values
            for part in path:
                node = node.get(part) if isinstance(node, dict) else None
            if not (isinstance(node, dict) and last in node):  # not in this config: let Hydra say so
                values = None
                break
            node[last] = typed[(k, v)]
        if values is None:
            config = _compose_and_parse(fixed + lines)
        else:
            try:
                resolved = OmegaConf.to_container(OmegaConf.create(values), resolve=True)
            except Exception as err:
                raise ConfigError(str(err).strip().splitlines()[0]) from None
            config = parse_config(resolved)
        if config.data.name == "file" and config.data.path not in checked_files:
            check_data_file(config.data.path)  # NaN, Inf or text cells: named before anything runs
            checked_files.add(config.data.path)
        parsed = parsed or [config]
    return parsed[0]


def _unique_id() -> str:
    """Six hex digits, so that launches in the same second never share an output folder (cached per
    config: the launcher and every job of a sweep resolve the same value)."""
    import secrets

    return secrets.token_hex(3)


OmegaConf.register_new_resolver("harness_uid", _unique_id, use_cache=True)


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _job(cfg: DictConfig) -> None:
    # Launchers pickle this function by value (its name points at Hydra's wrapper), with every global
    # it reads: it reads nothing but the function below, which pickles by reference.
    _run_job(cfg)


def _run_job(cfg: DictConfig) -> None:
    """One job: a single run, or a child of a multirun."""
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
    if "uri" not in STATE:  # launched without main()
        _prepare_store(config)
    keys = [o.lstrip("+~").split("=", 1)[0] for o in overrides]
    name = run_name(config, keys)
    ctx = JobContext(STATE["uri"], STATE["experiment_id"], name, None, tags, **common, swept=keys)
    run = execute(config, ctx, cwd, raise_errors=True)
    print(f"run {run.run_id} finished in experiment {STATE['experiment']!r} ({STATE['uri']})\n"
          f"{runs_link('study', list(FIRST_PARAMS[:6]))}", file=sys.stderr)  # fmt: skip


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


def _prepare_store(config: StudyConfig) -> None:
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
    STATE.update(uri=uri, experiment=experiment, experiment_id=experiment_id)


def task_words(argv: list[str]) -> list[str]:
    """The overrides Hydra records as the task's (flags and hydra.* settings left out)."""
    words, skip = [], False
    for a in argv:
        if skip or a.startswith("-"):
            skip = a in VALUE_FLAGS
            continue
        if not a.startswith("hydra."):
            words.append(a)
    return words


def _compared(overrides: list[str]) -> dict[str, str]:
    return {
        o.split("=", 1)[0]: o
        for o in overrides
        if not o.split("=", 1)[0].lstrip("+~").startswith(NOT_COMPARED)
    }


def _difference(here: dict[str, str], there: dict[str, str]) -> str:
    parts = []
    for key in sorted(set(here) | set(there)):
        if here.get(key) != there.get(key):
            parts.append(f"{here.get(key, f'no {key}')} here, {there.get(key, f'no {key}')} there")
    return "; ".join(parts)


def _resume_sweep(value: bool | str, overrides: list[str]) -> str | None:
    """The parent run to continue (None: nothing to resume, start a new sweep), or ConfigError."""
    from harness import tracking

    uri, experiment_id, study = STATE["uri"], STATE["experiment_id"], STATE["experiment"]
    here = _compared(overrides)
    if value is True:
        parents = tracking.sweeps(uri, experiment_id)
        if not parents:
            print(f"resume: study {study!r} has no sweep yet; starting a new one", file=sys.stderr)
            return None
        match = [
            p
            for p in parents
            if _compared(json.loads(p.data.tags.get("harness.task_overrides", "[]"))) == here
        ]
        if not match:
            latest = parents[0]
            there = _compared(json.loads(latest.data.tags.get("harness.task_overrides", "[]")))
            raise ConfigError(f"resume: no sweep of study {study!r} has these overrides; the latest "
                              f"({latest.info.run_id}) differs: {_difference(here, there)}")  # fmt: skip
        parent = match[0]
    else:
        parent = tracking.get_run(uri, str(value))
        if (
            parent is None
            or parent.info.experiment_id != experiment_id
            or "harness.kind" not in parent.data.tags
        ):
            raise ConfigError(f"resume: {value!r} is not a sweep of study {study!r}; allowed: true, or the "
                              "run id of a sweep's parent in that study")  # fmt: skip
        there = _compared(json.loads(parent.data.tags.get("harness.task_overrides", "[]")))
        if there != here:
            raise ConfigError(
                f"resume: sweep {value} was launched with other overrides: {_difference(here, there)}"
            )
    if parent.info.status == "RUNNING":
        tags = parent.data.tags
        raise ConfigError(
            f"resume: sweep {parent.info.run_id} is still RUNNING (process {tags.get('harness.pid')} on "
            f"{tags.get('harness.host')}); stop it first"
        )
    return parent.info.run_id


def _resume_single(value: bool | str, config: StudyConfig) -> bool:
    """Whether a single run must run: not when a FINISHED run with its config hash exists."""
    from harness import tracking

    uri, experiment_id, study = STATE["uri"], STATE["experiment_id"], STATE["experiment"]
    digest = config_hash(config)
    if value is True:
        done = tracking.finished_runs_by_hash(uri, experiment_id, digest)
        found = done[-1] if done else None
    else:
        found = tracking.get_run(uri, str(value))
        if found is None or found.info.experiment_id != experiment_id:
            raise ConfigError(
                f"resume: no run {value!r} in study {study!r}; allowed: true, or a run id there"
            )
        if found.data.tags.get("harness.config_hash") != digest:
            theirs = found.data.tags.get("harness.config_hash")
            raise ConfigError(f"resume: run {value} has another config (hash {theirs}, this one {digest})")
        found = found if found.info.status == "FINISHED" else None
    if found is not None:
        print(f"resume: skipped: run {found.info.run_id} with this config is FINISHED in study {study!r}",
              file=sys.stderr)  # fmt: skip
        return False
    return True


def _stop_line(stop: BaseException, argv: list[str]) -> str:
    what = STATE.get("summary") or "what was measured is kept (see above)"
    words = [a for a in argv if a.split("=", 1)[0].lstrip("+~") != "resume"]
    again = "harness " + " ".join(shlex.quote(a) for a in words) + " resume=true"
    return f"harness: stopped by {processes.signal_name(stop)}: {what}; resume with: {again}"


def _on_signal(signum: int) -> None:
    """In the launching process: stop the jobs it started (local workers; submitted SLURM jobs)."""
    processes.stop_children(signum)
    launchers = sys.modules.get("hydra_plugins.harness_launchers.launchers")
    if launchers is not None:
        launchers.cancel(signum)


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
    multirun = "-m" in argv or "--multirun" in argv
    processes.install(on_signal=_on_signal)
    try:
        jobs, config = validate_command(argv)
        _prepare_store(config)
        STATE["jobs"] = jobs if multirun else 1
        if config.resume is not False:
            if multirun:
                STATE["resume_id"] = _resume_sweep(config.resume, without_resume(task_words(argv)))
            elif not _resume_single(config.resume, config):
                return
    except (ConfigError, StoreError) as err:  # bad input, or a store that cannot be used
        print(f"harness: error: {err}", file=sys.stderr)
        sys.exit(2)
    except KeyboardInterrupt as stop:
        processes.say(f"harness: stopped by {processes.signal_name(stop)} before any job ran")
        sys.exit(processes.exit_code(stop))
    try:
        _job()
    except KeyboardInterrupt as stop:
        end_parent(stop)
        processes.say(_stop_line(stop, argv))
        sys.exit(processes.exit_code(stop))
    finally:
        end_parent(crashed=True)  # a no-op when on_multirun_end has ended it
    if STATE.get("failed"):
        sys.exit(1)

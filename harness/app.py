"""The ``harness`` command: a Hydra app over ``conf/`` that runs studies and records them in MLflow.

This is the edge where Hydra meets the library: configs are validated and turned into plain objects
(``harness.config``) here, and nothing past this module sees a ``DictConfig``.

Before Hydra starts, ``main`` validates the command: every override key, every group option and every
combination a sweep will run, so a bad value gives one line naming the key and the allowed values, exit
code 2, and no MLflow run.
"""

from __future__ import annotations

import copy
import itertools
import sys
from dataclasses import asdict
from pathlib import Path

import hydra
from hydra.core.config_store import ConfigStore
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode
from omegaconf import DictConfig, OmegaConf

from harness.callbacks import STATE, end_parent, find_sweep_file
from harness.config import (
    ConfigError,
    DataConfig,
    GradcheckConfig,
    ModelConfig,
    OptimConfig,
    StudyConfig,
    parse_config,
)

CONF_DIR = Path(__file__).resolve().parent.parent / "conf"
MAX_COMBINATIONS = 512  # beyond this, each swept value is validated on its own
INFO_FLAGS = {"--help", "-h", "--hydra-help", "--info", "-i", "--cfg", "-c", "--resolve",
              "--shell-completion", "-sc", "--version", "--package", "-p"}  # fmt: skip
NOT_IN_NAMES = ("hydra", "study", "debug", "launcher", "experiment", "tracking", "gradcheck")
VALUE_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"}
SHORT_NAMES = {
    "model.depth": "depth", "model.activation": "act", "model.init_scale": "scale", "model.init": "init",
    "model.skip": "skip", "model.norm": "norm", "model.width": "width",
}  # fmt: skip


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


def validate_command(argv: list[str]) -> int:
    """Validate every job the command would run; the number of jobs."""
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
        _validate_combinations(fixed, keys, combos)
    return total


def _is_value_key(key: str) -> bool:
    """A plain ``a.b=value`` override: no config group, no +/~ edit, not Hydra's own settings."""
    return not (key.startswith(("+", "~", "hydra")) or (CONF_DIR / key).is_dir())


def _validate_combinations(fixed: list[str], keys: list[str], combos: list[tuple[str, ...]]) -> None:
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
            _compose_and_parse(fixed + lines)
            continue
        try:
            resolved = OmegaConf.to_container(OmegaConf.create(values), resolve=True)
        except Exception as err:
            raise ConfigError(str(err).strip().splitlines()[0]) from None
        parse_config(resolved)


def run_name(overrides: list[str], keys: list[str] | None, default: str) -> str:
    """``depth=50 act=tanh scale=1.5 skip=off`` from the job's overrides (only ``keys`` if given)."""
    values = {}
    for line in overrides:
        key, _, value = line.lstrip("+~").partition("=")
        if key.startswith(NOT_IN_NAMES) or (keys is not None and key not in keys):
            continue
        if key == "model.skip":
            value = {"true": "on", "false": "off"}.get(value.lower(), value)
        values[SHORT_NAMES.get(key, key.split(".")[-1].split("/")[-1])] = value
    return " ".join(f"{k}={v}" for k, v in values.items()) or default


@hydra.main(version_base="1.3", config_path=str(CONF_DIR), config_name="config")
def _job(cfg: DictConfig) -> None:
    from harness import tracking
    from harness.runner import JobContext, execute

    config = parse_config(OmegaConf.to_container(cfg, resolve=True))
    hc = HydraConfig.get()
    cwd = hc.runtime.cwd
    overrides = list(hc.overrides.task)
    tags = {"harness.overrides": " ".join(overrides) or "(none)"}
    common = dict(output_dir=Path(hc.runtime.output_dir), config_yaml=OmegaConf.to_yaml(cfg, resolve=True))
    if hc.mode == RunMode.MULTIRUN:
        info = find_sweep_file(hc.runtime.output_dir)
        tags |= {"harness.job_num": str(hc.job.num), "harness.sweep_dir": info["sweep_dir"]}
        name = run_name(overrides, info["swept"], f"job {hc.job.num}")
        ctx = JobContext(info["uri"], info["experiment_id"], name, info["parent_id"], tags, **common)
        execute(config, ctx, cwd, raise_errors=False)
        return
    uri = tracking.resolve_uri(config.tracking.uri, cwd)
    experiment = config.tracking.experiment or config.study
    experiment_id = tracking.prepare(uri, experiment)
    name = run_name(overrides, None, config.study)
    run = execute(config, JobContext(uri, experiment_id, name, None, tags, **common), cwd, raise_errors=True)
    print(
        f"run {run.run_id} ({name}) finished in experiment {experiment!r}\n"
        f"store: {uri}\nopen the UI: {tracking.ui_hint(uri)}",
        file=sys.stderr,
    )


def main(argv: list[str] | None = None) -> None:
    """The console script: validate, then hand over to Hydra."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if not any(a.split("=")[0] in INFO_FLAGS for a in argv):
        try:
            validate_command(argv)
        except ConfigError as err:
            print(f"harness: error: {err}", file=sys.stderr)
            sys.exit(2)
    sys.argv = [sys.argv[0], *argv]
    try:
        _job()
    finally:
        end_parent(crashed=True)  # a no-op when on_multirun_end has ended it
    if STATE.get("failed"):
        sys.exit(1)

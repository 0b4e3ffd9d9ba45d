"""Pre-flight: every job a command would run, validated before Hydra starts or a store is touched.

``validate_command(argv)`` checks every override key (the schema's, ``harness.config``), every group
option, the launcher's plugin and every combination a sweep will run (its own overrides and the
sweeper params of an ``experiment``), and returns the number of jobs and the first job's config.
``harness-figure`` uses ``check_key`` and ``compose_and_parse`` on its jobs. A bad value raises
``ConfigError``: one line naming the key and the allowed values. Hydra is used only through its
public compose API and override parser.
"""

from __future__ import annotations

import copy
import importlib.util
import itertools
from pathlib import Path
from typing import Any

from omegaconf import OmegaConf

from harness.config import ConfigError, StudyConfig, check_study, defaults, parse_config
from harness.data import check_data_file
from harness.schema import field_of

CONF_MODULE = "harness.conf"  # the app's configs, package data: Hydra's pkg://harness.conf
CONF_DIR = Path(__file__).resolve().parent / "conf"  # the same files (a wheel installs them unpacked)
SCHEMA_NODE = "harness_schema"  # conf/config.yaml's first default: the schema's every key
MAX_COMBINATIONS = 512  # beyond this, each swept value is validated on its own
VALUE_FLAGS = {"--config-name", "-cn", "--config-path", "-cp", "--config-dir", "-cd"}
LAUNCHER_PLUGINS = {  # launcher= choice: (Hydra plugin module, the extra that installs it)
    "joblib": ("hydra_plugins.hydra_joblib_launcher", None),
    "slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_slurm": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "submitit_local": ("hydra_plugins.hydra_submitit_launcher", "slurm"),
    "ray": ("hydra_plugins.hydra_ray_launcher", "ray"),
}


def register_schema() -> None:
    """The schema's defaults as the ConfigStore root node ``harness_schema``, and ``${harness_required:}``
    for a key an option requires (a YAML ``???`` would not override the schema's default). Idempotent."""
    from hydra.core.config_store import ConfigStore

    ConfigStore.instance().store(name=SCHEMA_NODE, node=defaults())
    if not OmegaConf.has_resolver("harness_required"):
        OmegaConf.register_new_resolver("harness_required", lambda: "???")  # parse_config: "missing"


register_schema()  # on import, as Hydra's ConfigStore expects: any compose of conf/ finds the schema


def group_options(group: str) -> list[str]:
    return sorted(p.stem for p in (CONF_DIR / group).glob("*.yaml") if not p.stem.startswith("_"))


def check_key(key: str, values: list[str]) -> None:
    """A group option that exists, or a key of the schema."""
    if key.startswith("hydra"):
        return
    if key.lstrip("+") == "figure":
        raise ConfigError("figure: not a key of harness; a figure is built with harness-figure NAME "
                          "(harness-figure --list shows them)")  # fmt: skip
    if (CONF_DIR / key).is_dir():
        allowed = group_options(key)
        for v in values:
            if v not in allowed and not (v == "null" and key in ("experiment", "debug")):
                raise ConfigError(f"{key}: unknown option {v!r}; allowed: {', '.join(allowed)}")
        return
    error = field_of(StudyConfig, key)
    if error:
        raise ConfigError(error)


def _hydra_error(err: Exception) -> ConfigError:
    return ConfigError(str(err).strip().splitlines()[0])  # Hydra's own message, first line


def compose_and_parse(overrides: list[str]) -> StudyConfig:
    """One job's config as Hydra composes it, validated (inside ``initialize_config_dir(CONF_DIR)``)."""
    from hydra import compose

    try:
        values = OmegaConf.to_container(compose("config", overrides=overrides), resolve=True)
    except Exception as err:
        raise _hydra_error(err) from None
    return parse_config(values)


def command_words(argv: list[str]) -> list[str]:
    """The command's overrides: its flags (and their values) left out."""
    words, skip = [], False
    for a in argv:
        if skip or a.startswith("-"):
            skip = a in VALUE_FLAGS
            continue
        words.append(a)
    return words


def task_words(argv: list[str]) -> list[str]:
    """The overrides Hydra records as the task's (flags and hydra.* settings left out)."""
    return [w for w in command_words(argv) if not w.startswith("hydra.")]


def _sweep_values(override: Any) -> list[str]:
    if override.is_sweep_override():
        return list(override.sweep_string_iterator())
    return [override.get_value_element_as_str()]


def _check_raw(words: list[str]) -> None:
    """What Hydra's parser would misread or accept silently, named first: the study label (a folder
    name: Hydra's lexer refuses other letters with a raw error) and deleted schema keys."""
    for word in words:
        key, eq, value = word.partition("=")
        if key.lstrip("+~") == "study":
            if key.startswith("~"):
                raise ConfigError("study: cannot be deleted (~study); set a plain name: study=NAME")
            for part in value.removeprefix("choice(").removesuffix(")").split(","):
                check_study(part.strip().strip("'\""))
        elif key.startswith("~") and (CONF_DIR / key[1:]).is_dir():
            options = ", ".join(group_options(key[1:]))
            raise ConfigError(
                f"{key[1:]}: a config group cannot be deleted ({word}); choose one of: {options}"
            )
        elif key.startswith("~") and not key.startswith("~hydra"):
            raise ConfigError(
                f"{key[1:]}: a key of the harness cannot be deleted ({word}); set its value instead "
                f"({key[1:]}=VALUE), or see harness --help for its default"
            )


def _split(words: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """Swept keys with their values, and the fixed overrides; every key and option checked."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    _check_raw(words)
    try:
        parsed = OverridesParser.create().parse_overrides(words)
    except Exception as err:
        raise _hydra_error(err) from None
    sweeps: dict[str, list[str]] = {}
    fixed = []
    for o in parsed:
        if not o.is_delete():
            check_key(o.key_or_group, _sweep_values(o))
        if o.is_sweep_override():
            sweeps[o.input_line.split("=", 1)[0]] = _sweep_values(o)
        else:
            fixed.append(o.input_line)
    return sweeps, fixed


def _add_sweeper_params(fixed: list[str], sweeps: dict[str, list[str]]) -> None:
    """An experiment's ``hydra.sweeper.params`` that the command does not override, checked."""
    from hydra import compose
    from hydra.core.override_parser.overrides_parser import OverridesParser

    first = fixed + [f"{k}={v[0]}" for k, v in sweeps.items()]
    try:
        params = compose("config", overrides=first, return_hydra_config=True).hydra.sweeper.get("params")
    except Exception as err:
        raise _hydra_error(err) from None
    for key, line in (params or {}).items():
        if key not in sweeps and not any(f.split("=")[0].lstrip("+") == key for f in fixed):
            o = OverridesParser.create().parse_overrides([f"{key}={line}"])[0]
            values = list(o.sweep_string_iterator()) if o.is_sweep_override() else [str(line)]
            check_key(key, values)
            sweeps[key] = values


def composes_every_job(total: int) -> bool:
    """Whether a sweep of ``total`` jobs has every combination composed (else each value on its own)."""
    return total <= MAX_COMBINATIONS


def _combinations(sweeps: dict[str, list[str]]) -> tuple[int, list[tuple[str, ...]]]:
    """The number of jobs, and the combinations to validate: all of them up to MAX_COMBINATIONS, else
    each value once with the others at their first value."""
    total = 1
    for v in sweeps.values():
        total *= len(v)
    if composes_every_job(total):
        return total, list(itertools.product(*sweeps.values()))
    keys = list(sweeps)
    combos = [tuple(v[0] for v in sweeps.values())]
    for i, vals in enumerate(sweeps.values()):
        combos += [tuple(x if j == i else sweeps[k][0] for j, k in enumerate(keys)) for x in vals[1:]]
    return total, combos


def validate_command(argv: list[str]) -> tuple[int, StudyConfig]:
    """Validate every job the command would run; the number of jobs and the first job's config."""
    from hydra import initialize_config_dir

    sweeps, fixed = _split(command_words(argv))
    check_launcher(fixed)
    with initialize_config_dir(str(CONF_DIR), version_base="1.3"):
        _add_sweeper_params(fixed, sweeps)
        total, combos = _combinations(sweeps)
        first = validate_combinations(fixed, list(sweeps), combos)
    return total, first


def check_launcher(fixed: list[str]) -> None:
    """One line naming the extra when the chosen launcher's Hydra plugin is not installed."""
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


def _typed(keys: list[str], combos: list[tuple[str, ...]]) -> tuple[dict, list[str]]:
    """Each swept plain value as Hydra's override parser types it, and the keys that can be set into a
    composed config (Hydra merges a mapping into the node it overrides: such keys are composed)."""
    from hydra.core.override_parser.overrides_parser import OverridesParser

    parser = OverridesParser.create()
    typed, merged = {}, set()
    for combo in combos:
        for k, v in zip(keys, combo, strict=True):
            if _is_value_key(k) and (k, v) not in typed:
                typed[(k, v)] = parser.parse_overrides([f"{k}={v}"])[0].value()
                if isinstance(typed[(k, v)], dict):
                    merged.add(k)
    return typed, [k for k in keys if _is_value_key(k) and k not in merged]


def _set_values(values: dict, sets: list[tuple[str, Any]]) -> dict | None:
    """``values`` with each dotted key set; None when the composed config lacks one (Hydra says so)."""
    for k, value in sets:
        *path, last = k.split(".")
        node: Any = values
        for part in path:
            node = node.get(part) if isinstance(node, dict) else None
        if not (isinstance(node, dict) and last in node):
            return None
        node[last] = value
    return values


def validate_combinations(fixed: list[str], keys: list[str], combos: list[tuple[str, ...]]) -> StudyConfig:
    """Parse every combination. Hydra composes a config in ~0.2 s, so each distinct choice of config
    groups is composed once, and swept plain values are set into a copy of it as Hydra would; a key
    the composed config lacks falls back to a full compose."""
    from hydra import compose

    typed, plain = _typed(keys, combos)
    composed: dict[tuple, dict] = {}
    first, checked_files = None, set()
    for combo in combos:
        lines = [f"{k}={v}" for k, v in zip(keys, combo, strict=True)]
        groups = tuple(line for k, line in zip(keys, lines, strict=True) if k not in plain)
        if groups not in composed:
            try:
                composed[groups] = OmegaConf.to_container(compose("config", overrides=fixed + lines))
            except Exception as err:
                raise _hydra_error(err) from None
        sets = [(k, typed[(k, v)]) for k, v in zip(keys, combo, strict=True) if k in plain]
        values = _set_values(copy.deepcopy(composed[groups]), sets)
        if values is None:
            config = compose_and_parse(fixed + lines)
        else:
            try:
                resolved = OmegaConf.to_container(OmegaConf.create(values), resolve=True)
            except Exception as err:
                raise _hydra_error(err) from None
            config = parse_config(resolved)
        if config.data.name == "file" and config.data.path not in checked_files:
            check_data_file(config.data.path)  # NaN, Inf or text cells: named before anything runs
            checked_files.add(config.data.path)
        first = first or config
    return first

"""Typed dataclasses as the one schema of a config: build them from plain dicts, describe their keys.

``build(cls, values)`` turns a resolved dict into ``cls`` (nested dataclasses included), or raises
``ConfigError`` with one line naming the key and the allowed values. ``keys(cls)`` lists every key with
its default, its allowed values and the doc written beside it (``doc("...")`` in the field's metadata):
the source of ``harness --help`` and of the README's key table. Knows nothing of Hydra or of the study.
"""

from __future__ import annotations

import dataclasses
import sys
import types
import typing
from dataclasses import MISSING, field
from typing import Any, Literal


class ConfigError(ValueError):
    """A bad configuration value: the message is one line naming the key and the allowed values."""


def key(default: Any = MISSING, doc: str = "", factory: Any = MISSING) -> Any:
    """A dataclass field with its default and the one-line doc that help and README show."""
    if factory is not MISSING:
        return field(default_factory=factory, metadata={"doc": doc})
    return field(default=default, metadata={"doc": doc})


def describe(tp: Any) -> str:
    """The allowed values of a type, in words."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(describe(a) for a in typing.get_args(tp))
    if origin is list:
        return "a list"
    if origin is dict:
        return "a mapping"
    if dataclasses.is_dataclass(tp):
        return "a mapping of " + ", ".join(f.name for f in dataclasses.fields(tp))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(tp, str(tp))  # fmt: skip


def coerce(tp: Any, value: Any, name: str) -> Any:
    """``value`` as type ``tp``, or ConfigError naming ``name`` and the allowed values."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return coerce(option, value, name)
            except ConfigError:
                continue
    elif origin is list:
        if isinstance(value, list):
            return list(value)
    elif origin is dict:
        if isinstance(value, dict):
            return dict(value)
    elif tp is Any:
        return value
    elif tp is type(None):
        if value is None:
            return None
    elif tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, int | float) and not isinstance(value, bool):
            return float(value)
    elif tp is str and isinstance(value, str):
        return value
    raise ConfigError(f"{name}: got {value!r}; allowed: {describe(tp)}")


def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, globalns=vars(sys.modules[cls.__module__]))


def build(cls: type, values: Any, prefix: str = "", missing_hint: dict[str, str] | None = None) -> Any:
    """``cls`` from a dict: unknown keys, wrong types and OmegaConf's missing ``???`` are ConfigErrors;
    keys left out take the dataclass's defaults."""
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.') or 'config'}: expected a mapping, got {values!r}")
    hints = _hints(cls)
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key; allowed keys: {', '.join(prefix + n for n in names)}"
        )
    for f in dataclasses.fields(cls):
        if f.name not in values and f.default is MISSING and f.default_factory is MISSING:
            raise ConfigError(f"{prefix}{f.name}: missing; allowed: {describe(hints[f.name])}")
    kwargs = {}
    for name in (n for n in names if n in values):
        tp, value = hints[name], values[name]
        if value == "???":  # OmegaConf's missing value
            hint = (missing_hint or {}).get(prefix + name, "")
            raise ConfigError(f"{prefix}{name}: missing; give it on the command line{hint}")
        if dataclasses.is_dataclass(tp):
            kwargs[name] = build(tp, value, f"{prefix}{name}.", missing_hint)
        else:
            kwargs[name] = coerce(tp, value, prefix + name)
    return cls(**kwargs)


def keys(cls: type, prefix: str = "") -> list[tuple[str, Any, str, str]]:
    """Every leaf key of the schema: (dotted name, default, allowed values, doc), in field order."""
    out = []
    hints = _hints(cls)
    instance = cls()
    for f in dataclasses.fields(cls):
        tp = hints[f.name]
        if dataclasses.is_dataclass(tp):
            out += keys(tp, f"{prefix}{f.name}.")
        else:
            out.append((prefix + f.name, getattr(instance, f.name), describe(tp), f.metadata.get("doc", "")))
    return out


def field_of(cls: type, dotted: str) -> str | None:
    """None when ``dotted`` names a key of the schema (a leaf or a section), else the error line."""
    node: Any = cls
    parts = dotted.split(".")
    for i, part in enumerate(parts):
        fields = {f.name: f for f in dataclasses.fields(node)} if dataclasses.is_dataclass(node) else {}
        if part not in fields:
            at = ".".join(parts[:i])
            names = [f"{at}.{n}" if at else n for n in fields] or ["(none: not a mapping)"]
            return f"{dotted}: unknown key; allowed keys: {', '.join(names)}"
        node = _hints(node)[part]
    return None


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """{"model": {"depth": 3}} -> {"model.depth": 3}."""
    out: dict[str, Any] = {}
    for name, value in values.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{name}.")
        else:
            out[f"{prefix}{name}"] = value
    return out

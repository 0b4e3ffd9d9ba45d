"""The study's configuration as plain, validated objects.

The Hydra app composes YAML from ``conf/`` and hands the resolved dict to ``parse_config``; library code
only ever sees the dataclasses below. Every check names the key (``model.depth``) and what is allowed,
in one line, so that a bad command fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.nn.activations import ACTIVATIONS
from harness.nn.init import INIT_ALIASES, INIT_SCHEMES
from harness.nn.network import NetworkSpec

Activation = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]
InitScheme = Literal[INIT_SCHEMES + tuple(INIT_ALIASES)]  # type: ignore[valid-type]
DATASETS = ("gaussian", "teacher_student", "spirals", "blobs", "digits", "file")
CLASSIFICATION = ("spirals", "blobs", "digits")
NOT_HASHED = ("tracking", "study", "resume")  # where and how a run is recorded, not what it computes


class ConfigError(ValueError):
    """A bad configuration value: the message is one line naming the key and the allowed values."""


@dataclass
class ModelConfig:
    depth: int = 10
    width: int = 64
    activation: Activation = "tanh"
    init: InitScheme = "xavier_normal"
    init_scale: float = 1.0
    bias_std: float = 0.0
    skip: bool = False
    skip_scale: float | str = 1.0
    block_layers: int = 1
    norm: Literal["none", "layer", "batch"] = "none"
    dtype: Literal["float32", "float64"] = "float64"


@dataclass
class DataConfig:
    name: Literal[DATASETS] = "gaussian"  # type: ignore[valid-type]
    input_dim: int = 64  # synthetic data: dimension of x
    output_dim: int = 10  # gaussian/teacher_student: dimension of y (classes come from the data)
    n_train: int = 1024
    n_test: int = 512
    noise: float = 0.1  # label noise (teacher_student) or spread (spirals, blobs)
    classes: int = 3  # blobs
    teacher_width: int = 32  # teacher_student: hidden width of the tanh teacher
    path: str | None = None  # file: .npz with arrays x, y (and optionally x_test, y_test) or .csv
    test_fraction: float = 0.2  # file/digits without a test split


@dataclass
class LossConfig:
    name: Literal["probe", "mse", "cross_entropy"] = "probe"


@dataclass
class OptimConfig:
    name: Literal["sgd", "momentum", "adam"] = "sgd"
    lr: float = 0.05
    momentum: float = 0.9
    beta1: float = 0.9
    beta2: float = 0.999
    clip_norm: float | None = None


@dataclass
class TrainConfig:
    steps: int = 300
    batch_size: int = 64
    log_every: int = 10


@dataclass
class InitConfig:
    repeats: int = 16  # independent (network seed, batch) draws, averaged in log space
    batch_size: int = 64
    jacobian_max_width: int = 256  # the input-output Jacobian's spectrum is computed up to this width


@dataclass
class GradcheckConfig:
    mode: Literal["off", "directional", "entries"] = "directional"
    directions: int = 2
    entries: int = 3  # entries mode: sampled entries per tensor
    batch_size: int = 8
    threshold: float = 1e-7


@dataclass
class TrackingConfig:
    uri: str | None = None  # null: $MLFLOW_TRACKING_URI, else sqlite under ./mlruns
    experiment: str | None = None  # null: the study name
    max_layers: int = 16  # per-layer series are logged for at most this many layers
    figures: bool = True
    flush_seconds: float = 2.0  # streamed training series are written at most this often
    heartbeat_seconds: float = 30.0  # a running run rewrites its harness.heartbeat tag this often


@dataclass
class StudyConfig:
    study: str = "default"
    mode: Literal["init", "train"] = "init"
    seed: int = 0
    model: ModelConfig = field(default_factory=ModelConfig)
    data: DataConfig = field(default_factory=DataConfig)
    loss: LossConfig = field(default_factory=LossConfig)
    optim: OptimConfig = field(default_factory=OptimConfig)
    train: TrainConfig = field(default_factory=TrainConfig)
    init: InitConfig = field(default_factory=InitConfig)
    gradcheck: GradcheckConfig = field(default_factory=GradcheckConfig)
    tracking: TrackingConfig = field(default_factory=TrackingConfig)
    resume: bool | str = False  # true: continue the latest sweep (or run) with these overrides; or a run id

    def network_spec(self, input_dim: int, output_dim: int, seed: int) -> NetworkSpec:
        m = self.model
        return NetworkSpec(
            input_dim=input_dim, width=m.width, depth=m.depth, output_dim=output_dim,
            activation=m.activation, init=m.init, init_scale=m.init_scale, bias_std=m.bias_std,
            skip=m.skip, skip_scale=m.skip_scale, block_layers=m.block_layers, norm=m.norm,
            dtype=m.dtype, seed=seed,
        )  # fmt: skip


def _describe(tp: Any) -> str:
    origin = typing.get_origin(tp)
    if origin is Literal:
        return "one of: " + ", ".join(str(a) for a in typing.get_args(tp))
    if origin in (typing.Union, types.UnionType):
        return " or ".join(_describe(a) for a in typing.get_args(tp))
    return {int: "an integer", float: "a number", bool: "true or false", str: "a string",
            type(None): "null"}.get(tp, str(tp))  # fmt: skip


def _coerce(tp: Any, value: Any, key: str) -> Any:
    """``value`` as type ``tp``, or ConfigError naming ``key`` and the allowed values."""
    origin = typing.get_origin(tp)
    if origin is Literal:
        if value in typing.get_args(tp) and not isinstance(value, bool):
            return value
    elif origin in (typing.Union, types.UnionType):
        for option in typing.get_args(tp):
            try:
                return _coerce(option, value, key)
            except ConfigError:
                continue
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
    raise ConfigError(f"{key}: got {value!r}; allowed: {_describe(tp)}")


def _build(cls: type, values: Any, prefix: str) -> Any:
    if not isinstance(values, dict):
        raise ConfigError(f"{prefix.rstrip('.')}: expected a mapping, got {values!r}")
    hints = typing.get_type_hints(cls, globalns=globals())
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = [k for k in values if k not in names]
    if unknown:
        raise ConfigError(
            f"{prefix}{unknown[0]}: unknown key; allowed keys: {', '.join(prefix + n for n in names)}"
        )
    kwargs = {}
    for name in names:
        if name not in values:
            continue
        tp = hints[name]
        if values[name] == "???":  # OmegaConf's missing value
            hint = (
                " (tracking=server: tracking.uri=http://HOST:PORT)" if prefix + name == "tracking.uri" else ""
            )
            raise ConfigError(f"{prefix}{name}: missing; give it on the command line{hint}")
        if dataclasses.is_dataclass(tp):
            kwargs[name] = _build(tp, values[name], f"{prefix}{name}.")
        else:
            kwargs[name] = _coerce(tp, values[name], prefix + name)
    return cls(**kwargs)


def _positive(key: str, value: float, *, integer: bool = False, zero_ok: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if zero_ok else value > 0)
    if not ok:
        what = "an integer" if integer else "a finite number"
        raise ConfigError(f"{key}: got {value!r}; allowed: {what} {'>= 0' if zero_ok else '> 0'}")


def _check_ranges(c: StudyConfig) -> None:
    for key, value in [
        ("model.depth", c.model.depth), ("model.width", c.model.width),
        ("data.input_dim", c.data.input_dim), ("data.output_dim", c.data.output_dim),
        ("data.n_train", c.data.n_train), ("data.n_test", c.data.n_test),
        ("data.teacher_width", c.data.teacher_width), ("train.steps", c.train.steps),
        ("train.batch_size", c.train.batch_size), ("train.log_every", c.train.log_every),
        ("init.repeats", c.init.repeats), ("init.batch_size", c.init.batch_size),
        ("gradcheck.directions", c.gradcheck.directions), ("gradcheck.entries", c.gradcheck.entries),
        ("gradcheck.batch_size", c.gradcheck.batch_size), ("tracking.max_layers", c.tracking.max_layers),
        ("model.init_scale", c.model.init_scale), ("optim.lr", c.optim.lr),
        ("gradcheck.threshold", c.gradcheck.threshold), ("tracking.flush_seconds", c.tracking.flush_seconds),
        ("tracking.heartbeat_seconds", c.tracking.heartbeat_seconds),
    ]:  # fmt: skip
        _positive(key, value, integer=isinstance(value, int))
    _positive("model.bias_std", c.model.bias_std, zero_ok=True)
    _positive("data.noise", c.data.noise, zero_ok=True)
    _positive("seed", c.seed, integer=True, zero_ok=True)
    _positive("init.jacobian_max_width", c.init.jacobian_max_width, integer=True, zero_ok=True)
    if c.data.classes < 2:
        raise ConfigError(f"data.classes: got {c.data.classes}; allowed: an integer >= 2")
    if not 0 < c.data.test_fraction < 1:
        raise ConfigError(f"data.test_fraction: got {c.data.test_fraction}; allowed: a number in (0, 1)")
    for key in ("momentum", "beta1", "beta2"):
        if not 0 <= getattr(c.optim, key) < 1:
            raise ConfigError(f"optim.{key}: got {getattr(c.optim, key)}; allowed: a number in [0, 1)")
    if c.optim.clip_norm is not None:
        _positive("optim.clip_norm", c.optim.clip_norm)
    if c.model.norm == "batch" and min(c.train.batch_size, c.init.batch_size) < 2:
        raise ConfigError("model.norm: 'batch' needs train.batch_size and init.batch_size >= 2")
    try:  # the network's own checks (skip_scale, block_layers, ...), named under model.
        c.network_spec(input_dim=1, output_dim=1, seed=c.seed)
    except ValueError as err:
        raise ConfigError(f"model.{err}") from None


def _check_combination(c: StudyConfig) -> None:
    data, loss = c.data.name, c.loss.name
    if c.mode == "train" and loss == "probe":
        raise ConfigError("loss.name: 'probe' is for mode=init; allowed for mode=train: mse, cross_entropy")
    if data == "gaussian" and loss != "probe":
        raise ConfigError(f"loss.name: data=gaussian has no targets; allowed with it: probe (got {loss})")
    if data in CLASSIFICATION and loss == "mse":
        raise ConfigError(f"loss.name: data={data} has class labels; allowed: cross_entropy, probe")
    if data == "teacher_student" and loss == "cross_entropy":
        raise ConfigError("loss.name: data=teacher_student is regression; allowed: mse, probe")
    if data == "file":
        if not c.data.path or not Path(c.data.path).expanduser().is_file():
            raise ConfigError(
                f"data.path: data=file needs an existing .npz or .csv file, got {c.data.path!r}"
            )
        if Path(c.data.path).suffix not in (".npz", ".csv"):
            raise ConfigError(f"data.path: got {c.data.path!r}; allowed: a .npz or .csv file")
    if c.mode == "train" and data == "gaussian":
        raise ConfigError(
            "data.name: mode=train needs targets; allowed: teacher_student, spirals, blobs, digits, file"
        )


def parse_config(values: dict) -> StudyConfig:
    """Validate a resolved config dict (without the ``hydra`` key) and return it as objects."""
    config = _build(StudyConfig, values, "")
    _check_ranges(config)
    _check_combination(config)
    return config


def to_dict(config: StudyConfig) -> dict:
    return dataclasses.asdict(config)


def config_hash(config: StudyConfig) -> str:
    """sha256 of everything that determines a run's numbers (all but ``tracking``, ``resume`` and the
    ``study`` label), 16 hex digits: runs with the same hash hold the same numbers."""
    values = to_dict(config)
    for launch_only in NOT_HASHED:
        values.pop(launch_only)
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def flatten(values: dict, prefix: str = "") -> dict[str, Any]:
    """{"model": {"depth": 3}} -> {"model.depth": 3}."""
    out: dict[str, Any] = {}
    for key, value in values.items():
        if isinstance(value, dict):
            out |= flatten(value, f"{prefix}{key}.")
        else:
            out[f"{prefix}{key}"] = value
    return out

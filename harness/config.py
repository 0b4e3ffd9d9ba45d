"""The study's configuration: the one schema of every key and its default, validated as plain objects.

The dataclasses below are the only place a default is written. ``harness.app`` registers them in
Hydra's ConfigStore as the root of ``conf/config.yaml``; the YAML files list choices (a dataset, an
optimiser) and named studies only. Hydra composes, ``parse_config`` validates the resolved dict, and
library code only ever sees these objects. Every check names the key (``model.depth``) and what is
allowed, in one line, so that a bad command fails before any work starts.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from harness import theory
from harness.metrics import NORM_STATS, STATS
from harness.nn.activations import ACTIVATIONS
from harness.nn.init import INIT_ALIASES, INIT_SCHEMES
from harness.nn.network import NetworkSpec
from harness.schema import ConfigError, build, flatten, key, keys

__all__ = ["ConfigError", "StudyConfig", "config_hash", "flatten", "key_table", "parse_config", "to_dict"]

Activation = Literal[tuple(ACTIVATIONS)]  # type: ignore[valid-type]
InitScheme = Literal[INIT_SCHEMES + tuple(INIT_ALIASES)]  # type: ignore[valid-type]
DATASETS = ("gaussian", "teacher_student", "spirals", "blobs", "digits", "file")
CLASSIFICATION = ("spirals", "blobs", "digits")
NOT_HASHED = ("tracking", "study", "resume")  # where and how a run is recorded, not what it computes
NOT_HASHED_KEYS = (("init", "stack_mb"),)  # how the work is cut up: the numbers are bit for bit the same
# keys added after runs were recorded, at the value that gives those runs' numbers: hashed only when set,
# so a store's earlier runs keep their hash (and are reused, and resumed)
HASHED_WHEN_SET = (("data", "input_scale", 1.0), ("model", "widths", None))
INPUT_SCALES = ("q_star",)
# a study names folders (Hydra's outputs/<study>/, multirun/<study>/) and an MLflow experiment: a label,
# never a path; ASCII, since Hydra's override parser refuses other letters unquoted
STUDY_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")
STUDY_ALLOWED = "a plain name of 1-100 letters A-Z a-z, digits, '_', '-', '.', not starting with '.' or '-'"
# metric rows of a run beyond its training series: summaries (about 40 today), and per profiled layer
# each statistic, the log10 and log-space spread of each norm, and the theory's profiles (19 today)
SUMMARY_ROWS = 100
PROFILE_ROWS_PER_LAYER = len(STATS) + 2 * len(NORM_STATS) + 6
MISSING_HINTS = {"tracking.uri": " (tracking=server: tracking.uri=http://HOST:PORT)"}


@dataclass
class ModelConfig:
    depth: int = key(20, "hidden layers (nonlinearities); the network has depth + 1 weight matrices")
    width: int = key(128, "units per hidden layer")
    widths: list[int] | None = key(
        None, "per-layer widths, repeated to depth ([16, 64]: alternating); null: model.width everywhere"
    )
    activation: Activation = key("tanh", "phi, the nonlinearity of every hidden layer")
    init: InitScheme = key("xavier_normal", "the weight init scheme")
    init_scale: float = key(1.0, "multiplies every weight's standard deviation")
    bias_std: float = key(0.0, "biases ~ N(0, bias_std^2)")
    skip: bool = key(False, "residual blocks h + skip_scale * F(h)")
    skip_scale: float | str = key(1.0, 'alpha in h + alpha F(h): a number > 0, or "1/sqrt(depth)"')
    block_layers: int = key(1, "layers in each residual branch F (1 or 2)")
    norm: Literal["none", "layer", "batch"] = key("none", "LayerNorm / BatchNorm before the activation")
    dtype: Literal["float32", "float64"] = key("float64", "the network's floating-point type")


@dataclass
class DataConfig:
    name: Literal[DATASETS] = key("gaussian", "the dataset (the data group's option sets it)")  # type: ignore[valid-type]
    input_dim: int = key(64, "synthetic data: the dimension of x (data=gaussian: 128)")
    output_dim: int = key(10, "gaussian, teacher_student: the dimension of y (classes come from the data)")
    n_train: int = key(1024, "training examples")
    n_test: int = key(512, "test examples")
    noise: float = key(0.1, "label noise (teacher_student) or spread (spirals, blobs)")
    classes: int = key(3, "blobs: the number of classes (>= 2)")
    teacher_width: int = key(32, "teacher_student: the hidden width of the tanh teacher")
    path: str | None = key(None, "data=file: a .npz with arrays x, y (optionally x_test, y_test) or a .csv")
    test_fraction: float = key(0.2, "file, digits without a test split: the held-out fraction, in (0, 1)")
    input_scale: float | str = key(
        1.0, 'multiplies every input: a number > 0, or "q_star": the first pre-activations start at q*'
    )


@dataclass
class LossConfig:
    name: Literal["probe", "mse", "cross_entropy"] = key(
        "probe", "probe: L = sum(y * v), v ~ N(0, 1) per draw (init mode); mse; cross_entropy"
    )


@dataclass
class OptimConfig:
    name: Literal["sgd", "momentum", "adam"] = key("sgd", "the optimiser (the optim group's option)")
    lr: float = key(0.05, "learning rate (optim=momentum: 0.02, adam: 0.003)")
    momentum: float = key(0.9, "momentum: the velocity's decay, in [0, 1)")
    beta1: float = key(0.9, "adam: first-moment decay, in [0, 1)")
    beta2: float = key(0.999, "adam: second-moment decay, in [0, 1)")
    clip_norm: float | None = key(None, "clip the global gradient norm to this (null: no clipping)")


@dataclass
class TrainConfig:
    steps: int = key(300, "mode=train: optimiser steps")
    batch_size: int = key(64, "mode=train: minibatch size")
    log_every: int = key(10, "statistics, loss and accuracy every k steps (and at the last step)")


@dataclass
class InitConfig:
    repeats: int = key(16, "mode=init: independent draws (network seed, batch, probe), averaged in log space")
    batch_size: int = key(64, "mode=init: the batch of each draw")
    jacobian_max_width: int = key(256, "the input-output Jacobian's spectrum up to this width (0: off)")
    stack_mb: float = key(
        512.0,
        "the draws run stacked in one pass up to this much memory (MB); beyond, in chunks (same numbers)",
    )


@dataclass
class GradcheckConfig:
    mode: Literal["off", "directional", "entries"] = key(
        "directional", "float64 gradient check on a copy of the network, at initialisation"
    )
    directions: int = key(2, "directional: random directions per check")
    entries: int = key(3, "entries: sampled entries per tensor")
    batch_size: int = key(8, "the check's batch")
    threshold: float = key(1e-7, "the relative error a check must stay below")


@dataclass
class TrackingConfig:
    uri: str | None = key(None, "null: $MLFLOW_TRACKING_URI if set, else sqlite under ./mlruns")
    experiment: str | None = key(None, "the MLflow experiment (null: the study name)")
    max_layers: int = key(16, "per-layer series over training steps for at most this many layers")
    profile_layers: int = key(
        1024,
        "per-layer profiles (profile/*, gradcheck/rel_error) for at most this many layers, evenly "
        "spread; arrays/stats.npz keeps every layer",
    )
    max_rows: int = key(
        1_000_000,
        "the metric rows one run may log (~280 bytes each in SQLite); a run estimated above it "
        "is refused before it starts",
    )
    figures: bool | Literal["essential"] = key(
        True, "per-run figures as artifacts: true (all), essential (gradient flow only), false (none)"
    )
    flush_seconds: float = key(2.0, "train-mode series are streamed to the store at most this often")
    heartbeat_seconds: float = key(30.0, "a running run tags itself alive this often (3 missed: lost)")


@dataclass
class StudyConfig:
    study: str = key("default", "the study: its MLflow experiment")
    mode: Literal["init", "train"] = key(
        "init", "init: gradient flow at initialisation; train: optimiser steps on data"
    )
    seed: int = key(0, "every random draw of the job (network, data, probe, minibatches)")
    model: ModelConfig = key(factory=ModelConfig)
    data: DataConfig = key(factory=DataConfig)
    loss: LossConfig = key(factory=LossConfig)
    optim: OptimConfig = key(factory=OptimConfig)
    train: TrainConfig = key(factory=TrainConfig)
    init: InitConfig = key(factory=InitConfig)
    gradcheck: GradcheckConfig = key(factory=GradcheckConfig)
    tracking: TrackingConfig = key(factory=TrackingConfig)
    resume: bool | str = key(
        False,
        "true: continue the latest sweep (or run) with these overrides; or a run id",
    )

    @property
    def hidden_widths(self) -> list[int]:
        """Each hidden layer's width: model.widths repeated (and cut) to model.depth, else model.width."""
        m = self.model
        pattern = m.widths or [m.width]
        return [pattern[i % len(pattern)] for i in range(m.depth)]

    def network_spec(self, input_dim: int, output_dim: int, seed: int) -> NetworkSpec:
        m = self.model
        return NetworkSpec(
            input_dim=input_dim, width=self.hidden_widths, depth=m.depth, output_dim=output_dim,
            activation=m.activation, init=m.init, init_scale=m.init_scale, bias_std=m.bias_std,
            skip=m.skip, skip_scale=m.skip_scale, block_layers=m.block_layers, norm=m.norm,
            dtype=m.dtype, seed=seed,
        )  # fmt: skip


def _positive(name: str, value: float, *, integer: bool = False, zero_ok: bool = False) -> None:
    ok = math.isfinite(value) and (value >= 0 if zero_ok else value > 0)
    if not ok:
        what = "an integer" if integer else "a finite number"
        raise ConfigError(f"{name}: got {value!r}; allowed: {what} {'>= 0' if zero_ok else '> 0'}")


def check_study(name: object) -> None:
    """A study name that is a label: no folder separator, no '..', nothing a shell or Hydra reads."""
    if not (isinstance(name, str) and STUDY_NAME.fullmatch(name)):
        raise ConfigError(f"study: got {name!r}; allowed: {STUDY_ALLOWED}")


def _check_ranges(c: StudyConfig) -> None:
    check_study(c.study)
    for name, value in [
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
        ("tracking.heartbeat_seconds", c.tracking.heartbeat_seconds), ("init.stack_mb", c.init.stack_mb),
        ("tracking.profile_layers", c.tracking.profile_layers), ("tracking.max_rows", c.tracking.max_rows),
    ]:  # fmt: skip
        _positive(name, value, integer=isinstance(value, int))
    _positive("model.bias_std", c.model.bias_std, zero_ok=True)
    _positive("data.noise", c.data.noise, zero_ok=True)
    _positive("seed", c.seed, integer=True, zero_ok=True)
    _positive("init.jacobian_max_width", c.init.jacobian_max_width, integer=True, zero_ok=True)
    widths = c.model.widths
    if widths is not None and (
        not widths or not all(isinstance(w, int) and not isinstance(w, bool) and w > 0 for w in widths)
    ):
        raise ConfigError(f"model.widths: got {widths!r}; allowed: a non-empty list of integers > 0, or null")
    if c.data.classes < 2:
        raise ConfigError(f"data.classes: got {c.data.classes}; allowed: an integer >= 2")
    if not 0 < c.data.test_fraction < 1:
        raise ConfigError(f"data.test_fraction: got {c.data.test_fraction}; allowed: a number in (0, 1)")
    for name in ("momentum", "beta1", "beta2"):
        if not 0 <= getattr(c.optim, name) < 1:
            raise ConfigError(f"optim.{name}: got {getattr(c.optim, name)}; allowed: a number in [0, 1)")
    if c.optim.clip_norm is not None:
        _positive("optim.clip_norm", c.optim.clip_norm)
    if c.model.norm == "batch" and min(c.train.batch_size, c.init.batch_size) < 2:
        raise ConfigError("model.norm: 'batch' needs train.batch_size and init.batch_size >= 2")
    _check_input_scale(c)
    try:  # the network's own checks (skip_scale, block_layers, ...), named under model.
        c.network_spec(input_dim=1, output_dim=1, seed=c.seed)
    except ValueError as err:
        raise ConfigError(f"model.{err}") from None


def first_layer_sw2(c: StudyConfig, input_dim: int) -> float:
    """sigma_w^2 of the first layer (input_dim -> width)."""
    return theory.sigma_w2(c.model.init, input_dim, c.model.width, c.model.init_scale)


def hidden_q_star(c: StudyConfig) -> float:
    """q* of the hidden (width x width) layers' length map."""
    m = c.model
    return theory.fixed_point(
        m.activation, theory.sigma_w2(m.init, m.width, m.width, m.init_scale), m.bias_std**2
    )


def _check_input_scale(c: StudyConfig) -> None:
    scale, m = c.data.input_scale, c.model
    if isinstance(scale, str):
        if scale not in INPUT_SCALES:
            raise ConfigError(f"data.input_scale: got {scale!r}; allowed: a number > 0, or 'q_star'")
        q = hidden_q_star(c)
        if not 0 < q < math.inf or m.norm != "none":
            why = f"q* = {q:g}" if m.norm == "none" else f"model.norm={m.norm} has no q*"
            sw2 = theory.sigma_w2(m.init, m.width, m.width, m.init_scale)
            raise ConfigError(
                "data.input_scale: 'q_star' needs a fixed point 0 < q* < inf of the hidden layers; "
                f"{why} for {m.activation} at sigma_w^2 = {sw2:g}, "
                f"sigma_b^2 = {m.bias_std**2:g}; give model.bias_std > 0, or a number"
            )
        if q <= m.bias_std**2:
            raise ConfigError(f"data.input_scale: 'q_star' needs q* > sigma_b^2; got q* = {q:g}")
    else:
        _positive("data.input_scale", scale)


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
        if not c.data.path:
            raise ConfigError("data.path: data=file needs your file: data.path=/path/to/data.csv (or .npz)")
        if not Path(c.data.path).expanduser().is_file():
            raise ConfigError(
                f"data.path: no file at {c.data.path!r}; allowed: an existing .npz or .csv file"
            )
        if Path(c.data.path).suffix not in (".npz", ".csv"):
            raise ConfigError(f"data.path: got {c.data.path!r}; allowed: a .npz or .csv file")
    if c.mode == "train" and data == "gaussian":
        raise ConfigError(
            "data.name: mode=train needs targets; allowed: teacher_student, spirals, blobs, digits, file"
        )


def parse_config(values: dict) -> StudyConfig:
    """Validate a resolved config dict (without the ``hydra`` key) and return it as objects."""
    config = build(StudyConfig, values, missing_hint=MISSING_HINTS)
    _check_ranges(config)
    _check_combination(config)
    _check_rows(config)
    return config


def metric_rows(c: StudyConfig) -> tuple[int, str]:
    """An upper estimate of the metric rows a run logs, and where they come from: summaries, per-layer
    profiles and gradient-check errors (at most ``tracking.profile_layers`` layers), and in train mode
    one row per logged step for the loss, the accuracy and each statistic of the picked layers."""
    profiled = min(c.model.depth, c.tracking.profile_layers)
    rows = SUMMARY_ROWS + profiled * (PROFILE_ROWS_PER_LAYER + 1) + 2
    parts = [f"profiles of {profiled:,} layers"]
    if c.mode == "train":
        logged = c.train.steps // c.train.log_every + 1
        per_step = 2 + len(STATS) * min(c.model.depth, c.tracking.max_layers)
        rows += logged * per_step
        parts.append(f"{logged:,} logged steps x {per_step} rows")
    return rows, " + ".join(parts)


def _check_rows(c: StudyConfig) -> None:
    rows, where = metric_rows(c)
    if rows > c.tracking.max_rows:
        raise ConfigError(
            f"tracking.max_rows: this run would log up to {rows:,} metric rows ({where}); allowed: at most "
            f"{c.tracking.max_rows:,}: log less often (train.log_every), fewer layers (tracking.max_layers), "
            f"or raise tracking.max_rows"
        )


def to_dict(config: StudyConfig) -> dict:
    return dataclasses.asdict(config)


def config_hash(config: StudyConfig) -> str:
    """The first 16 hex digits of the sha256 of everything that determines a run's numbers (all but
    ``tracking``, ``resume``, the ``study`` label and ``init.stack_mb``; keys added later only when set
    away from the value runs had before them): runs with the same hash hold the same numbers."""
    values = to_dict(config)
    for launch_only in NOT_HASHED:
        values.pop(launch_only)
    for group, name in NOT_HASHED_KEYS:
        values[group].pop(name)
    for group, name, before in HASHED_WHEN_SET:
        if values[group][name] == before:
            values[group].pop(name)
    text = json.dumps(values, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def defaults() -> dict:
    """Every key with its default, as the nested dict Hydra composes onto (the ConfigStore root)."""
    return to_dict(StudyConfig())


def key_table() -> str:
    """The README's and ``harness --help``'s table of every key: its default, allowed values, meaning."""
    rows = ["| key | default | allowed | meaning |", "|---|---|---|---|"]
    for name, default, allowed, doc in keys(StudyConfig):
        shown = "null" if default is None else str(default).lower() if isinstance(default, bool) else default
        rows.append(f"| `{name}` | `{shown}` | {allowed} | {doc} |")
    return "\n".join(rows)

"""Datasets as arrays: ``load_data(config, rng) -> Dataset``.

- ``gaussian``: x ~ N(0, I) of ``input_dim`` (init studies; no targets: the probe loss supplies dL/dy).
- ``teacher_student``: y = tanh(x A / sqrt(d)) B / sqrt(teacher_width) + noise * N(0, 1), a random
  one-hidden-layer tanh teacher; regression.
- ``spirals``: two interleaved spirals in 2-D (Lang & Witbrock), Gaussian jitter ``noise``; 2 classes.
- ``blobs``: ``classes`` Gaussian blobs with centres ~ N(0, I) * 3 in ``input_dim``, spread ``noise``.
- ``digits``: scikit-learn's bundled 8x8 digits (1,797 images, 10 classes, pixels scaled to [0, 1]);
  needs scikit-learn (``pip install -e ".[digits]"``).
- ``file``: a user's ``.npz`` (arrays ``x``, ``y``; optional ``x_test``, ``y_test``) or ``.csv`` (numbers,
  last column the target; integer targets make a classification set).

Every draw comes from the Generator passed in: same seed, same data.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from harness.config import ConfigError, DataConfig


@dataclass
class Dataset:
    x_train: np.ndarray
    y_train: np.ndarray | None
    x_test: np.ndarray
    y_test: np.ndarray | None
    classes: int = 0  # 0 for regression / no targets

    @property
    def input_dim(self) -> int:
        return self.x_train.shape[1]

    def output_dim(self, default: int) -> int:
        """Classes for classification, target width for regression, else ``default``."""
        if self.classes:
            return self.classes
        if self.y_train is not None:
            return self.y_train.shape[1]
        return default


def _split(x: np.ndarray, y: np.ndarray, fraction: float, rng: np.random.Generator):
    order = rng.permutation(len(x))
    n_test = max(1, int(round(fraction * len(x))))
    test, train = order[:n_test], order[n_test:]
    return x[train], y[train], x[test], y[test]


def _spirals(n: int, noise: float, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    labels = rng.integers(0, 2, size=n)
    t = np.sqrt(rng.uniform(0, 1, size=n)) * 3 * np.pi  # t density ~ t, like arc length: even along the arm
    sign = np.where(labels == 0, 1.0, -1.0)[:, None]
    x = sign * np.stack([t * np.cos(t), t * np.sin(t)], axis=1) / (3 * np.pi)
    x += noise * rng.standard_normal(x.shape)
    return x, labels


def _is_header(line: str) -> bool:
    """A first row with a cell that is not a number (column names): read as a header."""
    for cell in line.split(","):
        try:
            float(cell)
        except ValueError:
            return True
    return False


def _read_csv(path: Path) -> np.ndarray:
    """A CSV of numbers as a 2-D array (a first row of names is a header), or ConfigError naming the
    file, the row and the column (1-based, counting the header) of the first cell that is not a number."""
    with path.open() as f:
        header = int(_is_header(f.readline()))
    try:
        return np.loadtxt(path, delimiter=",", ndmin=2, skiprows=header)
    except ValueError as err:
        text = str(err)
        cell = re.search(r"string (.*) to \w+ at row (\d+), column (\d+)", text)
        if cell:
            where, what = f"row {int(cell[2]) + 1 + header}, column {cell[3]}", f"{cell[1]} is not a number"
        else:
            width = re.search(r"from (\d+) to (\d+) at row (\d+)", text)
            if not width:
                raise ConfigError(f"data.path: {path}: {text.splitlines()[0]}") from None
            where, what = (
                f"row {int(width[3]) + header}",
                f"{width[2]} columns where the rows above have {width[1]}",
            )
        raise ConfigError(
            f"data.path: {path} {where}: {what}; allowed: numbers, the same count on every row"
        ) from None


def _check_finite(path: Path, name: str, a: np.ndarray, csv: bool) -> None:
    if not np.issubdtype(a.dtype, np.number) or np.issubdtype(a.dtype, np.complexfloating):
        raise ConfigError(f"data.path: {path}: array {name!r} holds {a.dtype}; allowed: real numbers")
    bad = np.flatnonzero(~np.isfinite(a.reshape(len(a), -1) if a.ndim else a.reshape(1)))
    if bad.size:
        if csv:
            row, col = divmod(int(bad[0]), a.shape[1])
            where = f"row {row + 1}, column {col + 1}"
        else:
            where = f"array {name!r} at {tuple(int(i) for i in np.unravel_index(int(bad[0]), a.shape))}"
        value = a.reshape(-1)[bad[0]]
        raise ConfigError(
            f"data.path: {path} {where}: {value} ({bad.size} such cells); allowed: finite numbers"
        )


def _read_file(path: Path) -> dict[str, np.ndarray]:
    """The arrays of a data file, checked: numbers only, all finite."""
    if not path.is_file():
        raise ConfigError(f"data.path: no file at {path}; give a .npz or .csv file")
    if path.suffix == ".csv":
        table = _read_csv(path)
        if table.shape[1] < 2:
            raise ConfigError(
                f"data.path: {path} has {table.shape[1]} column; needs inputs and a target (last)"
            )
        _check_finite(path, "csv", table, csv=True)
        _enough(path, len(table), "data row(s)")
        return {"table": table}
    if path.suffix != ".npz":
        raise ConfigError(f"data.path: {path.suffix or 'no suffix'} is not supported; allowed: .npz, .csv")
    with np.load(path) as f:
        missing = {"x", "y"} - set(f.files)
        if missing:
            raise ConfigError(f"data.path: {path} lacks arrays {sorted(missing)}; needs x and y")
        arrays = {k: f[k] for k in f.files}
    for name, a in arrays.items():
        if name in ("x", "y", "x_test", "y_test"):
            _check_finite(path, name, a, csv=False)
    tested = "x_test" in arrays and "y_test" in arrays
    for x, y in [("x", "y"), ("x_test", "y_test")] if tested else [("x", "y")]:
        if arrays[x].ndim == 0 or arrays[y].ndim == 0 or len(arrays[x]) != len(arrays[y]):
            shapes = f"{arrays[x].shape} and {arrays[y].shape}"
            raise ConfigError(
                f"data.path: {path}: arrays {x!r} and {y!r} have shapes {shapes}; needs one row each"
            )
    _enough(path, len(arrays["x"]), "samples in 'x'", need=1 if tested else 2)
    return arrays


def _enough(path: Path, n: int, what: str, need: int = 2) -> None:
    """A test split and a training set: without x_test, at least two samples (one of them to test)."""
    if n < need:
        why = "" if need == 1 else " (one to test on, the rest to train on)"
        raise ConfigError(f"data.path: {path} has {n} {what}; needs at least {need}{why}")


def check_data_file(path: str | None) -> None:
    """Read and check a ``data=file`` file (``ConfigError`` naming the file, row and column)."""
    _read_file(Path(str(path)).expanduser())


def _from_file(cfg: DataConfig, rng: np.random.Generator) -> Dataset:
    path = Path(str(cfg.path)).expanduser()
    arrays = _read_file(path)
    if "table" in arrays:
        table = arrays["table"]
        x, y = table[:, :-1], table[:, -1]
        if np.all(y == np.round(y)):
            y = y.astype(np.int64)
        split = (False, None, None)
    else:
        x, y = arrays["x"], arrays["y"]
        split = ("x_test" in arrays and "y_test" in arrays, arrays.get("x_test"), arrays.get("y_test"))
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    if split[0]:
        xtr, ytr, xte, yte = x, y, np.asarray(split[1], np.float64).reshape(len(split[1]), -1), split[2]
    else:
        xtr, ytr, xte, yte = _split(x, y, cfg.test_fraction, rng)
    if np.issubdtype(np.asarray(y).dtype, np.integer):
        classes = int(max(ytr.max(), yte.max())) + 1
        return Dataset(xtr, ytr.astype(np.int64), xte, np.asarray(yte, np.int64), classes)
    as_2d = lambda a: np.asarray(a, np.float64).reshape(len(a), -1)  # noqa: E731
    return Dataset(xtr, as_2d(ytr), xte, as_2d(yte))


def load_data(cfg: DataConfig, rng: np.random.Generator) -> Dataset:
    """The dataset ``cfg`` names, drawn from ``rng``."""
    n, n_test, d = cfg.n_train, cfg.n_test, cfg.input_dim
    if cfg.name == "gaussian":
        return Dataset(rng.standard_normal((n, d)), None, rng.standard_normal((n_test, d)), None)
    if cfg.name == "teacher_student":
        a = rng.standard_normal((d, cfg.teacher_width)) / np.sqrt(d)
        b = rng.standard_normal((cfg.teacher_width, cfg.output_dim)) / np.sqrt(cfg.teacher_width)
        x = rng.standard_normal((n + n_test, d))
        y = np.tanh(x @ a) @ b + cfg.noise * rng.standard_normal((n + n_test, cfg.output_dim))
        return Dataset(x[:n], y[:n], x[n:], y[n:])
    if cfg.name == "spirals":
        x, y = _spirals(n + n_test, cfg.noise, rng)
        return Dataset(x[:n], y[:n], x[n:], y[n:], classes=2)
    if cfg.name == "blobs":
        centres = 3.0 * rng.standard_normal((cfg.classes, d))
        y = rng.integers(0, cfg.classes, size=n + n_test)
        x = centres[y] + cfg.noise * rng.standard_normal((n + n_test, d))
        return Dataset(x[:n], y[:n], x[n:], y[n:], classes=cfg.classes)
    if cfg.name == "digits":
        try:
            from sklearn.datasets import load_digits
        except ImportError:
            raise ConfigError(
                'data.name: digits needs scikit-learn; install it with pip install -e ".[digits]"'
            ) from None
        bunch = load_digits()
        xtr, ytr, xte, yte = _split(bunch.data / 16.0, bunch.target.astype(np.int64), cfg.test_fraction, rng)
        return Dataset(xtr, ytr, xte, yte, classes=10)
    return _from_file(cfg, rng)

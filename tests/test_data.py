"""Datasets: shapes, labels, determinism, and users' own files."""

import numpy as np
import pytest

from harness.config import ConfigError, DataConfig
from harness.data import check_data_file, load_data


def _load(seed=0, **kw):
    return load_data(DataConfig(**kw), np.random.default_rng(seed))


@pytest.mark.parametrize("name", ["gaussian", "teacher_student", "spirals", "blobs"])
def test_synthetic_shapes_and_determinism(name):
    a = _load(name=name, n_train=100, n_test=40, input_dim=5, output_dim=2, classes=3)
    b = _load(name=name, n_train=100, n_test=40, input_dim=5, output_dim=2, classes=3)
    assert a.x_train.shape[0] == 100 and a.x_test.shape[0] == 40
    assert np.array_equal(a.x_train, b.x_train)
    assert not np.array_equal(a.x_train, _load(seed=1, name=name, n_train=100, n_test=40).x_train)
    if name == "gaussian":
        assert a.y_train is None and a.output_dim(7) == 7
    elif name == "teacher_student":
        assert a.y_train.shape == (100, 2) and a.classes == 0
    else:
        assert set(np.unique(a.y_train)) <= set(range(a.classes)) and a.y_train.dtype == np.int64


def test_spirals_are_two_balanced_classes():
    d = _load(name="spirals", n_train=4000, n_test=10, noise=0.0)
    share = d.y_train.mean()
    assert abs(share - 0.5) < 5 * np.sqrt(0.25 / 4000)  # binomial standard error
    # without noise a class-0 point is r (cos 3 pi r, sin 3 pi r) with r = |x| in [0, 1] (1.5 turns), and
    # a class-1 point is that arm reflected through the origin. r comes out of a few roundings (< 8 ulps
    # of 1), which the angle 3 pi r multiplies by 3 pi and the radius passes on: (3 pi + 1) 8 eps.
    r = np.linalg.norm(d.x_train, axis=1)
    assert r.max() <= 1.0 + 8 * np.finfo(float).eps
    arm = r[:, None] * np.stack([np.cos(3 * np.pi * r), np.sin(3 * np.pi * r)], axis=1)
    reflected = np.where(d.y_train == 0, 1.0, -1.0)[:, None] * arm
    np.testing.assert_allclose(d.x_train, reflected, rtol=0, atol=(3 * np.pi + 1) * 8 * np.finfo(float).eps)


def test_npz_and_csv_files(tmp_path):
    rng = np.random.default_rng(0)
    x, y = rng.standard_normal((50, 3)), rng.integers(0, 4, 50)
    np.savez(tmp_path / "d.npz", x=x, y=y)
    d = _load(name="file", path=str(tmp_path / "d.npz"), test_fraction=0.2)
    assert d.classes == 4 and len(d.x_train) == 40 and len(d.x_test) == 10
    np.savetxt(tmp_path / "r.csv", np.column_stack([x, rng.standard_normal(50)]), delimiter=",")
    r = _load(name="file", path=str(tmp_path / "r.csv"))
    assert r.classes == 0 and r.y_train.shape[1] == 1 and r.input_dim == 3


def test_npz_without_y_names_what_is_missing(tmp_path):
    np.savez(tmp_path / "d.npz", x=np.zeros((4, 2)))
    with pytest.raises(ConfigError, match=r"data.path: .* lacks arrays \['y'\]"):
        _load(name="file", path=str(tmp_path / "d.npz"))


def test_digits_when_scikit_learn_is_installed():
    pytest.importorskip("sklearn")
    d = _load(name="digits", test_fraction=0.25)
    assert d.classes == 10 and d.input_dim == 64 and len(d.x_train) + len(d.x_test) == 1797
    assert d.x_train.min() >= 0 and d.x_train.max() <= 1


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("1,2,0\n3,x,1\n", "row 2, column 2: 'x' is not a number"),
        ("1,2,0\n3,,1\n", "row 2, column 2: '' is not a number"),
        ("1,2,0\n3,4\n", "row 2: 2 columns where the rows above have 3"),
        ("1,2,0\n3,4,1\n5,nan,0\n", "row 3, column 2: nan (1 such cells); allowed: finite numbers"),
        ("1,inf,0\n3,4,-inf\n", "row 1, column 2: inf (2 such cells); allowed: finite numbers"),
    ],
)
def test_a_bad_csv_names_the_file_the_row_and_the_column(tmp_path, text, message):
    path = tmp_path / "bad.csv"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        check_data_file(str(path))
    assert str(err.value).startswith(f"data.path: {path} {message}")
    assert "\n" not in str(err.value)
    with pytest.raises(ConfigError, match="row"):  # the job's own loading says the same
        _load(name="file", path=str(path))


def test_a_bad_npz_names_the_array_and_the_entry(tmp_path):
    x = np.zeros((4, 2))
    x[2, 1] = np.nan
    np.savez(tmp_path / "d.npz", x=x, y=np.zeros(4))
    with pytest.raises(ConfigError, match=r"array 'x' at \(2, 1\): nan"):
        check_data_file(str(tmp_path / "d.npz"))
    np.savez(tmp_path / "t.npz", x=np.array([["a", "b"]] * 4), y=np.zeros(4))
    with pytest.raises(ConfigError, match="array 'x' holds <U1; allowed: real numbers"):
        check_data_file(str(tmp_path / "t.npz"))

"""Initialisers: the standard deviation each scheme promises, times the init scale.

Tolerances: the sample standard deviation of N i.i.d. entries has relative standard error
sqrt((kurtosis - 1) / (4 N)) (kurtosis 3 for normal, 9/5 for uniform); we allow 5 standard errors.
"""

import math

import numpy as np
import pytest

from harness.nn import INIT_SCHEMES, canonical_init, init_bias, init_std, init_weight

FAN_IN, FAN_OUT = 300, 200
KURTOSIS = {"normal": 3.0, "uniform": 9 / 5}


@pytest.mark.parametrize("scheme", [s for s in INIT_SCHEMES if s != "orthogonal"])
@pytest.mark.parametrize("scale", [0.5, 1.0, 2.0])
def test_std_matches_scheme(scheme, scale):
    w = init_weight(scheme, FAN_IN, FAN_OUT, np.random.default_rng(0), scale)
    expected = {
        "he_normal": math.sqrt(2 / FAN_IN),
        "he_uniform": math.sqrt(2 / FAN_IN),
        "xavier_normal": math.sqrt(2 / (FAN_IN + FAN_OUT)),
        "xavier_uniform": math.sqrt(2 / (FAN_IN + FAN_OUT)),
        "lecun_normal": math.sqrt(1 / FAN_IN),
        "standard": 1 / math.sqrt(3 * FAN_IN),
    }[scheme] * scale
    assert init_std(scheme, FAN_IN, FAN_OUT, scale) == pytest.approx(expected)
    kurt = KURTOSIS["normal" if scheme.endswith("normal") else "uniform"]
    rel_se = math.sqrt((kurt - 1) / (4 * w.size))
    assert abs(w.std() / expected - 1) < 5 * rel_se
    assert abs(w.mean()) < 5 * expected / math.sqrt(w.size)
    if scheme == "standard":  # Glorot & Bengio's U[-1/sqrt(n), 1/sqrt(n)], scaled
        assert np.abs(w).max() <= scale / math.sqrt(FAN_IN)


@pytest.mark.parametrize(("fan_in", "fan_out"), [(50, 30), (30, 50), (40, 40)])
def test_orthogonal(fan_in, fan_out):
    w = init_weight("orthogonal", fan_in, fan_out, np.random.default_rng(1), scale=1.5)
    gram = w.T @ w if fan_in >= fan_out else w @ w.T
    np.testing.assert_allclose(gram, 1.5**2 * np.eye(min(fan_in, fan_out)), atol=1e-12)


def test_same_seed_same_numbers_and_dtype():
    a = init_weight("he_normal", 8, 8, np.random.default_rng(7), dtype=np.float32)
    b = init_weight("he_normal", 8, 8, np.random.default_rng(7), dtype=np.float32)
    assert a.dtype == np.float32 and np.array_equal(a, b)


@pytest.mark.parametrize("scheme", INIT_SCHEMES)
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_drawn_into_out_same_numbers(scheme, dtype):
    """A network draws its weights straight into its parameter buffer (``out``): the same numbers, and
    the generator left in the same state, as a weight drawn on its own."""
    rng_a, rng_b = np.random.default_rng(3), np.random.default_rng(3)
    alone = init_weight(scheme, 7, 5, rng_a, 1.3, dtype)
    buffer = np.full(40, np.nan, dtype)
    into = init_weight(scheme, 7, 5, rng_b, 1.3, dtype, out=buffer[2:37].reshape(7, 5))
    assert into.base is buffer and np.array_equal(into, alone) and into.dtype == dtype
    assert np.isnan(buffer[:2]).all() and np.isnan(buffer[37:]).all()  # nothing written outside
    assert rng_a.random() == rng_b.random()


def test_bias():
    rng = np.random.default_rng(0)
    assert not init_bias(10, rng).any()
    b = init_bias(40_000, rng, std=0.5)
    assert abs(b.std() / 0.5 - 1) < 5 * math.sqrt(2 / (4 * b.size))


def test_aliases_and_unknown():
    assert canonical_init("kaiming") == "he_normal" and canonical_init("glorot_uniform") == ("xavier_uniform")
    with pytest.raises(ValueError, match="init: unknown value 'bogus'; allowed: he_normal"):
        canonical_init("bogus")

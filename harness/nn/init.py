"""Weight and bias initialisers.

Every scheme draws a (fan_in, fan_out) matrix whose entries have standard deviation ``scale * std0``,
where ``scale`` is the init scale g that studies sweep and std0 is the scheme's own:

=================  ==========================  =============================================
scheme             distribution                std0
=================  ==========================  =============================================
he_normal          N(0, std^2)                 sqrt(2 / fan_in)
he_uniform         U[-a, a], a = sqrt(3) std   sqrt(2 / fan_in)
xavier_normal      N(0, std^2)                 sqrt(2 / (fan_in + fan_out))
xavier_uniform     U[-a, a], a = sqrt(3) std   sqrt(2 / (fan_in + fan_out))
lecun_normal       N(0, std^2)                 sqrt(1 / fan_in)
orthogonal         g * Q, Q with orthonormal   1 / sqrt(max(fan_in, fan_out))
                   rows or columns (Haar)
standard           U[-1/sqrt(fan_in), ...]     1 / sqrt(3 fan_in)   (Glorot & Bengio's "standard")
=================  ==========================  =============================================

Aliases: he/kaiming/kaiming_normal -> he_normal, kaiming_uniform -> he_uniform,
xavier/glorot/glorot_normal -> xavier_normal, glorot_uniform -> xavier_uniform.
"""

from __future__ import annotations

import math

import numpy as np

INIT_SCHEMES = (
    "he_normal",
    "he_uniform",
    "xavier_normal",
    "xavier_uniform",
    "lecun_normal",
    "orthogonal",
    "standard",
)
INIT_ALIASES = {
    "he": "he_normal",
    "kaiming": "he_normal",
    "kaiming_normal": "he_normal",
    "kaiming_uniform": "he_uniform",
    "xavier": "xavier_normal",
    "glorot": "xavier_normal",
    "glorot_normal": "xavier_normal",
    "glorot_uniform": "xavier_uniform",
}


def canonical_init(name: str) -> str:
    """The scheme's canonical name; ValueError naming the allowed values otherwise."""
    if name in INIT_SCHEMES:
        return name
    if isinstance(name, str) and name in INIT_ALIASES:
        return INIT_ALIASES[name]
    allowed = ", ".join(INIT_SCHEMES + tuple(INIT_ALIASES))
    raise ValueError(f"init: unknown value {name!r}; allowed: {allowed}")


def init_std(scheme: str, fan_in: int, fan_out: int, scale: float = 1.0) -> float:
    """Standard deviation of one weight entry under ``scheme`` with init scale ``scale``."""
    scheme = canonical_init(scheme)
    if scheme.startswith("he_"):
        std0 = math.sqrt(2.0 / fan_in)
    elif scheme.startswith("xavier_"):
        std0 = math.sqrt(2.0 / (fan_in + fan_out))
    elif scheme == "lecun_normal":
        std0 = math.sqrt(1.0 / fan_in)
    elif scheme == "orthogonal":
        std0 = 1.0 / math.sqrt(max(fan_in, fan_out))
    else:  # standard
        std0 = 1.0 / math.sqrt(3.0 * fan_in)
    return scale * std0


def _orthogonal(fan_in: int, fan_out: int, rng: np.random.Generator) -> np.ndarray:
    """Haar-distributed matrix with orthonormal columns (fan_in >= fan_out) or rows."""
    a = rng.standard_normal((max(fan_in, fan_out), min(fan_in, fan_out)))
    q, r = np.linalg.qr(a)
    q *= np.sign(np.diag(r))  # sign fix makes the distribution Haar (Mezzadri 2007)
    return q if fan_in >= fan_out else np.ascontiguousarray(q.T)


def init_weight(
    scheme: str,
    fan_in: int,
    fan_out: int,
    rng: np.random.Generator,
    scale: float = 1.0,
    dtype: np.dtype | type = np.float64,
    out: np.ndarray | None = None,
) -> np.ndarray:
    """A (fan_in, fan_out) weight matrix drawn from ``scheme`` and multiplied by ``scale``. ``out``: a
    C-contiguous (fan_in, fan_out) array of ``dtype`` to draw into (a network's parameter buffer); the
    numbers are the same either way (float64 normals are drawn straight into it)."""
    scheme = canonical_init(scheme)
    std = init_std(scheme, fan_in, fan_out, scale)
    if scheme.endswith("_normal") and out is not None and out.dtype == np.float64:
        rng.standard_normal(out=out)
        out *= std
        return out
    if scheme == "orthogonal":
        w = _orthogonal(fan_in, fan_out, rng)
        w *= scale
    elif scheme.endswith("_normal"):
        w = rng.standard_normal((fan_in, fan_out))
        w *= std
    else:  # uniform schemes: U[-a, a] has std a / sqrt(3)
        a = math.sqrt(3.0) * std
        w = rng.uniform(-a, a, size=(fan_in, fan_out))
    if out is None:
        return w.astype(dtype, copy=False)
    out[...] = w
    return out


def init_bias(
    fan_out: int,
    rng: np.random.Generator,
    std: float = 0.0,
    dtype: np.dtype | type = np.float64,
) -> np.ndarray:
    """Zeros, or N(0, std^2) entries when ``std > 0``."""
    if std == 0.0:
        return np.zeros(fan_out, dtype=dtype)
    return (std * rng.standard_normal(fan_out)).astype(dtype, copy=False)

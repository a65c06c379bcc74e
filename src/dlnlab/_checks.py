"""Input validation shared by every public constructor: one clear error naming the field."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError, DataError


def as_array(name: str, value, *, ndim: int | Sequence[int] | None = None, dtype=np.float64) -> np.ndarray:
    """Convert ``value`` to a finite NumPy array, checking its number of dimensions."""
    try:
        complex_ = np.iscomplexobj(value)
        arr = None if complex_ else np.asarray(value, dtype=dtype)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"{name}: expected a numeric array, got {type(value).__name__}") from exc
    if complex_:
        raise DataError(f"{name}: expected a real array, got complex values")
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise DataError(f"{name}: expected a {want} array, got shape {arr.shape}")
    if arr.size and not np.all(np.isfinite(arr)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(arr))[0])
        raise DataError(f"{name}: contains NaN or infinite values (first at index {where}); "
                        "expected finite numbers")
    return arr


def check_shape(name: str, arr, expected: tuple) -> None:
    """Raise unless ``arr.shape`` matches ``expected`` (``None`` entries match anything)."""
    shape = tuple(np.shape(arr))
    if len(shape) != len(expected) or any(e is not None and s != e for s, e in zip(shape, expected)):
        want = "(" + ", ".join("any" if e is None else str(e) for e in expected) + ")"
        raise DataError(f"{name}: expected shape {want}, got {shape}")


def as_float(name: str, value, *, low: float | None = None, high: float | None = None,
             low_open: bool = False, high_open: bool = False) -> float:
    """A finite real number within the given bounds."""
    if isinstance(value, bool):
        raise ConfigError(f"{name}: expected a number, got a bool")
    try:
        x = float(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{name}: expected a number, got {value!r}") from exc
    if not math.isfinite(x):
        raise ConfigError(f"{name}: expected a finite number, got {x}")
    if low is not None and (x < low or (low_open and x == low)):
        raise ConfigError(f"{name}: expected a value {'>' if low_open else '>='} {low}, got {x}")
    if high is not None and (x > high or (high_open and x == high)):
        raise ConfigError(f"{name}: expected a value {'<' if high_open else '<='} {high}, got {x}")
    return x


def as_int(name: str, value, *, low: int | None = None) -> int:
    """An integer (not a bool, not a float with a fractional part) at least ``low``."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ConfigError(f"{name}: expected an integer, got {value!r}")
    if low is not None and value < low:
        raise ConfigError(f"{name}: expected an integer >= {low}, got {value}")
    return int(value)


def as_key(name: str, key):
    """A JAX PRNG key from an integer seed (a 64-bit integer) or a key array (typed or raw uint32)."""
    import jax

    if isinstance(key, (int, np.integer)) and not isinstance(key, bool):
        if not -(2**63) <= int(key) < 2**63:
            raise ConfigError(f"{name}: expected a seed in [-2**63, 2**63), got {int(key)}")
        return jax.random.key(int(key))
    dtype = getattr(key, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        if np.shape(key) != ():
            raise ConfigError(f"{name}: expected a single PRNG key, got a key array of shape {np.shape(key)}")
        return key
    if dtype == np.uint32 and np.shape(key) == (2,):  # a legacy jax.random.PRNGKey
        return key
    raise ConfigError(f"{name}: expected an integer seed or a jax.random.key, got {key!r}")


def one_of(name: str, value, choices: Sequence[str]) -> str:
    """A string among ``choices``."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value

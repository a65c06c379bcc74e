"""Input validation shared by every public constructor: one clear error naming the field."""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .errors import ConfigError, DataError


def as_array(name: str, value, *, ndim: int | Sequence[int] | None = None, dtype=np.float64) -> np.ndarray:
    """Convert ``value`` to a finite NumPy array, checking its number of dimensions."""
    try:
        arr = np.asarray(value, dtype=dtype)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected a numeric array, got {type(value).__name__}") from exc
    if ndim is not None:
        allowed = (ndim,) if isinstance(ndim, int) else tuple(ndim)
        if arr.ndim not in allowed:
            want = " or ".join(f"{d}-D" for d in allowed)
            raise DataError(f"{name}: expected a {want} array, got shape {arr.shape}")
    if arr.size and not np.all(np.isfinite(arr)):
        raise DataError(f"{name}: contains NaN or infinite values")
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


def one_of(name: str, value, choices: Sequence[str]) -> str:
    """A string among ``choices``."""
    if value not in choices:
        raise ConfigError(f"{name}: expected one of {', '.join(map(repr, choices))}, got {value!r}")
    return value

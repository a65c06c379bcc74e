"""Argument checks of the diagnostics: one clear error naming the argument, jit-safe.

Shapes and dtypes are static, so they are checked always; values (NaN, inf) only when the array is
concrete. Inside jit/vmap (the training summaries) the checks cost nothing at run time.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float
from ..errors import ConfigError, DataError


def _is_run(x) -> bool:
    return all(hasattr(x, a) for a in ("times", "history", "params"))


def _describe(x) -> str:
    if isinstance(x, (jax.Array, np.ndarray)):
        return f"an array of shape {tuple(np.shape(x))}"
    text = repr(x)
    return f"{type(x).__name__} {text[:40] + '...' if len(text) > 40 else text}"


def array(name: str, x, *, ndim: Sequence[int], want: str):
    """``x`` as a real floating-point array with ``ndim`` in the allowed set, no empty axis and, when
    concrete, finite entries. ``want`` says what was expected (for the message)."""
    if _is_run(x):
        raise DataError(f"{name}: expected {want}, got a training run (pass run.params or a matrix)")
    if isinstance(x, jax.core.Tracer):
        if x.ndim not in ndim or not jnp.issubdtype(x.dtype, jnp.floating):
            raise DataError(f"{name}: expected {want}, got a traced {x.dtype} array of shape {x.shape}")
        return x
    if isinstance(x, (str, bytes, dict)) or x is None:
        raise DataError(f"{name}: expected {want}, got {_describe(x)}")
    try:
        a = np.asarray(x)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise DataError(f"{name}: expected {want}, got {type(x).__name__} that is not an array ({exc})") from None
    if a.dtype.kind not in "iuf":
        raise DataError(f"{name}: expected {want} of real numbers, got dtype {a.dtype}")
    if a.ndim not in ndim:
        raise DataError(f"{name}: expected {want}, got shape {a.shape}")
    if 0 in a.shape:
        raise DataError(f"{name}: expected {want} with no empty axis, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        where = tuple(int(i) for i in np.argwhere(~np.isfinite(a))[0])
        raise DataError(f"{name}: contains NaN or infinite values (first at index {where}); expected finite numbers")
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jnp.floating):
        return x  # keep the caller's precision and device
    return a if a.dtype.kind == "f" else a.astype(float)  # NumPy in, NumPy where the function allows it


def layers(params, *, name: str = "params", batch: bool = False) -> tuple:
    """``params`` as a tuple of chained weight matrices ``W_i.shape == (widths[i], widths[i-1])``.

    ``batch`` allows leading batch axes (shared by every layer, as ``@`` broadcasts them)."""
    if _is_run(params):
        raise DataError(f"{name}: expected a sequence of weight matrices, got a training run (use run.params)")
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence) or len(params) == 0:
        raise DataError(f"{name}: expected a non-empty sequence of weight matrices, got {_describe(params)}")
    ndim = tuple(range(2, 8)) if batch else (2,)
    out = tuple(array(f"{name}[{i}]", W, ndim=ndim, want="a weight matrix (2-D)") for i, W in enumerate(params))
    for i in range(1, len(out)):
        if out[i].shape[:-2] != out[0].shape[:-2]:
            raise DataError(f"{name}[{i}]: expected the batch axes {tuple(out[0].shape[:-2])} of {name}[0], "
                            f"got shape {tuple(out[i].shape)}")
        if out[i].shape[-1] != out[i - 1].shape[-2]:
            raise DataError(f"{name}[{i}]: expected {out[i - 1].shape[-2]} columns (the rows of {name}[{i - 1}]), "
                            f"got shape {tuple(out[i].shape)}")
    return out


def number(name: str, value, **bounds) -> float:
    """A finite real number within ``bounds`` (see ``as_float``); text is refused, not parsed, and a traced
    value passes unchecked."""
    if isinstance(value, jax.core.Tracer):
        return value
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"{name}: expected a number, got {value!r}")
    return as_float(name, value, **bounds)


def tolerance(name: str, value) -> float:
    """A finite tolerance >= 0."""
    return number(name, value, low=0.0)

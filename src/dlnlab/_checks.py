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


# -- dtypes ---------------------------------------------------------------------------------------------------
def as_dtype(name: str, dtype):
    """A real floating dtype that JAX can hold as configured (``None``: JAX's default float).

    One validator for every constructor that takes ``dtype=`` (nets, problems, models): a 64-bit dtype while JAX's
    64-bit mode is off would be silently truncated to 32 bits by JAX, so it is refused instead.
    """
    import jax.numpy as jnp

    default = jnp.zeros(()).dtype
    if dtype is None:
        return default
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ConfigError(f"{name}: expected a floating dtype such as jnp.float32 or 'float64', "
                          f"got {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ConfigError(f"{name}: expected a floating dtype such as jnp.float32 or 'float64', got {dt}")
    if dt.itemsize > default.itemsize:
        raise ConfigError(f"{name}: {dt} needs JAX's 64-bit mode, which is off (enable it with "
                          "jax.config.update('jax_enable_x64', True)); expected float32 or less")
    return dt


def fits_dtype(name: str, arr, dtype) -> None:
    """Values representable in ``dtype`` (no overflow to inf when stored in float32 or float16)."""
    import jax.numpy as jnp

    big = np.abs(np.asarray(arr, dtype=np.float64)).max(initial=0.0)
    if big > float(jnp.finfo(dtype).max):
        raise DataError(f"{name}: entries up to {big:.3g} overflow {jnp.dtype(dtype).name} (largest "
                        f"{float(jnp.finfo(dtype).max):.3g}); expected rescaled data or a wider dtype")


def need_columns(name: str, arr: np.ndarray) -> None:
    """A 2-D array with at least one column (feature)."""
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise DataError(f"{name}: expected at least one column (feature), got shape {arr.shape}")


# -- parameters -----------------------------------------------------------------------------------------------
def check_params_tree(params, *, name: str = "params"):
    """Parameters as any pytree: at least one leaf, every leaf a real floating-point array, concrete leaves finite.

    Errors name the leaf (``params[1]``, ``params['w']``) and its dtype or first bad index. Tracers (inside jit,
    vmap or grad) pass with only their (static) dtype checked, so compiled code pays nothing. Returns ``params``
    with array-likes converted to JAX arrays.
    """
    import jax
    import jax.numpy as jnp

    try:
        leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
    except Exception as exc:  # noqa: BLE001 - an object jax cannot flatten
        raise DataError(f"{name}: expected a pytree of arrays ({exc})") from None
    if not leaves:
        raise DataError(f"{name}: expected at least one parameter array, got an empty pytree")
    out = []
    for path, leaf in leaves:
        where = name + jax.tree_util.keystr(path)
        if isinstance(leaf, jax.core.Tracer):
            if not jnp.issubdtype(leaf.dtype, jnp.floating):
                raise DataError(f"{where}: expected real floating-point weights, got dtype {leaf.dtype}")
            out.append(leaf)
            continue
        try:
            a = np.asarray(leaf)
        except Exception as exc:  # noqa: BLE001 - not convertible to an array
            raise DataError(f"{where}: expected a numeric array, got {type(leaf).__name__}") from exc
        if a.dtype.kind != "f":
            raise DataError(f"{where}: expected real floating-point weights, got dtype {a.dtype}")
        if not np.all(np.isfinite(a)):
            bad = tuple(int(j) for j in np.argwhere(~np.isfinite(a))[0]) if a.ndim else ()
            raise DataError(f"{where}: contains NaN or infinite values (first at index {bad}); "
                            "expected finite weights")
        out.append(leaf if isinstance(leaf, jax.Array) else jnp.asarray(leaf))
    return jax.tree_util.tree_unflatten(treedef, out)


def check_matrix_chain(params, *, name: str = "params", shapes: Sequence[tuple[int, int]] | None = None,
                       d_in: int | None = None, d_out: int | None = None) -> tuple:
    """A DLN weight tuple ``(W_1, ..., W_L)``: a non-empty sequence of matrices that chain
    (``W_i.shape[1] == W_{i-1}.shape[0]``), of the given ``shapes`` or end-to-end ``(d_out, d_in)``, each a finite
    real floating array (:func:`check_params_tree`). Shapes only are read from tracers. Returns a tuple."""
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence) or len(params) == 0:
        got = type(params).__name__ if not isinstance(params, Sequence) else f"length {len(params)}"
        raise DataError(f"{name}: expected a non-empty sequence of weight matrices, got {got}")
    got = [tuple(np.shape(W)) for W in params]
    if shapes is not None:
        if len(got) != len(shapes):
            raise DataError(f"{name}: expected {len(shapes)} weight matrices, got {len(got)}")
        for i, (s, e) in enumerate(zip(got, shapes)):
            if s != tuple(e):
                raise DataError(f"{name}[{i}]: expected shape {tuple(e)}, got {s}")
    for i, s in enumerate(got):
        if len(s) != 2:
            raise DataError(f"{name}[{i}]: expected a 2-D weight matrix, got shape {s}")
        if i and s[1] != got[i - 1][0]:
            raise DataError(f"{name}[{i}]: expected {got[i - 1][0]} columns (the rows of {name}[{i - 1}]), "
                            f"got shape {s}")
    if d_in is not None and d_out is not None and (got[0][1], got[-1][0]) != (d_in, d_out):
        raise DataError(f"{name}: expected an end-to-end shape ({d_out}, {d_in}) (the problem's (d_out, d_in)), "
                        f"got ({got[-1][0]}, {got[0][1]})")
    return tuple(check_params_tree(tuple(params), name=name))


# -- observations ---------------------------------------------------------------------------------------------
def as_index_pairs(rows, cols, shape: tuple[int, int], *, names: tuple[str, str] = ("rows", "cols")
                   ) -> tuple[np.ndarray, np.ndarray]:
    """Observed entries ``(rows[k], cols[k])`` of a matrix of ``shape``: integers in range, no duplicates,
    at least one. Returned sorted row-major (the order does not change any mean over entries)."""
    r = np.asarray(rows)
    c = np.asarray(cols)
    both = ", ".join(names)
    for field, a in zip(names, (r, c)):
        if a.ndim != 1:
            raise DataError(f"{field}: expected a 1-D array of indices, got shape {a.shape}")
        if a.size and a.dtype.kind not in "iu":
            raise DataError(f"{field}: expected integer indices, got dtype {a.dtype}")
    if r.shape != c.shape:
        raise DataError(f"{both}: expected as many row as column indices, got {r.size} and {c.size}")
    if r.size == 0:
        raise DataError(f"{both}: expected at least one observed entry, got none")
    for field, a, n in zip(names, (r, c), shape):
        bad = (a < 0) | (a >= n)
        if bad.any():
            k = int(np.argmax(bad))
            raise DataError(f"{field}: index {int(a[k])} at position {k} is out of range; expected 0 <= index < {n}")
    flat = r.astype(np.int64) * shape[1] + c
    order = np.argsort(flat, kind="stable")
    dup = np.flatnonzero(np.diff(flat[order]) == 0)
    if dup.size:
        k = int(order[dup[0] + 1])
        raise DataError(f"{both}: entry ({int(r[k])}, {int(c[k])}) is observed twice (position {k}); "
                        "expected each entry at most once")
    return r[order].astype(np.int64), c[order].astype(np.int64)

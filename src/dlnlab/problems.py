"""Learning problems: regression (from samples or moments), classification, matrix completion; noise models.

Normalisation (fixed across dlnlab): the squared loss is ``E_x ||f(x) - y||^2``, a mean over samples with no 1/2.
For squared loss every quantity depends on the data only through the moments

    Sxx = E[x x^T] (d_in x d_in),   Syx = E[y x^T] (d_out x d_in),   Syy = E[||y||^2],

so ``loss(A) = tr(A Sxx A^T) - 2 tr(A Syx^T) + Syy`` and training cost does not grow with the number of samples.

Example:
    >>> import numpy as np, dlnlab as dl
    >>> X = np.random.default_rng(0).normal(size=(100, 3)); Y = X @ np.ones((3, 2))
    >>> prob = dl.Regression.from_data(X, Y)
    >>> prob.Sxx.shape, prob.Syx.shape
    ((3, 3), (2, 3))
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._checks import as_array, as_float
from .errors import ConfigError, DataError

__all__ = ["Regression", "Classification", "MatrixCompletion", "Dropout", "MultiplicativeNoise"]


class Regression(eqx.Module):
    """Squared-loss regression, stored as its second moments (and optionally its samples, for SGD).

    Build with :meth:`from_data` (rows of ``X`` and ``Y`` are samples) or :meth:`from_moments`. Both take
    ``dtype=`` (default: JAX's default float, float64 once dlnlab is imported): the moments are computed in
    float64 and then stored in ``dtype``, and the loss, gradients and training follow the stored precision, so
    ``dtype=jnp.float32`` gives a float32 problem without switching JAX's 64-bit mode off.

    Example:
        >>> import jax.numpy as jnp, numpy as np, dlnlab as dl
        >>> prob = dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 2.0, dtype=jnp.float32)
        >>> prob.Sxx.dtype, prob.Syy.dtype
        (dtype('float32'), dtype('float32'))
    """

    Sxx: jax.Array
    Syx: jax.Array
    Syy: jax.Array
    X: jax.Array | None = None
    Y: jax.Array | None = None

    @classmethod
    def from_data(cls, X, Y, *, dtype=None) -> Regression:
        """From samples: ``X`` of shape ``(n, d_in)``, ``Y`` of shape ``(n, d_out)`` or ``(n,)``, stored in
        ``dtype``."""
        dtype = _dtype(dtype)
        X = as_array("X", X, ndim=2)
        Y = as_array("Y", Y, ndim=(1, 2))
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[0] != X.shape[0]:
            raise DataError(f"Y: expected {X.shape[0]} rows (one per row of X), got {Y.shape[0]}")
        if X.shape[0] == 0:
            raise DataError("X: expected at least one sample, got 0")
        _need_columns("X", X)
        _need_columns("Y", Y)
        n = X.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            Sxx, Syx, Syy = X.T @ X / n, Y.T @ X / n, np.sum(Y * Y) / n
        _finite_moments("X, Y", Sxx, Syx, Syy)
        _fits("X", X, dtype)
        _fits("Y", Y, dtype)
        _fits("X, Y (their second moments)", np.array([np.abs(Sxx).max(initial=0.0), np.abs(Syx).max(initial=0.0),
                                                     Syy]), dtype)
        return cls(
            Sxx=jnp.asarray(Sxx, dtype), Syx=jnp.asarray(Syx, dtype),
            Syy=jnp.asarray(Syy, dtype), X=jnp.asarray(X, dtype), Y=jnp.asarray(Y, dtype),
        )

    @classmethod
    def from_moments(cls, Sxx, Syx, Syy, *, dtype=None) -> Regression:
        """From moments ``Sxx = E[x x^T]``, ``Syx = E[y x^T]``, ``Syy = E[||y||^2]`` (a 1-D ``Syx`` is one output),
        stored in ``dtype``."""
        dtype = _dtype(dtype)
        Sxx = as_array("Sxx", Sxx, ndim=2)
        Syx = as_array("Syx", Syx, ndim=(1, 2))
        if Syx.ndim == 1:
            Syx = Syx[None, :]
        d = Sxx.shape[0]
        if Sxx.shape != (d, d):
            raise DataError(f"Sxx: expected a square matrix, got shape {Sxx.shape}")
        _need_columns("Sxx", Sxx)
        if Syx.shape[0] == 0:
            raise DataError(f"Syx: expected at least one row (one per output), got shape {Syx.shape}")
        if np.abs(Sxx).max() > np.sqrt(np.finfo(np.float64).max):  # squared terms would overflow
            raise DataError(f"Sxx: entries up to {np.abs(Sxx).max():.3g} overflow float64 arithmetic; "
                            "expected rescaled data")
        if not np.allclose(Sxx, Sxx.T, rtol=1e-10, atol=1e-12 * max(1.0, np.abs(Sxx).max())):
            raise DataError("Sxx: expected a symmetric matrix")
        if np.linalg.eigvalsh((Sxx + Sxx.T) / 2).min() < -1e-10 * max(1.0, np.abs(Sxx).max()):
            raise DataError("Sxx: expected a positive semi-definite matrix (a second moment)")
        if Syx.shape[1] != d:
            raise DataError(f"Syx: expected {d} columns (the input dimension of Sxx), got shape {Syx.shape}")
        Syy = as_float("Syy", Syy, low=0.0)
        for name, value in (("Sxx", Sxx), ("Syx", Syx), ("Syy", np.asarray(Syy))):
            _fits(name, value, dtype)
        return cls(Sxx=jnp.asarray((Sxx + Sxx.T) / 2, dtype), Syx=jnp.asarray(Syx, dtype),
                   Syy=jnp.asarray(Syy, dtype))

    @property
    def d_in(self) -> int:
        return self.Sxx.shape[0]

    @property
    def d_out(self) -> int:
        return self.Syx.shape[0]

    @property
    def n_samples(self) -> int | None:
        return None if self.X is None else self.X.shape[0]

    def cost(self, A) -> jax.Array:
        """``E||A x - y||^2 = tr(A Sxx A^T) - 2 tr(A Syx^T) + Syy`` from the moments."""
        return jnp.sum((A @ self.Sxx) * A) - 2.0 * jnp.sum(A * self.Syx) + self.Syy

    def cost_grad(self, A) -> jax.Array:
        """Gradient of :meth:`cost` with respect to the end-to-end matrix: ``2 (A Sxx - Syx)``."""
        return 2.0 * (A @ self.Sxx - self.Syx)


def _dtype(dtype):
    """A floating dtype (``None``: JAX's default float), or a ConfigError naming ``dtype``."""
    if dtype is None:
        return jnp.zeros(()).dtype
    try:
        dt = jnp.dtype(dtype)
    except TypeError:
        raise ConfigError(f"dtype: expected a floating dtype such as jnp.float32 or 'float64', got {dtype!r}") from None
    if not jnp.issubdtype(dt, jnp.floating):
        raise ConfigError(f"dtype: expected a floating dtype such as jnp.float32 or 'float64', got {dt}")
    if dt.itemsize > jnp.zeros(()).dtype.itemsize:
        raise ConfigError(f"dtype: {dt} needs JAX's 64-bit mode (off here, DLNLAB_X64=0); expected float32 or less")
    return dt


def _fits(name: str, arr, dtype) -> None:
    """Values representable in ``dtype`` (no overflow to inf when stored in float32 or float16)."""
    big = np.abs(np.asarray(arr, dtype=np.float64)).max(initial=0.0)
    if big > float(jnp.finfo(dtype).max):
        raise DataError(f"{name}: entries up to {big:.3g} overflow {jnp.dtype(dtype).name} (largest "
                        f"{float(jnp.finfo(dtype).max):.3g}); expected rescaled data or a wider dtype")


def _need_columns(name: str, arr: np.ndarray) -> None:
    if arr.ndim == 2 and arr.shape[1] == 0:
        raise DataError(f"{name}: expected at least one column (feature), got shape {arr.shape}")


def _finite_moments(name: str, *moments) -> None:
    if not all(np.all(np.isfinite(m)) for m in moments):
        raise DataError(f"{name}: the second moments overflow float64 (values too large); "
                        "expected data that can be squared, e.g. rescaled")


class Classification(eqx.Module):
    """Binary classification with labels in {-1, +1} and a scalar-output net (``d_out == 1``).

    ``X`` has shape ``(n, d_in)``; ``y`` has shape ``(n,)``. The margin of sample i is ``y_i f(x_i)``.
    """

    X: jax.Array
    y: jax.Array

    def __init__(self, X, y):
        X = as_array("X", X, ndim=2)
        y = as_array("y", y, ndim=1)
        if y.shape[0] != X.shape[0]:
            raise DataError(f"y: expected {X.shape[0]} labels (one per row of X), got {y.shape[0]}")
        if X.shape[0] == 0:
            raise DataError("X: expected at least one sample, got 0")
        _need_columns("X", X)
        bad = ~np.isin(y, (-1.0, 1.0))
        if bad.any():
            raise DataError(f"y: expected labels in {{-1, +1}}, got {y[bad][0]!r} at index {int(np.argmax(bad))}")
        self.X = jnp.asarray(X)
        self.y = jnp.asarray(y)

    @property
    def d_in(self) -> int:
        return self.X.shape[1]

    @property
    def d_out(self) -> int:
        return 1

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    def margins(self, A) -> jax.Array:
        """``y_i <A, x_i>`` for a ``(1, d_in)`` end-to-end matrix."""
        return self.y * (self.X @ A[0])


class MatrixCompletion(eqx.Module):
    """Matrix completion: the cost of an end-to-end matrix A is the mean squared error on observed entries,

        C(A) = sum_{(i,j) observed} (A_ij - T_ij)^2 / |observed|   (no 1/2),

    a convex cost on A (jacot2021). ``target`` has shape ``(d_out, d_in)``; ``mask`` is a boolean array of the same
    shape (True = observed). ``test_error`` measures the same mean on the unobserved entries.
    """

    target: jax.Array
    mask: jax.Array

    def __init__(self, target, mask):
        T = as_array("target", target, ndim=2)
        M = np.asarray(mask)
        if M.shape != T.shape:
            raise DataError(f"mask: expected shape {T.shape} (the target's), got {M.shape}")
        if M.dtype != bool and not np.isin(M, (0, 1)).all():
            raise DataError("mask: expected booleans (True = observed entry)")
        if not M.any():
            raise DataError("mask: expected at least one observed entry")
        self.target = jnp.asarray(T)
        self.mask = jnp.asarray(M.astype(bool))

    @property
    def d_in(self) -> int:
        return self.target.shape[1]

    @property
    def d_out(self) -> int:
        return self.target.shape[0]

    def cost(self, A) -> jax.Array:
        diff = jnp.where(self.mask, A - self.target, 0.0)
        return jnp.sum(diff**2) / jnp.sum(self.mask)

    def test_error(self, A) -> jax.Array:
        """Mean squared error on the unobserved entries (``nan`` when every entry is observed)."""
        unseen = ~self.mask
        diff = jnp.where(unseen, A - self.target, 0.0)
        return jnp.sum(diff**2) / jnp.sum(unseen)


class MultiplicativeNoise(eqx.Module):
    """Stochastic neurons: every hidden unit is multiplied by independent noise of mean 1 and variance ``var``.

    Sampled noise is Gaussian ``1 + sqrt(var) * N(0, 1)``; the exact expected loss depends only on ``var``.
    """

    variance: float = eqx.field(static=True)

    def __init__(self, var):
        self.variance = as_float("var", var, low=0.0)

    def sample(self, key, shape, dtype=None) -> jax.Array:
        return 1.0 + np.sqrt(self.variance) * jax.random.normal(key, shape, dtype or jnp.zeros(()).dtype)


class Dropout(eqx.Module):
    """Inverted dropout with drop rate ``p``: units are kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``, so the noise has mean 1 and variance ``p / (1 - p)`` (ziyin2022's sigma^2)."""

    p: float = eqx.field(static=True)

    def __init__(self, p):
        self.p = as_float("p", p, low=0.0, high=1.0, high_open=True)

    @property
    def variance(self) -> float:
        return self.p / (1.0 - self.p)

    def sample(self, key, shape, dtype=None) -> jax.Array:
        keep = jax.random.bernoulli(key, 1.0 - self.p, shape)
        return keep.astype(dtype or jnp.zeros(()).dtype) / (1.0 - self.p)

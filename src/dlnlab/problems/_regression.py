"""Squared-loss regression, from samples or from second moments.

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

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_array, as_dtype, as_float, fits_dtype, need_columns
from .._losses import AbstractLoss
from ..errors import DataError
from ._base import SQUARED, AbstractProblem

__all__ = ["Regression"]


class Regression(AbstractProblem):
    """Squared-loss regression, stored as its second moments (and optionally its samples, for SGD).

    Build with :meth:`from_data` (rows of ``X`` and ``Y`` are samples) or :meth:`from_moments`. Both take
    ``dtype=`` (default: JAX's default float, float64 when 64-bit mode is on): the moments are computed in
    float64 and then stored in ``dtype``, and the loss, gradients and training follow the stored precision, so
    ``dtype=jnp.float32`` gives a float32 problem while JAX's 64-bit mode is on.

    The cost (:meth:`cost`) uses the moments only; the samples (from :meth:`from_data`) serve minibatches
    (:meth:`batch_cost`) and sampled neuron noise (:meth:`batch`). :meth:`noisy_cost` is the exact expectation
    under neuron noise (ziyin2022's moment recursion).

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
        dtype = as_dtype("dtype", dtype)
        X = as_array("X", X, ndim=2)
        Y = as_array("Y", Y, ndim=(1, 2))
        if Y.ndim == 1:
            Y = Y[:, None]
        if Y.shape[0] != X.shape[0]:
            raise DataError(f"Y: expected {X.shape[0]} rows (one per row of X), got {Y.shape[0]}")
        if X.shape[0] == 0:
            raise DataError("X: expected at least one sample, got 0")
        need_columns("X", X)
        need_columns("Y", Y)
        n = X.shape[0]
        with np.errstate(over="ignore", invalid="ignore"):
            Sxx, Syx, Syy = X.T @ X / n, Y.T @ X / n, np.sum(Y * Y) / n
        _finite_moments("X, Y", Sxx, Syx, Syy)
        fits_dtype("X", X, dtype)
        fits_dtype("Y", Y, dtype)
        fits_dtype("X, Y (their second moments)", np.array([np.abs(Sxx).max(initial=0.0), np.abs(Syx).max(initial=0.0),
                                                     Syy]), dtype)
        return cls(
            Sxx=jnp.asarray(Sxx, dtype), Syx=jnp.asarray(Syx, dtype),
            Syy=jnp.asarray(Syy, dtype), X=jnp.asarray(X, dtype), Y=jnp.asarray(Y, dtype),
        )

    @classmethod
    def from_moments(cls, Sxx, Syx, Syy, *, dtype=None) -> Regression:
        """From moments ``Sxx = E[x x^T]``, ``Syx = E[y x^T]``, ``Syy = E[||y||^2]`` (a 1-D ``Syx`` is one output),
        stored in ``dtype``."""
        dtype = as_dtype("dtype", dtype)
        Sxx = as_array("Sxx", Sxx, ndim=2)
        Syx = as_array("Syx", Syx, ndim=(1, 2))
        if Syx.ndim == 1:
            Syx = Syx[None, :]
        d = Sxx.shape[0]
        if Sxx.shape != (d, d):
            raise DataError(f"Sxx: expected a square matrix, got shape {Sxx.shape}")
        need_columns("Sxx", Sxx)
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
            fits_dtype(name, value, dtype)
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

    def cost(self, A, loss: AbstractLoss = SQUARED) -> jax.Array:
        """``E||A x - y||^2 = tr(A Sxx A^T) - 2 tr(A Syx^T) + Syy`` from the moments (squared loss only)."""
        return jnp.sum((A @ self.Sxx) * A) - 2.0 * jnp.sum(A * self.Syx) + self.Syy

    def batch_cost(self, A, idx, loss: AbstractLoss = SQUARED) -> jax.Array:
        """Mean squared error on the samples ``idx`` (needs :meth:`from_data`)."""
        X, Y = self.batch(idx)
        return jnp.mean(loss(X @ A.T, Y))

    @property
    def has_inputs(self) -> bool:
        return self.X is not None

    def batch(self, idx):
        if self.X is None:
            return super().batch(idx)
        return (self.X, self.Y) if idx is None else (self.X[idx], self.Y[idx])

    @property
    def supports_noise(self) -> bool:
        return True

    def noisy_cost(self, params, noise, loss: AbstractLoss = SQUARED) -> jax.Array:
        """Exact expected squared loss of the DLN ``params = (W_1, ..., W_L)`` when every hidden unit is multiplied
        by independent noise of mean 1 and variance ``s^2 = noise.variance`` (ziyin2022): ``M_0 = Sxx``,
        ``Q_i = W_i M_{i-1} W_i^T``, ``M_i = Q_i + s^2 diag(diag(Q_i))`` for the ``L - 1`` hidden layers, then
        ``E||f||^2 = tr(W_L M_{L-1} W_L^T)`` and ``E f^T y = tr(A Syx^T)`` (the noise has mean 1)."""
        s2 = noise.variance
        M = self.Sxx
        for W in params[:-1]:
            Q = W @ M @ W.T
            M = Q + s2 * jnp.diag(jnp.diag(Q))
        W_L = params[-1]
        A = params[0]
        for W in params[1:]:
            A = W @ A
        return jnp.sum((W_L @ M) * W_L) - 2.0 * jnp.sum(A * self.Syx) + self.Syy

    def cost_grad(self, A) -> jax.Array:
        """Gradient of :meth:`cost` with respect to the end-to-end matrix: ``2 (A Sxx - Syx)``."""
        return 2.0 * (A @ self.Sxx - self.Syx)


def _finite_moments(name: str, *moments) -> None:
    if not all(np.all(np.isfinite(m)) for m in moments):
        raise DataError(f"{name}: the second moments overflow float64 (values too large); "
                        "expected data that can be squared, e.g. rescaled")

"""Matrix recovery problems: completion from observed entries, sensing from linear measurements.

Normalisation (the library's: a mean over terms, no 1/2):

- completion: ``C(W) = (1/|Omega|) sum_{(i,j) in Omega} (W_ij - M_ij)^2``;
- sensing: ``C(W) = (1/m) sum_{k=1..m} (<A_k, W> - y_k)^2`` with ``<A, W> = sum_ij A_ij W_ij``.

Random instances (:meth:`MatrixCompletion.random`, :meth:`MatrixSensing.random`) use :func:`low_rank_target`: a
product of Gaussian factors scaled so that ``||M||_F^2 = d_out d_in`` (root-mean-square entry 1), and Gaussian
measurement matrices with iid ``N(0, 1)`` entries, so that ``E <A, W>^2 = ||W||_F^2`` and the sensing cost tends
to ``||W - M||_F^2`` as ``m`` grows (arora2019's setups; also gissin2020's sensing experiment).

Example:
    >>> import numpy as np, dlnlab as dl
    >>> prob = dl.MatrixSensing.random(4, 3, rank=1, n_measurements=20, seed=0)
    >>> prob.moments is not None  # 20 measurements > 12 entries: the moment form is cheaper
    True
    >>> abs(float(prob.cost(prob.target))) < 1e-12  # the target interpolates noise-free measurements
    True
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_array, as_dtype, as_index_pairs, as_int, check_shape, fits_dtype
from .._losses import AbstractLoss
from ..errors import ConfigError, DataError
from ._base import SQUARED, AbstractProblem

__all__ = ["MatrixCompletion", "MatrixSensing", "low_rank_target"]

# The moment form stores a p x p matrix (p = d_out d_in); above this p it is never chosen automatically.
_MAX_MOMENT_DIM = 2048


def _rng(seed) -> np.random.Generator:
    """A NumPy generator from an integer seed or a JAX key (NumPy draws: no per-shape compile)."""
    dtype = getattr(seed, "dtype", None)
    if dtype is not None and jax.dtypes.issubdtype(dtype, jax.dtypes.prng_key):
        seed = jax.random.key_data(seed)
    if isinstance(seed, (int, np.integer)) and not isinstance(seed, bool) and seed >= 0:
        return np.random.default_rng(int(seed))
    arr = np.asarray(seed) if dtype is not None else None
    if arr is not None and arr.dtype == np.uint32:
        return np.random.default_rng(arr.ravel().tolist())
    raise ConfigError(f"seed: expected a non-negative integer or a jax.random.key, got {seed!r}")


def low_rank_target(d_out: int, d_in: int, rank: int, *, seed=0) -> np.ndarray:
    """A random ``(d_out, d_in)`` matrix of rank ``rank``: ``U V^T`` with iid Gaussian factors, scaled so that
    ``||M||_F^2 = d_out d_in`` (float64 NumPy)."""
    d_out = as_int("d_out", d_out, low=1)
    d_in = as_int("d_in", d_in, low=1)
    rank = as_int("rank", rank, low=1)
    if rank > min(d_out, d_in):
        raise ConfigError(f"rank: expected at most min(d_out, d_in) = {min(d_out, d_in)} for a {d_out} x {d_in} "
                          f"matrix, got {rank}")
    return _low_rank(_rng(seed), d_out, d_in, rank)


def _low_rank(rng: np.random.Generator, d_out: int, d_in: int, rank: int) -> np.ndarray:
    M = rng.normal(size=(d_out, rank)) @ rng.normal(size=(rank, d_in))
    return M * np.sqrt(d_out * d_in) / np.linalg.norm(M)


class MatrixCompletion(AbstractProblem):
    """Matrix completion: the mean squared error of the end-to-end matrix on the observed entries,

        C(A) = sum_{(i,j) observed} (A_ij - T_ij)^2 / |observed|   (no 1/2),

    a convex cost on A (jacot2021, arora2019). ``target`` has shape ``(d_out, d_in)``; ``mask`` is a boolean array
    of the same shape (True = observed). Build from index lists with :meth:`from_indices`, or a random low-rank
    instance with :meth:`random`. Minibatches (SGD) draw observed entries uniformly without replacement
    (:attr:`n_samples` = the number observed). :meth:`test_error` is the same mean on the unobserved entries,
    :meth:`relative_error` the relative Frobenius error on all entries.
    """

    target: jax.Array
    mask: jax.Array

    def __init__(self, target, mask, *, dtype=None):
        dtype = as_dtype("dtype", dtype)
        T = as_array("target", target, ndim=2)
        M = np.asarray(mask)
        if M.shape != T.shape:
            raise DataError(f"mask: expected shape {T.shape} (the target's), got {M.shape}")
        if M.dtype != bool and not np.isin(M, (0, 1)).all():
            raise DataError("mask: expected booleans (True = observed entry)")
        if not M.any():
            raise DataError("mask: expected at least one observed entry")
        fits_dtype("target", T, dtype)
        self.target = jnp.asarray(T, dtype)
        self.mask = jnp.asarray(M.astype(bool))

    @classmethod
    def from_indices(cls, target, rows, cols, *, dtype=None) -> MatrixCompletion:
        """Observed entries ``(rows[k], cols[k])``: in range, each at most once."""
        T = as_array("target", target, ndim=2)
        r, c = as_index_pairs(rows, cols, T.shape)
        mask = np.zeros(T.shape, bool)
        mask[r, c] = True
        return cls(T, mask, dtype=dtype)

    @classmethod
    def random(cls, d_out: int, d_in: int, rank: int, n_observed: int, *, seed=0, dtype=None) -> MatrixCompletion:
        """A :func:`low_rank_target` with ``n_observed`` entries observed uniformly at random."""
        low_rank_target(d_out, d_in, rank)  # validates the sizes and the rank
        n_observed = as_int("n_observed", n_observed, low=1)
        if n_observed > d_out * d_in:
            raise ConfigError(f"n_observed: expected at most {d_out * d_in} (the number of entries), got {n_observed}")
        rng = _rng(seed)
        T = _low_rank(rng, d_out, d_in, rank)
        flat = rng.permutation(T.size)[:n_observed]
        return cls.from_indices(T, flat // d_in, flat % d_in, dtype=dtype)

    @property
    def d_in(self) -> int:
        return self.target.shape[1]

    @property
    def d_out(self) -> int:
        return self.target.shape[0]

    @property
    def n_samples(self) -> int:
        """The number of observed entries. Under tracing (the mask's values unknown) this is the static bound
        ``d_out * d_in``: batch sizes are checked eagerly, before compiled code runs."""
        if isinstance(self.mask, jax.core.Tracer):
            return int(self.mask.size)
        return int(np.sum(np.asarray(self.mask)))

    def cost(self, A, loss: AbstractLoss = SQUARED) -> jax.Array:
        diff = jnp.where(self.mask, A - self.target, 0.0)
        return jnp.sum(diff**2) / jnp.sum(self.mask)

    def batch_indices(self, key, batch_size: int) -> jax.Array:
        # Gumbel top-k over the observed entries: a uniform subset without replacement whose cost does not
        # depend on |observed| being static (problems with different masks share one compiled runner).
        g = jnp.where(self.mask.ravel(), jax.random.gumbel(key, (self.mask.size,)), -jnp.inf)
        return jax.lax.top_k(g, batch_size)[1]

    def batch_cost(self, A, idx, loss: AbstractLoss = SQUARED) -> jax.Array:
        """Mean squared error on the observed entries with flat (row-major) indices ``idx``."""
        return jnp.mean((A.ravel()[idx] - self.target.ravel()[idx]) ** 2)

    def test_error(self, A) -> jax.Array:
        """Mean squared error on the unobserved entries (``nan`` when every entry is observed)."""
        unseen = ~self.mask
        diff = jnp.where(unseen, A - self.target, 0.0)
        return jnp.sum(diff**2) / jnp.sum(unseen)

    def relative_error(self, A) -> jax.Array:
        """``||A - T||_F / ||T||_F`` on all entries (arora2019's reconstruction error)."""
        return jnp.linalg.norm(A - self.target) / jnp.linalg.norm(self.target)


class MatrixSensing(AbstractProblem):
    """Matrix sensing: ``C(W) = (1/m) sum_k (<A_k, W> - y_k)^2`` (no 1/2) for measurement matrices ``A_k``.

    Args:
        measurements: the ``A_k``, an array of shape ``(m, d_out, d_in)``.
        y: the measured values, shape ``(m,)``; ``None`` computes ``y_k = <A_k, target>`` (noise-free).
        target: the matrix to recover (optional with ``y``): used by :meth:`relative_error`.
        moments: ``"auto"``, ``True`` or ``False``. The moment form ``C(W) = w^T S w - 2 b^T w + c`` (``w`` the
            row-major ``vec(W)``, ``S = (1/m) sum a_k a_k^T``, ``b = (1/m) sum y_k a_k``, ``c = mean(y^2)``) costs
            ``p^2`` per evaluation and memory with ``p = d_out d_in``; the sample form costs ``m p``. ``"auto"``
            chooses the moments when ``m > p`` and ``p <= 2048``. The moment form loses absolute accuracy
            ``~ eps * C(0)`` to cancellation (as for :class:`Regression`): use ``moments=False`` to follow
            losses far below that. Minibatches (SGD over measurements) always use the samples.
        dtype: storage dtype (default: JAX's default float); moments are computed in float64 first.

    Use :meth:`gaussian` for iid ``N(0, 1)`` measurement matrices and :meth:`random` for a random low-rank target.

    Example:
        >>> import numpy as np, dlnlab as dl
        >>> prob = dl.MatrixSensing(np.stack([np.eye(2), np.ones((2, 2))]), np.array([1.0, 2.0]))
        >>> float(prob.cost(np.zeros((2, 2))))  # (1 + 4) / 2
        2.5
    """

    measurements: jax.Array
    y: jax.Array
    target: jax.Array | None
    moments: tuple[jax.Array, jax.Array, jax.Array] | None

    def __init__(self, measurements, y=None, *, target=None, moments="auto", dtype=None):
        dtype = as_dtype("dtype", dtype)
        A = as_array("measurements", measurements, ndim=3)
        m, d_out, d_in = A.shape
        if m == 0 or d_out == 0 or d_in == 0:
            raise DataError(f"measurements: expected shape (m, d_out, d_in) with every size >= 1, got {A.shape}")
        T = None
        if target is not None:
            T = as_array("target", target, ndim=2)
            check_shape("target", T, (d_out, d_in))
        if y is None:
            if T is None:
                raise ConfigError("y: required unless target is given (then y_k = <A_k, target>)")
            y = np.einsum("kij,ij->k", A, T)
        y = as_array("y", y, ndim=1)
        check_shape("y", y, (m,))
        if not (moments == "auto" or isinstance(moments, bool)):
            raise ConfigError(f"moments: expected 'auto', True or False, got {moments!r}")
        p = d_out * d_in
        use = (m > p and p <= _MAX_MOMENT_DIM) if moments == "auto" else moments
        for name, arr in (("measurements", A), ("y", y), ("target", T)):
            if arr is not None:
                fits_dtype(name, arr, dtype)
        self.measurements = jnp.asarray(A, dtype)
        self.y = jnp.asarray(y, dtype)
        self.target = None if T is None else jnp.asarray(T, dtype)
        if use:
            F = A.reshape(m, p)
            with np.errstate(over="ignore", invalid="ignore"):
                S, b, c = F.T @ F / m, F.T @ y / m, float(np.mean(y * y))
            if not (np.all(np.isfinite(S)) and np.all(np.isfinite(b)) and np.isfinite(c)):
                raise DataError("measurements, y: their second moments overflow float64; expected rescaled data")
            fits_dtype("measurements (their second moments)", np.array([np.abs(S).max(), np.abs(b).max(), c]),
                       dtype)
            self.moments = (jnp.asarray(S, dtype), jnp.asarray(b, dtype), jnp.asarray(c, dtype))
        else:
            self.moments = None

    @classmethod
    def gaussian(cls, target, n_measurements: int, *, seed=0, moments="auto", dtype=None) -> MatrixSensing:
        """``n_measurements`` iid ``N(0, 1)`` measurement matrices of ``target``'s shape, noise-free ``y``."""
        T = as_array("target", target, ndim=2)
        m = as_int("n_measurements", n_measurements, low=1)
        A = _rng(seed).normal(size=(m, *T.shape))
        return cls(A, target=T, moments=moments, dtype=dtype)

    @classmethod
    def random(cls, d_out: int, d_in: int, rank: int, n_measurements: int, *, seed=0, moments="auto",
               dtype=None) -> MatrixSensing:
        """A :func:`low_rank_target` measured by :meth:`gaussian` matrices (one seed for both)."""
        low_rank_target(d_out, d_in, rank)  # validates the sizes and the rank
        m = as_int("n_measurements", n_measurements, low=1)
        rng = _rng(seed)
        T = _low_rank(rng, d_out, d_in, rank)
        return cls(rng.normal(size=(m, d_out, d_in)), target=T, moments=moments, dtype=dtype)

    @property
    def d_in(self) -> int:
        return self.measurements.shape[2]

    @property
    def d_out(self) -> int:
        return self.measurements.shape[1]

    @property
    def n_samples(self) -> int:
        return self.measurements.shape[0]

    def measure(self, W) -> jax.Array:
        """``<A_k, W>`` for every measurement: shape ``(m,)``."""
        m = self.measurements.shape[0]
        return self.measurements.reshape(m, -1) @ W.reshape(-1)

    def cost(self, A, loss: AbstractLoss = SQUARED) -> jax.Array:
        if self.moments is not None:
            S, b, c = self.moments
            w = A.reshape(-1)
            return w @ (S @ w) - 2.0 * (b @ w) + c
        return jnp.mean((self.measure(A) - self.y) ** 2)

    def batch_cost(self, A, idx, loss: AbstractLoss = SQUARED) -> jax.Array:
        F = self.measurements[idx].reshape(idx.shape[0], -1)
        return jnp.mean((F @ A.reshape(-1) - self.y[idx]) ** 2)

    def relative_error(self, A) -> jax.Array:
        """``||A - target||_F / ||target||_F`` (needs ``target``)."""
        if self.target is None:
            raise ConfigError("target: relative_error needs the target matrix; build with target=")
        return jnp.linalg.norm(A - self.target) / jnp.linalg.norm(self.target)


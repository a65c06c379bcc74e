"""Curvature of any objective: dense Hessians, Hessian-vector products, extreme eigenvalues, Morse index.

``f`` is a :class:`dlnlab.Objective` or any callable ``params -> scalar`` (params any pytree, e.g. a ReLU MLP's).
Vectors are flattened with :func:`jax.flatten_util.ravel_pytree` (layer order, row-major within a layer).
Sharpness is the top eigenvalue of the Hessian of the library's loss (squared loss with no 1/2, so it is twice
the sharpness of a 1/2-normalised loss, and gradient descent with step ``eta`` is stable near a minimum only when
sharpness <= 2 / eta).

Methods, all returning :class:`Eigen`:

- ``"exact"``: the dense Hessian and ``numpy.linalg.eigh`` (small nets: a few thousand parameters);
- ``"lanczos"``: implicitly restarted Lanczos (ARPACK through ``scipy.sparse.linalg.eigsh``) on jitted
  Hessian-vector products, for any size;
- ``"power"``: power iteration on jitted Hessian-vector products (the PyHessian approach; ``which="smallest"``
  iterates on ``lambda_max I - H``), the whole loop compiled. Slow when the top eigenvalues are close; kept as a
  cross-check.

Compiled code is reused: the Hessian, the Hessian-vector product and the power loop are compiled once per
structure (objective type and static options, parameter shapes) and take the objective's arrays and the params
as traced arguments, so sharpness tracked along a run with one :class:`dlnlab.Objective` (or with new data of
the same shapes) compiles once. A plain Python callable is hashed by identity: reuse the same function object,
or pass a pytree callable (``jax.tree_util.Partial(loss, X=X, Y=Y)``, an equinox Module) whose arrays are
traced too.

Example:
    >>> import jax, numpy as np, dlnlab as dl
    >>> obj = dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones((2, 3)), 1.0))
    >>> params = dl.Net((3, 4, 2)).init(jax.random.key(0), scheme="gaussian", scale=0.5)
    >>> ex = dl.curvature.top_eigenvalues(obj, params, k=2, method="exact")
    >>> lz = dl.curvature.top_eigenvalues(obj, params, k=2, method="lanczos")
    >>> bool(np.allclose(ex.values, lz.values))
    True
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy.sparse.linalg import ArpackError, ArpackNoConvergence, LinearOperator, eigsh

from ._checks import as_array, as_float, as_int, as_key, one_of
from .errors import ConfigError, DataError, NumericalError
from .objective import Objective

__all__ = ["Eigen", "hessian", "hvp", "top_eigenvalues", "morse_index", "sharpness", "METHODS"]

METHODS = ("exact", "lanczos", "power")


class Eigen(NamedTuple):
    """Eigenvalues (``values``: largest first for ``which="largest"``, smallest first otherwise), the matching
    unit eigenvectors as rows of ``vectors`` (flattened params), and the method used."""

    values: np.ndarray
    vectors: np.ndarray
    method: str


def _as_fn(f):
    if isinstance(f, Objective) or callable(f):
        return f
    raise ConfigError(f"f: expected a dl.Objective or a callable params -> scalar, got {type(f).__name__}")


def _value(f, params):
    return f.value(params) if isinstance(f, Objective) else f(params)


def _prepare(f, params):
    """Validate ``f`` and ``params``; return ``f``, the params as a pytree of arrays, the parameter count and the
    dtype of the flattened vector. Checks run in NumPy: eager JAX ops would each compile once per shape."""
    f = _as_fn(f)
    params = tuple(params) if isinstance(params, list) else params
    if isinstance(f, Objective):
        params = f._check(params)  # shapes against the problem (and the net, if any)
    try:
        # Python scalars in the tree become arrays so that the compiled functions trace them (not hash them).
        params = jax.tree.map(jnp.asarray, params)
        leaves = jax.tree.leaves(params)
        dtype = jnp.result_type(*leaves) if leaves else None
    except (TypeError, ValueError) as exc:
        raise DataError(f"params: expected a pytree of numeric arrays ({exc})") from None
    n = sum(int(np.size(leaf)) for leaf in leaves)
    if n == 0:
        raise DataError("params: expected at least one parameter, got none")
    if not jnp.issubdtype(dtype, jnp.floating):
        raise DataError(f"params: expected floating-point weights, got dtype {dtype}")
    if not any(isinstance(leaf, jax.core.Tracer) for leaf in leaves) and not all(
            np.all(np.isfinite(np.asarray(leaf))) for leaf in leaves):
        raise DataError("params: contains NaN or infinite values; expected finite weights")
    return f, params, n, dtype


# The compiled kernels below take the objective and the params as arguments (equinox splits them into traced
# arrays and a hashed static structure), so a second call with new weights, new data of the same shapes or a
# new vector reuses the compiled code. A plain Python callable is part of the static structure: pass the same
# function object (or a pytree callable such as jax.tree_util.Partial) to avoid a retrace per call.
@eqx.filter_jit
def _dense_hessian(f, params):
    x, unravel = ravel_pytree(params)
    return jax.hessian(lambda y: _value(f, unravel(y)))(x)


def _hvp_flat(f, params, v):
    x, unravel = ravel_pytree(params)
    return jax.jvp(jax.grad(lambda y: _value(f, unravel(y))), (x,), (v.astype(x.dtype),))[1]


_hvp_jit = eqx.filter_jit(_hvp_flat)


@eqx.filter_jit
def _power_jit(f, params, v0, shift, tol, max_iter):
    """Power iteration on ``v -> H v - shift v`` as one compiled loop; returns (Rayleigh quotient of the
    shifted operator, vector, converged)."""

    def body(state):
        v, lam, _, it = state
        w = _hvp_flat(f, params, v) - shift * v
        lam_new = jnp.vdot(v, w)
        v_new = w / jnp.linalg.norm(w)
        return v_new, lam_new, jnp.abs(lam_new - lam) <= tol * jnp.abs(lam_new), it + 1

    def cond(state):
        return (~state[2]) & (state[3] < max_iter)

    v0 = v0 / jnp.linalg.norm(v0)
    state = (v0, jnp.asarray(jnp.inf, v0.dtype), jnp.asarray(False), jnp.asarray(0, max_iter.dtype))
    v, lam, ok, _ = jax.lax.while_loop(cond, body, state)
    return lam, v, ok


def _start_vector(key, n: int) -> np.ndarray:
    """A standard normal start vector drawn by NumPy from the key's bits (jax.random.normal would compile once
    per parameter count)."""
    bits = jax.random.key_data(key) if jax.dtypes.issubdtype(key.dtype, jax.dtypes.prng_key) else key
    return np.random.default_rng(np.asarray(bits, dtype=np.uint32).ravel().tolist()).normal(size=n)


def hessian(f, params) -> np.ndarray:
    """The dense Hessian (P x P) at ``params``, P = number of parameters."""
    f, params, _, _ = _prepare(f, params)
    H = np.asarray(_dense_hessian(f, params))
    if not np.all(np.isfinite(H)):
        raise NumericalError("hessian: the Hessian has NaN or infinite entries at these params (overflow); "
                             "expected weights and data of moderate size")
    return (H + H.T) / 2


def hvp(f, params, v) -> jax.Array:
    """The Hessian-vector product ``H v`` (``v`` flattened like the params), without forming H."""
    f, params, n, _ = _prepare(f, params)
    v = as_array("v", v)
    if v.shape != (n,):
        raise DataError(f"v: expected a flat vector of shape {(n,)} (one entry per parameter), got {v.shape}")
    return _hvp_jit(f, params, v)


def _power(f, params, v0, *, shift: float, tol: float, max_iter: int):
    """Eigenvalue of H found by power iteration on ``H - shift I``, its vector, and whether it converged."""
    dtype = v0.dtype
    lam, v, ok = _power_jit(f, params, v0, jnp.asarray(shift, dtype), jnp.asarray(tol, dtype),
                            jnp.asarray(max_iter, jnp.int32))
    return float(lam) + shift, np.asarray(v), bool(ok)


def top_eigenvalues(f, params, *, k: int = 1, which: str = "largest", method: str = "lanczos",
                    tol: float = 1e-10, max_iter: int | None = None, key=0) -> Eigen:
    """The ``k`` largest (or smallest) Hessian eigenvalues at ``params``.

    Args:
        k: how many (power iteration supports ``k=1`` only).
        which: ``"largest"`` or ``"smallest"`` (algebraic).
        method: ``"exact"``, ``"lanczos"`` or ``"power"`` (see the module docstring).
        tol: relative tolerance of the iterative methods.
        max_iter: iteration cap of the iterative methods (default: ARPACK's, or 10,000 power steps).
        key: seed of the random start vector.
    """
    one_of("method", method, METHODS)
    one_of("which", which, ("largest", "smallest"))
    k = as_int("k", k, low=1)
    tol = as_float("tol", tol, low=0.0)
    if max_iter is not None:
        max_iter = as_int("max_iter", max_iter, low=1)
    key = as_key("key", key)
    f, params, n, dtype = _prepare(f, params)
    if k > n:
        raise ConfigError(f"k: expected at most {n} (the number of parameters), got {k}")
    if method == "lanczos" and k == n:  # ARPACK needs k < n; all eigenvalues are asked for anyway
        method = "exact"
    if method == "exact":
        w, V = np.linalg.eigh(hessian(f, params))
        idx = np.arange(n)[::-1][:k] if which == "largest" else np.arange(k)
        return Eigen(w[idx], V[:, idx].T, "exact")
    v0 = jnp.asarray(_start_vector(key, n), dtype)
    if method == "power":
        if k != 1:
            raise ConfigError(f"k: power iteration finds one eigenvalue, expected k=1, got {k}")
        cap = 10_000 if max_iter is None else max_iter
        top, v, ok = _power(f, params, v0, shift=0.0, tol=tol, max_iter=cap)
        if which == "largest" and top < 0:  # the dominant eigenvalue was negative: shift past it
            top, v, ok = _power(f, params, v0, shift=top, tol=tol, max_iter=cap)
        if which == "smallest":
            shift = abs(top) if top > 0 else 0.0
            lam, v, ok = _power(f, params, v0, shift=shift, tol=tol, max_iter=cap)
            top = lam if shift else top
        if not ok:
            raise NumericalError(f"power iteration did not converge in {cap} steps (tol={tol}); "
                                 "try method='lanczos'")
        return Eigen(np.array([top]), v[None, :], "power")
    op = LinearOperator((n, n), dtype=np.float64,
                        matvec=lambda v: np.asarray(_hvp_jit(f, params, jnp.asarray(v.ravel(), dtype))))
    try:
        w, V = eigsh(op, k=k, which="LA" if which == "largest" else "SA", tol=tol, v0=np.asarray(v0),
                     maxiter=max_iter)
    except ArpackNoConvergence as exc:
        raise NumericalError(f"Lanczos (ARPACK) did not converge: {exc}; raise max_iter or tol") from exc
    except ArpackError as exc:  # e.g. a Hessian-vector product that overflows
        raise NumericalError(f"Lanczos (ARPACK) failed: {exc}") from exc
    if not np.all(np.isfinite(w)):
        raise NumericalError("Lanczos returned non-finite eigenvalues (the Hessian overflows at these params)")
    order = np.argsort(w)[::-1] if which == "largest" else np.argsort(w)
    return Eigen(w[order], V[:, order].T, "lanczos")


def sharpness(f, params, *, method: str = "lanczos", tol: float = 1e-10) -> float:
    """The top Hessian eigenvalue (see the module docstring for the normalisation)."""
    return float(top_eigenvalues(f, params, k=1, which="largest", method=method, tol=tol).values[0])


def morse_index(f, params, *, tol: float = 1e-8, method: str = "exact", max_index: int = 20) -> int:
    """Number of Hessian eigenvalues below ``-tol * max(1, |lambda|_max)``: 0 at a minimum, > 0 at a strict saddle.

    ``method="lanczos"`` computes the ``max_index`` smallest eigenvalues and so counts at most that many.
    """
    one_of("method", method, ("exact", "lanczos"))
    tol = as_float("tol", tol, low=0.0)
    max_index = as_int("max_index", max_index, low=1)
    if method == "exact":
        w = np.linalg.eigvalsh(hessian(f, params))
        scale = max(1.0, float(np.abs(w).max()))
        return int(np.sum(w < -tol * scale))
    n = _prepare(f, params)[2]
    w = top_eigenvalues(f, params, k=min(max_index, n - 1), which="smallest", method="lanczos").values
    top = top_eigenvalues(f, params, k=1, method="lanczos").values[0]
    return int(np.sum(w < -tol * max(1.0, abs(top), float(np.abs(w).max()))))

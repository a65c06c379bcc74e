"""Hessian eigenvalues: dense, Lanczos (compiled thick restart) and power iteration; sharpness and Morse index."""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_array, as_float, as_int, as_key, one_of
from ..errors import ConfigError, DataError, NumericalError
from . import _lanczos
from ._operator import (
    asymmetry_error,
    hvp_flat,
    hvp_jit,
    nonfinite_error,
    prepare,
    random_key_data,
    symmetric_dense,
    symmetry_tol,
)

METHODS = ("exact", "lanczos", "power")
_DEFAULT_TOL = 1e-10
_DEFAULT_RESTARTS = 500
_DEFAULT_POWER_STEPS = 10_000


class Eigen(NamedTuple):
    """Eigenvalues (``values``: largest first for ``which="largest"``, smallest first otherwise), the matching
    unit eigenvectors as rows of ``vectors`` (flattened params, or the flattened block for ``layers=``), and the
    method used."""

    values: np.ndarray
    vectors: np.ndarray
    method: str


def hessian(f, params, *, layers=None) -> np.ndarray:
    """The dense Hessian (P x P) at ``params``, P = number of parameters (of the selected ``layers`` only: the
    diagonal block of the full Hessian on those leaves, in ``jax.tree.leaves`` order).

    Raises :class:`~dlnlab.errors.DataError` when ``f``'s Hessian is not symmetric (a wrong custom derivative
    rule) and :class:`~dlnlab.errors.NumericalError` when it is not finite.
    """
    g, x, _, _ = prepare(f, params, layers)
    return symmetric_dense(g, x)


def hvp(f, params, v, *, layers=None) -> jax.Array:
    """The Hessian-vector product ``H v`` (``v`` flattened like the params, or like the selected ``layers``),
    without forming H."""
    g, x, n, _ = prepare(f, params, layers)
    v = as_array("v", v)
    if v.shape != (n,):
        raise DataError(f"v: expected a flat vector of shape {(n,)} (one entry per parameter), got {v.shape}")
    return hvp_jit(g, x, v)


@eqx.filter_jit
def _power_jit(f, params, v0, shift, tol, max_iter):
    """Power iteration on ``v -> H v - shift v`` as one compiled loop; returns (Rayleigh quotient of the shifted
    operator, vector, converged)."""

    def body(state):
        v, lam, _, it = state
        w = hvp_flat(f, params, v) - shift * v
        lam_new = jnp.vdot(v, w)
        v_new = w / jnp.linalg.norm(w)
        done = (jnp.abs(lam_new - lam) <= tol * jnp.abs(lam_new)) | ~jnp.isfinite(lam_new)
        return v_new, lam_new, done, it + 1

    def cond(state):
        return (~state[2]) & (state[3] < max_iter)

    v0 = v0 / jnp.linalg.norm(v0)
    state = (v0, jnp.asarray(jnp.inf, v0.dtype), jnp.asarray(False), jnp.asarray(0, max_iter.dtype))
    v, lam, ok, _ = jax.lax.while_loop(cond, body, state)
    return lam, v, ok & jnp.isfinite(lam)


def power_step(f, params, v, iters: int):
    """``iters`` steps of power iteration on the Hessian of ``f`` at ``params`` from ``v``; pure and jittable.

    For a sharpness tracked inside a compiled training loop, warm-started from the previous record's vector.
    Returns ``(lam, v)``: the Rayleigh quotient of the last iterate and the next unit iterate. Power iteration
    finds the eigenvalue largest in size: where a negative eigenvalue dominates (near a saddle), use
    :func:`lanczos_step`, which targets the algebraically largest.

    Example:
        >>> import jax, jax.numpy as jnp
        >>> f = lambda p: 3.0 * p[0] ** 2 + 0.5 * p[1] ** 2          # Hessian diag(6, 1)
        >>> lam, v = jax.jit(lambda p, v: power_step(f, p, v, 60))(jnp.array([1.0, 2.0]), jnp.ones(2))
        >>> round(float(lam), 6)
        6.0
    """

    def body(_, c):
        v = c[1]
        w = hvp_flat(f, params, v)
        return jnp.vdot(v, w), w / jnp.linalg.norm(w)

    v = v / jnp.linalg.norm(v)
    return jax.lax.fori_loop(0, int(iters), body, (jnp.zeros((), v.dtype), v))


def _start_vector(key, n: int, dtype) -> jax.Array:
    """A standard normal start vector drawn by NumPy from the key's bits (jax.random.normal would compile once
    per parameter count outside the cached kernels)."""
    bits = np.asarray(random_key_data(key), dtype=np.uint32).ravel().tolist()
    return jnp.asarray(np.random.default_rng(bits).normal(size=n), dtype)


def _power(g, x, v0, *, shift: float, tol: float, max_iter: int):
    dtype = v0.dtype
    lam, v, ok = _power_jit(g, x, v0, jnp.asarray(shift, dtype), jnp.asarray(tol, dtype),
                            jnp.asarray(max_iter, jnp.int32))
    if not np.isfinite(float(lam)):
        raise nonfinite_error()
    return float(lam) + shift, np.asarray(v), bool(ok)


def _lanczos_sizes(k: int, n: int) -> tuple[int, int]:
    """Basis size ``m`` (ARPACK's default ``ncv = max(2k + 1, 20)``, plus ten) and the Ritz vectors kept at a
    restart (the wanted ones and half of the rest, which speeds up convergence of the wanted)."""
    m = min(n, max(2 * k + 1, 20) + 10)
    return m, min(m - 1, max(k, (m + k) // 2))


def _lanczos_eigen(g, x, n, dtype, *, k, which, tol, max_iter, key) -> Eigen:
    m, p = _lanczos_sizes(k, n)
    sign = 1.0 if which == "largest" else -1.0
    vals, vecs, ok, finite, asym, _ = _lanczos.eigsh(
        g, x, random_key_data(key), jnp.asarray(sign, dtype), jnp.asarray(tol, dtype),
        jnp.asarray(max_iter, jnp.int32), k=k, m=m, p=p)
    if not bool(finite):
        raise nonfinite_error()
    if float(asym) > symmetry_tol(dtype):
        raise asymmetry_error(float(asym))
    if not bool(ok):
        raise NumericalError(f"max_iter: Lanczos did not converge in {max_iter} restarts (tol={tol}); expected a "
                             "larger max_iter or tol")
    return Eigen(sign * np.asarray(vals), np.asarray(vecs), "lanczos")


def top_eigenvalues(f, params, *, k: int = 1, which: str = "largest", method: str = "lanczos",
                    tol: float | None = None, max_iter: int | None = None, key=None, layers=None) -> Eigen:
    """The ``k`` largest (or smallest: the most negative, at a saddle) Hessian eigenvalues at ``params``.

    Args:
        f: a :class:`dlnlab.Objective`, any :class:`dlnlab.AbstractObjective` (its ``.value``) or a callable
            ``params -> scalar`` on any pytree of params.
        k: how many (power iteration supports ``k=1`` only).
        which: ``"largest"`` or ``"smallest"`` (algebraic).
        method: ``"exact"`` (dense Hessian and ``eigh``), ``"lanczos"`` (compiled thick-restart Lanczos) or
            ``"power"`` (compiled power iteration; ``which="smallest"`` iterates on ``H - lambda_max I``).
        tol: relative tolerance of the iterative methods (default 1e-10; not for ``"exact"``).
        max_iter: Lanczos restarts (default 500) or power steps (default 10,000); not for ``"exact"``.
        key: seed or ``jax.random.key`` of the random start vector (default 0; not for ``"exact"``).
        layers: ``None`` (all parameters) or indices of parameter arrays (``jax.tree.leaves`` order; for a DLN
            ``params[i]``): the eigenvalues of the Hessian block of those layers, the others held fixed.

    An option that does not apply to the method is an error, not ignored.
    """
    one_of("method", method, METHODS)
    one_of("which", which, ("largest", "smallest"))
    k = as_int("k", k, low=1)
    if tol is not None:
        tol = as_float("tol", tol, low=0.0)
    if max_iter is not None:
        max_iter = as_int("max_iter", max_iter, low=1)
    if key is not None:
        key = as_key("key", key)
    if method == "exact":
        for name, value in (("tol", tol), ("max_iter", max_iter), ("key", key)):
            if value is not None:
                raise ConfigError(f"{name}: does not apply to method='exact' (a dense eigh has no {name}); "
                                  f"expected None, or method='lanczos' or 'power'")
    g, x, n, dtype = prepare(f, params, layers)
    if k > n:
        raise ConfigError(f"k: expected at most {n} (the number of parameters{' in the block' if layers else ''}), "
                          f"got {k}")
    if method == "power" and k != 1:
        raise ConfigError(f"k: power iteration finds one eigenvalue, expected k=1, got {k}")
    tol = _DEFAULT_TOL if tol is None else tol
    key = as_key("key", 0) if key is None else key
    if method == "lanczos" and k == n:  # every eigenvalue is asked for: the dense route is exact and cheaper
        method = "exact"
    if method == "exact":
        w, V = np.linalg.eigh(symmetric_dense(g, x))
        idx = np.arange(n)[::-1][:k] if which == "largest" else np.arange(k)
        return Eigen(w[idx], V[:, idx].T, "exact")
    if method == "lanczos":
        return _lanczos_eigen(g, x, n, dtype, k=k, which=which, tol=tol, key=key,
                        max_iter=_DEFAULT_RESTARTS if max_iter is None else max_iter)
    v0 = _start_vector(key, n, dtype)
    cap = _DEFAULT_POWER_STEPS if max_iter is None else max_iter
    top, v, ok = _power(g, x, v0, shift=0.0, tol=tol, max_iter=cap)
    if which == "largest" and top < 0:  # the dominant eigenvalue was negative: shift past it
        top, v, ok = _power(g, x, v0, shift=top, tol=tol, max_iter=cap)
    if which == "smallest":
        shift = abs(top) if top > 0 else 0.0
        lam, v, ok = _power(g, x, v0, shift=shift, tol=tol, max_iter=cap)
        top = lam if shift else top
    if not ok:
        raise NumericalError(f"max_iter: power iteration did not converge in {cap} steps (tol={tol}); expected a "
                             "larger max_iter, or method='lanczos'")
    return Eigen(np.array([top]), v[None, :], "power")


def sharpness(f, params, *, method: str = "lanczos", tol: float | None = None, layers=None) -> float:
    """The top Hessian eigenvalue (of the block of ``layers``, if given). With the library's squared loss (no 1/2)
    gradient descent with step ``eta`` is stable near a minimum only when sharpness <= 2 / eta."""
    return float(top_eigenvalues(f, params, k=1, which="largest", method=method, tol=tol, layers=layers).values[0])


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
    n = prepare(f, params)[2]
    w = top_eigenvalues(f, params, k=min(max_index, n - 1), which="smallest", method="lanczos").values
    top = top_eigenvalues(f, params, k=1, method="lanczos").values[0]
    return int(np.sum(w < -tol * max(1.0, abs(top), float(np.abs(w).max()))))

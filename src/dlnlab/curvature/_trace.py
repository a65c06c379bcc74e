"""The Hessian trace: exact (every diagonal entry), Hutchinson and Hutch++, each one compiled kernel."""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree

from .._checks import as_int, as_key, one_of
from ..errors import ConfigError
from ._operator import asymmetry_error, hvp_flat, nonfinite_error, prepare, random_key_data, stream_key, symmetry_tol

TRACE_METHODS = ("hutch++", "hutchinson", "exact")
_DEFAULT_SAMPLES = 100
_CHUNK = 10  # Hutchinson's vectors per chunk: each chunk's Gram block Z^T H Z is a free symmetry check


class TraceEstimate(NamedTuple):
    """A Hessian trace: ``value``, its standard error (0 for ``"exact"``; ``inf`` when one sample cannot tell),
    the number of Hessian-vector products spent and the method. ``float(est)`` is the value."""

    value: float
    std_error: float
    num_matvecs: int
    method: str

    def __float__(self) -> float:
        return float(self.value)


def _asymmetry(A, B, scale):
    """``max |A - B| / scale``: two forms of ``U^T H W``, one from ``H W`` and one from ``H U``, agree for a
    symmetric ``H`` (a free symmetry check from products the estimator needs anyway)."""
    return jnp.max(jnp.abs(A - B)) / jnp.where(scale > 0, scale, 1)


def _hvps(f, params, Z):
    # one product after another: on a CPU this measured faster than vmapped (batched) products, 2x for 33
    return jax.lax.map(lambda z: hvp_flat(f, params, z), Z)


@eqx.filter_jit
def _hutchinson(f, params, seed, *, num: int):
    """Mean and sample variance of ``z^T H z`` over ``num`` Rademacher vectors, and the relative asymmetry of the
    Gram blocks ``Z^T H Z`` of each chunk."""
    x, _ = ravel_pytree(params)
    chunks = -(-num // _CHUNK)

    def chunk(i):
        Z = jax.random.rademacher(stream_key(seed, 0, i), (_CHUNK, x.shape[0]), x.dtype)
        HZ = _hvps(f, params, Z)
        M = Z @ HZ.T
        scale = jnp.sqrt(x.shape[0]) * jnp.max(jnp.linalg.norm(HZ, axis=1))
        live = i * _CHUNK + jnp.arange(_CHUNK) < num  # the last chunk may be partly padding
        return jnp.where(live, jnp.diagonal(M), 0), live, _asymmetry(M, M.T, scale)

    q, live, asym = jax.lax.map(chunk, jnp.arange(chunks))
    q, live = q.ravel(), live.ravel()
    mean = jnp.sum(q) / num
    var = jnp.sum(jnp.where(live, (q - mean) ** 2, 0)) / jnp.maximum(num - 1, 1)
    return mean, var, jnp.max(asym)


def _orthonormal_rows(A):
    """An orthonormal basis of the rows of ``A`` (``s x n``, ``s << n``) by two passes of the Gram matrix's
    eigendecomposition (SVQB, Stathopoulos & Wu 2002): ``s^2 n`` work in matrix products, where XLA's CPU QR of a
    tall matrix took seconds; directions of a rank-deficient ``A`` (a low-rank Hessian) come out as zero rows."""
    for _ in range(2):
        lam, U = jnp.linalg.eigh(A @ A.T)
        keep = lam > 100 * A.shape[0] * jnp.finfo(A.dtype).eps * lam[-1]
        A = (U.T @ A) * jnp.where(keep, 1 / jnp.sqrt(jnp.where(keep, lam, 1)), 0)[:, None]
    return A


@eqx.filter_jit
def _hutchpp(f, params, seed, *, s: int, g: int):
    """Hutch++ (Meyer, Musco, Musco & Woodruff 2021, Algorithm 1): the exact trace on the range ``Q`` of ``H S``
    (``s`` sketch vectors) plus Hutchinson with ``g`` vectors on the rest, ``(I - QQ^T) H (I - QQ^T)``. Returns
    the estimate, the standard error of its Hutchinson part and the relative asymmetry."""
    x, _ = ravel_pytree(params)
    S = jax.random.rademacher(stream_key(seed, 1, 0), (s, x.shape[0]), x.dtype)
    HS = _hvps(f, params, S)
    Q = _orthonormal_rows(HS)
    HQ = _hvps(f, params, Q)
    scale = jnp.sqrt(x.shape[0]) * jnp.max(jnp.linalg.norm(HQ, axis=1))
    few = min(s, 4)  # a few rows suffice for the check and keep it O(s n)
    asym = _asymmetry(S[:few] @ HQ.T, HS[:few] @ Q.T, scale)  # S^T H Q against (H S)^T Q = S^T H^T Q
    G = jax.random.rademacher(stream_key(seed, 1, 1), (g, x.shape[0]), x.dtype)
    G = G - (G @ Q.T) @ Q
    HG = _hvps(f, params, G)
    q = jnp.sum(G * HG, axis=1)  # G is already projected, so G^T H G is G^T (I-QQ^T) H (I-QQ^T) G
    var = jnp.sum((q - jnp.mean(q)) ** 2) / max(g - 1, 1)
    return jnp.sum(Q * HQ) + jnp.mean(q), jnp.sqrt(var / g), asym


@eqx.filter_jit
def _exact(f, params):
    """The trace as the sum of ``e_i^T H e_i`` over the basis, in chunks (memory O(chunk n), n products), and the
    relative asymmetry of each chunk's principal block."""
    x, _ = ravel_pytree(params)
    n = x.shape[0]
    chunks = -(-n // _CHUNK)

    def chunk(i):
        idx = i * _CHUNK + jnp.arange(_CHUNK)
        E = jax.nn.one_hot(idx, n, dtype=x.dtype)  # rows past n are zero vectors
        HE = _hvps(f, params, E)
        B = HE[:, jnp.minimum(idx, n - 1)] * (idx < n)[None, :] * (idx < n)[:, None]
        scale = jnp.max(jnp.linalg.norm(HE, axis=1))
        return jnp.trace(B), _asymmetry(B, B.T, scale)

    d, asym = jax.lax.map(chunk, jnp.arange(chunks))
    return jnp.sum(d), jnp.max(asym)


def trace(f, params, *, method: str = "hutch++", num_samples: int | None = None, key=None,
          layers=None) -> TraceEstimate:
    """The trace of the Hessian of ``f`` at ``params`` (of the block of ``layers``, if given).

    Args:
        f: a :class:`dlnlab.Objective`, any :class:`dlnlab.AbstractObjective` or a callable ``params -> scalar``.
        method: ``"hutch++"`` (default: Meyer et al. 2021, error O(1/num_samples) on a decaying spectrum),
            ``"hutchinson"`` (Hutchinson 1989, Rademacher vectors, variance ``2 ||H||_F^2 - 2 sum_i H_ii^2`` over
            ``num_samples``) or ``"exact"`` (the sum of ``e_i^T H e_i``: one product per parameter).
        num_samples: the budget in Hessian-vector products (default 100; Hutch++ splits it in three, so it needs
            at least 3); not for ``"exact"``.
        key: seed or ``jax.random.key`` of the random vectors (default 0); not for ``"exact"``.
        layers: ``None`` or indices of parameter arrays: the trace of that Hessian block.

    Returns a :class:`TraceEstimate` (``float(...)`` is the value). Every method also checks, from products it
    computes anyway, that the Hessian-vector product is symmetric and finite.

    Example:
        >>> import jax.numpy as jnp
        >>> f = lambda p: jnp.sum(jnp.arange(1.0, 4.0) * p ** 2)          # Hessian diag(2, 4, 6)
        >>> float(trace(f, jnp.ones(3), method="exact"))
        12.0
    """
    one_of("method", method, TRACE_METHODS)
    if method == "exact":
        for name, value in (("num_samples", num_samples), ("key", key)):
            if value is not None:
                raise ConfigError(f"{name}: does not apply to method='exact' (every diagonal entry is computed); "
                                  "expected None, or method='hutch++' or 'hutchinson'")
    num = _DEFAULT_SAMPLES if num_samples is None else as_int("num_samples", num_samples, low=1)
    if method == "hutch++" and num < 3:
        raise ConfigError(f"num_samples: hutch++ splits its budget in three (sketch, projection, residual); "
                          f"expected at least 3, got {num}")
    key = as_key("key", 0 if key is None else key)
    g, x, n, dtype = prepare(f, params, layers)
    if method == "exact":
        value, asym = _exact(g, x)
        std, used = 0.0, n
    elif method == "hutchinson":
        value, var, asym = _hutchinson(g, x, random_key_data(key), num=num)
        std, used = (float(np.sqrt(var / num)) if num > 1 else float("inf")), num
    else:
        s = num // 3
        value, std, asym = _hutchpp(g, x, random_key_data(key), s=s, g=num - 2 * s)
        std, used = (float(std) if num - 2 * s > 1 else float("inf")), num
    value = float(value)
    if not np.isfinite(value):
        raise nonfinite_error()
    if float(asym) > symmetry_tol(dtype):
        raise asymmetry_error(float(asym))
    return TraceEstimate(value, std, used, method)

"""Spectral diagnostics of layers and of the end-to-end matrix.

None of these functions is meant to be differentiated: SVD gradients are NaN at degenerate spectra (identity,
orthogonal, balanced and low-rank points are all degenerate), so dlnlab computes them on values only.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..nets import end_to_end

__all__ = [
    "end_to_end", "singular_values", "numerical_rank", "effective_rank", "alignment", "rank_one_ratio",
    "layer_norms",
]


def singular_values(A) -> jax.Array:
    """Singular values of a matrix, in decreasing order."""
    return jnp.linalg.svd(jax.lax.stop_gradient(jnp.asarray(A)), compute_uv=False)


def _spectrum(x) -> jax.Array:
    x = jnp.asarray(x)
    return singular_values(x) if x.ndim == 2 else jnp.sort(jnp.abs(x))[::-1]


def numerical_rank(x, *, rtol: float = 1e-3, atol: float = 0.0) -> jax.Array:
    """Number of singular values above ``max(atol, rtol * s_max)``; ``x`` is a matrix or its singular values."""
    s = _spectrum(x)
    return jnp.sum(s > jnp.maximum(atol, rtol * s[0])).astype(jnp.int32)


def effective_rank(x) -> jax.Array:
    """Entropy effective rank ``exp(-sum p_i log p_i)`` with ``p = s / sum(s)`` (Roy and Vetterli, 2007).

    Continuous in the matrix: 1 for rank one, ``r`` for ``r`` equal singular values, 0 for the zero matrix.
    """
    s = _spectrum(x)
    total = jnp.sum(s)
    p = s / jnp.where(total > 0, total, 1.0)
    h = -jnp.sum(jnp.where(p > 0, p * jnp.log(jnp.where(p > 0, p, 1.0)), 0.0))
    return jnp.where(total > 0, jnp.exp(h), 0.0)


def layer_norms(params) -> jax.Array:
    """Frobenius norm of every layer."""
    return jnp.stack([jnp.linalg.norm(W) for W in params])


def rank_one_ratio(params) -> jax.Array:
    """``||W_i||_2 / ||W_i||_F`` for every layer: 1 exactly when the layer has rank one (ji2019)."""
    out = []
    for W in params:
        s = singular_values(W)
        out.append(s[0] / jnp.maximum(jnp.linalg.norm(s), jnp.finfo(s.dtype).tiny))
    return jnp.stack(out)


def alignment(params) -> jax.Array:
    """``|v_{i+1}^T u_i|`` per adjacent pair: the top right singular vector of ``W_{i+1}`` against the top left
    singular vector of ``W_i`` (1 = aligned, as in ji2019). Empty for a single layer."""
    tops = []
    for W in params:
        U, _, Vt = jnp.linalg.svd(jax.lax.stop_gradient(W), full_matrices=False)
        tops.append((U[:, 0], Vt[0]))
    vals = [jnp.abs(jnp.dot(tops[i + 1][1], tops[i][0])) for i in range(len(params) - 1)]
    return jnp.stack(vals) if vals else jnp.zeros((0,))

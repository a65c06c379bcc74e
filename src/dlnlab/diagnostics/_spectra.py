"""Spectral diagnostics of layers and of the end-to-end matrix.

None of these functions is meant to be differentiated: SVD gradients are NaN at degenerate spectra (identity,
orthogonal, balanced and low-rank points are all degenerate), so dlnlab computes them on values only.

Every function checks its arguments (a :class:`dlnlab.errors.DataError` naming the argument for a wrong type,
shape or dtype, a NaN or an inf; a :class:`dlnlab.errors.ConfigError` for a bad tolerance). Values are checked
only on concrete arrays, so the functions stay free inside jit and vmap.

Example:
    >>> import numpy as np, dlnlab as dl
    >>> int(dl.diagnostics.numerical_rank(np.diag([3.0, 1.0, 1e-9])))
    2
"""

from __future__ import annotations

import jax
import jax.numpy as jnp

from .. import nets
from ._validate import array, layers, tolerance

__all__ = [
    "end_to_end", "singular_values", "numerical_rank", "effective_rank", "alignment", "rank_one_ratio",
    "layer_norms",
]

_MATRIX = "a matrix (2-D, or a stack of matrices)"
_SPECTRUM = "a matrix (2-D) or its singular values (1-D)"


def end_to_end(params) -> jax.Array:
    """The end-to-end matrix ``A = W_L @ ... @ W_1`` (differentiable; no SVD; leading batch axes allowed)."""
    return nets.end_to_end(layers(params, batch=True))


@jax.custom_batching.custom_vmap
def svdvals(A) -> jax.Array:
    """``jnp.linalg.svd(A, compute_uv=False)`` that stays safe under ``vmap`` inside a compiled loop."""
    return jnp.linalg.svd(A, compute_uv=False)


@svdvals.def_vmap
def _svdvals_one_at_a_time(axis_size, in_batched, A):
    # jaxlib's batched CPU SVD spreads its batch over XLA's thread pool; inside a compiled while loop that
    # already holds the pool's threads (a vmapped flow recording layer spectra, width 256 on 2 cores) it
    # waits forever. A scan over the batch calls the unbatched kernel, which needs no pool.
    if not in_batched[0]:
        return svdvals(A), False
    return jax.lax.map(svdvals, A), True


def singular_values(A) -> jax.Array:
    """Singular values of a matrix (or of every matrix of a stack), in decreasing order."""
    A = array("A", A, ndim=range(2, 8), want=_MATRIX)
    return svdvals(jax.lax.stop_gradient(A))


def _spectrum(x) -> jax.Array:
    x = array("x", x, ndim=(1, 2), want=_SPECTRUM)
    return singular_values(x) if x.ndim == 2 else jnp.sort(jnp.abs(x))[::-1]


def numerical_rank(x, *, rtol: float = 1e-3, atol: float = 0.0) -> jax.Array:
    """Number of singular values above ``max(atol, rtol * s_max)``; ``x`` is a matrix or its singular values
    (absolute values are taken)."""
    rtol, atol = tolerance("rtol", rtol), tolerance("atol", atol)
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


def _fro(x) -> jax.Array:
    """``||x||_F`` scaled by the largest entry, so that tiny weights (squares below the float range) do not
    underflow to 0."""
    m = jnp.max(jnp.abs(x))
    safe = jnp.where(m > 0, m, 1.0)
    return jnp.where(m > 0, safe * jnp.sqrt(jnp.sum((x / safe) ** 2)), 0.0)


def layer_norms(params) -> jax.Array:
    """Frobenius norm of every layer."""
    return jnp.stack([_fro(W) for W in layers(params)])


def rank_one_ratio(params) -> jax.Array:
    """``||W_i||_2 / ||W_i||_F`` for every layer: 1 exactly when the layer has rank one (ji2019); 0 for a zero
    layer."""
    out = []
    for W in layers(params):
        s = singular_values(W)
        top = jnp.where(s[0] > 0, s[0], 1.0)  # computed as 1 / ||s / s_1||: no underflow, always <= 1
        out.append(jnp.where(s[0] > 0, 1.0 / jnp.sqrt(jnp.sum((s / top) ** 2)), 0.0))
    return jnp.stack(out)


def alignment(params) -> jax.Array:
    """``|v_{i+1}^T u_i|`` per adjacent pair: the top right singular vector of ``W_{i+1}`` against the top left
    singular vector of ``W_i`` (1 = aligned, as in ji2019). Empty for a single layer."""
    params = layers(params)
    tops = []
    for W in params:
        U, _, Vt = jnp.linalg.svd(jax.lax.stop_gradient(W), full_matrices=False)
        tops.append((U[:, 0], Vt[0]))
    vals = [jnp.abs(jnp.dot(tops[i + 1][1], tops[i][0])) for i in range(len(params) - 1)]
    return jnp.stack(vals) if vals else jnp.zeros((0,))

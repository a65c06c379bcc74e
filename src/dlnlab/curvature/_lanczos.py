"""Lanczos on Hessian-vector products, compiled whole: extreme eigenvalues (thick restart) and quadrature (SLQ).

One Lanczos step applies the operator to the newest basis vector and orthogonalises the result against the whole
basis twice (classical Gram-Schmidt twice, "twice is enough": full reorthogonalisation, so no ghost eigenvalues).
The projection coefficients ``h = V^T (H v_j)`` are kept whole as column ``j`` of ``T``; for a symmetric operator
``T`` is tridiagonal (arrowhead after a restart) and its row ``j`` (set by earlier steps) equals column ``j``, so the
largest ``|T[j, :j] - T[:j, j]|`` measures the asymmetry of the user's Hessian-vector product at no extra cost.
An invariant subspace (``beta ~ 0``, common for the low-rank Hessians of deep linear nets) continues with a random
vector orthogonal to the basis and a zero coupling, so repeated eigenvalues are found and quadrature weights stay
exact.

Extreme eigenvalues use thick restart (Wu & Simon 2000; a symmetric Krylov-Schur): after ``m`` steps the ``p``
best Ritz vectors and the residual vector become the first ``p + 1`` basis vectors and the iteration continues;
the whole loop, restarts included, is one compiled ``while_loop`` (no Python round trip per product, unlike
ARPACK). Converged when every wanted Ritz pair has residual ``|beta_m y_{m,i}| <= max(tol |theta_i|,
eps^(2/3) ||H||)`` (ARPACK's test, with the absolute floor scaled by the largest Ritz value seen).
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
from jax.flatten_util import ravel_pytree

from ._operator import hvp_flat, stream_key


def _orthogonalise(V, w):
    """``w`` minus its projection on the rows of ``V`` (unused rows are zero), twice; and the coefficients."""
    h = V @ w
    w = w - h @ V
    h2 = V @ w
    return w - h2 @ V, h + h2


def _expand(matvec, V, T, j, seed, stream, anorm, asym):
    """Lanczos step ``j``: column ``j`` of ``T`` and basis vector ``j + 1`` (rows ``> j`` of ``V`` are zero).

    The three-term recurrence is applied first (two dot products), so what is left is nearly orthogonal to the
    basis and one classical Gram-Schmidt pass removes the rest without cancellation; a second pass runs only when
    the first removed more than 30 % of the norm (the DGKS test). Each pass reads the whole basis twice, which
    costs more than the product itself on large nets, so the second is paid only when it matters."""
    m = T.shape[1]
    u = matvec(V[j])
    prev = V[jnp.maximum(j - 1, 0)] * (j > 0)
    a, c = jnp.vdot(V[j], u), jnp.vdot(prev, u)
    w = u - a * V[j] - c * prev
    h = V @ w
    w2 = w - h @ V

    def again(w2):
        h2 = V @ w2
        return w2 - h2 @ V, h + h2

    w, h = jax.lax.cond(jnp.linalg.norm(w2) < 0.7 * jnp.linalg.norm(w), again, lambda w2: (w2, h), w2)
    h = h.at[j].add(a).at[jnp.maximum(j - 1, 0)].add(c)
    beta = jnp.linalg.norm(w)
    anorm = jnp.maximum(anorm, jnp.sqrt(jnp.vdot(h, h) + beta**2))
    asym = jnp.maximum(asym, jnp.max(jnp.where(jnp.arange(m) < j, jnp.abs(h[:m] - T[j]), 0)))
    broke = beta <= 1e3 * jnp.finfo(w.dtype).eps * anorm

    def fresh(_):
        r = jax.random.normal(stream_key(seed, stream, j), w.shape, w.dtype)
        r = _orthogonalise(V, r)[0]
        r = _orthogonalise(V, r)[0]
        nr = jnp.linalg.norm(r)
        return jnp.where(nr > 0, r / jnp.where(nr > 0, nr, 1), 0)

    v_next = jax.lax.cond(broke, fresh, lambda _: w / jnp.where(beta > 0, beta, 1), None)
    h = h.at[j + 1].set(jnp.where(broke, 0, beta))
    return V.at[j + 1].set(v_next), T.at[:, j].set(h), anorm, asym


def _run(matvec, V, T, start, stop, seed, stream, anorm, asym):
    def body(j, c):
        return _expand(matvec, *c[:2], j, seed, stream, *c[2:])

    return jax.lax.fori_loop(start, stop, body, (V, T, anorm, asym))


def _sym(T):
    m = T.shape[1]
    return (T[:m] + T[:m].T) / 2


@eqx.filter_jit
def eigsh(f, params, seed, sign, tol, max_restarts, *, k: int, m: int, p: int):
    """The ``k`` algebraically largest eigenpairs of ``sign * H`` by thick-restart Lanczos with ``m`` basis
    vectors, keeping ``p`` Ritz vectors at a restart. Returns ``(values, vectors (k, n), converged, finite,
    asymmetry / ||H||, number of products)``; values largest first."""
    x, _ = ravel_pytree(params)
    n, dtype = x.shape[0], x.dtype
    matvec = lambda v: sign * hvp_flat(f, params, v)
    v0 = jax.random.normal(stream_key(seed, 0, 0), (n,), dtype)
    V = jnp.zeros((m + 1, n), dtype).at[0].set(v0 / jnp.linalg.norm(v0))
    T = jnp.zeros((m + 1, m), dtype)
    floor = jnp.finfo(dtype).eps ** (2 / 3)
    zero = jnp.zeros((), dtype)

    def ritz(T):
        theta, Y = jnp.linalg.eigh(_sym(T))
        resid = jnp.abs(T[m, m - 1] * Y[m - 1])
        scale = jnp.max(jnp.abs(theta))
        ok = resid <= jnp.maximum(tol * jnp.abs(theta), floor * scale)
        return theta, Y, jnp.all(ok[m - k:])

    def restart(V, T, theta, Y):
        Vn = jnp.zeros_like(V).at[:p].set(Y[:, m - p:].T @ V[:m]).at[p].set(V[m])
        Tn = jnp.zeros_like(T).at[jnp.arange(p), jnp.arange(p)].set(theta[m - p:])
        return Vn, Tn.at[p, :p].set(T[m, m - 1] * Y[m - 1, m - p:])

    def cond(s):
        return ~s["done"] & (s["restarts"] <= max_restarts)

    def body(s):
        V, T, anorm, asym = _run(matvec, s["V"], s["T"], s["start"], m, seed, s["restarts"] + 1, s["anorm"],
                                 s["asym"])
        theta, Y, ok = ritz(T)
        finite = jnp.all(jnp.isfinite(T)) & jnp.isfinite(anorm)
        done = ok | ~finite
        V, T = jax.lax.cond(done, lambda *a: (V, T), restart, V, T, theta, Y)
        return dict(V=V, T=T, start=jnp.asarray(p), restarts=s["restarts"] + 1, done=done, ok=ok, finite=finite,
                    anorm=anorm, asym=asym, matvecs=s["matvecs"] + m - s["start"])

    init = dict(V=V, T=T, start=jnp.asarray(0), restarts=jnp.asarray(0), done=jnp.asarray(False),
                ok=jnp.asarray(False), finite=jnp.asarray(True), anorm=zero, asym=zero, matvecs=jnp.asarray(0))
    s = jax.lax.while_loop(cond, body, init)
    theta, Y = jnp.linalg.eigh(_sym(s["T"]))
    top = jnp.arange(m - 1, m - k - 1, -1)
    vectors = Y[:, top].T @ s["V"][:m]
    return theta[top], vectors, s["ok"], s["finite"], s["asym"] / s["anorm"], s["matvecs"]


def tridiagonal(matvec, v0, m: int, seed, stream):
    """``m`` Lanczos steps from ``v0`` (any norm): the symmetric tridiagonal ``T`` (m x m), whether everything was
    finite, the relative asymmetry and the basis ``V`` (m x n). Pure and traceable."""
    n = v0.shape[0]
    V = jnp.zeros((m + 1, n), v0.dtype).at[0].set(v0 / jnp.linalg.norm(v0))
    T = jnp.zeros((m + 1, m), v0.dtype)
    zero = jnp.zeros((), v0.dtype)
    V, T, anorm, asym = _run(matvec, V, T, 0, m, seed, stream, zero, zero)
    return _sym(T), jnp.all(jnp.isfinite(T)), asym / anorm, V[:m]


def lanczos_step(f, params, v, steps: int):
    """Top Ritz pair of the Hessian of ``f`` at ``params`` on the Krylov space of ``v`` with ``steps`` products.

    Pure and jittable (no validation, no host round trip): for a sharpness tracked inside a compiled training loop,
    warm-started from the previous record's vector. The value is a Rayleigh-Ritz value of an orthonormal basis:
    never above the true top eigenvalue, equal to it once the top eigenvector lies in the space. Unlike power
    iteration it targets the algebraically largest eigenvalue, also where a negative eigenvalue is larger in size.

    Returns ``(theta, u)``: the value and its unit Ritz vector (flattened like the params).
    """
    steps = min(int(steps), v.shape[0])
    T, _, _, V = tridiagonal(lambda w: hvp_flat(f, params, w), v, steps, jnp.zeros(2, jnp.uint32), 0)
    theta, Y = jnp.linalg.eigh(T)
    return theta[-1], Y[:, -1] @ V

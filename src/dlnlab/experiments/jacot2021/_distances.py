"""jacot2021, the gamma = 1 transition at initialisation: distances from a ``sigma^2 = w^-gamma`` init of a
depth-2 net to the saddle set and to the set of global minima, each between a rigorous lower and upper bound.

Bounds (library cost, any convex ``C``; ``theta_0 = (W_1, W_2)``, hidden width ``w >= d_in, d_out``):

- saddles, upper: ``||theta_0||`` (:func:`dlnlab.theory.saddles.saddle_distance`: zeroing both layers gives a
  critical point with ``grad C(0) != 0``);
- saddles, lower: ``sqrt(s_min(W_1)^2 + s_min(W_2)^2)``. At a critical point that is not a global minimum
  ``G = grad C(A) != 0`` while ``W_2^T G = 0`` and ``G W_1^T = 0``, so ``W_2`` has row rank ``< d_out`` and
  ``W_1`` column rank ``< d_in``; the Frobenius distance to such matrices is at least the smallest singular value
  (Eckart-Young-Mirsky);
- global minima, upper: the Gauss-Newton distance of :func:`~dlnlab.theory.saddles.init_distances` (a point of
  the set), where it converges;
- global minima, lower: the larger of ``init_distances``' operator-norm bound and the residual bound: the
  global minima satisfy ``E vec(A) = E vec(A*)`` (``E`` with orthonormal rows), and a move of size ``d`` in every
  layer changes ``A`` by at most ``prod_l (||W_l||_2 + d) - prod_l ||W_l||_2`` in Frobenius norm, so ``d`` must
  reach the projected residual ``||E vec(A* - A_0)||``.
"""

from __future__ import annotations

import numpy as np
import scipy.optimize

from ...diagnostics import end_to_end
from ...theory import saddles as sd

__all__ = ["saddle_bounds", "global_min_bounds", "distance_study"]


def saddle_bounds(params) -> tuple[float, float]:
    """(lower, upper) bounds on the distance from depth-2 ``params`` to the saddle set (module docstring)."""
    W1, W2 = (np.asarray(W, float) for W in params)
    low = float(np.hypot(np.linalg.svd(W1, compute_uv=False)[-1], np.linalg.svd(W2, compute_uv=False)[-1]))
    return low, sd.saddle_distance(params)


def global_min_bounds(prob, params, *, max_iter: int = 50) -> tuple[float, float]:
    """(lower, upper) bounds on the distance from ``params`` to the global minima (upper ``nan`` when
    Gauss-Newton does not converge)."""
    dist = sd.init_distances(prob, params, max_iter=max_iter)
    A = np.asarray(end_to_end(tuple(params)), float)
    target = np.asarray(prob.Syx, float) @ np.linalg.pinv(np.asarray(prob.Sxx, float))
    lam, Q = np.linalg.eigh(np.asarray(prob.Sxx, float))
    r = float(np.linalg.norm((target - A) @ Q[:, lam > 1e-12 * lam.max()]))
    norms = np.array([np.linalg.norm(np.asarray(W, float), 2) for W in params])
    p0 = float(np.prod(norms))

    def gap(d):
        return float(np.prod(norms + d)) - p0 - r

    hi = 1.0
    while gap(hi) < 0:
        hi *= 2.0
    low = scipy.optimize.brentq(gap, 0.0, hi, xtol=1e-12) if r > 0 else 0.0
    return max(low, dist.global_min_lower_bound), (dist.to_global_min if dist.converged else np.nan)


def _draw(prob, w, draw, seed):
    rng = np.random.default_rng([seed, w, draw])
    return (rng.normal(size=(w, prob.d_in)), rng.normal(size=(prob.d_out, w)))


def _bracket(prob, z, w):
    """The certified transition bracket for one standard-normal draw ``z`` at width ``w``: ``gamma_lo`` where
    the global-minimum upper bound meets the saddle lower bound (below it the init is provably nearer a global
    minimum), ``gamma_hi`` where the saddle upper bound meets the global-minimum lower bound (above it provably
    nearer a saddle)."""
    def scaled(g):
        return tuple(W * w ** (-g / 2) for W in z)

    def f_lo(g):
        p = scaled(g)
        up = global_min_bounds(prob, p)[1]
        return np.log(up / saddle_bounds(p)[0]) if np.isfinite(up) else 10.0

    def f_hi(g):
        p = scaled(g)
        return np.log(saddle_bounds(p)[1] / global_min_bounds(prob, p, max_iter=1)[0])

    return _root(f_lo, 0.0, 1.5), _root(f_hi, 0.5, 4.0)


def _root(f, a, b, n=16):
    """The first sign change of ``f`` on a grid of ``[a, b]``, refined by Brent's method (``nan`` if none)."""
    grid = np.linspace(a, b, n)
    vals = np.array([f(g) for g in grid])
    change = np.flatnonzero(np.sign(vals[:-1]) != np.sign(vals[1:]))
    if change.size == 0:
        return np.nan
    i = int(change[0])
    return scipy.optimize.brentq(f, grid[i], grid[i + 1], xtol=1e-5)


def distance_study(*, seed: int, widths, gammas, draws: int, bracket_widths, bracket_draws: int) -> dict:
    """Bounds on both distances for every (gamma, width, draw), and the transition brackets per (width, draw)."""
    from . import regression_problem

    prob = regression_problem(seed)
    shape = (len(gammas), len(widths), draws)
    out = {k: np.zeros(shape) for k in ("saddle_lo", "saddle_up", "global_lo", "global_up")}
    for j, w in enumerate(widths):
        for d in range(draws):
            z = _draw(prob, int(w), d, seed)
            for i, g in enumerate(gammas):
                p = tuple(W * w ** (-g / 2) for W in z)
                out["saddle_lo"][i, j, d], out["saddle_up"][i, j, d] = saddle_bounds(p)
                out["global_lo"][i, j, d], out["global_up"][i, j, d] = global_min_bounds(prob, p)
    out["bracket"] = np.array([[_bracket(prob, _draw(prob, int(w), 1000 + d, seed), int(w))
                                for d in range(bracket_draws)] for w in bracket_widths])
    return out

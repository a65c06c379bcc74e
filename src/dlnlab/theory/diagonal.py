"""Implicit bias of diagonal linear networks: kernel and rich regimes (Woodworth et al. 2020).

A depth-``D`` diagonal network ``beta = w_+^D - w_-^D`` (elementwise), initialised at ``w_+ = w_- = alpha`` (so
``beta(0) = 0``), trained by gradient flow on any loss of ``X beta`` (the library's ``(1/n) ||X beta - y||^2`` or
another scaling: only the time changes) of underdetermined data ``X beta = y``, converges to

    beta_alpha = argmin Q_alpha(beta)  subject to  X beta = y,     Q_alpha(beta) = alpha^D sum_i q_D(beta_i / alpha^D).

* ``D = 2``: ``q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z / 2)`` (``q'(z) = arcsinh(z / 2)``), the hyperbolic entropy;
  equivalently ``alpha^2 q(beta / alpha^2) = min_{u - v = beta} sum u log(u / alpha^2) - u + v log(v / alpha^2) - v
  + 2 alpha^2`` over ``u, v >= 0`` (``u = w_+^2``, ``v = w_-^2``), which is how the conic solver states it.
* ``D > 2``: ``q_D' = h_D^(-1)`` with ``h_D(s) = (1 - s)^(-D/(D-2)) - (1 + s)^(-D/(D-2))`` on ``(-1, 1)``.

Why: the flow solves to ``w_+ = alpha (1 + c r)^(-1/(D-2))``, ``w_- = alpha (1 - c r)^(-1/(D-2))`` with
``r(t) = int grad_beta L dt`` in the row space of ``X`` and ``c = D (D-2) alpha^(D-2)``
(``w_(+/-) = alpha exp(-/+ 2 r)`` for ``D = 2``), so ``beta(t) = alpha^D h_D(X^T nu(t))`` at every time
(``2 alpha^2 sinh(X^T nu(t))`` for ``D = 2``), and the interpolator of that form is the KKT point of the problem
above. This module solves its dual ``min_nu alpha^D sum_i H_D(x_i^T nu) - y^T nu`` (``H_D' = h_D``) by damped
Newton (default) or the problem with a conic solver (clarabel through cvxpy). As ``alpha -> 0`` the solution tends
to the minimum-l1 interpolator (:func:`min_l1_interpolator`, a linear program), as ``alpha -> inf`` to the
minimum-l2 one (:func:`min_l2_interpolator`, ``pinv(X) y``).

Example:
    >>> import numpy as np
    >>> from dlnlab.theory.diagonal import implicit_bias, min_l1_interpolator, min_l2_interpolator
    >>> X = np.array([[1.0, 2.0, 0.5]]); y = np.array([1.0])
    >>> min_l2_interpolator(X, y).round(4).tolist(), min_l1_interpolator(X, y).round(4).tolist()   # X^T / 5.25
    ([0.1905, 0.381, 0.0952], [0.0, 0.5, 0.0])
    >>> implicit_bias(X, y, alpha=1e-5).beta.round(4).tolist()     # rich regime: (near) min-l1
    [0.0, 0.5, 0.0]
    >>> implicit_bias(X, y, alpha=100.0).beta.round(4).tolist()    # kernel regime: (near) min-l2
    [0.1905, 0.381, 0.0952]

Reference: B. Woodworth, S. Gunasekar, J. D. Lee, E. Moroshko, P. Savarese, I. Golan, D. Soudry, N. Srebro,
"Kernel and Rich Regimes in Overparametrized Models", COLT 2020 (arXiv:2002.09277), Theorems 1 and 3.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from scipy.optimize import linprog

from .._checks import as_array, as_float, as_int, one_of
from ..errors import DataError, NumericalError

__all__ = ["ImplicitBias", "potential", "link", "implicit_bias", "min_l1_interpolator", "min_l2_interpolator"]

# Relative residual ||X pinv(X) y - y|| / ||y|| above which X beta = y is declared to have no solution.
_INTERP_TOL = 1e-8
# Newton may stall above ``tol`` when float64 cannot resolve z = X^T nu near +-1 (depth > 2, tiny alpha: the residual
# floor is about eps / (1 - |z|)); a stalled solve is accepted (its residual reported) only below this.
_FLOOR = 1e-6
# A conic solution whose KKT residuals exceed this is rejected rather than returned.
_CONIC_TOL = 1e-6
# Clarabel's defaults (1e-8 relative gap) leave the solution ~1e-4 off here: the objective is dominated by terms that
# do not move beta, so tighter gaps are asked for (it reports "optimal_inaccurate" when it cannot reach them).
_CLARABEL_OPTS = {"tol_gap_abs": 1e-13, "tol_gap_rel": 1e-13, "tol_feas": 1e-13, "tol_ktratio": 1e-10,
                  "max_iter": 400}


def _data(X, y) -> tuple[np.ndarray, np.ndarray]:
    X = as_array("X", X, ndim=2)
    y = as_array("y", y, ndim=1)
    if X.shape[0] != y.shape[0]:
        raise DataError(f"y: expected {X.shape[0]} values (one per row of X), got {y.shape[0]}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"X: expected a non-empty (n, d) matrix, got shape {X.shape}")
    beta = np.linalg.pinv(X) @ y
    res = np.linalg.norm(X @ beta - y)
    if res > _INTERP_TOL * max(np.linalg.norm(y), np.finfo(float).tiny):
        raise DataError(f"y: not interpolable, X beta = y has no solution (least-squares relative residual "
                        f"{res / np.linalg.norm(y):.2e}); expected y in the column space of X (e.g. n <= d and "
                        "X of full row rank)")
    return X, y


def _depth(depth) -> int:
    return as_int("depth", depth, low=2)


def _alpha(alpha) -> float:
    return as_float("alpha", alpha, low=0.0, low_open=True)


def link(z, alpha: float, depth: int = 2) -> np.ndarray:
    """``beta = alpha^D h_D(z)``: the form the flow keeps, with ``z = X^T nu`` in the row space of ``X``.

    ``h_2(z) = 2 sinh(z)``; ``h_D(z) = (1 - z)^(-D/(D-2)) - (1 + z)^(-D/(D-2))`` for ``|z| < 1``, ``D > 2``.

    Example:
        >>> round(float(link(np.log(2.0), alpha=1.0)), 6)      # 2 sinh(log 2) = 2 - 1/2
        1.5
    """
    D, a = _depth(depth), _alpha(alpha)
    z = np.asarray(z, dtype=np.float64)
    if D > 2 and np.any(np.abs(z) >= 1):
        raise DataError(f"z: expected |z| < 1 for depth {D}, got {float(np.abs(z).max())}")
    return _scaled(z, D, D * np.log(a))[1]


def _H(z, D):
    """(H_D, h_D, h_D') at z, with H_D(0) = 0 and H_D' = h_D; written with expm1/log1p so that small z (large
    alpha) does not cancel: (1 -+ z)^(-q) - 1 = expm1(-q log1p(-+z))."""
    if D == 2:
        s2, c2 = np.sinh(z / 2), np.cosh(z / 2)
        return 4 * s2 * s2, 4 * s2 * c2, 2 * np.cosh(z)
    p = 2.0 / (D - 2)
    lm, lp = np.log1p(-z), np.log1p(z)
    H = (D - 2) / 2.0 * (np.expm1(-p * lm) + np.expm1(-p * lp))
    h = np.expm1(-(1 + p) * lm) - np.expm1(-(1 + p) * lp)
    dh = (1 + p) * (np.exp(-(2 + p) * lm) + np.exp(-(2 + p) * lp))
    return H, h, dh


def _inverse_h(z, D):
    """s with h_D(s) = z (vectorised bisection on (-1, 1), then Newton; h_D is odd and increasing)."""
    if D == 2:
        return np.arcsinh(z / 2)
    lo, hi = -np.ones_like(z), np.ones_like(z)
    for _ in range(80):
        mid = 0.5 * (lo + hi)
        up = _H(mid, D)[1] < z
        lo, hi = np.where(up, mid, lo), np.where(up, hi, mid)
    s = 0.5 * (lo + hi)
    for _ in range(3):
        _, h, dh = _H(s, D)
        s = np.clip(s - (h - z) / dh, lo, hi)
    return s


def potential(beta, alpha: float, depth: int = 2) -> float:
    """``Q_alpha(beta) = alpha^D sum_i q_D(beta_i / alpha^D)`` with ``q_D(0) = 0``, ``q_D' = h_D^(-1)``.

    ``D = 2``: ``q(z) = 2 - sqrt(4 + z^2) + z arcsinh(z / 2)``; ``D > 2``: ``q_D(z) = z s - H_D(s)`` at
    ``s = h_D^(-1)(z)`` (a Legendre transform; ``H_D(s) = (D-2)/2 ((1-s)^(-2/(D-2)) + (1+s)^(-2/(D-2)) - 2)``).

    Example:
        >>> round(potential([2.0], alpha=1.0), 6)               # 2 - sqrt(8) + 2 arcsinh(1)
        0.93432
    """
    D, a = _depth(depth), _alpha(alpha)
    b = as_array("beta", beta, ndim=1)
    z = b / a**D
    if D == 2:
        q = 2 - np.hypot(2.0, z) + z * np.arcsinh(z / 2)  # hypot: no overflow of z**2 at tiny alpha
    else:
        s = _inverse_h(z, D)
        q = z * s - _H(s, D)[0]
    return float(a**D * np.sum(q))


@dataclass(frozen=True)
class ImplicitBias:
    """Limit of the diagonal network's gradient flow.

    Attributes:
        beta: ``argmin Q_alpha(beta) s.t. X beta = y``, shape ``(d,)``.
        nu: dual variables, ``beta = link(X^T nu, alpha, depth)``, shape ``(n,)``.
        residual: ``||X beta - y|| / ||y||`` (primal feasibility).
        stationarity: distance of ``grad Q_alpha(beta) = h_D^(-1)(beta / alpha^D)`` from the row space of ``X``,
            relative to its norm (the other KKT condition; 0 at the exact solution).
        potential: ``Q_alpha(beta)``.
        solver: "newton" or "clarabel".
    """

    beta: np.ndarray
    nu: np.ndarray
    residual: float
    stationarity: float
    potential: float
    solver: str


def _scaled(z, D, log_scale):
    """alpha^D (H_D, h_D, h_D') at z; for D = 2 as products of alpha sinh(z/2) and alpha cosh(z/2), which neither
    cancel at small z nor overflow or underflow at tiny alpha."""
    if D == 2:
        c = np.exp(log_scale / 2)
        with np.errstate(over="ignore"):
            e, f = 2 * c * np.sinh(z / 2), 2 * c * np.cosh(z / 2)
        return e * e, e * f, (e * e + f * f) / 2
    scale = np.exp(log_scale)
    return tuple(scale * part for part in _H(z, D))


def _newton(X, y, a, D, tol, max_iter):
    """Damped Newton on the dual. nu, z and the residual are kept in extended precision (np.longdouble, 80-bit on
    x86-64; plain float64 elsewhere): for D > 2 at small alpha, beta depends on 1 - |z| ~ 1e-8, which float64
    resolves to only ~8 digits. The Newton direction itself is computed in float64."""
    ld = np.longdouble
    Xl, yl = X.astype(ld), y.astype(ld)
    log_scale = ld(D) * np.log(ld(a))
    nu = np.zeros(X.shape[0], dtype=ld)

    def evaluate(v):
        z = Xl.T @ v
        if D > 2 and np.any(np.abs(z) >= 1):
            return np.inf, z, None, None
        with np.errstate(over="ignore", invalid="ignore"):
            H, h, dh = _scaled(z, D, log_scale)
            F = np.sum(H) - yl @ v
        return (F if np.isfinite(F) else np.inf), z, Xl @ h - yl, dh

    ynorm = max(float(np.linalg.norm(y)), np.finfo(float).tiny)
    F, z, g, dh = evaluate(nu)
    best, since = np.inf, 0
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported in the error)
        gnorm = float(np.linalg.norm(g.astype(float)))
        if gnorm <= tol * ynorm:
            break
        # stalled at the precision floor: 20 steps without halving an already small residual (Newton converges
        # quadratically once there, so this only happens when rounding is all that is left)
        best, since = (gnorm, 0) if gnorm < 0.5 * best else (best, since + 1)
        if since >= 20 and gnorm <= _FLOOR * ynorm:
            break
        Hess = (X * dh.astype(float)) @ X.T
        step = -np.linalg.lstsq(Hess, g.astype(float), rcond=None)[0]  # lstsq: X may have dependent rows
        t, slope = 1.0, float(g.astype(float) @ step)
        if D > 2:  # fraction to the boundary: stay inside |z| < 1 (the Newton step from a tiny alpha is enormous)
            dz = X.T @ step
            with np.errstate(divide="ignore", invalid="ignore"):
                room = np.where(dz > 0, (1 - z.astype(float)) / dz, np.where(dz < 0, (1 + z.astype(float)) / -dz,
                                                                              np.inf))
            t = min(1.0, 0.99 * float(room.min()))
        else:  # a trust region in z: exp changes by at most e^20 per step (the first step from a tiny alpha is huge)
            t = min(1.0, 20.0 / max(float(np.abs(X.T @ step).max()), 1e-300))
        for _ in range(60):  # backtracking from the first admissible t (which may itself be tiny)
            cand = evaluate(nu + ld(t) * step.astype(ld))
            # Armijo on F; near the optimum F stops changing in floating point, so a step that keeps F within
            # roundoff and shrinks the gradient is taken too
            roundoff = 64 * np.finfo(ld).eps * (abs(F) + 1)
            if cand[0] <= F + 0.25 * t * slope or (cand[0] <= F + roundoff and cand[2] is not None
                                                   and float(np.linalg.norm(cand[2].astype(float))) < gnorm):
                break
            t *= 0.5
        else:
            break  # no progress left at this precision
        nu = nu + ld(t) * step.astype(ld)
        F, z, g, dh = cand
    gnorm = float(np.linalg.norm(g.astype(float)))
    if gnorm > max(tol, _FLOOR) * ynorm:
        raise NumericalError(f"implicit_bias: Newton did not reach a relative residual {tol:g} (stopped after "
                             f"{n_iter} of at most {max_iter} iterations at {gnorm / ynorm:.2e}); alpha = {a:g} "
                             f"may be too extreme for depth {D} in floating point (at small alpha use "
                             "min_l1_interpolator, at large alpha min_l2_interpolator, the limits)")
    beta = _scaled(z, D, log_scale)[1]
    return nu.astype(float), beta.astype(float)


def _clarabel(X, y, a, D):
    import cvxpy as cp

    n, d = X.shape
    if D == 2:
        # primal: alpha^2 q(beta/alpha^2) = min_{u - v = beta} u log u + v log v - (1 + 2 log alpha)(u + v) + const
        u, v = cp.Variable(d, nonneg=True), cp.Variable(d, nonneg=True)
        c = 1 + 2 * np.log(a)
        cons = [X @ (u - v) == y]
        prob = cp.Problem(cp.Minimize(cp.sum(-cp.entr(u) - cp.entr(v)) - c * cp.sum(u + v)), cons)
        with warnings.catch_warnings():  # "optimal_inaccurate" is judged by the KKT check in implicit_bias
            warnings.simplefilter("ignore", UserWarning)
            prob.solve(solver=cp.CLARABEL, **_CLARABEL_OPTS)
        if prob.status not in ("optimal", "optimal_inaccurate") or u.value is None:
            raise NumericalError(f"implicit_bias: clarabel returned status {prob.status!r}")
        return u.value - v.value, -np.asarray(cons[0].dual_value).reshape(n)
    nu = cp.Variable(n)
    z = X.T @ nu
    p = 2.0 / (D - 2)
    obj = a**D * (D - 2) / 2.0 * cp.sum(cp.power(1 - z, -p) + cp.power(1 + z, -p)) - y @ nu
    prob = cp.Problem(cp.Minimize(obj))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)
        prob.solve(solver=cp.CLARABEL, **_CLARABEL_OPTS)
    if prob.status not in ("optimal", "optimal_inaccurate") or nu.value is None:
        raise NumericalError(f"implicit_bias: clarabel returned status {prob.status!r}")
    return None, np.asarray(nu.value)


def implicit_bias(X, y, alpha: float, depth: int = 2, *, solver: str = "newton", tol: float = 1e-12,
                  max_iter: int = 500) -> ImplicitBias:
    """``argmin Q_alpha(beta) s.t. X beta = y``: where the depth-``D`` diagonal network's gradient flow ends.

    Init ``w_+ = w_- = alpha`` (every coordinate), ``beta = w_+^D - w_-^D``; the limit does not depend on how the
    loss of ``X beta`` is scaled (the library's ``(1/n) ||X beta - y||^2`` or the paper's). ``solver="newton"``:
    damped Newton on the dual until ``||X beta - y|| <= tol ||y||`` or until float64 allows no further decrease
    (for ``D > 2`` at tiny ``alpha`` the residual floor is about ``eps / (1 - max|X^T nu|)``; the result's
    ``residual`` says what was reached, and a residual above 1e-6 raises); ``solver="clarabel"``: the conic program
    through cvxpy (primal exponential-cone form for ``D = 2``, dual power-cone form for ``D > 2``; interior-point
    accuracy, about 1e-8). ``tol`` and ``max_iter`` apply to Newton only. Raises :class:`~dlnlab.errors.DataError`
    when ``X beta = y`` has no solution.

    Example:
        >>> import numpy as np
        >>> r = implicit_bias(np.eye(2), [1.0, -3.0], alpha=0.5, depth=3)   # square X: the unique interpolator
        >>> r.beta.round(12).tolist(), r.residual < 1e-12
        ([1.0, -3.0], True)
    """
    X, y = _data(X, y)
    a, D = _alpha(alpha), _depth(depth)
    solver = one_of("solver", solver, ("newton", "clarabel"))
    if solver == "newton":
        tol = as_float("tol", tol, low=0.0, low_open=True)
        max_iter = as_int("max_iter", max_iter, low=1)
        nu, beta = _newton(X, y, a, D, tol, max_iter)
    else:
        if tol != 1e-12 or max_iter != 500:
            raise DataError("tol, max_iter: apply to solver='newton' only; clarabel uses its own tolerances")
        beta, nu = _clarabel(X, y, a, D)
        if beta is None:
            beta = link(X.T @ nu, a, D)
    res = float(np.linalg.norm(X @ beta - y) / max(np.linalg.norm(y), np.finfo(float).tiny))
    grad_q = _inverse_h(beta / a**D, D)
    U, sv, _ = np.linalg.svd(X.T, full_matrices=False)
    U = U[:, sv > sv[0] * max(X.shape) * np.finfo(float).eps]
    off = grad_q - U @ (U.T @ grad_q)
    stat = float(np.linalg.norm(off) / max(np.linalg.norm(grad_q), np.finfo(float).tiny))
    if solver == "clarabel" and max(res, stat) > _CONIC_TOL:
        # interior-point accuracy is relative to the objective's scale, which constants dominate at large alpha (and
        # the power cones are badly scaled at small alpha): an "optimal" status is not enough
        raise NumericalError(f"implicit_bias: clarabel's solution fails its KKT check (feasibility {res:.1e}, "
                             f"stationarity {stat:.1e} > {_CONIC_TOL:g}) at alpha = {a:g}, depth {D}; use "
                             "solver='newton'")
    return ImplicitBias(beta, nu, res, stat, potential(beta, a, D), solver)


def min_l1_interpolator(X, y) -> np.ndarray:
    """``argmin ||beta||_1 s.t. X beta = y`` by linear programming (HiGHS): ``beta = u - v``, ``u, v >= 0``.

    The ``alpha -> 0`` limit of :func:`implicit_bias` (where the l1 minimiser is unique).

    Example:
        >>> min_l1_interpolator([[1.0, 2.0]], [4.0]).tolist()
        [0.0, 2.0]
    """
    X, y = _data(X, y)
    n, d = X.shape
    res = linprog(np.ones(2 * d), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None), method="highs")
    if res.status != 0:
        raise NumericalError(f"min_l1_interpolator: linprog (highs) failed: {res.message}")
    return res.x[:d] - res.x[d:]


def min_l2_interpolator(X, y) -> np.ndarray:
    """``argmin ||beta||_2 s.t. X beta = y = pinv(X) y``: the ``alpha -> inf`` limit of :func:`implicit_bias`.

    Example:
        >>> min_l2_interpolator([[1.0, 2.0]], [5.0]).round(12).tolist()
        [1.0, 2.0]
    """
    X, y = _data(X, y)
    return np.linalg.pinv(X) @ y

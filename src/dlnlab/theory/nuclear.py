"""Nuclear-norm minimisation under observation or measurement constraints: the convex baseline of arora2019.

Matrix completion: ``min ||X||_*  s.t.  X_ij = M_ij for (i, j) in Omega``; matrix sensing:
``min ||X||_*  s.t.  <A_k, X> = y_k, k = 1..m``, with ``<A, X> = sum_ij A_ij X_ij`` and ``A`` of shape
``(m, d_out, d_in)``. ``||X||_*`` is the sum of the singular values (no normalisation). For depth-2 factorizations
trained from vanishing init, Gunasekar et al. (2017) conjectured that gradient flow finds this solution; Arora et al.
(2019) show deeper factorizations go below it in error and rank when observations are few.

Solved as a semidefinite program through cvxpy with a conic solver: "clarabel" (interior point, accurate, but its
cost grows like ``(d_out + d_in)^6``: use it up to about 40 x 40) or "scs" (first-order, the solver roosephu's code
used through cvxpy's default; 100 x 100 with 3,000 observations in seconds), "auto" choosing by size. Every solution
is certified by the dual: with the multipliers ``lambda`` of the constraints, ``Y = A^*(lambda)`` satisfies
``||Y||_op <= 1`` and ``<Y, X> = ||X||_*`` at the optimum (then no feasible matrix has a smaller nuclear norm); the
result reports both and the feasibility residual, and a solution failing them by more than ``100 tol`` raises.
Accuracy: the nuclear norm to about ``tol``; the matrix to about ``sqrt(tol)`` where the minimum is flat (a
non-unique or nearly non-unique minimiser), to about ``tol`` where it is sharp (exact recovery).

Example:
    >>> import numpy as np
    >>> from dlnlab.theory.nuclear import nuclear_completion
    >>> M = np.outer([1.0, 2.0, 3.0], [1.0, -1.0, 2.0])              # rank one
    >>> mask = np.ones((3, 3), bool); mask[2, 2] = False               # one entry hidden
    >>> sol = nuclear_completion(M, mask)
    >>> round(float(sol.matrix[2, 2]), 3), round(sol.nuclear_norm, 6)  # not 6, the rank-one completion
    (3.162, 8.714777)

    (A scalar brute force over the hidden entry finds the same minimiser, sqrt(10): the nuclear norm does not
    always pick the lowest rank.)

References: S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019
(arXiv:1905.13655), Section 2; E. Candes, B. Recht, "Exact Matrix Completion via Convex Optimization", 2009;
B. Recht, M. Fazel, P. Parrilo, "Guaranteed Minimum-Rank Solutions of Linear Matrix Equations via Nuclear Norm
Minimization", SIAM Review 2010.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np

from .._checks import as_float, as_int, one_of
from ..errors import ConfigError, DataError, NumericalError
from ._observations import completion_observations, sensing_data

__all__ = ["NuclearSolution", "nuclear_completion", "nuclear_sensing", "random_low_rank"]

# "auto" uses clarabel when d_out + d_in is at most this (an interior-point SDP step is dense in (d_out + d_in)^2).
_AUTO_CLARABEL = 60


@dataclass(frozen=True)
class NuclearSolution:
    """A nuclear-norm minimiser and its certificate.

    Attributes:
        matrix: the minimiser ``X``, shape ``(d_out, d_in)``.
        nuclear_norm: ``||X||_*``.
        residual: constraint violation ``||A(X) - b|| / ||b||`` (observed entries or measurements).
        dual_norm: ``||Y||_op`` of the dual certificate ``Y = A^*(lambda)`` (at most 1 at the optimum).
        duality_gap: ``| ||X||_* - <Y, X> | / ||X||_*`` (0 at the optimum).
        solver: the conic solver used ("clarabel" or "scs").
        status: the solver's status string.
    """

    matrix: np.ndarray
    nuclear_norm: float
    residual: float
    dual_norm: float
    duality_gap: float
    solver: str
    status: str

    @property
    def rank(self) -> int:
        """Numerical rank: singular values above ``1e-6 * sigma_1`` (solver accuracy, not machine precision)."""
        s = np.linalg.svd(self.matrix, compute_uv=False)
        return int(np.sum(s > 1e-6 * s[0])) if s[0] > 0 else 0


def _solve(shape, constraint, adjoint, b, solver, tol):
    """min ||X||_* s.t. constraint(X) == b; adjoint maps the multipliers to a (d_out, d_in) matrix."""
    import cvxpy as cp

    solver = one_of("solver", solver, ("auto", "clarabel", "scs"))
    tol = as_float("tol", tol, low=0.0, low_open=True, high=1e-2)
    if solver == "auto":
        solver = "clarabel" if sum(shape) <= _AUTO_CLARABEL else "scs"
    X = cp.Variable(shape)
    cons = [constraint(X) == b]
    prob = cp.Problem(cp.Minimize(cp.normNuc(X)), cons)
    if solver == "clarabel":
        opts = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol, "max_iter": 500}
        name = cp.CLARABEL
    else:
        opts = {"eps_abs": tol, "eps_rel": tol, "max_iters": 500_000}
        name = cp.SCS
    with warnings.catch_warnings():  # "optimal_inaccurate" is judged by the certificate below
        warnings.simplefilter("ignore", UserWarning)
        prob.solve(solver=name, **opts)
    if prob.status not in ("optimal", "optimal_inaccurate") or X.value is None:
        raise NumericalError(f"nuclear-norm solve: {solver} returned status {prob.status!r}")
    Xv = np.asarray(X.value)
    s = np.linalg.svd(Xv, compute_uv=False)
    nuc = float(s.sum())
    bnorm = max(float(np.linalg.norm(b)), np.finfo(float).tiny)
    residual = float(np.linalg.norm(constraint(Xv) - b) / bnorm)
    Y = adjoint(np.asarray(cons[0].dual_value, dtype=float).reshape(-1))
    inner = float(np.sum(Y * Xv))
    if inner < 0:  # the sign of the multipliers is the solver's convention
        Y, inner = -Y, -inner
    dual_norm = float(np.linalg.norm(Y, 2))
    gap = abs(nuc - inner) / max(nuc, np.finfo(float).tiny)
    if max(residual, gap, dual_norm - 1.0) > 100 * tol:
        raise NumericalError(f"nuclear-norm solve: {solver}'s solution fails its certificate (residual "
                             f"{residual:.1e}, duality gap {gap:.1e}, ||Y||_op - 1 = {dual_norm - 1:.1e}; expected "
                             f"below {100 * tol:g}); try solver='clarabel' or a looser tol")
    return NuclearSolution(Xv, nuc, residual, dual_norm, gap, solver, str(prob.status))


def nuclear_completion(target, mask, *, solver: str = "auto", tol: float = 1e-8) -> NuclearSolution:
    """``argmin ||X||_* s.t. X_ij = M_ij on the observed entries``.

    ``mask`` is a boolean array of the target's shape (True = observed, as in ``dl.MatrixCompletion``) or integer
    ``(row, col)`` pairs of shape ``(k, 2)`` (in range, distinct); only the observed entries of ``target`` are used.
    ``tol`` is the conic solver's feasibility and gap tolerance.

    Example:
        >>> import numpy as np
        >>> sol = nuclear_completion([[1.0, 2.0], [2.0, 4.0]], np.array([[0, 0], [0, 1], [1, 0]]))
        >>> round(float(sol.matrix[1, 1]), 3), round(sol.nuclear_norm, 6)   # sqrt((x - 1)^2 + 16) is least at x = 1
        (1.0, 4.0)
    """
    T, rows, cols = completion_observations(target, mask)
    b = T[rows, cols]

    def constraint(X):
        return X[rows, cols]

    def adjoint(lam):
        Y = np.zeros(T.shape)
        Y[rows, cols] = lam
        return Y

    return _solve(T.shape, constraint, adjoint, b, solver, tol)


def nuclear_sensing(A, y, *, solver: str = "auto", tol: float = 1e-8) -> NuclearSolution:
    """``argmin ||X||_* s.t. <A_k, X> = y_k`` for measurement matrices ``A`` of shape ``(m, d_out, d_in)``.

    Raises :class:`~dlnlab.errors.DataError` when no matrix meets the measurements (``m > d_out d_in`` with
    inconsistent ``y``). ``tol`` is the conic solver's feasibility and gap tolerance.

    Example:
        >>> import numpy as np
        >>> A = np.eye(4).reshape(4, 2, 2)                      # every entry measured, in row-major order
        >>> sol = nuclear_sensing(A, [1.0, 2.0, 3.0, 4.0])
        >>> (sol.matrix.round(6) + 0.0).tolist(), round(sol.nuclear_norm, 6)   # sqrt(||X||_F^2 + 2 |det X|)
        ([[1.0, 2.0], [3.0, 4.0]], 5.830952)
    """
    import cvxpy as cp

    A, y = sensing_data(A, y)
    m, shape = A.shape[0], A.shape[1:]
    F = A.reshape(m, -1)
    fit = np.linalg.lstsq(F, y, rcond=None)[0]
    miss = float(np.linalg.norm(F @ fit - y))
    if miss > 1e-8 * max(float(np.linalg.norm(y)), np.finfo(float).tiny):
        raise DataError(f"y: no matrix meets the measurements (least-squares relative residual "
                        f"{miss / np.linalg.norm(y):.2e}); expected y in the range of the measurement operator")

    def constraint(X):
        if isinstance(X, np.ndarray):
            return F @ X.reshape(-1)
        return F @ cp.vec(X, order="C")

    def adjoint(lam):
        return (lam @ F).reshape(shape)

    return _solve(shape, constraint, adjoint, y, solver, tol)


def random_low_rank(shape, rank: int, seed: int = 0) -> np.ndarray:
    """A ``(d_out, d_in)`` matrix ``U V^T`` of the given rank with standard Gaussian factors, scaled to unit
    Frobenius norm (the ground truth of roosephu's deep matrix factorization experiments).

    Example:
        >>> M = random_low_rank((6, 4), 2, seed=1)
        >>> int(np.linalg.matrix_rank(M)), round(float(np.linalg.norm(M)), 12)
        (2, 1.0)
    """
    if len(tuple(shape)) != 2:
        raise ConfigError(f"shape: expected (d_out, d_in), got {shape!r}")
    d_out, d_in = (as_int("shape", s, low=1) for s in shape)
    r = as_int("rank", rank, low=1)
    if r > min(d_out, d_in):
        raise ConfigError(f"rank: expected at most min(d_out, d_in) = {min(d_out, d_in)} for shape "
                          f"{(d_out, d_in)}, got {r}")
    rng = np.random.default_rng(as_int("seed", seed))
    M = rng.normal(size=(d_out, r)) @ rng.normal(size=(r, d_in))
    return M / np.linalg.norm(M)

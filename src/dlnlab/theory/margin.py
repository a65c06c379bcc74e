"""Max-margin limits of deep linear classifiers (Ji and Telgarsky, ICLR 2019).

On linearly separable data ``z_i = y_i x_i``, gradient flow / descent on the logistic or exponential
risk of a scalar-output deep linear network drives the risk to 0, makes every layer rank one, aligns
adjacent layers and turns the end-to-end predictor ``w_prod = (W_L ... W_1)^T`` to the homogeneous
hard-margin SVM direction (no intercept)

    u_bar = argmax_{||u|| = 1} min_i <u, z_i>,      gamma = max_{||u|| = 1} min_i <u, z_i>.

This module computes that limit with a real QP solver (clarabel) and certifies it, and provides the
quantities the paper tracks: the cosine of ``w_prod`` with ``u_bar``, normalised margins, the
end-to-end alignment and the Lemma 2 bounds computed from the initialisation. The rank-one ratio
``||W_k||_2 / ||W_k||_F`` and the adjacent alignment ``|<v_{k+1}, u_k>|`` live in
:mod:`dlnlab.diagnostics`.

Normalisation: the risk is ``(1/n) sum_i l(y_i f(x_i))`` as in the paper
(``dl.Objective(clf, loss="logistic"|"exponential")``); the SVM is written with the paper's 1/2,
``min 1/2 ||w||^2 s.t. <w, z_i> >= 1``, whose solution is ``w_hat = u_bar / gamma``.

Example:
    >>> import numpy as np
    >>> from dlnlab.theory.margin import max_margin
    >>> X = np.array([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.0]]); y = np.array([1.0, 1.0, -1.0])
    >>> mm = max_margin(X, y)
    >>> bool(mm.certificate.ok), round(float(mm.margin), 6), mm.support.tolist(), mm.spans_input
    (True, 1.0, [0, 1, 2], True)

Reference: Z. Ji, M. Telgarsky, "Gradient descent aligns the layers of deep linear networks",
ICLR 2019 (arXiv:1810.02032), Theorems 1-2, Lemma 2; D. Soudry et al., JMLR 2018 (Assumption 3).
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_array, as_float
from ..errors import DataError, NumericalError
from ..nets import end_to_end

__all__ = [
    "MaxMargin",
    "MarginCertificate",
    "Lemma2",
    "max_margin",
    "predictor",
    "max_margin_cosine",
    "normalized_margin",
    "frobenius_margin",
    "end_to_end_alignment",
    "balance_constant",
    "lemma2",
    "lemma2_terms",
]

# Certificate residuals above this (relative) are reported as a failed certificate.
_CERT_TOL = 1e-7


@dataclass(frozen=True)
class MarginCertificate:
    """Evidence that :func:`max_margin` solved the hard-margin SVM (all residuals are relative).

    Attributes:
        primal_objective: ``1/2 ||w_hat||^2`` at the primal QP solution.
        dual_objective: ``1^T a - 1/2 ||Z^T a||^2`` at the KKT multipliers ``a`` of the primal
            solve.
        duality_gap: ``|primal - dual| / primal`` (0 at the optimum).
        stationarity: ``||w_hat - Z^T a|| / ||w_hat||`` (KKT stationarity).
        dual_qp_agreement: ``||Z^T a_dual - w_hat|| / ||w_hat||`` with ``a_dual`` from an
            independent solve of the dual QP (``nan`` when the dual solve was skipped, see
            ``dual_check_limit``).
        complementarity: ``max_i a_i |<w_hat, z_i> - 1| / sum_i a_i``.
        max_violation: ``max_i max(0, 1 - <w_hat, z_i>)`` (primal feasibility).
        min_margin: ``min_i <u_bar, z_i>`` recomputed from the data.
        margin_error: ``|min_margin - gamma| / gamma``.
        status: clarabel's status string of the primal solve.
    """

    primal_objective: float
    dual_objective: float
    duality_gap: float
    stationarity: float
    dual_qp_agreement: float
    complementarity: float
    max_violation: float
    min_margin: float
    margin_error: float
    status: str

    @property
    def ok(self) -> bool:
        """Every residual below 1e-7 (the dual-QP agreement only when it was computed)."""
        checks = [
            self.duality_gap,
            self.stationarity,
            self.complementarity,
            self.max_violation,
            self.margin_error,
        ]
        if np.isfinite(self.dual_qp_agreement):
            checks.append(self.dual_qp_agreement)
        return bool(max(checks) <= _CERT_TOL)


@dataclass(frozen=True)
class MaxMargin:
    """The homogeneous hard-margin SVM of separable data.

    Attributes:
        direction: ``u_bar``, the unit max-margin direction, shape ``(d,)``.
        margin: ``gamma = min_i <u_bar, z_i> > 0``.
        weights: ``w_hat = u_bar / gamma``, the minimum-norm ``w`` with ``<w, z_i> >= 1``.
        dual: the multipliers ``a >= 0`` (``w_hat = Z^T a``), shape ``(n,)``.
        support: indices ``S`` of the support vectors (``<u_bar, z_i> = gamma`` up to
            ``support_tol``).
        support_rank: ``rank(Z_S)``.
        data_rank: ``rank(Z)``.
        spans_input: ``rank(Z_S) == d``, Assumption 3 of the paper (needed for Theorem 2).
        spans_data: ``rank(Z_S) == rank(Z)``, the paper's relaxation of Assumption 3.
        certificate: a :class:`MarginCertificate`.
    """

    direction: np.ndarray
    margin: float
    weights: np.ndarray
    dual: np.ndarray
    support: np.ndarray
    support_rank: int
    data_rank: int
    spans_input: bool
    spans_data: bool
    certificate: MarginCertificate


def _signed_data(X, y) -> np.ndarray:
    X = as_array("X", X, ndim=2)
    y = as_array("y", y, ndim=1)
    if y.shape[0] != X.shape[0]:
        raise DataError(f"y: expected {X.shape[0]} labels (one per row of X), got {y.shape[0]}")
    if X.shape[0] == 0 or X.shape[1] == 0:
        raise DataError(f"X: expected at least one sample and one feature, got shape {X.shape}")
    bad = ~np.isin(y, (-1.0, 1.0))
    if bad.any():
        raise DataError(
            f"y: expected labels in {{-1, +1}}, got {y[bad][0]!r} at index {int(np.argmax(bad))}"
        )
    return y[:, None] * X


def _qp(P, q, A, b, n_cone):
    import clarabel
    import scipy.sparse as sp

    settings = clarabel.DefaultSettings()
    settings.verbose = False
    settings.tol_gap_abs = settings.tol_gap_rel = 1e-12
    settings.tol_feas = 1e-12
    settings.tol_ktratio = 1e-10
    settings.max_iter = 500
    solver = clarabel.DefaultSolver(
        sp.csc_matrix(P),
        np.asarray(q, float),
        sp.csc_matrix(A),
        np.asarray(b, float),
        [clarabel.NonnegativeConeT(n_cone)],
        settings,
    )
    return solver.solve()


def max_margin(X, y=None, *, support_tol: float = 1e-6, dual_check_limit: int = 4000) -> MaxMargin:
    """Homogeneous hard-margin SVM (no intercept) by an interior-point QP, with a certificate.

    Solves ``min_w 1/2 ||w||^2 s.t. y_i <w, x_i> >= 1`` with clarabel (a real QP solve, not a
    large-C soft margin), reads the KKT multipliers, and cross-checks against an independent solve
    of the dual QP ``max_{a >= 0} 1^T a - 1/2 ||Z^T a||^2`` (skipped when ``n > dual_check_limit``,
    as it is dense in n).

    Args:
        X: inputs, shape ``(n, d)``; or a :class:`dlnlab.Classification` (then ``y`` is omitted).
        y: labels in {-1, +1}, shape ``(n,)``.
        support_tol: a sample is a support vector when ``|<u_bar, z_i> - gamma| <= support_tol *
            max_i ||z_i||``.
        dual_check_limit: largest ``n`` for which the dual QP is solved as a cross-check.

    Raises:
        DataError: bad shapes or labels, or data that are not linearly separable through the origin.
        NumericalError: the solver failed on separable data.
    """
    if y is None and hasattr(X, "X") and hasattr(X, "y"):
        X, y = np.asarray(X.X), np.asarray(X.y)
    elif y is None:
        raise DataError("y: expected labels in {-1, +1} (or pass a dl.Classification as X)")
    Z = _signed_data(X, y)
    support_tol = as_float("support_tol", support_tol, low=0.0, low_open=True)
    n, d = Z.shape
    sol = _qp(np.eye(d), np.zeros(d), -Z, -np.ones(n), n)
    status = str(sol.status)
    if status in ("PrimalInfeasible", "AlmostPrimalInfeasible"):
        raise DataError(
            "X, y: the data are not linearly separable through the origin (no w with "
            "y_i <w, x_i> > 0 for every i; the QP solver returned a certificate of infeasibility), "
            "so the hard-margin SVM does not "
            "exist; remove overlapping points or use a problem whose classes are separable"
        )
    if status not in ("Solved", "AlmostSolved"):
        raise NumericalError(f"max_margin: the QP solver stopped with status {status!r}")
    w = np.asarray(sol.x, float)
    a = np.maximum(np.asarray(sol.z, float), 0.0)
    nw = float(np.linalg.norm(w))
    gamma = 1.0 / nw
    u = w / nw
    zw = Z @ w
    primal = 0.5 * nw**2
    dual_obj = float(a.sum() - 0.5 * np.sum((Z.T @ a) ** 2))
    agreement = float("nan")
    if n <= dual_check_limit:
        G = Z @ Z.T
        dsol = _qp(G, -np.ones(n), -np.eye(n), np.zeros(n), n)
        if str(dsol.status) in ("Solved", "AlmostSolved"):
            agreement = float(np.linalg.norm(Z.T @ np.asarray(dsol.x, float) - w) / nw)
        else:
            agreement = float("inf")
    margins = Z @ u
    scale = float(np.max(np.linalg.norm(Z, axis=1)))
    support = np.flatnonzero(np.abs(margins - gamma) <= support_tol * scale)
    tol_rank = 1e-8 * max(scale, 1.0)
    support_rank = int(np.linalg.matrix_rank(Z[support], tol=tol_rank)) if support.size else 0
    data_rank = int(np.linalg.matrix_rank(Z, tol=tol_rank))
    cert = MarginCertificate(
        primal_objective=primal,
        dual_objective=dual_obj,
        duality_gap=abs(primal - dual_obj) / primal,
        stationarity=float(np.linalg.norm(w - Z.T @ a) / nw),
        dual_qp_agreement=agreement,
        complementarity=float(np.max(a * np.abs(zw - 1.0)) / max(a.sum(), np.finfo(float).tiny)),
        max_violation=float(np.max(np.maximum(0.0, 1.0 - zw))),
        min_margin=float(margins.min()),
        margin_error=abs(float(margins.min()) - gamma) / gamma,
        status=status,
    )
    return MaxMargin(
        direction=u,
        margin=gamma,
        weights=w,
        dual=a,
        support=support,
        support_rank=support_rank,
        data_rank=data_rank,
        spans_input=support_rank == d,
        spans_data=support_rank == data_rank,
        certificate=cert,
    )


# -- quantities along training --------------------------------------------------------------------
def predictor(params) -> jax.Array:
    """``w_prod = (W_L ... W_1)^T``, shape ``(d,)``, of a scalar-output net (``d_L = 1``)."""
    A = end_to_end(tuple(jnp.asarray(W) for W in params))
    if A.shape[0] != 1:
        raise DataError(
            f"params: expected a scalar-output net (last layer with 1 row), got {A.shape[0]} rows"
        )
    return A[0]


def _as_predictor(w) -> jax.Array:
    if isinstance(w, (tuple, list)):
        return predictor(w)
    return jnp.asarray(w)


def _direction(direction) -> jax.Array:
    u = jnp.asarray(direction.direction if isinstance(direction, MaxMargin) else direction)
    return u / jnp.linalg.norm(u)


def max_margin_cosine(w, direction) -> jax.Array:
    """Signed ``cos angle(w_prod, u_bar) = <w_prod, u_bar> / ||w_prod||`` (Theorem 2: tends to 1).

    ``w`` is a parameter tuple or a predictor vector; ``direction`` a :class:`MaxMargin` or a
    vector.
    """
    w = _as_predictor(w)
    return jnp.dot(w, _direction(direction)) / jnp.linalg.norm(w)


def normalized_margin(w, X, y) -> jax.Array:
    """``min_i y_i <w_prod, x_i> / ||w_prod||``: at most ``gamma``, tends to it (Theorem 2)."""
    w = _as_predictor(w)
    return jnp.min(jnp.asarray(y) * (jnp.asarray(X) @ w)) / jnp.linalg.norm(w)


def frobenius_margin(params, X, y) -> jax.Array:
    """``gamma_F = min_i y_i <w_prod, x_i> / prod_k ||W_k||_F``, never above ``gamma`` (Sec. 3)."""
    w = predictor(params)
    prod = jnp.prod(jnp.stack([jnp.linalg.norm(W) for W in params]))
    return jnp.min(jnp.asarray(y) * (jnp.asarray(X) @ w)) / prod


def _top_vectors(W):
    U, s, Vt = jnp.linalg.svd(jax.lax.stop_gradient(jnp.asarray(W)), full_matrices=False)
    return U[:, 0], s, Vt[0]


def end_to_end_alignment(params) -> jax.Array:
    """``|<w_prod, v_1>| / prod_k ||W_k||_F`` (Theorem 1.5: tends to 1), ``v_1`` the top right
    singular vector of ``W_1``."""
    _, _, v1 = _top_vectors(params[0])
    prod = jnp.prod(jnp.stack([jnp.linalg.norm(W) for W in params]))
    return jnp.abs(jnp.dot(predictor(params), v1)) / prod


def balance_constant(params0) -> float:
    """The constant ``D`` of Lemma 2, from the initial layers only:

        D = max_k ||W_k(0)||_F^2 - ||W_L(0)||_F^2
            + sum_{k<L} ||W_k(0) W_k(0)^T - W_{k+1}(0)^T W_{k+1}(0)||_2

    (``D >= 0``, and ``D = 0`` exactly for a balanced init).
    """
    Ws = [np.asarray(W, float) for W in params0]
    fro2 = [float(np.sum(W * W)) for W in Ws]
    gaps = sum(
        float(np.linalg.norm(Ws[k] @ Ws[k].T - Ws[k + 1].T @ Ws[k + 1], 2))
        for k in range(len(Ws) - 1)
    )
    return max(fro2) - fro2[-1] + gaps


@dataclass(frozen=True)
class Lemma2:
    """Lemma 2 of the paper evaluated at one time (bounds built from the init).

    Attributes:
        D: the constant of :func:`balance_constant`.
        rank_one_gap: ``||W_k||_F^2 - ||W_k||_2^2`` per layer; Lemma 2(a) says ``<= D``.
        alignment_sq: ``<v_{k+1}, u_k>^2`` per adjacent pair.
        alignment_sq_bound: ``1 - (D + ||W_{k+1}(0)||_2^2 + ||W_k(0)||_2^2) / ||W_{k+1}||_2^2``
            (Lemma 2(b)).
        holds_a, holds_b: whether (a) and (b) hold (up to ``rtol`` relative to the quantities
            involved).
    """

    D: float
    rank_one_gap: np.ndarray
    alignment_sq: np.ndarray
    alignment_sq_bound: np.ndarray
    holds_a: bool
    holds_b: bool

    @property
    def holds(self) -> bool:
        return self.holds_a and self.holds_b


def lemma2_terms(params) -> dict:
    """The time-dependent sides of Lemma 2, jit-compatible (usable as a dl.train summary):
    ``rank_one_gap`` = ``||W_k||_F^2 - ||W_k||_2^2`` per layer, ``alignment_sq`` =
    ``<v_{k+1}, u_k>^2`` per adjacent pair, ``top_sq`` = ``||W_k||_2^2`` per layer."""
    gap, top, uv = [], [], []
    for W in params:
        u, s, v = _top_vectors(W)
        top.append(s[0] ** 2)
        gap.append(jnp.sum(s[1:] ** 2))
        uv.append((u, v))
    al = [jnp.dot(uv[k + 1][1], uv[k][0]) ** 2 for k in range(len(params) - 1)]
    return {
        "rank_one_gap": jnp.stack(gap),
        "top_sq": jnp.stack(top),
        "alignment_sq": jnp.stack(al) if al else jnp.zeros((0,)),
    }


def lemma2(params0, params=None, *, terms: dict | None = None, rtol: float = 1e-9) -> Lemma2:
    """Check Lemma 2 (a) and (b) at ``params`` for a gradient-flow trajectory started at
    ``params0``.

    Instead of ``params`` one may pass ``terms``, the output of :func:`lemma2_terms`, possibly
    recorded along a run (arrays with a leading time axis): the check then covers every recorded
    time. ``rtol`` absorbs
    float rounding: (a) is checked as ``gap <= D + rtol * ||W_k||_F^2``, (b) as ``a^2 >= bound -
        rtol``.
    """
    Ws0 = [np.asarray(W, float) for W in params0]
    if terms is None:
        if params is None:
            raise DataError(
                "params: expected the parameters to check (or terms=lemma2_terms(params))"
            )
        Ws = [np.asarray(W, float) for W in params]
        if [W.shape for W in Ws0] != [W.shape for W in Ws]:
            raise DataError("params: expected the same layer shapes as params0")
        terms = lemma2_terms(Ws)
    gap = np.asarray(terms["rank_one_gap"], float)
    top = np.asarray(terms["top_sq"], float)
    al = np.asarray(terms["alignment_sq"], float)
    D = balance_constant(Ws0)
    spec0 = np.array([float(np.linalg.norm(W, 2)) ** 2 for W in Ws0])
    bound = 1.0 - (D + spec0[1:] + spec0[:-1]) / top[..., 1:]
    holds_a = bool(np.all(gap <= D + rtol * (gap + top)))
    holds_b = bool(np.all(al >= bound - rtol))
    return Lemma2(
        D=D,
        rank_one_gap=gap,
        alignment_sq=al,
        alignment_sq_bound=bound,
        holds_a=holds_a,
        holds_b=holds_b,
    )

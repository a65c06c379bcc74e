"""End-to-end dynamics of deep matrix factorization (Arora, Cohen, Hu, Luo 2019; Arora, Cohen, Hazan 2018).

A depth-``N`` factorization ``W = W_N ... W_1`` trained by gradient flow on a loss ``l(W)`` of the product only,
``dW_j/dt = -d l(W_N ... W_1) / dW_j``, from a *balanced* initialisation (``W_{j+1}^T W_{j+1} = W_j W_j^T`` for every
``j``, a property the flow keeps) moves its product by the end-to-end flow

    dW/dt = -sum_{j=1..N} (W W^T)^((N-j)/N) grad l(W) (W^T W)^((j-1)/N),     i.e.  vec(dW/dt) = -P_W vec(grad l(W))

with ``P_W = sum_j (W W^T)^((N-j)/N) kron (W^T W)^((j-1)/N)`` for row-major ``vec`` (NumPy's ``ravel``) and the
convention ``M^0 = I`` (also where ``W`` is rank deficient). The singular values move by (Arora et al. 2019,
Theorem 3; distinct singular values)

    d sigma_r / dt = -N sigma_r^(2 - 2/N) <grad l(W), u_r v_r^T>.

Normalisation: ``grad l`` is the gradient of the loss exactly as the library defines it (squared loss without 1/2,
so ``grad`` of ``(1/|Omega|) sum (W_ij - M_ij)^2`` is ``2 (W - M)_Omega / |Omega|``); a paper that writes the loss
with 1/2 has a gradient, hence a flow, half as fast. Nothing else in these formulas depends on that convention.

:class:`CompletionLoss` and :class:`SensingLoss` give ``l`` for the paper's two problems from plain arrays;
:func:`end_to_end_flow` integrates the end-to-end flow with SciPy so a trained network can be compared with it;
:func:`balanced_factorization` builds exactly balanced factors with a given product.

Example:
    >>> import numpy as np
    >>> from dlnlab.theory.dmf import CompletionLoss, end_to_end_flow
    >>> M = np.outer([1.0, 2.0, -1.0], [1.0, 2.0, -1.0])                # rank 1, sigma_1 = 6
    >>> loss = CompletionLoss(M, M != 0)                               # every entry observed: grad = 2 (W - M) / 9
    >>> flow = end_to_end_flow(loss, 1e-2 * np.eye(3), depth=3, times=[0.0, 200.0])
    >>> flow.singular_values[-1].round(5).tolist()     # the others decay: (0.01^(-4/3) + 8/9 * 200)^(-3/4)
    [6.0, 0.00784, 0.00784]

References: S. Arora, N. Cohen, W. Hu, Y. Luo, "Implicit Regularization in Deep Matrix Factorization", NeurIPS 2019
(arXiv:1905.13655), Section 3 and Theorem 3; S. Arora, N. Cohen, E. Hazan, "On the Optimization of Deep Networks:
Implicit Acceleration by Overparameterization", ICML 2018, Theorem 1.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy.integrate import solve_ivp

from .._checks import as_array, as_float, as_int, one_of
from ..errors import ConfigError, DataError, NumericalError
from ._observations import completion_observations, sensing_data

__all__ = [
    "CompletionLoss",
    "SensingLoss",
    "preconditioner",
    "end_to_end_velocity",
    "singular_value_velocity",
    "balanced_factorization",
    "EndToEndFlow",
    "end_to_end_flow",
]


@dataclass(frozen=True, eq=False)
class CompletionLoss:
    """``l(W) = (1/|Omega|) sum_{(i,j) in Omega} (W_ij - M_ij)^2`` (no 1/2, as ``dl.MatrixCompletion``).

    ``mask`` is a boolean array of the target's shape (True = observed) or integer ``(row, col)`` pairs of shape
    ``(k, 2)`` (in range, distinct). ``grad(W) = 2 (W - M)_Omega / |Omega|``.

    Example:
        >>> import numpy as np
        >>> loss = CompletionLoss(np.ones((2, 2)), np.array([[0, 1]]))
        >>> loss.value(np.zeros((2, 2))), loss.grad(np.zeros((2, 2))).tolist()
        (1.0, [[0.0, -2.0], [0.0, 0.0]])
    """

    target: np.ndarray
    rows: np.ndarray
    cols: np.ndarray

    def __init__(self, target, mask):
        T, rows, cols = completion_observations(target, mask)
        object.__setattr__(self, "target", T)
        object.__setattr__(self, "rows", rows)
        object.__setattr__(self, "cols", cols)

    @property
    def shape(self) -> tuple[int, int]:
        return self.target.shape

    def _residual(self, W) -> np.ndarray:
        W = np.asarray(W, dtype=np.float64)
        if W.shape != self.shape:
            raise DataError(f"W: expected shape {self.shape} (the target's), got {W.shape}")
        return W[self.rows, self.cols] - self.target[self.rows, self.cols]

    def value(self, W) -> float:
        return float(np.mean(self._residual(W) ** 2))

    def grad(self, W) -> np.ndarray:
        G = np.zeros(self.shape)
        G[self.rows, self.cols] = 2.0 * self._residual(W) / self.rows.size
        return G


@dataclass(frozen=True, eq=False)
class SensingLoss:
    """``l(W) = (1/m) sum_k (<A_k, W> - y_k)^2`` (no 1/2) with ``A`` of shape ``(m, d_out, d_in)``.

    ``grad(W) = (2/m) sum_k (<A_k, W> - y_k) A_k``.

    Example:
        >>> import numpy as np
        >>> loss = SensingLoss(np.eye(2)[None], [3.0])                   # one measurement: the trace
        >>> loss.value(np.eye(2)), loss.grad(np.eye(2)).tolist()
        (1.0, [[-2.0, 0.0], [0.0, -2.0]])
    """

    A: np.ndarray
    y: np.ndarray

    def __init__(self, A, y):
        A, y = sensing_data(A, y)
        object.__setattr__(self, "A", A)
        object.__setattr__(self, "y", y)

    @property
    def shape(self) -> tuple[int, int]:
        return self.A.shape[1:]

    def _residual(self, W) -> np.ndarray:
        W = np.asarray(W, dtype=np.float64)
        if W.shape != self.shape:
            raise DataError(f"W: expected shape {self.shape} (the measurement matrices'), got {W.shape}")
        return np.einsum("kij,ij->k", self.A, W) - self.y

    def value(self, W) -> float:
        return float(np.mean(self._residual(W) ** 2))

    def grad(self, W) -> np.ndarray:
        r = self._residual(W)
        return np.einsum("k,kij->ij", 2.0 * r / r.size, self.A)


def _matrix(name, W) -> np.ndarray:
    W = as_array(name, W, ndim=2)
    if 0 in W.shape:
        raise DataError(f"{name}: expected a non-empty matrix, got shape {W.shape}")
    return W


def _grad(W, grad) -> np.ndarray:
    G = as_array("grad", grad, ndim=2)
    if G.shape != W.shape:
        raise DataError(f"grad: expected the shape of W {W.shape}, got {G.shape}")
    return G


def _padded_svd(W):
    """Full SVD with the singular values padded by zeros to both sides' dimensions."""
    U, s, Vt = np.linalg.svd(W)
    a = np.zeros(W.shape[0])
    b = np.zeros(W.shape[1])
    a[: s.size], b[: s.size] = s, s
    return U, a, b, Vt.T


def _kernel(a, b, N) -> np.ndarray:
    """K[p, q] = sum_j a_p^(2(N-j)/N) b_q^(2(j-1)/N) with 0^0 = 1 (NumPy's power gives 0.0**0.0 == 1.0)."""
    j = np.arange(1, N + 1)
    left = np.power(a[:, None], 2.0 * (N - j) / N)  # (m, N)
    right = np.power(b[:, None], 2.0 * (j - 1) / N)  # (n, N)
    return left @ right.T


def end_to_end_velocity(W, grad, depth: int) -> np.ndarray:
    """``dW/dt = -sum_j (W W^T)^((N-j)/N) grad (W^T W)^((j-1)/N)`` for a balanced depth-``N`` factorization.

    ``grad`` is the gradient of the loss at ``W`` in the library's convention (no 1/2). Computed in the singular
    basis of ``W``: ``-U [(U^T grad V) * K] V^T`` with ``K_pq = sum_j sigma_p^(2(N-j)/N) sigma_q^(2(j-1)/N)``.

    Example:
        >>> import numpy as np
        >>> end_to_end_velocity(np.diag([4.0, 1.0]), -np.eye(2), depth=2).tolist()   # 2 sigma for N = 2
        [[8.0, 0.0], [0.0, 2.0]]
    """
    N = as_int("depth", depth, low=1)
    W = _matrix("W", W)
    G = _grad(W, grad)
    U, a, b, V = _padded_svd(W)
    return -U @ ((U.T @ G @ V) * _kernel(a, b, N)) @ V.T


def preconditioner(W, depth: int) -> np.ndarray:
    """``P_W = sum_j (W W^T)^((N-j)/N) kron (W^T W)^((j-1)/N)``, shape ``(d_out d_in, d_out d_in)``.

    For row-major ``vec`` (``ravel``): ``vec(dW/dt) = -P_W vec(grad)``. Symmetric positive semi-definite, and
    positive definite when ``W`` has full rank or ``N = 1`` (``P_W = I``).

    Example:
        >>> import numpy as np
        >>> preconditioner(np.diag([4.0, 1.0]), depth=2).diagonal().tolist()   # sigma_p + sigma_q
        [8.0, 5.0, 5.0, 2.0]
    """
    N = as_int("depth", depth, low=1)
    W = _matrix("W", W)
    U, a, b, V = _padded_svd(W)
    P = np.zeros((W.size, W.size))
    for j in range(1, N + 1):
        left = (U * np.power(a, 2.0 * (N - j) / N)) @ U.T
        right = (V * np.power(b, 2.0 * (j - 1) / N)) @ V.T
        P += np.kron(left, right)
    return P


def singular_value_velocity(W, grad, depth: int) -> tuple[np.ndarray, np.ndarray]:
    """``(sigma, d sigma/dt)`` with ``d sigma_r/dt = -N sigma_r^(2 - 2/N) <grad, u_r v_r^T>`` (Theorem 3).

    Holds where the singular values are distinct (the singular vectors are then differentiable in time).
    ``grad`` in the library's convention (no 1/2).

    Example:
        >>> import numpy as np
        >>> s, ds = singular_value_velocity(np.diag([4.0, 1.0]), -np.eye(2), depth=2)
        >>> s.tolist(), ds.tolist()
        ([4.0, 1.0], [8.0, 2.0])
    """
    N = as_int("depth", depth, low=1)
    W = _matrix("W", W)
    G = _grad(W, grad)
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    proj = np.einsum("ir,ij,rj->r", U, G, Vt)
    return s, -N * np.power(s, 2.0 - 2.0 / N) * proj


def balanced_factorization(W, depth: int, hidden=None, *, rtol: float = 1e-12) -> tuple[np.ndarray, ...]:
    """Exactly balanced factors ``(W_1, ..., W_N)`` with ``W_N ... W_1 = W``.

    With the thin SVD ``W = U S V^T`` restricted to its ``k`` retained values: ``W_1 = E_1 S^(1/N) V^T``,
    ``W_j = E_j S^(1/N) E_{j-1}^T``, ``W_N = U S^(1/N) E_{N-1}^T`` where ``E_j`` is the first ``k`` columns of the
    identity of size ``hidden[j-1]``; so ``W_{j+1}^T W_{j+1} = W_j W_j^T`` exactly. Shapes follow the library:
    ``W_i.shape == (widths[i], widths[i-1])`` with ``widths = (d_in, *hidden, d_out)``; ``hidden`` defaults to
    ``min(d_out, d_in)`` for every hidden layer, and each width must be at least ``rank(W)`` (singular values below
    ``rtol * sigma_1`` count as zero).

    Example:
        >>> import numpy as np
        >>> Ws = balanced_factorization(np.diag([8.0, 1.0]), depth=3)
        >>> [w.diagonal().tolist() for w in Ws]
        [[2.0, 1.0], [2.0, 1.0], [2.0, 1.0]]
    """
    N = as_int("depth", depth, low=1)
    W = _matrix("W", W)
    tol = as_float("rtol", rtol, low=0.0)
    hidden = (min(W.shape),) * (N - 1) if hidden is None else tuple(hidden)
    if len(hidden) != N - 1:
        raise ConfigError(f"hidden: expected {N - 1} hidden widths for depth {N}, got {len(hidden)}")
    hidden = tuple(as_int("hidden", h, low=1) for h in hidden)
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    rank = int(np.sum(s > tol * s[0])) if s[0] > 0 else 0
    k = min((s.size, *hidden))
    if k < rank:
        raise ConfigError(f"hidden: width {min(hidden)} is smaller than rank(W) = {rank}; a product of these "
                          "factors cannot equal W")
    root = np.power(s[:k], 1.0 / N)
    embeds = [np.eye(h)[:, :k] for h in hidden]
    factors = []
    for j in range(N):
        left = U[:, :k] if j == N - 1 else embeds[j]
        right = Vt[:k].T if j == 0 else embeds[j - 1]
        factors.append((left * root) @ right.T)
    return tuple(factors)


@dataclass(frozen=True)
class EndToEndFlow:
    """Solution of :func:`end_to_end_flow`.

    Attributes:
        times: the requested times, shape ``(T,)``.
        matrices: ``W(t)``, shape ``(T, d_out, d_in)``.
        singular_values: descending singular values of ``W(t)``, shape ``(T, min(d_out, d_in))``.
        losses: ``l(W(t))`` when the loss has a ``value`` method, else ``None``.
        n_evaluations: right-hand-side evaluations used by the solver.
    """

    times: np.ndarray
    matrices: np.ndarray
    singular_values: np.ndarray
    losses: np.ndarray | None
    n_evaluations: int = field(default=0)


def end_to_end_flow(loss, W0, depth: int, times, *, method: str = "DOP853", rtol: float = 1e-10,
                    atol: float = 1e-13) -> EndToEndFlow:
    """Integrate ``dW/dt = -P_W vec(grad l(W))`` from ``W0`` with ``scipy.integrate.solve_ivp``.

    This is what gradient flow on any balanced depth-``N`` factorization of ``W0`` does to its product (exactly,
    not in a limit): start a network from ``balanced_factorization(W0, depth)`` (or the library's "balanced" init)
    and its end-to-end matrix follows this solution. ``loss`` is a :class:`CompletionLoss`, a :class:`SensingLoss`,
    any object with ``grad(W)`` (and optionally ``value(W)``), or a callable ``W -> grad``, in the library's
    convention (no 1/2). ``times`` are increasing, starting at 0 or later.

    Example:
        >>> import numpy as np
        >>> flow = end_to_end_flow(lambda W: 2 * (W - 1.0), [[0.5]], depth=2, times=[0.0, 1.0])   # l = (w - 1)^2
        >>> round(float(flow.matrices[-1, 0, 0]), 6)                       # logistic: 1 / (1 + exp(-4))
        0.982014
    """
    N = as_int("depth", depth, low=1)
    W0 = _matrix("W0", W0)
    grad_fn: Callable = loss.grad if hasattr(loss, "grad") else loss
    if not callable(grad_fn):
        raise ConfigError(f"loss: expected a loss object with a grad method or a callable W -> grad, got {loss!r}")
    value_fn = getattr(loss, "value", None)
    if getattr(loss, "shape", W0.shape) != W0.shape:
        raise DataError(f"W0: expected the loss's shape {loss.shape}, got {W0.shape}")
    ts = as_array("times", times, ndim=1)
    if ts.size == 0 or ts[0] < 0 or np.any(np.diff(ts) <= 0):
        raise DataError(f"times: expected non-negative strictly increasing times, got {ts.tolist()[:5]}...")
    method = one_of("method", method, ("DOP853", "RK45", "Radau", "BDF", "LSODA"))
    rtol = as_float("rtol", rtol, low=0.0, low_open=True)
    atol = as_float("atol", atol, low=0.0, low_open=True)
    shape = W0.shape

    def rhs(_, w):
        W = w.reshape(shape)
        return end_to_end_velocity(W, grad_fn(W), N).ravel()

    sol = solve_ivp(rhs, (0.0, float(ts[-1])), W0.ravel(), method=method, t_eval=ts, rtol=rtol, atol=atol)
    if not sol.success:
        raise NumericalError(f"end_to_end_flow: solve_ivp ({method}) failed: {sol.message}")
    mats = sol.y.T.reshape(ts.size, *shape)
    svals = np.linalg.svd(mats, compute_uv=False)
    losses = np.array([value_fn(m) for m in mats]) if callable(value_fn) else None
    return EndToEndFlow(ts, mats, svals, losses, int(sol.nfev))

"""Saddle-to-saddle dynamics of deep linear networks (jacot2021): the saddles a small initialisation
visits, how it escapes them, when, and how far a width-``w`` initialisation is from saddles and from
global minima.

Reference: A. Jacot, F. Ged, B. Simsek, C. Hongler, F. Gabriel, "Saddle-to-Saddle Dynamics in Deep
Linear Networks: Small Initialization Training, Symmetry, and Sparsity", arXiv:2106.15933 (2021).

Normalisation. Every cost here is the library's: squared loss ``E||A x - y||^2`` with NO 1/2 (and
:class:`dlnlab.MatrixCompletion`'s mean over observed entries, no 1/2). The paper writes ``C(A) =
1/2 ...``, so its gradient ``-grad C`` and its escape speeds are half of ours, its saddle losses are
half of ours, and its gradient-flow clock runs twice as slow: a state the library's flow reaches at
time ``t`` is reached by the paper's flow at time ``2 t`` (``PAPER_TIME_PER_LIBRARY_TIME``).
``predicted_escape_times(convention="paper")`` returns paper time.

What is here:

- :func:`saddle_sequence`: the rank-``k`` saddles ``A_k`` (a minimiser of ``C`` over rank ``<= k``)
  with their loss ``C(A_k)`` and the escape direction and speed out of them. Squared-loss regression
  uses reduced-rank regression in closed form (Eckart-Young when whitened); any other convex cost
  (matrix completion, or any object with ``cost(A)``, ``d_in`` and ``d_out``) uses the greedy
  low-rank algorithm.
- :func:`escape_direction`, :func:`escape_speed`, :func:`escape_params`: the top singular triple
  ``(s, u, v)`` of ``G = -grad C(A)``; the best first-order loss decrease on the unit sphere of
  parameters, ``max <G, W_L ... W_1> = s L^(-L/2)``, attained at the balanced rank-one ``W_l =
  L^(-1/2) z_l z_(l-1)^T``.
- :func:`predicted_escape_times`: plateau-end times from the balanced mode ODE
  ``du/dt = L S u^(2-2/L) (1 - u/m)``: logarithmic in ``1/sigma`` at depth 2, a power
  ``sigma^-(L-2)`` at depth ``L >= 3``.
- :func:`saddle_params`: a saddle embedded in a net (balanced factorisation, random hidden frames).
- :func:`init_distances`: distances behind the ``gamma = 1`` phase transition.

Example:
    >>> import numpy as np, dlnlab as dl
    >>> prob = dl.Regression.from_moments(np.eye(3), np.diag([3.0, 2.0, 1.0]), 14.0)
    >>> [round(s.loss, 6) for s in dl.theory.saddles.saddle_sequence(prob)]
    [14.0, 5.0, 1.0, 0.0]
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import jax.numpy as jnp
import numpy as np
import scipy.integrate
import scipy.optimize

from .._checks import as_float, as_int, one_of
from ..errors import ConfigError, DataError, NumericalError
from ..nets import Net
from ..problems import Classification, MatrixCompletion, Regression

__all__ = [
    "Saddle", "Escape", "InitDistances", "PAPER_TIME_PER_LIBRARY_TIME", "saddle_sequence", "escape_direction",
    "escape_speed", "escape_params", "predicted_escape_times", "depth2_mode_scale", "saddle_params",
    "saddle_distance", "end_to_end_ntk", "init_distances",
]

PAPER_TIME_PER_LIBRARY_TIME = 2.0


@dataclass(frozen=True)
class Saddle:
    """The rank-``k`` critical value of the saddle sequence (library normalisation, no 1/2).

    Attributes:
        rank: ``k``; ``k = 0`` is the origin.
        end_to_end: ``A_k``, a minimiser of the cost over matrices of rank ``<= k``.
        loss: ``C(A_k)``, the loss of every plateau that sits at this saddle.
        escape_speed: ``s``, top singular value of ``-grad C(A_k)`` (0 at a global minimum).
        escape_u, escape_v: the matching left/right singular vectors: the next direction learned.
        is_minimum: ``A_k`` is a global minimum (the end of the sequence).
        degenerate: the next singular value ties with this one, so ``A_k`` is not unique.
    """

    rank: int
    end_to_end: np.ndarray
    loss: float
    escape_speed: float
    escape_u: np.ndarray
    escape_v: np.ndarray
    is_minimum: bool = False
    degenerate: bool = False


@dataclass(frozen=True)
class Escape:
    """Top singular triple of ``G = -grad C(A)``: ``speed`` (``s``), ``u`` (left), ``v`` (right),
    and the next singular value ``second`` (the gap ``speed - second`` governs how clean the escape
    is)."""

    speed: float
    u: np.ndarray
    v: np.ndarray
    second: float


@dataclass(frozen=True)
class InitDistances:
    """Distances from an initialisation to the saddle set and to the global-minimum set.

    Attributes:
        to_saddle: ``min_{i<j} sqrt(||W_i||^2 + ||W_j||^2)``, the distance to the critical point
            obtained by zeroing two layers (for a wide net, the first and last): an upper bound on
            the distance to saddles.
        to_global_min: ``||theta_GN - theta_0||`` where Gauss-Newton steps (minimum-norm, on the
            end-to-end map) reach the global-minimum set: an upper bound (``nan`` when Gauss-Newton
            did not converge).
        to_global_min_linearised: ``sqrt(r^T Theta^-1 r)``: the first Gauss-Newton step, exact as
            the map becomes linear (the lazy regime, ``gamma < 1``, large width).
        global_min_lower_bound: smallest ``d`` with ``prod_l (||W_l||_2 + d) >= a*`` where ``a*``
            bounds the operator norm of every global minimum from below: a rigorous lower bound.
    """

    to_saddle: float
    to_global_min: float
    to_global_min_linearised: float
    global_min_lower_bound: float
    converged: bool


# -- costs -----------------------------------------------------------------------------------------
def _shape(prob) -> tuple[int, int]:
    if isinstance(prob, Classification):
        raise ConfigError("prob: saddle sequences need a convex cost on the end-to-end matrix "
                          "(dl.Regression, dl.MatrixCompletion or an object with cost(A), d_in, d_out); "
                          "got dl.Classification")
    if not (callable(getattr(prob, "cost", None)) and hasattr(prob, "d_in") and hasattr(prob, "d_out")):
        raise ConfigError(f"prob: expected an object with cost(A), d_in and d_out, got {type(prob).__name__}")
    return int(prob.d_out), int(prob.d_in)


def _cost(prob, A) -> float:
    if isinstance(prob, Regression):  # tr(A Sxx A^T) - 2 tr(A Syx^T) + Syy in NumPy float64
        A = np.asarray(A, dtype=np.float64)
        Sxx, Syx = np.asarray(prob.Sxx, np.float64), np.asarray(prob.Syx, np.float64)
        return float(np.sum((A @ Sxx) * A) - 2.0 * np.sum(A * Syx) + float(prob.Syy))
    return float(prob.cost(jnp.asarray(A, dtype=float)))


def _grad(prob, A) -> np.ndarray:
    if isinstance(prob, Regression):  # 2 (A Sxx - Syx) in NumPy float64, whatever JAX's precision setting
        A = np.asarray(A, dtype=np.float64)
        return 2.0 * (A @ np.asarray(prob.Sxx, np.float64) - np.asarray(prob.Syx, np.float64))
    return np.asarray(jax.grad(lambda B: prob.cost(B))(jnp.asarray(A, dtype=float)))


def escape_direction(prob, A=None) -> Escape:
    """Top singular triple of ``-grad C(A)`` (``A`` defaults to 0: the escape from the origin).

    Near a saddle ``A_k`` the loss falls fastest by growing ``u v^T``; ``speed`` is the linear
    growth rate of that component at depth 2 (library time). The paper's ``s`` (1/2-normalised cost)
    is ``speed / 2`` for squared-loss costs.
    """
    m, n = _shape(prob)
    A = np.zeros((m, n)) if A is None else np.asarray(A, dtype=float)
    if A.shape != (m, n):
        raise DataError(f"A: expected shape {(m, n)}, got {A.shape}")
    U, s, Vt = np.linalg.svd(-_grad(prob, A))
    return Escape(float(s[0]), U[:, 0], Vt[0], float(s[1]) if s.size > 1 else 0.0)


def escape_speed(prob, depth: int, A=None) -> float:
    """``max <G, W_L ... W_1>`` over ``sum_l ||W_l||_F^2 = 1``, ``G = -grad C(A)``: equals ``s
    L^(-L/2)``.

    The product of ``L`` factors of total squared norm 1 has operator norm at most ``(1/L)^(L/2)``
    (AM-GM on the layer norms), with equality for balanced rank-one layers aligned with the top
    singular pair of ``G``.
    """
    L = as_int("depth", depth, low=1)
    return escape_direction(prob, A).speed * L ** (-L / 2)


def escape_params(net: Net, prob, *, key=None) -> tuple:
    """The unit-norm parameters that maximise ``<-grad C(0), W_L ... W_1>``: ``W_l = L^(-1/2) z_l
    z_(l-1)^T`` with ``z_0 = v``, ``z_L = u`` (top singular pair) and random unit hidden vectors
    ``z_l``."""
    if not isinstance(net, Net):
        raise ConfigError(f"net: expected a dl.Net, got {type(net).__name__}")
    if (net.widths[-1], net.widths[0]) != _shape(prob):
        raise DataError(f"net: widths {net.widths} do not match the problem ({prob.d_in} -> {prob.d_out})")
    esc = escape_direction(prob)
    L = net.depth
    rng = np.random.default_rng(0 if key is None else key)
    zs = [esc.v] + [_unit(rng.normal(size=h)) for h in net.widths[1:-1]] + [esc.u]
    return tuple(jnp.asarray(np.outer(zs[i + 1], zs[i]) / np.sqrt(L)) for i in range(L))


def _unit(x):
    return x / np.linalg.norm(x)


# -- the saddle sequence ----------------------------------------------------------------------------
def saddle_sequence(prob, *, method: str = "auto", max_rank: int | None = None, tol: float = 1e-6,
                    maxiter: int = 20_000) -> list[Saddle]:
    """The saddles ``A_0 = 0, A_1, ..., A_K`` visited from a vanishing initialisation, ending at a
    global minimum.

    Args:
        prob: :class:`dlnlab.Regression` (closed form), :class:`dlnlab.MatrixCompletion` or any
            object with a JAX-differentiable ``cost(A)`` that is convex in ``A``, and
            ``d_in``/``d_out`` (greedy algorithm).
        method: ``"auto"`` (closed form for regression, greedy otherwise), ``"closed_form"`` or
            ``"greedy"``.
        max_rank: stop after this rank (default ``min(d_in, d_out)``).
        tol: a saddle whose escape speed is ``<= tol * s_0`` (``s_0`` the escape speed of the
            origin) is a global minimum and ends the sequence.
        maxiter: L-BFGS iterations per rank (greedy).

    Regression (library cost ``tr(A Sxx A^T) - 2 tr(A Syx^T) + Syy``): with ``Sxx = Q Lam Q^T`` on
        its range and
    ``M = Syx Q Lam^(-1/2)`` of singular values ``mu_i``, ``A_k = P_k A_ols`` with ``A_ols = Syx
    Sxx^+`` and ``P_k`` the projector on the top-``k`` left singular vectors of ``M`` (reduced-rank
    regression), and ``C(A_k) = C(A_ols) + sum_{i>k} mu_i^2`` (the paper's 1/2-normalised value is
    half of this). Whitened inputs give Eckart-Young truncation of ``Syx``.

    Greedy low-rank algorithm (general convex ``C``): from ``A_(k-1) = U V^T``, append ``eps (u,
    v)`` along the top singular pair of ``-grad C(A_(k-1))`` and minimise ``C(U V^T)`` over ``k``
    columns by L-BFGS from there; the result is the rank-``k`` critical point the
    small-initialisation flow reaches. If the rank-``k`` infimum is not attained (the factors blow
    up) a :class:`dlnlab.errors.NumericalError` is raised.
    """
    m, n = _shape(prob)
    one_of("method", method, ("auto", "closed_form", "greedy"))
    K = min(m, n) if max_rank is None else as_int("max_rank", max_rank, low=1)  # rank 0 alone: not a sequence
    tol = as_float("tol", tol, low=0.0)
    maxiter = as_int("maxiter", maxiter, low=1)
    if method == "closed_form" and not isinstance(prob, Regression):
        raise ConfigError(f"method: 'closed_form' needs a dl.Regression, got {type(prob).__name__}; "
                          "use 'greedy'")
    if method in ("auto", "closed_form") and isinstance(prob, Regression):
        mats = _rrr(prob, min(K, m, n))
    else:
        mats = _greedy(prob, m, n, K, tol, maxiter)
    return _package(prob, mats, tol)


def _package(prob, mats, tol) -> list[Saddle]:
    out = []
    s0 = None
    for k, A in enumerate(mats):
        esc = escape_direction(prob, A)
        s0 = esc.speed if s0 is None else s0
        is_min = esc.speed <= tol * max(s0, np.finfo(float).tiny)
        tie = (not is_min) and esc.second > esc.speed * (1 - 1e-8)
        out.append(Saddle(k, np.asarray(A), _cost(prob, A), esc.speed, esc.u, esc.v,
                          bool(is_min), bool(tie)))
        if is_min:
            break
    return out


def _rrr(prob: Regression, K: int) -> list[np.ndarray]:
    Sxx, Syx = np.asarray(prob.Sxx, np.float64), np.asarray(prob.Syx, np.float64)
    lam, Q = np.linalg.eigh(Sxx)
    keep = lam > 1e-12 * max(lam.max(initial=0.0), np.finfo(float).tiny)
    Qp, lp = Q[:, keep], lam[keep]
    scale = max(np.linalg.norm(Syx), np.finfo(float).tiny)
    if keep.sum() < lam.size and np.linalg.norm(Syx @ Q[:, ~keep]) > 1e-9 * scale:
        raise DataError("prob: Syx has a component outside the range of Sxx, so the cost is unbounded below "
                        "(these are not the moments of a data set)")
    A_ols = (Syx @ Qp / lp) @ Qp.T
    Uo, mu, _ = np.linalg.svd(Syx @ Qp / np.sqrt(lp), full_matrices=False)
    r = int(np.sum(mu > 1e-12 * max(mu.max(initial=0.0), np.finfo(float).tiny)))
    return [Uo[:, :k] @ (Uo[:, :k].T @ A_ols) for k in range(min(K, r) + 1)]


def _greedy(prob, m, n, K, tol, maxiter) -> list[np.ndarray]:
    cost = jax.jit(lambda A: prob.cost(A))

    def f(x, k):
        U, V = x[: m * k].reshape(m, k), x[m * k:].reshape(n, k)
        return cost(U @ V.T)

    fg = jax.jit(jax.value_and_grad(f), static_argnums=1)
    A = np.zeros((m, n))
    U, V = np.zeros((m, 0)), np.zeros((n, 0))
    mats = [A]
    s0 = escape_direction(prob, A).speed
    scale = None
    for k in range(1, K + 1):
        esc = escape_direction(prob, A)
        if esc.speed <= tol * max(s0, np.finfo(float).tiny):
            break
        # Start on the escape path: a small balanced rank-one component along the top singular pair.
        eps = 1e-3 * np.sqrt(max(esc.speed, 1e-300) if scale is None else scale)
        U = np.column_stack([U, eps * esc.u])
        V = np.column_stack([V, eps * esc.v])
        x0 = np.concatenate([U.ravel(), V.ravel()])

        def vg(x, k=k):
            v, g = fg(jnp.asarray(x), k)
            return float(v), np.asarray(g, dtype=float)

        res = scipy.optimize.minimize(vg, x0, jac=True, method="L-BFGS-B",
                                      options={"maxiter": maxiter, "maxcor": 30, "ftol": 0.0,
                                               "gtol": 1e-13 * max(s0, 1e-300)})
        U, V = res.x[: m * k].reshape(m, k), res.x[m * k:].reshape(n, k)
        A = U @ V.T
        if not np.all(np.isfinite(A)):
            raise NumericalError(f"greedy: the rank-{k} minimisation produced non-finite values")
        # Rebalance the factors (same A) so the next warm start is well conditioned.
        P, sv, Qt = np.linalg.svd(A, full_matrices=False)
        U, V = P[:, :k] * np.sqrt(sv[:k]), Qt[:k].T * np.sqrt(sv[:k])
        scale = sv[0] if scale is None else max(scale, sv[0])
        if k > 1 and sv[0] > 1e8 * max(np.linalg.norm(mats[1]), np.finfo(float).tiny):
            raise NumericalError(f"greedy: the rank-{k} factors blow up (|A| = {sv[0]:.3g}): the rank-{k} "
                                 "infimum of the cost is not attained (the flow diverges to infinity)")
        mats.append(A)
    return mats


# -- escape times -----------------------------------------------------------------------------------
def predicted_escape_times(prob, *, depth: int, sigma=None, width: int | None = None, a0=None,
                           saddles: list[Saddle] | None = None, convention: str = "library") -> np.ndarray:
    """Predicted plateau-end (rank-jump) times ``J_1 < J_2 < ...`` of a small initialisation.

    Mode ``k`` is modelled as a balanced rank-one component ``u = a^L`` along the escape direction
    of saddle ``k-1`` that obeys ``du/dt = L S u^(2-2/L) (1 - u/m)`` from ``u(0) = a0^L`` (``S`` the
    escape speed of saddle ``k-1``, ``m = ||A_k - A_(k-1)||_2`` the value it is learned to), so
    every mode grows from the start (Saxe et al.'s decoupled dynamics in the library's time).
    ``J_k`` is when ``u`` reaches ``m/2``:

    - depth 2: ``J_k = log((m - u0)/u0) / (2 S)``, i.e. slope ``1/S`` in ``log(1/sigma)``;
    - depth ``L >= 3``: ``J_k = int_{u0}^{m/2} du / (L S u^(2-2/L)(1 - u/m)) ~ a0^-(L-2) / ((L-2)
      S)``, a power ``-(L-2)`` of ``sigma``.

    Exact for whitened squared loss from an aligned balanced init; the leading ``sigma``-dependence
    (the slope or the exponent) holds for random inits, whose order-one prefactor is absorbed in
    ``a0``.

    Args:
        prob, depth: the problem and the number of layers ``L >= 2``.
        sigma, width: give ``a0 = sigma * sqrt(width)`` (per-layer scale along a mode; ``width``
            defaults to 1); or pass ``a0`` (a scalar or one value per mode, e.g.
            :func:`depth2_mode_scale`) instead.
        saddles: a precomputed :func:`saddle_sequence` (computed if omitted).
        convention: ``"library"`` (time of ``dl.train(obj, p0, dl.Flow(t1=...))``) or ``"paper"`` (the
            1/2-normalised
            cost: twice the library time).
    """
    L = as_int("depth", depth, low=2)
    one_of("convention", convention, ("library", "paper"))
    if (a0 is None) == (sigma is None):
        raise ConfigError("sigma/a0: pass exactly one of sigma (with width) or a0")
    if a0 is None:
        w = 1 if width is None else as_int("width", width, low=1)
        a0 = as_float("sigma", sigma, low=0.0, low_open=True) * np.sqrt(w)
    seq = saddle_sequence(prob) if saddles is None else saddles
    K = len(seq) - 1
    a0 = np.broadcast_to(np.asarray(a0, dtype=float), (K,)) if np.ndim(a0) == 0 else np.asarray(a0, float)
    if a0.shape != (K,) or np.any(~(a0 > 0)):
        raise ConfigError(f"a0: expected a positive scalar or {K} positive values (one per mode), got {a0!r}")
    times = []
    for k in range(1, K + 1):
        S = seq[k - 1].escape_speed
        mk = float(np.linalg.norm(seq[k].end_to_end - seq[k - 1].end_to_end, 2))
        u0 = a0[k - 1] ** L
        if u0 >= mk / 2:
            times.append(0.0)
        elif L == 2:
            times.append(np.log((mk - u0) / u0) / (2 * S))
        else:
            times.append(_deep_mode_time(L, S, mk, u0))
    out = np.asarray(times)
    return out * PAPER_TIME_PER_LIBRARY_TIME if convention == "paper" else out


def _deep_mode_time(L, S, m, u0) -> float:
    # With x = u/m: t = int_{x0}^{1/2} x^-p / (1 - x) dx / (L S m^(p-1)), p = 2 - 2/L. Split off the
    # blow-up
    # part x^-p (closed form); the rest x^(1-p) / (1 - x) becomes smooth under y = x^q, q = 2/L.
    p, q = 2 - 2 / L, 2 / L
    x0 = u0 / m
    head = (x0 ** (1 - p) - 0.5 ** (1 - p)) / (p - 1)
    rest, _ = scipy.integrate.quad(lambda y: 1 / (1 - y ** (1 / q)), x0**q, 0.5**q, epsabs=0, epsrel=1e-12)
    return (head + rest / q) / (L * S * m ** (p - 1))


def depth2_mode_scale(params, prob, *, saddles: list[Saddle] | None = None) -> np.ndarray:
    """Per-mode initial scale ``a0_k`` of a depth-2 init: near the origin the flow is linear, the
    component ``p + q`` (``p = W_1 v_k``, ``q = W_2^T u_k``) grows as ``exp(S_k t)`` and ``p - q``
    decays, so ``u_k^T A v_k ~ ||p + q||^2 exp(2 S_k t) / 4``: the balanced mode with ``a0_k = ||p +
    q|| / 2``."""
    if len(params) != 2:
        raise ConfigError(f"params: expected a depth-2 net (2 layers), got {len(params)}")
    W1, W2 = (np.asarray(W) for W in params)
    seq = saddle_sequence(prob) if saddles is None else saddles
    return np.array([np.linalg.norm(W1 @ s.escape_v + W2.T @ s.escape_u) / 2 for s in seq[:-1]])


# -- saddles as parameters --------------------------------------------------------------------------
def saddle_params(net: Net, saddle, *, key=0) -> tuple:
    """Embed a saddle in ``net``: a balanced factorisation ``W_l = Q_l S^(1/L) Q_(l-1)^T`` of ``A_k
    = U S V^T`` (``Q_0 = V``, ``Q_L = U``, Haar-random hidden frames: the inclusion of a narrow
    minimum plus rotations).

    ``saddle`` is a :class:`Saddle` or an end-to-end matrix that minimises the cost over its rank;
    the result has zero gradient and loss ``C(A_k)``; at depth 2 its Hessian has a negative
    eigenvalue (at most ``-s``, ``s`` the escape speed) when a hidden width exceeds ``k``; at depth
    ``>= 3`` the saddle is degenerate.
    """
    if not isinstance(net, Net):
        raise ConfigError(f"net: expected a dl.Net, got {type(net).__name__}")
    A = saddle.end_to_end if isinstance(saddle, Saddle) else saddle
    return net.init(key, scheme="balanced", target=A)


# -- the phase transition ---------------------------------------------------------------------------
def saddle_distance(params) -> float:
    """``min_{i<j} sqrt(||W_i||_F^2 + ||W_j||_F^2)``: zeroing two layers gives a critical point
    (every gradient block keeps a zero factor), a saddle when ``grad C(0) != 0``; for a depth-2 net
    this is ``||theta||``."""
    sq = sorted(float(np.sum(np.asarray(W) ** 2)) for W in params)
    if len(sq) < 2:
        raise ConfigError("params: expected at least 2 layers")
    return float(np.sqrt(sq[0] + sq[1]))


def _partials(params):
    Ws = [np.asarray(W, dtype=float) for W in params]
    L = len(Ws)
    right = [np.eye(Ws[0].shape[1])]
    for W in Ws[:-1]:
        right.append(W @ right[-1])
    left = [np.eye(Ws[-1].shape[0])]
    for W in Ws[:0:-1]:
        left.append(left[-1] @ W)
    left = left[::-1]  # left[l] = W_L ... W_{l+1}
    return Ws, left, right, L


def end_to_end_ntk(params) -> np.ndarray:
    """``Theta = J J^*`` of the map ``theta -> A_theta`` as a ``(d_out d_in)^2`` matrix
    (column-major ``vec``): ``Theta = sum_l (R_l^T R_l) kron (P_l P_l^T)``, ``P_l = W_L ...
    W_(l+1)``, ``R_l = W_(l-1) ... W_1``. Its scale is ``L (sigma^2 w)^(L-1)``: exploding for
    ``gamma < 1``, vanishing for ``gamma > 1``."""
    _, left, right, L = _partials(params)
    return sum(np.kron(right[i].T @ right[i], left[i] @ left[i].T) for i in range(L))


def _constraint(prob, m, n):
    """(E, target, a_star): the global minima are ``{A : E vec(A) = E vec(target)}``; ``a_star``
    bounds their operator norm from below."""
    if isinstance(prob, Regression):
        lam, Q = np.linalg.eigh(np.asarray(prob.Sxx, np.float64))
        Qp = Q[:, lam > 1e-12 * lam.max()]
        target = np.asarray(prob.Syx, np.float64) @ np.linalg.pinv(np.asarray(prob.Sxx, np.float64))
        E = np.kron(Qp.T, np.eye(m))
        return E, target, float(np.linalg.norm(target @ Qp, 2))
    if isinstance(prob, MatrixCompletion):
        M = np.asarray(prob.mask)
        T = np.where(M, np.asarray(prob.target, np.float64), 0.0)
        E = np.eye(m * n)[M.ravel(order="F")]
        rows = np.linalg.norm(T, axis=1).max()
        cols = np.linalg.norm(T, axis=0).max()
        return E, T, float(max(rows, cols))
    raise ConfigError(f"prob: init_distances supports dl.Regression and dl.MatrixCompletion, "
                      f"got {type(prob).__name__}")


def init_distances(prob, params, *, max_iter: int = 50, rtol: float = 1e-10) -> InitDistances:
    """Distances from ``params`` to the nearest saddle and to the global-minimum set (see
    :class:`InitDistances`). For ``sigma^2 = w^-gamma`` init on widths ``w``: ``to_saddle ~
    w^((1-gamma)/2)``; ``to_global_min -> 0`` for ``gamma < 1`` and stays ``>= ||A*||_2^(1/L) -
    o(1)`` for ``gamma > 1``.
    Cheap for wide nets: only products with ``d_in`` or ``d_out`` columns are formed."""
    m, n = _shape(prob)
    E, target, a_star = _constraint(prob, m, n)
    theta0 = [np.asarray(W, dtype=float) for W in params]
    theta = [W.copy() for W in theta0]
    lin = np.nan
    r0 = None
    converged = False
    for it in range(max_iter):
        Ws, left, right, L = _partials(theta)
        A = left[0] @ Ws[0]
        r = E @ (target - A).ravel(order="F")
        r0 = np.linalg.norm(r) if r0 is None else r0
        if np.linalg.norm(r) <= rtol * max(r0, np.linalg.norm(E @ target.ravel(order="F")), 1e-300):
            converged = True
            lin = 0.0 if it == 0 else lin
            break
        Theta = E @ end_to_end_ntk(theta) @ E.T
        try:
            y = np.linalg.solve(Theta, r)
        except np.linalg.LinAlgError:
            break
        if it == 0:
            lin = float(np.sqrt(max(r @ y, 0.0)))
        X = (E.T @ y).reshape((m, n), order="F")
        theta = [Ws[i] + left[i].T @ X @ right[i].T for i in range(L)]
        if not all(np.all(np.isfinite(W)) for W in theta):
            break
    dist = np.nan
    if converged:
        dist = float(np.sqrt(sum(np.sum((a - b) ** 2) for a, b in zip(theta, theta0, strict=True))))
    norms = [np.linalg.norm(W, 2) for W in theta0]
    if np.prod(norms) >= a_star:
        lower = 0.0
    else:
        lower = float(scipy.optimize.brentq(lambda d: np.prod([a + d for a in norms]) - a_star, 0.0,
                                            a_star ** (1 / len(norms)) + 1.0, xtol=1e-14))
    return InitDistances(saddle_distance(theta0), dist, lin, lower, converged)

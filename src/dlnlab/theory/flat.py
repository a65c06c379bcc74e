"""Flat minima of deep linear networks: sharpness at a global minimum, the flattest minimum, gains,
coupling.

Mulayoff & Michaeli, "Unique Properties of Flat Minima in Deep Networks", ICML 2020
(arXiv:2002.04710).

Normalisation. dlnlab's squared loss is ``E||W_N...W_1 x - y||^2`` (mean over samples, **no 1/2**);
the paper (and ``shared/papers/mulayoff2020.md``) uses ``(1/2) E||.||^2``. Every sharpness here is
the top Hessian eigenvalue of the *library* loss, i.e. **twice** the paper's value; pass
``half=True`` to get the paper's number. For example the whitened flattest sharpness is ``2 N
s_1^{2-2/N}`` here and ``N s_1^{2-2/N}`` in the paper.

Mathematics (``T = Syx Sxx^{-1}``, global minima are the weights with ``W_N...W_1 = T``):

- at a global minimum the Hessian is Gauss-Newton, ``H = 2 J^T J``, and its top eigenvalue equals
  that of the operator ``E -> 2 sum_i A_i E B_i`` on ``d_out x d_in`` matrices, with ``A_i =
  W_{N:i+1} W_{N:i+1}^T`` and ``B_i = Sxx^{1/2} W_{i-1:1}^T W_{i-1:1} Sxx^{1/2}``;
- the smallest sharpness over all global minima is ``lambda* = 2 N max_{|u|=1} |T u|^{2-2/N} / (u^T
  Sxx^{-1} u)``; for ``Sxx = c I`` it is ``2 N c s_1(T)^{2-2/N}``, attained by the SVD-balanced
  factorisation; for general ``Sxx`` the maximum over ``u`` is found by multistart BFGS and the
  weights by optimising the gauge ``W_i -> G_i W_i G_{i-1}^{-1}`` until the sharpness reaches
  ``lambda*`` (a certificate, since ``lambda*`` is a proven lower bound);
- at a flattest minimum the layer gains along ``u*`` are all equal to ``|T u*|^{1/N}`` and the path
  vectors ``q_i = W_{i:1} u* / |W_{i:1} u*|`` are coupled singular vectors (left of ``W_i``, right
  of ``W_{i+1}``).

Example:
    >>> import numpy as np, dlnlab as dl
    >>> from dlnlab.theory import flat
    >>> prob = dl.Regression.from_moments(np.eye(2), np.diag([2.0, 1.0]), 5.0)
    >>> round(flat.flattest_sharpness(prob, 2), 6)        # 2 * N * s_1^(2 - 2/N) = 2 * 2 * 2
    8.0
    >>> params = flat.flattest_minimum(prob, (2, 3, 2))
    >>> round(flat.sharpness_at_minimum(prob, params), 6)
    8.0
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize as so
import scipy.sparse.linalg as sla

from .._checks import as_array, as_float, as_int
from ..errors import ConfigError, DataError, NumericalError
from ..problems import Regression

__all__ = [
    "sharpness_at_minimum", "flattest_sharpness", "flattest_direction", "flattest_minimum",
    "balanced_sharpness", "critical_step", "layer_gains", "gain_interval", "coupling",
    "coupling_scores", "subspace_coupling", "path_coupling", "target",
]

_EXACT_MAX = 900  # d_in * d_out up to which the dense Kronecker sum is diagonalised


# -- validation ------------------------------------------------------------------------------------
def _check_prob(prob) -> Regression:
    if not isinstance(prob, Regression):
        raise ConfigError(f"prob: expected a dl.Regression, got {type(prob).__name__}")
    return prob


def _check_params(params, prob: Regression | None = None) -> list[np.ndarray]:
    if isinstance(params, (str, bytes)) or not isinstance(params, Sequence) or len(params) == 0:
        raise DataError(
            f"params: expected a non-empty sequence of weight matrices, got {type(params).__name__}"
        )
    Ws = [as_array(f"params[{i}]", W, ndim=2) for i, W in enumerate(params)]
    for i in range(1, len(Ws)):
        if Ws[i].shape[1] != Ws[i - 1].shape[0]:
            raise DataError(
                f"params[{i}]: expected {Ws[i - 1].shape[0]} columns, got shape {Ws[i].shape}"
            )
    if prob is not None and (Ws[-1].shape[0], Ws[0].shape[1]) != (prob.d_out, prob.d_in):
        raise DataError(
            f"params: end-to-end shape ({Ws[-1].shape[0]}, {Ws[0].shape[1]}) does not match the "
            f"problem ({prob.d_out}, {prob.d_in})"
        )
    return Ws


def _moments(prob: Regression) -> tuple[np.ndarray, np.ndarray]:
    Sxx = np.asarray(prob.Sxx, dtype=np.float64)
    w = np.linalg.eigvalsh(Sxx)
    if w[0] <= 1e-12 * max(w[-1], 1e-300):
        raise DataError(
            "prob.Sxx: expected a positive definite input covariance (full-rank data), smallest "
            f"eigenvalue {w[0]:.3g}"
        )
    return Sxx, np.asarray(prob.Syx, dtype=np.float64)


def target(prob: Regression) -> np.ndarray:
    """The end-to-end matrix of every global minimum, ``T = Syx Sxx^{-1}`` (``Sxx`` must be
    positive definite)."""
    Sxx, Syx = _moments(_check_prob(prob))
    return np.linalg.solve(Sxx, Syx.T).T


def _whitened_scale(Sxx: np.ndarray) -> float | None:
    """``c`` when ``Sxx = c I`` (to rounding), else None."""
    c = float(np.trace(Sxx)) / Sxx.shape[0]
    dev = np.linalg.norm(Sxx - c * np.eye(Sxx.shape[0]))
    return c if dev <= 1e-12 * abs(c) * Sxx.shape[0] else None


def _sqrtm(S: np.ndarray) -> np.ndarray:
    w, V = np.linalg.eigh(S)
    return (V * np.sqrt(np.clip(w, 0.0, None))) @ V.T


def _chain(Ws, lo, hi, dim) -> np.ndarray:
    """``W_hi ... W_lo`` (1-based, inclusive); the identity of size ``dim`` when empty."""
    P = np.eye(dim)
    for W in Ws[lo - 1:hi]:
        P = W @ P
    return P


# -- sharpness at a global minimum -----------------------------------------------------------------
def _factors(Ws, Sh):
    N, d0, dN = len(Ws), Ws[0].shape[1], Ws[-1].shape[0]
    As, Bs = [], []
    for i in range(1, N + 1):
        P = _chain(Ws, i + 1, N, Ws[i - 1].shape[0])
        Q = _chain(Ws, 1, i - 1, d0) @ Sh
        As.append(P @ P.T)
        Bs.append(Q.T @ Q)
    assert As[0].shape == (dN, dN)
    return As, Bs


def _top_kron_sum(As, Bs, method: str) -> float:
    d0, dN = Bs[0].shape[0], As[0].shape[0]
    if method == "auto":
        method = "exact" if d0 * dN <= _EXACT_MAX else "lanczos"
    if method == "exact":
        # column-major vec: vec(A E B) = (B^T kron A) vec(E), and B is symmetric
        K = sum(np.kron(B, A) for A, B in zip(As, Bs, strict=True))
        return float(np.linalg.eigvalsh((K + K.T) / 2)[-1])

    def mv(e):
        E = e.reshape(dN, d0, order="F")
        return sum(A @ E @ B for A, B in zip(As, Bs, strict=True)).reshape(-1, order="F")

    op = sla.LinearOperator((d0 * dN, d0 * dN), matvec=mv, dtype=np.float64)
    v0 = np.random.default_rng(0).normal(size=d0 * dN)
    return float(sla.eigsh(op, k=1, which="LA", tol=1e-13, v0=v0)[0][0])


def sharpness_at_minimum(prob: Regression, params, *, tol: float = 1e-6, method: str = "auto",
                         half: bool = False) -> float:
    """Top Hessian eigenvalue of the squared loss at a global minimum, in closed form.

    Args:
        prob: the regression (``Sxx`` may be singular here).
        params: ``(W_1, ..., W_N)`` with ``W_N ... W_1 Sxx = Syx`` (a global minimum).
        tol: relative size of ``|W Sxx - Syx|_F`` above which ``params`` is rejected as not a
            global minimum (away from minima the Hessian has a residual term: use dl.curvature).
        method: ``"exact"`` (dense Kronecker sum), ``"lanczos"`` (matrix-free on
            ``E -> sum A_i E B_i``) or ``"auto"`` (exact when ``d_in * d_out <= 900``).
        half: return the value for the paper's 1/2-normalised loss (the library value / 2).
    """
    prob = _check_prob(prob)
    Ws = _check_params(params, prob)
    if method not in ("auto", "exact", "lanczos"):
        raise ConfigError(f"method: expected one of 'auto', 'exact', 'lanczos', got {method!r}")
    tol = as_float("tol", tol, low=0.0)
    Sxx, Syx = np.asarray(prob.Sxx, np.float64), np.asarray(prob.Syx, np.float64)
    W = _chain(Ws, 1, len(Ws), Ws[0].shape[1])
    res = np.linalg.norm(W @ Sxx - Syx)
    scale = np.linalg.norm(Syx) + np.linalg.norm(W) * np.linalg.norm(Sxx, 2)
    if res > tol * max(scale, 1e-300):
        raise DataError(
            f"params: not a global minimum, |W Sxx - Syx|_F = {res:.3g} (expected <= {tol:g} x "
            f"{scale:.3g}); the closed form holds only at global minima, use dl.curvature elsewhere"
        )
    lam = 2.0 * _top_kron_sum(*_factors(Ws, _sqrtm(Sxx)), method)
    return lam / 2.0 if half else lam


# -- the flattest minimum --------------------------------------------------------------------------
def _log_phi(N, M, Sxx):
    """log of ``|M g|^{2-2/N} (g^T Sxx g)^{1/N} / |g|^2`` and its gradient, with ``M = T
    Sxx^{1/2}``.

    Substituting ``u = Sxx^{1/2} g`` turns ``|T u|^{2-2/N} |u|^{2/N} / (u^T Sxx^{-1} u)`` (degree-0
    homogeneous) into this form, which needs no inverse."""
    MtM = M.T @ M

    def f(g):
        a, b, c = g @ MtM @ g, g @ Sxx @ g, g @ g
        val = (1 - 1 / N) * np.log(a) + np.log(b) / N - np.log(c)
        grad = (1 - 1 / N) * 2 * MtM @ g / a + 2 * Sxx @ g / (N * b) - 2 * g / c
        return -val, -grad

    return f


def _maximise(prob: Regression, depth: int, n_starts: int, seed: int):
    Sxx, _ = _moments(prob)
    T = target(prob)
    N = depth
    c = _whitened_scale(Sxx)
    U, s, Vt = np.linalg.svd(T)
    if c is not None or s[0] == 0.0 or N == 1:
        if c is None:  # T = 0 (value 0 for N >= 2) or N = 1 (value lambda_max(Sxx))
            w, V = np.linalg.eigh(Sxx)
            return (float(w[-1]) if N == 1 else 0.0), V[:, -1]
        return c * float(s[0]) ** (2 - 2 / N), Vt[0]
    Sh = _sqrtm(Sxx)
    f = _log_phi(N, T @ Sh, Sxx)
    rng = np.random.default_rng(seed)
    Shi = np.linalg.inv(Sh)
    # deterministic candidates (top singular directions, covariance eigenvectors) plus random starts
    starts = [Shi @ Vt[0], Shi @ np.linalg.eigh(Sxx)[1][:, -1], np.linalg.svd(T @ Sh)[2][0]]
    starts += list(rng.normal(size=(n_starts, Sxx.shape[0])))
    best, g_best = -np.inf, None
    for g0 in starts:
        if f(g0)[0] != f(g0)[0] or np.linalg.norm(T @ Sh @ g0) == 0:
            continue
        r = so.minimize(f, g0, jac=True, method="BFGS", options={"gtol": 1e-12, "maxiter": 2000})
        if -r.fun > best:
            best, g_best = -r.fun, r.x
    u = Sh @ g_best
    return float(np.exp(best)), u / np.linalg.norm(u)


def flattest_sharpness(prob: Regression, depth: int, *, n_starts: int = 32, seed: int = 0,
                       half: bool = False) -> float:
    """The smallest sharpness over all global minima of a depth-``depth`` linear network.

    ``lambda* = 2 N max_{|u|=1} |T u|^{2-2/N} / (u^T Sxx^{-1} u)`` (library loss, no 1/2;
    ``half=True`` gives the paper's ``N max ...``). Closed form ``2 N c s_1(T)^{2-2/N}`` when ``Sxx
    = c I``; otherwise the maximum over directions is found by multistart BFGS (``n_starts`` random
    starts plus the top singular and covariance directions). Needs ``Sxx`` positive definite and
    hidden widths ``>= rank T``.
    """
    prob = _check_prob(prob)
    N = as_int("depth", depth, low=1)
    n_starts = as_int("n_starts", n_starts, low=1)  # 0 random starts would leave only the heuristic candidates
    val = 2.0 * N * _maximise(prob, N, n_starts, as_int("seed", seed, low=0))[0]
    return val / 2.0 if half else val


def flattest_direction(prob: Regression, depth: int, *, n_starts: int = 32,
                       seed: int = 0) -> np.ndarray:
    """The unit input direction ``u*`` maximising the flattest-sharpness ratio (``v_1(T)`` when
    whitened): the signal with the largest data-weighted end-to-end gain, along which flattest
    minima have equal gains."""
    prob = _check_prob(prob)
    N = as_int("depth", depth, low=1)
    return _maximise(prob, N, as_int("n_starts", n_starts, low=1), as_int("seed", seed, low=0))[1]


def critical_step(prob: Regression, depth: int, **kw) -> float:
    """``2 / lambda*``: the largest GD step size at which some global minimum is linearly stable
    (library loss, no 1/2; a paper using the 1/2 loss has twice this step)."""
    lam = flattest_sharpness(prob, depth, **kw)
    if lam == 0.0:
        raise DataError("prob: the flattest sharpness is 0 (T = 0), so every step size is stable")
    return 2.0 / lam


def _balanced_factors(T: np.ndarray, widths: Sequence[int]) -> list[np.ndarray]:
    """SVD-balanced factorisation of T through the given widths (zero-padded hidden units)."""
    N = len(widths) - 1
    U, s, Vt = np.linalg.svd(T, full_matrices=False)
    r = int(np.sum(s > s.max(initial=0.0) * 1e-12 * max(T.shape))) if s.size else 0
    if any(h < r for h in widths[1:-1]):
        raise DataError(f"widths: a hidden width {min(widths[1:-1])} is below rank T = {r}")
    R = np.diag(s[:r] ** (1.0 / N))
    bases = [Vt[:r].T] + [np.eye(h, r) for h in widths[1:-1]] + [U[:, :r]]
    return [bases[i + 1] @ R @ bases[i].T for i in range(N)]


def _check_widths(prob, widths) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or len(widths) < 2:
        raise ConfigError(f"widths: expected a sequence (d_in, h_1, ..., d_out), got {widths!r}")
    widths = tuple(as_int(f"widths[{i}]", w, low=1) for i, w in enumerate(widths))
    if (widths[0], widths[-1]) != (prob.d_in, prob.d_out):
        raise DataError(f"widths: expected d_in={prob.d_in} and d_out={prob.d_out}, got {widths}")
    return widths


def balanced_sharpness(prob: Regression, depth: int, *, half: bool = False) -> float:
    """Sharpness of the W-balanced minima (``W_{i+1}^T W_{i+1} = W_i W_i^T``, the limit of gradient
    flow from a balanced start such as a zero-init ResNet). Equals :func:`flattest_sharpness` when
    ``Sxx = c I``; in general it is larger (the flattest claim needs whitened inputs)."""
    prob = _check_prob(prob)
    N = as_int("depth", depth, low=1)
    T = target(prob)
    r = np.linalg.matrix_rank(T) or 1
    Ws = _balanced_factors(T, (prob.d_in,) + (r,) * (N - 1) + (prob.d_out,))
    return sharpness_at_minimum(prob, Ws, half=half)


def flattest_minimum(prob: Regression, widths: Sequence[int], *, tol: float = 1e-6,
                     restarts: int = 3, seed: int = 0) -> tuple[jax.Array, ...]:
    """Weights of a flattest global minimum through the given widths.

    Whitened data (``Sxx = c I``): the SVD-balanced factorisation (closed form). General ``Sxx``:
    starting from the balanced factorisation (inner width ``rank T``), the gauge ``W_i -> G_i W_i
    G_{i-1}^{-1}`` is optimised on a soft maximum of the sharpness operator's spectrum with
    increasing temperature until the sharpness is within ``(1 + tol)`` of :func:`flattest_sharpness`
    (certificate); extra hidden units are zero-padded. Raises :class:`~dlnlab.errors.NumericalError`
    when the certificate is not reached.
    """
    prob = _check_prob(prob)
    widths = _check_widths(prob, widths)
    tol = as_float("tol", tol, low=0.0, low_open=True)
    Sxx, _ = _moments(prob)
    T = target(prob)
    N = len(widths) - 1
    if _whitened_scale(Sxx) is not None or N == 1:
        return tuple(jnp.asarray(W) for W in _balanced_factors(T, widths))
    r = max(np.linalg.matrix_rank(T), 1)
    inner = _balanced_factors(T, (widths[0],) + (r,) * (N - 1) + (widths[-1],))
    lam_star = flattest_sharpness(prob, N, half=True)
    rng = np.random.default_rng(seed)
    best = (np.inf, inner)
    for attempt in range(as_int("restarts", restarts, low=0) + 1):
        x0 = np.zeros((N - 1) * r * r) if attempt == 0 else 0.3 * rng.normal(size=(N - 1) * r * r)
        Ws = _gauge_optimise(inner, _sqrtm(Sxx), lam_star, x0, tol)
        lam = sharpness_at_minimum(prob, Ws, half=True)
        if lam < best[0]:
            best = (lam, Ws)
        if lam <= (1 + tol) * lam_star:
            break
    if best[0] > (1 + tol) * lam_star:
        raise NumericalError(
            f"flattest_minimum: gauge optimisation reached sharpness {2 * best[0]:.10g}, above the "
            f"flattest value {2 * lam_star:.10g} by more than tol={tol:g}; try more restarts"
        )
    Ws = best[1]
    padded = [np.eye(widths[1], r) @ Ws[0]]
    padded += [np.eye(widths[i + 1], r) @ Ws[i] @ np.eye(widths[i], r).T for i in range(1, N - 1)]
    padded += [Ws[-1] @ np.eye(widths[-2], r).T]
    return tuple(jnp.asarray(W) for W in padded)


def _gauge_weights(x, Wb):
    N, r = len(Wb), Wb[0].shape[0]
    G = [jnp.eye(r) + x[k * r * r:(k + 1) * r * r].reshape(r, r) for k in range(N - 1)]
    out = []
    for i, W in enumerate(Wb):
        W = G[i] @ W if i < N - 1 else W
        out.append(jnp.linalg.solve(G[i - 1].T, W.T).T if i > 0 else W)
    return out


def _soft_max(x, beta, Wb, Sh):
    """``(1/beta) log tr exp(beta K)`` for the sharpness operator K of the gauged weights: a smooth
    upper bound on its top eigenvalue, tight to ``log(multiplicity) / beta``."""
    Ws = _gauge_weights(x, Wb)
    N, K = len(Ws), 0.0
    for i in range(N):
        P = jnp.eye(Ws[i].shape[0])
        for W in Ws[i + 1:]:
            P = W @ P
        Q = Sh
        for W in Ws[:i]:
            Q = W @ Q
        K = K + jnp.kron(Q.T @ Q, P @ P.T)
    e = jnp.linalg.eigvalsh(K)
    return e[-1] + jnp.log(jnp.sum(jnp.exp(beta * (e - e[-1])))) / beta


_soft_max_vg = jax.jit(jax.value_and_grad(_soft_max))  # compiled once per shape


def _gauge_optimise(Wb, Sh, lam_star, x0, tol):
    Wb = tuple(jnp.asarray(W) for W in Wb)
    Shj = jnp.asarray(Sh)

    def fun(z, b):
        v, g = _soft_max_vg(jnp.asarray(z), b, Wb, Shj)
        return float(v), np.asarray(g, dtype=np.float64)

    x = np.asarray(x0, dtype=np.float64)
    # continuation in the temperature: smooth first, then sharpen towards the true maximum
    for beta in 10.0 ** np.arange(0, 11):
        x = so.minimize(fun, x, args=(beta / lam_star,), jac=True, method="L-BFGS-B",
                        options={"maxiter": 3000, "gtol": 1e-15, "ftol": 1e-16}).x
        Ws = [np.asarray(W) for W in _gauge_weights(jnp.asarray(x), Wb)]
        if _top_kron_sum(*_factors(Ws, Sh), "exact") <= (1 + tol / 10) * lam_star:
            break
    return Ws


# -- gains and coupling ----------------------------------------------------------------------------
def layer_gains(params, direction) -> np.ndarray:
    """``gamma_i(u) = |W_{i:1} u| / |W_{i-1:1} u|`` for ``i = 1..N`` (their product is ``|W u| /
    |u|``).

    At a flattest minimum every gain along ``u*`` equals ``|T u*|^{1/N}``; at a minimum with
    sharpness ratio ``rho`` they lie in :func:`gain_interval` ``(N, rho)`` times that value."""
    Ws = _check_params(params)
    u = as_array("direction", direction, ndim=1)
    if u.shape[0] != Ws[0].shape[1]:
        raise DataError(f"direction: expected length {Ws[0].shape[1]} (d_in), got {u.shape[0]}")
    z = u
    gains = []
    for i, W in enumerate(Ws, start=1):
        n0 = np.linalg.norm(z)
        if n0 == 0.0:
            raise DataError(
                f"direction: W_{{{i - 1}:1}} u vanishes, so the gains from layer {i} on are "
                "undefined"
            )
        z = W @ z
        gains.append(np.linalg.norm(z) / n0)
    return np.asarray(gains)


def gain_interval(depth: int, rho: float) -> tuple[float, float]:
    """Bounds on ``gamma_i(u*) / |T u*|^{1/N}`` at any global minimum whose sharpness is ``rho``
    times the flattest: with ``x_i = (gbar / gamma_i)^2`` (product 1) the path bound gives
    ``mean(x_i) <= rho``, so each ``x_i`` lies between the roots of ``x + (N-1) x^{-1/(N-1)} = N
    rho``. Returns ``(low, high)``."""
    N = as_int("depth", depth, low=1)
    rho = as_float("rho", rho, low=1.0)
    if N == 1 or rho == 1.0:
        return 1.0, 1.0
    h = lambda x: x + (N - 1) * x ** (-1.0 / (N - 1)) - N * rho  # convex, h(1) = N (1 - rho) < 0
    tiny = 0.5
    while h(tiny) <= 0:  # h -> +inf as x -> 0
        tiny *= 0.5
    x_lo = so.brentq(h, tiny, 1.0, xtol=1e-15)
    x_hi = so.brentq(h, 1.0, N * rho, xtol=1e-15)  # h(N rho) = (N-1) (N rho)^{-1/(N-1)} > 0
    return float(x_hi ** -0.5), float(x_lo ** -0.5)


def coupling(params, *, top: int | None = None) -> tuple[np.ndarray, ...]:
    """Singular-vector coupling of consecutive layers: for each pair ``(W_i, W_{i+1})`` the matrix
    ``C_i[k, l] = |<u_k(W_i), v_l(W_{i+1})>|`` of left singular vectors of ``W_i`` against right
    singular vectors of ``W_{i+1}`` (sorted by decreasing singular value, restricted to the ``top``
    largest). An entry 1 means a left singular vector of ``W_i`` is a right singular vector of
    ``W_{i+1}``."""
    Ws = _check_params(params)
    if top is not None:
        top = as_int("top", top, low=1)
    out = []
    for W, W_next in zip(Ws[:-1], Ws[1:], strict=True):
        U = np.linalg.svd(W, full_matrices=False)[0]
        V = np.linalg.svd(W_next, full_matrices=False)[2].T
        C = np.abs(U.T @ V)
        out.append(C if top is None else C[:top, :top])
    return tuple(out)


def coupling_scores(params, *, top: int | None = None) -> np.ndarray:
    """``max_{k,l} C_i[k, l]`` for every consecutive pair (1 = exactly coupled)."""
    return np.asarray([C.max() for C in coupling(params, top=top)])


def subspace_coupling(params, k: int) -> np.ndarray:
    """``|U_k(W_i)^T V_k(W_{i+1})|_F^2 / k`` per consecutive pair: how much of the top-``k`` left singular
    subspace of ``W_i`` lies in the top-``k`` right singular subspace of ``W_{i+1}`` (1 = the same
    subspace; about ``k / h_i`` for independent random matrices). Unlike :func:`coupling` it does not
    depend on the order of nearly equal singular values, so it suits wide nonlinear nets."""
    Ws = _check_params(params)
    k = as_int("k", k, low=1)
    out = []
    for i, (W, W_next) in enumerate(zip(Ws[:-1], Ws[1:], strict=True)):
        if k > min(W.shape + W_next.shape):
            raise ConfigError(f"k: expected at most {min(W.shape + W_next.shape)} for pair {i + 1}, got {k}")
        U = np.linalg.svd(W, full_matrices=False)[0][:, :k]
        V = np.linalg.svd(W_next, full_matrices=False)[2][:k].T
        out.append(float(np.sum((U.T @ V) ** 2)) / k)
    return np.asarray(out)


def path_coupling(params, direction) -> np.ndarray:
    """Coupling along the path of ``direction`` (robust to repeated singular values): for each
    hidden layer ``i = 1..N-1`` with ``q_i = W_{i:1} u / |W_{i:1} u|``, the smaller of ``cos(W_i
    W_i^T q_i, q_i)`` and ``cos(W_{i+1}^T W_{i+1} q_i, q_i)``; 1 when ``q_i`` is a left singular
    vector of ``W_i`` and a right singular vector of ``W_{i+1}``."""
    Ws = _check_params(params)
    layer_gains(Ws, direction)  # validates the direction and that the path does not vanish
    z = np.asarray(direction, dtype=np.float64)
    cos = lambda a, b: float(abs(a @ b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-300))
    out = []
    for W, W_next in zip(Ws[:-1], Ws[1:], strict=True):
        z = W @ z
        q = z / np.linalg.norm(z)
        out.append(min(cos(W @ (W.T @ q), q), cos(W_next.T @ (W_next @ q), q)))
    return np.asarray(out)

"""The one-dimensional reduced problem behind :mod:`dlnlab.theory.exact` (ziyin2022, Sections
2.3-2.6).

Everything here is pure NumPy/SciPy on the spectral data of one "mode": eigenvalues ``a_j > 0`` of
Sxx and squared components ``e2_j`` of ``E[x y]`` along them (equal eigenvalues grouped), the noise
factor ``k``, the effective weight decay ``gamma`` (geometric mean over layers) and the number of
hidden layers ``D`` (the paper's depth; the library's depth is ``L = D + 1``). The function-space
loss is

    L_eff(v) = k v^T A v - 2 v^T m + Syy + (D + 1) gamma ||v||^(2/(D+1)),

and its nonzero stationary points are ``v(t) = (k A + gamma t^-D)^-1 m`` with ``t > 0`` solving
``g(t) = t^(D-1) sum_j e2_j / (k a_j t^D + gamma)^2 = 1``. ``t`` is the balanced per-layer scale:
``gamma_l ||W_l||_F^2 = gamma t`` for every layer and ``||v|| = t^((D+1)/2)``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy.optimize import brentq

from ..errors import NumericalError

__all__ = ["Mode", "stationary_ts", "kind_at", "critical_gamma", "spinodal_gamma"]

_TANGENT = 1e-12  # |log g| below this at a critical point of log g: a double (tangent) root


@dataclass(frozen=True)
class Mode:
    """Spectral data of one reduced problem (eigenvalues ``a`` grouped, ``e2`` summed per group)."""

    a: np.ndarray
    e2: np.ndarray
    k: float
    D: int

    @property
    def m2(self) -> float:
        return float(self.e2.sum())

    # -- the stationarity function, in s = log t --------------------------------------------------
    def _logw(self, s, gamma):
        """log(e2_j / (k a_j t^D + gamma)^2) for every grid point (rows) and group (columns)."""
        s = np.atleast_1d(np.asarray(s, dtype=float))[:, None]
        lc = np.log(self.k * self.a)[None, :]
        return np.log(self.e2)[None, :] - 2.0 * np.logaddexp(lc + self.D * s, math.log(gamma)), lc

    def log_g(self, s, gamma):
        """``log g(e^s)``, computed stably with log-sum-exp (works for t from 1e-300 to 1e300)."""
        lw, _ = self._logw(s, gamma)
        out = (self.D - 1) * np.atleast_1d(s) + _lse(lw)
        return out

    def dlog_g(self, s, gamma):
        """``d log g / d s``: ``(D - 1) - 2 D <u>`` with ``u_j = k a_j t^D / (k a_j t^D + gamma)``
        averaged with the weights of :meth:`log_g`."""
        lw, lc = self._logw(s, gamma)
        s = np.atleast_1d(np.asarray(s, dtype=float))[:, None]
        x = lc + self.D * s
        u = np.exp(x - np.logaddexp(x, math.log(gamma)))
        w = np.exp(lw - lw.max(axis=1, keepdims=True))
        return (self.D - 1) - 2.0 * self.D * (w * u).sum(axis=1) / w.sum(axis=1)

    def v_coef(self, t, gamma):
        """Per-group coefficient c_j with v = sum_j c_j (projection of m on group j): t^D/(k a_j
        t^D+gamma)."""
        if t == 0.0:
            return np.zeros_like(self.a)
        if gamma == 0.0:
            return 1.0 / (self.k * self.a)
        return 1.0 / (self.k * self.a + gamma * t ** (-self.D))

    def rel_loss(self, t, gamma):
        """``L - Syy`` at the stationary point of scale ``t``: ``-v^T m + D gamma t``."""
        return float(-(self.v_coef(t, gamma) * self.e2).sum() + self.D * gamma * t)

    def norm_v(self, t, gamma):
        return float(np.sqrt(((self.v_coef(t, gamma) ** 2) * self.e2).sum()))


def _lse(x):
    mx = x.max(axis=1)
    return mx + np.log(np.exp(x - mx[:, None]).sum(axis=1))


def _bounds(mode: Mode, gamma: float) -> tuple[float, float]:
    """An interval of s = log t outside which log g < 0 (no roots), from g <= t^(D-1) m2 / gamma^2
    and g <= t^(-D-1) ||(kA)^-1 m||^2."""
    D = mode.D
    hi = math.log((mode.e2 / (mode.k * mode.a) ** 2).sum()) / (D + 1)
    lo = (2.0 * math.log(gamma) - math.log(mode.m2)) / (D - 1) if D >= 2 else hi - 60.0
    return min(lo, hi) - 1.0, max(lo, hi) + 1.0


def stationary_ts(mode: Mode, gamma: float) -> np.ndarray:
    """All ``t > 0`` with ``g(t) = 1`` (sorted). D = 0 and gamma = 0 are handled by the caller.

    D = 1: ``g`` is strictly decreasing from ``m2 / gamma^2``: at most one root. D >= 2: roots come
    in pairs; they are bracketed on the monotone pieces of ``log g`` between its critical points,
    which are found as sign changes of the analytic derivative on a log-grid fine compared with the
    width (~1/D in log t) of the features of ``log g``, then refined with brentq."""
    if mode.m2 == 0.0:
        return np.empty(0)
    lo, hi = _bounds(mode, gamma)
    f = lambda s: float(mode.log_g(s, gamma)[0])
    if mode.D == 1:
        if mode.m2 <= gamma**2:
            return np.empty(0)
        lo = min(lo, 2.0 * math.log(gamma) - math.log(mode.m2) - 40.0)
        while f(lo) <= 0.0:  # g(0+) = m2/gamma^2 > 1, so this terminates
            lo -= 40.0
        return np.array([math.exp(brentq(f, lo, hi, xtol=1e-15, rtol=1e-15, maxiter=500))])
    h = min(0.05, 0.5 / mode.D)
    grid = np.linspace(lo, hi, max(int((hi - lo) / h) + 2, 64))
    dg = mode.dlog_g(grid, gamma)
    fp = lambda s: float(mode.dlog_g(s, gamma)[0])
    crit = []
    for i in np.nonzero(np.sign(dg[:-1]) * np.sign(dg[1:]) <= 0)[0]:
        if dg[i] == 0.0:
            crit.append(grid[i])
        elif dg[i + 1] != 0.0:
            crit.append(brentq(fp, grid[i], grid[i + 1], xtol=1e-15, rtol=1e-15, maxiter=500))
    knots = [lo, *sorted(set(crit)), hi]
    vals = [f(s) for s in knots]
    roots = []
    for (s0, f0), (s1, f1) in zip(
        zip(knots, vals, strict=True), zip(knots[1:], vals[1:], strict=True), strict=False
    ):
        if f0 < 0.0 < f1 or f1 < 0.0 < f0:
            roots.append(brentq(f, s0, s1, xtol=1e-15, rtol=1e-15, maxiter=500))
    for s, fs in zip(knots[1:-1], vals[1:-1], strict=True):
        if abs(fs) <= _TANGENT and not any(abs(s - r) < 1e-9 for r in roots):
            roots.append(s)
    return np.exp(np.sort(np.array(roots, dtype=float)))


def kind_at(mode: Mode, t: float, gamma: float) -> str:
    """Minimum or saddle of ``L_eff`` at the nonzero stationary point of scale ``t``.

    The Hessian of ``L_eff`` there is ``2 M - c vhat vhat^T`` with ``M = k A + gamma t^-D``
    (positive definite) and ``c = 4 D gamma t^-D / (D + 1)``: a rank-one downdate, positive definite
    iff ``(c / 2) vhat^T M^-1 vhat < 1`` (equivalently ``g'(t) < 0``: ``g`` crosses 1 downwards).
    """
    if gamma == 0.0 or mode.D == 0:
        return "minimum"
    M = mode.k * mode.a + gamma * t ** (-mode.D)
    s2 = (mode.e2 / M**2).sum()
    s3 = (mode.e2 / M**3).sum()
    ratio = 2.0 * mode.D * gamma * t ** (-mode.D) / (mode.D + 1) * s3 / s2
    if abs(ratio - 1.0) < 1e-9:
        return "degenerate"
    return "minimum" if ratio < 1.0 else "saddle"


def zero_kind(mode: Mode, gamma: float) -> str:
    """Kind of ``v = 0`` in the reduced problem (and of the origin in parameter space)."""
    if mode.m2 == 0.0:
        return "minimum"
    if gamma == 0.0:
        return "saddle"
    if mode.D >= 2:
        return "minimum"
    m = math.sqrt(mode.m2)
    return "minimum" if m < gamma else ("degenerate" if m == gamma else "saddle")


def best_rel_loss(mode: Mode, gamma: float) -> float:
    """Lowest ``L - Syy`` over the nonzero stationary points (``+inf`` when there are none)."""
    ts = stationary_ts(mode, gamma)
    return min((mode.rel_loss(t, gamma) for t in ts), default=math.inf)


# -- critical weight decays ----------------------------------------------------------------------
def critical_gamma(mode: Mode, *, numerical: bool = False) -> tuple[float, str]:
    """Effective weight decay at which ``v = 0`` becomes a global minimum, and how it was obtained.

    D = 1: ``gamma_c = ||m||`` for any noise, width and Sxx. D >= 2 with ``m`` in one eigenspace of
    Sxx (isotropic): ``gamma* = [m^(2D) (D-1)^(D-1) / (D^(2D) (k a)^(D-1))]^(1/(D+1))``. Otherwise
    the set of gammas with a nonzero point below ``Syy`` is an interval ``[0, gamma*)``
    (``L_eff(v)`` increases with gamma at every ``v != 0``), so bisection on "the best nonzero
    stationary point beats zero" is exact."""
    D, m2 = mode.D, mode.m2
    if m2 == 0.0:
        return 0.0, "closed_form"
    if D == 0:
        return math.inf, "closed_form"
    if D == 1 and not numerical:
        return math.sqrt(m2), "closed_form"
    if mode.a.size == 1 and not numerical:
        ka = mode.k * mode.a[0]
        val = (m2**D * (D - 1) ** (D - 1) / (D ** (2 * D) * ka ** (D - 1))) ** (1.0 / (D + 1))
        return float(val), "closed_form"
    wins = lambda g: best_rel_loss(mode, g) < 0.0
    lo, hi = _bracket(wins, math.sqrt(m2))
    return _bisect(wins, lo, hi), "numerical"


def spinodal_gamma(mode: Mode, *, numerical: bool = False) -> tuple[float, str]:
    """Largest effective weight decay at which a nonzero local minimum of ``L_eff`` exists.

    D >= 2 isotropic: ``gamma_s = m (D+1)/(2D) ((D-1) m / (2 D k a))^((D-1)/(D+1))``. Otherwise: a
    nonzero local minimum exists iff ``max_t g(t) > 1`` (``g`` vanishes at 0 and infinity, so it
    must cross 1 downwards), and ``g`` decreases with gamma pointwise, so bisection on ``max_t g >
    1`` is exact."""
    D, m2 = mode.D, mode.m2
    if m2 == 0.0:
        return 0.0, "closed_form"
    if D == 0 or (D == 1 and not numerical):
        return critical_gamma(mode)
    if mode.a.size == 1 and not numerical:
        m, ka = math.sqrt(m2), mode.k * mode.a[0]
        val = m * (D + 1) / (2 * D) * ((D - 1) * m / (2 * D * ka)) ** ((D - 1) / (D + 1))
        return float(val), "closed_form"
    exists = lambda g: stationary_ts(mode, g).size > 0
    lo, hi = _bracket(exists, math.sqrt(m2))
    return _bisect(exists, lo, hi), "numerical"


def _bracket(pred, start):
    lo, hi = start, start
    for _ in range(400):
        if pred(lo):
            break
        lo /= 2.0
    else:
        raise NumericalError(
            "critical_weight_decay: no weight decay with a nonzero minimum was found"
        )
    for _ in range(400):
        if not pred(hi):
            break
        hi *= 2.0
    else:
        raise NumericalError("critical_weight_decay: the nonzero minimum never disappears")
    return lo, hi


def _bisect(pred, lo, hi):
    """Largest gamma with ``pred`` true, to machine precision (pred is true on [lo, x*), false
    above)."""
    for _ in range(200):
        mid = 0.5 * (lo + hi)
        if mid in (lo, hi):
            break
        lo, hi = (mid, hi) if pred(mid) else (lo, mid)
    return 0.5 * (lo + hi)

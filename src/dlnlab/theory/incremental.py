"""Incremental learning of independent modes by a depth-N factorization (Gissin, Shalev-Shwartz, Daniely 2020).

The toy model: each mode ``i`` is a balanced depth-``N`` scalar factorization ``sigma_i = w_i^N`` (``N`` equal
factors ``w_i``) trained by gradient flow on ``sum_i (sigma_i - s_i)^2``. Normalisation: the library's squared loss
has no 1/2, so the factor flow ``dw_k/dt = -d/dw_k (prod_k w_k - s)^2`` gives, for every mode,

    d sigma / dt = -2 N sigma^(2 - 2/N) (sigma - s).

(A paper written with the 1/2 has the same dynamics at half the speed: multiply our times by 2.) The model is what
a balanced deep linear network does on each singular mode of a whitened regression or a diagonal sensing target
when the singular vectors are already aligned: ``sigma0 = alpha^N`` for factors initialised at scale ``alpha``.

Closed forms, for a target ``s > 0`` and ``0 < sigma0`` (singular values are non-negative; ``s = 0`` is a mode that
decays):

* ``N = 1`` (linear model, no incremental learning): ``sigma(t) = s + (sigma0 - s) exp(-2 t)``.
* ``N = 2`` (logistic, Saxe et al. 2014): ``sigma(t) = s / (1 + (s / sigma0 - 1) exp(-4 s t))``.
* ``N > 2``, implicit: with ``w = sigma^(1/N)`` and ``w0 = sigma0^(1/N)``,
  ``t(sigma) = [ (w0^(2-N) - w^(2-N)) / (N - 2) + G(w) - G(w0) ] / (2 s)``, where ``G`` is an antiderivative of
  ``w / (s - w^N)``: ``G(w) = w^2 / (2 s) * 2F1(1, 2/N; 1 + 2/N; w^N / s)`` below the target and
  ``G(w) = w^(2-N) / (N - 2) * 2F1(1, (N-2)/N; 2 - 2/N; s / w^N)`` above it. As ``sigma0 -> 0`` the time to learn
  ``s`` grows like ``sigma0^(-(N-2)/N) / (2 (N - 2) s)`` (polynomially), against ``log(s / sigma0) / (4 s)`` for
  ``N = 2``: the ratio of the learning times of two values is ``s_1 / s_2`` only in the limit, and with depth the
  smaller value is still near ``sigma0`` when the larger is learned already at polynomially small init.
* ``s = 0``: ``sigma(t) = (sigma0^(-a) + 2 N a t)^(-1/a)`` with ``a = 2 - 2/N`` (``sigma0 exp(-2t)`` for ``N = 1``).

Example:
    >>> from dlnlab.theory.incremental import learning_time, trajectory
    >>> t = learning_time(2.0, 1e-6, depth=2)            # log(2 / 1e-6 - 1) / (4 * 2), to sigma = s / 2
    >>> round(float(t), 6)
    1.813582
    >>> trajectory([t], [2.0], 1e-6, depth=2).round(6).tolist()
    [[1.0]]

Reference: D. Gissin, S. Shalev-Shwartz, A. Daniely, "The Implicit Bias of Depth: How Incremental Learning Drives
Generalization", ICLR 2020 (arXiv:1909.12051), Section 3 (the toy model and its time to learn a value).
"""

from __future__ import annotations

import numpy as np
from scipy.optimize import brentq
from scipy.special import hyp2f1

from .._checks import as_array, as_float, as_int
from ..errors import ConfigError, DataError

__all__ = ["mode_velocity", "time_to_reach", "trajectory", "learning_time", "incremental_index"]

# Beyond this relative distance to the target the N > 2 trajectory follows the linearised tail (the implicit t(sigma)
# cannot resolve sigma closer to s than this without cancellation; the tail is exact to O(1e-9) relative there).
_TAIL = 1e-9


def _depth(depth) -> int:
    return as_int("depth", depth, low=1)


def _targets(targets) -> np.ndarray:
    s = as_array("targets", targets, ndim=(0, 1))
    if np.any(s < 0):
        raise DataError(f"targets: expected non-negative values (singular values), got {float(s.min())!r}")
    return s


def _sigma0(sigma0, shape) -> np.ndarray:
    s0 = as_array("sigma0", sigma0, ndim=(0, 1))
    if np.any(s0 <= 0):
        raise ConfigError(f"sigma0: expected positive initial values (sigma0 = alpha^N > 0), got {float(s0.min())!r}")
    try:
        return np.broadcast_to(s0, shape).astype(np.float64)
    except ValueError as exc:
        raise DataError(f"sigma0: expected a scalar or shape {shape} (one per target), got {s0.shape}") from exc


def mode_velocity(sigma, target, depth: int):
    """Right-hand side ``d sigma/dt = -2 N sigma^(2 - 2/N) (sigma - s)`` of the toy model (loss without 1/2).

    Example:
        >>> float(mode_velocity(1.0, 3.0, depth=2))   # -2 * 2 * 1 * (1 - 3)
        8.0
    """
    N = _depth(depth)
    sigma = np.asarray(sigma, dtype=np.float64)
    return -2.0 * N * sigma ** (2.0 - 2.0 / N) * (sigma - np.asarray(target, dtype=np.float64))


def _G(w, s, N):
    """An antiderivative of w / (s - w^N) on the side of the target where w lies (N > 2, s > 0)."""
    z = w**N / s
    if z < 1.0:
        return w**2 / (2.0 * s) * hyp2f1(1.0, 2.0 / N, 1.0 + 2.0 / N, z)
    b = (N - 2.0) / N
    return w ** (2.0 - N) / (N - 2.0) * hyp2f1(1.0, b, b + 1.0, 1.0 / z)


def _time(sigma: float, s: float, s0: float, N: int) -> float:
    """t(sigma) for one mode; sigma must lie between sigma0 and s (s excluded unless sigma0 = s)."""
    if sigma == s0:
        return 0.0
    if s == 0.0:
        if N == 1:
            return 0.5 * np.log(s0 / sigma)
        a = 2.0 - 2.0 / N
        return (sigma ** (-a) - s0 ** (-a)) / (2.0 * N * a)
    if N == 1:
        return 0.5 * np.log((s0 - s) / (sigma - s))
    if N == 2:
        return np.log(sigma * (s - s0) / (s0 * (s - sigma))) / (4.0 * s)
    w, w0 = sigma ** (1.0 / N), s0 ** (1.0 / N)
    first = (w0 ** (2.0 - N) - w ** (2.0 - N)) / (N - 2.0)
    return (first + _G(w, s, N) - _G(w0, s, N)) / (2.0 * s)


def time_to_reach(sigma, target: float, sigma0: float, depth: int):
    """Closed-form time ``t(sigma)`` at which the toy flow from ``sigma0`` reaches ``sigma`` (vectorised over sigma).

    ``sigma`` must lie between ``sigma0`` and the target (the target itself is reached only as ``t -> inf``).
    Normalisation: loss ``(sigma - s)^2`` without 1/2 (see the module docstring).

    Example:
        >>> round(float(time_to_reach(0.5, 1.0, 0.25, depth=1)), 6)   # 1/2 log(0.75 / 0.5)
        0.202733
    """
    N = _depth(depth)
    s_arr = _targets(target)
    if s_arr.ndim != 0:
        raise DataError(f"target: expected a scalar, got shape {s_arr.shape}")
    s = float(s_arr)
    s0 = float(_sigma0(sigma0, ()))
    sig = as_array("sigma", sigma, ndim=(0, 1))
    lo, hi = min(s0, s), max(s0, s)
    bad = (sig < lo) | (sig > hi) | ((sig == s) & (s != s0))
    if np.any(bad):
        v = float(sig.reshape(-1)[np.argmax(bad.reshape(-1))])
        raise DataError(f"sigma: expected values between sigma0 = {s0} and the target {s} (target excluded), got {v}")
    out = np.array([_time(float(x), s, s0, N) for x in sig.reshape(-1)])
    return out.reshape(sig.shape)


def _invert(t: float, s: float, s0: float, N: int) -> float:
    """sigma(t) for one mode, N > 2, s > 0, by bracketing the monotone implicit t(sigma)."""
    if t <= 0.0 or s0 == s:
        return s0
    edge = s - _TAIL * (s - s0) if s0 < s else s + _TAIL * (s0 - s)
    t_edge = _time(edge, s, s0, N)
    if t >= t_edge:  # linearised tail: d(sigma - s)/dt = -2 N s^(2 - 2/N) (sigma - s)
        return s + (edge - s) * np.exp(-2.0 * N * s ** (2.0 - 2.0 / N) * (t - t_edge))
    lo, hi = (s0, edge) if s0 < s else (edge, s0)
    return brentq(lambda x: _time(x, s, s0, N) - t, lo, hi, xtol=1e-300, rtol=4 * np.finfo(float).eps, maxiter=500)


def trajectory(times, targets, sigma0, depth: int) -> np.ndarray:
    """``sigma_i(t)`` of every mode at the given times, shape ``(len(times), len(targets))``.

    Explicit for ``N <= 2`` and for zero targets; for ``N > 2`` the implicit ``t(sigma)`` is inverted by bracketing
    (it is monotone). ``sigma0`` is a scalar or one value per target. Normalisation as in the module docstring.

    Example:
        >>> trajectory([0.0, 1e9], [3.0, 0.0], 1e-3, depth=3).round(6).tolist()
        [[0.001, 0.001], [3.0, 0.0]]
    """
    N = _depth(depth)
    ts = as_array("times", times, ndim=1)
    if np.any(ts < 0):
        raise DataError(f"times: expected non-negative times, got {float(ts.min())!r}")
    s = np.atleast_1d(_targets(targets))
    s0 = _sigma0(sigma0, s.shape)
    out = np.empty((ts.size, s.size))
    for i, (si, s0i) in enumerate(zip(s, s0)):
        if si == 0.0:
            if N == 1:
                out[:, i] = s0i * np.exp(-2.0 * ts)
            else:
                a = 2.0 - 2.0 / N
                out[:, i] = (s0i ** (-a) + 2.0 * N * a * ts) ** (-1.0 / a)
        elif N == 1:
            out[:, i] = si + (s0i - si) * np.exp(-2.0 * ts)
        elif N == 2:
            out[:, i] = si / (1.0 + (si / s0i - 1.0) * np.exp(-4.0 * si * ts))
        else:
            out[:, i] = [_invert(float(t), float(si), float(s0i), N) for t in ts]
    return out


def learning_time(target, sigma0, depth: int, fraction: float = 0.5):
    """Time at which a mode started at ``sigma0`` reaches ``fraction * target`` (0 if it starts above it).

    ``target`` may be an array (one time per value). For ``N = 2``:
    ``t = log((s - sigma0) f / (sigma0 (1 - f))) / (4 s)``; for ``N > 2`` it behaves like
    ``sigma0^(-(N-2)/N) / (2 (N - 2) s)`` as ``sigma0 -> 0``. Normalisation as in the module docstring.

    Example:
        >>> round(float(learning_time(1.0, 1e-9, depth=4)), 2)   # (1e-9)^(-1/2) / 4 - 0.71 + 0.22
        7905.56
    """
    N = _depth(depth)
    f = as_float("fraction", fraction, low=0.0, high=1.0, low_open=True, high_open=True)
    s = _targets(target)
    if np.any(s == 0):
        raise DataError("target: expected positive values (a zero target is never learned)")
    flat = np.atleast_1d(s)
    s0 = _sigma0(sigma0, flat.shape)
    out = np.array([0.0 if a >= f * b else _time(f * b, b, a, N) for a, b in zip(s0, flat)])
    return out.reshape(np.shape(s))


def incremental_index(targets, sigma0, depth: int, fraction: float = 0.5) -> float:
    """How incremental learning is: ``sigma_2 / s_2`` at the time ``sigma_1`` reaches ``fraction * s_1``.

    ``s_1 > s_2 > 0`` are the two largest targets. Near 0: the second value has not started when the first is
    (half) learned; near ``fraction``: both are learned together (depth 1). Normalisation as in the module
    docstring.

    Example:
        >>> round(incremental_index([2.0, 1.0], 1e-3, depth=1), 5)   # depth 1: 1 - 0.999 / 1.999, same pace
        0.50025
        >>> incremental_index([2.0, 1.0], 1e-3, depth=3) < incremental_index([2.0, 1.0], 1e-3, depth=2)
        True
    """
    s0 = as_float("sigma0", sigma0, low=0.0, low_open=True)
    s = np.sort(np.atleast_1d(_targets(targets)))[::-1]
    if s.size < 2 or s[1] <= 0 or s[0] == s[1]:
        raise DataError(f"targets: expected two distinct positive values, got {np.atleast_1d(targets).tolist()}")
    t1 = float(learning_time(s[0], s0, depth, fraction))
    return float(trajectory([t1], s[1:2], s0, depth)[0, 0] / s[1])

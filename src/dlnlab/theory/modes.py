"""Saxe, McClelland and Ganguli (2014) mode dynamics: the closed-form reference for gradient flow.

Setting: whitened inputs (``Sxx = I``), ``Syx = U diag(s) V^T``, and an *aligned, balanced* initialisation whose
end-to-end matrix is ``U diag(u0) V^T``. Gradient flow then keeps every layer balanced and aligned and each mode
strength ``u_i`` (the i-th singular value of ``A``) evolves on its own. With the library's loss
``E||A x - y||^2`` (no 1/2) each mode contributes ``(s - u)^2`` and, for per-layer gain ``a = u^(1/L)``,

    du/dt = 2 L u^(2 - 2/L) (s - u).

Depth 2 has the closed form (a logistic curve, twice as fast as Saxe et al.'s 1/2-normalised loss)

    u(t) = s / (1 + (s / u0 - 1) exp(-4 s t)).

For depth L >= 3 the time to reach u is ``t(u) = int_{u0}^{u} dv / (2 L v^(2-2/L) (s - v))``, which this module
inverts by solving the scalar ODE to 1e-12 relative accuracy (an independent reference, not the network flow).

Reference: A. M. Saxe, J. L. McClelland, S. Ganguli, "Exact solutions to the nonlinear dynamics of learning in
deep linear neural networks", ICLR 2014.

Example:
    >>> import numpy as np
    >>> from dlnlab.theory.modes import mode_strength
    >>> u = mode_strength(2.0, 1e-3, np.array([0.0, 10.0]))
    >>> bool(abs(u[0] - 1e-3) < 1e-15 and abs(u[1] - 2.0) < 1e-10)
    True
"""

from __future__ import annotations

import numpy as np
from scipy.integrate import solve_ivp

from .._checks import as_array, as_float, as_int
from ..errors import ConfigError, DataError, NumericalError
from ..nets import Net
from ..problems import Regression

__all__ = ["mode_strength", "end_to_end_trajectory", "aligned_init", "target_modes"]


# Mode strengths (targets and initial values) up to 1e100: the flow's right-hand side ~ u^(3 - 2/L) stays finite
# in float64 for every depth (1e100^3 = 1e300).
MAX_STRENGTH = 1e100


def mode_strength(s: float, u0: float, t, *, depth: int = 2) -> np.ndarray:
    """Mode strength ``u(t)`` under gradient flow for target singular value ``s`` and initial strength ``u0``
    (both in ``[0, 1e100]``)."""
    s = as_float("s", s, low=0.0, high=MAX_STRENGTH)
    u0 = as_float("u0", u0, low=0.0, high=MAX_STRENGTH)
    depth = as_int("depth", depth, low=1)
    t = as_array("t", t, ndim=(0, 1))
    if np.any(t < 0):
        raise DataError("t: expected non-negative times")
    if depth == 1:  # linear regression: du/dt = 2 (s - u)
        return -s * np.expm1(-2.0 * t) + u0 * np.exp(-2.0 * t)  # s + (u0 - s) e^(-2t) without cancellation
    if u0 == 0.0:  # the origin is a fixed point for depth >= 2
        return np.zeros(t.shape)
    if depth == 2:
        # s / (1 + (s/u0 - 1) e^(-4st)) as u0 / (u0 g + e^(-4st)) with g = (1 - e^(-4st)) / s: no cancellation
        # 1 - 1 when u0 >> s, no division by a tiny s (g -> 4t as s -> 0, the s = 0 solution u0 / (1 + 4 u0 t)).
        x = 4.0 * s * t
        g = 4.0 * t * np.where(x > 0, -np.expm1(-x) / np.where(x > 0, x, 1.0), 1.0)
        return u0 / (u0 * g + np.exp(-x))
    L = depth
    p = 2 - 2 / L
    order = np.argsort(t.ravel())
    ts = t.ravel()[order]
    with np.errstate(over="ignore", under="ignore", invalid="ignore"):  # the result is checked below
        if u0 > s:
            # From above, u falls ~ t^(-1/p) from a possibly huge u0 (a stiff start for an explicit solver). z = u^(-p)
            # obeys dz/dt = 2 L p (1 - s z^(1/p)), bounded in [0, 2 L p] and increasing from u0^(-p) to s^(-p).
            z0 = u0 ** -p
            sol = solve_ivp(lambda _, z: 2 * L * p * (1 - s * np.abs(z) ** (1 / p)), (0.0, float(ts[-1])), [z0],
                            t_eval=ts, rtol=1e-12, atol=1e-14 * z0, method="DOP853")
            y = sol.y[0] ** (-1 / p) if sol.success else sol.y[0]
        else:
            sol = solve_ivp(lambda _, u: 2 * L * np.abs(u) ** p * (s - u), (0.0, float(ts[-1])), [u0],
                            t_eval=ts, rtol=1e-12, atol=1e-14 * max(s, u0), method="DOP853")
            y = sol.y[0]
    if not sol.success or y.shape != ts.shape or not np.all(np.isfinite(y)):
        raise NumericalError(f"u0: the mode ODE (depth {L}, s={s:g}, u0={u0:g}) failed: {sol.message}; expected "
                             "a smaller initial strength or shorter times")
    out = np.empty_like(ts)
    out[order] = y
    return out.reshape(t.shape)


def target_modes(prob: Regression, *, tol: float = 1e-8):
    """``(U, s, Vt)`` of ``Syx`` for a whitened problem; raises unless ``Sxx`` is the identity."""
    Sxx = np.asarray(prob.Sxx, np.float64)
    if not np.allclose(Sxx, np.eye(Sxx.shape[0]), atol=tol):
        raise DataError("prob: the Saxe mode solution needs whitened inputs (Sxx = I)")
    return np.linalg.svd(np.asarray(prob.Syx, np.float64), full_matrices=False)


def _strengths(u0, k: int) -> np.ndarray:
    """``u0`` as ``k`` mode strengths (a scalar is broadcast), or a clear error."""
    try:
        arr = None if np.asarray(u0).dtype.kind not in "iuf" else np.asarray(u0, dtype=float)
    except (TypeError, ValueError):
        arr = None
    if arr is None or arr.ndim > 1 or (arr.ndim == 1 and arr.shape[0] != k):
        got = f"shape {arr.shape}" if arr is not None else repr(u0)
        raise ConfigError(f"u0: expected a number or {k} numbers (one per singular value of Syx), got {got}")
    return np.broadcast_to(arr, (k,))


def end_to_end_trajectory(prob: Regression, u0, t, *, depth: int) -> np.ndarray:
    """End-to-end matrices ``A(t) = U diag(u(t)) V^T`` (shape ``(len(t), d_out, d_in)``) from the aligned,
    balanced initialisation with mode strengths ``u0`` (one per singular value of ``Syx``, or a scalar)."""
    U, s, Vt = target_modes(prob)
    u0 = _strengths(u0, s.size)
    t = as_array("t", t, ndim=1)
    strengths = np.stack([mode_strength(si, ui, t, depth=depth) for si, ui in zip(s, u0)], axis=1)
    return np.einsum("ik,tk,kj->tij", U, strengths, Vt)


def aligned_init(net: Net, prob: Regression, u0, *, key=0):
    """Balanced weights whose end-to-end matrix is ``U diag(u0) V^T`` (the Saxe initial condition)."""
    U, s, Vt = target_modes(prob)
    u0 = np.broadcast_to(np.asarray(u0, dtype=float), s.shape)
    if np.any(u0 <= 0):
        raise DataError("u0: expected positive initial mode strengths")
    return net.init(key, scheme="balanced", target=U @ np.diag(u0) @ Vt)

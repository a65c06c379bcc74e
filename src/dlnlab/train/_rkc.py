"""A stabilised explicit Runge-Kutta-Chebyshev solver (second order, damped) for stiff gradient flows.

The flow ``dW/dt = -grad L(W)`` has the Jacobian ``-H`` (minus the symmetric Hessian), so its spectrum is real. An
explicit Runge-Kutta method of fixed order is stable only for ``h * lambda_max(H) <= O(1)``: after a small
initialisation learns its first mode the sharpness is O(1) while the following plateaus last O(1e4) time units,
and Tsit5 (like GD) is then limited by stability, not accuracy. RKC stretches the real stability interval with
the number of stages ``s``: an ``s``-stage step is stable for ``h * rho <= beta(s) ~ 0.65 s^2``, so a step of
length ``h`` costs ``s ~ sqrt(1.54 h rho)`` gradients instead of ``h * rho``.

Scheme (van der Houwen-Sommeijer; Sommeijer, Shampine and Verwer 1997; Verwer 1996), with Chebyshev polynomials
``T_j`` of the first kind, damping ``eps = 2/13``, ``w0 = 1 + eps/s^2``, ``w1 = T_s'(w0)/T_s''(w0)``,
``b_j = T_j''(w0)/T_j'(w0)^2`` (``b_0 = b_1 = b_2``) and ``a_j = 1 - b_j T_j(w0)``::

    Y_0 = y_n,  Y_1 = Y_0 + mu~_1 h F(Y_0),                          mu~_1 = b_1 w1
    Y_j = (1 - mu_j - nu_j) Y_0 + mu_j Y_{j-1} + nu_j Y_{j-2} + mu~_j h F(Y_{j-1}) + g~_j h F(Y_0),
          mu_j = 2 w0 b_j/b_{j-1},  nu_j = -b_j/b_{j-2},  mu~_j = 2 w1 b_j/b_{j-1},  g~_j = -a_{j-1} mu~_j
    y_{n+1} = Y_s

whose stability polynomial is ``a_s + b_s T_s(w0 + w1 z) = 1 + z + z^2/2 + O(z^3)``. The local error estimate is
``(12 (y_n - y_{n+1}) + 6 h (F(y_n) + F(y_{n+1}))) / 15`` (third order), ``F(y_{n+1})`` is reused as the next
step's ``F(Y_0)``, and dense output is the cubic Hermite interpolant (for ``SaveAt(ts=...)`` and events).

The number of stages is chosen per step from a spectral-radius estimate: power iteration with Jacobian-vector
products (``jax.jvp`` of the vector field, i.e. Hessian-vector products), warm-started from the previous step's
vector carried in the solver state. Gradient evaluations are counted exactly: ``s`` per attempted step
(``s - 1`` stages and ``F(y_{n+1})``) plus 2 per Jacobian-vector product, rejected attempts included (see
:class:`CountingPID`).
"""

from __future__ import annotations

from typing import ClassVar

import diffrax
import jax
import jax.numpy as jnp
import optimistix as optx
from diffrax import RESULTS

DAMPING = 2.0 / 13.0


def _tree_dot(a, b):
    return sum(jnp.vdot(x, y) for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


def _tree_norm(a):
    return jnp.sqrt(_tree_dot(a, a))


def _axpy(*pairs):
    """``sum_i c_i * x_i`` over pytrees, for (coefficient, tree) pairs."""
    return jax.tree.map(lambda *xs: sum(c * x for c, x in zip(pairs[::2], xs)), *pairs[1::2])


def _chebyshev(w0, s):
    """``T_s(w0), T_s'(w0), T_s''(w0)`` by the three-term recurrences (``s >= 2``, traced)."""

    def body(_, c):
        t1, t0, d1, d0, e1, e0 = c
        return (2 * w0 * t1 - t0, t1, 2 * t1 + 2 * w0 * d1 - d0, d1, 4 * d1 + 2 * w0 * e1 - e0, e1)

    one, zero = jnp.ones_like(w0), jnp.zeros_like(w0)
    t, _, d, _, e, _ = jax.lax.fori_loop(1, s, body, (w0, one, one, zero, zero, zero))
    return t, d, e


def stages_for(h_rho, max_stages: int):
    """Fewest stages ``s >= 2`` whose stability interval covers ``h * rho`` (with the 1.54 of RKC's choice)."""
    s = 1 + jnp.floor(jnp.sqrt(1.0 + 1.54 * h_rho)).astype(jnp.int32)
    return jnp.clip(s, 2, max_stages)


def stability_bound(s):
    """The damped stability interval ``beta(s) = (1 + w0) / w1`` (``|R(z)| <= 1`` on ``[-beta, 0]``)."""
    w0 = 1.0 + DAMPING / s**2
    _, d, e = _chebyshev(w0, s)
    return (1.0 + w0) * e / d


class RKC(diffrax.AbstractAdaptiveSolver):
    """Second-order damped Runge-Kutta-Chebyshev with a power-iteration spectral radius (see module docstring).

    The solved state is a pair ``(x, n)``: ``x`` the ODE state (any pytree) and ``n`` a float counter of vector
    field evaluations, which the solver advances by the cost of each attempted step. The vector field must
    take and return such pairs (its ``n`` component is ignored). Use it with :class:`CountingPID`, which
    measures errors on ``x`` only and adds up the cost of every attempt, rejected ones included (diffrax
    discards the state of a rejected step, so the counter itself cannot keep them).

    Args:
        max_stages: stage cap; a step that would need more is rejected (the controller shrinks it).
        power_iterations: Jacobian-vector products per step to update the spectral-radius estimate.
        init_iterations: Jacobian-vector products at the initial point (from a fixed random vector).
        safety: the estimate is multiplied by this before choosing ``s`` (power iteration approaches the
            spectral radius from below).
    """

    max_stages: int = 200
    power_iterations: int = 1
    init_iterations: int = 30
    safety: float = 1.2

    term_structure: ClassVar = diffrax.AbstractTerm
    interpolation_cls: ClassVar = diffrax.ThirdOrderHermitePolynomialInterpolation

    def order(self, terms):
        return 2

    def error_order(self, terms):
        return 3

    def func(self, terms, t0, y0, args):
        return terms.vf(t0, y0, args)

    def init_cost(self) -> int:
        """Evaluations made by :meth:`init` (``F(y_0)`` and the initial power iteration)."""
        return 1 + 2 * self.init_iterations

    def _power(self, f, x0, v, n):
        def body(_, c):
            v, _ = c
            _, jv = jax.jvp(f, (x0,), (v,))
            norm = _tree_norm(jv)
            # A zero Jacobian (the origin of a deep net) leaves the vector as it was.
            v = jax.tree.map(lambda x, x_old: jnp.where(norm > 0, x / jnp.where(norm > 0, norm, 1.0), x_old), jv, v)
            return v, norm

        return jax.lax.fori_loop(0, n, body, (v, jnp.zeros((), jnp.result_type(float))))

    def init(self, terms, t0, t1, y0, args):
        x0, n0 = y0
        f = _field(terms, t0, n0, args)
        leaves, tdef = jax.tree.flatten(x0)
        keys = jax.random.split(jax.random.key(0), len(leaves))
        v = jax.tree.unflatten(tdef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)])
        v = jax.tree.map(lambda x: x / _tree_norm(v), v)
        v, rho = self._power(f, x0, v, self.init_iterations)
        return f(x0), v, rho

    def step(self, terms, t0, t1, y0, args, solver_state, made_jump):
        del made_jump  # gradient flows are smooth: F(y_n) is always the previous step's F(y_{n+1})
        x0, n0 = y0
        f = _field(terms, t0, n0, args)
        f0, v, rho = solver_state
        h = jnp.asarray(t1 - t0, dtype=jnp.result_type(float))
        if self.power_iterations > 0:
            v, rho = self._power(f, x0, v, self.power_iterations)
        h_rho = h * self.safety * rho
        s = stages_for(h_rho, self.max_stages)
        w0 = 1.0 + DAMPING / s.astype(h.dtype) ** 2
        _, ds, es = _chebyshev(w0, s)
        w1 = ds / es
        # j = 2: T_2 = 2 w0^2 - 1, T_2' = 4 w0, T_2'' = 4, so b_2 = 1 / (4 w0^2); b_0 = b_1 = b_2.
        b2 = 1.0 / (4.0 * w0**2)
        x1 = _axpy(1.0, x0, b2 * w1 * h, f0)

        def body(j, c):
            xm1, xm2, tm1, tm2, dm1, dm2, em1, em2, bm1, bm2 = c
            tj = 2 * w0 * tm1 - tm2
            dj = 2 * tm1 + 2 * w0 * dm1 - dm2
            ej = 4 * dm1 + 2 * w0 * em1 - em2
            bj = ej / dj**2
            mu, nu, mut = 2 * w0 * bj / bm1, -bj / bm2, 2 * w1 * bj / bm1
            gt = -(1.0 - bm1 * tm1) * mut  # a_{j-1} = 1 - b_{j-1} T_{j-1}(w0)
            xj = _axpy(1.0 - mu - nu, x0, mu, xm1, nu, xm2, mut * h, f(xm1), gt * h, f0)
            return (xj, xm1, tj, tm1, dj, dm1, ej, em1, bj, bm1)

        one, zero = jnp.ones_like(w0), jnp.zeros_like(w0)
        # at j = 2 the carry holds Y_1, Y_0, T_1, T_0, T_1', T_0', T_1'', T_0'', b_1, b_0
        xs = jax.lax.fori_loop(2, s + 1, body, (x1, x0, w0, one, one, zero, zero, zero, b2, b2))[0]
        f1 = f(xs)
        err = _axpy(12.0 / 15.0, x0, -12.0 / 15.0, xs, 6.0 / 15.0 * h, f0, 6.0 / 15.0 * h, f1)
        # A step that needs more stages than the cap would be unstable: reject it outright.
        too_stiff = 1 + jnp.floor(jnp.sqrt(1.0 + 1.54 * h_rho)) > self.max_stages
        err = jax.tree.map(lambda e: jnp.where(too_stiff, jnp.inf, e), err)
        # s - 1 stages after F(Y_0), F(y_{n+1}), and 2 per Jacobian-vector product
        n1 = n0 + (s + 2 * self.power_iterations).astype(jnp.result_type(n0))
        y1 = (xs, n1)
        dense = dict(y0=y0, y1=y1, k0=(jax.tree.map(lambda a: h * a, f0), jnp.zeros_like(n0)),
                     k1=(jax.tree.map(lambda a: h * a, f1), jnp.zeros_like(n0)))
        return y1, (err, jnp.zeros_like(n0)), dense, (f1, v, rho), RESULTS.successful


def _field(terms, t, n, args):
    """The ``x`` part of the vector field of a counted state ``(x, n)``."""
    return lambda x: terms.vf(t, (x, n), args)[0]


def _state_norm(scaled_error):
    return optx.rms_norm(scaled_error[0])


class CountingPID(diffrax.PIDController):
    """``diffrax.PIDController`` on counted states ``(x, n)`` (see :class:`RKC`): errors are measured on ``x``
    only, and the controller state carries the total cost of every attempted step, accepted or rejected."""

    def __init__(self, *, rtol, atol):
        super().__init__(rtol=rtol, atol=atol, norm=_state_norm)

    def init(self, terms, t0, t1, y0, dt0, args, func, error_order):
        t1, state = super().init(terms, t0, t1, y0, dt0, args, func, error_order)
        return t1, (state, jnp.zeros((), jnp.result_type(float)))

    def adapt_step_size(self, t0, t1, y0, y1_candidate, args, y_error, error_order, controller_state):
        state, spent = controller_state
        out = super().adapt_step_size(t0, t1, y0, y1_candidate, args, y_error, error_order, state)
        spent = spent + (y1_candidate[1] - y0[1])
        return (*out[:4], (out[4], spent), out[5])

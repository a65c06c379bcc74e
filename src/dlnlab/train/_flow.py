"""Gradient flow ``dW/dt = -grad L(W)`` with diffrax: adaptive steps under error control, summaries saved at
requested times, and stopping events.

Stopping events (checked after every accepted solver step):

- ``dl.Stop(loss=...)``: the loss has fallen to the threshold;
- ``dl.Stop(grad_norm=...)``: the gradient norm is below the threshold *and* the flow has left its starting point. A
  small initialisation starts next to the saddle at the origin, where the gradient is tiny (order
  ``scale**(L-1)``) although the point is not a minimum; a plain steady-state test would stop at once
  (diffrax issue #448 is the same trap). The test is therefore armed only once the loss has dropped by
  ``1e-3 * max(|L(0)|, 1)`` below its initial value, or from the start when the initial gradient already exceeds
  the threshold. It can still stop on a later plateau whose gradient is below the threshold: pick the threshold
  below the plateau gradients you care about, or use ``loss_threshold``;
- divergence: a non-finite or exploding loss ends the run with status ``"diverged"``.

Compilation: the runner is built from the *structure* of a call only (solver, ``max_steps``, the number of save
times, which thresholds are used, the summaries); the final time, the save times, the tolerances and the
threshold values are traced arguments, so a loop over ``t1`` or thresholds compiles once.

Records are computed by diffrax's ``SubSaveAt(fn=...)`` at each save time from the dense interpolant, each one
independently (so a warm-started summary such as ``sharpness`` starts cold at every record).
"""

from __future__ import annotations

import functools

import diffrax
import jax
import jax.numpy as jnp
import optimistix as optx

from ..summaries import Point, evaluate
from ._rkc import RKC, CountingPID

SOLVERS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8, "rkc": RKC}
# Gradient evaluations per solver step of the fixed-stage schemes (first-same-as-last ones reuse one stage);
# RKC counts its own (stages vary per step).
EVALS_PER_STEP = {"tsit5": 6, "dopri5": 6, "dopri8": 12}


def all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


class _StopTime(optx.Bisection):
    """Locate an event's time inside the step where it fired, by bisection on ``[t_prev, t_next]``.

    diffrax hands the root finder the *tuple* of all event conditions (the untriggered ones read 0); their sum
    is positive at ``t_prev`` and non-positive at ``t_next``. Newton on that tuple needs a linearisation and a
    least-squares solve, which cost compile time and can end with "diverged" on a flat loss; bisection needs
    neither. The interval is shrunk to a few ulps of ``t`` (no test on the value, which rounding can hold
    above zero) and its *upper* end is returned, so the returned state satisfies the condition.
    """

    def __init__(self):
        eps = float(jnp.finfo(jnp.result_type(float)).eps)
        super().__init__(rtol=64 * eps, atol=0.0, flip=True)

    def init(self, fn, y, args, options, f_struct, aux_struct, tags):
        scalar = jax.ShapeDtypeStruct((), jnp.result_type(y))
        return super().init(_summed(fn), y, args, options, scalar, aux_struct, tags)

    def step(self, fn, y, args, options, state, tags):
        return super().step(_summed(fn), y, args, options, state, tags)

    def terminate(self, fn, y, args, options, state, tags):
        small = jnp.abs(state.upper - state.lower) <= self.rtol * jnp.abs(state.upper)
        return small, optx.RESULTS.successful

    def postprocess(self, fn, y, aux, args, options, state, tags, result):
        return state.upper, aux, {}


def _summed(fn):
    def summed(y, args):
        out, aux = fn(y, args)
        return sum(jax.tree.leaves(out)), aux

    return summed


def make_flow(*, max_steps: int, solver: str, loss_event: bool, grad_event: bool, summaries: tuple):
    """Build ``run(objective, params, dyn) -> (history, params, result, t_final, n_steps, stop_kind, summary,
    n_grad_evals)``.

    ``dyn`` holds the traced values: ``t1``, ``save_at`` (an array whose length is part of the compiled shape),
    ``rtol``, ``atol``, ``loss``, ``grad_norm``, ``divergence``; ``loss_event``/``grad_event`` say whether the
    thresholds are used at all.
    """

    def run(objective, params, dyn):
        def summary_of(p):
            loss, g = objective.value_and_grad(p)
            return evaluate(summaries, Point(objective, p, loss, g), (None,) * len(summaries))[0]

        lthr = dyn["loss"] if loss_event else -jnp.inf
        gthr = dyn["grad_norm"] if grad_event else -jnp.inf
        loss0, g0 = objective.value_and_grad(params)
        gnorm0 = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g0)))
        arm_drop = 1e-3 * jnp.maximum(jnp.abs(loss0), 1.0)
        blowup = dyn["divergence"] * jnp.maximum(1.0, jnp.abs(loss0))

        # RKC integrates (params, evaluation counter) pairs so that rejected steps are counted too.
        counted = solver == "rkc"
        unwrap = (lambda y: y[0]) if counted else (lambda y: y)

        def field(t, y, args):
            flow = jax.tree.map(jnp.negative, objective.grad(unwrap(y)))
            return (flow, jnp.zeros_like(y[1])) if counted else flow

        def stop_kind(y, loss_test=True):
            # The gradient (a backward pass) is computed only when its threshold is used.
            if grad_event:
                loss, g = objective.value_and_grad(y)
                gnorm = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g)))
                armed = (gnorm0 > gthr) | (loss < loss0 - arm_drop)
                done = armed & (gnorm <= gthr)
            else:
                loss, done = objective.value(y), False
            bad = ~jnp.isfinite(loss) | (loss > blowup) | ~all_finite(y)
            done = done | ((loss <= lthr) & loss_test)
            return jnp.where(bad, 2, jnp.where(done, 1, 0))

        met_at_start = loss0 <= lthr  # no crossing to locate: stop after the first step
        conds = [lambda t, y, args, **kw: (stop_kind(unwrap(y), loss_test=False) > 0) | met_at_start]
        if loss_event:  # a real-valued condition: the root finder locates the crossing time
            conds.append(lambda t, y, args, **kw: objective.value(unwrap(y)) - lthr)
        event = diffrax.Event(conds, root_finder=_StopTime(), direction=[None, False][:len(conds)])
        saveat = diffrax.SaveAt(subs=[
            diffrax.SubSaveAt(ts=dyn["save_at"], fn=lambda t, y, args: summary_of(unwrap(y))),
            diffrax.SubSaveAt(t1=True),
        ], controller_state=counted)
        controller = (CountingPID if counted else diffrax.PIDController)(rtol=dyn["rtol"], atol=dyn["atol"])
        method = SOLVERS[solver]()
        y0 = (params, jnp.zeros((), jnp.result_type(float))) if counted else params
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), method, t0=jnp.zeros_like(dyn["t1"]), t1=dyn["t1"], dt0=None, y0=y0,
            saveat=saveat, stepsize_controller=controller, event=event, max_steps=max_steps, throw=False,
        )
        history, final = sol.ys
        final = unwrap(jax.tree.map(lambda x: x[-1], final))
        kind = stop_kind(final)
        # The loss event located its crossing: at that time the loss equals the threshold up to rounding, so
        # the event itself (not a re-evaluated ``loss <= threshold``) says that the run converged.
        fired = functools.reduce(jnp.logical_or, jax.tree.leaves(sol.event_mask))
        kind = jnp.where((kind == 0) & fired, 1, kind)
        n_steps = sol.stats["num_steps"]
        if counted:  # every attempted step, the solver's initialisation, 2 for the initial step size
            evals = jnp.round(sol.controller_state[1]) + method.init_cost() + 2
        else:
            evals = n_steps * EVALS_PER_STEP[solver] + 1.0
        # Under x64, diffrax's times are float64 and promote a float32 state; results keep the params' dtype.
        final = jax.tree.map(lambda x, x0: x.astype(x0.dtype), final, params)
        last = summary_of(final)
        history = {k: v.astype(last[k].dtype) for k, v in history.items()}
        return (history, final, sol.result._value, sol.ts[1][-1], n_steps, kind, last, evals)

    return run


def result_message(code: int) -> tuple[str, str]:
    """Map a diffrax result code to (status, message) for runs that did not stop on an event."""
    results = diffrax.RESULTS
    if code == results.successful._value:
        return "completed", "reached t1 before any stopping rule was met"
    if code == results.max_steps_reached._value:
        return "failed", "the ODE solver used max_steps steps before reaching t1; raise dl.Flow(max_steps=...)"
    return "failed", f"the ODE solver failed (diffrax result code {code}); try a smaller rtol/atol"

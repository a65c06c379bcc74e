"""Gradient flow ``dW/dt = -grad L(W)`` with diffrax: adaptive steps under error control, summaries saved at
requested times, and stopping events.

Stopping events (checked after every accepted solver step):

- ``loss_threshold``: the loss has fallen to the threshold;
- ``grad_threshold``: the gradient norm is below the threshold *and* the flow has left its starting point. A
  small initialisation starts next to the saddle at the origin, where the gradient is tiny (order
  ``scale**(L-1)``) although the point is not a minimum; a plain steady-state test would stop at once
  (diffrax issue #448 is the same trap). The test is therefore armed only once the loss has dropped by
  ``1e-3 * max(|L(0)|, 1)`` below its initial value, or from the start when the initial gradient already exceeds
  the threshold. It can still stop on a later plateau whose gradient is below the threshold: pick the threshold
  below the plateau gradients you care about, or use ``loss_threshold``;
- divergence: a non-finite or exploding loss ends the run with status ``"diverged"``.
"""

from __future__ import annotations

import diffrax
import jax
import jax.numpy as jnp
import numpy as np
import optimistix as optx

from ._summary import all_finite, make_summary

SOLVERS = {"tsit5": diffrax.Tsit5, "dopri5": diffrax.Dopri5, "dopri8": diffrax.Dopri8}
# Gradient evaluations per solver step (first-same-as-last schemes reuse one stage).
EVALS_PER_STEP = {"tsit5": 6, "dopri5": 6, "dopri8": 12}


def make_flow(*, t1: float, save_at: np.ndarray, rtol: float, atol: float, max_steps: int, solver: str,
              loss_threshold, grad_threshold, divergence_threshold: float, summaries):
    """Build ``run(objective, params) -> (history, params, result, t_final, n_steps, stop_kind, final summary)``."""
    ts = jnp.asarray(save_at)
    lthr = -jnp.inf if loss_threshold is None else loss_threshold
    gthr = -jnp.inf if grad_threshold is None else grad_threshold

    def run(objective, params):
        summary_of = make_summary(objective, summaries)
        loss0, g0 = objective.value_and_grad(params)
        gnorm0 = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g0)))
        arm_drop = 1e-3 * jnp.maximum(jnp.abs(loss0), 1.0)
        blowup = divergence_threshold * jnp.maximum(1.0, jnp.abs(loss0))

        def field(t, y, args):
            return jax.tree.map(jnp.negative, objective.grad(y))

        def stop_kind(y, loss_test=True):
            loss, g = objective.value_and_grad(y)
            gnorm = jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g)))
            bad = ~jnp.isfinite(loss) | (loss > blowup) | ~all_finite(y)
            armed = (gnorm0 > gthr) | (loss < loss0 - arm_drop)
            done = ((loss <= lthr) & loss_test) | (armed & (gnorm <= gthr))
            return jnp.where(bad, 2, jnp.where(done, 1, 0))

        conds = [lambda t, y, args, **kw: stop_kind(y, loss_test=False) > 0]
        if loss_threshold is not None:  # a real-valued condition: the root finder locates the crossing time
            conds.append(lambda t, y, args, **kw: objective.value(y) - loss_threshold)
        event = diffrax.Event(conds, root_finder=optx.Newton(rtol=1e-10, atol=1e-12))
        saveat = diffrax.SaveAt(subs=[
            diffrax.SubSaveAt(ts=ts, fn=lambda t, y, args: summary_of(y)),
            diffrax.SubSaveAt(t1=True),
        ])
        sol = diffrax.diffeqsolve(
            diffrax.ODETerm(field), SOLVERS[solver](), t0=0.0, t1=t1, dt0=None, y0=params,
            saveat=saveat, stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
            event=event, max_steps=max_steps, throw=False,
        )
        history, final = sol.ys
        final = jax.tree.map(lambda x: x[-1], final)
        return (history, final, sol.result._value, sol.ts[1][-1], sol.stats["num_steps"],
                stop_kind(final), summary_of(final))

    return run


def result_message(code: int) -> tuple[str, str]:
    """Map a diffrax result code to (status, message) for runs that did not stop on an event."""
    results = diffrax.RESULTS
    if code == results.successful._value:
        return "max_steps", "reached t1 before any stopping criterion was met"
    if code == results.max_steps_reached._value:
        return "solver_failed", "the ODE solver used max_steps steps before reaching t1; raise max_steps"
    return "solver_failed", f"the ODE solver failed (diffrax result code {code}); try a smaller rtol/atol"

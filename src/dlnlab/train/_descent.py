"""Gradient descent and SGD as one compiled loop (``lax.while_loop`` over records, ``fori_loop`` over steps).

The loop never runs Python per step. Each step checks the loss and the new parameters; the first non-finite or
exploding value freezes the run at its last finite parameters with status "diverged" and the step recorded.
Loss and gradient thresholds are checked on the exact objective at record times (every ``record_every`` steps).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import optax

from ._summary import all_finite, make_summary

RUNNING, CONVERGED, MAX_STEPS, DIVERGED = 0, 1, 2, 3


def make_descent(*, optimizer, stochastic: bool, batch_size, steps: int,
                 record_every: int, loss_threshold, grad_threshold, divergence_threshold: float,
                 summaries):
    """Build ``run(objective, params, key, lr) -> (history, n_recorded, params, status, bad_step, n_steps)``.

    Pure and jittable, so it can be vmapped over objectives, initial params, keys and learning rates.
    """
    n_rec = -(-steps // record_every)  # records after the initial one
    lthr = -jnp.inf if loss_threshold is None else loss_threshold
    gthr = -jnp.inf if grad_threshold is None else grad_threshold

    def run(objective, params, key, lr):
        summary_of = make_summary(objective, summaries)
        opt = optax.with_extra_args_support(optimizer if optimizer is not None else optax.sgd(lr))
        opt_state = opt.init(params)
        first = summary_of(params)
        history = jax.tree.map(lambda x: jnp.full((n_rec + 2,) + x.shape, jnp.nan, x.dtype), first)
        blowup = divergence_threshold * jnp.maximum(1.0, jnp.abs(first["loss"]))

        def loss_and_grad(p, step):
            if stochastic:
                k = jax.random.fold_in(key, step)
                return jax.value_and_grad(lambda q: objective.sample_value(q, k, batch_size=batch_size))(p)
            return objective.value_and_grad(p)

        def one_step(_, carry):
            p, s, step, status, bad_step = carry
            loss, g = loss_and_grad(p, step)
            updates, s_new = opt.update(g, s, p, value=loss)
            p_new = optax.apply_updates(p, updates)
            finite = all_finite(p_new) & jnp.isfinite(loss) & (loss < blowup)
            running = status == RUNNING
            take = running & finite
            p = jax.tree.map(lambda a, b: jnp.where(take, a, b), p_new, p)
            s = jax.tree.map(lambda a, b: jnp.where(take, a, b), s_new, s)
            status = jnp.where(running & ~finite, DIVERGED, status)
            bad_step = jnp.where(running & ~finite, step, bad_step)
            return p, s, step + take.astype(step.dtype), status, bad_step

        def record(hist, r, p, step):
            summ = dict(summary_of(p), step=step)
            return jax.tree.map(lambda h, v: h.at[r].set(v), hist, summ), summ

        def cond(c):
            return (c[0] <= n_rec) & (c[4] == RUNNING)

        def body(c):
            r, p, s, hist, status, bad_step, step = c
            hist, summ = record(hist, r, p, step)
            met = (summ["loss"] <= lthr) | (summ["grad_norm"] <= gthr)
            status = jnp.where(met, CONVERGED, jnp.where(r == n_rec, MAX_STEPS, status))
            n_inner = jnp.where(status == RUNNING, jnp.minimum(record_every, steps - step), 0)
            p, s, step, status, bad_step = jax.lax.fori_loop(
                0, n_inner, one_step, (p, s, step, status, bad_step)
            )
            return r + 1, p, s, hist, status, bad_step, step

        zero = jnp.zeros((), jnp.int32)
        history = dict(history, step=jnp.full((n_rec + 2,), -1, jnp.int32))
        init = (zero, params, opt_state, history, zero, zero - 1, zero)
        r, p, _, hist, status, bad_step, step = jax.lax.while_loop(cond, body, init)
        # A run that diverged mid-chunk also records its last finite state.
        diverged = status == DIVERGED
        hist = jax.tree.map(lambda a, b: jnp.where(diverged, a, b), record(hist, r, p, step)[0], hist)
        return hist, r + diverged.astype(r.dtype), p, status, bad_step, step

    return run

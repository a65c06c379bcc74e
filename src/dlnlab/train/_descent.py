"""Gradient descent and SGD for a batch of runs as one compiled loop (``lax.while_loop`` over records, ``fori_loop``
over the steps between two records).

The loop never runs Python per step. The first non-finite or exploding value (a non-finite or blown-up loss, or
non-finite new parameters) freezes a run at its last finite parameters with status "diverged" and the step
recorded. Loss and gradient thresholds are checked on the exact objective at record times (every ``record_every``
steps).

Why the batch is explicit rather than a ``vmap`` of a one-run loop: under ``vmap`` a loop whose trip count or
stopping test differs between runs becomes a loop that selects every carried array on every step, and per-step
divergence checks add a select per parameter and optimizer-state leaf. Here only the gradient step is vmapped;
the loop structure (records, chunk lengths) is shared by the whole batch, and a chunk of steps runs without
per-step bookkeeping: it only accumulates "every loss was below the blow-up level". When a run's chunk ends
non-finite or blown up, the chunk is replayed from its saved start with the exact per-step checks, which finds the
same divergence step and last finite parameters that checking every step would (the replay repeats the same
computation). Runs that have stopped (converged or diverged) keep computing with the batch until the chunk ends,
when their state is restored: wasted work, never visible in the results.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from ._summary import make_summary

RUNNING, CONVERGED, MAX_STEPS, DIVERGED = 0, 1, 2, 3


def _where(mask, a, b):
    """Per-run select between two batched pytrees (``mask`` has one entry per run)."""
    return jax.tree.map(lambda x, y: jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, y), a, b)


def _finite_per_run(tree, n):
    ok = jnp.ones((n,), bool)
    for x in jax.tree.leaves(tree):
        ok &= jnp.all(jnp.isfinite(x.reshape(n, -1)), axis=1)
    return ok


def make_descent(*, optimizer, stochastic: bool, batch_size, steps: int,
                 record_every: int, loss_threshold, grad_threshold, divergence_threshold: float,
                 summaries, objective_axis=None):
    """Build ``run(objective, params, keys, lrs) -> (history, n_recorded, params, status, bad_step, n_steps)`` for
    a batch of runs: every params leaf, ``keys`` and ``lrs`` have a leading run axis; ``objective`` is shared
    (``objective_axis=None``) or stacked along axis 0. Every output has the leading run axis. Pure and jittable.
    """
    n_rec = -(-steps // record_every)  # records after the initial one
    lthr = -jnp.inf if loss_threshold is None else loss_threshold
    gthr = -jnp.inf if grad_threshold is None else grad_threshold

    def opt_for(lr):
        return optax.with_extra_args_support(optimizer if optimizer is not None else optax.sgd(lr))

    def step_one(objective, p, s, key, lr, step):
        if stochastic:
            k = jax.random.fold_in(key, step)
            loss, g = jax.value_and_grad(lambda q: objective.sample_value(q, k, batch_size=batch_size))(p)
        else:
            loss, g = objective.value_and_grad(p)
        updates, s_new = opt_for(lr).update(g, s, p, value=loss)
        return optax.apply_updates(p, updates), s_new, loss

    vmap = lambda f, *axes: eqx.filter_vmap(f, in_axes=(objective_axis,) + axes)  # noqa: E731
    step_all = vmap(step_one, 0, 0, 0, 0, None)
    summary_all = vmap(lambda objective, p: make_summary(objective, summaries)(p), 0)
    opt_init_all = jax.vmap(lambda p, lr: opt_for(lr).init(p))

    def run(objective, params, keys, lrs):
        n = jax.tree.leaves(params)[0].shape[0]
        # a learning rate in the params' precision, as a float32 user writing the loop by hand would have it
        lrs = jnp.asarray(lrs).astype(jax.tree.leaves(params)[0].dtype)
        opt_state = opt_init_all(params, lrs)
        first = summary_all(objective, params)
        history = jax.tree.map(lambda x: jnp.full((n_rec + 2,) + x.shape, jnp.nan, x.dtype), first)
        history = dict(history, step=jnp.full((n_rec + 2, n), -1, jnp.int32))
        blowup = divergence_threshold * jnp.maximum(1.0, jnp.abs(first["loss"]))

        def record(hist, row, active, p, step):
            """Write the summaries of ``p`` into row ``row`` (one per run) of the runs marked ``active``."""
            summ = dict(summary_all(objective, p), step=step)
            cols = jnp.arange(n)
            hist = jax.tree.map(lambda h, v: h.at[row, cols].set(_where(active, v, h[row, cols])), hist, summ)
            return hist, summ

        def fast_chunk(p, s, start, n_inner):
            """``n_inner`` steps of every run, no per-step checks; ok: every loss stayed below blow-up."""
            def body(i, c):
                p, s, ok = c
                p, s, loss = step_all(objective, p, s, keys, lrs, start + i)
                return p, s, ok & (loss < blowup)  # False for NaN

            p, s, ok = jax.lax.fori_loop(0, n_inner, body, (p, s, jnp.ones((n,), bool)))
            return p, s, ok & _finite_per_run(p, n)

        def checked_chunk(p, s, start, n_inner):
            """The same steps with the exact per-step test: returns the last finite state and the bad step."""
            def body(i, c):
                p, s, alive, bad = c
                p_new, s_new, loss = step_all(objective, p, s, keys, lrs, start + i)
                finite = _finite_per_run(p_new, n) & (loss < blowup)
                take = alive & finite
                bad = jnp.where(alive & ~finite, start + i, bad)
                return _where(take, p_new, p), _where(take, s_new, s), take, bad

            init = (p, s, jnp.ones((n,), bool), jnp.full((n,), -1, jnp.int32))
            return jax.lax.fori_loop(0, n_inner, body, init)

        def cond(c):
            return (c[0] <= n_rec) & jnp.any(c[4] == RUNNING)

        def body(c):
            r, p, s, hist, status, bad_step, step, n_written = c
            active = status == RUNNING
            hist, summ = record(hist, r, active, p, step)
            n_written = n_written + active.astype(n_written.dtype)
            met = (summ["loss"] <= lthr) | (summ["grad_norm"] <= gthr)
            status = jnp.where(active & met, CONVERGED, jnp.where(active & (r == n_rec), MAX_STEPS, status))
            running = status == RUNNING
            start = r * record_every  # every running run has taken exactly this many steps
            n_inner = jnp.clip(steps - start, 0, record_every)

            def advance(_):
                p_end, s_end, ok = fast_chunk(p, s, start, n_inner)
                clean = running & ok
                blew = running & ~ok

                def replay(_):
                    p_ok, s_ok, alive, bad = checked_chunk(p, s, start, n_inner)
                    return p_ok, s_ok, alive, bad

                # runs whose chunk blew up are replayed with per-step checks (only when some run diverged)
                p_ok, s_ok, alive, bad = jax.lax.cond(
                    jnp.any(blew), replay, lambda _: (p, s, jnp.ones((n,), bool), bad_step), None)
                # a replay that finds no bad step (it should not happen) keeps the replayed chunk as a clean one
                died = blew & ~alive
                clean = clean | (blew & alive)
                p_end, s_end = _where(blew, p_ok, p_end), _where(blew, s_ok, s_end)
                new_p = _where(clean | died, p_end, p)
                new_s = _where(clean | died, s_end, s)
                new_step = jnp.where(clean, start + n_inner, jnp.where(died, bad, step))
                return new_p, new_s, jnp.where(died, DIVERGED, status), jnp.where(died, bad, bad_step), new_step

            p, s, status, bad_step, step = jax.lax.cond(
                jnp.any(running) & (n_inner > 0), advance, lambda _: (p, s, status, bad_step, step), None)
            return r + 1, p, s, hist, status, bad_step, step, n_written

        zero = jnp.zeros((n,), jnp.int32)
        init = (jnp.zeros((), jnp.int32), params, opt_state, history, zero, zero - 1, zero, zero)
        _, p, _, hist, status, bad_step, step, n_written = jax.lax.while_loop(cond, body, init)
        # A run that diverged mid-chunk also records its last finite state (computed only if some run diverged).
        diverged = status == DIVERGED
        hist = jax.lax.cond(jnp.any(diverged), lambda h: record(h, n_written, diverged, p, step)[0],
                            lambda h: h, hist)
        hist = jax.tree.map(lambda h: jnp.swapaxes(h, 0, 1), hist)  # (runs, records, ...)
        return hist, n_written + diverged.astype(n_written.dtype), p, status, bad_step, step

    return run

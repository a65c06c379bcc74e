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
per-step bookkeeping: it only accumulates "every loss was finite and below the blow-up level". When a run's chunk
ends non-finite or blown up, the chunk is replayed from its saved start one step at a time (each step a chunk of
length one, checked at its end: the exact per-step test), by the same compiled code, so the replay repeats the
first pass bit for bit and finds the step and the last finite parameters that checking every step would. Runs
that have stopped (converged or diverged) keep computing with the batch until the chunk ends and are then
restored: wasted work, never visible in the results.
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
        if optimizer is None:  # plain GD/SGD, written out: the same arithmetic as optax.sgd, fewer passes
            return jax.tree.map(lambda w, d: w - lr * d, p, g), s, loss
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
            """Write the summaries of ``p`` into record ``row`` (a number, or one per run) of the ``active`` runs."""
            summ = dict(summary_all(objective, p), step=step)
            at = row if jnp.ndim(row) == 0 else (row, jnp.arange(n))  # a scalar row is updated in place
            hist = jax.tree.map(lambda h, v: h.at[at].set(_where(active, v, h[at])), hist, summ)
            return hist, summ

        def chunk(p, s, start, n_inner):
            """``n_inner`` steps of every run without per-step bookkeeping; ``ok``: every loss was finite and below
            the blow-up level, and the final parameters are finite."""
            def body(i, c):
                p, s, ok = c
                p, s, loss = step_all(objective, p, s, keys, lrs, start + i)
                return p, s, ok & jnp.isfinite(loss) & (loss < blowup)

            p, s, ok = jax.lax.fori_loop(0, n_inner, body, (p, s, jnp.ones((n,), bool)))
            return p, s, ok & _finite_per_run(p, n)

        def cond(c):
            return (c[0] <= n_rec) & jnp.any(c[4] == RUNNING)

        def body(c):
            r, p, s, hist, status, bad_step, step, n_written, replay, pos = c

            def take_record(args):
                hist, status, n_written = args
                active = status == RUNNING
                hist, summ = record(hist, r, active, p, step)
                met = (summ["loss"] <= lthr) | (summ["grad_norm"] <= gthr)
                status = jnp.where(active & met, CONVERGED, jnp.where(active & (r == n_rec), MAX_STEPS, status))
                return hist, status, n_written + active.astype(n_written.dtype)

            # while a chunk is replayed its record is already taken
            hist, status, n_written = jax.lax.cond(replay, lambda a: a, take_record, (hist, status, n_written))
            running = status == RUNNING
            length = jnp.clip(steps - r * record_every, 0, record_every)  # of this chunk
            start = r * record_every + pos  # every running run has taken exactly this many steps
            # A replay runs the chunk again one step per iteration: a chunk of one step checked at its end is
            # the exact per-step test, computed by the same code as the unchecked pass.
            n_inner = jnp.where(replay, jnp.minimum(1, length - pos), length)
            p_end, s_end, ok = chunk(p, s, start, n_inner)
            again = ~replay & jnp.any(running & ~ok)  # some run blew up somewhere in this chunk: replay it
            died = running & ~ok & replay
            done = running & ok & ~again
            p = _where(done, p_end, p)  # a run that died keeps its last finite state
            s = _where(done, s_end, s)
            step = jnp.where(done, start + n_inner, step)
            status = jnp.where(died, DIVERGED, status)
            bad_step = jnp.where(died, start, bad_step)
            pos = jnp.where(replay, pos + n_inner, 0)
            finished = ~again & (~replay | (pos >= length))
            return (r + finished.astype(r.dtype), p, s, hist, status, bad_step, step, n_written,
                    again | (replay & ~finished), jnp.where(finished, 0, pos))

        zero = jnp.zeros((n,), jnp.int32)
        i0 = jnp.zeros((), jnp.int32)
        init = (i0, params, opt_state, history, zero, zero - 1, zero, zero, jnp.zeros((), bool), i0)
        _, p, _, hist, status, bad_step, step, n_written, _, _ = jax.lax.while_loop(cond, body, init)
        # A run that diverged mid-chunk also records its last finite state (computed only if some run diverged).
        diverged = status == DIVERGED
        hist = jax.lax.cond(jnp.any(diverged), lambda h: record(h, n_written, diverged, p, step)[0],
                            lambda h: h, hist)
        hist = jax.tree.map(lambda h: jnp.swapaxes(h, 0, 1), hist)  # (runs, records, ...)
        return hist, n_written + diverged.astype(n_written.dtype), p, status, bad_step, step

    return run

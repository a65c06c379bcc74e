"""Gradient descent and SGD for a batch of runs as one compiled loop (``lax.while_loop`` over records, ``fori_loop``
over the steps between two records).

The loop never runs Python per step. The first non-finite or exploding value (a non-finite or blown-up loss, or
non-finite new parameters) freezes a run at its last finite parameters with status "diverged" and the step
recorded. Loss and gradient thresholds (``dl.Stop``) are checked on the exact objective at record times.

What is static (the compiled structure): the optimizer's behaviour, minibatching, the summaries, the number of
record slots and which thresholds are used. What is traced: the learning rates, the record times (hence the
number of steps), the threshold values, the objective's arrays (data, weight decay) and the initial parameters.
A loop over any of the traced values reuses one compiled runner.

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

from ..summaries import Point, evaluate

RUNNING, CONVERGED, COMPLETED, DIVERGED = 0, 1, 2, 3


def _where(mask, a, b):
    """Per-run select between two batched pytrees (``mask`` has one entry per run)."""
    return jax.tree.map(lambda x, y: jnp.where(mask.reshape(mask.shape + (1,) * (x.ndim - 1)), x, y), a, b)


def _finite_per_run(tree, n):
    ok = jnp.ones((n,), bool)
    for x in jax.tree.leaves(tree):
        ok &= jnp.all(jnp.isfinite(x.reshape(n, -1)), axis=1)
    return ok


def _tree_norm(tree):
    return jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(tree)))


def make_descent(*, optimizer, stochastic: bool, batch_size, summaries: tuple, slots: int, loss_stop: bool,
                 grad_stop: bool, objective_axis=None):
    """Build ``run(objective, params, opt_state, keys, dyn) -> (history, n_recorded, params, status, bad_step,
    n_steps)`` for a batch of runs.

    Every params leaf, ``opt_state`` leaf and ``keys`` have a leading run axis; ``objective`` is shared
    (``objective_axis=None``) or stacked along axis 0. ``optimizer`` is ``None`` (plain ``W - lr * g``) or an
    :class:`~dlnlab.train._fingerprint.OptimizerKey`. ``dyn`` holds the traced values: ``lr``, ``loss``,
    ``grad_norm``, ``divergence`` (one per run), ``times`` (``slots + 2`` step counts shared by the batch: an
    unrecorded start at 0 when the first record is later, the record times, then padding), ``offset`` (1 when
    that unrecorded start is there) and ``last`` (the index of the final time). Pure and jittable.
    """
    opt = None if optimizer is None else optax.with_extra_args_support(optimizer.optimizer)

    def step_one(objective, p, s, key, lr, step):
        if stochastic:
            k = jax.random.fold_in(key, step)
            loss, g = jax.value_and_grad(lambda q: objective.sample_value(q, k, batch_size=batch_size))(p)
        else:
            loss, g = objective.value_and_grad(p)
        if opt is None:  # plain GD/SGD, written out: the same arithmetic as optax.sgd, fewer passes
            return jax.tree.map(lambda w, d: w - lr * d, p, g), s, loss
        updates, s_new = opt.update(g, s, p, value=loss)
        return optax.apply_updates(p, updates), s_new, loss

    def summarise(objective, p, states):
        loss, g = objective.value_and_grad(p)
        values, states = evaluate(summaries, Point(objective, p, loss, g), states)
        return values, states, loss, _tree_norm(g)

    vmap = lambda f, *axes: eqx.filter_vmap(f, in_axes=(objective_axis,) + axes)  # noqa: E731
    step_all = vmap(step_one, 0, 0, 0, 0, None)
    summary_all = vmap(summarise, 0, 0)
    cold_all = vmap(lambda objective, p: summarise(objective, p, (None,) * len(summaries)), 0)

    def run(objective, params, opt_state, keys, dyn):
        n = jax.tree.leaves(params)[0].shape[0]
        dtype = jax.tree.leaves(params)[0].dtype
        # a learning rate in the params' precision, as a float32 user writing the loop by hand would have it
        lrs = jnp.asarray(dyn["lr"]).astype(dtype)
        times, offset, last = dyn["times"], dyn["offset"], dyn["last"]
        lthr = dyn["loss"] if loss_stop else jnp.full((n,), -jnp.inf)
        gthr = dyn["grad_norm"] if grad_stop else jnp.full((n,), -jnp.inf)
        first, states, loss0, gnorm0 = cold_all(objective, params)
        first = dict(first, _step=jnp.zeros((n,), jnp.int32))  # the step of each record, per run
        history = jax.tree.map(
            lambda x: jnp.full((slots + 1,) + x.shape, jnp.nan if jnp.issubdtype(x.dtype, jnp.inexact) else 0,
                               x.dtype), first)
        blowup = dyn["divergence"] * jnp.maximum(1.0, jnp.abs(loss0))

        def write(hist, row, active, values):
            at = row if jnp.ndim(row) == 0 else (row, jnp.arange(n))  # a scalar row is updated in place
            return jax.tree.map(lambda h, v: h.at[at].set(_where(active, v, h[at])), hist, values)

        def verdict(status, active, loss, gnorm, at_end):
            met = (loss <= lthr) | (gnorm <= gthr)
            return jnp.where(active & met, CONVERGED, jnp.where(active & at_end, COMPLETED, status))

        # the record at step 0 (unless the first record time is later)
        at0 = jnp.broadcast_to(offset == 0, (n,))
        history = write(history, 0, at0, first)
        status = verdict(jnp.zeros((n,), jnp.int32), at0, loss0, gnorm0, last == 0)
        n_written = at0.astype(jnp.int32)

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
            return (c[0] <= last) & jnp.any(c[4] == RUNNING)

        def body(c):
            r, p, s, hist, status, bad_step, step, n_written, replay, pos, states = c

            def take_record(args):
                hist, status, n_written, states = args
                active = status == RUNNING
                values, new_states, loss, gnorm = summary_all(objective, p, states)
                hist = write(hist, r - offset, active, dict(values, _step=step))
                states = _where(active, new_states, states)
                status = verdict(status, active, loss, gnorm, r == last)
                return hist, status, n_written + active.astype(n_written.dtype), states

            # the record at r = 0 was taken before the loop; while a chunk is replayed its record is already taken
            skip = replay | (r == 0)
            hist, status, n_written, states = jax.lax.cond(skip, lambda a: a, take_record,
                                                           (hist, status, n_written, states))
            running = status == RUNNING
            length = jnp.where(r < last, times[jnp.minimum(r + 1, times.shape[0] - 1)] - times[r], 0)
            start = times[r] + pos  # every running run has taken exactly this many steps
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
                    again | (replay & ~finished), jnp.where(finished, 0, pos), states)

        zero = jnp.zeros((n,), jnp.int32)
        i0 = jnp.zeros((), jnp.int32)
        init = (i0, params, opt_state, history, status, zero - 1, zero, n_written, jnp.zeros((), bool), i0,
                states)
        _, p, _, hist, status, bad_step, step, n_written, _, _, states = jax.lax.while_loop(cond, body, init)
        # A run that diverged mid-chunk also records its last finite state (computed only if some run diverged).
        diverged = status == DIVERGED
        def last_record(h):
            return write(h, n_written, diverged, dict(summary_all(objective, p, states)[0], _step=step))

        hist = jax.lax.cond(jnp.any(diverged), last_record, lambda h: h, hist)
        hist = jax.tree.map(lambda h: jnp.swapaxes(h, 0, 1), hist)  # (runs, records, ...)
        return hist, n_written + diverged.astype(n_written.dtype), p, status, bad_step, step

    return run

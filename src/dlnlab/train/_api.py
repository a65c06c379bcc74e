"""``dl.train`` and ``dl.train_batched``: one engine for gradient descent, SGD and gradient flow.

The method object (:class:`~dlnlab.GD`, :class:`~dlnlab.SGD`, :class:`~dlnlab.Flow`) decides which options
apply; :class:`~dlnlab.Record` says when and what to record, :class:`~dlnlab.Stop` when to stop early. Everything
is validated before anything is compiled. ``train`` is ``train_batched`` with one run: the same checks, the same
compiled loop.

Compiled runners are cached by JAX/equinox on the *static structure* of a call only (see ``_Static`` below):
values (learning rates, step counts, ``t1``, tolerances, thresholds, weight decays, data, initial parameters) are
traced arguments, so a Python loop over any of them compiles once.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_key
from ..errors import ConfigError, DataError
from ..objective import AbstractObjective, as_objective
from ._descent import CONVERGED, DIVERGED, make_descent
from ._flow import make_flow, result_message
from ._methods import SGD, AbstractMethod
from ._options import Record, Stop
from ._run import Run, Status

__all__ = ["train", "train_batched"]


@dataclass(frozen=True)
class _Static:
    """The static structure of a compiled runner (its cache key): everything else is traced."""

    method: tuple  # method.structure(): type, optimizer fingerprint, batch size / solver, max_steps
    summaries: tuple
    slots: int
    stop: tuple  # which thresholds are used
    objective_axis: int | None
    batched: bool


@eqx.filter_jit
def _run_descent(static: _Static, objective, params, opt_state, keys, dyn):
    kind, opt, batch_size = static.method
    fn = make_descent(optimizer=opt, stochastic=kind == "SGD", batch_size=batch_size, summaries=static.summaries,
                      slots=static.slots, loss_stop=static.stop[0], grad_stop=static.stop[1],
                      objective_axis=static.objective_axis)
    return fn(objective, params, opt_state, keys, dyn)


@eqx.filter_jit
def _run_flow(static: _Static, objective, params, dyn):
    _, solver, max_steps = static.method
    fn = make_flow(max_steps=max_steps, solver=solver, loss_event=static.stop[0], grad_event=static.stop[1],
                   summaries=static.summaries)
    if static.batched:
        fn = eqx.filter_vmap(fn, in_axes=(static.objective_axis, 0, 0))
    return fn(objective, params, dyn)


# -- validation ------------------------------------------------------------------------------------------------
def _per_run(name: str, value, n: int, cls, what: str) -> list:
    """One shared value or a sequence of ``n`` (one per run), each an instance of ``cls``."""
    if isinstance(value, cls):
        return [value] * n
    if isinstance(value, Sequence) and not isinstance(value, str) and all(isinstance(v, cls) for v in value):
        if len(value) != n:
            raise ConfigError(f"{name}: expected one {what} or {n} (one per run), got {len(value)}")
        return list(value)
    raise ConfigError(f"{name}: expected {what} (or one per run), got {_describe(value)}")


def _describe(x) -> str:
    text = " ".join(repr(x).split())  # one line (array reprs span several)
    return f"{type(x).__name__} {text[:60] + '...' if len(text) > 60 else text}"


def _objectives(objectives, n: int) -> tuple[list, bool]:
    if isinstance(objectives, AbstractObjective) or (callable(objectives) and not isinstance(objectives, Sequence)):
        return [as_objective(objectives)] * n, True
    if isinstance(objectives, Sequence) and not isinstance(objectives, str):
        if len(objectives) != n:
            raise ConfigError(f"objectives: expected one objective or {n} (one per run), got {len(objectives)}")
        objs = [as_objective(o) for o in objectives]
        if all(o is objs[0] for o in objs):
            return objs, True
        return objs, False
    raise ConfigError(f"objective: expected a dl.Objective, a dl.AbstractObjective or a callable params -> scalar, "
                      f"got {_describe(objectives)}")


def _check_method(method, obj, key):
    if isinstance(method, SGD):
        n = obj.n_samples
        if method.batch_size is not None:
            if n is None:
                raise ConfigError(f"SGD.batch_size: this objective has no samples to draw minibatches from "
                                  f"(e.g. a regression built from moments); expected None, got {method.batch_size}")
            if method.batch_size > n:
                raise ConfigError(f"SGD.batch_size: expected at most {n} (the sample count), got "
                                  f"{method.batch_size}")
        elif not obj.stochastic:
            raise ConfigError("SGD.batch_size: expected a minibatch size: this objective is deterministic (no "
                              "neuron noise), so SGD without minibatches would be GD; use dl.GD or set batch_size")
        if key is None:
            raise ConfigError("key: dl.SGD draws random minibatches/noise; expected an integer seed or a "
                              "jax.random.key, got None")
    elif key is not None:
        raise ConfigError(f"key: {type(method).__name__} is deterministic; expected None, got {_describe(key)}")


def _check_summaries(record: Record, obj):
    if not obj.is_dln:
        for s in record.summaries:
            if s.needs_dln:
                raise ConfigError(f"Record.summaries: {s.name!r} needs deep-linear-network params (a tuple of "
                                  f"weight matrices, objective.is_dln); this objective ({type(obj).__name__}) has "
                                  "other params. Expected only summaries that apply to any model (loss, grad_norm, "
                                  "sharpness, callables)")


def _check_params(obj, params, name: str):
    if isinstance(params, list):
        params = tuple(params)
    try:
        checked = obj.check_params(params)
    except DataError as exc:
        msg = str(exc)
        raise DataError(name + msg[len("params"):] if msg.startswith("params") else f"{name}: {msg}") from None
    return jax.tree.map(jnp.asarray, checked)


def _stack(trees, name):
    try:
        return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)
    except (ValueError, TypeError) as exc:
        raise ConfigError(f"{name}: every entry must have the same structure and shapes ({exc})") from None


def _keys(key, n: int):
    if key is None:
        return None
    if isinstance(key, Sequence) and not isinstance(key, (str, bytes)):
        if len(key) != n:
            raise ConfigError(f"key: expected one key or {n} (one per run), got {len(key)}")
        return jnp.stack([as_key(f"key[{i}]", k) for i, k in enumerate(key)])
    k = as_key("key", key)
    return k[None] if n == 1 else jax.random.split(k, n)


def _same(name: str, items, what: str):
    if any(x != items[0] for x in items[1:]):
        raise ConfigError(f"{name}: the runs of one batch must share {what}; got {items[0]!r} and "
                          f"{next(x for x in items if x != items[0])!r}")


# -- entry points --------------------------------------------------------------------------------------------------
def train(objective, params, method, *, record: Record | None = None, stop: Stop | None = None, key=None) -> Run:
    """Train one model.

    Args:
        objective: a :class:`dlnlab.Objective`, any :class:`dlnlab.AbstractObjective`, or any callable
            ``params -> scalar`` on a pytree of params (a nonlinear model trains on the same engine).
        params: the initial parameters (for a DLN ``(W_1, ..., W_L)``); validated eagerly (shapes, a real
            floating dtype, finite values). Their dtype is kept: float32 params train in float32.
        method: :class:`dlnlab.GD`, :class:`dlnlab.SGD` or :class:`dlnlab.Flow`.
        record: :class:`dlnlab.Record` (default: 101 linearly spaced records of loss and gradient norm).
        stop: :class:`dlnlab.Stop` (default: divergence only).
        key: an integer seed or ``jax.random.key`` for :class:`dlnlab.SGD` (required there, refused elsewhere).

    Returns:
        A :class:`dlnlab.Run`; ``run.times`` are step counts (GD/SGD) or flow times (Flow).

    Example:
        >>> import jax, numpy as np, dlnlab as dl
        >>> prob = dl.Regression.from_moments(np.eye(2), np.diag([2.0, 1.0]), 5.0)
        >>> p0 = dl.Net((2, 4, 2)).init(jax.random.key(0), scheme="gaussian", scale=0.1)
        >>> run = dl.train(dl.Objective(prob), p0, dl.GD(lr=0.05, steps=2000))
        >>> run.status, bool(abs(run.final_loss) < 1e-8)
        (<Status.completed: 'completed'>, True)
        >>> again = dl.train(dl.Objective(prob), p0, run.method, record=run.record, stop=run.stop)
        >>> bool(np.array_equal(again.history["loss"], run.history["loss"]))
        True
    """
    return _train(objective, [params], method, record=record, stop=stop, key=key, single=True)[0]


def train_batched(objectives, params_list: Sequence, methods, *, record: Record | Sequence[Record] | None = None,
                  stop: Stop | Sequence[Stop] | None = None, key=None) -> list[Run]:
    """Train many runs in one compiled call (vmapped; no Python loop over runs). The arguments are those of
    :func:`train`, each either one value shared by every run or a sequence with one per run.

    Per-run values (learning rates, step counts of equal record structure, ``t1``, tolerances, thresholds,
    weight decays, data of equal shapes, initial scales) may differ; the structure must match (one method
    type, optimizer, solver and ``max_steps``; one set of summaries; for GD/SGD one set of record times, since
    the batch shares its loop). ``key``: one key (split into one per run) or one per run. Run ``i`` of a batch
    equals ``train(objectives[i], params_list[i], methods[i], key=keys[i])`` to rounding (bit for bit on CPU).

    Example:
        >>> import jax, numpy as np, dlnlab as dl
        >>> prob = dl.Regression.from_moments(np.eye(2), np.eye(2), 2.0)
        >>> net = dl.Net((2, 3, 2))
        >>> inits = [net.init(jax.random.key(s), scheme="gaussian", scale=0.1) for s in range(4)]
        >>> runs = dl.train_batched(dl.Objective(prob), inits, [dl.GD(lr=lr, steps=500) for lr in (.01, .02, .05, .1)])
        >>> len(runs), runs[3].status.value
        (4, 'completed')
    """
    if isinstance(params_list, (str, bytes)) or not isinstance(params_list, Sequence) or len(params_list) == 0:
        raise ConfigError("params_list: expected a non-empty sequence of initial parameters (one per run), got "
                          f"{_describe(params_list)}")
    return _train(objectives, list(params_list), methods, record=record, stop=stop, key=key, single=False)


def _train(objectives, params_list, methods, *, record, stop, key, single: bool) -> list[Run]:
    n = len(params_list)
    if single:
        objs, shared = [as_objective(objectives)], True
    else:
        objs, shared = _objectives(objectives, n)
    if isinstance(methods, str) or (not single and isinstance(methods, Sequence)
                                    and any(isinstance(m, str) for m in methods)):
        raise ConfigError(f"method: expected dl.GD, dl.SGD or dl.Flow, got {methods!r} (0.2 replaced method='gd' "
                          "strings with method objects: dl.train(obj, params, dl.GD(lr=..., steps=...)))")
    methods = _per_run("method" if single else "methods", methods, n, AbstractMethod,
                       "a method object (dl.GD, dl.SGD or dl.Flow)")
    records = _per_run("record", Record() if record is None else record, n, Record, "a dl.Record")
    stops = _per_run("stop", Stop() if stop is None else stop, n, Stop, "a dl.Stop")
    _same("methods", [type(m).__name__ for m in methods], "one method type")
    _same("methods", [m.structure() for m in methods], "one optimizer, solver, batch size and max_steps")
    _same("record", [r.summaries for r in records], "one set of summaries")
    _same("record", [r.slots() for r in records], "one number of records")
    _same("stop", [s.structure() for s in stops], "the same stopping rules (thresholds may differ)")
    checked_pairs = set()
    for o, m in zip(objs, methods):
        if (id(o), id(m)) not in checked_pairs:
            checked_pairs.add((id(o), id(m)))
            _check_method(m, o, key)
    _check_summaries(records[0], objs[0])
    keys = _keys(key, n)
    prefix = "params" if single else "params_list"
    checked = [_check_params(o, p, prefix if single else f"{prefix}[{i}]")
               for i, (o, p) in enumerate(zip(objs, params_list))]
    params = _stack(checked, prefix)
    if not shared:
        _same("objectives", [jax.tree.structure(o) for o in objs], "one objective structure (loss, noise, net)")
    obj_in = objs[0] if shared else _stack(objs, "objectives")
    dtype = jnp.result_type(*jax.tree.leaves(params))
    static = _Static(methods[0].structure(), records[0].summaries, records[0].slots(), stops[0].structure(),
                     None if shared else 0, not single)
    stop_values = {
        "loss": np.array([0.0 if s.loss is None else s.loss for s in stops]),
        "grad_norm": np.array([0.0 if s.grad_norm is None else s.grad_norm for s in stops]),
        "divergence": np.array([s.divergence for s in stops]),
    }
    if methods[0].kind == "flow":
        return _flow(static, obj_in, params, methods, records, stops, stop_values, dtype, single)
    return _descent(static, obj_in, params, checked, methods, records, stops, stop_values, keys, dtype)


def _descent(static, obj_in, params, checked, methods, records, stops, stop_values, keys, dtype):
    n = len(methods)
    all_times = [r.times_for(m) for r, m in zip(records, methods)]
    for t in all_times[1:]:
        if not np.array_equal(t, all_times[0]):
            raise ConfigError("record: the GD/SGD runs of one batch share their record times (one loop); got "
                              f"{all_times[0][:6].tolist()}... and {t[:6].tolist()}... (equal steps and records "
                              "are needed)")
    t = all_times[0]
    offset = int(t[0] > 0)
    U = np.concatenate([[0], t]) if offset else t
    last = len(U) - 1
    U = np.concatenate([U, np.full(static.slots + 2 - len(U), U[-1])]).astype(np.int32)
    opt = methods[0].optimizer
    if opt is None:
        opt_state = ()
    elif all(m.optimizer is opt for m in methods):
        opt_state = jax.vmap(opt.init)(params)
    else:  # one optimizer per run, e.g. optax.inject_hyperparams with per-run hyperparameters (in the state)
        opt_state = _stack([m.optimizer.init(p) for m, p in zip(methods, checked)], "methods")
    dyn = {"lr": np.array([0.0 if m.lr is None else m.lr for m in methods], dtype),
           "times": U, "offset": np.int32(offset), "last": np.int32(last),
           **{k: v.astype(dtype) for k, v in stop_values.items()}}
    out = jax.device_get(_run_descent(static, obj_in, params, opt_state, keys, dyn))
    hist, n_rec, p_out, status, bad_step, n_steps = out
    runs = []
    for b in range(n):
        h = {k: np.asarray(v[b])[: int(n_rec[b])] for k, v in hist.items()}
        times = h.pop("_step").astype(np.int64)
        code = int(status[b])
        if code == DIVERGED:
            # The run stops at its last finite parameters, but their summaries (the blown-up loss) may overflow
            # to inf/NaN: the history ends at the last finite record, and a record that repeats the previous
            # step (divergence right after a record) is dropped.
            ok = _finite_rows(h) if h else np.ones(len(times), bool)
            n_ok = int(np.argmin(ok)) if not ok.all() else ok.size
            if n_ok == 0:
                raise DataError("params: the summaries of the initial weights (loss, norms) overflow float "
                                "arithmetic; expected smaller initial weights")
            if n_ok > 1 and times[n_ok - 1] == times[n_ok - 2]:
                n_ok -= 1
            times, h = times[:n_ok], {k: v[:n_ok] for k, v in h.items()}
        bad = int(bad_step[b]) if code == DIVERGED else None
        st = Status.converged if code == CONVERGED else Status.diverged if code == DIVERGED else Status.completed
        if st is Status.converged:
            msg = f"a stopping rule was met at step {int(times[-1])} ({stops[b]!r})"
        elif st is Status.completed:
            msg = f"ran all {methods[b].steps} steps"
        else:
            msg = (f"the loss or the parameters blew up in the update from step {bad} to {bad + 1}; the run keeps "
                   f"the parameters of step {bad}; lower the learning rate")
        p_b = jax.tree.map(lambda x, b=b: x[b], p_out)
        runs.append(Run(times, h, p_b, st, msg, bad, int(n_steps[b]), int(n_steps[b]), methods[b], records[b],
                        stops[b]))
    return runs


def _flow(static, obj_in, params, methods, records, stops, stop_values, dtype, single):
    n = len(methods)
    save = [r.times_for(m) for r, m in zip(records, methods)]
    if len({len(s) for s in save}) > 1:
        raise ConfigError("record: the flow runs of one batch need the same number of record times")
    # Times in JAX's default float (diffrax's event root finding mixes them with Python floats); the state keeps
    # the params' dtype.
    tdtype = jnp.result_type(float)
    dyn = {"t1": np.array([m.t1 for m in methods], tdtype), "save_at": np.stack(save).astype(tdtype),
           "rtol": np.array([m.rtol for m in methods], tdtype), "atol": np.array([m.atol for m in methods], tdtype),
           **{k: v.astype(dtype) for k, v in stop_values.items()}}
    if single:
        dyn = {k: v[0] for k, v in dyn.items()}
        out = jax.device_get(_run_flow(static, obj_in, jax.tree.map(lambda x: x[0], params), dyn))
        out = jax.tree.map(lambda x: x[None], out)
    else:
        out = jax.device_get(_run_flow(static, obj_in, params, dyn))
    runs = []
    for b in range(n):
        hist, p_b, code, t_final, n_steps, kind, last, n_evals = jax.tree.map(lambda x, b=b: x[b], out)
        t_final = float(t_final)
        keep = save[b] <= t_final * (1 + 1e-12)
        # A failed solve leaves inf in the save slots it never reached (t=0 included when no step was
        # accepted): those rows are not records.
        keep &= _finite_rows(hist)
        times = save[b][keep]
        hist = {k: np.asarray(v)[keep] for k, v in hist.items()}
        last_ok = all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(last))
        if (not times.size or times[-1] < t_final * (1 - 1e-12)) and last_ok:
            times = np.append(times, t_final)  # stopped (or ended) between save times
            hist = {k: np.concatenate([v, np.asarray(last[k])[None]]) for k, v in hist.items()}
        bad = None
        if kind == 2:
            st, msg, bad = Status.diverged, f"the loss blew up or became non-finite at t={t_final:.6g}", t_final
        elif kind == 1:
            st, msg = Status.converged, f"a stopping rule was met at t={t_final:.6g} (Stop={stops[b]!r})"
        else:
            name, msg = result_message(int(code))
            st = Status(name)
        runs.append(Run(times, hist, p_b, st, msg, bad, int(n_steps), int(n_evals), methods[b], records[b],
                        stops[b]))
    return runs


def _finite_rows(hist) -> np.ndarray:
    """Which records (rows) have only finite values in every summary."""
    rows = [np.isfinite(np.asarray(v, dtype=float)).reshape(len(v), -1).all(axis=1) for v in hist.values()]
    return np.logical_and.reduce(rows)


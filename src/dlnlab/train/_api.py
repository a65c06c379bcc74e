"""``dl.train`` and ``dl.train_batched``: one entry point for gradient descent, SGD and gradient flow."""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax

from .._checks import as_float, as_int, as_key, one_of
from ..errors import ConfigError, DataError
from ..objective import Objective
from ._descent import CONVERGED, DIVERGED, MAX_STEPS, make_descent
from ._flow import DYNAMIC, SOLVERS, make_flow, result_message
from ._run import Run

__all__ = ["train", "train_batched", "METHODS"]

METHODS = ("gd", "sgd", "flow")


def _options(objective, method, *, lr, steps, optimizer, record_every, batch_size, t1, save_at, rtol, atol,
             max_steps, solver, loss_threshold, grad_threshold, divergence_threshold, summaries):
    """Validate the options once, before anything is compiled."""
    if not isinstance(objective, Objective):
        raise ConfigError(f"objective: expected a dl.Objective, got {type(objective).__name__}")
    one_of("method", method, METHODS)
    opts = {
        "loss_threshold": None if loss_threshold is None else as_float("loss_threshold", loss_threshold),
        "grad_threshold": None if grad_threshold is None
        else as_float("grad_threshold", grad_threshold, low=0.0),
        "divergence_threshold": as_float("divergence_threshold", divergence_threshold, low=1.0),
        "summaries": summaries,
    }
    if summaries is not None and not callable(summaries):
        raise ConfigError(f"summaries: expected a callable params -> dict, got {type(summaries).__name__}")
    if method == "flow":
        if t1 is None:
            raise ConfigError("t1: required for method='flow' (the final gradient-flow time)")
        t1 = as_float("t1", t1, low=0.0, low_open=True)
        if save_at is None:
            save_at = np.linspace(0.0, t1, 101)
        elif isinstance(save_at, str):
            one_of("save_at", save_at, ("log", "linear"))
            save_at = (np.concatenate([[0.0], np.geomspace(t1 * 1e-6, t1, 100)]) if save_at == "log"
                       else np.linspace(0.0, t1, 101))
        else:
            save_at = np.asarray(save_at, dtype=float)
            if save_at.ndim != 1 or save_at.size == 0 or not np.all(np.isfinite(save_at)):
                raise ConfigError("save_at: expected a non-empty 1-D array of finite times, 'log' or 'linear'")
            if np.any(np.diff(save_at) < 0) or save_at[0] < 0 or save_at[-1] > t1:
                raise ConfigError(f"save_at: expected increasing times within [0, t1={t1}]")
        opts.update(
            t1=t1, save_at=save_at, rtol=as_float("rtol", rtol, low=0.0, low_open=True),
            atol=as_float("atol", atol, low=0.0, low_open=True),
            max_steps=as_int("max_steps", 100_000 if max_steps is None else max_steps, low=1),
            solver=one_of("solver", solver, tuple(SOLVERS)),
        )
        return opts
    steps = as_int("steps", steps, low=0)
    if optimizer is None:
        try:
            bad_type = isinstance(lr, (str, bytes, bool)) or np.asarray(lr).dtype == bool
            lr_arr = None if bad_type else np.asarray(lr, dtype=float)
        except (TypeError, ValueError):
            lr_arr = None
        if lr_arr is None or lr_arr.size == 0 or not np.all(np.isfinite(lr_arr)) or np.any(lr_arr <= 0):
            raise ConfigError(f"lr: expected a positive finite learning rate, got {lr!r}")
    elif not isinstance(optimizer, optax.GradientTransformation):
        raise ConfigError(f"optimizer: expected an optax GradientTransformation, got {type(optimizer).__name__}")
    if batch_size is not None:
        batch_size = as_int("batch_size", batch_size, low=1)
        n = getattr(objective.problem, "n_samples", None)
        if n is not None and batch_size > n:
            raise ConfigError(f"batch_size: expected at most {n} (the sample count), got {batch_size}")
    if method == "sgd" and batch_size is None and objective.noise is None:
        raise ConfigError("batch_size: method='sgd' needs minibatches (batch_size) and/or neuron noise")
    record_every = max(1, steps // 100) if record_every is None else as_int("record_every", record_every, low=1)
    opts.update(optimizer=optimizer, stochastic=method == "sgd", batch_size=batch_size, steps=steps,
                record_every=record_every)
    return opts


def _check_params(objective, params, name="params", *, finite=True):
    if isinstance(params, list):
        params = tuple(params)
    if not isinstance(params, tuple) or not params:
        raise DataError(f"{name}: expected a tuple of weight matrices, got {type(params).__name__}")
    try:
        params = tuple(jnp.asarray(W) for W in params)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{name}: expected numeric weight matrices ({exc})") from None
    params = objective._check(params)
    for i, W in enumerate(params):
        if not jnp.issubdtype(W.dtype, jnp.floating):
            raise DataError(f"{name}[{i}]: expected floating-point weights, got dtype {W.dtype}")
        if finite and not bool(jnp.all(jnp.isfinite(W))):
            raise DataError(f"{name}[{i}]: contains NaN or infinite values; expected finite weights")
    return params


def _check_finite_batch(params, name="params_list"):
    """The finiteness test of :func:`_check_params` on stacked weights: one device round trip per layer for the
    whole batch instead of one per matrix (hundreds of runs)."""
    for j, W in enumerate(params):
        ok = np.asarray(jnp.all(jnp.isfinite(W.reshape(W.shape[0], -1)), axis=1))
        if not ok.all():
            raise DataError(f"{name}[{int(np.argmin(ok))}][{j}]: contains NaN or infinite values; "
                            "expected finite weights")


def _to_runs(method, out, opts, batch: int | None):
    """Turn the raw (possibly batched) arrays into Run objects, trimming unused record slots."""
    out = jax.device_get(out)
    runs = []
    for b in range(1 if batch is None else batch):
        pick = (lambda x: x) if batch is None else (lambda x, b=b: x[b])
        if method == "flow":
            hist, params, code, t_final, n_steps, kind, last, n_evals = jax.tree.map(pick, out)
            t_final = float(t_final)
            keep = opts["save_at"] <= t_final * (1 + 1e-12)
            # A failed solve leaves inf in the save slots it never reached (t=0 included when no step
            # was accepted): those rows are not records.
            keep &= _finite_rows(hist)
            times = opts["save_at"][keep]
            hist = {k: np.asarray(v)[keep] for k, v in hist.items()}
            last_ok = all(np.all(np.isfinite(np.asarray(v))) for v in jax.tree.leaves(last))
            if (not times.size or times[-1] < t_final * (1 - 1e-12)) and last_ok:
                times = np.append(times, t_final)  # stopped between save times
                hist = {k: np.concatenate([v, np.asarray(last[k])[None]]) for k, v in hist.items()}
            if kind == 2:
                status, msg, bad = "diverged", f"the loss blew up or became non-finite at t={t_final:.6g}", t_final
            elif kind == 1:
                status, msg, bad = "converged", f"a stopping threshold was met at t={t_final:.6g}", None
            else:
                (status, msg), bad = result_message(int(code)), None
            n_steps = int(n_steps)
            runs.append(Run("flow", times, hist, tuple(params), status, bad, n_steps, int(n_evals), msg,
                            config=_public(opts)))
        else:
            hist, n_rec, params, status, bad_step, n_steps = jax.tree.map(pick, out)
            n_rec = int(n_rec)
            hist = {k: np.asarray(v)[:n_rec] for k, v in hist.items()}
            times = hist.pop("step").astype(np.int64)
            status = {CONVERGED: "converged", MAX_STEPS: "max_steps", DIVERGED: "diverged"}[int(status)]
            if status == "diverged":
                # The run stops at its last finite parameters, but their summaries (the blown-up loss)
                # may overflow to inf/NaN: the history ends at the last finite record, and a record that
                # repeats the previous step (divergence right after a record) is dropped.
                ok = _finite_rows(hist)
                n_ok = int(np.argmin(ok)) if not ok.all() else ok.size
                if n_ok == 0:
                    raise DataError("params: the summaries of the initial weights (loss, norms) overflow "
                                    "float arithmetic; expected smaller initial weights")
                if n_ok > 1 and times[n_ok - 1] == times[n_ok - 2]:
                    n_ok -= 1
                times = times[:n_ok]
                hist = {k: v[:n_ok] for k, v in hist.items()}
            bad = int(bad_step) if status == "diverged" else None
            msg = {
                "converged": f"a stopping threshold was met at step {int(times[-1])}",
                "max_steps": f"ran all {opts['steps']} steps",
                "diverged": f"NaN, Inf or blow-up at step {bad}; lower the learning rate",
            }[status]
            runs.append(Run(method, times, hist, tuple(params), status, bad, int(n_steps), int(n_steps), msg,
                            config=_public(opts)))
    return runs


def _finite_rows(hist) -> np.ndarray:
    """Which records (rows) have only finite values in every summary."""
    rows = [np.isfinite(np.asarray(v, dtype=float)).reshape(len(v), -1).all(axis=1) for v in hist.values()]
    return np.logical_and.reduce(rows)


def _public(opts):
    return {k: v for k, v in opts.items() if k not in ("summaries", "optimizer", "save_at")}


def _keys(key, n: int | None):
    key = as_key("key", 0 if key is None else key)
    return key if n is None else jax.random.split(key, n)


def train(objective: Objective, params, *, method: str = "gd", lr: float = 1e-2, steps: int = 1000,
          optimizer: optax.GradientTransformation | None = None, record_every: int | None = None,
          key=None, batch_size: int | None = None, t1: float | None = None, save_at=None,
          rtol: float = 1e-7, atol: float = 1e-9, max_steps: int | None = None, solver: str = "tsit5",
          loss_threshold: float | None = None, grad_threshold: float | None = None,
          divergence_threshold: float = 1e12, summaries: Callable | None = None) -> Run:
    """Train a deep linear network.

    Args:
        objective: what to minimise (:class:`dlnlab.Objective`).
        params: initial weights ``(W_1, ..., W_L)``.
        method: ``"gd"`` (full batch), ``"sgd"`` (minibatches of ``batch_size`` and/or sampled neuron noise) or
            ``"flow"`` (gradient flow, adaptive diffrax solver).
        lr, steps, optimizer: step size and number of steps for gd/sgd; ``optimizer`` is any optax
            transformation (default ``optax.sgd(lr)``). Optimizers that accept extra arguments receive
            ``value=<current loss>`` in ``update``.
        record_every: steps between records (default ``steps // 100``).
        key: PRNG key or integer seed for sgd.
        t1, save_at, rtol, atol, max_steps, solver: gradient flow: final time; record times (array, ``"linear"``
            or ``"log"``); solver tolerances; solver step cap; ``"tsit5"``, ``"dopri5"``, ``"dopri8"`` or
            ``"rkc"`` (stabilised Runge-Kutta-Chebyshev for stiff flows, e.g. after a small init has learned
            its first mode: see :mod:`dlnlab.train._rkc`).
        loss_threshold, grad_threshold: stop (status ``"converged"``) once the loss or gradient norm falls
            below. For flow the gradient test is not fooled by the origin saddle of a small init (see
            :mod:`dlnlab.train._flow`).
        divergence_threshold: a loss above ``divergence_threshold * max(1, |initial loss|)`` counts as divergence.
        summaries: ``params -> dict`` of extra arrays to record.

    Returns:
        A :class:`Run`. Time is in steps for gd/sgd (gradient-flow time ``lr * step``) and in flow time for flow.

    Example:
        >>> import jax, numpy as np, dlnlab as dl
        >>> prob = dl.Regression.from_moments(np.eye(2), np.diag([2.0, 1.0]), 5.0)
        >>> net = dl.Net((2, 4, 2))
        >>> run = dl.train(dl.Objective(prob), net.init(jax.random.key(0), scheme="gaussian", scale=0.1),
        ...                method="gd", lr=0.05, steps=2000)
        >>> run.status, bool(abs(run.final_loss) < 1e-8)
        ('max_steps', True)
    """
    opts = _options(objective, method, lr=lr, steps=steps, optimizer=optimizer, record_every=record_every,
                    batch_size=batch_size, t1=t1, save_at=save_at, rtol=rtol, atol=atol, max_steps=max_steps,
                    solver=solver, loss_threshold=loss_threshold, grad_threshold=grad_threshold,
                    divergence_threshold=divergence_threshold, summaries=summaries)
    if method != "flow" and optimizer is None and np.ndim(lr) != 0:
        raise ConfigError(f"lr: expected one learning rate (a number), got shape {np.shape(lr)}; "
                          "use dl.train_batched for one per run")
    params = _check_params(objective, params)
    if method == "flow":
        out = _compiled(method, _flow_key(opts), batched=False)(objective, params, _flow_dynamic(opts))
    else:
        out = _compiled(method, _descent_key(opts), batched=False)(
            objective, params, _keys(key, None), jnp.asarray(lr, dtype=float)
        )
    return _to_runs(method, out, opts, None)[0]


_DESCENT_OPTIONS = ("optimizer", "stochastic", "batch_size", "steps", "record_every", "loss_threshold",
                    "grad_threshold", "divergence_threshold", "summaries")
# Only the structure of a flow call is static; the values in _flow.DYNAMIC are traced (no recompile per t1).
_FLOW_OPTIONS = ("max_steps", "solver", "summaries")


def _descent_key(opts):
    return tuple((k, opts[k]) for k in _DESCENT_OPTIONS)


def _flow_key(opts):
    return tuple((k, opts[k]) for k in _FLOW_OPTIONS) + (
        ("loss_event", opts["loss_threshold"] is not None), ("grad_event", opts["grad_threshold"] is not None))


def _flow_dynamic(opts):
    """The traced options of a flow call (an unused threshold is passed as 0 and ignored)."""
    return {k: jnp.asarray(0.0 if opts[k] is None else opts[k], dtype=float) for k in DYNAMIC}


@functools.lru_cache(maxsize=64)
def _compiled(method, key, *, batched: bool, objective_axis=None):
    """The jitted (and, for batches, vmapped) runner for one set of options: repeated calls with the same
    options and shapes reuse the compiled code instead of tracing again."""
    opts = dict(key)
    if method == "flow":
        fn = make_flow(**opts)
        axes = (objective_axis, 0, None)
    else:
        # the descent loop is written for a batch (see _descent); one run is a batch of one
        fn = make_descent(**opts, objective_axis=objective_axis)
        if not batched:
            fn = _one_run(fn)
        return eqx.filter_jit(fn)
    return eqx.filter_jit(eqx.filter_vmap(fn, in_axes=axes) if batched else fn)


def _one_run(batched_fn):
    def fn(objective, params, key, lr):
        out = batched_fn(objective, jax.tree.map(lambda x: x[None], params), key[None], jnp.asarray(lr)[None])
        return jax.tree.map(lambda x: x[0], out)

    return fn


def _stack(trees, name):
    try:
        return jax.tree.map(lambda *xs: jnp.stack([jnp.asarray(x) for x in xs]), *trees)
    except ValueError as exc:
        raise ConfigError(f"{name}: every entry must have the same structure and shapes ({exc})") from exc


def train_batched(objectives: Objective | Sequence[Objective], params_list: Sequence, *,
                  method: str = "gd", lr: float | Sequence[float] = 1e-2, key=None, **options) -> list[Run]:
    """Train many runs in one compiled, vmapped call (no Python loop over runs).

    ``objectives`` is one objective shared by every run or one per run (same loss, noise and net, arrays of equal
    shapes: e.g. different weight decays or data sets); ``params_list`` holds one initial tuple per run; ``lr``
    is one step size or one per run (gd/sgd with the default optimizer). Other options are those of
    :func:`train`. Runs stop individually (their records are trimmed) but the call lasts as long as the longest.

    Example:
        >>> import jax, numpy as np, dlnlab as dl
        >>> prob = dl.Regression.from_moments(np.eye(2), np.eye(2), 2.0)
        >>> net = dl.Net((2, 3, 2))
        >>> inits = [net.init(jax.random.key(s), scheme="gaussian", scale=0.1) for s in range(4)]
        >>> runs = dl.train_batched(dl.Objective(prob), inits, lr=[0.01, 0.02, 0.05, 0.1], steps=500)
        >>> len(runs)
        4
    """
    if not isinstance(params_list, Sequence) or len(params_list) == 0:
        raise ConfigError("params_list: expected a non-empty sequence of initial parameter tuples")
    n = len(params_list)
    shared = isinstance(objectives, Objective)
    if not shared and (not isinstance(objectives, Sequence)
                       or not all(isinstance(o, Objective) for o in objectives)):
        raise ConfigError("objectives: expected a dl.Objective or a sequence of them (one per run), got "
                          f"{type(objectives).__name__}")
    objs = [objectives] * n if shared else list(objectives)
    if len(objs) != n:
        raise ConfigError(f"objectives: expected one objective or {n} (one per run), got {len(objs)}")
    opts = _options(objs[0], method, lr=lr, **_fill(options))
    if method != "flow" and np.ndim(lr) != 0 and np.shape(lr) != (n,):
        raise ConfigError(f"lr: expected one learning rate or {n} (one per run), got shape {np.shape(lr)}")
    params = _stack([_check_params(o, p, f"params_list[{i}]", finite=False)
                     for i, (o, p) in enumerate(zip(objs, params_list))], "params_list")
    _check_finite_batch(params)
    obj_axis = None if shared else 0
    obj_in = objs[0] if shared else _stack(objs, "objectives")
    if method == "flow":
        run = _compiled(method, _flow_key(opts), batched=True, objective_axis=obj_axis)
        out = run(obj_in, params, _flow_dynamic(opts))
    else:
        lrs = jnp.broadcast_to(jnp.asarray(lr, dtype=float), (n,))
        run = _compiled(method, _descent_key(opts), batched=True, objective_axis=obj_axis)
        out = run(obj_in, params, _keys(key, n), lrs)
    return _to_runs(method, out, opts, n)


def _fill(options):
    defaults = dict(steps=1000, optimizer=None, record_every=None, batch_size=None, t1=None, save_at=None,
                    rtol=1e-7, atol=1e-9, max_steps=None, solver="tsit5", loss_threshold=None,
                    grad_threshold=None, divergence_threshold=1e12, summaries=None)
    unknown = set(options) - set(defaults)
    if unknown:
        raise ConfigError(f"options: unknown option(s) {sorted(unknown)}; expected some of {sorted(defaults)}")
    return {**defaults, **options}

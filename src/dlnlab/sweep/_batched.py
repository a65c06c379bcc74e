"""``dl.train_batched`` with the compiled program kept between calls (a sweep worker runs many
batches).

``dl.train_batched`` builds a fresh closure on every call, so ``jit`` compiles again each time
(seconds per batch, far more than the training itself on small nets). A sweep worker calls it many
times with the same options and shapes, so this module memoises the jitted, vmapped program on the
validated options and reuses it. It goes through the same private building blocks as
:func:`dlnlab.train.train_batched` (validation, stacking, the descent/flow programs and the
conversion to :class:`dlnlab.Run`), so the numbers are the same bits; a test checks that. If those
internals change shape, it falls back to the public function.
"""

from __future__ import annotations

import numpy as np

__all__ = ["train_batched_cached"]

_PROGRAMS: dict = {}


def _freeze(x):
    if isinstance(x, dict):
        return tuple(sorted((k, _freeze(v)) for k, v in x.items()))
    if isinstance(x, (list, tuple)):
        return tuple(_freeze(v) for v in x)
    if isinstance(x, np.ndarray):
        return (x.dtype.str, x.shape, tuple(x.ravel().tolist()))
    hash(x)  # an unhashable option (a user optimizer): let the caller fall back
    return x


def train_batched_cached(
    objectives: list, params_list: list, *, method: str, lr=1e-2, key=None, **options
):
    """Same arguments and result as :func:`dlnlab.train_batched` with one objective per run."""
    from ..train import train_batched

    try:
        import equinox as eqx

        from ..train import _api
        from ..train._flow import make_flow

        opts = _api._options(
            objectives[0], method, lr=np.asarray(lr, dtype=float), **_api._fill(options)
        )
        ck = (method, len(params_list), _freeze(opts))
    except (ImportError, AttributeError, TypeError):
        return train_batched(objectives, params_list, method=method, lr=lr, key=key, **options)
    n = len(params_list)
    params = _api._stack(
        [
            _api._check_params(o, p, f"params_list[{i}]")
            for i, (o, p) in enumerate(zip(objectives, params_list, strict=True))
        ],
        "params_list",
    )
    objs = _api._stack(list(objectives), "objectives")
    program = _PROGRAMS.get(ck)
    if method == "flow":
        if program is None:
            fn = make_flow(
                **{
                    k: opts[k]
                    for k in (
                        "t1",
                        "save_at",
                        "rtol",
                        "atol",
                        "max_steps",
                        "solver",
                        "loss_threshold",
                        "grad_threshold",
                        "divergence_threshold",
                        "summaries",
                    )
                }
            )
            program = _PROGRAMS[ck] = eqx.filter_jit(eqx.filter_vmap(fn, in_axes=(0, 0)))
        out = program(objs, params)
    else:
        import jax.numpy as jnp

        if program is None:
            program = _PROGRAMS[ck] = eqx.filter_jit(
                eqx.filter_vmap(_api._descent_fn(opts), in_axes=(0, 0, 0, 0))
            )
        lrs = jnp.broadcast_to(jnp.asarray(lr, dtype=float), (n,))
        out = program(objs, params, _api._keys(key, n), lrs)
    return _api._to_runs(method, out, opts, n)

"""Benchmark 2: how close batched gradient descent comes to the machine's matmul speed.

A batch of depth-4 nets with every width 256 (inputs, hidden units and outputs), float32 params and float32
moments, trained by ``dl.train_batched`` (gd). Achieved FLOP/s use an analytic count of the work one GD step
needs on the moment loss ``tr(A Sxx A^T) - 2 tr(A Syx^T) + Syy`` with ``A = W_4 W_3 W_2 W_1``:

- forward: the prefix products ``W_2 W_1``, ``W_3 (W_2 W_1)``, ``W_4 (...)``: L - 1 matmuls;
- ``A Sxx``: 1 matmul (it also gives the gradient with respect to A, ``2 (A Sxx - Syx)``);
- backward: for each layer the weight gradient and the product passed down: 2 (L - 1) matmuls;

so 3 (L - 1) + 1 = 10 matmuls of 2 n^3 FLOPs each (elementwise work, the weight decay and the update are not
counted). The reference is a large float32 matmul (2048 x 2048, then the best of a few) timed in the same
process, and, for information, a batched 256 x 256 matmul of the same batch size as the sweep.

The GD rate is timed on a second call with the same options, so the compiled runner is reused (the first call,
compilation included, is reported too); records are taken at the start and the end only (``dl.Record(n=1)``): a
record is not matmul work.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np
from _common import Timer, best_of, regression_data

import dlnlab as dl

F32 = jnp.float32


def config(quick: bool) -> dict:
    # BENCH_HW_BATCH / BENCH_HW_STEPS size the batch for an accelerator (many more nets keep it busy)
    return dict(width=256, depth=4, batch=int(os.environ.get("BENCH_HW_BATCH", 8)),
                steps=int(os.environ.get("BENCH_HW_STEPS", 20 if quick else 100)),
                big=1024 if quick else int(os.environ.get("BENCH_HW_MATMUL", 2048)))


def gd_flops_per_step(width: int, depth: int) -> float:
    return (3 * (depth - 1) + 1) * 2.0 * width**3


def matmul_flops(n: int, repeat: int = 5) -> float:
    a = jax.random.normal(jax.random.key(0), (n, n), F32)
    b = jax.random.normal(jax.random.key(1), (n, n), F32)
    f = jax.jit(jnp.matmul)
    jax.block_until_ready(f(a, b))
    return 2.0 * n**3 / best_of(lambda: f(a, b), repeat)


def batched_matmul_flops(batch: int, n: int, repeat: int = 5) -> float:
    a = jax.random.normal(jax.random.key(0), (batch, n, n), F32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    return batch * 2.0 * n**3 / best_of(lambda: f(a), repeat)


def bare_loop_seconds(obj, inits, lr, steps) -> float:
    """The floor set by the backend: the same GD steps as a bare ``fori_loop`` of ``vmap(value_and_grad)`` and
    the update, with nothing else (no records, no divergence test); the best of two warm calls."""
    params = tuple(jnp.stack(ws) for ws in zip(*inits))
    vg = jax.vmap(obj.value_and_grad)

    @jax.jit
    def loop(ps):
        def body(_, ps):
            _, g = vg(ps)
            return tuple(W - lr * G for W, G in zip(ps, g))

        return jax.lax.fori_loop(0, steps, body, ps)

    jax.block_until_ready(loop(params))
    return best_of(lambda: loop(params), 2)


def run(quick: bool = False) -> dict:
    c = config(quick)
    n, L, B, S = c["width"], c["depth"], c["batch"], c["steps"]
    X, Y = regression_data(4 * n, n, n, seed=1)
    full = dl.Regression.from_data(X, Y)
    prob = dl.Regression.from_moments(full.Sxx, full.Syx, full.Syy, dtype=F32)
    obj = dl.Objective(prob, weight_decay=1e-4)
    net = dl.Net((n,) * (L + 1))
    inits = [net.init(jax.random.key(i), scheme="fan_in", scale=1.0, dtype=F32) for i in range(B)]
    lr = 0.01

    with Timer() as first:
        runs = dl.train_batched(obj, inits, dl.GD(lr=lr, steps=S), record=dl.Record(n=1))
    times = []
    for _ in range(2):
        with Timer() as t:
            dl.train_batched(obj, inits, dl.GD(lr=lr, steps=S), record=dl.Record(n=1))
        times.append(t.s)
    t_gd = min(times)
    work = B * S * gd_flops_per_step(n, L)
    gd = work / t_gd
    t_bare = bare_loop_seconds(obj, inits, lr, S)
    big = matmul_flops(c["big"])
    batched = batched_matmul_flops(B, n)
    ok = all(r.ok for r in runs) and all(r.history["loss"][-1] < r.history["loss"][0] for r in runs)
    rows = [
        dict(what=f"batched GD, {B} nets of width {n}, {S} steps (warm call)", seconds=t_gd, flops_per_s=gd,
             detail=f"first call incl. compile {first.s:.2f}s; {work / 1e9:.1f} GFLOP counted"),
        dict(what="bare fori_loop of vmap(value_and_grad) + update, same nets and steps (warm call)",
             seconds=t_bare, flops_per_s=work / t_bare, detail="no records, no divergence test"),
        dict(what=f"large matmul {c['big']}x{c['big']} float32", flops_per_s=big),
        dict(what=f"batched matmul {B}x{n}x{n} float32", flops_per_s=batched),
    ]
    frac = gd / big
    comparisons = [dict(what="GD FLOP/s / large-matmul FLOP/s (width 256, f32)", ours=gd, theirs=big,
                        unit="FLOP/s", ratio=frac, target=0.5, met=frac >= 0.5, estimated=False)]
    notes = [f"GD reaches {100 * frac:.0f}% of the large matmul and {100 * gd / batched:.0f}% of a batched "
             f"{n}-matmul; the bare loop reaches {100 * work / t_bare / big:.0f}% of the large matmul",
             f"every run decreased its loss: {ok}"]
    return dict(name="hardware", title="2. Hardware limit", config=c, rows=rows, comparisons=comparisons,
                checks=[dict(losses_decreased=ok, loss_first=float(np.mean([r.loss[0] for r in runs])),
                             loss_last=float(np.mean([r.loss[-1] for r in runs])))], notes=notes)

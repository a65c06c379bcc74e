"""Benchmark 1: sweep throughput in config-steps per second.

256 configurations of a depth-4 linear net (widths 16-32-32-32-16) on 10,000 samples, 2,000 full-batch GD steps
each, squared loss plus weight decay 1e-3, Gaussian init of scale 0.1, one seed and one learning rate per
configuration. Everything runs in float32 (PyTorch's default; dlnlab gets ``dtype=float32`` moments and params).

- dlnlab: ``dl.train_batched`` on the moments of the data (one compiled, vmapped call). Timed from the raw
  samples to the list of ``dl.Run``: moments, initialisations, tracing, compilation, training,
  records.
- naive PyTorch: ``nn.Sequential`` of bias-free ``nn.Linear``, full batch on the raw samples, ``torch.optim.SGD``,
  Python loops over configurations and steps (with PyTorch's faster of 1 thread and its default thread count).
- naive JAX: a ``jax.jit``-compiled step on the raw samples, Python loops over configurations and steps.
- naive JAX on moments (extra row, no target): the same Python loops on the moment loss, to separate what the
  moments buy from what batching and the compiled loop buy.

The competitors are far too slow for the whole sweep, so each runs a subset of configurations and steps; its
full-sweep time is estimated as (first call, compilation included) + (steady time per step) x 512,000 and the
output says so. All competitors start from dlnlab's initial weights, and their losses after the subset are
compared with dlnlab's recorded losses at the same step: they compute the same trajectories.
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
from _common import Timer, fastest_torch_threads, have_torch, rate, regression_data, torch_threads

import dlnlab as dl

F32 = jnp.float32


def config(quick: bool) -> dict:
    return dict(
        n_configs=32 if quick else 256, widths=(16, 32, 32, 32, 16), n_samples=10_000,
        steps=400 if quick else 2000, weight_decay=1e-3, scale=0.1,
        jax_configs=2 if quick else 4, jax_steps=100 if quick else 200,
        torch_configs=1 if quick else 2, torch_steps=20 if quick else 100,
        moments_configs=2 if quick else 4,
    )


def learning_rates(n: int) -> np.ndarray:
    return np.geomspace(0.01, 0.05, 16)[np.arange(n) % 16]


def run_dlnlab(X, Y, c, lrs):
    net = dl.Net(c["widths"])
    n = c["n_configs"]
    with Timer() as total:
        with Timer() as t_prep:
            prob = dl.Regression.from_data(X, Y, dtype=F32)  # moments taken in float64, stored in float32
            obj = dl.Objective(prob, weight_decay=c["weight_decay"])
            # A loop of net.init: a jitted vmap of it measured no faster (the cost is compiling JAX's random-number
            # kernels, about 0.5 s per draw on this machine, not the 256 calls)
            inits = [net.init(jax.random.key(i), scheme="gaussian", scale=c["scale"], dtype=F32) for i in range(n)]
        with Timer() as t_train:
            runs = dl.train_batched(obj, inits, [dl.GD(lr=float(lr), steps=c["steps"]) for lr in lrs])
    with Timer() as t_again:  # same shapes and options: the compiled runner is reused
        dl.train_batched(obj, inits, [dl.GD(lr=float(lr), steps=c["steps"]) for lr in lrs])
    return runs, inits, dict(total=total.s, prep=t_prep.s, train=t_train.s, warm_call=t_again.s)


def _loss_at(run, step):
    hit = np.nonzero(run.times == step)[0]
    return float(run.history["loss"][hit[0]]) if hit.size else float("nan")


def run_naive_jax(X, Y, c, lrs, inits, *, moments: bool):
    wd = c["weight_decay"]
    if moments:
        full = dl.Regression.from_data(X, Y)
        Sxx, Syx, Syy = (jnp.asarray(a, F32) for a in (full.Sxx, full.Syx, full.Syy))

        def loss(ps):
            A = ps[0]
            for W in ps[1:]:
                A = W @ A
            data = jnp.sum((A @ Sxx) * A) - 2.0 * jnp.sum(A * Syx) + Syy
            return data + wd * sum(jnp.sum(W * W) for W in ps)
    else:
        Xj, Yj = jnp.asarray(X, F32), jnp.asarray(Y, F32)

        def loss(ps):
            h = Xj
            for W in ps:
                h = h @ W.T
            return jnp.mean(jnp.sum((h - Yj) ** 2, axis=1)) + wd * sum(jnp.sum(W * W) for W in ps)

    @jax.jit
    def step(ps, lr):
        value, g = jax.value_and_grad(loss)(ps)
        return tuple(W - lr * gW for W, gW in zip(ps, g)), value

    n_cfg = c["moments_configs"] if moments else c["jax_configs"]
    n_steps = c["steps"] if moments else c["jax_steps"]
    first = None
    losses = []
    t0 = time.perf_counter()
    for i in range(n_cfg):
        ps = tuple(jnp.asarray(W, F32) for W in inits[i])
        lr = jnp.asarray(lrs[i], F32)
        for _ in range(n_steps):
            ps, value = step(ps, lr)
            if first is None:
                jax.block_until_ready(ps)
                first = time.perf_counter() - t0
        losses.append(float(loss(ps)))
    total = time.perf_counter() - t0
    per_step = (total - first) / (n_cfg * n_steps - 1)
    return dict(first_call=first, per_step=per_step, subset_time=total, configs=n_cfg, steps=n_steps,
                losses=losses)


def run_naive_torch(X, Y, c, lrs, inits):
    import torch

    Xt = torch.tensor(X, dtype=torch.float32)
    Yt = torch.tensor(Y, dtype=torch.float32)
    wd = c["weight_decay"]
    widths = c["widths"]

    def make(i):
        model = torch.nn.Sequential(*[torch.nn.Linear(widths[k], widths[k + 1], bias=False)
                                      for k in range(len(widths) - 1)])
        with torch.no_grad():
            for layer, W in zip(model, inits[i]):
                layer.weight.copy_(torch.tensor(np.asarray(W)))
        return model

    def loss_of(model):
        out = model(Xt)
        return ((out - Yt) ** 2).sum(dim=1).mean() + wd * sum((p ** 2).sum() for p in model.parameters())

    def train(i, steps):
        model = make(i)
        opt = torch.optim.SGD(model.parameters(), lr=float(lrs[i]))
        for _ in range(steps):
            opt.zero_grad()
            loss = loss_of(model)
            loss.backward()
            opt.step()
        with torch.no_grad():
            return float(loss_of(model))

    threads = fastest_torch_threads(lambda: train(0, 3))
    losses = []
    with torch_threads(threads):
        t0 = time.perf_counter()
        for i in range(c["torch_configs"]):
            losses.append(train(i, c["torch_steps"]))
        total = time.perf_counter() - t0
    per_step = total / (c["torch_configs"] * c["torch_steps"])
    return dict(per_step=per_step, subset_time=total, configs=c["torch_configs"], steps=c["torch_steps"],
                losses=losses, threads=threads)


def run(quick: bool = False) -> dict:
    c = config(quick)
    X, Y = regression_data(c["n_samples"], c["widths"][0], c["widths"][-1], seed=0)
    lrs = learning_rates(c["n_configs"])
    work = c["n_configs"] * c["steps"]  # config-steps of the full sweep

    # Start JAX's runtime (backend, first dispatch) outside every timing: a cost of the process, not of a sweep.
    jax.block_until_ready(jax.jit(lambda x: x + 1)(jnp.zeros((), F32)))
    runs, inits, t_dl = run_dlnlab(X, Y, c, lrs)
    ours = rate(work, t_dl["total"])
    inits_np = [tuple(np.asarray(W) for W in p) for p in inits]
    comparisons, rows, notes, checks = [], [], [], []
    rows.append(dict(method="dlnlab train_batched (moments)", configs=c["n_configs"], steps=c["steps"],
                     seconds=t_dl["total"], estimated=False, config_steps_per_s=ours,
                     detail=f"data->moments+init {t_dl['prep']:.2f}s, train_batched {t_dl['train']:.2f}s "
                            f"(compile incl.), same call again {t_dl['warm_call']:.2f}s"))
    n_bad = sum(not r.ok for r in runs)
    if n_bad:
        notes.append(f"{n_bad} dlnlab runs did not finish cleanly")

    competitors = [("naive JAX (jit step, samples)", "jax", 20.0),
                   ("naive JAX (jit step, moments)", "moments", None)]
    if have_torch():
        competitors.insert(0, ("naive PyTorch (nn.Sequential, samples)", "torch", 500.0))
    else:
        notes.append("PyTorch is not installed (pip install -e .[bench]): its row is skipped")
    for label, kind, target in competitors:
        if kind == "torch":
            r = run_naive_torch(X, Y, c, lrs, inits_np)
            est_full = r["per_step"] * work
            detail = f"{r['threads']} thread(s); timed {r['configs']} configs x {r['steps']} steps"
        else:
            r = run_naive_jax(X, Y, c, lrs, inits_np, moments=kind == "moments")
            est_full = r["first_call"] + r["per_step"] * work
            detail = (f"first call {r['first_call']:.2f}s (compile); timed {r['configs']} configs x "
                      f"{r['steps']} steps")
        theirs = rate(work, est_full)
        rows.append(dict(method=label, configs=r["configs"], steps=r["steps"], seconds=est_full, estimated=True,
                         config_steps_per_s=theirs, per_config_step_s=r["per_step"], detail=detail))
        ref = [_loss_at(runs[i], r["steps"]) for i in range(r["configs"])]
        rel = float(np.max(np.abs(np.array(r["losses"]) - ref) / np.abs(ref)))
        checks.append(dict(method=label, step=r["steps"], max_rel_loss_diff=rel))
        if target is not None:
            comparisons.append(dict(what=f"sweep throughput vs {label}", ours=ours, theirs=theirs,
                                    unit="config-steps/s", ratio=ours / theirs, target=target,
                                    met=ours / theirs >= target, estimated=True))
    notes.append("competitor full-sweep times are extrapolated from the timed subset (per-config-step rate); "
                 "dlnlab ran the whole sweep")
    return dict(name="sweep", title="1. Sweep throughput", config=c, rows=rows, comparisons=comparisons,
                checks=checks, notes=notes)

"""Cold call: a fresh process's first ``dl.train`` GD call against a naive PyTorch loop, and the warm call.

One configuration of the sweep benchmark's problem (widths 16-32-32-32-16, 10,000 samples, weight decay 1e-3,
Gaussian init 0.1, float32, 2,000 full-batch GD steps, default records):

- dlnlab cold: a new Python process imports dlnlab, builds the problem and calls ``dl.train`` once; the time of
  that call (tracing and compilation included, the import and the data preparation reported apart) is the cold
  time. The same process then calls again with another learning rate and another init: the warm time (the
  compiled runner is reused: the learning rate and the weights are traced).
- naive PyTorch: ``nn.Sequential`` of bias-free ``nn.Linear`` on the raw samples with ``torch.optim.SGD`` (no
  compilation to pay); its 2,000-step time is its measured per-step time (a timed subset) times 2,000.

The ratio is PyTorch time / dlnlab time (higher is better for dlnlab). A fresh process is the honest cold
measurement: JAX's in-memory compilation cache would make a second call in this process warm. JAX's persistent
compilation cache is off here (it is the CLI's, not the library's).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import numpy as np
from _common import Timer, fastest_torch_threads, have_torch, regression_data, torch_threads

CHILD = r"""
import json, sys, time
t0 = time.perf_counter()
import jax, jax.numpy as jnp, numpy as np
import dlnlab as dl
t_import = time.perf_counter() - t0
sys.path.insert(0, sys.argv[1])
from _common import regression_data
cfg = json.loads(sys.argv[2])
X, Y = regression_data(cfg["n_samples"], cfg["widths"][0], cfg["widths"][-1], seed=0)
t0 = time.perf_counter()
obj = dl.Objective(dl.Regression.from_data(X, Y, dtype=jnp.float32), weight_decay=cfg["weight_decay"])
net = dl.Net(tuple(cfg["widths"]))
p0 = net.init(jax.random.key(0), scheme="gaussian", scale=cfg["scale"], dtype=jnp.float32)
p1 = net.init(jax.random.key(1), scheme="gaussian", scale=cfg["scale"], dtype=jnp.float32)
jax.block_until_ready(p1)
t_prep = time.perf_counter() - t0
t0 = time.perf_counter()
run = dl.train(obj, p0, dl.GD(lr=cfg["lr"], steps=cfg["steps"]))
jax.block_until_ready(run.params)
t_cold = time.perf_counter() - t0
warm = []
for lr, p in ((0.5 * cfg["lr"], p1), (0.25 * cfg["lr"], p0)):
    t0 = time.perf_counter()
    jax.block_until_ready(dl.train(obj, p, dl.GD(lr=lr, steps=cfg["steps"])).params)
    warm.append(time.perf_counter() - t0)
print(json.dumps(dict(import_s=t_import, prep_s=t_prep, cold_s=t_cold, warm_s=min(warm),
                      final_loss=run.final_loss, p0=[np.asarray(W).tolist() for W in p0])))
"""


def config(quick: bool) -> dict:
    return dict(widths=[16, 32, 32, 32, 16], n_samples=2_000 if quick else 10_000, steps=2_000, lr=0.05,
                weight_decay=1e-3, scale=0.1, torch_steps=50 if quick else 200)


def run_dlnlab_fresh(c) -> dict:
    here = os.path.dirname(os.path.abspath(__file__))
    env = {**os.environ, "JAX_ENABLE_COMPILATION_CACHE": "false"}
    out = subprocess.run([sys.executable, "-c", CHILD, here, json.dumps(c)], capture_output=True, text=True,
                         timeout=1800, env=env)
    if out.returncode != 0:
        raise RuntimeError(f"the cold-call child failed: {out.stderr[-2000:]}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def run_naive_torch(X, Y, c, p0) -> dict:
    import torch

    Xt, Yt = torch.tensor(X, dtype=torch.float32), torch.tensor(Y, dtype=torch.float32)
    widths = c["widths"]
    model = torch.nn.Sequential(*[torch.nn.Linear(widths[k], widths[k + 1], bias=False)
                                  for k in range(len(widths) - 1)])
    with torch.no_grad():
        for layer, W in zip(model, p0, strict=True):
            layer.weight.copy_(torch.tensor(np.asarray(W, dtype=np.float32)))
    opt = torch.optim.SGD(model.parameters(), lr=c["lr"])

    def loss_of():
        data = ((model(Xt) - Yt) ** 2).sum(dim=1).mean()
        return data + c["weight_decay"] * sum((layer.weight ** 2).sum() for layer in model)

    def steps(n):
        for _ in range(n):
            opt.zero_grad()
            loss_of().backward()
            opt.step()

    threads = fastest_torch_threads(lambda: steps(3))
    with torch_threads(threads), Timer() as t:
        steps(c["torch_steps"])
    return dict(per_step=t.s / c["torch_steps"], threads=threads)


def run(quick: bool = False) -> dict:
    c = config(quick)
    X, Y = regression_data(c["n_samples"], c["widths"][0], c["widths"][-1], seed=0)
    ours = run_dlnlab_fresh(c)
    rows = [dict(method="dlnlab dl.train, fresh process, first call", seconds=ours["cold_s"],
                 detail=f"import {ours['import_s']:.2f}s and data/init {ours['prep_s']:.2f}s not counted"),
            dict(method="dlnlab dl.train, same process, new lr and init", seconds=ours["warm_s"])]
    comparisons, notes = [], []
    if have_torch():
        r = run_naive_torch(X, Y, c, ours["p0"])
        theirs = r["per_step"] * c["steps"]
        rows.append(dict(method="naive PyTorch (nn.Sequential, samples)", seconds=theirs, estimated=True,
                         detail=f"{r['threads']} thread(s); {c['torch_steps']} steps timed, x {c['steps']}"))
        for what, s, target in (("cold", ours["cold_s"], 20.0), ("warm", ours["warm_s"], 150.0)):
            comparisons.append(dict(what=f"one GD run ({c['steps']} steps), {what} call vs naive PyTorch",
                                    ours=s, theirs=theirs, unit="s (less is better)", ratio=theirs / s,
                                    target=target, met=theirs / s >= target, estimated=True))
    else:
        notes.append("PyTorch is not installed (pip install -e .[bench]): its row is skipped")
    return dict(name="cold", title="6. Cold call", config=c, rows=rows, comparisons=comparisons, checks=[],
                notes=notes)

"""Deep matrix completion (arora2019's setup): dlnlab against the PyTorch loop of roosephu/deep_matrix_factorization.

The problem: a 100 x 100 target of rank 5 (RMS entry 1), 3,000 observed entries, a depth-3 factorization with
Gaussian init of end-to-end scale 1e-3 (per-factor std ``1e-3^(1/3) / sqrt(100)``, roosephu's rule), full-batch GD
on ``mean over observed of (W_ij - M_ij)^2`` (the loss roosephu's code uses; no 1/2). Both sides start from the same
weights, run in float32 (PyTorch's default), and must end at the same training loss (relative difference printed).

- single: one run of ``--steps`` GD steps; dlnlab's ``dl.train`` (compile included: a fresh process) against
  roosephu's loop (``nn.Linear`` factors without bias, end-to-end product, loss, ``zero_grad``, ``backward``,
  ``optimizer.step()`` with ``torch.optim.SGD``, ``loss.item()`` checked against the stop threshold every step,
  as in ``main.py``), run in its own subprocess.
- batch: ``--batch`` runs (8 init scales x seeds, depth 3) in one ``dl.train_batched`` call against the same
  runs one after another in PyTorch, ``--batch-steps`` steps each (fewer than 20,000 to keep the shared machine
  usable: per-step costs are constant along a run, so the ratio extrapolates; the printed line says so).

    python benchmarks/bench_dmf.py [--steps 20000] [--batch 64] [--batch-steps 300]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

import jax
import jax.numpy as jnp
import numpy as np

import dlnlab as dl

D, RANK, N_OBS, DEPTH, LR = 100, 5, 3000, 3, 1.0
INITS = (1e-1, 3e-2, 1e-2, 3e-3, 1e-3, 3e-4, 1e-4, 3e-5)

TORCH_LOOP = r'''
import json, sys, time
import numpy as np
import torch
import torch.nn as nn
data = np.load(sys.argv[1])
steps, lr = int(sys.argv[2]), float(sys.argv[3])
torch.set_num_threads(int(sys.argv[4]))
rows, cols, ys_ = (torch.from_numpy(data[k]) for k in ("rows", "cols", "ys"))
inits = [k for k in data.files if k.startswith("run")]
out = []
t0 = time.perf_counter()
for name in sorted(set(k.split("_")[0] for k in inits)):
    Ws = [data[f"{name}_W{i}"] for i in range(1, len([k for k in inits if k.startswith(name + "_")]) + 1)]
    model = nn.Sequential(*[nn.Linear(W.shape[1], W.shape[0], bias=False) for W in Ws])
    with torch.no_grad():
        for fc, W in zip(model.children(), Ws):
            fc.weight.copy_(torch.from_numpy(W))
    optimizer = torch.optim.SGD(model.parameters(), lr)
    for T in range(steps):
        weight = None                       # roosephu's get_e2e
        for fc in model.children():
            weight = fc.weight.t() if weight is None else fc(weight)
        e2e = weight.t()                    # W_L ... W_1 in the library's orientation
        loss = (e2e[rows, cols] - ys_).pow(2).mean()
        optimizer.zero_grad()
        loss.backward()
        if loss.item() <= 1e-12:            # roosephu checks train_thres every step
            break
        optimizer.step()
    with torch.no_grad():
        weight = None
        for fc in model.children():
            weight = fc.weight.t() if weight is None else fc(weight)
        e2e = weight.t()
        out.append(float((e2e[rows, cols] - ys_).pow(2).mean()))
print(json.dumps({"seconds": time.perf_counter() - t0, "losses": out, "threads": torch.get_num_threads()}))
'''


def problem():
    return dl.MatrixCompletion.random(D, D, RANK, N_OBS, seed=0, dtype=jnp.float32)


def init(net, scale: float, seed: int):
    return net.init(jax.random.key(seed), scheme="gaussian", scale=scale ** (1.0 / DEPTH) / np.sqrt(D),
                    dtype=jnp.float32)


def torch_runs(prob, inits, steps: int, threads: int) -> dict:
    mask = np.asarray(prob.mask)
    rows, cols = np.nonzero(mask)
    arrays = {"rows": rows.astype(np.int64), "cols": cols.astype(np.int64),
              "ys": np.asarray(prob.target)[rows, cols].astype(np.float32)}
    for r, params in enumerate(inits):
        for i, W in enumerate(params):
            arrays[f"run{r:04d}_W{i + 1}"] = np.asarray(W, dtype=np.float32)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "data.npz")
        np.savez(path, **arrays)
        res = subprocess.run([sys.executable, "-c", TORCH_LOOP, path, str(steps), str(LR), str(threads)],
                             capture_output=True, text=True, check=True)
    return json.loads(res.stdout.strip().splitlines()[-1])


def single(steps: int, threads: int) -> None:
    prob = problem()
    net = dl.Net((D,) * (DEPTH + 1))
    p0 = init(net, 1e-3, 0)
    t0 = time.perf_counter()
    run = dl.train(dl.Objective(prob, net=net), p0, dl.GD(lr=LR, steps=steps), record=dl.Record(n=10))
    jax.block_until_ready(run.params)
    t_dl = time.perf_counter() - t0
    t0 = time.perf_counter()
    dl.train(dl.Objective(prob, net=net), p0, dl.GD(lr=LR, steps=steps), record=dl.Record(n=10))
    t_dl_warm = time.perf_counter() - t0
    tr = torch_runs(prob, [p0], steps, threads)
    l_dl, l_t = float(run.final_loss), tr["losses"][0]
    print(f"single run, {steps} GD steps, 100x100 rank 5, 3000 observed, depth 3, init 1e-3, float32")
    print(f"  dlnlab dl.train     {t_dl:8.2f} s (compile included; {t_dl_warm:.2f} s warm)   final loss {l_dl:.4e}")
    print(f"  PyTorch loop        {tr['seconds']:8.2f} s ({tr['threads']} threads)              final loss {l_t:.4e}")
    print(f"  ratio {tr['seconds'] / t_dl:.2f}x (compile included), {tr['seconds'] / t_dl_warm:.2f}x warm; "
          f"loss relative difference {abs(l_dl - l_t) / abs(l_t):.1e}")


def batch(n: int, steps: int, full_steps: int, threads: int) -> None:
    prob = problem()
    net = dl.Net((D,) * (DEPTH + 1))
    inits = [init(net, INITS[i % len(INITS)], i // len(INITS)) for i in range(n)]
    obj = dl.Objective(prob, net=net)
    t0 = time.perf_counter()
    runs = dl.train_batched(obj, inits, dl.GD(lr=LR, steps=steps), record=dl.Record(n=10))
    jax.block_until_ready(runs[-1].params)
    t_dl = time.perf_counter() - t0
    tr = torch_runs(prob, inits, steps, threads)
    diff = max(abs(float(r.final_loss) - lt) / max(abs(lt), 1e-30) for r, lt in zip(runs, tr["losses"]))
    print(f"batch of {n} runs (8 init scales x {n // len(INITS)} seeds, depth 3), {steps} GD steps each, float32")
    print(f"  dlnlab dl.train_batched (one call, compile included) {t_dl:8.2f} s")
    print(f"  PyTorch, {n} runs one after another                   {tr['seconds']:8.2f} s")
    print(f"  ratio {tr['seconds'] / t_dl:.2f}x; max relative loss difference {diff:.1e}; at {full_steps} steps "
          f"both sides scale linearly in steps (compile is a fixed cost), so the ratio is about the same or higher")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--steps", type=int, default=20000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--batch-steps", type=int, default=300)
    ap.add_argument("--only", choices=("single", "batch"), default=None)
    ap.add_argument("--torch-threads", type=int, default=1,
                    help="PyTorch threads (1 beat 2 on the loaded shared 2-core machine)")
    a = ap.parse_args()
    print(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores")
    if a.only in (None, "single"):
        single(a.steps, a.torch_threads)
    if a.only in (None, "batch"):
        batch(a.batch, a.batch_steps, a.steps, a.torch_threads)


if __name__ == "__main__":
    main()

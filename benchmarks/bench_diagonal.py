"""Benchmark: 256 diagonal-network runs (woodworth2020, d = 1000, n = 100) in one ``dl.train_batched`` call
against a NumPy loop.

The problem is woodworth2020's full size: Gaussian ``X`` (100 x 1000), a 5-sparse target, ``y = X beta*``. The
runs are 256 init scales alpha (log-spaced over [1e-3, 1]) on one draw of the data, depth 2, full-batch GD with the same
learning rate and number of steps for all, squared loss ``(1/n) ||X beta - y||^2`` (the library's, no 1/2).

- dlnlab: ``dl.train_batched`` with one shared objective (per-run objectives would stack one 1000 x 1000 ``Sxx``
  per run: 2 GB for 256 runs, see docs/performance.md) and initial params
  ``dl.DiagonalNet(1000, 2).init(scale=alpha)``; one compiled call, timed from the data to the list of runs
  (moments, compilation, training included). ``dl.Regression`` works on the moments ``Sxx`` (d x d), which for
  d = 1000 > n = 100 costs 5x the flops of the samples per gradient;
- dlnlab on the samples: the same ``dl.train_batched`` call with the loss written as a callable
  ``params -> mean((X beta - y)^2)`` (the engine's "any callable objective"), X being 100 x 1000.
- NumPy: the textbook loop, per run ``for step in range(steps)``: ``g = 2/n X^T (X beta - y)``,
  ``w_+ -= lr * 2 w_+ g``, ``w_- += lr * 2 w_- g``, on the samples (cheaper than moments here: n < d). The loop
  is too slow for all 256 runs at every size, so it runs ``--numpy-runs`` of them and its full time is that
  times 256 / runs (the output says so); its betas are compared with dlnlab's runs of the same index.

Usage: ``python benchmarks/bench_diagonal.py [--steps 2000] [--numpy-runs 16]``; prints both times and the ratio.
"""

from __future__ import annotations

import argparse

import numpy as np
from _common import Timer, environment, load

import dlnlab as dl


def problem(seed: int, d: int = 1000, n: int = 100, s: int = 5):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    beta = np.zeros(d)
    beta[:s] = 1 / np.sqrt(s)
    return X, X @ beta


def numpy_gd(X, y, alpha: float, lr: float, steps: int) -> np.ndarray:
    n, d = X.shape
    wp, wm = np.full(d, alpha), np.full(d, alpha)
    for _ in range(steps):
        g = (2.0 / n) * (X.T @ (X @ (wp * wp - wm * wm) - y))
        wp, wm = wp - lr * 2 * wp * g, wm + lr * 2 * wm * g
    return wp * wp - wm * wm


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=2000)
    ap.add_argument("--numpy-runs", type=int, default=16)
    ap.add_argument("--lr", type=float, default=2e-3)
    args = ap.parse_args()
    alphas = np.logspace(-3, 0, 256)
    data = [problem(0)]
    configs = [(0, a) for a in alphas]  # 256 runs
    print(environment())
    print(f"load before: {load():.2f}")
    net = dl.DiagonalNet(1000, depth=2)
    with Timer() as t_dl:
        obj = dl.Objective(dl.Regression.from_data(*data[0]), net=net)
        runs = dl.train_batched(obj, [net.init(scale=float(a)) for _, a in configs],
                                dl.GD(lr=args.lr, steps=args.steps), record=dl.Record(n=2, summaries=("loss",)))
        betas = np.stack([np.asarray(net.beta(r.params)) for r in runs])
    print(f"dlnlab train_batched (moments): {len(runs)} runs x {args.steps} GD steps in {t_dl.s:.2f} s "
          f"(compilation included); statuses {sorted({r.status.value for r in runs})}")
    import jax.numpy as jnp

    Xj, yj = jnp.asarray(data[0][0]), jnp.asarray(data[0][1])

    def loss(params):
        return jnp.mean((Xj @ net.beta(params) - yj) ** 2)

    with Timer() as t_cb:
        runs_cb = dl.train_batched(loss, [net.init(scale=float(a)) for _, a in configs],
                                   dl.GD(lr=args.lr, steps=args.steps), record=dl.Record(n=2, summaries=("loss",)))
        betas_cb = np.stack([np.asarray(net.beta(r.params)) for r in runs_cb])
    diff = float(np.max(np.linalg.norm(betas_cb - betas, axis=1) / np.linalg.norm(betas, axis=1)))
    print(f"dlnlab train_batched (callable loss on the samples): {t_cb.s:.2f} s; max relative beta difference "
          f"to the moment runs {diff:.2e}")
    idx = np.linspace(0, len(configs) - 1, args.numpy_runs).astype(int)
    worst = 0.0
    with Timer() as t_np:
        for i in idx:
            k, a = configs[i]
            beta = numpy_gd(*data[k], a, args.lr, args.steps)
            worst = max(worst, float(np.linalg.norm(beta - betas[i]) / max(np.linalg.norm(beta), 1e-300)))
    full = t_np.s * len(configs) / len(idx)
    print(f"NumPy loop: {len(idx)} runs in {t_np.s:.2f} s -> {full:.1f} s estimated for {len(configs)} runs")
    print(f"same beta: max relative difference {worst:.2e} over the {len(idx)} compared runs")
    print(f"ratio (NumPy / dlnlab, moments): {full / t_dl.s:.1f}x")
    print(f"ratio (NumPy / dlnlab, callable on samples): {full / t_cb.s:.1f}x")
    print(f"load after: {load():.2f}")


if __name__ == "__main__":
    main()

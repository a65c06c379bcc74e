"""Probe behind the analysis of benchmark 2: how fast this backend runs the pieces of a batched GD step.

    python benchmarks/probe_matmul.py [BATCH] [WIDTH]      # defaults 8 256 (float32)

Prints GFLOP/s of batched matmuls in several layouts, of ``vmap(grad(loss))`` for the moment loss of a depth-4
chain, of the same gradient written by hand (prefix/suffix products), of a large matmul, and of a bare
``fori_loop`` of 10 GD steps, so that the FLOP rate of ``dl.train_batched`` (benchmark 2) can be split into what
the backend gives and what the training loop adds.
"""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

F32 = jnp.float32


def best(f, *args, repeat=5):
    jax.block_until_ready(f(*args))
    t = float("inf")
    for _ in range(repeat):
        t0 = time.perf_counter()
        jax.block_until_ready(f(*args))
        t = min(t, time.perf_counter() - t0)
    return t


def main(batch=8, n=256):
    Ws = tuple(jax.random.normal(jax.random.key(i), (batch, n, n), F32) / np.sqrt(n) for i in range(4))
    S = jnp.eye(n, dtype=F32)
    Syx = jnp.ones((n, n), F32) / n
    flops = batch * 2 * n**3
    T = lambda x: jnp.swapaxes(x, -1, -2)
    for name, f in (("a @ b", lambda a, b: a @ b), ("a @ b^T", lambda a, b: a @ T(b)),
                    ("a^T @ b", lambda a, b: T(a) @ b), ("vmap(a @ b)", jax.vmap(lambda a, b: a @ b))):
        print(f"batched {name:14s} {flops / best(jax.jit(f), Ws[0], Ws[1]) / 1e9:8.1f} GFLOP/s")

    def loss(ps):
        A = ps[0]
        for W in ps[1:]:
            A = W @ A
        return jnp.sum((A @ S) * A) - 2 * jnp.sum(A * Syx)

    def manual(ps):
        W1, W2, W3, W4 = ps
        P2 = W2 @ W1
        P3 = W3 @ P2
        D = 2 * (W4 @ P3 @ S - Syx)  # S is symmetric
        B3 = T(W4) @ D
        B2 = T(W3) @ B3
        return T(W2) @ B2, B2 @ T(W1), B3 @ T(P2), D @ T(P3)

    step_flops = 20 * batch * n**3  # 10 matmuls, see bench_hardware
    grad = jax.jit(jax.vmap(jax.grad(loss)))
    print(f"vmap(grad(loss))       {step_flops / best(grad, Ws) / 1e9:8.1f} GFLOP/s (10-matmul count)")
    print(f"hand-written gradient  {step_flops / best(jax.jit(manual), Ws) / 1e9:8.1f} GFLOP/s")
    diff = max(float(jnp.max(jnp.abs(a - b))) for a, b in zip(grad(Ws), manual(Ws)))
    print(f"  (max difference between the two gradients: {diff:.2e})")
    big = jax.random.normal(jax.random.key(9), (2048, 2048), F32)
    print(f"matmul 2048 x 2048     {2 * 2048**3 / best(jax.jit(lambda a: a @ a), big) / 1e9:8.1f} GFLOP/s")

    @jax.jit
    def ten_steps(ps):
        body = lambda i, p: tuple(w - 1e-3 * g for w, g in zip(p, jax.vmap(jax.grad(loss))(p)))
        return jax.lax.fori_loop(0, 10, body, ps)

    print(f"bare 10-step GD loop   {10 * step_flops / best(ten_steps, Ws, repeat=2) / 1e9:8.1f} GFLOP/s")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))

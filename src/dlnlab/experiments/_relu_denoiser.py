"""A bias-free ReLU MLP denoiser of scikit-learn's 8x8 digits, trained by full-batch gradient descent.

Helper of the mulayoff2020 experiment (the paper's nonlinear experiment denoised MNIST with fully connected ReLU
nets; the 8x8 digits ship inside scikit-learn, so nothing is downloaded). Inputs are clean images scaled to
[0, 1] plus i.i.d. Gaussian noise of standard deviation ``noise``, drawn once (a fixed training set, so GD sees
one fixed loss); targets are the clean images. The loss uses the library normalisation: the mean over samples
of ``||f(x) - y||^2`` (sum over the 64 pixels, no 1/2), so GD with step ``eta`` is linearly stable at a minimum
only when its top Hessian eigenvalue is at most ``2 / eta``.

``params = (W_1, ..., W_L)`` with ``W_i`` of shape ``(widths[i], widths[i-1])`` as in dlnlab's linear nets, so
:func:`dlnlab.theory.flat.coupling` applies unchanged. dl.train only takes a dl.Objective (linear nets), so the
GD loop lives here (``lax.scan``, jitted once per shape).
"""

from __future__ import annotations

from functools import partial

import jax
import jax.numpy as jnp
import numpy as np
from jax.flatten_util import ravel_pytree
from scipy.sparse.linalg import LinearOperator, eigsh

__all__ = ["digits_denoising", "init", "loss", "train_gd", "top_eigenvalue"]


def digits_denoising(*, n: int | None = None, noise: float = 0.5, seed: int = 0):
    """``(X_noisy, Y_clean)`` of shapes ``(n, 64)`` from ``sklearn.datasets.load_digits`` (bundled data)."""
    from sklearn.datasets import load_digits

    Y = load_digits().data / 16.0
    rng = np.random.default_rng(seed)
    if n is not None:
        Y = Y[rng.permutation(Y.shape[0])[:n]]
    X = Y + noise * rng.normal(size=Y.shape)
    return jnp.asarray(X), jnp.asarray(Y)


def init(key, widths, *, gain: float = np.sqrt(2.0)):
    """He-style Gaussian init ``N(0, gain^2 / fan_in)`` for every layer."""
    keys = jax.random.split(key, len(widths) - 1)
    return tuple(gain / np.sqrt(widths[i]) * jax.random.normal(k, (widths[i + 1], widths[i]))
                 for i, k in enumerate(keys))


def apply(params, X):
    h = X
    for W in params[:-1]:
        h = jax.nn.relu(h @ W.T)
    return h @ params[-1].T


def loss(params, X, Y):
    """Mean over samples of ``||f(x) - y||^2`` (no 1/2)."""
    return jnp.mean(jnp.sum((apply(params, X) - Y) ** 2, axis=1))


@partial(jax.jit, static_argnames=("steps", "record_every"))
def _gd(params, X, Y, lr, steps, record_every):
    vg = jax.value_and_grad(loss)

    def chunk(p, _):
        def one(p, _):
            v, g = vg(p, X, Y)
            return jax.tree.map(lambda w, gw: w - lr * gw, p, g), v

        p, vals = jax.lax.scan(one, p, None, length=record_every)
        return p, (vals[-1], p)

    return jax.lax.scan(chunk, params, None, length=steps // record_every)


def train_gd(params, X, Y, *, lr: float, steps: int, record_every: int):
    """Full-batch GD; returns ``(final params, losses at records, params at records)``."""
    p, (losses, snaps) = _gd(tuple(params), X, Y, lr, steps, record_every)
    return p, np.asarray(losses), snaps


@jax.jit
def _hvp(params, v, X, Y):
    flat, unravel = ravel_pytree(params)
    g = lambda x: ravel_pytree(jax.grad(loss)(unravel(x), X, Y))[0]
    return jax.jvp(g, (flat,), (v,))[1]


def top_eigenvalue(params, X, Y, *, tol: float = 1e-8) -> float:
    """Top Hessian eigenvalue of :func:`loss`: Lanczos (ARPACK) on Hessian-vector products. Same method
    as ``dl.curvature.sharpness(..., method="lanczos")`` but the product is compiled once per shape
    rather than once per call, which matters when sharpness is tracked along training."""
    params = tuple(params)
    n = ravel_pytree(params)[0].size
    op = LinearOperator((n, n), dtype=np.float64,
                        matvec=lambda v: np.asarray(_hvp(params, jnp.asarray(v.ravel()), X, Y)))
    v0 = np.random.default_rng(0).normal(size=n)
    return float(eigsh(op, k=1, which="LA", tol=tol, v0=v0)[0][0])


QUICK = {"n": 400, "noise": 0.5, "widths": (64, 32, 32, 64), "lrs": (0.01, 0.02), "steps": 3000,
         "gain": 0.1, "top": 8, "checkpoints": 3, "n_baseline": 20}
FULL = {"n": 1797, "noise": 0.5, "widths": (64, 32, 32, 64), "lrs": (0.01, 0.02, 0.03), "steps": 10_000,
        "gain": 0.1, "top": 8, "checkpoints": 6, "n_baseline": 50}


def run(cfg: dict, *, seed: int = 0) -> dict:
    """Train one net per step size from the same small init; measure sharpness and coupling.

    Coupling is :func:`dlnlab.theory.flat.subspace_coupling` with ``k = cfg["top"]`` (min over pairs);
    the baseline is its largest value over ``n_baseline`` independent He-initialised nets."""
    from ..theory.flat import subspace_coupling

    X, Y = digits_denoising(n=cfg["n"], noise=cfg["noise"], seed=seed)
    p0 = init(jax.random.key(seed), cfg["widths"], gain=cfg["gain"])
    every = cfg["steps"] // cfg["checkpoints"]
    rows, traj, last = [], [], None
    for lr in cfg["lrs"]:
        p, losses, snaps = train_gd(p0, X, Y, lr=lr, steps=cfg["steps"], record_every=every)
        lam_t = [top_eigenvalue(jax.tree.map(lambda a, k=k: a[k], snaps), X, Y)
                 for k in range(cfg["checkpoints"])]
        traj.append({"lr": lr, "steps": every * np.arange(1, cfg["checkpoints"] + 1), "sharpness": lam_t})
        rows.append({"lr": lr, "sharpness": lam_t[-1], "two_over_eta": 2 / lr,
                     "initial_loss": float(loss(p0, X, Y)), "final_loss": float(losses[-1]),
                     "coupling": float(np.min(subspace_coupling(p, cfg["top"]))),
                     "init_coupling": float(np.min(subspace_coupling(p0, cfg["top"])))})
        last = p
    base = max(float(np.max(subspace_coupling(init(jax.random.key(10_000 + seed + b), cfg["widths"]),
                                              cfg["top"])))
               for b in range(cfg["n_baseline"]))
    return {"rows": rows, "traj": traj, "baseline": base, "n_baseline": cfg["n_baseline"],
            "params": last, "init": p0}

"""A bias-free ReLU MLP denoiser of scikit-learn's 8x8 digits, trained by full-batch gradient descent.

Helper of the mulayoff2020 experiment (the paper's nonlinear experiment denoised MNIST with fully connected ReLU
nets; the 8x8 digits ship inside scikit-learn, so nothing is downloaded). Inputs are clean images scaled to
[0, 1] plus i.i.d. Gaussian noise of standard deviation ``noise``, drawn once (a fixed training set, so GD sees
one fixed loss); targets are the clean images. The loss uses the library normalisation: the mean over samples
of ``||f(x) - y||^2`` (sum over the 64 pixels, no 1/2), so GD with step ``eta`` is linearly stable at a minimum
only when its top Hessian eigenvalue is at most ``2 / eta``.

``params = (W_1, ..., W_L)`` with ``W_i`` of shape ``(widths[i], widths[i-1])`` as in dlnlab's linear nets, so
:func:`dlnlab.theory.flat.coupling` applies unchanged. Training is ``dl.train`` on the loss as a plain callable
(any ``params -> scalar`` trains on the library's engine), bound to the data as a ``jax.tree_util.Partial`` so
the data and the step size are traced: one compiled runner for every step size. Sharpness is
:func:`dlnlab.curvature.sharpness` of the same bound loss, compiled once for every checkpoint and step size.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .. import curvature
from ..train import GD, Record, train
from ._digits import digits

__all__ = ["digits_denoising", "init", "loss", "train_gd", "top_eigenvalue", "random_baseline"]


def digits_denoising(*, n: int | None = None, noise: float = 0.5, seed: int = 0):
    """``(X_noisy, Y_clean)`` of shapes ``(n, 64)`` from scikit-learn's 8x8 digits (bundled data)."""
    Y = digits()[0] / 16.0
    rng = np.random.default_rng(seed)
    if n is not None:
        Y = Y[rng.permutation(Y.shape[0])[:n]]
    X = Y + noise * rng.normal(size=Y.shape)
    return jnp.asarray(X), jnp.asarray(Y)


def init(seed: int, widths, *, gain: float = np.sqrt(2.0)):
    """He-style Gaussian init ``N(0, gain^2 / fan_in)`` for every layer, as NumPy arrays (drawn by a NumPy
    generator seeded by ``seed``: nothing to compile for a handful of draws)."""
    rng = np.random.default_rng(seed)
    return tuple(gain / np.sqrt(widths[i]) * rng.normal(size=(widths[i + 1], widths[i]))
                 for i in range(len(widths) - 1))


def apply(params, X):
    h = X
    for W in params[:-1]:
        h = jax.nn.relu(h @ W.T)
    return h @ params[-1].T


def loss(params, X, Y):
    """Mean over samples of ``||f(x) - y||^2`` (no 1/2)."""
    return jnp.mean(jnp.sum((apply(params, X) - Y) ** 2, axis=1))


def _layers(params) -> dict:
    """The recorded summary: every layer (``"W0"``, ``"W1"``, ...), for the checkpoint measurements."""
    return {f"W{i}": W for i, W in enumerate(params)}


def train_gd(params, X, Y, *, lr: float, steps: int, record_every: int):
    """Full-batch GD by ``dl.train`` on the bound loss; returns ``(final params, losses at the records, params at
    the records)`` with records every ``record_every`` steps (the first after ``record_every`` steps)."""
    run = train(jax.tree_util.Partial(loss, X=X, Y=Y), tuple(params), GD(lr=lr, steps=steps),
                record=Record(times=range(record_every, steps + 1, record_every), summaries=("loss", _layers)))
    snaps = tuple(run.history[f"W{i}"] for i in range(len(params)))
    return run.params, np.asarray(run.history["loss"]), snaps


_loss_jit = jax.jit(loss)


def top_eigenvalue(params, X, Y, *, tol: float = 1e-8) -> float:
    """Top Hessian eigenvalue of :func:`loss` at ``params``: ``dl.curvature.sharpness`` (Lanczos on
    Hessian-vector products) with the data passed as traced arguments, so repeated calls compile once."""
    return curvature.sharpness(jax.tree_util.Partial(loss, X=X, Y=Y), tuple(params), tol=tol)


QUICK = {"n": 200, "noise": 0.5, "widths": (64, 32, 32, 64), "lrs": (0.01, 0.02), "steps": 3000,
         "gain": 0.1, "top": 8, "checkpoints": 3, "n_baseline": 20}
FULL = {"n": 1797, "noise": 0.5, "widths": (64, 32, 32, 64), "lrs": (0.01, 0.02, 0.03), "steps": 10_000,
        "gain": 0.1, "top": 8, "checkpoints": 6, "n_baseline": 50}


def random_baseline(widths, k: int, *, n: int, seed: int = 0) -> np.ndarray:
    """:func:`dlnlab.theory.flat.subspace_coupling` of ``n`` independent He-initialised nets of ``widths``,
    shape ``(n, pairs)``: the null distribution of the coupling statistic for each consecutive pair of exactly
    the trained nets' shapes. Its mean is ``k / h_i`` (``h_i`` the shared width of pair ``i``), since a
    Gaussian matrix's singular subspaces are uniformly distributed and independent of the next layer's.

    >>> random_baseline((64, 32, 32, 64), 8, n=5).shape
    (5, 2)
    """
    from ..theory.flat import subspace_coupling

    return np.asarray([subspace_coupling(init(10_000 + seed + b, widths), k) for b in range(n)])


def run(cfg: dict, *, seed: int = 0) -> dict:
    """Train one net per step size from the same small init; measure sharpness and coupling.

    Coupling is :func:`dlnlab.theory.flat.subspace_coupling` with ``k = cfg["top"]`` per consecutive pair;
    it is compared pair by pair with :func:`random_baseline` (``n_baseline`` nets): ``z`` is
    ``(coupling - baseline mean) / baseline sd`` of that pair, and each row reports its smallest ``z``. The
    trajectory also records the per-pair coupling at every checkpoint (it depends on training time
    ``eta * steps``, see docs/papers/mulayoff2020.md)."""
    from ..theory.flat import subspace_coupling

    X, Y = digits_denoising(n=cfg["n"], noise=cfg["noise"], seed=seed)
    p0 = init(seed, cfg["widths"], gain=cfg["gain"])
    base = random_baseline(cfg["widths"], cfg["top"], n=cfg["n_baseline"], seed=seed)
    mean, sd = base.mean(axis=0), base.std(axis=0, ddof=1)
    every = cfg["steps"] // cfg["checkpoints"]
    rows, traj, last = [], [], None
    for lr in cfg["lrs"]:
        p, losses, snaps = train_gd(p0, X, Y, lr=lr, steps=cfg["steps"], record_every=every)
        lam_t = [top_eigenvalue(tuple(a[k] for a in snaps), X, Y) for k in range(cfg["checkpoints"])]
        coup_t = [subspace_coupling(tuple(a[k] for a in snaps), cfg["top"]) for k in range(cfg["checkpoints"])]
        traj.append({"lr": lr, "steps": every * np.arange(1, cfg["checkpoints"] + 1), "sharpness": lam_t,
                     "coupling": np.asarray(coup_t), "losses": losses})
        c = subspace_coupling(p, cfg["top"])
        row = {"lr": lr, "steps": cfg["steps"], "eta_times_steps": lr * cfg["steps"], "sharpness": lam_t[-1],
               "two_over_eta": 2 / lr, "initial_loss": float(_loss_jit(p0, X, Y)), "final_loss": float(losses[-1]),
               "coupling": float(np.min(c)), "init_coupling": float(np.min(subspace_coupling(p0, cfg["top"]))),
               "z_min": float(np.min((c - mean) / sd))}
        row.update({f"coupling_pair{i + 1}": float(v) for i, v in enumerate(c)})
        rows.append(row)
        last = p
    return {"rows": rows, "traj": traj, "baseline_mean": mean, "baseline_sd": sd,
            "baseline_max": base.max(axis=0), "n_baseline": cfg["n_baseline"], "params": last, "init": p0}

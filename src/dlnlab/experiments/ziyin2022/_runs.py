"""The trained runs of ziyin2022 (every one through ``dl.train`` / ``dl.train_batched``), as pieces the runner
stores (``ctx.cached``): plain-data configs in, dicts of arrays out.

- :func:`gd_depth`: one batched full-batch GD call per depth on the exact (noise-free) loss: a small and a
  near-minimum init at every weight decay of the phase diagram, and the initialisation study (several schemes and
  seeds at a few weight decays below ``gamma*``).
- :func:`sweep`: the adiabatic up/down sweep of the weight decay in one run (a scheduled optax transform).
- :func:`sgd_dropout`: SGD with sampled dropout masks from random inits.
- :func:`structure`: GD on the exact noise-averaged loss from random inits, final weights kept (rank one, equal
  neuron magnitudes, balance).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ...nets import Net, end_to_end
from ...objective import Objective
from ...problems import Dropout, Regression
from ...theory import exact
from ...train import GD, SGD, Record, train, train_batched

__all__ = ["problem", "scalar_problem", "widths_for", "scheduled_decay", "gd_depth", "sweep", "sgd_dropout",
           "structure", "INIT_SCHEMES", "KINDS"]

LR = 0.03
KINDS = ("small", "near", "init")
INIT_SCHEMES = ("fan_in_0.02", "fan_in_0.1", "fan_in_1", "xavier")  # the initialisation study's schemes


def problem() -> Regression:
    """Anisotropic 3-D regression: rotated ``Sxx`` (eigenvalues 1, 0.5, 0.2), a linear teacher, label noise 0.2."""
    c, s = math.cos(0.6), math.sin(0.6)
    R = np.array([[c, -s, 0.0], [s, c, 0.0], [0.0, 0.0, 1.0]])
    A = R @ np.diag([1.0, 0.5, 0.2]) @ R.T
    w = np.array([1.0, -0.5, 0.5])
    return Regression.from_moments(A, (A @ w)[None], float(w @ A @ w + 0.2))


def scalar_problem() -> Regression:
    """The isotropic scalar problem ``E x^2 = E xy = E y^2 = 1``."""
    return Regression.from_moments(np.eye(1), np.ones((1, 1)), 1.0)


def widths_for(hidden_layers: int, h: int, d_in: int = 3) -> tuple[int, ...]:
    """Library widths of a net with ``hidden_layers`` (the paper's D) hidden layers of width ``h``: L = D + 1."""
    return (d_in,) + (h,) * hidden_layers + (1,)


def _init(net, key, scheme: str):
    if scheme == "xavier":
        return net.init(key, scheme="xavier")
    return net.init(key, scheme="fan_in", scale=float(scheme.split("_")[-1]))


def _perturbed(params, key, scale, noise):
    keys = jax.random.split(key, len(params))
    return tuple(scale * W + noise * jax.random.normal(k, W.shape) for W, k in zip(params, keys, strict=True))


def gd_depth(*, hidden_layers: int, width: int, fracs, small_scheme: str, init_fracs, init_schemes, init_seeds: int,
             steps: int, seed: int) -> dict:
    """GD (lr 0.03) on :func:`problem` at weight decays ``frac * gamma*`` from (a) a small init, (b) a shrunken,
    perturbed copy of the largest nonzero minimum (or a gain-1 init where there is none), and (c) ``init_seeds``
    draws of every scheme in ``init_schemes`` at every ``init_fracs``. Per run: kind (index in KINDS), frac,
    scheme index, final loss, order parameter ``sum_l ||W_l||_F^2``, ``||v||``, diverged."""
    prob, widths = problem(), widths_for(hidden_layers, width)
    net = Net(widths)
    crit = exact.critical_weight_decay(prob, widths).critical
    base = jax.random.key(seed * 1009 + hidden_layers)
    rows, objs, inits = [], [], []
    for i, f in enumerate(fracs):
        g = f * crit
        sol = exact.solve(prob, widths, g)
        mins = [p for p in sol.stationary_points if p.kind == "minimum" and p.t > 0]
        k1, k2 = jax.random.split(jax.random.fold_in(base, i))
        near = _perturbed(sol.params(mins[-1]), k2, 0.6, 0.02) if mins else _init(net, k2, "fan_in_1")
        for kind, p in ((0, _init(net, k1, small_scheme)), (1, near)):
            rows.append((kind, f, -1))
            objs.append(Objective(prob, weight_decay=g))
            inits.append(p)
    for f in init_fracs:
        for j, scheme in enumerate(init_schemes):
            for s in range(init_seeds):
                rows.append((2, f, j))
                objs.append(Objective(prob, weight_decay=f * crit))
                inits.append(_init(net, jax.random.fold_in(base, 10_000 + 100 * j + s), scheme))
    runs = train_batched(objs, inits, GD(lr=LR, steps=steps), record=Record(n=2))
    rows = np.array(rows, dtype=float)
    return {"kind": rows[:, 0], "frac": rows[:, 1], "scheme": rows[:, 2],
            "loss": np.array([r.final_loss for r in runs]),
            "op": np.array([sum(float(jnp.sum(W ** 2)) for W in r.params) for r in runs]),
            "norm_v": np.array([float(jnp.linalg.norm(end_to_end(r.params))) for r in runs]),
            "diverged": np.array([r.status == "diverged" for r in runs], dtype=float)}


def scheduled_decay(levels, per: int) -> optax.GradientTransformation:
    """Adds the weight-decay gradient ``2 gamma_j W`` with ``gamma_j = levels[step // per]`` (held at the last
    level afterwards): GD on an objective without decay follows a staircase in gamma."""
    gam = jnp.asarray(levels, dtype=float)

    def init(params):
        return jnp.zeros((), jnp.int32)

    def update(updates, count, params=None):
        g = gam[jnp.minimum(count // per, gam.shape[0] - 1)]
        return jax.tree.map(lambda u, p: u + 2.0 * g * p, updates, params), count + 1

    return optax.GradientTransformation(init, update)


def sweep_levels(hidden_layers: int, width: int, n: int) -> np.ndarray:
    """gamma from 0.5 gamma* up past the spinodal (n levels below it, two above), then back down."""
    crit = exact.critical_weight_decay(problem(), widths_for(hidden_layers, width))
    up = np.concatenate([np.linspace(0.5 * crit.critical, 0.97 * crit.spinodal, n),
                         [1.03 * crit.spinodal, 1.25 * crit.spinodal]])
    return np.concatenate([up, up[-2::-1]])


def sweep(*, hidden_layers: int, width: int, n: int, per: int, seed: int) -> dict:
    """One GD run through the staircase :func:`sweep_levels` from a perturbed minimum at the first level; the order
    parameter at the end of every level."""
    prob, widths = problem(), widths_for(hidden_layers, width)
    levels = sweep_levels(hidden_layers, width, n)
    opt = optax.chain(scheduled_decay(levels, per), optax.sgd(LR))
    p0 = _perturbed(exact.solve(prob, widths, levels[0]).params(), jax.random.key(seed + 7), 1.0, 1e-3)
    run = train(Objective(prob), p0, GD(optimizer=opt, steps=per * len(levels)),
                record=Record(n=len(levels), summaries=("loss", "layer_norms")))
    ops = np.sum(np.asarray(run.history["layer_norms"]) ** 2, axis=1)[1:]
    return {"levels": levels, "ops": ops}


def _end_to_end_row(params) -> dict:
    return {"v": end_to_end(params)[0]}


def sgd_dropout(*, p: float, frac: float, width: int, runs: int, steps: int, lr: float, seed: int) -> dict:
    """SGD with sampled inverted-dropout masks (two hidden layers) from gain-1 fan-in inits: the recorded mean
    end-to-end map over the second half of every run."""
    prob, noise, widths = problem(), Dropout(p), widths_for(2, width)
    g = frac * exact.critical_weight_decay(prob, widths, noise).critical
    net = Net(widths)
    inits = [net.init(jax.random.key(1000 * seed + 50 + i), scheme="fan_in", scale=1.0) for i in range(runs)]
    out = train_batched(Objective(prob, weight_decay=g, noise=noise), inits, SGD(lr=lr, steps=steps),
                        record=Record(n=200, summaries=("loss", _end_to_end_row)), key=seed + 5)
    return {"v": np.stack([np.asarray(r.history["v"])[len(r.times) // 2:] for r in out])}


def structure(*, hidden_layers: int, width: int, p: float, frac: float, seeds: int, steps: int, seed: int) -> dict:
    """GD on the exact dropout-averaged loss (and, as a control, the same nets without noise) from gain-1 fan-in
    inits: the final weights of every run (``params_noisy`` / ``params_clean``: per layer, stacked over runs)."""
    prob, widths = problem(), widths_for(hidden_layers, width, 3)
    net = Net(widths)
    inits = [net.init(jax.random.key(1000 * seed + 300 + i), scheme="fan_in", scale=1.0) for i in range(seeds)]
    out = {}
    for tag, noise in (("noisy", Dropout(p)), ("clean", None)):
        g = frac * exact.critical_weight_decay(prob, widths, noise).critical
        runs = train_batched(Objective(prob, weight_decay=g, noise=noise), inits, GD(lr=LR, steps=steps),
                             record=Record(n=2))
        out[f"params_{tag}"] = tuple(np.stack([np.asarray(r.params[i]) for r in runs]) for i in range(len(widths) - 1))
        out[f"loss_{tag}"] = np.array([r.final_loss for r in runs])
    return out

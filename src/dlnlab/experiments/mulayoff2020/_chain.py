"""The scalar chain of mulayoff2020's stability claims: ``L(w) = (w_3 w_2 w_1 - t)^2`` (``sigma_xx = 1``).

GD with step ``eta`` can converge only to minima with sharpness ``<= 2 / eta``; the flattest minimum has
sharpness ``lambda* = 2 N t^(2 - 2/N)`` (library loss, no 1/2), so GD converges iff ``eta < 2 / lambda*``.
Every run goes through ``dl.train_batched`` (one compiled loop per batch shape); the sharpness along a run is
the library's ``"sharpness"`` summary (exact here: 3 parameters).

Convergence is read from the gradient norm, not the loss: the moment-based loss ``sxx p^2 - 2 sxy p + syy``
cancels to rounding (~1e-15) once ``|p - t| < 3e-8``, while the gradient ``2 (p - t) p / w_i`` resolves
``|p - t|`` to ~1e-16. A run converged when its gradient norm is below ``GRAD_TOL`` at both of its last two
records (a transient pass near an unstable minimum grows by at least ``(1 + 2 delta)`` per step and does not
survive ``steps / 4`` steps). The horizon sets a floor on the boundary's precision: near the flattest minimum the
slowest contraction at ``eta = (1 - delta) eta_c`` is ``1 - 2 delta`` per step, so a run that starts at gradient
norm ``g0`` cannot reach ``GRAD_TOL`` within ``steps`` steps unless ``delta >= log(g0 / GRAD_TOL) / (2 steps)``
(:func:`horizon_floor`); the measured boundary lies at most that far below ``eta_c``.
"""

from __future__ import annotations

import numpy as np

from ...objective import Objective
from ...problems import Regression
from ...train import GD, Record, train_batched

__all__ = ["T_CHAIN", "DEPTH", "GRAD_TOL", "chain_problem", "chain_runs", "chain_trajectories", "horizon_floor",
           "perturbed_flattest", "random_starts"]

T_CHAIN = 2.0
DEPTH = 3
GRAD_TOL = 1e-10


def chain_problem() -> Regression:
    return Regression.from_moments([[1.0]], [[T_CHAIN]], T_CHAIN**2)


def chain_runs(*, starts, lrs, steps: int, records: int = 4) -> dict:
    """GD on the scalar chain from each start (a list of 3 floats) at each step size, in one batched call:
    final weights, whether each run converged (see the module docstring), and its final sharpness."""
    obj = Objective(chain_problem())
    inits = [tuple(np.full((1, 1), float(w)) for w in s) for s in starts]
    every = steps // records
    runs = train_batched(obj, inits, [GD(lr=float(lr), steps=steps) for lr in lrs],
                         record=Record(times=range(0, steps + 1, every), summaries=("grad_norm", "sharpness")))
    conv, lam, g0 = [], [], []
    for r in runs:
        g = np.asarray(r.history["grad_norm"])
        conv.append(r.status != "diverged" and len(g) >= 2 and bool(np.all(g[-2:] <= GRAD_TOL))
                    and int(np.asarray(r.times)[-1]) == steps)
        lam.append(float(np.asarray(r.history["sharpness"])[-1]))
        g0.append(float(g[0]))
    return {"converged": np.array(conv), "sharpness": np.array(lam), "grad_norm0": np.array(g0),
            "w": np.array([[float(np.asarray(W).ravel()[0]) for W in r.params] for r in runs])}


def chain_trajectories(*, start, lrs, steps: int) -> dict:
    """Sharpness at every GD step from one start at several step sizes (the figure)."""
    obj = Objective(chain_problem())
    init = tuple(np.full((1, 1), float(w)) for w in start)
    runs = train_batched(obj, [init] * len(lrs), [GD(lr=float(lr), steps=steps) for lr in lrs],
                         record=Record(times=range(steps + 1), summaries=("sharpness",)))
    T_ = steps + 1
    lam = np.full((len(lrs), T_), np.nan)
    for j, r in enumerate(runs):
        s = np.asarray(r.history["sharpness"])
        lam[j, : len(s)] = s
    return {"sharpness": lam}


def horizon_floor(g0, steps: int) -> float:
    """Relative distance below ``eta_c`` within which GD cannot converge in ``steps`` steps (module docstring)."""
    return float(np.log(np.max(g0) / GRAD_TOL) / (2 * steps))


def perturbed_flattest(rng, n: int) -> list[list[float]]:
    """``n`` starts near the flattest minimum ``w_i = t^(1/N)``: moved along the minima manifold by ~1e-3 and off
    it by a factor 1.002 per layer (no start is a minimum)."""
    w_flat = T_CHAIN ** (1 / DEPTH)
    out = []
    for _ in range(n):
        d = 1e-3 * rng.normal(size=DEPTH)
        out.append([float(1.002 * w_flat * np.exp(x)) for x in d - d.mean()])
    return out


def random_starts(rng, n: int) -> list[list[float]]:
    return [[float(w) for w in rng.uniform(0.5, 2.0, size=DEPTH)] for _ in range(n)]

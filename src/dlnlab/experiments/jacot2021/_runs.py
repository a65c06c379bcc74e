"""jacot2021: the problems, and the gradient-flow runs as stored pieces (``ctx.cached``).

Every piece is a function of plain numbers (the seed and the sizes) returning a dict of arrays: for each run its
record ``times``, its ``history`` (loss, end-to-end singular values, balancedness, and the end-to-end matrix and
layer singular values of :func:`dlnlab.diagnostics.plateau_summaries`), its final ``params`` and its status. The
theory a piece needs to choose horizons (:mod:`dlnlab.theory.saddles`) is computed inside it, so claims that
re-read the theory (or a test that plants an error in it) reuse the stored runs.

Runs go one at a time through ``dl.train`` (Flow, log-spaced records). ``dl.train_batched`` would integrate a
group in one vmapped call, but the runs of a group have horizons that differ by orders of magnitude, and a
vmapped adaptive solver takes the smallest step of the batch for every run until the last one ends; the
wide (width 1024) depth-2 runs also record layer SVDs, and jaxlib's batched CPU SVD inside a solver loop has
deadlocked its thread pool on 2 cores (seen at width 256).
"""

from __future__ import annotations

import numpy as np

from ...diagnostics import detect_plateaus, plateau_summaries
from ...errors import NumericalError
from ...objective import Objective
from ...problems import MatrixCompletion, Regression
from ...theory import saddles as sd
from ...train import Flow, Record, Stop, train

__all__ = ["regression_problem", "completion_problem", "staircase_runs", "depth4_runs", "depth2_runs",
           "completion_runs", "as_run", "thresholds", "escape_time", "embedded_inits", "depth2_cells"]


def regression_problem(seed: int = 0, *, mu=(4.0, 3.0, 2.0, 1.0), lam=(3.0, 1.5, 1.0, 0.6, 0.3),
                       noise: float = 0.5) -> Regression:
    """Correlated inputs: ``Sxx = Q diag(lam) Q^T`` and ``Syx = M diag(lam)^(1/2) Q^T`` with
    ``M = U diag(mu) Z^T``, so the reduced-rank-regression singular values are ``mu`` and the saddle
    losses are ``Syy - sum_{i<=k} mu_i^2`` (``Syy = sum mu^2 + noise``)."""
    rng = np.random.default_rng(seed)
    d_in, d_out = len(lam), len(mu)
    Q, _ = np.linalg.qr(rng.normal(size=(d_in, d_in)))
    U, _ = np.linalg.qr(rng.normal(size=(d_out, d_out)))
    Z, _ = np.linalg.qr(rng.normal(size=(d_in, d_out)))
    M = U @ np.diag(mu) @ Z.T
    Syx = M @ np.diag(np.sqrt(lam)) @ Q.T
    Sxx = Q @ np.diag(lam) @ Q.T
    return Regression.from_moments(Sxx, Syx, float(np.sum(np.square(mu)) + noise))


def completion_problem(seed: int = 0, *, n: int = 20, rank: int = 2, observed: float = 0.5):
    """A rank-``rank`` ``n x n`` target with singular values ``n * (1, 0.6, ...)`` and a random mask."""
    rng = np.random.default_rng(seed + 1)
    U, _ = np.linalg.qr(rng.normal(size=(n, rank)))
    V, _ = np.linalg.qr(rng.normal(size=(n, rank)))
    s = n * 0.6 ** np.arange(rank)
    return MatrixCompletion(U @ np.diag(s) @ V.T, rng.random((n, n)) < observed)


def _direction(widths, seed):
    """A fixed random direction ``theta_hat`` with N(0, 1) entries (scaled by sigma per run); ``W_i`` is
    ``widths[i+1] x widths[i]``. Drawn with NumPy: a JAX draw compiles once per layer shape (about a second
    each)."""
    rng = np.random.default_rng(seed)
    return tuple(rng.normal(size=(b, a)) for a, b in zip(widths[:-1], widths[1:], strict=True))


def _flow(obj, inits, t1, n_save, decades=5.0, summaries=None, loss_threshold=None) -> dict:
    """One gradient-flow run per init, run ``i`` to ``t1[i]`` (or a shared ``t1``), records at ``t = 0`` and at
    ``n_save`` log-spaced times over the last ``decades[i]`` (or a shared number) decades before it; returned as
    ``{"run<i>": {"times", "history", "params", "final_loss"}}``."""
    record_what = ("loss", "singular_values", "balancedness") + ((summaries,) if summaries is not None else ())
    stop = Stop(loss=loss_threshold)
    t1 = np.broadcast_to(np.asarray(t1, dtype=float), (len(inits),))
    decades = np.broadcast_to(np.asarray(decades, dtype=float), (len(inits),))
    runs = {}
    for i, (p, T, dec) in enumerate(zip(inits, t1, decades, strict=True)):
        save_at = np.concatenate([[0.0], np.geomspace(T * 10.0**-dec, T, n_save)])
        # Tiny inits need relative error control only: the default absolute tolerance would swamp them.
        r = train(obj, tuple(p), Flow(t1=float(T), rtol=1e-8, atol=1e-30, max_steps=200_000),
                  record=Record(times=save_at, summaries=record_what), stop=stop)
        if r.status in ("diverged", "failed"):
            raise NumericalError(f"jacot2021: a gradient-flow run ended with status {r.status!r}: {r.message}")
        runs[f"run{i}"] = {"times": np.asarray(r.times), "params": tuple(np.asarray(W) for W in r.params),
                           "history": {k: np.asarray(v) for k, v in r.history.items()},
                           "final_loss": np.asarray(r.final_loss)}
    return runs


def as_run(piece: dict, i: int):
    """Run ``i`` of a stored piece as an object :func:`dlnlab.diagnostics.detect_plateaus` reads."""
    from types import SimpleNamespace

    r = piece[f"run{i}"]
    return SimpleNamespace(times=np.asarray(r["times"]), history=r["history"], params=r["params"],
                           final_loss=float(r["final_loss"]))


def thresholds(seq):
    return [np.linalg.norm(seq[k].end_to_end - seq[k - 1].end_to_end, 2) / 2 for k in range(1, len(seq))]


def staircase_runs(*, seed: int, sigmas, n_save: int, escape_draws: int) -> dict:
    """Depth 3, width 10, correlated regression: one full staircase per sigma (direction ``seed``), and
    ``escape_draws - 1`` more directions at the smallest sigma, each stopped just after its first escape."""
    prob = regression_problem(seed)
    seq = sd.saddle_sequence(prob)
    w, L = 10, 3
    widths = (prob.d_in,) + (w,) * (L - 1) + (prob.d_out,)
    base = _direction(widths, seed)
    horizons = [4.0 * sd.predicted_escape_times(prob, depth=L, sigma=s, width=w, saddles=seq)[-1] for s in sigmas]
    obj = Objective(prob)
    # Records over the last 2.5 decades of the horizon (the first escape is predicted at about 6 % of it),
    # dense enough to catch the fast depth-3 escape; stop at convergence (past it an explicit solver crawls).
    stair = _flow(obj, [tuple(s * W for W in base) for s in sigmas], horizons, 3 * n_save, decades=2.5,
                  summaries=plateau_summaries, loss_threshold=seq[-1].loss + 1e-10 * seq[0].loss)
    s0 = float(np.min(sigmas))
    t_first = 3.0 * sd.predicted_escape_times(prob, depth=L, sigma=s0, width=w, saddles=seq)[0]
    extra = _flow(obj, [tuple(s0 * W for W in _direction(widths, 7919 * (d + 1) + seed))
                        for d in range(escape_draws - 1)], t_first, 3 * n_save, decades=2.5,
                  summaries=plateau_summaries, loss_threshold=seq[1].loss + 0.01 * (seq[0].loss - seq[1].loss))
    return {"stair": stair, "escape": extra}


def depth4_runs(*, seed: int, sigmas, n_save: int) -> dict:
    """Depth 4, width 10: each run stopped just past its first escape."""
    prob = regression_problem(seed)
    seq = sd.saddle_sequence(prob)
    w, L = 10, 4
    base = _direction((prob.d_in,) + (w,) * (L - 1) + (prob.d_out,), seed + L)
    horizons = [3.0 * sd.predicted_escape_times(prob, depth=L, sigma=s, width=w, saddles=seq)[0] for s in sigmas]
    return _flow(Objective(prob), [tuple(s * W for W in base) for s in sigmas], horizons, n_save,
                 loss_threshold=seq[1].loss + 0.01 * (seq[0].loss - seq[1].loss))


def embedded_inits(prob, cells, width, seed):
    """Depth-2 inits of widths ``w <= width`` padded with zero neurons to ``width``: a zero neuron receives zero
    gradient, so each run is exactly the width-``w`` flow (the paper's inclusion symmetry) and one compiled
    runner serves every cell. ``cells``: (w, sigma, draw) triples."""
    inits = []
    for w, sigma, draw in cells:
        rng = np.random.default_rng(1000 * w + draw + seed)
        W1, W2 = np.zeros((width, prob.d_in)), np.zeros((prob.d_out, width))
        W1[:w] = sigma * rng.normal(size=(w, prob.d_in))
        W2[:, :w] = sigma * rng.normal(size=(prob.d_out, w))
        inits.append((W1, W2))
    return inits


def depth2_cells(widths, gammas, draws):
    return [(int(w), float(w) ** (-g / 2), d) for w in widths for g in gammas for d in range(draws)]


def depth2_runs(*, seed: int, sigmas, widths, gammas, draws: int, n_save: int) -> dict:
    """Depth 2, all embedded in width ``max(widths)``: escape-law runs (w = 10, one per sigma) to three times their
    predicted first escape, records over the last 1.5 decades; phase-diagram runs (every width, gamma, draw with
    ``sigma^2 = w^-gamma``) to one shared horizon (lazy inits have no predicted plateau to scale it by), records
    over two decades, stopped at convergence."""
    prob = regression_problem(seed)
    seq = sd.saddle_sequence(prob)
    big = int(max(widths))
    esc_cells = [(10, float(s), 0) for s in sigmas]
    cells = depth2_cells(widths, gammas, draws)

    def horizon(w, s, k):
        return 3.0 * sd.predicted_escape_times(prob, depth=2, sigma=s, width=w, saddles=seq)[k]

    t_cells = max(horizon(w, s, -1) for w, s, _ in cells)
    inits = embedded_inits(prob, esc_cells + cells, big, seed)
    return _flow(Objective(prob), inits, [horizon(w, s, 0) for w, s, _ in esc_cells] + [t_cells] * len(cells),
                 n_save, decades=[1.5] * len(esc_cells) + [2.0] * len(cells), summaries=plateau_summaries,
                 loss_threshold=seq[-1].loss + 1e-10 * seq[0].loss)


def completion_runs(*, seed: int, small: float, large: float, width: int) -> dict:
    """Depth 3 matrix completion from a small and a large init (same direction), to convergence."""
    prob = completion_problem(seed)
    seq = sd.saddle_sequence(prob)
    n, L = prob.d_in, 3
    base = _direction((n, width, width, n), seed)
    c0 = float(prob.cost(np.zeros((n, n))))
    t_pred = sd.predicted_escape_times(prob, depth=L, sigma=small, width=width, saddles=seq)
    return _flow(Objective(prob), [tuple(small * W for W in base), tuple(large * W for W in base)],
                 4.0 * t_pred[-1], 300, summaries=plateau_summaries, loss_threshold=1e-12 * c0)


def escape_time(run, level):
    """First time ``s_1(A_t)`` exceeds ``level`` (log-interpolated between records)."""
    jumps = detect_plateaus(run, thresholds=[level]).jump_times
    return float(jumps[0]) if jumps.size else np.nan



"""Experiment "jacot2021": saddle-to-saddle dynamics, incremental rank and the gamma = 1 transition.

Reference: A. Jacot, F. Ged, B. Simsek, C. Hongler, F. Gabriel, "Saddle-to-Saddle Dynamics in Deep
Linear Networks: Small Initialization Training, Symmetry, and Sparsity", arXiv:2106.15933 (2021).

Everything runs in the library's normalisation (squared loss with no 1/2, so the gradient flow runs
twice as fast as the paper's 1/2-normalised flow; escape speeds ``S`` are top singular values of
``-grad C``, twice the paper's). Runs use gradient flow (``dl.train(obj, p0, dl.Flow(...))``, log-spaced records)
from ``theta_0 = sigma * theta_hat`` with one fixed direction ``theta_hat`` per group. Compilation dominates
the quick mode, so there is one net shape per group: four compiled runners in all (depth 3, depth 4, depth 2
embedded in width 1024, and the completion net).

Problems: a correlated-input regression (``Sxx`` anisotropic, so the saddles are reduced-rank
regression solutions, not truncations of ``Syx``) and a 20 x 20 rank-2 matrix completion.

Claims (``ctx.quick`` shrinks the grids, not the tolerances):

1. ``staircase``: at small init the singular values are learned one at a time, largest first, and the
   plateau losses equal the saddle losses ``C(A_k)``, the error shrinking as sigma decreases.
2. ``escape_depth{2,3,4}``: depth 2: the first escape time grows linearly in ``log(1/sigma)`` with slope
   ``1/S`` (``2/S`` in the paper's time); depth 3, 4: a power ``L - 2`` of ``1/sigma`` (fits within
   10%).
3. ``saddle_distance_exponent``, ``lazy_regime``, ``plateau_width_law``,
   ``nearest_critical_set``: width ``w`` up to 1024 and ``sigma^2 = w^-gamma``.
4. ``completion_small_init`` and ``completion_large_init``: low-rank recovery vs full-rank
   interpolation.
5. ``plateau_states``, ``plateau_states_completion``: plateau states equal the saddle (reduced-rank or
   greedy) matrices and every layer has numerical rank k on plateau k.
6. ``first_escape``: the first escape follows the top singular pair of ``-grad C(0)``, balanced and rank
   one in every layer.
"""

from __future__ import annotations

import numpy as np

from ..diagnostics._plateaus import detect_plateaus, plateau_summaries
from ..errors import NumericalError
from ..objective import Objective
from ..problems import MatrixCompletion, Regression
from ..theory import saddles as sd
from ..train import Flow, Record, Stop, train
from ._base import Context, Experiment, register

__all__ = ["EXPERIMENT", "regression_problem", "completion_problem"]

BIBTEX = """@article{jacot2021saddle,
  title   = {Saddle-to-Saddle Dynamics in Deep Linear Networks: Small Initialization Training,
             Symmetry, and Sparsity},
  author  = {Jacot, Arthur and Ged, Fran{\\c{c}}ois and {\\c{S}}im{\\c{s}}ek, Berfin and Hongler,
             Cl{\\'e}ment and Gabriel, Franck},
  journal = {arXiv preprint arXiv:2106.15933},
  year    = {2021}
}"""

SLOPE_TOL = 0.10


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


def _flow(obj, inits, t1, n_save, decades=5.0, summaries=None, loss_threshold=None):
    """One gradient-flow run per init, run ``i`` to ``t1[i]`` (or a shared ``t1``), records at ``t = 0`` and
    at ``n_save`` log-spaced times over the last ``decades[i]`` (or a shared number) decades before it.

    Runs go one at a time through ``dl.train``: the final time and record times are traced, so every run of
    one net shape reuses one compiled runner, and an unbatched runner compiles in about 2/3 of the time of a
    vmapped one (runs here are short, so batching saves little run time). It also keeps the layer SVDs of
    ``plateau_summaries`` unbatched: jaxlib's batched CPU SVD can deadlock its thread pool inside a solver loop
    on wide layers (seen at width 256 on 2 cores)."""
    record_what = ("loss", "singular_values", "balancedness") + ((summaries,) if summaries is not None else ())
    stop = Stop(loss=loss_threshold)
    t1 = np.broadcast_to(np.asarray(t1, dtype=float), (len(inits),))
    decades = np.broadcast_to(np.asarray(decades, dtype=float), (len(inits),))
    runs = []
    for p, T, dec in zip(inits, t1, decades, strict=True):
        save_at = np.concatenate([[0.0], np.geomspace(T * 10.0**-dec, T, n_save)])
        # Tiny inits need relative error control only: the default absolute tolerance would swamp them.
        r = train(obj, p, Flow(t1=float(T), rtol=1e-8, atol=1e-30, max_steps=200_000),
                  record=Record(times=save_at, summaries=record_what), stop=stop)
        if r.status in ("diverged", "failed"):
            raise NumericalError(f"jacot2021: a gradient-flow run ended with status {r.status!r}: {r.message}")
        runs.append(r)
    return runs


def _escape_time(run, level):
    """First time ``s_1(A_t)`` exceeds ``level`` (log-interpolated between records)."""
    jumps = detect_plateaus(run, thresholds=[level]).jump_times
    return float(jumps[0]) if jumps.size else np.nan


def _fit(x, y):
    return float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])


def _sizes(ctx):
    if ctx.quick:
        return dict(sig3=np.geomspace(1e-3, 3e-2, 4), sig2=np.geomspace(1e-12, 1e-3, 5),
                    sig4=np.geomspace(5e-3, 4e-2, 4), widths=(16, 64, 256, 1024),
                    gammas=(0.5, 0.75, 1.5, 2.0), seeds=2, n_save=300, n_save_d2=40, dist_widths=(16, 64, 256, 1024))
    return dict(sig3=np.geomspace(3e-4, 3e-2, 7), sig2=np.geomspace(1e-14, 1e-3, 7),
                sig4=np.geomspace(2e-3, 4e-2, 6), widths=(16, 64, 256, 1024),
                gammas=(0.5, 0.75, 1.25, 1.5, 2.0, 2.5), seeds=3, n_save=600, n_save_d2=80,
                dist_widths=(16, 64, 256, 1024, 4096))


# -- claims 1, 2 (depth 3), 5, 6: the depth-3 staircase on correlated regression -------------------
def step_staircase(ctx: Context) -> None:
    import matplotlib.figure

    size = _sizes(ctx)
    prob = regression_problem(ctx.seed)
    seq = sd.saddle_sequence(prob)
    K = len(seq) - 1
    w, L = 10, 3
    widths = (prob.d_in,) + (w,) * (L - 1) + (prob.d_out,)
    base = _direction(widths, ctx.seed)
    sigmas = size["sig3"]
    horizons = [4.0 * sd.predicted_escape_times(prob, depth=L, sigma=s, width=w, saddles=seq)[-1] for s in sigmas]
    runs = _flow(Objective(prob), [tuple(sigma * W for W in base) for sigma in sigmas],
                 # Records over the last 2.5 decades of the horizon (the first escape is predicted at about
                 # 6% of it): dense enough to catch the fast depth-3 escape.
                 horizons, 3 * size["n_save"], decades=2.5, summaries=plateau_summaries,
                 # Stop at convergence: past it an explicit solver crawls at its stability limit.
                 loss_threshold=seq[-1].loss + 1e-10 * seq[0].loss)
    levels = np.array([np.linalg.norm(seq[k].end_to_end - seq[k - 1].end_to_end, 2) / 2
                       for k in range(1, K + 1)])
    theory_losses = np.array([s.loss for s in seq[:K]])
    c0 = seq[0].loss
    found = [detect_plateaus(r, thresholds=levels) for r in runs]
    errs = [float(np.max(np.abs(f.losses[:K] - theory_losses)) / c0) if len(f.jump_times) == K
            else np.inf for f in found]
    small = np.argsort(sigmas)[:3]
    stair_ok = all(found[i].is_staircase and len(found[i].jump_times) == K for i in small)
    i0 = int(np.argmin(sigmas))
    ctx.claim(
        "staircase",
        "small init (depth 3, correlated inputs): singular values learned one at a time, largest "
        "first; plateau losses = reduced-rank-regression saddle losses C(A_k) (max error / C(0) at "
        "the smallest sigma), error shrinking with sigma",
        expected={"plateau_losses": theory_losses, "jumps": K},
        measured={"plateau_losses": found[i0].losses[:K], "rel_error_by_sigma": dict(
            zip([f"{s:.1e}" for s in sigmas], errs, strict=True)), "staircase": stair_ok},
        tolerance=5e-3,
        passed=stair_ok and errs[i0] <= 5e-3 and errs[i0] < errs[int(np.argmax(sigmas))],
    )
    # Claim 5 (regression part): plateau states are the saddles; every layer has rank k.
    f0 = found[i0]
    state_err = [float(np.linalg.norm(f0.plateaus[k].end_to_end - seq[k].end_to_end)
                       / np.linalg.norm(seq[k].end_to_end)) for k in range(1, K)]
    ranks = f0.layer_ranks[1:K]
    ranks_ok = all(r == (k,) * L for k, r in enumerate(ranks, start=1))
    ctx.claim(
        "plateau_states",
        "plateau states = reduced-rank-regression saddles A_k (relative Frobenius error) and every "
        "layer has numerical rank k on plateau k (depth 3, smallest sigma)",
        expected={"rel_error": 0.0, "layer_ranks": [[k] * L for k in range(1, K)]},
        measured={"rel_error": state_err, "layer_ranks": [list(r) for r in ranks]},
        tolerance=1e-2, passed=ranks_ok and max(state_err) <= 1e-2,
    )
    _claim_first_escape(ctx, _first_escape(runs[i0], seq, L), L)
    # Claim 2 at depth 3 from the same runs.
    t1s = np.array([_escape_time(r, levels[0]) for r in runs])
    slope = _fit(np.log(1 / sigmas), np.log(t1s))
    ctx.claim(
        "escape_depth3",
        "depth 3: first escape time ~ sigma^-(L-2): slope of log J_1 vs log(1/sigma)",
        expected=1.0, measured=slope, tolerance=SLOPE_TOL,
        passed=abs(slope - 1.0) <= SLOPE_TOL,
    )
    ctx.table("escape_times", [{"depth": L, "sigma": s, "J1": t} for s, t in zip(sigmas, t1s, strict=True)])
    ctx.table("plateaus", [{"sigma": sigmas[i], "rank": p.rank, "loss": p.loss,
                            "theory": theory_losses[p.rank] if p.rank < K else seq[-1].loss}
                           for i in range(len(runs)) for p in found[i].plateaus])
    fig = matplotlib.figure.Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for c, i in enumerate(np.argsort(sigmas)[::2]):
        r = runs[i]
        ax1.loglog(r.times[1:], r.history["loss"][1:] - seq[-1].loss + 1e-12, color=f"C{c}",
                   label=f"sigma={sigmas[i]:.0e}")
        ax2.loglog(r.times[1:], r.history["singular_values"][1:], color=f"C{c}", lw=1)
    for s in seq[:-1]:
        ax1.axhline(s.loss - seq[-1].loss, color="k", ls=":", lw=0.8)
    for k in range(1, K + 1):
        ax2.axhline(np.linalg.svd(seq[-1].end_to_end, compute_uv=False)[k - 1], color="k", ls=":", lw=0.8)
    ax1.set(xlabel="flow time t (library)", ylabel="loss - min loss", title="plateaus at C(A_k) (dotted)")
    ax2.set(xlabel="flow time t (library)", ylabel="singular values of A_t", ylim=(1e-4, None))
    ax1.legend(fontsize=7)
    ctx.figure("staircase", fig)


def _first_escape(run, seq, L):
    """State at the first escape: the last record with ``|A_t|_2 <= 5%`` of ``|A_1|_2`` (and above 1e-4 of
    it, clear of the init). Returns the alignment and rank-one measures there (or None if no record)."""
    esc = seq[0]
    A_hist = np.asarray(run.history["end_to_end"])
    m = np.linalg.norm(seq[1].end_to_end, 2)
    norms = np.array([np.linalg.norm(A, 2) for A in A_hist])
    first_big = int(np.argmax(norms > 0.05 * m))
    window = np.flatnonzero(norms[:first_big] >= 1e-4 * m)
    if window.size == 0:
        return None
    i = int(window[-1])
    U, s, Vt = np.linalg.svd(A_hist[i])
    layer = [float(run.history[f"layer_singular_values_{j}"][i][1] / run.history[f"layer_singular_values_{j}"][i][0])
             for j in range(L)]
    return {"|A|/|A_1|": float(norms[i] / m), "cos_u": float(abs(U[:, 0] @ esc.escape_u)),
            "cos_v": float(abs(Vt[0] @ esc.escape_v)), "s2/s1": float(s[1] / s[0]), "layer s2/s1": layer,
            "balancedness": float(run.history["balancedness"][i])}


def _claim_first_escape(ctx, f, L):
    ok = (f is not None and min(f["cos_u"], f["cos_v"]) >= 0.99 and f["s2/s1"] <= 0.05
          and max(f["layer s2/s1"]) <= 0.05 and f["balancedness"] <= 0.05)
    ctx.claim(
        f"first_escape_depth{L}",
        f"first escape at depth {L} (last record with 1e-4 <= |A_t| / |A_1| <= 0.05, smallest sigma): the top "
        "singular vectors of A_t align with those of -grad C(0) (|cos| >= 0.99), A_t and every layer are "
        "rank one (s2/s1 <= 0.05), the net is balanced (normalised gap <= 0.05)",
        expected={"cos": 1.0, "s2/s1": 0.0, "layer s2/s1": 0.0, "balancedness": 0.0},
        measured=f if f is not None else "no record in the window", tolerance={"cos": 0.01, "ratios": 0.05},
        passed=bool(ok),
    )


# -- claim 2 at depth 4 ---------------------------------------------------------------------------
def step_escape_depth4(ctx: Context) -> None:
    import matplotlib.figure

    size = _sizes(ctx)
    prob = regression_problem(ctx.seed)
    seq = sd.saddle_sequence(prob)
    level = np.linalg.norm(seq[1].end_to_end, 2) / 2
    w, L, sig = 10, 4, size["sig4"]
    base = _direction((prob.d_in,) + (w,) * (L - 1) + (prob.d_out,), ctx.seed + L)
    horizons = [3.0 * sd.predicted_escape_times(prob, depth=L, sigma=s, width=w, saddles=seq)[0] for s in sig]
    # Only the first escape is needed: stop each run just past it.
    stop = seq[1].loss + 0.01 * (seq[0].loss - seq[1].loss)
    runs = _flow(Objective(prob), [tuple(s * W for W in base) for s in sig], horizons, size["n_save"],
                 loss_threshold=stop)
    t1s = np.array([_escape_time(r, level) for r in runs])
    slope = _fit(np.log(1 / sig), np.log(t1s))
    ctx.claim(f"escape_depth{L}", f"depth {L}: J_1 ~ sigma^-(L-2): slope of log J_1 vs log(1/sigma)",
              expected=float(L - 2), measured=slope, tolerance=SLOPE_TOL,
              passed=abs(slope / (L - 2) - 1) <= SLOPE_TOL)
    ctx.table("escape_times", [{"depth": L, "sigma": s, "J1": t} for s, t in zip(sig, t1s, strict=True)])
    fig = matplotlib.figure.Figure(figsize=(5, 4))
    ax = fig.subplots()
    ax.loglog(1 / sig, t1s, "o", label="flow")
    ax.loglog(1 / sig, t1s[0] * (sig[0] / sig) ** (L - 2), "-", label=f"slope {L - 2}")
    ax.set(xlabel="1/sigma", ylabel="first escape time J_1 (library)", title=f"depth {L}")
    ax.legend(fontsize=7)
    ctx.figure("escape_times_depth4", fig)


# -- claim 3: distances at init -----------------------------------------------------------------
def step_init_distances(ctx: Context) -> None:
    size = _sizes(ctx)
    prob = regression_problem(ctx.seed)
    rng = np.random.default_rng(ctx.seed)
    dw = np.asarray(size["dist_widths"])
    fits, ratio = {}, {}
    for L in (2, 3):
        for g in (0.5, 1.0, 1.5, 2.0):
            d = []
            for w in dw:
                widths = (prob.d_in,) + (int(w),) * (L - 1) + (prob.d_out,)
                p = [rng.normal(size=(b, a)) * w ** (-g / 2) for a, b in zip(widths[:-1], widths[1:], strict=True)]
                d.append(sd.saddle_distance(p))
                if L == 2 and w == dw.max():
                    dist = sd.init_distances(prob, p)
                    ratio[g] = dist.to_saddle / dist.to_global_min if dist.converged else np.nan
            fits[(L, g)] = _fit(np.log(dw), np.log(d))
    err = max(abs(v - (1 - g) / 2) for (L, g), v in fits.items())
    ctx.claim(
        "saddle_distance_exponent",
        f"distance from a sigma^2 = w^-gamma init to the nearest saddle scales as w^((1-gamma)/2) "
        f"(depths 2, 3; gamma 0.5..2; widths {int(dw.min())}..{int(dw.max())}): max |fitted - theory|",
        expected={f"L{L} g{g}": (1 - g) / 2 for (L, g) in fits},
        measured={f"L{L} g{g}": v for (L, g), v in fits.items()},
        tolerance=0.03, passed=err <= 0.03,
    )
    crit_ok = ratio[0.5] > 1 and ratio[1.5] < 1 and ratio[2.0] < 1
    ctx.claim(
        "nearest_critical_set",
        f"at w = {int(dw.max())} (depth 2): gamma < 1 starts closer to a global minimum than to any saddle, "
        "gamma > 1 closer to a saddle (ratio d_saddle / d_global_min, Gauss-Newton upper bound)",
        expected={"gamma<1": "> 1", "gamma>1": "< 1"},
        measured={f"gamma={g}": v for g, v in ratio.items()}, tolerance=0.0, passed=bool(crit_ok),
    )


# -- claims 2 (depth 2), 3 (training), 6 (depth 2): depth-2 flows embedded in wide nets -------------
def _embedded(prob, cells, width, n_save, t1, seed, **kw):
    """Depth-2 runs of widths w <= ``width`` embedded in width ``width`` with zero neurons: a zero neuron
    receives zero gradient, so each run is exactly the width-w flow (the paper's inclusion symmetry) and
    one compiled runner serves every cell. ``cells``: (w, sigma, draw) triples."""
    inits = []
    for w, sigma, draw in cells:
        rng = np.random.default_rng(1000 * w + draw + seed)
        W1, W2 = np.zeros((width, prob.d_in)), np.zeros((prob.d_out, width))
        W1[:w] = sigma * rng.normal(size=(w, prob.d_in))
        W2[:, :w] = sigma * rng.normal(size=(prob.d_out, w))
        inits.append((W1, W2))
    return inits, _flow(Objective(prob), inits, t1, n_save, **kw)


def step_depth2(ctx: Context) -> None:
    import matplotlib.figure

    size = _sizes(ctx)
    prob = regression_problem(ctx.seed)
    seq = sd.saddle_sequence(prob)
    S = seq[0].escape_speed
    level = np.linalg.norm(seq[1].end_to_end, 2) / 2
    widths_list, gammas, seeds = size["widths"], size["gammas"], size["seeds"]
    big = max(widths_list)
    sig2 = size["sig2"]
    esc_cells = [(10, s, 0) for s in sig2]
    cells = [(w, w ** (-g / 2), d) for w in widths_list for g in gammas for d in range(seeds)]

    def horizon(w, s, k):
        return 3.0 * sd.predicted_escape_times(prob, depth=2, sigma=s, width=w, saddles=seq)[k]

    # One compiled runner for every depth-2 run: all are embedded in width 1024 (the balance summary recorded
    # by dl.train forms w x w matrices, so records are kept few). An escape-law run goes to three times its
    # predicted first escape, with records over the last two decades (nothing moves before); the
    # phase-diagram runs share one horizon (lazy inits have no predicted plateau to scale it by), records
    # over five decades, and stop once converged.
    done = seq[-1].loss + 1e-10 * seq[0].loss
    t_cells = max(horizon(w, s, -1) for w, s, _ in cells)
    all_inits, all_runs = _embedded(prob, esc_cells + cells, big, size["n_save_d2"],
                                    [horizon(w, s, 0) for w, s, _ in esc_cells] + [t_cells] * len(cells),
                                    ctx.seed, decades=[1.5] * len(esc_cells) + [2.0] * len(cells),
                                    summaries=plateau_summaries, loss_threshold=done)
    esc, inits, runs = all_runs[: len(esc_cells)], all_inits[len(esc_cells):], all_runs[len(esc_cells):]
    # Claim 2, depth 2.
    t1s = np.array([_escape_time(r, level) for r in esc])
    x = np.log(1 / sig2)
    slope = _fit(x, t1s)
    ctx.claim("escape_depth2",
              f"depth 2: J_1 linear in log(1/sigma) with slope 1/S = {1 / S:.4g} (library time; {2 / S:.4g} in "
              "the paper's 1/2-normalised time), S = s_max(-grad C(0))",
              expected=1 / S, measured=slope, tolerance=SLOPE_TOL, passed=abs(slope * S - 1) <= SLOPE_TOL)
    ctx.table("escape_times", [{"depth": 2, "sigma": s, "J1": t} for s, t in zip(sig2, t1s, strict=True)])
    _claim_first_escape(ctx, _first_escape(esc[int(np.argmin(sig2))], seq, 2), 2)
    # Claim 3: lazy vs rich.
    rec = {}
    for (w, sigma, _), p0, r in zip(cells, inits, runs, strict=True):
        g = round(-2 * np.log(sigma) / np.log(w), 6)
        move = np.sqrt(sum(np.sum((np.asarray(a) - b) ** 2) for a, b in zip(r.params, p0, strict=True)))
        size0 = np.sqrt(sum(np.sum(b**2) for b in p0))
        p_narrow = (p0[0][:w], p0[1][:, :w])
        dist = sd.init_distances(prob, p_narrow, max_iter=1)  # only the linearised distance is used
        a0 = sd.depth2_mode_scale(p_narrow, prob, saddles=seq)
        j_pred = sd.predicted_escape_times(prob, depth=2, a0=a0, saddles=seq)[0]
        rec.setdefault((w, g), []).append(
            (move / size0, _escape_time(r, level) * S, move / dist.to_global_min_linearised, j_pred * S))
    mean = {k: np.mean(np.array(v), axis=0) for k, v in rec.items()}
    lw = np.log(np.asarray(widths_list, float))
    lazy = [g for g in gammas if g < 1]
    rich = [g for g in gammas if g > 1]
    lazy_slopes = {g: _fit(lw, np.log([mean[(w, g)][0] for w in widths_list])) for g in lazy}
    lazy_err = max(abs(lazy_slopes[g] / (-(1 - g)) - 1) for g in lazy)
    move_ratio = {g: mean[(big, g)][2] for g in lazy}
    ok_lazy = lazy_err <= 0.15 and all(abs(v - 1) <= 0.15 for v in move_ratio.values())
    ctx.claim(
        "lazy_regime",
        "gamma < 1 (depth 2): the relative weight change ||theta_T - theta_0|| / ||theta_0|| falls like "
        f"w^-(1-gamma) (fitted exponent within 15%), and at w = {big} the distance moved equals the linearised "
        "(NTK) minimum-norm distance to the global minima within 15% (lazy training)",
        expected={"exponent": {g: -(1 - g) for g in lazy}, "moved / linearised": 1.0},
        measured={"exponent": lazy_slopes, "moved / linearised": move_ratio,
                  "J1*S at w_max": {g: mean[(big, g)][1] for g in lazy}},
        tolerance=0.15, passed=ok_lazy,
    )
    rich_slopes = {g: _fit(lw, [mean[(w, g)][1] for w in widths_list]) for g in rich}
    pred_slopes = {g: _fit(lw, [mean[(w, g)][3] for w in widths_list]) for g in rich}
    rich_err = max(abs(rich_slopes[g] / pred_slopes[g] - 1) for g in rich)
    ctx.claim(
        "plateau_width_law",
        "gamma > 1 (depth 2): a plateau at the origin whose length grows like log(1/(sigma^2 w)) / (2S) = "
        "(gamma-1) log(w) / (2S): fitted slope of J_1 S vs log w (mean over seeds) against the slope of the "
        "balanced-mode prediction from each init's projection (asymptotically (gamma-1)/2)",
        expected={"predicted": pred_slopes, "asymptotic": {g: (g - 1) / 2 for g in rich}}, measured=rich_slopes,
        tolerance=SLOPE_TOL, passed=rich_err <= SLOPE_TOL,
    )
    ctx.table("phase_diagram", [{"width": w, "gamma": g, "rel_weight_change": m[0], "J1_times_S": m[1],
                                 "moved_over_linearised": m[2], "J1_pred_times_S": m[3]} for (w, g), m in mean.items()])
    fig = matplotlib.figure.Figure(figsize=(16, 4), layout="constrained")
    ax0, ax1, ax2 = fig.subplots(1, 3)
    ax0.plot(x, t1s, "o", label="flow")
    ax0.plot(x, t1s[0] + (x - x[0]) / S, "-", label="slope 1/S")
    ax0.set(xlabel="log(1/sigma)", ylabel="first escape time J_1 (library)", title="depth 2, w = 10")
    ax0.legend(fontsize=7)
    grid1 = np.array([[np.log10(mean[(w, g)][0]) for w in widths_list] for g in gammas])
    grid2 = np.array([[mean[(w, g)][1] for w in widths_list] for g in gammas])
    for ax, grid, title in ((ax1, grid1, "log10 relative weight change"), (ax2, grid2, "plateau length J_1 S")):
        im = ax.imshow(grid, origin="lower", aspect="auto", cmap="viridis")
        ax.set_xticks(range(len(widths_list)), [str(w) for w in widths_list])
        ax.set_yticks(range(len(gammas)), [str(g) for g in gammas])
        ax.set(xlabel="width w", ylabel="gamma (sigma^2 = w^-gamma)", title=title)
        fig.colorbar(im, ax=ax)
    ctx.figure("escape_and_phase_diagram", fig)


# -- claims 4 and 5: matrix completion ------------------------------------------------------------
def step_matrix_completion(ctx: Context) -> None:
    import matplotlib.figure

    prob = completion_problem(ctx.seed)
    seq = sd.saddle_sequence(prob)
    w, L = 40, 3
    n = prob.d_in
    base = _direction((n, w, w, n), ctx.seed)
    small, large = 1e-3, 0.5
    c0 = float(prob.cost(np.zeros((n, n))))
    t_pred = sd.predicted_escape_times(prob, depth=L, sigma=small, width=w, saddles=seq)
    runs = _flow(Objective(prob), [tuple(small * W for W in base), tuple(large * W for W in base)],
                 4.0 * t_pred[-1], 300, summaries=plateau_summaries, loss_threshold=1e-12 * c0)
    T = np.asarray(prob.target)
    unseen = ~np.asarray(prob.mask)
    out = {}
    for name, r in zip(("small", "large"), runs, strict=True):
        A = np.asarray(r.history["end_to_end"][-1])
        s = np.linalg.svd(A, compute_uv=False)
        out[name] = {"train_loss": r.final_loss / c0,
                     "test_rel_error": float(np.linalg.norm((A - T)[unseen]) / np.linalg.norm(T[unseen])),
                     "rank": int(np.sum(s > 1e-3 * s[0]))}
    true_rank = len(seq) - 1
    sm, lg = out["small"], out["large"]
    ctx.claim("completion_small_init",
              f"matrix completion {n}x{n}, rank {true_rank}, depth {L}, sigma={small}: the flow fits the "
              "observed entries, recovers the true rank and generalises (relative test error)",
              expected={"rank": true_rank, "test_rel_error": 0.0}, measured=sm, tolerance=1e-3,
              passed=sm["rank"] == true_rank and sm["test_rel_error"] <= 1e-3 and sm["train_loss"] <= 1e-6)
    ctx.claim("completion_large_init",
              f"same problem, sigma={large} (sigma^2 w = {large**2 * w:g}): interpolates the observed entries "
              "with a full-rank matrix and a large relative test error",
              expected={"rank": f"> {true_rank}", "test_rel_error": "> 0.3"}, measured=lg, tolerance=0.0,
              passed=lg["rank"] > true_rank and lg["test_rel_error"] > 0.3 and lg["train_loss"] <= 1e-6)
    found = detect_plateaus(runs[0], thresholds=[np.linalg.norm(seq[k].end_to_end - seq[k - 1].end_to_end, 2)
                                                 / 2 for k in range(1, true_rank + 1)])
    p1 = found.plateaus[1]
    err = float(np.linalg.norm(p1.end_to_end - seq[1].end_to_end) / np.linalg.norm(seq[1].end_to_end))
    ok = err <= 1e-2 and p1.layer_ranks == (1,) * L and abs(p1.loss - seq[1].loss) <= 1e-2 * c0
    ctx.claim("plateau_states_completion",
              "matrix completion: the rank-1 plateau state equals the greedy low-rank algorithm's A_1 "
              "(relative error), its loss is C(A_1), every layer has numerical rank 1",
              expected={"rel_error": 0.0, "loss": seq[1].loss, "layer_ranks": [1] * L},
              measured={"rel_error": err, "loss": p1.loss, "layer_ranks": list(p1.layer_ranks or ())},
              tolerance=1e-2, passed=ok)
    ctx.table("matrix_completion", [{"init": k, **v} for k, v in out.items()])
    fig = matplotlib.figure.Figure(figsize=(10, 4))
    ax1, ax2 = fig.subplots(1, 2)
    for name, r in zip(("small", "large"), runs, strict=True):
        ax1.loglog(r.times[1:], r.history["loss"][1:] / c0, label=f"{name} init")
        ax2.semilogy(np.linalg.svd(np.asarray(r.history["end_to_end"][-1]), compute_uv=False), "o-", label=name)
    for s in seq[:-1]:
        ax1.axhline(s.loss / c0, color="k", ls=":", lw=0.8)
    ax1.set(xlabel="flow time t", ylabel="train loss / C(0)", title="greedy saddle losses dotted")
    ax2.set(xlabel="index", ylabel="singular values of the final A")
    ax1.legend(fontsize=7)
    ax2.legend(fontsize=7)
    ctx.figure("matrix_completion", fig)


EXPERIMENT = register(Experiment(
    name="jacot2021",
    title="Saddle-to-saddle dynamics in deep linear networks",
    reference="A. Jacot, F. Ged, B. Simsek, C. Hongler, F. Gabriel, Saddle-to-Saddle Dynamics in Deep "
              "Linear Networks: Small Initialization Training, Symmetry, and Sparsity, arXiv:2106.15933 (2021)",
    bibtex=BIBTEX,
    steps=(step_staircase, step_escape_depth4, step_depth2, step_init_distances, step_matrix_completion),
))

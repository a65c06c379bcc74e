"""Experiment "jacot2021": saddle-to-saddle dynamics, incremental rank and the gamma = 1 transition.

Reference: A. Jacot, F. Ged, B. Simsek, C. Hongler, F. Gabriel, "Saddle-to-Saddle Dynamics in Deep
Linear Networks: Small Initialization Training, Symmetry, and Sparsity", arXiv:2106.15933 (2021).

Library normalisation: squared loss with no 1/2, so the gradient flow runs twice as fast as the paper's and escape
speeds ``S`` (top singular values of ``-grad C``) are twice the paper's. Runs are gradient flows
(``dl.train(obj, p0, dl.Flow(...))``, log-spaced records) from ``theta_0 = sigma * theta_hat``, stored as pieces
(:mod:`._runs`); the theory is :mod:`dlnlab.theory.saddles`, re-read by every claim.

Problems: a correlated-input regression (``Sxx`` anisotropic, so the saddles are reduced-rank regression
solutions) and a 20 x 20 rank-2 matrix completion.

Claims: the staircase (order, plateau losses = ``C(A_k)``, sharpening with sigma, plateau states = ``A_k``, layer
ranks); the first escape (aligned with the top pair of ``-grad C(0)``, rank one, balanced; depth 3 over several
init directions); escape laws (``log(1/sigma)`` at depth 2, ``sigma^-(L-2)`` at depths 3, 4); the ``(w, gamma)``
phase diagram (lazy for ``gamma < 1``, a plateau of length ``(gamma-1) log w / (2S)`` for ``gamma > 1``); the
``gamma = 1`` transition at init between rigorous bounds (:mod:`._distances`): the distance to the saddles scales
as ``w^((1-gamma)/2)``, the distance to the global minima as ``w^-min(1-gamma, gamma)/2`` for ``gamma < 1`` and
stays bounded below for ``gamma > 1``, and the certified transition bracket closes on ``gamma = 1`` as ``w``
grows; matrix completion (small init recovers the rank-2 matrix, large init interpolates at full rank, the rank-1
plateau is the greedy ``A_1``).
"""

from __future__ import annotations

import numpy as np

from .._experiment import Experiment
from . import _claims as C
from ._distances import distance_study
from ._runs import completion_problem, completion_runs, depth2_runs, depth4_runs, regression_problem, staircase_runs

__all__ = ["EXPERIMENT", "regression_problem", "completion_problem"]

BIBTEX = """@article{jacot2021saddle,
  title   = {Saddle-to-Saddle Dynamics in Deep Linear Networks: Small Initialization Training,
             Symmetry, and Sparsity},
  author  = {Jacot, Arthur and Ged, Fran{\\c{c}}ois and {\\c{S}}im{\\c{s}}ek, Berfin and Hongler,
             Cl{\\'e}ment and Gabriel, Franck},
  journal = {arXiv preprint arXiv:2106.15933},
  year    = {2021}
}"""


def setup(ctx) -> dict:
    z, s = ctx.size, ctx.seed
    return {
        "staircase": ctx.cached("staircase", staircase_runs, seed=s, sigmas=z.sig3, n_save=z.n_save,
                                escape_draws=z.escape_draws),
        "depth4": ctx.cached("depth4", depth4_runs, seed=s, sigmas=z.sig4, n_save=z.n_save),
        "depth2": ctx.cached("depth2", depth2_runs, seed=s, sigmas=z.sig2, widths=z.widths, gammas=z.gammas,
                             draws=z.draws, n_save=z.n_save_d2),
        "completion": ctx.cached("completion", completion_runs, seed=s, small=z.small, large=z.large,
                                 width=z.completion_width),
        "distances": ctx.cached("distances", distance_study, seed=s, widths=z.dist_widths, gammas=z.dist_gammas,
                                draws=z.dist_draws, bracket_widths=z.bracket_widths, bracket_draws=z.bracket_draws),
    }


def _fit(x, y):
    return float(np.polyfit(np.asarray(x, float), np.asarray(y, float), 1)[0])


def init_distances(ctx, state) -> None:
    z, d = ctx.size, state["distances"]
    prob = regression_problem(ctx.seed)
    w, g = np.asarray(z.dist_widths, float), np.asarray(z.dist_gammas, float)
    med = {k: np.median(np.asarray(d[k]), axis=-1) for k in ("saddle_lo", "saddle_up", "global_lo", "global_up")}
    lw = np.log(w)
    ctx.check_close("saddle_distance_exponent",
                    f"depth 2, sigma^2 = w^-gamma, widths {[int(v) for v in w]}, gamma {list(g)}: the distance to the "
                    "saddle set lies between s_min-based lower and ||theta_0|| upper bounds (module _distances), and "
                    "both scale as w^((1-gamma)/2): fitted exponents of the medians over draws (atol 0.08: the "
                    "lower bound's finite-width bias, s_min ~ sigma (sqrt(w) - sqrt(d)))",
                    measured={"lower": [_fit(lw, np.log(r)) for r in med["saddle_lo"]],
                              "upper": [_fit(lw, np.log(r)) for r in med["saddle_up"]]},
                    expected={"lower": list((1 - g) / 2), "upper": list((1 - g) / 2)}, atol=0.08)
    ctx.at_most("saddle_distance_sandwich",
                "... and the two bounds stay within a fixed factor of each other (upper / lower, every gamma, width "
                "and draw), so the distance itself has that exponent",
                measured=float(np.max(np.asarray(d["saddle_up"]) / np.asarray(d["saddle_lo"]))), bound=4.0)
    lazy, rich = g < 1, g > 1
    one = (g >= 0.5) & lazy
    ctx.check_close("global_min_distance_lazy",
                    f"1/2 <= gamma < 1 ({list(g[one])}): the distance to the global minima (Gauss-Newton upper bound, "
                    "median over draws) vanishes as w^-(1-gamma)/2: fitted exponents (below 1/2 the init's own "
                    "A_0 ~ w^(1/2-gamma) adds a w^(-gamma/2) term, see the table init_distances)",
                    measured=[_fit(lw, np.log(r)) for r in med["global_up"][one]],
                    expected=list(-(1 - g[one]) / 2), atol=0.05)
    target = np.asarray(prob.Syx) @ np.linalg.pinv(np.asarray(prob.Sxx))
    root = float(np.sqrt(np.linalg.norm(target)))
    low = med["global_lo"][rich]
    ctx.holds("global_min_distance_rich",
              f"gamma > 1: the rigorous lower bound on the distance to the global minima rises with w towards "
              f"||A*||_F^(1/2) = {root:.4g}: "
              f"at w = {int(w[-1])} it is {[float(f'{v:.4g}') for v in low[:, -1]]}, at least 0.8 ||A*||_F^(1/2)",
              measured=[bool(np.all(np.diff(r) > 0)) and bool(r[-1] >= 0.8 * root) for r in low])
    ratio = np.concatenate([np.max(np.asarray(d["global_up"])[lazy, -1] / np.asarray(d["saddle_lo"])[lazy, -1],
                                   axis=-1),
                            np.max(np.asarray(d["saddle_up"])[rich, -1] / np.asarray(d["global_lo"])[rich, -1],
                                   axis=-1)])
    ctx.at_most("nearest_critical_set",
                f"at w = {int(w[-1])}, every draw: gamma < 1 is provably nearer a global minimum than any saddle "
                "(Gauss-Newton distance / saddle lower bound), gamma > 1 provably nearer a saddle (||theta_0|| / "
                f"global-minimum lower bound); gamma = {list(g)}", measured=list(ratio), bound=1.0)
    br = np.median(np.asarray(d["bracket"]), axis=1)  # (widths, 2)
    bw = np.asarray(z.bracket_widths, float)
    ctx.holds("transition_bracket",
              "the certified transition bracket [gamma_lo, gamma_hi] (below gamma_lo provably nearer a global minimum, "
              f"above gamma_hi provably nearer a saddle; median over draws) contains 1 and shrinks as w grows: "
              f"{dict(zip([int(v) for v in bw], [[round(float(a), 4) for a in r] for r in br]))}",
              measured=[bool(np.all(br[:, 0] < 1)), bool(np.all(br[:, 1] > 1)),
                        bool(np.all(np.diff(br[:, 1] - br[:, 0]) < 0))])
    x = 1 / np.log(bw)
    ctx.check_close("transition_at_gamma_1",
                    "... and it closes on gamma = 1: both ends are linear in 1/log w (the bounds are powers of w with "
                    "O(1) prefactors) and extrapolate to 1 as w -> oo (intercepts of the fits; atol 0.1: twice the "
                    "largest deviation on seeds 0-2, 0.05, from the curvature of the law at small widths)",
                    measured=[float(np.polyfit(x, br[:, k], 1)[1]) for k in (0, 1)], expected=[1.0, 1.0], atol=0.1)
    ctx.table("init_distances", [{"gamma": float(gg), "width": int(ww), **{k: float(med[k][i, j]) for k in med}}
                                 for i, gg in enumerate(g) for j, ww in enumerate(w)])
    ctx.table("transition_bracket", [{"width": int(ww), "gamma_lo": float(a), "gamma_hi": float(b)}
                                     for ww, (a, b) in zip(bw, br, strict=True)])


def distances_figure(ctx, state) -> None:
    from matplotlib.figure import Figure

    z, d = ctx.size, state["distances"]
    w = np.asarray(z.dist_widths, float)
    fig = Figure(figsize=(11, 4), layout="constrained")
    ax1, ax2 = fig.subplots(1, 2)
    for i, g in enumerate(z.dist_gammas):
        for k, ls, lab in (("saddle", "-", "saddle"), ("global", "--", "global min")):
            lo = np.median(np.asarray(d[f"{k}_lo"])[i], -1)
            up = np.median(np.asarray(d[f"{k}_up"])[i], -1)
            ax1.fill_between(w, lo, up, color=f"C{i}", alpha=0.15 if k == "saddle" else 0.3)
            ax1.loglog(w, up, ls, color=f"C{i}", label=f"{lab}, gamma={g}")
    ax1.set(xlabel="width w", ylabel="distance (bounds)", title="init distances, depth 2")
    ax1.legend(fontsize=6, ncol=2)
    br = np.median(np.asarray(d["bracket"]), axis=1)
    bw = np.asarray(z.bracket_widths, float)
    ax2.plot(1 / np.log(bw), br[:, 0], "o-", label="gamma_lo (nearer global min below)")
    ax2.plot(1 / np.log(bw), br[:, 1], "s-", label="gamma_hi (nearer saddle above)")
    ax2.axhline(1.0, color="k", ls=":")
    ax2.set(xlabel="1 / log w", ylabel="gamma", xlim=(0, None), title="certified transition bracket")
    ax2.legend(fontsize=7)
    ctx.figure("init_distances", fig)


def _geom(a, b, n):
    return [float(v) for v in np.geomspace(a, b, n)]


EXPERIMENT = Experiment(
    name="jacot2021",
    title="Saddle-to-saddle dynamics in deep linear networks",
    reference="A. Jacot, F. Ged, B. Simsek, C. Hongler, F. Gabriel, Saddle-to-Saddle Dynamics in Deep "
              "Linear Networks: Small Initialization Training, Symmetry, and Sparsity, arXiv:2106.15933 (2021)",
    bibtex=BIBTEX,
    sizes={
        "quick": {"sig3": _geom(1e-3, 3e-2, 4), "sig2": _geom(1e-12, 1e-3, 5), "sig4": _geom(5e-3, 4e-2, 4),
                  "n_save": 300, "n_save_d2": 40, "escape_draws": 3, "widths": [16, 64, 256, 1024],
                  "gammas": [0.5, 0.75, 1.5, 2.0], "draws": 2, "small": 1e-3, "large": 0.5, "completion_width": 40,
                  "dist_widths": [64, 256, 1024, 4096], "dist_gammas": [0.25, 0.5, 0.75, 1.25, 1.5],
                  "dist_draws": 4, "bracket_widths": [256, 1024, 4096], "bracket_draws": 2},
        "full": {"sig3": _geom(3e-4, 3e-2, 7), "sig2": _geom(1e-14, 1e-3, 7), "sig4": _geom(2e-3, 4e-2, 6),
                 "n_save": 600, "n_save_d2": 80, "escape_draws": 5, "widths": [16, 64, 256, 1024],
                 "gammas": [0.5, 0.75, 1.25, 1.5, 2.0, 2.5], "draws": 3, "small": 1e-3, "large": 0.5,
                 "completion_width": 40, "dist_widths": [64, 256, 1024, 4096, 16384],
                 "dist_gammas": [0.25, 0.5, 0.75, 1.25, 1.5], "dist_draws": 4,
                 "bracket_widths": [256, 1024, 4096, 16384, 65536], "bracket_draws": 3},
    },
    setup=setup,
    claims=(C.staircase, C.first_escape, C.escape_laws, C.phase_diagram, init_distances, C.completion),
    figures=(C.staircase_figure, C.phase_figure, distances_figure, C.completion_figure),
)

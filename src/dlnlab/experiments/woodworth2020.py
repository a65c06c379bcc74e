"""Experiment "woodworth2020": diagonal linear networks between the kernel and the rich regime.

A depth-``D`` diagonal network ``beta = w_+^D - w_-^D`` (``dl.DiagonalNet``), initialised at ``w_+ = w_- = alpha``,
trained by gradient flow (``dl.train(..., dl.Flow(rtol=1e-10))``, one ``dl.train_batched`` call per depth over every
alpha and data replicate) on the squared loss of a noise-free sparse regression ``y = X beta*`` (Gaussian ``X`` of
shape ``(n, d)``, ``s`` nonzeros of value ``1/sqrt(s)``, ``n < d``). Claims:

- ``q_alpha_depth{2,3}``: at several alpha the flow's limit is ``argmin Q_alpha(beta) s.t. X beta = y``
  (:func:`dlnlab.theory.diagonal.implicit_bias`, Theorems 1 and 3), to 1e-6 relative in every replicate;
- ``rich_limit_l1``: ``argmin Q_alpha`` at ``alpha = 1e-12`` is the minimum-l1 interpolator (a linear program) to
  1e-6 (the flow itself approaches it only logarithmically in alpha for depth 2, too slowly to integrate), and
  ``flow_approaches_l1``: the flow's distance to it falls monotonically as alpha decreases;
- ``kernel_limit_l2``: at the largest alpha the flow ends at the minimum-l2 interpolator ``pinv(X) y`` to 1e-4;
- ``rich_generalises`` / ``kernel_does_not``: the relative test error (2000 fresh Gaussian points) is small in the
  rich regime and large in the kernel regime (aggregated over replicates: mean +- 3 standard deviations);
- ``depth_closer_to_l1`` (alpha < 1): at the same alpha, depth 3 ends closer to the min-l1 interpolator than
  depth 2 in every replicate; ``depth_closer_to_l2_above_1``: for alpha > 1 the order reverses (``alpha^D`` is the
  scale that matters; "deeper is richer" is a statement about alpha < 1 only).

Sizes are data: quick ``d = 100, n = 40`` (next.md suggests ``n = 30``; there the min-l1 problem is nearly
degenerate for some draws, e.g. data seed 0 where ``beta_alpha`` is still 70 % away from the min-l1 interpolator at
``alpha = 1e-30``, so no flow reaches the rich limit), full ``d = 1000, n = 100``. Replicate ``r`` of seed ``S``
draws its data from ``numpy.random.default_rng([S, r])``.

Reference: B. Woodworth, S. Gunasekar, J. D. Lee, E. Moroshko, P. Savarese, I. Golan, D. Soudry, N. Srebro,
"Kernel and Rich Regimes in Overparametrized Models", COLT 2020 (arXiv:2002.09277).
"""

from __future__ import annotations

import numpy as np

from .._diagonal import DiagonalNet
from ..errors import ConfigError, NumericalError
from ..objective import Objective
from ..problems import Regression
from ..sweep._functions_diagonal import LOSS_STOP, problem, test_error
from ..theory import diagonal
from ..train import Flow, Record, Stop, train_batched
from ._experiment import Experiment

__all__ = ["EXPERIMENT", "problem", "flow_limits", "test_error", "Q_TOL", "LIMIT_TOL"]

BIBTEX = """@inproceedings{woodworth2020kernel,
  title     = {Kernel and Rich Regimes in Overparametrized Models},
  author    = {Woodworth, Blake and Gunasekar, Suriya and Lee, Jason D. and Moroshko, Edward and
               Savarese, Pedro and Golan, Itay and Soudry, Daniel and Srebro, Nathan},
  booktitle = {Conference on Learning Theory (COLT)},
  year      = {2020}
}"""

# Measured distance to the theory limit at that stop: see docs/papers/woodworth2020.md; 1e-6 fails a 1 % error in
# the theory's beta by 10^4.
Q_TOL = 1e-6
# Limits: measured distances ~1e-9 (l1, alpha = 1e-12) and ~1e-5 (l2, alpha = 10, where Q_alpha itself is still
# ~alpha^-4 away from min-l2); 1e-4 fails a 1 % error in either interpolator by a factor 100.
LIMIT_TOL = 1e-4
RICH_ERR = 0.1  # relative test error that counts as "generalises" (measured ~1e-2 at alpha = 1e-2, depth 2)
# the min-l2 interpolator keeps ~n/d of beta*: relative test error ~1 - n/d (0.6 quick, 0.9 full), spread ~0.1 over
# replicates at quick size (s = 5 is a small sample of directions)
KERNEL_ERR = 0.15


def flow_limits(*, d: int, n: int, s: int, n_test: int, seeds, depth: int, alphas, max_steps: int) -> dict:
    """Gradient flow of a depth-``depth`` diagonal network from ``w_+ = w_- = alpha`` for every (seed, alpha), in
    one ``dl.train_batched`` call; stops at loss ``LOSS_STOP``. Returns ``beta`` (seeds, alphas, d), ``converged``,
    ``t_final`` and ``steps`` (seeds, alphas)."""
    net = DiagonalNet(d, depth)
    objs, inits = [], []
    for seed in seeds:
        data = problem(d=d, n=n, s=s, n_test=n_test, seed=[int(x) for x in seed])
        obj = Objective(Regression.from_data(data["X"], data["y"]), net=net)
        for a in alphas:
            objs.append(obj)
            inits.append(net.init(scale=float(a)))
    runs = train_batched(objs, inits, Flow(t1=1e8, rtol=1e-10, atol=1e-14, max_steps=max_steps),
                         record=Record(n=2, summaries=("loss",)), stop=Stop(loss=LOSS_STOP))
    shape = (len(seeds), len(alphas))
    return {
        "beta": np.stack([np.asarray(net.beta(r.params)) for r in runs]).reshape(*shape, d),
        "converged": np.array([r.status.value == "converged" for r in runs]).reshape(shape),
        "t_final": np.array([float(r.times[-1]) for r in runs]).reshape(shape),
        "steps": np.array([r.n_steps for r in runs]).reshape(shape),
    }


def _rel(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)) / np.linalg.norm(b))


def setup(ctx) -> dict:
    """Both depths' flows (stored pieces), the data, the two interpolators and the measured distances."""
    z = ctx.size
    seeds = [[ctx.seed, r] for r in range(z.replicates)]
    sizes = {"d": z.d, "n": z.n, "s": z.s, "n_test": z.n_test}
    data = [problem(**sizes, seed=sd) for sd in seeds]
    l1 = [diagonal.min_l1_interpolator(p["X"], p["y"]) for p in data]
    l2 = [diagonal.min_l2_interpolator(p["X"], p["y"]) for p in data]
    state = {"data": data, "l1": l1, "l2": l2, "depths": {}}
    for depth, alphas in ((2, z.alphas_depth2), (3, z.alphas_depth3)):
        run = ctx.cached(f"flows_depth{depth}", flow_limits, **sizes, seeds=seeds, depth=depth,
                         alphas=list(alphas), max_steps=z.max_steps)
        beta = run["beta"]
        R, A = beta.shape[:2]
        state["depths"][depth] = {
            **run, "alphas": np.asarray(alphas, float),
            "test_error": np.array([[test_error(beta[r, i], data[r]) for i in range(A)] for r in range(R)]),
            "l1_norm": np.abs(beta).sum(axis=-1),
            "dist_l1": np.array([[_rel(beta[r, i], l1[r]) for i in range(A)] for r in range(R)]),
            "dist_l2": np.array([[_rel(beta[r, i], l2[r]) for i in range(A)] for r in range(R)]),
        }
    return state


def _index(case, alpha) -> int:
    hits = np.flatnonzero(np.isclose(case["alphas"], alpha, rtol=1e-12))
    if hits.size != 1:
        raise ConfigError(f"sizes: expected alpha {alpha} (a claim's alpha) in the depth's alpha grid "
                          f"{case['alphas'].tolist()}")
    return int(hits[0])


def _q_claims(depth: int):
    def claims(ctx, state) -> None:
        case = state["depths"][depth]
        alphas = getattr(ctx.size, f"check_depth{depth}")
        worst, rows = 0.0, []
        for a in alphas:
            i = _index(case, a)
            for r, p in enumerate(state["data"]):
                theory = diagonal.implicit_bias(p["X"], p["y"], alpha=float(a), depth=depth)
                err = _rel(case["beta"][r, i], theory.beta) if case["converged"][r, i] else float("inf")
                worst = max(worst, err)
                rows.append({"depth": depth, "alpha": float(a), "replicate": r, "rel_distance": err,
                             "steps": int(case["steps"][r, i]), "t_final": float(case["t_final"][r, i])})
        ctx.at_most(
            f"q_alpha_depth{depth}",
            f"Depth-{depth} gradient flow from w_+ = w_- = alpha ends at argmin Q_alpha(beta) s.t. X beta = y "
            f"(dual Newton solve): max over alpha in {list(alphas)} and {len(state['data'])} replicates of "
            "||beta_flow - beta_theory|| / ||beta_theory||",
            measured=worst,
            bound=Q_TOL,
        )
        ctx.table("q_alpha", rows)

    claims.__name__ = f"q_alpha_depth{depth}"
    return claims


def limits(ctx, state) -> None:
    """alpha -> 0: min-l1; alpha -> inf: min-l2.

    The flow reaches the kernel limit at a moderate alpha (the distance falls like alpha^(-2D)), so that claim is on
    the flow itself. The rich limit is approached only logarithmically for depth 2 (1e-2 at alpha = 1e-3, 1e-9 at
    alpha = 1e-12), where the flow needs far more solver steps than a reproduction affords; it is checked as the
    limit of the characterisation the ``q_alpha_*`` claims pin the flow to (Newton at ``limit_alpha`` against the LP),
    plus the flow's own monotone approach over the alpha grid."""
    worst = 0.0
    for r, p in enumerate(state["data"]):
        for depth in sorted(state["depths"]):
            beta = diagonal.implicit_bias(p["X"], p["y"], alpha=ctx.size.limit_alpha, depth=depth).beta
            worst = max(worst, _rel(beta, state["l1"][r]))
    ctx.at_most(
        "rich_limit_l1",
        f"alpha -> 0: argmin Q_alpha s.t. X beta = y at alpha = {ctx.size.limit_alpha:g} (depths "
        f"{sorted(state['depths'])}) is the minimum-l1 interpolator (linear program): max over depths and replicates "
        "of ||beta_alpha - beta_l1|| / ||beta_l1||",
        measured=float(worst), bound=Q_TOL)
    c = state["depths"][2]
    below = np.flatnonzero(c["alphas"] <= 1.0)  # above 1 the distance to l1 is flat to ~1e-6
    order = below[np.argsort(c["alphas"][below])]
    steps = np.diff(c["dist_l1"][:, order], axis=1)
    ctx.holds(
        "flow_approaches_l1",
        "Depth-2 flow: ||beta - beta_l1|| falls monotonically as alpha decreases over "
        f"{sorted(c['alphas'][below].tolist())} (every replicate)",
        measured=bool(np.all(steps > 0) and c["converged"][:, below].all()))
    worst, kernel = 0.0, {}
    for depth, c in state["depths"].items():
        kernel[depth] = ctx.size[f"kernel_alpha_depth{depth}"]
        j = _index(c, kernel[depth])
        for r in range(len(state["data"])):
            worst = max(worst, _rel(c["beta"][r, j], state["l2"][r]) if c["converged"][r, j] else np.inf)
    ctx.at_most(
        "kernel_limit_l2",
        f"Large init (alpha by depth: {kernel}): the flow ends at the minimum-l2 interpolator pinv(X) y: max over "
        "depths and replicates of ||beta - beta_l2|| / ||beta_l2||",
        measured=float(worst), bound=LIMIT_TOL)


def transition(ctx, state) -> None:
    """Test error: ~0 in the rich regime (the sparse target is recovered), large in the kernel regime."""
    case = state["depths"][2]
    rich = case["test_error"][:, _index(case, ctx.size.rich_alpha)]
    kern = case["test_error"][:, _index(case, ctx.size.kernel_alpha_depth2)]
    ctx.at_most(
        "rich_generalises",
        f"Rich regime (depth 2, alpha = {ctx.size.rich_alpha:g}) generalises on the {ctx.size.s}-sparse target: "
        f"mean + 3 sd over {len(rich)} replicates of the relative test error ({ctx.size.n_test} test points)",
        measured=float(rich.mean() + 3 * rich.std()), bound=RICH_ERR)
    ctx.at_least(
        "kernel_does_not",
        f"Kernel regime (depth 2, alpha = {ctx.size.kernel_alpha_depth2:g}) does not: mean - 3 sd over {len(kern)} "
        "replicates of the relative test error",
        measured=float(kern.mean() - 3 * kern.std()), bound=KERNEL_ERR)
    rows = []
    for depth, c in state["depths"].items():
        for i, a in enumerate(c["alphas"]):
            for r in range(len(state["data"])):
                rows.append({"depth": depth, "alpha": float(a), "replicate": r,
                             "test_error": float(c["test_error"][r, i]), "l1_norm": float(c["l1_norm"][r, i]),
                             "dist_l1": float(c["dist_l1"][r, i]), "dist_l2": float(c["dist_l2"][r, i]),
                             "converged": bool(c["converged"][r, i])})
    ctx.table("alpha_sweep", rows)


def depth_trend(ctx, state) -> None:
    """At the same alpha < 1 depth 3 is closer to min-l1 than depth 2; above 1 it is closer to min-l2."""
    c2, c3 = state["depths"][2], state["depths"][3]
    below, above = [], []
    for a in ctx.size.trend_below_1:
        i, j = _index(c2, a), _index(c3, a)
        ok = c2["converged"][:, i] & c3["converged"][:, j]
        below.append(np.where(ok, c3["dist_l1"][:, j] / c2["dist_l1"][:, i], np.inf))
    for a in ctx.size.trend_above_1:
        i, j = _index(c2, a), _index(c3, a)
        ok = c2["converged"][:, i] & c3["converged"][:, j]
        above.append(np.where(ok, c3["dist_l2"][:, j] / c2["dist_l2"][:, i], np.inf))
    ctx.at_most(
        "depth_closer_to_l1",
        f"At the same alpha in {list(ctx.size.trend_below_1)} (< 1), depth 3 ends closer to the min-l1 "
        "interpolator than depth 2: max over alphas and replicates of dist_l1(depth 3) / dist_l1(depth 2)",
        measured=float(np.max(below)), bound=ctx.size.ratio_below_1)
    ctx.at_most(
        "depth_closer_to_l2_above_1",
        f"At alpha in {list(ctx.size.trend_above_1)} (> 1) the order reverses (alpha^D grows with D): max over "
        "alphas and replicates of dist_l2(depth 3) / dist_l2(depth 2)",
        measured=float(np.max(above)), bound=ctx.size.ratio_above_1)


def regimes_figure(ctx, state) -> None:
    """Test error and ||beta||_1 against alpha (mean over replicates), one colour per depth (points: the flows;
    lines: argmin Q_alpha over ``theory_alphas``), with the l1 and l2 interpolators as horizontal lines (the paper's
    Figure 1)."""
    from matplotlib.figure import Figure

    l1_err = np.mean([test_error(b, p) for b, p in zip(state["l1"], state["data"], strict=True)])
    l2_err = np.mean([test_error(b, p) for b, p in zip(state["l2"], state["data"], strict=True)])
    l1_norm = np.mean([np.abs(b).sum() for b in state["l1"]])
    l2_norm = np.mean([np.abs(b).sum() for b in state["l2"]])
    fig = Figure(figsize=(9.0, 3.4))
    ax_err, ax_l1 = fig.subplots(1, 2)
    grid = np.logspace(np.log10(ctx.size.theory_alphas[0]), np.log10(ctx.size.theory_alphas[1]), 15)
    for k, (depth, c) in enumerate(sorted(state["depths"].items())):
        ax_err.plot(c["alphas"], c["test_error"].mean(axis=0), "o", color=f"C{k}", ms=5,
                    label=f"depth {depth}: gradient flow")
        ax_l1.plot(c["alphas"], c["l1_norm"].mean(axis=0), "o", color=f"C{k}", ms=5,
                   label=f"depth {depth}: gradient flow")
        theory = []  # argmin Q_alpha over a wider alpha range than the flows can reach (mean over replicates)
        for a in grid:
            try:
                betas = [diagonal.implicit_bias(p["X"], p["y"], alpha=float(a), depth=depth).beta
                         for p in state["data"]]
            except NumericalError:  # alpha too extreme for this depth in float64: leave a gap
                theory.append((np.nan, np.nan))
                continue
            theory.append((np.mean([test_error(b, p) for b, p in zip(betas, state["data"], strict=True)]),
                           np.mean([np.abs(b).sum() for b in betas])))
        theory = np.array(theory)
        ax_err.plot(grid, theory[:, 0], "-", color=f"C{k}", lw=1.2, label=f"depth {depth}: argmin Q_alpha")
        ax_l1.plot(grid, theory[:, 1], "-", color=f"C{k}", lw=1.2, label=f"depth {depth}: argmin Q_alpha")
    for ax, (v1, v2) in ((ax_err, (l1_err, l2_err)), (ax_l1, (l1_norm, l2_norm))):
        ax.axhline(v1, color="k", ls="--", lw=1, label="min-l1 interpolator")
        ax.axhline(v2, color="k", ls=":", lw=1, label="min-l2 interpolator")
        ax.set_xscale("log")
        ax.set_xlabel("init scale alpha")
    ax_err.set(ylabel="relative test error", title=f"d={ctx.size.d}, n={ctx.size.n}, s={ctx.size.s}")
    ax_l1.set(ylabel="||beta||_1", title="kernel (right) vs rich (left) regime")
    ax_l1.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    ctx.figure("regimes", fig)


_GRID2 = [1e-2, 0.03, 0.1, 0.3, 1.0, 2.0, 3.0]
_GRID3 = [0.3, 1.0, 2.0]
_COMMON = {"s": 5, "n_test": 2000, "alphas_depth2": _GRID2, "alphas_depth3": _GRID3,
           "check_depth2": [1e-2, 0.1, 1.0], "check_depth3": [0.3, 1.0], "rich_alpha": 1e-2,
           "limit_alpha": 1e-12, "kernel_alpha_depth2": 3.0, "kernel_alpha_depth3": 2.0,
           "theory_alphas": [1e-6, 3.0], "trend_below_1": [0.3],
           "trend_above_1": [2.0], "ratio_below_1": 0.9, "ratio_above_1": 0.7}

EXPERIMENT = Experiment(
    name="woodworth2020",
    title="Kernel and rich regimes of diagonal linear networks (implicit bias Q_alpha, l1/l2 limits)",
    reference="B. Woodworth, S. Gunasekar, J. D. Lee, E. Moroshko, P. Savarese, I. Golan, D. Soudry, N. Srebro, "
    "Kernel and Rich Regimes in Overparametrized Models, COLT 2020",
    bibtex=BIBTEX,
    sizes={"quick": {**_COMMON, "d": 100, "n": 40, "replicates": 3, "max_steps": 16_000},
           "full": {**_COMMON, "d": 1000, "n": 100, "replicates": 5, "max_steps": 50_000}},
    setup=setup,
    claims=(_q_claims(2), _q_claims(3), limits, transition, depth_trend),
    figures=(regimes_figure,),
)

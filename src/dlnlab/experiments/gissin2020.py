"""Experiment "gissin2020": the implicit bias of depth, incremental learning (Gissin, Shalev-Shwartz, Daniely 2020).

Two parts.

*The toy model, exactly.* Independent modes ``sigma_i = w_{i,1} ... w_{i,N}`` (a balanced depth-``N`` scalar
factorization per mode, every factor starting at ``sigma0^(1/N)``) trained by gradient flow on
``sum_i (sigma_i - s_i)^2`` (no 1/2) with targets ``s = (12, 6, 4, 3, 0)`` (gissin's ``W* = diag(12, 6, 4, 3)``
and a zero mode). Every (depth, ``sigma0``) pair of ``sizes`` is one block of a single parameter pytree, so one
``dl.train(loss_fn, params, dl.Flow(rtol=1e-10, atol=1e-12))`` call integrates them all (the blocks do not
interact: the flow of the sum is the flow of each block); factors beyond a block's depth are masked out of the
product, get zero gradient and stay put. Claims against :mod:`dlnlab.theory.incremental`:

- the whole trajectory of every mode equals the closed form (logistic for ``N = 2``, the implicit
  hypergeometric form for ``N > 2``, exponential for ``N = 1``) to solver tolerance;
- at the closed-form learning time ``t_half`` of ``s_1`` (recorded exactly there), ``sigma_1 = s_1 / 2``;
- there, ``sigma_2 / s_2`` equals the closed-form incremental index;
- the index falls with depth at fixed ``sigma0``, falls with ``sigma0`` at fixed depth, is about 1/2 for depth 1
  (all values learned at once), and depth 3 at polynomially small init separates more than depth 2 at the same init.

*Matrix sensing* (dsgissin/Incremental-Learning's ``matrix_sensing_experiment.py``, scaled by ``sizes``): a
``d x d`` target ``diag(12, 6, 4, 3, 0, ...)``, ``m`` iid Gaussian measurements, depth-``N`` square nets from the
identity-scaled init ``W_k = init^(1/N) I`` (end-to-end ``init * I``), full-batch GD with step
``eta / (2 N s_1^(2 - 2/N))`` (``eta`` times the inverse curvature of the top mode at the solution). Each
reproduction seed draws ``seeds`` measurement sets and the claims aggregate over them: every run fits, and the
same incremental index, read off the recorded singular values, falls with depth.

Normalisation: the library's squared loss without 1/2 (``d sigma/dt = -2 N sigma^(2-2/N) (sigma - s)``); the paper
writes 1/2, so its times are twice ours. Reference: D. Gissin, S. Shalev-Shwartz, A. Daniely, "The Implicit Bias
of Depth: How Incremental Learning Drives Generalization", ICLR 2020 (arXiv:1909.12051).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from ..nets import Net
from ..objective import Objective
from ..problems import MatrixSensing
from ..summaries import Function
from ..theory import incremental
from ..train import GD, Flow, Record, Stop, train, train_batched
from ._experiment import Experiment

__all__ = ["EXPERIMENT", "TARGETS", "toy_blocks", "toy_run", "sensing_runs", "TRAJ_TOL", "POINT_TOL"]

BIBTEX = """@inproceedings{gissin2020implicit,
  title     = {The Implicit Bias of Depth: How Incremental Learning Drives Generalization},
  author    = {Gissin, Daniel and Shalev-Shwartz, Shai and Daniely, Amit},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2020}
}"""

TARGETS = (12.0, 6.0, 4.0, 3.0, 0.0)
TRAJ_TOL = 1e-7  # max |sigma_flow - sigma_theory| / s_1 over every record; measured ~4e-10
POINT_TOL = 1e-6  # relative, at t_half; measured ~3e-9


def toy_blocks(depths, sigma0, inits, init_depths) -> list[tuple[int, float]]:
    """The (depth, sigma0) pairs: every depth at ``sigma0``, and every init for each of ``init_depths``."""
    pairs = [(int(N), float(sigma0)) for N in depths] + [(int(N), float(s0)) for N in init_depths for s0 in inits]
    return list(dict.fromkeys(pairs))


def _toy_model(blocks):
    depths = np.array([N for N, _ in blocks])
    L = int(depths.max())
    active = jnp.asarray(np.arange(L)[:, None] < depths[None, :])[:, :, None]  # (L, blocks, 1)
    s = jnp.asarray(TARGETS)

    def sigma(params):
        return jnp.prod(jnp.where(active, jnp.stack(params), 1.0), axis=0)  # (blocks, modes)

    def loss(params):
        return jnp.sum((sigma(params) - s) ** 2)

    w0 = np.array([s0 ** (1.0 / N) for N, s0 in blocks])
    params = tuple(jnp.asarray(np.where(k < depths, w0, 1.0)[:, None] * np.ones((1, len(TARGETS))))
                   for k in range(L))
    return loss, sigma, params


def toy_run(*, blocks, times, t1: float) -> dict:
    """One gradient flow over every block, recorded at ``times``: ``sigma`` of shape (times, blocks, modes)."""
    blocks = [tuple(b) for b in blocks]
    loss, sigma, params = _toy_model(blocks)
    run = train(loss, params, Flow(t1=t1, rtol=1e-10, atol=1e-12, max_steps=1_000_000),
                record=Record(times=tuple(times), summaries=("loss", Function("sigma", sigma))))
    return {"times": np.asarray(run.times), "sigma": np.asarray(run.history["sigma"]), "ok": np.asarray(run.ok)}


def _sensing_target(d: int) -> np.ndarray:
    T = np.zeros((d, d))
    k = np.count_nonzero(TARGETS)
    T[np.arange(k), np.arange(k)] = TARGETS[:k]
    return T


def sensing_runs(*, depth: int, d: int, m: int, seeds, init: float, eta: float, steps: int, records: int) -> dict:
    """GD on matrix sensing for every measurement seed of one depth, in one compiled call."""
    T = _sensing_target(d)
    net = Net((d,) * (depth + 1))
    objs = [Objective(MatrixSensing.gaussian(T, m, seed=s), net=net) for s in seeds]
    p0 = net.init(jax.random.key(0), scheme="identity", scale=init ** (1.0 / depth))
    lr = eta / (2.0 * depth * TARGETS[0] ** (2.0 - 2.0 / depth))
    every = max(1, steps // records)
    runs = train_batched(objs, [p0] * len(objs), GD(lr=lr, steps=steps),
                         record=Record(times=range(0, steps + 1, every), summaries=("loss", "singular_values")),
                         stop=Stop(loss=1e-8))
    T_ = max(len(r.times) for r in runs)
    sv = np.stack([np.pad(np.asarray(r.history["singular_values"])[:, :5], ((0, T_ - len(r.times)), (0, 0)),
                          mode="edge") for r in runs])
    return {"sv": sv, "steps": np.asarray(max(runs, key=lambda r: len(r.times)).times), "lr": np.asarray(lr),
            "final_loss": np.asarray([r.final_loss for r in runs]), "ok": np.asarray([bool(r.ok) for r in runs])}


def _crossing_index(t, sv) -> float:
    """``sigma_2 / s_2`` where ``sigma_1`` first reaches ``s_1 / 2`` (linear interpolation between records)."""
    half = TARGETS[0] / 2
    i = int(np.argmax(sv[:, 0] >= half))
    if i == 0:
        return float(sv[0, 1] / TARGETS[1])
    w = (half - sv[i - 1, 0]) / (sv[i, 0] - sv[i - 1, 0])
    return float(((1 - w) * sv[i - 1, 1] + w * sv[i, 1]) / TARGETS[1])


def setup(ctx) -> dict:
    z = ctx.size
    blocks = toy_blocks(z.toy_depths, z.toy_sigma0, z.toy_inits, z.toy_init_depths)
    t_half = [float(incremental.learning_time(TARGETS[0], s0, N)) for N, s0 in blocks]
    grid = np.geomspace(z.toy_t1 * 1e-6, z.toy_t1, z.toy_records)
    times = np.unique(np.concatenate([[0.0], grid, t_half]))
    toy = ctx.cached("toy_flow", toy_run, blocks=[list(b) for b in blocks], times=times.tolist(), t1=z.toy_t1)
    seeds = [1000 * ctx.seed + k for k in range(z.seeds)]
    sensing = {N: ctx.cached(f"sensing_depth{N}", sensing_runs, depth=N, d=z.d, m=z.m, seeds=seeds, init=z.init,
                             eta=z.eta, steps=z.steps, records=z.records) for N in z.depths}
    return {"blocks": blocks, "t_half": t_half, "toy": toy, "sensing": sensing, "size": z}


def toy_claims(ctx, state) -> None:
    toy, blocks = state["toy"], state["blocks"]
    t, S = toy["times"], toy["sigma"]
    err = max(float(np.max(np.abs(S[:, b] - incremental.trajectory(t, TARGETS, s0, N)))) for b, (N, s0) in
              enumerate(blocks)) / TARGETS[0] if bool(toy["ok"]) else float("nan")
    ctx.at_most("toy_trajectory",
                f"dl.train(Flow) on the toy model follows the closed form sigma_i(t) for every mode, depth and init "
                f"({len(blocks)} blocks (N, sigma0) = {blocks}): max |error| / s_1 over {len(t)} times",
                measured=err, bound=TRAJ_TOL)
    at = [int(np.searchsorted(t, th)) for th in state["t_half"]]
    half = np.array([S[i, b, 0] / (TARGETS[0] / 2) - 1.0 for b, i in enumerate(at)])
    ctx.at_most("toy_learning_time",
                "At the closed-form learning time t_half(s_1, sigma0, N), the flow's sigma_1 is s_1 / 2: max relative "
                "deviation over the blocks", measured=float(np.max(np.abs(half))), bound=POINT_TOL)
    measured = np.array([S[i, b, 1] / TARGETS[1] for b, i in enumerate(at)])
    expected = np.array([incremental.incremental_index(TARGETS, s0, N) for N, s0 in blocks])
    ctx.check_close("toy_incremental_index",
                    "There, sigma_2 / s_2 of the flow equals the closed-form incremental index, block by block",
                    measured=measured, expected=expected, rtol=POINT_TOL)
    ctx.table("toy_index", [{"depth": N, "sigma0": s0, "t_half": th, "index": float(v)}
                            for (N, s0), th, v in zip(blocks, state["t_half"], measured)])


def toy_ordering_claims(ctx, state) -> None:
    z = state["size"]
    idx = {b: float(v) for b, v in zip(state["blocks"], _toy_index(state), strict=True)}
    by_depth = [idx[(N, z.toy_sigma0)] for N in z.toy_depths]
    ctx.holds("index_falls_with_depth",
              f"At sigma0 = {z.toy_sigma0:g} the incremental index falls with depth {list(z.toy_depths)}: "
              f"{[round(v, 6) for v in by_depth]}", measured=bool(np.all(np.diff(by_depth) < 0)))
    for N in z.toy_init_depths:
        by_init = [idx[(N, s0)] for s0 in sorted(z.toy_inits, reverse=True)]
        ctx.holds(f"index_falls_with_init_depth{N}",
                  f"At depth {N} the index falls as sigma0 shrinks ({sorted(z.toy_inits, reverse=True)}): "
                  f"{[round(v, 6) for v in by_init]}", measured=bool(np.all(np.diff(by_init) < 0)))
    if 1 in z.toy_depths:
        ctx.at_least("depth1_all_at_once",
                     "Depth 1 learns every value at once: sigma_2 / s_2 when sigma_1 = s_1 / 2 is about 1/2",
                     measured=idx[(1, z.toy_sigma0)], bound=0.49)
    small = min(z.toy_inits)
    ctx.at_most("depth_beats_init",
                f"Depth separates polynomially: at sigma0 = {small:g}, index(depth 3) / index(depth 2)",
                measured=idx[(3, small)] / idx[(2, small)], bound=0.01)


def _toy_index(state):
    """The flow's sigma_2 / s_2 at each block's closed-form t_half (recorded exactly there)."""
    return [state["toy"]["sigma"][int(np.searchsorted(state["toy"]["times"], th)), b, 1] / TARGETS[1]
            for b, th in enumerate(state["t_half"])]


def sensing_claims(ctx, state) -> None:
    z, sensing = state["size"], state["sensing"]
    ctx.holds("sensing_fit",
              f"Every sensing run ({z.d} x {z.d}, {z.m} measurements, depths {list(z.depths)}, {z.seeds} seeds) fits: "
              f"training loss <= 1e-4 within {z.steps} steps",
              measured=bool(all(np.all(g["ok"]) and np.max(g["final_loss"]) <= 1e-4 for g in sensing.values())))
    index = {N: [_crossing_index(g["steps"], sv) for sv in g["sv"]] for N, g in sensing.items()}
    means = [float(np.mean(index[N])) for N in z.depths]
    ctx.holds("sensing_index_falls_with_depth",
              f"Matrix sensing shows the same ordering: the mean incremental index over {z.seeds} measurement sets "
              f"falls with depth {list(z.depths)}: {[round(v, 5) for v in means]}",
              measured=bool(np.all(np.diff(means) < 0)))
    worst3, best2 = max(index[3]), min(index[2])
    ctx.at_most("sensing_depth3_vs_depth2",
                "... with a margin: the worst depth-3 index over the seeds is below half the best depth-2 index",
                measured=worst3 / best2, bound=0.5)
    ctx.table("sensing_index", [{"depth": N, "seed_index": i, "index": v} for N, vs in index.items()
                                for i, v in enumerate(vs)])


def toy_figure(ctx, state) -> None:
    """Closed form (lines) and flow (circles) of every mode, one panel per depth at the common sigma0."""
    from matplotlib.figure import Figure

    z, toy = state["size"], state["toy"]
    panels = [(b, N) for b, (N, s0) in enumerate(state["blocks"]) if s0 == z.toy_sigma0]
    fig = Figure(figsize=(3.3 * len(panels), 3.0))
    axes = fig.subplots(1, len(panels), squeeze=False)[0]
    t = toy["times"]
    for ax, (b, N) in zip(axes, panels, strict=True):
        th = incremental.trajectory(t, TARGETS, z.toy_sigma0, N)
        for i in range(len(TARGETS) - 1):
            ax.plot(t, th[:, i], color=f"C{i}", lw=1.2)
            ax.plot(t[::6], toy["sigma"][::6, b, i], "o", color=f"C{i}", ms=2.5, mfc="none")
        ax.set(xscale="log", xlabel="time t", ylabel="sigma_i", title=f"depth {N}, sigma0 = {z.toy_sigma0:g}")
    fig.tight_layout()
    ctx.figure("toy_modes", fig)


def sensing_figure(ctx, state) -> None:
    """Top 5 singular values of the product against GD iterations, one panel per depth (first seed)."""
    from matplotlib.figure import Figure

    z, sensing = state["size"], state["sensing"]
    fig = Figure(figsize=(3.3 * len(sensing), 3.0))
    axes = fig.subplots(1, len(sensing), squeeze=False)[0]
    for ax, (N, g) in zip(axes, sensing.items(), strict=True):
        for i in range(g["sv"].shape[2]):
            ax.plot(g["steps"], g["sv"][0, :, i], color=f"C{i}")
        ax.set(xlabel="GD iteration", ylabel="singular values", title=f"depth {N}, {z.d}x{z.d}, m = {z.m}")
    fig.tight_layout()
    ctx.figure("sensing_singular_values", fig)


EXPERIMENT = Experiment(
    name="gissin2020",
    title="The implicit bias of depth: incremental learning, toy model in closed form and matrix sensing",
    reference="D. Gissin, S. Shalev-Shwartz, A. Daniely, The Implicit Bias of Depth: How Incremental Learning "
    "Drives Generalization, ICLR 2020",
    bibtex=BIBTEX,
    sizes={
        "quick": {"toy_depths": [1, 2, 3, 4], "toy_sigma0": 1e-3, "toy_inits": [1e-2, 1e-4, 1e-6],
                  "toy_init_depths": [2, 3], "toy_t1": 60.0, "toy_records": 200,
                  "d": 10, "m": 200, "depths": [2, 3], "seeds": 4, "init": 1e-4, "eta": 0.5, "steps": 4000,
                  "records": 400},
        "full": {"toy_depths": [1, 2, 3, 4], "toy_sigma0": 1e-3, "toy_inits": [1e-2, 1e-3, 1e-4, 1e-6],
                 "toy_init_depths": [2, 3, 4], "toy_t1": 1200.0, "toy_records": 600,
                 "d": 50, "m": 1000, "depths": [1, 2, 3, 4], "seeds": 3, "init": 1e-4, "eta": 0.5, "steps": 20000,
                 "records": 1000},
    },
    setup=setup,
    claims=(toy_claims, toy_ordering_claims, sensing_claims),
    figures=(toy_figure, sensing_figure),
)

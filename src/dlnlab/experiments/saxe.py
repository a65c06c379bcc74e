"""Experiment "saxe": gradient flow of a deep linear network vs the Saxe et al. closed form (the worked example
of the experiment contract, see docs/writing-an-experiment.md).

Whitened inputs (``Sxx = I``), a target ``Syx = U diag(s) V^T`` with three distinct singular values and an
aligned, balanced initialisation of small mode strength ``u0``. Gradient flow (``dl.train(..., dl.Flow(rtol=1e-10,
atol=1e-12))``) must then follow the mode trajectories of :mod:`dlnlab.theory.modes`:

- depth 2: the logistic closed form ``u(t) = s / (1 + (s/u0 - 1) exp(-4 s t))`` (the library loss has no 1/2,
  so every mode learns twice as fast as in Saxe et al.'s 1/2-normalised equations);
- depth 3 (unequal hidden widths): ``du/dt = 6 u^(4/3) (s - u)``, integrated by SciPy on the scalar ODE.

Claims per depth: the end-to-end singular values agree with theory along the whole trajectory (at most 1e-6 of
the largest target value: a 1 % error in a mode's rate or a factor-2 slip in the loss normalisation moves the
curves by far more); balancedness, conserved by gradient flow, stays below 1e-7; the final loss is the global
minimum ``Syy - sum s^2`` within 1e-6.

How it is written: sizes (the number of recorded times) are data; ``setup`` runs both flows through
``ctx.cached`` (a rerun into the same ``--out`` reuses them) and returns the state; the claim and figure functions
only read that state.

Reference: A. M. Saxe, J. L. McClelland, S. Ganguli, "Exact solutions to the nonlinear dynamics of learning in
deep linear neural networks", ICLR 2014.
"""

from __future__ import annotations

import numpy as np

from ..nets import Net
from ..objective import Objective
from ..problems import Regression
from ..theory import modes
from ..train import Flow, Record, train
from ._experiment import Experiment

__all__ = ["EXPERIMENT", "problem", "flow_run", "CASES", "TRAJ_TOL", "BALANCE_TOL", "LOSS_TOL"]

BIBTEX = """@inproceedings{saxe2014exact,
  title     = {Exact solutions to the nonlinear dynamics of learning in deep linear neural
               networks},
  author    = {Saxe, Andrew M. and McClelland, James L. and Ganguli, Surya},
  booktitle = {International Conference on Learning Representations (ICLR)},
  year      = {2014}
}"""

TRAJ_TOL = 1e-6
BALANCE_TOL = 1e-7
LOSS_TOL = 1e-6
# (depth, widths, u0, t1): depth 2 from u0 = 1e-3 over t in [0, 8]; depth 3 with unequal hidden widths.
CASES = ((2, (5, 4, 3), 1e-3, 8.0), (3, (5, 6, 4, 3), 1e-2, 12.0))


def problem(*, d_in: int = 5, d_out: int = 3, s=(3.0, 1.5, 0.75), noise_floor: float = 0.5, seed: int = 0):
    """A whitened regression problem ``Sxx = I``, ``Syx = U diag(s) V^T`` with random orthonormal U, V."""
    rng = np.random.default_rng(seed)
    s = np.asarray(s, dtype=float)
    U, _ = np.linalg.qr(rng.normal(size=(d_out, len(s))))
    V, _ = np.linalg.qr(rng.normal(size=(d_in, len(s))))
    Syx = U @ np.diag(s) @ V.T
    return Regression.from_moments(np.eye(d_in), Syx, float(np.sum(s**2) + noise_floor)), s


def flow_run(*, widths, u0: float, t1: float, records: int, seed: int) -> dict:
    """Gradient flow from the aligned init: record times, end-to-end singular values, balancedness, loss."""
    prob, s = problem(seed=seed)
    params = modes.aligned_init(Net(tuple(widths)), prob, u0, key=seed)
    run = train(
        Objective(prob),
        params,
        Flow(t1=t1, rtol=1e-10, atol=1e-12, max_steps=200_000),
        record=Record(n=records, summaries=("loss", "singular_values", "balancedness")),
    )
    sigma = np.asarray(run.history["singular_values"])[:, : len(s)]
    return {
        "times": np.asarray(run.times),
        "sigma": sigma,
        "balancedness": np.asarray(run.history["balancedness"]),
        "loss": np.asarray(run.history["loss"]),
        "ok": np.asarray(run.ok),
    }


def setup(ctx) -> dict:
    """Both flows (stored pieces) and the closed-form mode trajectories at the recorded times."""
    prob, s = problem(seed=ctx.seed)
    state = {"s": s, "floor": float(prob.Syy) - float(np.sum(s**2)), "cases": {}}
    for depth, widths, u0, t1 in CASES:
        run = ctx.cached(f"flow_depth{depth}", flow_run, widths=widths, u0=u0, t1=t1, records=ctx.size.records,
                         seed=ctx.seed)
        theory = np.stack([modes.mode_strength(si, u0, run["times"], depth=depth) for si in s], axis=1)
        state["cases"][depth] = {**run, "theory": theory, "widths": widths, "u0": u0, "t1": t1}
    return state


def _depth_claims(depth: int):
    def claims(ctx, state) -> None:
        case, s = state["cases"][depth], state["s"]
        ok = bool(case["ok"]) and case["sigma"].shape == case["theory"].shape
        err = float(np.max(np.abs(case["sigma"] - case["theory"])) / s.max()) if ok else float("nan")
        ctx.at_most(
            f"depth{depth}_trajectory",
            f"Depth-{depth} gradient flow (widths {case['widths']}) follows the Saxe mode trajectories: "
            f"max |sigma_i(t) - u_i(t)| / s_max over {len(case['times'])} times",
            measured=err,
            bound=TRAJ_TOL,
        )
        ctx.at_most(
            f"depth{depth}_balanced",
            f"Depth-{depth} gradient flow conserves balancedness (max normalised gap along the run)",
            measured=float(np.max(case["balancedness"])),
            bound=BALANCE_TOL,
        )
        ctx.check_close(
            f"depth{depth}_final_loss",
            f"Depth-{depth} flow reaches the global minimum Syy - sum s_i^2 (squared loss, no 1/2) by t={case['t1']}",
            measured=float(case["loss"][-1]),
            expected=state["floor"],
            atol=LOSS_TOL,
        )
        ctx.table("modes", [
            {"depth": depth, "mode": i, "s": float(si), "u0": case["u0"],
             "max_abs_error": float(np.max(np.abs(case["sigma"][:, i] - case["theory"][:, i]))),
             "final_sigma": float(case["sigma"][-1, i])}
            for i, si in enumerate(s)
        ])

    claims.__name__ = f"depth{depth}"
    return claims


def modes_figure(ctx, state) -> None:
    """Closed-form mode strengths (lines) and the flow's singular values (circles), one panel per depth."""
    from matplotlib.figure import Figure

    cases = sorted(state["cases"].items())
    fig = Figure(figsize=(4.2 * len(cases), 3.2))
    axes = fig.subplots(1, len(cases), squeeze=False)[0]
    for ax, (depth, case) in zip(axes, cases, strict=True):
        t = case["times"]
        for i in range(case["theory"].shape[1]):
            ax.plot(t, case["theory"][:, i], color=f"C{i}", lw=1.5, label="closed form" if i == 0 else None)
            ax.plot(t[::4], case["sigma"][::4, i], "o", color=f"C{i}", ms=3, mfc="none",
                    label="gradient flow" if i == 0 else None)
        ax.set(title=f"depth {depth}", xlabel="time t", ylabel="mode strength sigma_i(A)")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    ctx.figure("modes", fig)


EXPERIMENT = Experiment(
    name="saxe",
    title="Saxe et al. mode dynamics: gradient flow vs closed form (demo)",
    reference="A. M. Saxe, J. L. McClelland, S. Ganguli, Exact solutions to the nonlinear dynamics of learning "
    "in deep linear neural networks, ICLR 2014",
    bibtex=BIBTEX,
    sizes={"quick": {"records": 120}, "full": {"records": 400}},
    setup=setup,
    claims=tuple(_depth_claims(depth) for depth, *_ in CASES),
    figures=(modes_figure,),
)

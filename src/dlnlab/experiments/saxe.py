"""Demo experiment "saxe": gradient flow of a deep linear network vs the Saxe et al. closed form.

Whitened inputs (``Sxx = I``), a target ``Syx = U diag(s) V^T`` with three distinct singular values
and an aligned, balanced initialisation of small mode strength ``u0``. Gradient flow
(``dl.train(method="flow")``, adaptive diffrax solver at rtol 1e-10) must then follow the mode
trajectories of :mod:`dlnlab.theory.modes`:

- depth 2: the logistic closed form ``u(t) = s / (1 + (s/u0 - 1) exp(-4 s t))`` (the library loss
  has no 1/2, so every mode learns twice as fast as in Saxe et al.'s 1/2-normalised equations);
- depth 3 (unequal hidden widths): ``du/dt = 6 u^(4/3) (s - u)``, integrated by SciPy on the scalar
  ODE.

Claims per depth: the end-to-end singular values agree with theory along the whole trajectory
(relative to the largest target value, tolerance 1e-6: a factor-2 slip in the loss normalisation or
a wrong exponent moves the curves by O(1)); balancedness, conserved by gradient flow, stays below
1e-7; the final loss reaches the global minimum ``Syy - sum s^2`` within 1e-6. This experiment is
the fast end-to-end check of the CLI pipeline.

Reference: A. M. Saxe, J. L. McClelland, S. Ganguli, "Exact solutions to the nonlinear dynamics of
learning in deep linear neural networks", ICLR 2014.
"""

from __future__ import annotations

import numpy as np

from ..nets import Net
from ..objective import Objective
from ..problems import Regression
from ..theory import modes
from ..train import train
from ._base import Context, Experiment, register

__all__ = ["EXPERIMENT", "problem"]

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


def problem(
    *, d_in: int = 5, d_out: int = 3, s=(3.0, 1.5, 0.75), noise_floor: float = 0.5, seed: int = 0
):
    """A whitened regression problem ``Sxx = I``, ``Syx = U diag(s) V^T`` with random orthonormal U,
    V."""
    rng = np.random.default_rng(seed)
    s = np.asarray(s, dtype=float)
    U, _ = np.linalg.qr(rng.normal(size=(d_out, len(s))))
    V, _ = np.linalg.qr(rng.normal(size=(d_in, len(s))))
    Syx = U @ np.diag(s) @ V.T
    return Regression.from_moments(np.eye(d_in), Syx, float(np.sum(s**2) + noise_floor)), s


def _depth_case(ctx: Context, depth: int, widths: tuple[int, ...], u0: float, t1: float):
    prob, s = problem(seed=ctx.seed)
    net = Net(widths)
    params = modes.aligned_init(net, prob, u0, key=ctx.seed)
    times = np.linspace(0.0, t1, 121 if ctx.quick else 401)
    run = train(
        Objective(prob),
        params,
        method="flow",
        t1=t1,
        save_at=times,
        rtol=1e-10,
        atol=1e-12,
        max_steps=200_000,
    )
    theory = np.stack([modes.mode_strength(si, u0, run.times, depth=depth) for si in s], axis=1)
    measured = np.asarray(run.history["singular_values"])[:, : len(s)]
    err = float(np.max(np.abs(measured - theory)) / s.max())
    name = f"depth{depth}"
    ctx.claim(
        f"{name}_trajectory",
        f"Depth-{depth} gradient flow (widths {widths}) follows the Saxe mode trajectories "
        f"(max |sigma_i(t) - u_i(t)| / s_max over {len(run.times)} times)",
        expected=0.0,
        measured=err,
        tolerance=TRAJ_TOL,
        passed=run.ok and err <= TRAJ_TOL,
    )
    bal = float(np.max(run.history["balancedness"]))
    ctx.claim(
        f"{name}_balanced",
        f"Depth-{depth} gradient flow conserves balancedness (max normalised gap along the run)",
        expected=0.0,
        measured=bal,
        tolerance=BALANCE_TOL,
        passed=bal <= BALANCE_TOL,
    )
    floor = float(prob.Syy) - float(np.sum(s**2))
    ctx.claim(
        f"{name}_final_loss",
        f"Depth-{depth} flow reaches the global minimum Syy - sum s_i^2 (squared loss, no 1/2) "
        f"by t={t1}",
        expected=floor,
        measured=run.final_loss,
        tolerance=LOSS_TOL,
        passed=abs(run.final_loss - floor) <= LOSS_TOL,
    )
    ctx.table(
        "modes",
        [
            {
                "depth": depth,
                "mode": i,
                "s": float(si),
                "u0": u0,
                "max_abs_error": float(np.max(np.abs(measured[:, i] - theory[:, i]))),
                "final_sigma": float(measured[-1, i]),
            }
            for i, si in enumerate(s)
        ],
    )
    return run.times, measured, theory


_CURVES: dict[int, tuple] = {}


def depth2(ctx: Context) -> None:
    """Depth 2, widths (5, 4, 3), u0 = 1e-3."""
    _CURVES[2] = _depth_case(ctx, 2, (5, 4, 3), 1e-3, 8.0)


def depth3(ctx: Context) -> None:
    """Depth 3, unequal hidden widths (5, 6, 4, 3), u0 = 1e-2."""
    _CURVES[3] = _depth_case(ctx, 3, (5, 6, 4, 3), 1e-2, 12.0)


def figure(ctx: Context) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(_CURVES), figsize=(4.2 * len(_CURVES), 3.2), squeeze=False)
    for ax, (depth, (t, measured, theory)) in zip(axes[0], sorted(_CURVES.items()), strict=True):
        for i in range(theory.shape[1]):
            ax.plot(t, theory[:, i], color=f"C{i}", lw=1.5, label="closed form" if i == 0 else None)
            ax.plot(
                t[::4],
                measured[::4, i],
                "o",
                color=f"C{i}",
                ms=3,
                mfc="none",
                label="gradient flow" if i == 0 else None,
            )
        ax.set(title=f"depth {depth}", xlabel="time t", ylabel="mode strength sigma_i(A)")
        ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    ctx.figure("modes", fig)
    _CURVES.clear()


EXPERIMENT = register(
    Experiment(
        name="saxe",
        title="Saxe et al. mode dynamics: gradient flow vs closed form (demo)",
        reference="A. M. Saxe, J. L. McClelland, S. Ganguli, Exact solutions to the nonlinear "
        "dynamics of learning in deep linear neural networks, ICLR 2014",
        bibtex=BIBTEX,
        steps=(depth2, depth3, figure),
    )
)

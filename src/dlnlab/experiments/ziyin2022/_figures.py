"""Figures of ziyin2022 (bare matplotlib Figures; the runner saves them)."""

from __future__ import annotations

import numpy as np

from ...problems import Dropout
from ...theory import exact
from ._claims_exact import slice_curvature
from ._claims_gd import _best_points, branch_op
from ._claims_noise import variance_grids
from ._runs import problem, scalar_problem, widths_for

__all__ = ["phase_diagram_figure", "loss_slices_figure", "variance_figure", "critical_decay_figure"]


def phase_diagram_figure(ctx, state) -> None:
    from matplotlib.figure import Figure

    z = state["size"]
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    prob = problem()
    for ax, D in zip(axes, (1, 2, 3)):
        widths = widths_for(D, z.width)
        crit = exact.critical_weight_decay(prob, widths)
        grid = np.linspace(0.02, 1.7, 200) * crit.critical
        ax.plot(grid, [exact.solve(prob, widths, g).order_parameter for g in grid], "k-", label="theory (global min)")
        pts = _best_points(state, D)
        ax.plot([f * crit.critical for f in pts], [op for op, _ in pts.values()], "o", color="C0",
                label="GD (best of 2 inits)")
        if D >= 2:
            meta = np.linspace(crit.critical, crit.spinodal * (1 - 1e-6), 60)
            ax.plot(meta, [branch_op(prob, widths, g) for g in meta], "k--", lw=1, label="theory (metastable)")
            ax.axvline(crit.spinodal, color="gray", ls="--", lw=1)
        if D in state["sweeps"]:
            lv, ops = state["sweeps"][D]["levels"], state["sweeps"][D]["ops"]
            n_up = (len(lv) + 1) // 2
            ax.plot(lv[:n_up], ops[:n_up], "^", color="C3", mfc="none", label="sweep up")
            ax.plot(lv[n_up:], ops[n_up:], "v", color="C2", mfc="none", label="sweep down")
        ax.axvline(crit.critical, color="gray", ls=":", lw=1)
        ax.set(title=f"D = {D} hidden layer(s)", xlabel="weight decay gamma", ylabel="sum_l ||W_l||_F^2")
        ax.legend(fontsize=7)
    fig.tight_layout()
    ctx.figure("phase_diagram", fig)


def loss_slices_figure(ctx, state) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    s = np.linspace(-0.25, 1.25, 151)
    for D in (1, 2, 3):
        _, fn = slice_curvature(scalar_problem(), (1,) + (4,) * D + (1,), 0.1)
        ax.plot(s, np.asarray(fn(s)), label=f"D = {D}")
    ax.axvline(0, color="gray", lw=0.8)
    ax.set(xlabel="s (weights = s x global minimum)", ylabel="loss", title="gamma = 0.1, E x^2 = E xy = 1")
    ax.legend()
    ctx.figure("loss_slices", fig)


def variance_figure(ctx, state) -> None:
    from matplotlib.figure import Figure

    z = state["size"]
    fig = Figure(figsize=(13, 3.8))
    axes = fig.subplots(1, 3)
    grids = variance_grids(z)
    xs = {"width": z.var_widths, "noise": z.var_noises, "depth": z.var_depths}
    labels = {"width": ("hidden width (D = 2, s2 = 1)", "loglog"), "noise": ("noise variance s2 (D = 1, width 4)",
                                                                             "loglog"),
              "depth": ("hidden layers D (width 4, dropout 0.2)", "plot")}
    for ax, (name, grid) in zip(axes, grids.items()):
        v = [exact.solve(p, w, g, n).prediction_variance() for p, w, g, n in grid]
        getattr(ax, labels[name][1])(xs[name], v, "o-", ms=3)
        ax.set(xlabel=labels[name][0], ylabel="E_x Var f(x) at the global minimum")
    fig.tight_layout()
    ctx.figure("variance", fig)


def critical_decay_figure(ctx, state) -> None:
    from matplotlib.figure import Figure

    z = state["size"]
    prob = scalar_problem()
    Ds = np.arange(1, z.max_depth + 1)
    clean = [exact.critical_weight_decay(prob, (1,) + (8,) * D + (1,)).critical for D in Ds]
    noisy = [exact.critical_weight_decay(prob, (1,) + (8,) * D + (1,), Dropout(0.5)).critical for D in Ds]
    fig = Figure(figsize=(5, 3.8))
    ax = fig.subplots()
    ax.semilogy(Ds, clean, "k-", label="no noise")
    ax.semilogy(Ds, noisy, "C1-", label="dropout p = 0.5, width 8")
    ax.semilogy(Ds, 1.0 / Ds, "k:", lw=1, label="e^2 / (a D)")
    ax.set(xlabel="hidden layers D", ylabel="gamma*", title="critical weight decay vs depth")
    ax.legend(fontsize=7)
    ctx.figure("critical_decay", fig)

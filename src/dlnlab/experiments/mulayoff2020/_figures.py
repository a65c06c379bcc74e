"""Figures of mulayoff2020: functions ``fn(ctx, state)`` drawing on ``matplotlib.figure.Figure`` (no pyplot, no
backend switching)."""

from __future__ import annotations

import numpy as np
from matplotlib.figure import Figure

from ...theory import flat

__all__ = ["FIGURES"]


def _init_scale_rows(state):
    return [(r["scale"], flat.sharpness_at_minimum(r["prob"], r["params"], tol=1e-7)
             / flat.flattest_sharpness(r["prob"], len(r["params"])))
            for r in state["resnet"][state["size"].scale_depth] if r["claim"] == "init_scale" and r["converged"]]


def init_scale_figure(ctx, state) -> None:
    """Sharpness ratio of every GD limit against the init scale, with the per-scale median."""
    pts = np.array(_init_scale_rows(state))
    scales = state["size"].scales
    med = [np.median(pts[pts[:, 0] == s, 1]) if np.any(pts[:, 0] == s) else np.nan for s in scales]
    fig = Figure(figsize=(4.5, 3.3))
    ax = fig.subplots()
    ax.scatter(pts[:, 0], pts[:, 1], s=12, alpha=0.6, label="runs")
    ax.plot(scales, med, "k-o", ms=4, label="median")
    ax.axhline(1.0, color="C2", ls="--", label="flattest (theory)")
    ax.set(xlabel="init scale s (W_i = I + s G)", ylabel="sharpness / lambda*", yscale="log",
           title="Sharpness of the GD limit vs init scale")
    ax.legend(frameon=False, fontsize=8)
    fig.tight_layout()
    ctx.figure("sharpness_vs_init_scale", fig)


def coupling_figure(ctx, state) -> None:
    """Coupling matrices |<u_k(W_i), v_l(W_{i+1})>|: deepest zero-init ResNet, trained and initial ReLU net."""
    N = max(state["size"].zero_init_depths)
    lin = [r for r in state["resnet"][N] if r["claim"] == "zero_init" and r["name"] == "nonsymmetric"][0]
    mats = [(f"linear ResNet N={N}, zero init", flat.coupling(lin["params"])),
            ("ReLU denoiser, trained", flat.coupling(state["relu"]["params"], top=8)),
            ("ReLU denoiser, init", flat.coupling(state["relu"]["init"], top=8))]
    n_pairs = max(len(m) for _, m in mats)
    fig = Figure(figsize=(2.0 * n_pairs, 2.2 * len(mats)))
    axes = fig.subplots(len(mats), n_pairs, squeeze=False)
    for row, (title, Cs) in zip(axes, mats, strict=True):
        for j, ax in enumerate(row):
            if j < len(Cs):
                ax.imshow(Cs[j], vmin=0, vmax=1, cmap="magma")
                ax.set_title(f"{title}\nC_{j + 1}", fontsize=6)
            ax.set_xticks([])
            ax.set_yticks([])
    ctx.figure("coupling_heatmaps", fig)


def trajectories_figure(ctx, state) -> None:
    """Sharpness along GD: scalar chain from an unbalanced start at three steps; ReLU denoiser checkpoints."""
    st = state["stability"]
    fig = Figure(figsize=(9, 3.3))
    axes = fig.subplots(1, 2)
    for j, (eta, lam) in enumerate(zip(st["traj"]["lrs"], st["traj"]["sharpness"], strict=True)):
        keep = np.isfinite(lam) & (lam < 1e6)
        axes[0].plot(np.arange(lam.size)[keep], lam[keep], color=f"C{j}", label=f"eta={eta:.3f}")
        axes[0].axhline(2 / eta, color=f"C{j}", ls="--", lw=0.8)
    axes[0].axhline(2 / st["eta_c"], color="k", ls=":", label="lambda* (flattest)")
    axes[0].set(xlabel="GD step", ylabel="sharpness", yscale="log", title="scalar chain N=3, t=2 (dashed: 2/eta)")
    axes[0].legend(frameon=False, fontsize=7)
    for j, t in enumerate(state["relu"]["traj"]):
        lr = float(t["lr"])
        axes[1].plot(t["steps"], t["sharpness"], "-o", ms=3, color=f"C{j}", label=f"eta={lr:g}")
        axes[1].axhline(2 / lr, color=f"C{j}", ls="--", lw=0.8)
    axes[1].set(xlabel="GD step", ylabel="sharpness", yscale="log", title="ReLU denoiser (dashed: 2/eta)")
    axes[1].legend(frameon=False, fontsize=7)
    fig.tight_layout()
    ctx.figure("sharpness_trajectories", fig)


def relu_coupling_figure(ctx, state) -> None:
    """ReLU coupling z-score per pair against training time eta * steps (the transient)."""
    res = state["relu"]
    mean, sd = np.asarray(res["baseline_mean"]), np.asarray(res["baseline_sd"])
    fig = Figure(figsize=(4.5, 3.3))
    ax = fig.subplots()
    for j, t in enumerate(res["traj"]):
        lr = float(t["lr"])
        zs = (np.asarray(t["coupling"]) - mean) / sd
        for i in range(zs.shape[1]):
            ax.plot(lr * np.asarray(t["steps"]), zs[:, i], "o", ms=3, color=f"C{j}", ls="-" if i == 0 else "--",
                    label=f"eta={lr:g}, pair {i + 1}")
    ax.axhline(3.0, color="k", lw=0.8, ls=":", label="z = 3")
    ax.set(xlabel="training time eta * steps", ylabel="coupling z vs random nets", title="ReLU denoiser coupling")
    ax.legend(frameon=False, fontsize=6)
    fig.tight_layout()
    ctx.figure("relu_coupling_vs_time", fig)


def stability_figure(ctx, state) -> None:
    """Converged or not against eta / eta_crit, every multisection round."""
    st = state["stability"]
    fig = Figure(figsize=(4.5, 3.0))
    ax = fig.subplots()
    for k, r in enumerate(st["rounds"]):
        ax.plot(r["lrs"] / st["eta_c"] - 1, r["converged"].astype(float) + 0.03 * k, "o", ms=3, label=f"round {k}")
    ax.axvline(0.0, color="k", ls="--", label="theory 2/lambda*")
    ax.set_xscale("symlog", linthresh=1e-4)
    ax.set(xlabel="eta / eta_crit - 1", ylabel="converged", title="Scalar chain N=3: GD stability boundary")
    ax.legend(frameon=False, fontsize=7)
    fig.tight_layout()
    ctx.figure("stability_boundary", fig)


FIGURES = (init_scale_figure, coupling_figure, trajectories_figure, relu_coupling_figure, stability_figure)

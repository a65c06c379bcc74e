"""Benchmark 3: adaptive gradient flow against fixed-step gradient descent on a saddle-to-saddle problem.

A depth-3 linear net (widths 4-64-64-4) from a Gaussian init of scale 1e-6 on whitened data (``Sxx = I``)
whose teacher ``A* = U diag(1, 0.75, 0.5, 0) V^T`` has three distinct singular values (two in quick mode): the
loss sits on three plateaus (the origin, then the rank-1 and rank-2 saddles) before it reaches the minimum.
Because ``Sxx = I`` and there is no weight decay, ``loss - loss_min = ||A - A*||_F^2`` exactly, so a loss
threshold certifies the end-to-end matrix: both methods stop at ``||A - A*||_F <= 5e-4 ||A*||_F`` and the
benchmark checks both final matrices against ``A*`` (and each other) at 1e-3 relative.

- dlnlab flow: ``dl.train(obj, p0, dl.Flow(...), stop=dl.Stop(loss=...))`` with the default solver (Tsit5) and with
  ``solver="rkc"`` (stabilised Runge-Kutta-Chebyshev), both at rtol 1e-7, atol 1e-9 (the defaults).
- fixed-step GD: ``dl.train(obj, p0, dl.GD(lr=1/lambda*, ...))`` with ``lambda*`` the sharpness at the balanced global
  minimum (half the stability limit 2/lambda*; a tuned step), loss checked every 500 steps.

Gradient evaluations: GD uses one per step; the flow reports ``n_grad_evals`` (6 per Tsit5 step; for RKC its
stages, rejected steps included, plus 2 per Hessian-vector product of its spectral-radius estimate). Both also
evaluate the loss at their records/events, not counted on either side. The targets are checked against the
best flow solver (RKC).

A second comparison stops both at the first saddle (the rank-1 plateau): the leg away from the origin, where the
flow is not limited by stability (see docs/performance.md for why the later legs are).
"""

from __future__ import annotations

import jax
import numpy as np
from _common import Timer

import dlnlab as dl


def config(quick: bool) -> dict:
    return dict(widths=(4, 64, 64, 4), singular_values=(1.0, 0.75, 0.0, 0.0) if quick else (1.0, 0.75, 0.5, 0.0),
                scale=1e-6, noise=0.05, rel_tol=5e-4, check_tol=1e-3, t1=1e8, max_flow_steps=2_000_000,
                max_gd_steps=20_000_000, record_every=500)


def problem(c):
    d = c["widths"][0]
    rng = np.random.default_rng(1)
    U, _ = np.linalg.qr(rng.normal(size=(d, d)))
    V, _ = np.linalg.qr(rng.normal(size=(d, d)))
    s = np.asarray(c["singular_values"])
    A_star = U @ np.diag(s) @ V.T
    prob = dl.Regression.from_moments(np.eye(d), A_star, float(np.sum(s**2)) + c["noise"])
    return prob, A_star, s


def _rel(A, B):
    return float(np.linalg.norm(np.asarray(A) - B) / np.linalg.norm(B))


SOLVERS = ("rkc", "tsit5")


def _race(obj, p0, lr, threshold, c, *, warm: dict):
    """Flow (each solver) and GD to the same loss threshold; ``warm[name]`` says whether to time a second call
    (compiled runner reused) rather than the first; the first call's time, compilation included, is returned
    too."""
    out = {}
    log = dl.Record(spacing="log")
    gd_steps = c["max_gd_steps"]
    every = dl.Record(times=range(0, gd_steps + 1, c["record_every"]))
    for name, method, record in ([(s, dl.Flow(t1=c["t1"], max_steps=c["max_flow_steps"], solver=s), log)
                                  for s in SOLVERS] + [("gd", dl.GD(lr=lr, steps=gd_steps), every)]):
        times = []
        for _ in range(2 if warm[name] else 1):
            with Timer() as t:
                run = dl.train(obj, p0, method, record=record, stop=dl.Stop(loss=threshold))
            times.append(t.s)
        out[name] = (run, times[-1], times[0])
    return out


def run(quick: bool = False) -> dict:
    c = config(quick)
    prob, A_star, s = problem(c)
    net = dl.Net(c["widths"])
    obj = dl.Objective(prob)
    p0 = net.init(jax.random.key(0), scheme="gaussian", scale=c["scale"])
    lam = dl.curvature.sharpness(obj, net.init(jax.random.key(1), scheme="balanced", target=A_star))
    lr = 1.0 / lam
    loss_min = c["noise"]
    rows, comparisons, checks, notes, traces = [], [], [], [], {}

    # leg 1: from the origin to the rank-1 saddle (loss within 1e-3 of the plateau's drop)
    plateau1 = loss_min + float(np.sum(s[1:] ** 2))
    loss0 = float(obj.value(p0))
    leg1 = _race(obj, p0, lr, plateau1 + 1e-3 * (loss0 - plateau1), c, warm=dict(rkc=True, tsit5=True, gd=True))
    # whole sequence: to the global minimum, end-to-end matrix within rel_tol of A*. The flow runners were
    # compiled by leg 1 (thresholds are traced); RKC and GD are timed on a second call, Tsit5 (~30 s) once.
    threshold = loss_min + (c["rel_tol"] * np.linalg.norm(A_star)) ** 2
    leg2 = _race(obj, p0, lr, threshold, c, warm=dict(rkc=True, tsit5=False, gd=True))
    flow, gd = leg2["rkc"][0], leg2["gd"][0]

    def when(t, t0, name):
        return "warm call" if t != t0 else ("first call, compiled runner reused" if name != "gd"
                                            else "first call, compile incl.")

    for label, leg in (("to the first saddle", leg1), ("to the minimum (1e-3 end-to-end)", leg2)):
        for solver in SOLVERS:
            f, t_f, t_f0 = leg[solver]
            rows.append(dict(leg=label, method=f"flow ({solver})", seconds=t_f, timed=when(t_f, t_f0, solver),
                             first_call_s=t_f0, grad_evals=f.n_grad_evals, solver_steps=f.n_steps,
                             status=f.status, flow_time=float(f.times[-1])))
        (f, t_f, t_f0), (g, t_g, t_g0) = leg["rkc"], leg["gd"]
        rows.append(dict(leg=label, method=f"gd (lr={lr:.3g})", seconds=t_g, timed=when(t_g, t_g0, "gd"),
                         first_call_s=t_g0, grad_evals=g.n_grad_evals, status=g.status,
                         flow_time=float(lr * g.times[-1])))
        comparisons.append(dict(what=f"flow (rkc) vs GD {label}: gradient evaluations", ours=f.n_grad_evals,
                                theirs=g.n_grad_evals, unit="evals (fewer is better)",
                                ratio=g.n_grad_evals / f.n_grad_evals, target=20.0,
                                met=g.n_grad_evals / f.n_grad_evals >= 20.0, estimated=False))
        comparisons.append(dict(what=f"flow (rkc, {when(t_f, t_f0, 'rkc')}) vs GD ({when(t_g, t_g0, 'gd')}) "
                                     f"{label}: time", ours=t_f, theirs=t_g,
                                unit="s (less is better)", ratio=t_g / t_f, target=10.0,
                                met=t_g / t_f >= 10.0, estimated=False))
    A_f, A_g = dl.diagnostics.end_to_end(flow.params), dl.diagnostics.end_to_end(gd.params)
    A_t = dl.diagnostics.end_to_end(leg2["tsit5"][0].params)
    rels = dict(flow_vs_A_star=_rel(A_f, A_star), tsit5_vs_A_star=_rel(A_t, A_star), gd_vs_A_star=_rel(A_g, A_star),
                flow_vs_gd=_rel(A_f, np.asarray(A_g)))
    checks.append(dict(rels, tolerance=c["check_tol"],
                       passed=max(rels.values()) <= c["check_tol"]
                       and all(leg2[k][0].status == "converged" for k in ("rkc", "tsit5", "gd"))))
    tsit5 = leg2["tsit5"][0]
    traces = dict(flow_t=flow.times, flow_loss=flow.loss, gd_t=lr * gd.times, gd_loss=gd.loss,
                  tsit5_t=tsit5.times, tsit5_loss=tsit5.loss, loss_min=loss_min, lam=lam)
    notes.append(f"sharpness at the minimum {lam:.4g}; GD step 1/lambda* = {lr:.3g}; flow time to the minimum "
                 f"{float(flow.times[-1]):.4g}; after the first escape the flow is stiff (top Hessian eigenvalue "
                 f"~{lam:.2g} while the plateaus last ~1e4-1e5 time units), so an explicit solver's step is "
                 "capped by stability like GD's (Tsit5); RKC's stage count grows like sqrt(h * sharpness)")
    return dict(name="flow", title="3. Gradient flow", config=c, rows=rows, comparisons=comparisons,
                checks=checks, notes=notes, traces=traces)


def plot(res, folder):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    tr = res["traces"]
    fig, ax = plt.subplots(figsize=(6, 4))
    lmin = tr["loss_min"]
    for key, style, label in (("gd", "-", "gd, lr = 1/sharpness (time = lr x step)"), ("tsit5", ":", "flow (tsit5)"),
                              ("flow", "--", "flow (rkc)")):
        t = np.asarray(tr[f"{key}_t"], dtype=float)
        gap = np.maximum(np.asarray(tr[f"{key}_loss"], dtype=float) - lmin, 1e-12)
        ax.semilogy(t, gap, style, lw=2 if key == "gd" else 1.5, label=label)
    ax.set(xlabel="gradient-flow time", ylabel="loss - min loss", title="saddle-to-saddle, depth 3, init 1e-6")
    ax.legend()
    fig.tight_layout()
    path = folder / "flow.png"
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return [path]

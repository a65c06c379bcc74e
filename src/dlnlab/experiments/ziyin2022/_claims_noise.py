"""Claims on stochastic neurons: SGD with sampled masks, the prediction variance (Monte Carlo and the exact
noise-averaged loss), its vanishing with width, noise strength and depth, and the structure of the minimiser
(rank one, equal-magnitude neurons, balanced layers)."""

from __future__ import annotations

import math

import numpy as np

from ...diagnostics import rank_one_ratio
from ...objective import Objective
from ...problems import Dropout, MultiplicativeNoise
from ...theory import exact
from ._runs import problem, widths_for

__all__ = ["sgd_masks", "prediction_variance", "variance_limits", "minimiser_structure", "mask_samples",
           "variance_grids", "exact_variance"]


def mask_samples(params, noise, rng, n):
    """Mean end-to-end vectors ``(n, d_in)`` under ``n`` independent draws of every hidden unit's noise (inverted
    dropout masks or Gaussian ``1 + s N(0, 1)``): a Monte Carlo of the stochastic net, independent of the exact
    noise-averaged loss."""
    Ws = [np.asarray(W) for W in params]
    A = np.broadcast_to(Ws[0][:, None, :], (Ws[0].shape[0], n, Ws[0].shape[1]))  # (units, n, d_in)
    for W in Ws[1:]:
        if isinstance(noise, Dropout):
            eps = (rng.random((n, A.shape[0])) >= noise.p) / (1.0 - noise.p)
        else:
            eps = 1.0 + math.sqrt(noise.variance) * rng.normal(size=(n, A.shape[0]))
        B = eps.T[:, :, None] * A
        A = (W @ B.reshape(B.shape[0], -1)).reshape(W.shape[0], n, -1)
    return A[0]


def sgd_masks(ctx, state) -> None:
    z = state["size"]
    prob, noise, widths = problem(), Dropout(z.sgd_p), widths_for(2, z.width)
    g = z.sgd_frac * exact.critical_weight_decay(prob, widths, noise).critical
    v_th = exact.solve(prob, widths, g, noise).end_to_end[0]
    v = state["sgd"]["v"].reshape(-1, v_th.size).mean(axis=0)
    ctx.at_most("5_sgd_sampled_masks",
                f"Dropout p = {z.sgd_p}, two hidden layers: SGD with sampled masks from {z.sgd_runs} gain-1 inits "
                "fluctuates around the closed-form mean map: ||mean v - v*|| / ||v*|| over the second half of every "
                f"run (v* = {np.round(v_th, 5).tolist()}, SGD {np.round(v, 5).tolist()})",
                measured=float(np.linalg.norm(v - v_th) / np.linalg.norm(v_th)), bound=0.03)


def prediction_variance(ctx, state) -> None:
    z = state["size"]
    prob, noise, widths = problem(), Dropout(z.sgd_p), widths_for(2, z.width)
    g = z.sgd_frac * exact.critical_weight_decay(prob, widths, noise).critical
    sol = exact.solve(prob, widths, g, noise)
    X = np.array([[0.7, -1.2, 0.3], [1.0, 0.0, 0.0], [-0.4, 0.9, 1.5]])
    V = mask_samples(sol.params(), noise, np.random.default_rng(ctx.seed + 9), z.mc_samples)
    ctx.check_close("5_prediction_variance",
                    f"Prediction variance of the stochastic net at the global minimum, (k - 1)(v.x)^2, vs Monte Carlo "
                    f"over {z.mc_samples} sampled dropout masks at 3 inputs (the Monte Carlo's relative standard "
                    f"error is ~{math.sqrt(3 / z.mc_samples):.1e}-{math.sqrt(10 / z.mc_samples):.1e})",
                    measured=(V @ X.T).var(axis=0), expected=sol.prediction_variance(X), rtol=0.02)


def variance_grids(size) -> dict:
    """The three grids of the vanishing claims: (prob, widths, gamma, noise) per point."""
    prob = problem()
    return {
        "width": [(prob, widths_for(2, int(h)), 0.01, MultiplicativeNoise(1.0)) for h in size.var_widths],
        "noise": [(prob, widths_for(1, 4), 0.01, MultiplicativeNoise(float(s2))) for s2 in size.var_noises],
        "depth": [(prob, widths_for(int(D), 4), 0.01, Dropout(0.2)) for D in size.var_depths],
    }


def exact_variance(prob, widths, gamma, noise, params) -> float:
    """``E_x Var_eps f`` from the exact noise-averaged loss of dl.Objective: loss with noise minus loss without
    (the moment recursion; independent of the closed form's ``k``)."""
    return float(Objective(prob, weight_decay=gamma, noise=noise).value(params)
                 - Objective(prob, weight_decay=gamma).value(params))


def variance_limits(ctx, state) -> None:
    z = state["size"]
    grids, th, ex, rows = variance_grids(z), {}, {}, []
    for name, grid in grids.items():
        th[name], ex[name] = [], []
        for prob, widths, g, noise in grid:
            sol = exact.solve(prob, widths, g, noise)
            th[name].append(sol.prediction_variance())
            rows.append({"grid": name, "hidden_layers": len(widths) - 2, "width": widths[1],
                         "noise_variance": noise.variance, "var_theory": th[name][-1]})
        th[name] = np.array(th[name])
        # the exact cross-check at the ends and the peak of every grid (one compiled loss per shape: not everywhere)
        at = sorted({0, int(np.argmax(th[name])), len(grid) - 1})
        ex[name] = {i: exact_variance(*grid[i][:4], exact.solve(*grid[i][:4]).params()) for i in at}
    ctx.table("variance", rows)
    ctx.check_close("5_variance_formula",
                    "E_x Var_eps f = (k - 1) v^T Sxx v at the global minimum (closed form) equals the exact "
                    "noise-averaged loss of dl.Objective minus the noiseless one at the closed-form weights, at the "
                    "first, the last and the peak point of the width, noise and depth grids",
                    measured={k: list(v.values()) for k, v in ex.items()},
                    expected={k: [th[k][i] for i in v] for k, v in ex.items()}, rtol=1e-8, atol=1e-14)
    w, tw = np.asarray(z.var_widths, dtype=float), th["width"]
    ctx.check_close("5_variance_vanishes_with_width",
                    f"Two hidden layers, Gaussian noise s2 = 1, widths {list(z.var_widths)}: E_x Var vanishes like "
                    "1 / width (width x Var at the two largest widths agree; the largest width's Var relative to the "
                    "peak is ~0)", measured={"ratio": tw[-1] * w[-1] / (tw[-2] * w[-2]), "last_over_max":
                                             tw[-1] / tw.max()},
                    expected={"ratio": 1.0, "last_over_max": 0.0}, atol=0.02)
    s2, tn = np.asarray(z.var_noises), th["noise"]
    ctx.holds("5_variance_vanishes_with_noise",
              f"One hidden layer (width 4), noise variance s2 in {s2.min():g}..{s2.max():g}: E_x Var rises, peaks at "
              f"s2 = {s2[int(np.argmax(tn))]:.3g} (interior), then vanishes (value at the largest s2 below 1 % of "
              "the peak)", measured=[bool(0 < int(np.argmax(tn)) < len(tn) - 1), bool(tn[-1] < 0.01 * tn.max())])
    Ds, td = np.asarray(z.var_depths), th["depth"]
    crit = np.array([exact.critical_weight_decay(prob, widths, noise).critical
                     for prob, widths, _, noise in grids["depth"]])
    collapsed = crit <= 0.01
    ctx.holds("5_variance_vanishes_with_depth",
              f"Width 4, dropout p = 0.2, gamma = 0.01, D = {Ds.min()}..{Ds.max()} hidden layers: E_x Var is positive "
              "while gamma < gamma*(D) and exactly 0 once gamma >= gamma*(D) (collapse to zero, from D = "
              f"{int(Ds[np.argmax(collapsed)]) if collapsed.any() else 'none'}); it is 0 at the largest depth",
              measured=[bool(np.all((td > 0) == ~collapsed)), bool(collapsed[-1] and td[-1] == 0.0)])
    state_fig = {"width": (w, tw), "noise": (s2, tn), "depth": (Ds, td)}
    ctx.table("variance_curves", [{"grid": k, "x": float(a), "var": float(b)} for k, (xs, ys) in state_fig.items()
                                  for a, b in zip(xs, ys)])


def _spread(x) -> float:
    x = np.asarray(x)
    return float((x.max() - x.min()) / x.max())


def _neuron_spreads(params) -> list[float]:
    """Per hidden layer: relative spread of the hidden units' incoming row norms and outgoing column norms."""
    out = []
    for l in range(len(params) - 1):
        out.append(max(_spread(np.linalg.norm(params[l], axis=1)), _spread(np.linalg.norm(params[l + 1], axis=0))))
    return out


def minimiser_structure(ctx, state) -> None:
    z = state["size"]
    prob, widths = problem(), widths_for(z.struct_depth, z.width)
    noise = Dropout(z.struct_p)
    g = z.struct_frac * exact.critical_weight_decay(prob, widths, noise).critical
    sol = exact.solve(prob, widths, g, noise)
    piece = state["structure"]
    runs = [tuple(W[i] for W in piece["params_noisy"]) for i in range(z.struct_seeds)]
    clean = [tuple(W[i] for W in piece["params_clean"]) for i in range(z.struct_seeds)]
    r1 = [float(1 - np.min(np.asarray(rank_one_ratio(P)))) for P in runs]
    norms = np.array([[float(np.sum(np.asarray(W) ** 2)) for W in P] for P in runs])
    ctx.check_close("8_minimiser_structure",
                    f"Dropout p = {z.struct_p}, D = {z.struct_depth} hidden layers of width {z.width}, gamma = "
                    f"{z.struct_frac} gamma*: GD on the exact noise-averaged loss from {z.struct_seeds} gain-1 inits "
                    "ends at the closed-form global minimum (loss) with every layer rank one (1 - ||W||_2 / ||W||_F), "
                    "every hidden unit of equal magnitude (relative spread of incoming and outgoing norms) and the "
                    "closed-form balanced layer norms ||W_l||_F^2 = gamma_eff t* / gamma_l",
                    measured={"loss": piece["loss_noisy"], "rank_one_gap": r1,
                              "neuron_spread": [max(_neuron_spreads(P)) for P in runs], "layer_norms_sq": norms},
                    expected={"loss": np.full(z.struct_seeds, sol.loss), "rank_one_gap": np.zeros(z.struct_seeds),
                              "neuron_spread": np.zeros(z.struct_seeds),
                              "layer_norms_sq": np.tile(sol.layer_norms_sq, (z.struct_seeds, 1))},
                    rtol=1e-6, atol=1e-8)
    ctx.at_least("8_noise_forces_equal_neurons",
                 "Control without noise (same inits, gamma = the same fraction of its gamma*): the minimum is a "
                 "continuous family and GD keeps unequal hidden units (smallest relative neuron spread over the runs)",
                 measured=min(max(_neuron_spreads(P)) for P in clean), bound=0.05)

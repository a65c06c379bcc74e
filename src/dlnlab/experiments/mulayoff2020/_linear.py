"""Deep linear networks of mulayoff2020: problems, random global minima, and the trained linear ResNets.

Everything here is data in, arrays out: the pieces that ``setup`` stores through ``ctx.cached`` (one
``dl.train_batched`` call per depth for every linear-ResNet run of that depth) and the measurements the claims
read (sharpness and flattest sharpness from :mod:`dlnlab.theory.flat`, balancedness from
:mod:`dlnlab.diagnostics`).
"""

from __future__ import annotations

import jax
import numpy as np

from ...diagnostics import balancedness
from ...nets import Net
from ...objective import Objective
from ...problems import Regression
from ...theory import flat
from ...train import GD, Record, Stop, train_batched

__all__ = ["problem", "symmetric_target", "nonsymmetric_target", "gl_minimum", "resnet_specs", "resnet_runs",
           "limit_stats", "path_alignment"]


def problem(T, Sxx=None) -> Regression:
    """Regression with end-to-end target ``T`` (``Syx = T Sxx``) and minimum loss 0."""
    T = np.asarray(T, float)
    Sxx = np.eye(T.shape[1]) if Sxx is None else np.asarray(Sxx, float)
    return Regression.from_moments(Sxx, T @ Sxx, float(np.trace(T @ Sxx @ T.T)))


def _orth(rng, d):
    return np.linalg.qr(rng.normal(size=(d, d)))[0]


def symmetric_target(seed=0, spectrum=(2.5, 1.5, 1.0, 0.6)):
    """``Q diag(spectrum) Q^T`` with a Haar-random ``Q`` (returned too)."""
    Q = _orth(np.random.default_rng(seed), len(spectrum))
    return Q @ np.diag(spectrum) @ Q.T, Q


def nonsymmetric_target(seed=0, d=4):
    rng = np.random.default_rng(seed + 1)
    return 1.5 * np.eye(d) + 0.4 * rng.normal(size=(d, d)) / np.sqrt(d)


def gl_minimum(rng, T, widths, strength):
    """A random global minimum: the SVD-balanced factorisation of ``T`` through Haar-random hidden bases, then
    random invertible maps ``G = I + strength * Gaussian`` between consecutive layers (``W_i -> G W_i``,
    ``W_{i+1} -> W_{i+1} G^{-1}``). This constructs test points, it measures nothing."""
    N = len(widths) - 1
    U, s, Vt = np.linalg.svd(T, full_matrices=False)
    root = np.diag(s ** (1.0 / N))
    bases = [Vt.T] + [np.linalg.qr(rng.normal(size=(h, s.size)))[0] for h in widths[1:-1]] + [U]
    Ws = [bases[i + 1] @ root @ bases[i].T for i in range(N)]
    for i in range(N - 1):
        G = np.eye(widths[i + 1]) + strength * rng.normal(size=(widths[i + 1],) * 2)
        Ws[i], Ws[i + 1] = G @ Ws[i], Ws[i + 1] @ np.linalg.inv(G)
    return Ws


def anisotropic_cases(seed: int, n_cases: int) -> list:
    """Claim 4's problems: ``Sxx = Q diag(1, 2, 5, 10) Q^T`` with the symmetric target's ``Q`` (commuting with it),
    then a non-symmetric target."""
    T, Q = symmetric_target(seed)
    S = Q @ np.diag([1.0, 2.0, 5.0, 10.0]) @ Q.T
    return [("symmetric", T, S), ("nonsymmetric", nonsymmetric_target(seed), S)][:n_cases]


def resnet_specs(*, depth: int, seed: int, zero_init: bool, scales, scale_seeds: int, nw_cases: int) -> list[dict]:
    """The linear-ResNet (4x4 layers) runs of claims 2-4 at ``depth``: tag, problem, init, step size, metadata.
    Deterministic in its arguments, so ``setup`` rebuilds the metadata of a stored piece without training."""
    N = depth
    net = Net((4,) * (N + 1), residual=True)
    zero = tuple(np.eye(4) for _ in range(N))
    specs = []
    if zero_init:
        probs = {"symmetric": problem(symmetric_target(seed)[0]), "nonsymmetric": problem(nonsymmetric_target(seed))}
        lam = {k: flat.flattest_sharpness(p, N) for k, p in probs.items()}
        lr = 0.5 / max(lam.values())
        specs += [{"claim": "zero_init", "name": k, "prob": p, "init": zero, "lr": lr} for k, p in probs.items()]
        # the same runs at half the step: GD drifts from the balancedness that gradient flow conserves by O(eta)
        specs += [{"claim": "zero_init_half", "name": k, "prob": p, "init": zero, "lr": lr / 2}
                  for k, p in probs.items()]
    if scales:
        prob = problem(symmetric_target(seed)[0])
        lam_star = flat.flattest_sharpness(prob, N)
        G = [[np.asarray(W) - np.eye(4) for W in net.init(jax.random.key(1000 * seed + k), scheme="gaussian",
                                                           scale=1.0)] for k in range(scale_seeds)]
        for s in scales:
            for k in range(scale_seeds):
                init = zero if s == 0 else tuple(np.eye(4) + s * g for g in G[k])
                # a small step (2/eta = 20 lambda*) so that GD stability does not cap the sharpness
                specs.append({"claim": "init_scale", "scale": float(s), "seed": k, "prob": prob, "init": init,
                              "lr": 0.1 / lam_star})
    for name, T, S in anisotropic_cases(seed, nw_cases):
        prob = problem(T, S)
        specs.append({"claim": "non_whitened", "name": name, "prob": prob, "init": zero,
                      "lr": 0.5 / flat.balanced_sharpness(prob, N)})
    return specs


def resnet_runs(*, depth: int, seed: int, zero_init: bool, scales, scale_seeds: int, nw_cases: int, steps: int,
                record: int) -> dict:
    """Every run of :func:`resnet_specs` in one batched GD call (each stops when its gradient norm is below
    1e-12): final weights, whether it converged, and its step count."""
    specs = resnet_specs(depth=depth, seed=seed, zero_init=zero_init, scales=scales, scale_seeds=scale_seeds,
                         nw_cases=nw_cases)
    net = Net((4,) * (depth + 1), residual=True)
    runs = train_batched([Objective(sp["prob"], net=net) for sp in specs], [sp["init"] for sp in specs],
                         [GD(lr=sp["lr"], steps=steps) for sp in specs],
                         record=Record(times=range(0, steps + 1, record)), stop=Stop(grad_norm=1e-12))
    return {"params": [tuple(np.asarray(W) for W in r.params) for r in runs],
            "converged": np.array([r.status == "converged" for r in runs]),
            "steps": np.array([r.n_steps for r in runs])}


def path_alignment(params, u) -> np.ndarray:
    """Cosines ``c_i`` between the backward path ``W_{N:i+1}^T p`` (``p = T u / |T u|``) and the forward path
    ``W_{i:1} u``, ``i = 1..N-1``. Cauchy-Schwarz in the path lower bound of ``lambda_max`` makes them the
    coupling at any global minimum: whitened, ``prod_i c_i >= (lambda / lambda*)^(-N/2)`` (so all are 1 at a
    flattest minimum, the singular-vector coupling of the paper) and a flat, not flattest, minimum is
    nearly coupled."""
    Ws = [np.asarray(W, float) for W in params]
    N = len(Ws)
    z = [np.asarray(u, float)]
    for W in Ws:
        z.append(W @ z[-1])
    back = [z[-1] / np.linalg.norm(z[-1])]  # back[j] = W_{N:N-j+1}^T p
    for W in Ws[::-1]:
        back.append(W.T @ back[-1])
    cos = []
    for i in range(1, N):
        b, f = back[N - i], z[i]
        cos.append(float(b @ f / (np.linalg.norm(b) * np.linalg.norm(f))))
    return np.asarray(cos)


def limit_stats(prob, params, lam_star, u) -> dict:
    """Sharpness ratio, balancedness, couplings and gains along ``u`` of a trained limit."""
    lam = flat.sharpness_at_minimum(prob, params, tol=1e-7)
    N = len(params)
    gains = flat.layer_gains(params, u) / np.linalg.norm(flat.target(prob) @ u) ** (1 / N)
    return {"ratio": lam / lam_star, "sharpness": lam,
            "balancedness": float(balancedness(params).normalised),
            "path_coupling": float(np.min(flat.path_coupling(params, u))) if N > 1 else 1.0,
            "coupling": float(np.min(flat.coupling_scores(params))) if N > 1 else 1.0,
            "alignment": float(np.prod(path_alignment(params, u))) if N > 1 else 1.0,
            "gain_dev": float(np.max(np.abs(np.log(gains)))), "gains": gains}

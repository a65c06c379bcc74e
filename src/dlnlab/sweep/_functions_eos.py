"""Sweepable function of the edge of stability (cohen2021): where gradient descent ends, relative to ``2/eta``.

``eos_regression``: a deep linear network of ``depth`` weight matrices (hidden width ``width``) trained by full-batch
GD with step ``lr`` for ``steps`` steps on the anisotropic regression of the cohen2021 experiment (:func:`problem`:
``Sxx = R diag(x_spectrum) R^T``, target ``T = U diag(t_spectrum) V0^T R^T`` with ``V0`` a fixed draw, rotations
``R, U`` from ``data_seed``, label noise ``noise``). Loss ``E||W x - y||^2`` (no 1/2). Init ``"balanced"`` (an exactly
balanced factorisation of a random matrix of spectral norm ``init_scale``: gradient flow from it ends at the
balanced minimum, whose sharpness :func:`dlnlab.theory.flat.balanced_sharpness` gives in closed form) or
``"gaussian"`` (iid entries of std ``init_scale``). The sharpness is tracked at every step (``dl.summaries``
sharpness, warm-started Lanczos). Metrics: ``final_ratio`` (final sharpness times ``lr / 2``: <= 1 at a GD limit),
``max_ratio``, ``edge_fraction`` (fraction of the steps with ``|sharpness lr / 2 - 1| <= band``), ``crossed`` (1 when
the sharpness reached ``2/lr``), ``loss_increases`` (steps at which the loss went up), ``excess_loss`` (final loss
minus the least-squares floor), ``flow_ratio`` (the balanced minimum's sharpness times ``lr / 2``: above 1 the
flow's limit is unstable for GD) and ``flattest_ratio`` (the flattest minimum's, mulayoff2020: above 1 no minimum
is stable). The phase diagram is ``lr x depth x init_scale`` (examples/sweep_cohen2021.toml).
"""

from __future__ import annotations

import numpy as np

from ._registry import Field, Sweepable, register_sweepable

__all__ = ["EOS_REGRESSION", "problem", "edge", "edge_statistics", "LOSS_UP"]

# A loss increase counts when it exceeds this relative amount of the current excess loss plus rounding (moments
# give the loss to ~1e-15 absolute): rounding noise at a converged minimum is not an oscillation.
LOSS_UP = 1e-9


def edge(lr) -> float:
    """The stability threshold ``2 / lr``: GD with step ``lr`` on the library loss (no 1/2) is linearly unstable at
    a minimum whose sharpness exceeds it (with a 1/2-normalised loss the same statement reads ``2 / lr`` for that
    loss's sharpness, i.e. half ours). Every claim about "the edge" goes through this function."""
    return 2.0 / float(lr)


def _orth(rng, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.normal(size=(d, d)))
    return q * np.sign(np.diag(r))


def problem(*, x_spectrum, t_spectrum, noise: float, geometry_seed: int, seed):
    """The anisotropic regression ``(Regression, T, floor)``: ``Sxx = R diag(x_spectrum) R^T``,
    ``T = U diag(t_spectrum) V0^T R^T`` (``V0``: orthonormal ``d_in x d_out`` from ``geometry_seed``; ``R``, ``U``
    Haar from ``seed``), ``Syx = T Sxx``, ``Syy = tr(T Sxx T^T) + noise`` so the least-squares floor is ``noise``.

    Rotating inputs and outputs leaves every loss and sharpness unchanged, so ``seed`` changes the coordinates
    (and, through the init, the trajectory) but not the theory: the flow limit's and the flattest sharpness depend
    on the spectra and ``geometry_seed`` only.
    """
    from ..problems import Regression

    lam, s = np.asarray(x_spectrum, float), np.asarray(t_spectrum, float)
    d_in, d_out = lam.size, s.size
    V0 = _orth(np.random.default_rng(geometry_seed), d_in)[:, :d_out]
    rng = np.random.default_rng(seed)
    R, U = _orth(rng, d_in), _orth(rng, d_out)
    Sxx = R @ np.diag(lam) @ R.T
    T = U @ np.diag(s) @ V0.T @ R.T
    Syy = float(np.trace(T @ Sxx @ T.T)) + float(noise)
    return Regression.from_moments(Sxx, T @ Sxx, Syy), T, float(noise)


def init_params(net, *, init: str, init_scale: float, seed: int):
    """``"balanced"``: an exactly balanced factorisation of a Gaussian ``d_out x d_in`` matrix scaled to spectral norm
    ``init_scale``; ``"gaussian"``: iid ``N(0, init_scale^2)`` entries. Both from ``seed``."""
    import jax

    if init == "balanced":
        G = np.random.default_rng([seed, 1]).normal(size=(net.widths[-1], net.widths[0]))
        return net.init(jax.random.key(seed), scheme="balanced", target=init_scale * G / np.linalg.norm(G, 2))
    return net.init(jax.random.key(seed), scheme="gaussian", scale=init_scale)


def edge_statistics(sharpness, loss, lr: float, floor: float, *, band: float) -> dict:
    """What a GD run did at the edge, from its per-step sharpness and loss (records at every step).

    ``ratio = sharpness * lr / 2`` via :func:`edge`; ``cross``: the first step with ratio >= 1 (-1 if none);
    ``max_ratio``; ``final_ratio``; ``edge_fraction``: fraction of all steps with ``|ratio - 1| <= band``;
    ``loss_increases``: steps whose loss exceeds the previous one by more than ``LOSS_UP`` times the previous
    excess loss plus 1e-14 (rounding); ``last_increase``: the last such step (-1 if none); ``peak``: the step of the
    largest ratio; ``after_peak``: steps from the peak to the last loss increase (0 if none after it): how long GD
    oscillates once the overshoot above ``2/lr`` has been thrown back (the catapult)."""
    S = np.asarray(sharpness, float)
    L = np.asarray(loss, float)
    ratio = S / edge(lr)
    hit = np.flatnonzero(ratio >= 1.0)
    excess = np.maximum(L - floor, 0.0)
    up = np.flatnonzero(np.diff(L) > LOSS_UP * excess[:-1] + 1e-14) + 1
    return {
        "ratio": ratio,
        "cross": int(hit[0]) if hit.size else -1,
        "max_ratio": float(np.max(ratio)),
        "final_ratio": float(ratio[-1]),
        "edge_fraction": float(np.mean(np.abs(ratio - 1.0) <= band)),
        "loss_increases": int(up.size),
        "last_increase": int(up[-1]) if up.size else -1,
        "peak": int(np.argmax(ratio)),
        "after_peak": max(int(up[-1]) - int(np.argmax(ratio)), 0) if up.size else 0,
    }


_FIELDS = {
    "depth": Field("int", 3, "number of weight matrices L", low=2, high=16),
    "width": Field("int", 8, "hidden width (every hidden layer)", low=3, high=1024),
    "lr": Field("float", 0.08, "GD step size", low=1e-6, high=10.0),
    "steps": Field("int", 600, "GD steps (sharpness and loss recorded at every step)", low=1, high=100_000),
    "init": Field("str", "balanced", "initialisation", choices=("balanced", "gaussian")),
    "init_scale": Field("float", 0.01, "balanced: spectral norm of the factorised matrix; gaussian: entry std",
                        low=1e-8, high=10.0),
    "x_spectrum": Field("floats", (4.0, 2.0, 1.0, 0.5, 0.25), "eigenvalues of Sxx (d_in of them)", low=1e-6,
                        high=1e6),
    "t_spectrum": Field("floats", (2.0, 1.0, 0.5), "singular values of the target (d_out of them)", low=0.0,
                        high=1e3),
    "noise": Field("float", 0.1, "label noise: the least-squares floor", low=0.0, high=1e6),
    "geometry_seed": Field("int", 104, "seed of the target's right singular vectors", low=0, high=2**63 - 1),
    "data_seed": Field("int", 0, "seed of the input/output rotations", low=0, high=2**63 - 1),
    "band": Field("float", 0.05, "edge band: |sharpness lr / 2 - 1| <= band", low=0.0, high=1.0),
}
_STATIC = ("depth", "width", "steps", "x_spectrum", "t_spectrum")
_METRICS = ("final_ratio", "max_ratio", "edge_fraction", "crossed", "loss_increases", "excess_loss", "flow_ratio",
            "flattest_ratio")


def _check(cfg: dict) -> None:
    from ..errors import ConfigError

    if len(cfg["t_spectrum"]) > len(cfg["x_spectrum"]):
        raise ConfigError(f"t_spectrum: expected at most d_in = {len(cfg['x_spectrum'])} values (d_out <= d_in), "
                          f"got {len(cfg['t_spectrum'])}")
    if cfg["width"] < len(cfg["t_spectrum"]):
        raise ConfigError(f"width: expected at least d_out = {len(cfg['t_spectrum'])} (the rank of the target), "
                          f"got {cfg['width']}")


def _run_batch(configs: list[dict]) -> list[dict]:
    from ..nets import Net
    from ..objective import Objective
    from ..theory import flat
    from ..train import GD, Record, train_batched

    c0 = configs[0]
    widths = (len(c0["x_spectrum"]),) + (c0["width"],) * (c0["depth"] - 1) + (len(c0["t_spectrum"]),)
    net = Net(widths)
    probs = [problem(x_spectrum=c["x_spectrum"], t_spectrum=c["t_spectrum"], noise=c["noise"],
                     geometry_seed=c["geometry_seed"], seed=c["data_seed"]) for c in configs]
    inits = [init_params(net, init=c["init"], init_scale=c["init_scale"], seed=c["seed"]) for c in configs]
    runs = train_batched([Objective(p[0]) for p in probs], inits, [GD(lr=c["lr"], steps=c["steps"]) for c in configs],
                         record=Record(times=tuple(range(c0["steps"] + 1)), summaries=("loss", "sharpness")))
    out = []
    for run, c, (prob, _, floor) in zip(runs, configs, probs, strict=True):
        S, L = np.asarray(run.history["sharpness"], float), np.asarray(run.history["loss"], float)
        st = edge_statistics(S, L, c["lr"], floor, band=c["band"])
        metrics = {"final_ratio": st["final_ratio"], "max_ratio": st["max_ratio"],
                   "edge_fraction": st["edge_fraction"], "crossed": float(st["cross"] >= 0),
                   "loss_increases": float(st["loss_increases"]), "excess_loss": float(L[-1] - floor),
                   "flow_ratio": flat.balanced_sharpness(prob, c["depth"]) / edge(c["lr"]),
                   "flattest_ratio": flat.flattest_sharpness(prob, c["depth"]) / edge(c["lr"])}
        out.append({"status": str(run.status), "message": str(run.message), "metrics": metrics,
                    "trajectory": {"times": np.asarray(run.times, float), "loss": L, "sharpness": S}})
    return out


EOS_REGRESSION = register_sweepable(
    Sweepable(
        name="eos_regression",
        fields=_FIELDS,
        run_batch=_run_batch,
        static=_STATIC,
        metrics=_METRICS,
        batch_size=8,
        check=_check,
        doc=__doc__.split("\n\n")[1],
    )
)

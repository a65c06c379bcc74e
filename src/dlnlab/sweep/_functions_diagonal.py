"""Sweepable function of diagonal linear networks (woodworth2020): the kernel-to-rich phase diagram.

``diagonal_regression``: a depth-``depth`` diagonal network ``beta = w_+^D - w_-^D`` (:class:`dlnlab.DiagonalNet`)
from ``w_+ = w_- = alpha``, trained by gradient flow (``dl.Flow``, rtol 1e-10, stopped at loss 1e-14 or at ``t1``)
on the noise-free sparse regression of the woodworth2020 experiment (Gaussian ``X`` of shape ``(n, d)``, ``s``
entries ``1/sqrt(s)``, ``data_seed``; :func:`problem`, shared with the woodworth2020 experiment). Loss
``(1/n) ||X beta - y||^2`` (no 1/2). Metrics: ``test_error`` (relative, on ``n_test`` fresh points), ``dist_l1`` and
``dist_l2`` (relative distance of ``beta`` to the min-l1 and min-l2 interpolators), ``l1_norm``, ``final_loss``,
``converged`` (1 when the loss stop was met). The phase diagram is ``alpha x depth``
(examples/sweep_woodworth2020.toml).
"""

from __future__ import annotations

import numpy as np

from ._registry import Field, Sweepable, register_sweepable

__all__ = ["DIAGONAL_REGRESSION", "LOSS_STOP", "problem", "test_error"]

# The loss is computed from moments (beta^T Sxx beta - 2 Syx beta + Syy), which rounds at ~1e-16 to 1e-15, so a
# lower threshold is a coin flip; 1e-14 is a relative residual ||X beta - y|| / ||y|| of ~1e-7.
LOSS_STOP = 1e-14


def problem(*, d: int, n: int, s: int, n_test: int, seed) -> dict:
    """A noise-free sparse regression: ``X`` (n, d) and ``X_test`` (n_test, d) standard Gaussian, ``beta*`` with
    ``s`` leading entries ``1/sqrt(s)``, ``y = X beta*``."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d))
    beta_star = np.zeros(d)
    beta_star[:s] = 1.0 / np.sqrt(s)
    X_test = rng.normal(size=(n_test, d))
    return {"X": X, "y": X @ beta_star, "beta_star": beta_star, "X_test": X_test}


def test_error(beta, data) -> float:
    """Relative test error ``mean((X_test (beta - beta*))^2) / mean((X_test beta*)^2)``."""
    r = data["X_test"] @ (np.asarray(beta) - data["beta_star"])
    return float(np.mean(r**2) / np.mean((data["X_test"] @ data["beta_star"]) ** 2))

_FIELDS = {
    "d": Field("int", 100, "input dimension (length of beta)", low=1, high=20_000),
    "n": Field("int", 40, "training samples (n < d: underdetermined)", low=1, high=20_000),
    "s": Field("int", 5, "nonzeros of the target", low=1, high=20_000),
    "n_test": Field("int", 2000, "test points", low=1, high=10**6),
    "depth": Field("int", 2, "D in beta = w_+^D - w_-^D", low=2, high=16),
    "alpha": Field("float", 0.1, "init scale: w_+ = w_- = alpha", low=1e-30, high=1e3),
    "data_seed": Field("int", 0, "seed of X, the test set", low=0, high=2**63 - 1),
    "t1": Field("float", 1e6, "flow: final time (the loss stop usually ends it first)", low=1e-9, high=1e12),
    "max_steps": Field("int", 20_000, "flow: solver step cap", low=1, high=10**7),
}
_STATIC = ("d", "n", "s", "n_test", "depth", "max_steps")
_METRICS = ("test_error", "dist_l1", "dist_l2", "l1_norm", "final_loss", "converged")


def _check(cfg: dict) -> None:
    from ..errors import ConfigError

    if cfg["s"] > cfg["d"]:
        raise ConfigError(f"s: expected at most d = {cfg['d']} nonzeros, got {cfg['s']}")


def _run_batch(configs: list[dict]) -> list[dict]:
    from .._diagonal import DiagonalNet
    from ..objective import Objective
    from ..problems import Regression
    from ..theory import diagonal
    from ..train import Flow, Record, Stop, train_batched

    c0 = configs[0]
    net = DiagonalNet(c0["d"], c0["depth"])
    sizes = {k: c0[k] for k in ("d", "n", "s", "n_test")}
    data = [problem(**sizes, seed=cfg["data_seed"]) for cfg in configs]
    objs = [Objective(Regression.from_data(p["X"], p["y"]), net=net) for p in data]
    runs = train_batched(objs, [net.init(scale=cfg["alpha"]) for cfg in configs],
                         [Flow(t1=cfg["t1"], rtol=1e-10, atol=1e-14, max_steps=c0["max_steps"]) for cfg in configs],
                         record=Record(n=50, spacing="log", summaries=("loss",)), stop=Stop(loss=LOSS_STOP))
    out = []
    for run, p in zip(runs, data, strict=True):
        beta = np.asarray(net.beta(run.params))
        l1, l2 = diagonal.min_l1_interpolator(p["X"], p["y"]), diagonal.min_l2_interpolator(p["X"], p["y"])
        loss = np.asarray(run.history["loss"], dtype=float)
        metrics = {"test_error": test_error(beta, p),
                   "dist_l1": float(np.linalg.norm(beta - l1) / np.linalg.norm(l1)),
                   "dist_l2": float(np.linalg.norm(beta - l2) / np.linalg.norm(l2)),
                   "l1_norm": float(np.abs(beta).sum()), "final_loss": float(loss[-1]),
                   "converged": float(run.status.value == "converged")}
        out.append({"status": str(run.status), "message": str(run.message), "metrics": metrics,
                    "trajectory": {"times": np.asarray(run.times, dtype=float), "loss": loss}})
    return out


DIAGONAL_REGRESSION = register_sweepable(
    Sweepable(
        name="diagonal_regression",
        fields=_FIELDS,
        run_batch=_run_batch,
        static=_STATIC,
        metrics=_METRICS,
        batch_size=8,
        check=_check,
        doc=__doc__.split("\n\n")[1],
    )
)

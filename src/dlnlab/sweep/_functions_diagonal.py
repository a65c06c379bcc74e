"""Sweepable function of diagonal linear networks (woodworth2020): the kernel-to-rich phase diagram.

``diagonal_regression``: a depth-``depth`` diagonal network ``beta = w_+^D - w_-^D`` (:class:`dlnlab.DiagonalNet`)
from ``w_+ = w_- = alpha``, trained by gradient flow (``dl.Flow``, rtol 1e-10, stopped at loss 1e-14 or at ``t1``)
on the noise-free sparse regression of the woodworth2020 experiment (Gaussian ``X`` of shape ``(n, d)``, ``s``
entries ``1/sqrt(s)``, ``data_seed``; :func:`dlnlab.experiments.woodworth2020.problem`). Loss
``(1/n) ||X beta - y||^2`` (no 1/2). Metrics: ``test_error`` (relative, on ``n_test`` fresh points), ``dist_l1`` and
``dist_l2`` (relative distance of ``beta`` to the min-l1 and min-l2 interpolators), ``l1_norm``, ``final_loss``,
``converged`` (1 when the loss stop was met). The phase diagram is ``alpha x depth``
(examples/sweep_woodworth2020.toml).
"""

from __future__ import annotations

import numpy as np

from ._registry import Field, Sweepable, register_sweepable

__all__ = ["DIAGONAL_REGRESSION"]

_FIELDS = {
    "d": Field("int", 100, "input dimension (length of beta)", low=1, high=20_000),
    "n": Field("int", 40, "training samples (n < d: underdetermined)", low=1, high=20_000),
    "s": Field("int", 5, "nonzeros of the target", low=1, high=20_000),
    "n_test": Field("int", 2000, "test points", low=1, high=10**6),
    "depth": Field("int", 2, "D in beta = w_+^D - w_-^D", low=2, high=16),
    "alpha": Field("float", 0.1, "init scale: w_+ = w_- = alpha", low=1e-30, high=1e3),
    "data_seed": Field("int", 0, "seed of X, the test set", low=0, high=2**63 - 1),
    "t1": Field("float", 1e6, "flow: final time (the loss stop usually ends it first)", low=0.0, high=1e12),
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
    from ..experiments.woodworth2020 import LOSS_STOP, problem, test_error
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

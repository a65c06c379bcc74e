"""Sweepable functions of deep matrix factorization (arora2019) and incremental learning (gissin2020).

``deep_matrix_completion``: a depth-``depth`` square factorization of a ``d x d`` target of rank ``rank`` (Gaussian
factors, RMS entry 1: :meth:`dlnlab.MatrixCompletion.random` with ``data_seed``), ``n_observed`` entries observed
uniformly at random, Gaussian init of end-to-end scale ``init_scale`` (per-factor std
``init_scale^(1/depth) / sqrt(d)``, roosephu/deep_matrix_factorization's rule), full-batch GD (``steps`` steps of
size ``lr``, stopping at training loss ``1e-8``). Loss ``(1/|Omega|) sum (W_ij - M_ij)^2`` (no 1/2). Metrics:
``relative_error`` (``||W - M||_F / ||M||_F`` on all entries), ``effective_rank`` (entropy effective rank of ``W``),
``final_loss``, ``fit_step`` (first recorded step with loss below 1e-5, NaN if never). Trajectories: ``times``,
``loss``, ``singular_values``. The phase diagram of arora2019 is ``depth x n_observed`` (examples/sweep_arora2019.toml).

``incremental_sensing``: gissin2020's matrix sensing. A ``d x d`` target ``diag(targets, 0, ...)``, ``m`` iid
Gaussian measurement matrices (``data_seed``), identity-scaled init ``W_k = init_scale^(1/depth) I`` (end-to-end
``init_scale * I``; ``seed`` is unused by this init), GD with step ``eta / (2 depth s_1^(2 - 2/depth))``. Metrics:
``incremental_index`` (``sigma_2 / s_2`` of the product when ``sigma_1`` first reaches ``s_1 / 2``, linear
interpolation between records: near 0 = one value at a time, about 1/2 = all at once), ``final_loss``,
``relative_error``. The phase diagram is ``depth x init_scale`` (examples/sweep_gissin2020.toml).
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ._registry import Field, Sweepable, register_sweepable

__all__ = ["DEEP_MATRIX_COMPLETION", "INCREMENTAL_SENSING"]

_FIT_LOSS = 1e-5

_DMC_FIELDS = {
    "d": Field("int", 20, "side of the square target", low=2, high=512),
    "rank": Field("int", 2, "rank of the target", low=1, high=512),
    "n_observed": Field("int", 160, "observed entries", low=1, high=512 * 512),
    "depth": Field("int", 3, "number of factors", low=1, high=16),
    "init_scale": Field("float", 1e-3, "end-to-end init scale", low=1e-12, high=10.0),
    "lr": Field("float", 1.0, "GD step size", low=0.0, high=1e6),
    "steps": Field("int", 6000, "GD steps at most", low=1, high=10**7),
    "data_seed": Field("int", 0, "seed of the target and the mask", low=0, high=2**63 - 1),
    "records": Field("int", 60, "recorded points", low=1, high=10**5),
}


def _dmc_check(cfg: dict) -> None:
    if cfg["rank"] > cfg["d"]:
        raise ConfigError(f"rank: expected at most d = {cfg['d']}, got {cfg['rank']}")
    if cfg["n_observed"] > cfg["d"] ** 2:
        raise ConfigError(f"n_observed: expected at most d^2 = {cfg['d'] ** 2}, got {cfg['n_observed']}")
    if cfg["lr"] <= 0:
        raise ConfigError(f"lr: expected a positive step size, got {cfg['lr']}")


def _record(steps: int, records: int):
    from ..train import Record

    every = max(1, steps // records)
    return Record(times=range(0, steps + 1, every), summaries=("loss", "singular_values"))


def _status(run) -> tuple[str, str]:
    return str(run.status), str(run.message)


def _dmc_batch(configs: list[dict]) -> list[dict]:
    import jax

    from ..diagnostics import effective_rank, end_to_end
    from ..nets import Net
    from ..objective import Objective
    from ..problems import MatrixCompletion
    from ..train import GD, Stop, train_batched

    c0 = configs[0]
    net = Net((c0["d"],) * (c0["depth"] + 1))
    objs = [Objective(MatrixCompletion.random(c["d"], c["d"], c["rank"], c["n_observed"], seed=c["data_seed"]),
                      net=net) for c in configs]
    inits = [net.init(jax.random.key(c["seed"]), scheme="gaussian",
                      scale=c["init_scale"] ** (1.0 / c["depth"]) / np.sqrt(c["d"])) for c in configs]
    runs = train_batched(objs, inits, [GD(lr=c["lr"], steps=c0["steps"]) for c in configs],
                         record=_record(c0["steps"], c0["records"]), stop=Stop(loss=1e-8))
    out = []
    for obj, run in zip(objs, runs, strict=True):
        loss = np.asarray(run.history["loss"], dtype=float)
        W = end_to_end(run.params)
        hit = np.nonzero(loss <= _FIT_LOSS)[0]
        metrics = {"relative_error": float(obj.problem.relative_error(W)), "effective_rank": float(effective_rank(W)),
                   "final_loss": float(loss[-1]),
                   "fit_step": float(np.asarray(run.times)[hit[0]]) if hit.size else float("nan")}
        traj = {"times": np.asarray(run.times, dtype=float), "loss": loss,
                "singular_values": np.asarray(run.history["singular_values"], dtype=float)}
        status, message = _status(run)
        out.append({"status": status, "message": message, "metrics": metrics, "trajectory": traj})
    return out


DEEP_MATRIX_COMPLETION = register_sweepable(Sweepable(
    name="deep_matrix_completion", fields=_DMC_FIELDS, run_batch=_dmc_batch,
    static=("d", "depth", "steps", "records"),
    metrics=("relative_error", "effective_rank", "final_loss", "fit_step"), batch_size=8, check=_dmc_check,
    doc=__doc__.split("\n\n")[1]))


_INC_FIELDS = {
    "d": Field("int", 10, "side of the square target", low=2, high=256),
    "m": Field("int", 200, "Gaussian measurements", low=1, high=10**6),
    "targets": Field("floats", (12.0, 6.0, 4.0, 3.0), "diagonal of the target (descending, s_1 > s_2 > 0)",
                     low=0.0, high=1e6),
    "depth": Field("int", 3, "number of factors", low=1, high=16),
    "init_scale": Field("float", 1e-4, "end-to-end init scale (identity-scaled)", low=1e-12, high=10.0),
    "eta": Field("float", 0.5, "step size as a fraction of the top mode's inverse curvature", low=0.0, high=2.0),
    "steps": Field("int", 4000, "GD steps at most", low=1, high=10**7),
    "data_seed": Field("int", 0, "seed of the measurements", low=0, high=2**63 - 1),
    "records": Field("int", 400, "recorded points", low=2, high=10**5),
}


def _inc_check(cfg: dict) -> None:
    s = cfg["targets"]
    if len(s) < 2 or len(s) > cfg["d"] or not (s[0] > s[1] > 0) or list(s) != sorted(s, reverse=True):
        raise ConfigError(f"targets: expected 2 to d = {cfg['d']} descending values with s_1 > s_2 > 0, got {list(s)}")
    if cfg["eta"] <= 0:
        raise ConfigError(f"eta: expected a positive fraction, got {cfg['eta']}")


def crossing_index(sv: np.ndarray, s1: float, s2: float) -> float:
    """``sigma_2 / s_2`` where ``sigma_1`` first reaches ``s_1 / 2`` (linear interpolation; NaN if never)."""
    above = np.nonzero(sv[:, 0] >= s1 / 2)[0]
    if above.size == 0:
        return float("nan")
    i = int(above[0])
    if i == 0:
        return float(sv[0, 1] / s2)
    w = (s1 / 2 - sv[i - 1, 0]) / (sv[i, 0] - sv[i - 1, 0])
    return float(((1 - w) * sv[i - 1, 1] + w * sv[i, 1]) / s2)


def _inc_batch(configs: list[dict]) -> list[dict]:
    import jax

    from ..diagnostics import end_to_end
    from ..nets import Net
    from ..objective import Objective
    from ..problems import MatrixSensing
    from ..train import GD, Stop, train_batched

    c0 = configs[0]
    N = c0["depth"]
    net = Net((c0["d"],) * (N + 1))
    objs, inits, lrs = [], [], []
    for c in configs:
        T = np.zeros((c["d"], c["d"]))
        k = len(c["targets"])
        T[np.arange(k), np.arange(k)] = c["targets"]
        objs.append(Objective(MatrixSensing.gaussian(T, c["m"], seed=c["data_seed"]), net=net))
        inits.append(net.init(jax.random.key(c["seed"]), scheme="identity", scale=c["init_scale"] ** (1.0 / N)))
        lrs.append(c["eta"] / (2.0 * N * c["targets"][0] ** (2.0 - 2.0 / N)))
    runs = train_batched(objs, inits, [GD(lr=lr, steps=c0["steps"]) for lr in lrs],
                         record=_record(c0["steps"], c0["records"]), stop=Stop(loss=1e-8))
    out = []
    for c, obj, run in zip(configs, objs, runs, strict=True):
        sv = np.asarray(run.history["singular_values"], dtype=float)
        loss = np.asarray(run.history["loss"], dtype=float)
        metrics = {"incremental_index": crossing_index(sv, c["targets"][0], c["targets"][1]),
                   "final_loss": float(loss[-1]),
                   "relative_error": float(obj.problem.relative_error(end_to_end(run.params)))}
        status, message = _status(run)
        out.append({"status": status, "message": message, "metrics": metrics,
                    "trajectory": {"times": np.asarray(run.times, dtype=float), "loss": loss, "singular_values": sv}})
    return out


INCREMENTAL_SENSING = register_sweepable(Sweepable(
    name="incremental_sensing", fields=_INC_FIELDS, run_batch=_inc_batch,
    static=("d", "m", "depth", "steps", "records"),
    metrics=("incremental_index", "final_loss", "relative_error"), batch_size=8, check=_inc_check,
    doc=__doc__.split("\n\n")[2]))

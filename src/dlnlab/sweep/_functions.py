"""Built-in sweepable functions.

``teacher_regression``: a deep linear network trained on a linear teacher ``y = T x`` given by its
moments. The teacher ``T = U diag(teacher_sv) V^T`` has random orthonormal ``U, V`` drawn from
``data_seed``; inputs have ``Sxx = diag(1, ..., 1/input_anisotropy)`` (log-spaced, whitened when
``input_anisotropy = 1``) and a label noise floor ``noise_floor`` is added to ``Syy``. The net has
``depth`` weight matrices of hidden width ``width``; initialisation ``init`` (``"gaussian"`` with
std ``init_scale``, ``"width_power"`` with variance ``width**-gamma`` as in jacot2021,
``"fan_in"``/``"xavier"``/``"orthogonal"`` with gain ``init_scale``); ``method = "gd"`` (``steps``
steps of size ``lr``) or ``"flow"`` (gradient flow to time ``t1``). Squared loss ``E||f(x) - y||^2``
with no 1/2; ``weight_decay`` adds ``gamma sum ||W_i||_F^2``.

Metrics (one row each in the sweep table): ``final_loss``; ``excess_loss = final_loss - min_loss``
with ``min_loss = Syy - tr(Syx Sxx^-1 Syx^T)`` the least-squares floor; ``effective_rank`` and
``numerical_rank`` (rtol 1e-3) of the final end-to-end matrix; ``balancedness`` (normalised, 0 =
balanced); ``fit_time``, the first recorded time at which the excess loss fell below 1e-3 of its
initial value (NaN if never; steps for gd, flow time for flow); ``grad_evals``. Trajectories:
``times``, ``loss``, ``singular_values``, ``balancedness``.
"""

from __future__ import annotations

import numpy as np

from ..errors import ConfigError
from ._registry import Field, Sweepable, register_sweepable

__all__ = ["TEACHER_REGRESSION"]

# Every numeric field has a range, checked when the config is loaded (before anything runs): beyond it a run
# cannot give a meaningful number in float64 (teacher values or init scales whose moments or weights overflow),
# would exhaust memory (widths, dimensions) or would run for days (steps, t1). Step sizes up to 1e6 are allowed:
# a run that blows up ends "diverged", a result.
_FIELDS = {
    "d_in": Field("int", 6, "input dimension", low=1, high=4096),
    "d_out": Field("int", 4, "output dimension", low=1, high=4096),
    "width": Field("int", 16, "hidden width (every hidden layer)", low=1, high=4096),
    "depth": Field("int", 3, "number of weight matrices L", low=1, high=64),
    "teacher_sv": Field("floats", (4.0, 2.0, 1.0, 0.5), "singular values of the teacher", low=0.0, high=1e6),
    "input_anisotropy": Field("float", 1.0, "condition number of Sxx (1 = whitened)", low=1.0, high=1e12),
    "noise_floor": Field("float", 0.1, "label noise added to Syy", low=0.0, high=1e12),
    "data_seed": Field("int", 0, "seed of the teacher's singular vectors", low=0, high=2**63 - 1),
    "init": Field(
        "str",
        "gaussian",
        "initialisation scheme",
        choices=("gaussian", "width_power", "fan_in", "xavier", "orthogonal"),
    ),
    "init_scale": Field(
        "float", 0.1, "std (gaussian) or gain (fan_in, xavier, orthogonal)", low=0.0, high=1e3
    ),
    "gamma": Field("float", 1.0, "width_power: variance width**-gamma", low=-8.0, high=8.0),
    "method": Field("str", "gd", "training method", choices=("gd", "flow")),
    "lr": Field("float", 0.05, "gd step size", low=0.0, high=1e6),
    "steps": Field("int", 2000, "gd steps", low=1, high=10**8),
    "t1": Field("float", 50.0, "flow: final time", low=0.0, high=1e8),
    "weight_decay": Field("float", 0.0, "gamma of sum_i ||W_i||_F^2 (no 1/2)", low=0.0, high=1e6),
    "records": Field("int", 100, "number of recorded points along the trajectory", low=1, high=10**5),
}
_STATIC = ("d_in", "d_out", "width", "depth", "method", "steps", "t1", "records")
_METRICS = (
    "final_loss",
    "excess_loss",
    "min_loss",
    "effective_rank",
    "numerical_rank",
    "balancedness",
    "fit_time",
    "grad_evals",
)


def _check(cfg: dict) -> None:
    if len(cfg["teacher_sv"]) > min(cfg["d_in"], cfg["d_out"]):
        raise ConfigError(
            f"teacher_sv: expected at most min(d_in, d_out) = {min(cfg['d_in'], cfg['d_out'])} "
            f"values, got {len(cfg['teacher_sv'])}"
        )
    if cfg["method"] == "gd" and cfg["lr"] <= 0:
        raise ConfigError(f"lr: expected a positive step size for method 'gd', got {cfg['lr']}")
    if cfg["method"] == "flow" and cfg["t1"] <= 0:
        raise ConfigError(f"t1: expected a positive final time for method 'flow', got {cfg['t1']}")


def teacher_problem(cfg: dict):
    """The :class:`~dlnlab.Regression` (from moments) of a config, and its least-squares floor."""
    from ..problems import Regression

    rng = np.random.default_rng(cfg["data_seed"])
    s = np.asarray(cfg["teacher_sv"])
    U, _ = np.linalg.qr(rng.normal(size=(cfg["d_out"], len(s))))
    V, _ = np.linalg.qr(rng.normal(size=(cfg["d_in"], len(s))))
    T = U @ np.diag(s) @ V.T
    Sxx = np.diag(np.geomspace(1.0, 1.0 / cfg["input_anisotropy"], cfg["d_in"]))
    Syx = T @ Sxx
    Syy = float(np.trace(T @ Sxx @ T.T)) + cfg["noise_floor"]
    floor = Syy - float(np.trace(Syx @ np.linalg.solve(Sxx, Syx.T)))
    return Regression.from_moments(Sxx, Syx, Syy), floor


def _init(cfg: dict):
    import jax

    from ..nets import Net

    net = Net((cfg["d_in"],) + (cfg["width"],) * (cfg["depth"] - 1) + (cfg["d_out"],))
    key = jax.random.key(cfg["seed"])
    if cfg["init"] == "width_power":
        return net, net.init(key, scheme="width_power", gamma=cfg["gamma"])
    return net, net.init(key, scheme=cfg["init"], scale=cfg["init_scale"])


def _end_to_end_spectrum(params) -> np.ndarray | None:
    """Singular values of ``W_L ... W_1``, or None when the product overflows (LAPACK is never handed inf or
    NaN: it would print ``** On entry to DLASCL ...`` on stdout and return garbage)."""
    with np.errstate(over="ignore", invalid="ignore"):
        A = np.asarray(params[0], dtype=float)
        for W in params[1:]:
            A = np.asarray(W, dtype=float) @ A
    if not np.all(np.isfinite(A)):
        return None
    return np.linalg.svd(A, compute_uv=False)


def _outcome(run, floor: float) -> dict:
    loss = np.asarray(run.history["loss"], dtype=float)
    excess = loss - floor
    hit = np.nonzero(excess <= 1e-3 * max(excess[0], 1e-300))[0]
    status, message = str(run.status), str(run.message)
    s = _end_to_end_spectrum(run.params)
    if s is None:  # finite weights whose product overflows float64: the run blew up
        s = np.full(1, np.nan)
        if status not in ("diverged", "failed"):
            status, message = "diverged", "the end-to-end matrix overflows float64"
    p = s / s.sum() if s.sum() > 0 else s
    eff = float(np.exp(-np.sum(p[p > 0] * np.log(p[p > 0])))) if s.sum() > 0 else 0.0
    if not np.isfinite(s).all():
        eff = float("nan")
    metrics = {
        "final_loss": float(loss[-1]),
        "excess_loss": float(loss[-1] - floor),
        "min_loss": float(floor),
        "effective_rank": eff,
        "numerical_rank": float(np.sum(s > 1e-3 * s[0])) if s[0] > 0 else (0.0 if s[0] == 0 else float("nan")),
        "balancedness": float(run.history["balancedness"][-1]),
        "fit_time": float(run.times[hit[0]]) if hit.size else float("nan"),
        "grad_evals": float(run.n_grad_evals),
    }
    traj = {
        "times": np.asarray(run.times, dtype=float),
        "loss": loss,
        "singular_values": np.asarray(run.history["singular_values"], dtype=float),
        "balancedness": np.asarray(run.history["balancedness"], dtype=float),
    }
    return {"status": status, "message": message, "metrics": metrics, "trajectory": traj}


_SUMMARIES = ("loss", "singular_values", "balancedness")


def _run_batch(configs: list[dict]) -> list[dict]:
    from ..objective import Objective
    from ..train import GD, Flow, Record, train_batched

    c0 = configs[0]
    objectives, inits, floors = [], [], []
    for cfg in configs:
        prob, floor = teacher_problem(cfg)
        net, params = _init(cfg)
        objectives.append(Objective(prob, weight_decay=cfg["weight_decay"], net=net))
        inits.append(params)
        floors.append(floor)
    if c0["method"] == "flow":
        record = Record(n=c0["records"], summaries=_SUMMARIES)
        runs = train_batched(objectives, inits, Flow(t1=c0["t1"]), record=record)
    else:
        every = max(1, c0["steps"] // c0["records"])
        record = Record(times=range(0, c0["steps"] + 1, every), summaries=_SUMMARIES)
        runs = train_batched(objectives, inits, [GD(lr=cfg["lr"], steps=c0["steps"]) for cfg in configs],
                             record=record)
    return [_outcome(run, floor) for run, floor in zip(runs, floors, strict=True)]


TEACHER_REGRESSION = register_sweepable(
    Sweepable(
        name="teacher_regression",
        fields=_FIELDS,
        run_batch=_run_batch,
        static=_STATIC,
        metrics=_METRICS,
        batch_size=8,
        check=_check,
        doc=__doc__.split("\n\n")[1],
    )
)

"""The result of a training run: ``dl.Run`` (a pytree) and ``dl.Status``."""

from __future__ import annotations

import enum

import equinox as eqx
import numpy as np

__all__ = ["Run", "Status"]


class Status(enum.StrEnum):
    """How a run ended. A string enum: ``run.status == "converged"`` works; ``Status.X.message`` explains it.

    - ``converged``: a stopping rule of :class:`~dlnlab.Stop` (loss or gradient norm) was met;
    - ``completed``: the run reached its end (all ``steps``, or ``t1``) without meeting a stopping rule;
    - ``diverged``: a non-finite or blown-up loss or non-finite parameters (``run.diverged_at`` says when; the
      run keeps its last finite parameters);
    - ``failed``: the ODE solver failed (``max_steps`` exhausted, step size collapse); ``run.message`` says why.
    """

    converged = "converged"
    completed = "completed"
    diverged = "diverged"
    failed = "failed"

    @property
    def message(self) -> str:
        return _MESSAGES[self]


_MESSAGES = {
    Status.converged: "a stopping rule (dl.Stop loss or grad_norm) was met",
    Status.completed: "the run reached its end (steps or t1) without meeting a stopping rule",
    Status.diverged: "the loss or the parameters blew up or became non-finite; lower the learning rate",
    Status.failed: "the ODE solver failed before reaching t1",
}


class Run(eqx.Module):
    """What :func:`dlnlab.train` returns: a pytree (``times``, ``history`` and ``params`` are its leaves; the
    rest is static metadata), so ``jax.tree_util`` functions and ``eqx.filter`` work on it.

    Attributes:
        times: record times (NumPy): step counts for ``dl.GD``/``dl.SGD`` (with a constant step ``lr`` the
            gradient-flow time is ``lr * times``), gradient-flow times for ``dl.Flow``.
        history: per record, one array per summary of ``record.summaries`` (leading axis = records).
        params: the final parameters (the last finite ones when the run diverged).
        status: a :class:`Status`.
        message: the status explained for this run (the step or time at which it stopped, the solver's reason).
        diverged_at: the step (GD/SGD: the step whose update blew up) or time (flow) of divergence, else ``None``.
        n_steps: optimizer steps taken (GD/SGD) or accepted solver steps (flow).
        n_grad_evals: gradient evaluations used (records excluded).
        method, record, stop: the objects that made the run: ``dl.train(obj, p0, run.method,
            record=run.record, stop=run.stop, key=...)`` repeats it.
    """

    times: np.ndarray
    history: dict
    params: object
    status: Status = eqx.field(static=True)
    message: str = eqx.field(static=True)
    diverged_at: float | None = eqx.field(static=True)
    n_steps: int = eqx.field(static=True)
    n_grad_evals: int = eqx.field(static=True)
    method: object = eqx.field(static=True)
    record: object = eqx.field(static=True)
    stop: object = eqx.field(static=True)

    @property
    def loss(self) -> np.ndarray:
        """The recorded loss (needs ``"loss"`` among the record's summaries)."""
        return self.history["loss"]

    @property
    def final_loss(self) -> float:
        return float(self.history["loss"][-1])

    @property
    def ok(self) -> bool:
        """True unless the run diverged or the solver failed."""
        return self.status in (Status.converged, Status.completed)

    def __repr__(self) -> str:
        last = f", final_loss={self.final_loss:.6g}" if "loss" in self.history else ""
        return (f"Run(method={self.method!r}, status={self.status.value!r}, records={len(self.times)}{last}, "
                f"n_steps={self.n_steps})")

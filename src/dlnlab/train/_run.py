"""The result of a training run."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

__all__ = ["Run", "STATUSES"]

STATUSES = ("converged", "max_steps", "diverged", "solver_failed")


@dataclass(frozen=True)
class Run:
    """What :func:`dlnlab.train` returns.

    Attributes:
        method: ``"gd"``, ``"sgd"`` or ``"flow"``.
        times: record times: step indices for ``gd``/``sgd``, gradient-flow times for ``flow``. For ``gd`` with a
            constant step ``lr`` the gradient-flow time is ``lr * times``.
        history: per record, ``"loss"`` (the exact objective, with weight decay), ``"grad_norm"``,
            ``"singular_values"`` (of the end-to-end matrix, descending), ``"layer_norms"`` (Frobenius, per layer),
            ``"balancedness"`` (normalised scalar, see :func:`dlnlab.diagnostics.balancedness`) and any
            user summaries.
        params: the final parameters (the last finite ones when the run diverged).
        status: ``"converged"`` (a loss or gradient threshold was met), ``"max_steps"`` (the step or time budget
            ran out first), ``"diverged"`` (NaN, Inf or blow-up: see ``diverged_at``) or ``"solver_failed"`` (flow).
        diverged_at: the step (gd/sgd) or the time (flow) at which the blow-up appeared, else ``None``.
        n_steps: optimizer steps taken (gd/sgd) or accepted + rejected solver steps (flow).
        n_grad_evals: gradient evaluations used.
        message: a human explanation of the status.
    """

    method: str
    times: np.ndarray
    history: dict[str, np.ndarray]
    params: tuple
    status: str
    diverged_at: float | None = None
    n_steps: int = 0
    n_grad_evals: int = 0
    message: str = ""
    config: dict = field(default_factory=dict)

    @property
    def loss(self) -> np.ndarray:
        return self.history["loss"]

    @property
    def final_loss(self) -> float:
        return float(self.history["loss"][-1])

    @property
    def ok(self) -> bool:
        """True unless the run diverged or the solver failed."""
        return self.status in ("converged", "max_steps")

    def __repr__(self) -> str:
        return (f"Run(method={self.method!r}, status={self.status!r}, records={len(self.times)}, "
                f"final_loss={self.final_loss:.6g}, n_steps={self.n_steps})")

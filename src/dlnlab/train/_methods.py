"""Training methods: ``dl.GD``, ``dl.SGD`` and ``dl.Flow``, small immutable objects that say how to train.

A method object validates every field when it is built, compares and hashes by value, and is recorded in the
:class:`~dlnlab.Run` it produced, so ``dl.train(obj, p0, run.method, record=run.record, stop=run.stop)`` repeats a
run. Its fields split into the *structure* of the compiled runner (the optimizer's code, the solver, ``max_steps``,
minibatching) and *values* that are traced (``lr``, ``steps``, ``t1``, ``rtol``, ``atol``): a loop over learning
rates, step counts or final times reuses one compiled runner.

Time units: ``dl.GD``/``dl.SGD`` record times are step counts (integers; with a constant step ``lr`` the
gradient-flow time is ``lr * step``); ``dl.Flow`` record times are gradient-flow times of ``dW/dt = -grad L``.

Example:
    >>> import optax, dlnlab as dl
    >>> dl.GD(lr=0.1, steps=100) == dl.GD(lr=0.1, steps=100)
    True
    >>> dl.GD(optimizer=optax.adam(1e-3), steps=10) == dl.GD(optimizer=optax.adam(1e-3), steps=10)
    True
    >>> dl.Flow(t1=10.0, solver="rkc").solver
    'rkc'
"""

from __future__ import annotations

import optax

from .._checks import as_float, as_int, one_of
from ..errors import ConfigError
from ._config import ConfigBase, config
from ._fingerprint import OptimizerKey

__all__ = ["GD", "SGD", "Flow", "SOLVERS", "AbstractMethod"]

SOLVERS = ("tsit5", "dopri5", "dopri8", "rkc")


def _lr(cls: str, lr, optimizer):
    if optimizer is not None:
        if not isinstance(optimizer, optax.GradientTransformation):
            raise ConfigError(f"{cls}.optimizer: expected an optax GradientTransformation or None, got "
                              f"{type(optimizer).__name__}")
        if lr is not None:
            raise ConfigError(f"{cls}.lr: expected None with an optimizer (its step size is set in the optax "
                              f"optimizer), got {lr!r}")
        return None
    if lr is None:
        raise ConfigError(f"{cls}.lr: expected a positive finite learning rate (or an optax optimizer), got None")
    return as_float(f"{cls}.lr", lr, low=0.0, low_open=True)


class AbstractMethod(ConfigBase):
    """What every method provides to the engine (internal)."""

    kind: str  # "descent" or "flow"

    def end(self) -> float:
        """The last record time (steps or t1)."""
        raise NotImplementedError


class _Descent(AbstractMethod):
    kind = "descent"
    stochastic = False

    def _key(self):
        return tuple(OptimizerKey(v) if isinstance(v, optax.GradientTransformation) else v
                     for v in super()._key())

    def end(self):
        return self.steps

    def structure(self):
        """The static part (key of the compiled runner); ``lr`` and ``steps`` are traced."""
        return (type(self).__name__, None if self.optimizer is None else OptimizerKey(self.optimizer),
                getattr(self, "batch_size", None))


@config
class GD(_Descent):
    """Full-batch gradient descent ``W <- W - lr * grad L(W)`` on the exact objective, or any optax optimizer.

    Args:
        lr: the step size (> 0). Give either ``lr`` or ``optimizer``.
        steps: the number of steps (>= 0).
        optimizer: an optax ``GradientTransformation`` (``update`` receives ``value=<current loss>`` when it
            accepts extra arguments). Compiled runners are cached on the optimizer's behaviour (see
            ``docs/architecture.md``): wrap it in ``optax.inject_hyperparams`` to loop over its hyperparameters
            without recompiling.
    """

    lr: float | None = None
    steps: int = 1000
    optimizer: optax.GradientTransformation | None = None

    def __post_init__(self):
        self._set("lr", _lr("GD", self.lr, self.optimizer))
        self._set("steps", as_int("GD.steps", self.steps, low=0))


@config
class SGD(_Descent):
    """Stochastic gradient descent on ``objective.sample_value``: minibatches of ``batch_size`` samples drawn
    without replacement at every step, and/or sampled neuron noise (an objective with ``stochastic=True``).

    Args:
        lr, steps, optimizer: as for :class:`GD`.
        batch_size: samples per step (``None``: every sample, only with a stochastic objective such as dropout).
    """

    lr: float | None = None
    steps: int = 1000
    batch_size: int | None = None
    optimizer: optax.GradientTransformation | None = None
    stochastic = True

    def __post_init__(self):
        self._set("lr", _lr("SGD", self.lr, self.optimizer))
        self._set("steps", as_int("SGD.steps", self.steps, low=0))
        if self.batch_size is not None:
            self._set("batch_size", as_int("SGD.batch_size", self.batch_size, low=1))


@config
class Flow(AbstractMethod):
    """Gradient flow ``dW/dt = -grad L(W)`` integrated by an adaptive diffrax solver under error control.

    Args:
        t1: the final time (> 0).
        solver: ``"tsit5"`` (default), ``"dopri5"``, ``"dopri8"`` or ``"rkc"`` (stabilised Runge-Kutta-Chebyshev
            for stiff flows, e.g. long plateaus after a small init learned its first mode; see
            :mod:`dlnlab.train._rkc`).
        rtol, atol: the solver's relative and absolute tolerances (> 0).
        max_steps: the cap on solver steps; a run that needs more ends with status ``"failed"``.
    """

    t1: float | None = None
    solver: str = "tsit5"
    rtol: float = 1e-7
    atol: float = 1e-9
    max_steps: int = 100_000
    kind = "flow"

    def __post_init__(self):
        if self.t1 is None:
            raise ConfigError("Flow.t1: expected the final gradient-flow time (a positive number), got None")
        self._set("t1", as_float("Flow.t1", self.t1, low=0.0, low_open=True))
        one_of("Flow.solver", self.solver, SOLVERS)
        self._set("rtol", as_float("Flow.rtol", self.rtol, low=0.0, low_open=True))
        self._set("atol", as_float("Flow.atol", self.atol, low=0.0, low_open=True))
        self._set("max_steps", as_int("Flow.max_steps", self.max_steps, low=1))

    def end(self):
        return self.t1

    def structure(self):
        """The static part; ``t1``, ``rtol`` and ``atol`` are traced."""
        return ("Flow", self.solver, self.max_steps)

"""``dl.Record`` (when and what a run records) and ``dl.Stop`` (when it stops early).

Example:
    >>> import dlnlab as dl
    >>> dl.Record(n=10, spacing="log", summaries=("loss", "sharpness")).n
    10
    >>> dl.Stop(loss=1e-10) == dl.Stop(loss=1e-10)
    True
"""

from __future__ import annotations

import numpy as np

from .. import summaries as _summaries
from .._checks import as_float, as_int, one_of
from ..errors import ConfigError
from ._config import ConfigBase, config

__all__ = ["Record", "Stop", "LOG_START"]

# A log-spaced flow record starts at this fraction of t1 (after the record at t = 0).
LOG_START = 1e-6


@config
class Record(ConfigBase):
    """When a run records and what.

    Args:
        n: the number of records after the initial one (default 100): the run records at ``n + 1`` times, the
            first at 0 and the last at the end (``steps`` or ``t1``).
        spacing: ``"linear"`` (default) or ``"log"`` (geometric from 1 step, or from ``1e-6 * t1`` for a
            flow, to the end; with steps, times are rounded to integers and repeats dropped).
        times: explicit record times instead of ``n``/``spacing`` (increasing, >= 0; step counts for GD/SGD,
            flow times for Flow; at most the end). The run still runs to its end, and its final state is
            recorded as well when it is not at one of ``times``.
        summaries: names (see :mod:`dlnlab.summaries`), summary objects or callables ``params -> array`` (or
            ``-> dict``). Default ``("loss", "grad_norm")``: the cheap ones.

    Whatever it stopped on, a run's history ends with its final state (a run that stopped early records where
    it stopped).
    """

    n: int | None = None
    spacing: str | None = None
    times: tuple | None = None
    summaries: tuple = ("loss", "grad_norm")

    def __post_init__(self):
        if self.times is None:
            self._set("n", as_int("Record.n", 100 if self.n is None else self.n, low=1))
            self._set("spacing", one_of("Record.spacing", "linear" if self.spacing is None else self.spacing,
                                        ("linear", "log")))
        else:
            for name in ("n", "spacing"):
                if getattr(self, name) is not None:
                    raise ConfigError(f"Record.{name}: expected None when times are given (explicit times "
                                      f"replace n and spacing), got {getattr(self, name)!r}")
            try:
                t = np.asarray(self.times, dtype=float)
            except (TypeError, ValueError):
                raise ConfigError(f"Record.times: expected a 1-D sequence of numbers, got {self.times!r}") from None
            if t.ndim != 1 or t.size == 0:
                raise ConfigError(f"Record.times: expected a non-empty 1-D sequence of times, got shape {t.shape}")
            if not np.all(np.isfinite(t)) or np.any(t < 0):
                raise ConfigError(f"Record.times: expected finite times >= 0, got {t.tolist()[:8]}")
            if np.any(np.diff(t) <= 0):
                raise ConfigError("Record.times: expected strictly increasing times")
            self._set("times", tuple(float(x) for x in t))
        items = (self.summaries,) if isinstance(self.summaries, str) or callable(self.summaries) \
            else self.summaries
        try:
            items = tuple(items)
        except TypeError:
            raise ConfigError(f"Record.summaries: expected a sequence of summaries, got {self.summaries!r}") from None
        if not items:
            raise ConfigError("Record.summaries: expected at least one summary (e.g. 'loss'), got none")
        resolved = tuple(_summaries.resolve(s, "Record.summaries") for s in items)
        names = [s.name for s in resolved]
        dup = sorted({n for n in names if names.count(n) > 1})
        if dup:
            raise ConfigError(f"Record.summaries: {dup} given twice; expected each summary once")
        self._set("summaries", resolved)

    def times_for(self, method) -> np.ndarray:
        """The record times of a run of ``method`` (checked against its end). For GD/SGD the end is appended
        if missing (the engine records there); a flow records its final state after the solve instead."""
        end = method.end()
        integer = method.kind == "descent"
        if self.times is None:
            if self.spacing == "linear":
                t = np.linspace(0.0, end, self.n + 1)
            else:
                start = 1.0 if integer else LOG_START * end
                t = np.concatenate([[0.0], np.geomspace(start, end, self.n)]) if end >= start else np.array([0.0])
            if integer:
                t = np.unique(np.round(t))
        else:
            t = np.asarray(self.times)
            if t[-1] > end * (1 + 1e-12):
                raise ConfigError(f"Record.times: expected times at most the end of the run ({end}), got {t[-1]}")
            if integer and np.any(t != np.round(t)):
                raise ConfigError(f"Record.times: expected whole step counts for {type(method).__name__}, got "
                                  f"{t[t != np.round(t)][:4].tolist()}")
        if integer and t[-1] < end:
            t = np.append(t, end)
        return t.astype(np.int64) if integer else t

    def slots(self) -> int:
        """How many record times any run can have (a static buffer length)."""
        return self.n + 1 if self.times is None else len(self.times) + 1


@config
class Stop(ConfigBase):
    """When a run stops before its end.

    Args:
        loss: stop (status ``"converged"``) once the loss is at most this value (``None``: never).
        grad_norm: stop once the gradient norm is at most this value (>= 0; ``None``: never). Under a flow the
            test is armed only after the loss has left its starting value (a small init sits next to the saddle
            at the origin, where the gradient is tiny), see :mod:`dlnlab.train._flow`.
        divergence: a loss above ``divergence * max(1, |initial loss|)`` (or a non-finite value) ends the run as
            ``"diverged"`` (> 1; default 1e12).

    For GD/SGD the loss and gradient tests are made at record times on the exact objective; for a flow they are
    events located in time.
    """

    loss: float | None = None
    grad_norm: float | None = None
    divergence: float = 1e12

    def __post_init__(self):
        if self.loss is not None:
            self._set("loss", as_float("Stop.loss", self.loss))
        if self.grad_norm is not None:
            self._set("grad_norm", as_float("Stop.grad_norm", self.grad_norm, low=0.0))
        self._set("divergence", as_float("Stop.divergence", self.divergence, low=1.0, low_open=True))

    def structure(self):
        return (self.loss is not None, self.grad_norm is not None)

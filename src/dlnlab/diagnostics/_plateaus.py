"""Plateaus and rank jumps of a training run (saddle-to-saddle dynamics, jacot2021).

A small initialisation learns the singular values of the end-to-end matrix one at a time: the loss
sits on a plateau near the rank-``k`` saddle, then drops as mode ``k+1`` is learned.
:func:`detect_plateaus` reads a :class:`dlnlab.Run` (``run.times``, ``run.history["loss"]``,
``run.history["singular_values"]``) and returns the rank-jump times, the numerical-rank staircase
and, for every plateau, its time span, the state where the flow is slowest (the closest approach to
the saddle), its loss and, when recorded, its end-to-end matrix and the numerical rank of every
layer. Record the extra quantities with
``dl.train(..., record=dl.Record(summaries=("loss", "singular_values", plateau_summaries)))``.

Definitions (the run's own normalisation; times are ``run.times``: steps for gd/sgd, flow time for
flow):

- ``J_k`` = first time at which ``s_k(A_t) > thresholds[k-1]`` (interpolated linearly in ``log s_k``
  between the two records that bracket the crossing); by default
  ``thresholds = frac * s_k(A_final)`` for the modes with ``s_k(A_final) > rank_rtol *
  s_1(A_final)``;
- the rank staircase ``r(t) = #{k : s_k(A_t) > thresholds[k-1]}``;
- plateau ``k`` spans ``[J_k, J_(k+1))`` (``J_0`` = first record, the last plateau ends at the last
  record and is marked ``final``); its state is the record in the middle 80% of the span with the
  smallest speed ``||dA/dt||`` (from ``history["end_to_end"]`` when recorded, else from the singular
  values).

Example:
    >>> import jax, numpy as np, dlnlab as dl
    >>> from dlnlab.diagnostics._plateaus import detect_plateaus, plateau_summaries
    >>> prob = dl.Regression.from_moments(np.eye(3), np.diag([3.0, 1.0, 0.0]), 10.0)
    >>> params = dl.Net((3, 6, 6, 3)).init(jax.random.key(0), scheme="gaussian", scale=1e-2)
    >>> rec = dl.Record(n=400, summaries=("loss", "singular_values", plateau_summaries))
    >>> run = dl.train(dl.Objective(prob), params, dl.GD(lr=0.01, steps=4000), record=rec)
    >>> found = detect_plateaus(run)
    >>> found.layer_ranks[1:], bool(abs(found.losses[1] - 1.0) < 1e-2)
    ([(1, 1, 1), (2, 2, 2)], True)
"""

from __future__ import annotations

from dataclasses import dataclass

import jax
import numpy as np

from ..errors import ConfigError, DataError
from ._spectra import svdvals
from ._validate import layers, number

__all__ = ["Plateau", "Plateaus", "detect_plateaus", "plateau_summaries"]

_LAYER_KEY = "layer_singular_values_"


def plateau_summaries(params) -> dict:
    """A user summary for ``dl.Record(summaries=(..., plateau_summaries))``: the end-to-end matrix and
    every layer's singular values (keys ``"end_to_end"`` and ``"layer_singular_values_<i>"``, ``i`` from 0). The layer SVDs
    cost ``O(w^3)`` per record: record sparingly on wide nets."""
    params = layers(params)
    A = params[0]
    for W in params[1:]:
        A = W @ A
    out = {"end_to_end": A}
    for i, W in enumerate(params):
        out[f"{_LAYER_KEY}{i}"] = svdvals(jax.lax.stop_gradient(W))
    return out


@dataclass(frozen=True)
class Plateau:
    """One plateau: ``rank`` k, span ``[start, end)``, the state's ``time``/``index`` (record), its
    ``loss``, the end-to-end ``singular_values``, ``end_to_end`` (or None) and ``layer_ranks`` (or
    None) there; ``final`` marks the segment after the last jump (the end of training, not a
    saddle)."""

    rank: int
    start: float
    end: float
    time: float
    index: int
    loss: float
    singular_values: np.ndarray
    end_to_end: np.ndarray | None
    layer_ranks: tuple[int, ...] | None
    final: bool


@dataclass(frozen=True)
class Plateaus:
    """What :func:`detect_plateaus` found. ``jump_times[k-1] = J_k``; ``rank`` is the staircase per
    record."""

    jump_times: np.ndarray
    rank: np.ndarray
    thresholds: np.ndarray
    plateaus: list[Plateau]

    @property
    def losses(self) -> np.ndarray:
        """Loss at every plateau state (the last one is the final segment)."""
        return np.array([p.loss for p in self.plateaus])

    @property
    def layer_ranks(self) -> list[tuple[int, ...]] | None:
        if any(p.layer_ranks is None for p in self.plateaus):
            return None
        return [p.layer_ranks for p in self.plateaus]

    @property
    def is_staircase(self) -> bool:
        """Modes were learned one at a time, largest first: the jump times increase, the rank never
        decreases and steps by at most one between consecutive records."""
        steps = np.diff(self.rank)
        return bool(np.all(np.diff(self.jump_times) > 0) and np.all(steps >= 0) and np.all(steps <= 1))


def detect_plateaus(run, *, frac: float = 0.5, rank_rtol: float = 0.05, thresholds=None,
                    layer_rtol: float = 0.05) -> Plateaus:
    """Plateaus, rank-jump times, plateau losses and per-layer numerical ranks of a run.

    Args:
        run: a :class:`dlnlab.Run` (or any object with ``times`` and ``history``) with ``"loss"``
            and ``"singular_values"`` records; ``"end_to_end"`` and ``"layer_singular_values_<i>"``
            are used when present (see :func:`plateau_summaries`).
        frac: a mode counts as learned once above ``frac`` times its final value.
        rank_rtol: modes whose final value is below ``rank_rtol * s_1(final)`` are never counted.
        thresholds: explicit per-mode levels (overrides ``frac``/``rank_rtol``), e.g. half the
            theory's values.
        layer_rtol: a layer's numerical rank counts singular values above ``layer_rtol`` times its
            largest.
    """
    times, hist = _read(run)
    frac = number("frac", frac, low=0.0, low_open=True, high=1.0)
    rank_rtol = number("rank_rtol", rank_rtol, low=0.0, high=1.0)
    layer_rtol = number("layer_rtol", layer_rtol, low=0.0, high=1.0)
    sv = np.asarray(hist["singular_values"], dtype=float)
    if thresholds is None:
        final = sv[-1]
        live = final > rank_rtol * max(final[0], np.finfo(float).tiny)
        thr = frac * final[live]
    else:
        try:
            thr = np.asarray(thresholds, dtype=float).ravel()
        except (TypeError, ValueError):
            thr = np.zeros(0)
        if thr.size == 0 or thr.size > sv.shape[1] or not np.all((thr > 0) & np.isfinite(thr)):
            got = " ".join(repr(thresholds).split())
            raise ConfigError(f"thresholds: expected 1 to {sv.shape[1]} positive finite levels, "
                              f"got {got[:60] + '...' if len(got) > 60 else got}")
    K = thr.size
    above = sv[:, :K] > thr
    rank = above.sum(axis=1)
    jumps = []
    for k in range(K):
        hit = np.flatnonzero(above[:, k])
        if hit.size == 0:
            break
        i = hit[0]
        s0, s1 = sv[i - 1, k], sv[i, k]
        if i > 0 and s0 > 0:
            jumps.append(times[i - 1] + (times[i] - times[i - 1]) * np.log(thr[k] / s0) / np.log(s1 / s0))
        else:
            jumps.append(times[i])
    jumps = np.asarray(jumps)
    speed = _speed(times, hist)
    layer_keys = sorted((k for k in hist if k.startswith(_LAYER_KEY)), key=lambda k: int(k[len(_LAYER_KEY):]))
    edges = np.concatenate([[times[0]], jumps, [times[-1]]])
    plateaus = []
    for k in range(len(jumps) + 1):
        a, b = edges[k], edges[k + 1]
        idx = _state_index(times, speed, a, b)
        A = np.asarray(hist["end_to_end"][idx]) if "end_to_end" in hist else None
        ranks = None
        if layer_keys:
            ranks = tuple(int(np.sum(s > layer_rtol * max(s[0], np.finfo(float).tiny)))
                          for s in (np.asarray(hist[key][idx]) for key in layer_keys))
        plateaus.append(Plateau(k, float(a), float(b), float(times[idx]), int(idx),
                                float(hist["loss"][idx]), sv[idx], A, ranks, k == len(jumps)))
    return Plateaus(jumps, rank, thr, plateaus)


def _read(run):
    times = getattr(run, "times", None)
    hist = getattr(run, "history", None)
    if times is None or not isinstance(hist, dict):
        batch = isinstance(run, (list, tuple)) and run and all(hasattr(r, "history") for r in run)
        hint = " of runs (one run at a time: call it on each run of a batch)" if batch else ""
        raise ConfigError(f"run: expected a dl.Run (times and history), got {type(run).__name__}{hint}")
    for key in ("loss", "singular_values"):
        if key not in hist:
            raise DataError(f"run: history has no {key!r} record; expected the records of dl.train "
                            f"(got {sorted(map(str, hist))})")
    times = _records("run.times", times, 1)
    n = times.size
    if n < 3:
        raise DataError(f"run: expected at least 3 records, got {n}")
    if np.any(np.diff(times) <= 0):
        raise DataError("run.times: expected strictly increasing record times, got a decrease or a repeat")
    _records("run.history['loss']", hist["loss"], 1, n)
    sv = _records("run.history['singular_values']", hist["singular_values"], 2, n)
    if np.any(sv < 0):
        raise DataError("run.history['singular_values']: expected singular values >= 0, got a negative one")
    if "end_to_end" in hist:
        _records("run.history['end_to_end']", hist["end_to_end"], 3, n)
    for key in hist:
        if isinstance(key, str) and key.startswith(_LAYER_KEY):
            if not key[len(_LAYER_KEY):].isdigit():
                raise DataError(f"run.history[{key!r}]: expected a key {_LAYER_KEY}<layer index>, got {key!r}")
            _records(f"run.history[{key!r}]", hist[key], 2, n)
    return times, hist


def _records(name: str, value, ndim: int, n: int | None = None) -> np.ndarray:
    """A finite float array of ``ndim`` axes, one row per record (``n``), no empty axis."""
    try:
        a = np.asarray(value)
    except (TypeError, ValueError) as exc:  # ragged nested lists
        raise DataError(f"{name}: expected a numeric array, got {type(value).__name__} ({exc})") from None
    if a.dtype.kind not in "iuf":  # text is refused, not parsed
        raise DataError(f"{name}: expected a numeric array, got dtype {a.dtype}")
    a = a.astype(float)
    rows = "records" if n is None else f"{n} records (one per time)"
    if a.ndim != ndim or (n is not None and a.shape[0] != n) or 0 in a.shape:
        raise DataError(f"{name}: expected a {ndim}-D array of {rows}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise DataError(f"{name}: contains NaN or infinite values; expected finite records")
    return a


def _speed(times, hist) -> np.ndarray:
    """``||dX/dt||`` per record by central differences (one-sided at the ends), ``X`` = A or its
    spectrum."""
    X = np.asarray(hist["end_to_end"] if "end_to_end" in hist else hist["singular_values"], dtype=float)
    X = X.reshape(X.shape[0], -1)
    d = np.gradient(X, times, axis=0)
    return np.linalg.norm(d, axis=1)


def _state_index(times, speed, a, b) -> int:
    lo, hi = a + 0.1 * (b - a), b - 0.1 * (b - a)
    inside = np.flatnonzero((times >= lo) & (times <= hi))
    if inside.size == 0:
        return int(np.argmin(np.abs(times - 0.5 * (a + b))))
    return int(inside[np.argmin(speed[inside])])

"""Measurements of a diagonal linear network's predictor ``beta`` (woodworth2020): norms and support recovery.

Each function takes ``beta`` (shape ``(d,)``; get it with ``dl.DiagonalNet(d, depth).beta(params)``) and works in
NumPy float64. "Kernel" and "rich" regimes differ in these: a large initialisation ends near the minimum-l2
interpolator (dense ``beta``), a small one near the minimum-l1 interpolator (sparse ``beta`` that recovers a
sparse target's support).

Example:
    >>> import numpy as np, dlnlab as dl
    >>> beta = np.array([0.9, -0.01, 1.1, 0.0])
    >>> dl.diagnostics.beta_norms(beta)
    BetaNorms(l1=2.01, l2=1.4213)
    >>> rec = dl.diagnostics.support_recovery(beta, support=[0, 2])
    >>> rec.exact, round(rec.margin, 12)
    (True, 0.89)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._checks import as_array, as_float
from ..errors import DataError

__all__ = ["BetaNorms", "SupportRecovery", "beta_norms", "support_recovery"]


@dataclass(frozen=True)
class BetaNorms:
    """``l1 = sum_i |beta_i|`` and ``l2 = sqrt(sum_i beta_i^2)``."""

    l1: float
    l2: float

    def __repr__(self) -> str:
        return f"BetaNorms(l1={self.l1:.6g}, l2={self.l2:.6g})"


@dataclass(frozen=True)
class SupportRecovery:
    """How well ``beta`` recovers a true support ``S`` (indices of the nonzero entries of the target).

    Attributes:
        estimated: the estimated support: ``{i : |beta_i| > threshold}``, or, without a threshold, the ``|S|``
            entries of largest magnitude (ties broken by index).
        true_positives, false_positives, false_negatives: counts against ``S``.
        exact: ``estimated == S``.
        margin: ``min_{i in S} |beta_i| - max_{i not in S} |beta_i|``: positive exactly when some threshold
            separates the support from the rest (``inf`` when ``S`` or its complement is empty).
    """

    estimated: tuple[int, ...]
    true_positives: int
    false_positives: int
    false_negatives: int
    exact: bool
    margin: float


def _as_beta(beta) -> np.ndarray:
    b = as_array("beta", beta, ndim=(1, 2))
    if b.ndim == 2:  # a (1, d) end-to-end row
        if b.shape[0] != 1:
            raise DataError(f"beta: expected shape (d,) or (1, d), got {b.shape}")
        b = b[0]
    if b.size == 0:
        raise DataError("beta: expected at least one entry, got shape (0,)")
    return b


def beta_norms(beta) -> BetaNorms:
    """The l1 and l2 norms of ``beta`` (shape ``(d,)`` or a ``(1, d)`` end-to-end row)."""
    b = _as_beta(beta)
    return BetaNorms(l1=float(np.sum(np.abs(b))), l2=float(np.linalg.norm(b)))


def support_recovery(beta, support, *, threshold: float | None = None) -> SupportRecovery:
    """Compare the support of ``beta`` with a true ``support`` (a sequence of distinct indices, or a boolean mask
    of ``beta``'s length).

    Without ``threshold`` the estimate is the ``|S|`` largest entries in magnitude (support recovery up to the
    choice of a threshold, measured by :attr:`SupportRecovery.margin`); with it, ``|beta_i| > threshold``.
    """
    b = _as_beta(beta)
    d = b.size
    s = np.asarray(support)
    if s.dtype == bool:
        if s.shape != (d,):
            raise DataError(f"support: a boolean mask needs shape ({d},) (beta's), got {s.shape}")
        idx = np.flatnonzero(s)
    else:
        if s.ndim != 1 or (s.size and s.dtype.kind not in "iu"):
            raise DataError(f"support: expected distinct integer indices or a boolean mask, got {support!r}")
        if s.size and (s.min() < 0 or s.max() >= d):
            raise DataError(f"support: indices must lie in [0, {d}), got {s.tolist()}")
        if np.unique(s).size != s.size:
            raise DataError(f"support: expected distinct indices, got {s.tolist()}")
        idx = np.sort(s.astype(np.int64))
    on = np.zeros(d, bool)
    on[idx] = True
    mag = np.abs(b)
    if threshold is None:
        order = np.argsort(-mag, kind="stable")
        est = np.zeros(d, bool)
        est[order[: idx.size]] = True
    else:
        est = mag > as_float("threshold", threshold, low=0.0)
    inside = mag[on].min() if on.any() else np.inf
    outside = mag[~on].max() if (~on).any() else -np.inf
    return SupportRecovery(
        estimated=tuple(int(i) for i in np.flatnonzero(est)),
        true_positives=int(np.sum(est & on)),
        false_positives=int(np.sum(est & ~on)),
        false_negatives=int(np.sum(~est & on)),
        exact=bool(np.array_equal(est, on)),
        margin=float(inside - outside),
    )

"""Validation of observation masks and measurement operators shared by the matrix-recovery theory modules."""

from __future__ import annotations

import numpy as np

from .._checks import as_array
from ..errors import DataError


def completion_observations(target, mask) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(target, rows, cols)`` from a target matrix and a mask.

    ``mask`` is a boolean array of the target's shape (True = observed, as in ``dl.MatrixCompletion``) or an integer
    array of ``(row, col)`` pairs of shape ``(k, 2)``; pairs must be in range and distinct.
    """
    T = as_array("target", target, ndim=2)
    raw = np.asarray(mask)
    if raw.dtype == bool:
        if raw.shape != T.shape:
            raise DataError(f"mask: expected a boolean array of the target's shape {T.shape}, got {raw.shape}")
        rows, cols = np.nonzero(raw)
    elif np.issubdtype(raw.dtype, np.integer):
        if raw.ndim != 2 or raw.shape[1] != 2:
            raise DataError(f"mask: expected (row, col) index pairs of shape (k, 2), got shape {raw.shape}")
        rows, cols = raw[:, 0].astype(np.int64), raw[:, 1].astype(np.int64)
        bad = (rows < 0) | (rows >= T.shape[0]) | (cols < 0) | (cols >= T.shape[1])
        if np.any(bad):
            i = int(np.argmax(bad))
            raise DataError(f"mask: index pair {i} = ({rows[i]}, {cols[i]}) is out of range for a target of shape "
                            f"{T.shape}")
        flat = rows * T.shape[1] + cols
        uniq, first, counts = np.unique(flat, return_index=True, return_counts=True)
        if np.any(counts > 1):
            j = int(np.argmax(counts > 1))
            raise DataError(f"mask: entry ({uniq[j] // T.shape[1]}, {uniq[j] % T.shape[1]}) is observed "
                            f"{counts[j]} times; expected distinct (row, col) pairs")
    else:
        raise DataError(f"mask: expected a boolean array or integer (row, col) pairs, got dtype {raw.dtype}")
    if rows.size == 0:
        raise DataError("mask: expected at least one observed entry")
    return T, rows, cols


def sensing_data(A, y, shape=None) -> tuple[np.ndarray, np.ndarray]:
    """``(A, y)`` with ``A`` of shape ``(m, d_out, d_in)`` (one measurement matrix per row) and ``y`` of shape (m,)."""
    A = as_array("A", A, ndim=3)
    if A.shape[0] == 0:
        raise DataError("A: expected at least one measurement matrix, got m = 0")
    if shape is not None and A.shape[1:] != tuple(shape):
        raise DataError(f"A: expected measurement matrices of shape {tuple(shape)}, got {A.shape[1:]}")
    y = as_array("y", y, ndim=1)
    if y.shape[0] != A.shape[0]:
        raise DataError(f"y: expected {A.shape[0]} measurements (one per matrix in A), got {y.shape[0]}")
    return A, y

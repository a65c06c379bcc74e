"""Binary classification with labels in {-1, +1}: margin losses (logistic, exponential) or the squared loss.

Normalisation: the cost of an end-to-end ``(1, d_in)`` matrix ``A`` under a loss is the mean over samples of that
loss at the prediction ``f(x_i) = A x_i`` (no 1/2): ``E log(1 + exp(-y f))``, ``E exp(-y f)`` or
``E (f - y)^2 = E (y f - 1)^2``.

Example:
    >>> import numpy as np, dlnlab as dl
    >>> clf = dl.Classification(np.array([[1.0, 0.0], [0.0, 1.0]]), np.array([1.0, -1.0]))
    >>> [float(m) for m in clf.margins(np.array([[2.0, 1.0]]))]
    [2.0, -1.0]
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_array, need_columns
from .._losses import AbstractLoss
from ..errors import DataError
from ._base import SQUARED, AbstractProblem

__all__ = ["Classification"]


class Classification(AbstractProblem):
    """Binary classification with labels in {-1, +1} and a scalar-output net (``d_out == 1``).

    ``X`` has shape ``(n, d_in)``; ``y`` has shape ``(n,)``. The margin of sample i is ``y_i f(x_i)``. Every loss
    of :mod:`dlnlab` applies (margin losses and the squared loss).
    """

    X: jax.Array
    y: jax.Array

    def __init__(self, X, y):
        X = as_array("X", X, ndim=2)
        y = as_array("y", y, ndim=1)
        if y.shape[0] != X.shape[0]:
            raise DataError(f"y: expected {X.shape[0]} labels (one per row of X), got {y.shape[0]}")
        if X.shape[0] == 0:
            raise DataError("X: expected at least one sample, got 0")
        need_columns("X", X)
        bad = ~np.isin(y, (-1.0, 1.0))
        if bad.any():
            raise DataError(f"y: expected labels in {{-1, +1}}, got {y[bad][0]!r} at index {int(np.argmax(bad))}")
        self.X = jnp.asarray(X)
        self.y = jnp.asarray(y)

    @property
    def d_in(self) -> int:
        return self.X.shape[1]

    @property
    def d_out(self) -> int:
        return 1

    @property
    def n_samples(self) -> int:
        return self.X.shape[0]

    def margins(self, A) -> jax.Array:
        """``y_i <A, x_i>`` for a ``(1, d_in)`` end-to-end matrix."""
        return self.y * (self.X @ A[0])

    def cost(self, A, loss: AbstractLoss = SQUARED) -> jax.Array:
        X, Y = self.batch(None)
        return jnp.mean(loss(X @ A.T, Y))

    def batch_cost(self, A, idx, loss: AbstractLoss = SQUARED) -> jax.Array:
        X, Y = self.batch(idx)
        return jnp.mean(loss(X @ A.T, Y))

    @property
    def has_inputs(self) -> bool:
        return True

    def batch(self, idx):
        X, y = (self.X, self.y) if idx is None else (self.X[idx], self.y[idx])
        return X, y[:, None]

    def check_loss(self, loss: AbstractLoss) -> AbstractLoss:
        return loss  # labels are +-1: margin losses and the squared loss all apply

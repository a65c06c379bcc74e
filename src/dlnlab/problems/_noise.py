"""Stochastic neurons: noise models behind one interface.

A noise model multiplies every *hidden* unit of a DLN by independent noise of mean 1 and variance ``variance``.
The exact expected squared loss depends on the noise only through that variance (ziyin2022's moment recursion,
see :meth:`dlnlab.Regression.noisy_cost`); :meth:`AbstractNoise.sample` draws masks for SGD. A new noise model is
one subclass: ``variance`` and ``sample``.

Example:
    >>> import dlnlab as dl
    >>> dl.Dropout(0.2).variance  # p / (1 - p)
    0.25
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .._checks import as_float

__all__ = ["AbstractNoise", "MultiplicativeNoise", "Dropout"]


class AbstractNoise(eqx.Module):
    """Mean-one multiplicative noise on hidden units, independent across units and samples."""

    @property
    @abc.abstractmethod
    def variance(self) -> float:
        """The variance ``s^2`` of one unit's multiplier (its mean is 1)."""

    @abc.abstractmethod
    def sample(self, key, shape, dtype=None) -> jax.Array:
        """Independent multipliers of the given shape (mean 1, variance :attr:`variance`)."""


class MultiplicativeNoise(AbstractNoise):
    """Stochastic neurons: every hidden unit is multiplied by independent noise of mean 1 and variance ``var``.

    Sampled noise is Gaussian ``1 + sqrt(var) * N(0, 1)``; the exact expected loss depends only on ``var``.
    """

    var: float = eqx.field(static=True)

    def __init__(self, var):
        self.var = as_float("var", var, low=0.0)

    @property
    def variance(self) -> float:
        return self.var

    def sample(self, key, shape, dtype=None) -> jax.Array:
        return 1.0 + np.sqrt(self.var) * jax.random.normal(key, shape, dtype or jnp.zeros(()).dtype)


class Dropout(AbstractNoise):
    """Inverted dropout with drop rate ``p``: units are kept with probability ``1 - p`` and scaled by
    ``1 / (1 - p)``, so the noise has mean 1 and variance ``p / (1 - p)`` (ziyin2022's sigma^2)."""

    p: float = eqx.field(static=True)

    def __init__(self, p):
        self.p = as_float("p", p, low=0.0, high=1.0, high_open=True)

    @property
    def variance(self) -> float:
        return self.p / (1.0 - self.p)

    def sample(self, key, shape, dtype=None) -> jax.Array:
        keep = jax.random.bernoulli(key, 1.0 - self.p, shape)
        return keep.astype(dtype or jnp.zeros(()).dtype) / (1.0 - self.p)

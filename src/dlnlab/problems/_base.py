"""The problem interface: a cost on end-to-end matrices, with optional samples for minibatches.

Every problem is a cost ``C(A)`` of an end-to-end matrix ``A`` of shape ``(d_out, d_in)`` (whatever model made it:
a DLN's product, a diagonal network's ``beta``), a mean over its :attr:`~AbstractProblem.n_samples` terms (samples,
observed entries, measurements) with no 1/2. :class:`dlnlab.Objective` needs only this interface, so adding a
problem is one subclass in this package: implement ``d_in``, ``d_out`` and ``cost``; add ``batch_cost`` for
minibatch SGD, ``batch`` for sampled neuron noise, ``noisy_cost`` for the exact expectation under neuron noise,
and widen ``check_loss`` if losses other than the squared loss apply.

Example:
    >>> import jax.numpy as jnp, dlnlab as dl
    >>> class Nearest(dl.AbstractProblem):  # C(A) = ||A - I||_F^2 / 4, a 2 x 2 toy problem
    ...     d_in = d_out = 2
    ...     def cost(self, A, loss=None):
    ...         return jnp.sum((A - jnp.eye(2)) ** 2) / 4
    >>> float(dl.Objective(Nearest()).value((jnp.zeros((2, 2)),)))
    0.5
"""

from __future__ import annotations

import abc

import equinox as eqx
import jax

from .._losses import AbstractLoss, SquaredLoss
from ..errors import ConfigError

__all__ = ["AbstractProblem", "SQUARED"]

SQUARED = SquaredLoss()


class AbstractProblem(eqx.Module):
    """A learning problem on end-to-end matrices of shape ``(d_out, d_in)``.

    Required: ``d_in``, ``d_out`` and :meth:`cost`. Optional (with refusing defaults):
    :attr:`n_samples` and :meth:`batch_cost` (minibatches), :meth:`batch` (inputs and targets of a minibatch,
    for sampled neuron noise), :meth:`noisy_cost` (exact expectation under neuron noise), :meth:`check_loss`
    (which losses apply; default: the squared loss only).
    """

    @property
    @abc.abstractmethod
    def d_in(self) -> int:
        """Columns of the end-to-end matrix (input dimension)."""

    @property
    @abc.abstractmethod
    def d_out(self) -> int:
        """Rows of the end-to-end matrix (output dimension)."""

    @abc.abstractmethod
    def cost(self, A: jax.Array, loss: AbstractLoss = SQUARED) -> jax.Array:
        """The exact cost of the end-to-end matrix ``A``: the mean of ``loss`` over all terms (no 1/2)."""

    @property
    def n_samples(self) -> int | None:
        """How many terms a minibatch draws from (``None``: no minibatches)."""
        return None

    def batch_indices(self, key, batch_size: int) -> jax.Array:
        """Indices of a uniformly random minibatch of ``batch_size`` distinct terms (``batch_size`` already
        checked against :attr:`n_samples`)."""
        return jax.random.choice(key, self.n_samples, (batch_size,), replace=False)

    def batch_cost(self, A: jax.Array, idx: jax.Array, loss: AbstractLoss = SQUARED) -> jax.Array:
        """The mean of ``loss`` over the terms ``idx`` (an unbiased estimate of :meth:`cost` for uniform ``idx``)."""
        raise ConfigError(f"batch_size: {type(self).__name__} has no samples to draw minibatches from; "
                          "expected None")

    @property
    def has_inputs(self) -> bool:
        """True when :meth:`batch` gives inputs and targets (sampled neuron noise uses them)."""
        return False

    def batch(self, idx: jax.Array | None):
        """Inputs ``(b, d_in)`` and targets ``(b, d_out)`` of the samples ``idx`` (``None``: all samples)."""
        raise NotImplementedError(f"{type(self).__name__} has no input samples")

    @property
    def supports_noise(self) -> bool:
        """True when :meth:`noisy_cost` gives the exact expected cost under neuron noise."""
        return False

    def noisy_cost(self, params, noise, loss: AbstractLoss = SQUARED) -> jax.Array:
        """Exact expected cost of a DLN ``params`` whose hidden units carry ``noise``."""
        raise NotImplementedError(f"{type(self).__name__} has no exact expectation under neuron noise")

    def check_loss(self, loss: AbstractLoss) -> AbstractLoss:
        """Refuse a loss this problem does not define (default: only the squared loss applies)."""
        if not isinstance(loss, SquaredLoss):
            raise ConfigError(f"loss: {loss.name!r} does not apply to a {type(self).__name__} problem; "
                              "expected 'squared'")
        return loss

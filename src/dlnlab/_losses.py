"""Losses of a prediction against a target: one small object per loss, each formula written once.

Normalisation (fixed across dlnlab; no 1/2 anywhere). For predictions ``f`` and targets ``y`` of shape
``(..., d_out)`` a loss returns the per-sample loss of shape ``(...)``; problems average it over samples:

- squared: ``||f - y||^2`` (a sum over outputs);
- logistic: ``sum_k log(1 + exp(-y_k f_k))`` and exponential: ``sum_k exp(-y_k f_k)``, margin losses for labels
  ``y_k`` in ``{-1, +1}`` (for ``d_out = 1``, the usual ``log(1 + exp(-y f(x)))`` and ``exp(-y f(x))``).

A new loss is one subclass here (a margin loss only defines ``phi(margin)``) plus one entry in :data:`LOSSES` if
it should be reachable by name; problems decide which losses they accept through :attr:`AbstractLoss.kind`.

Example:
    >>> import jax.numpy as jnp
    >>> from dlnlab._losses import as_loss
    >>> float(as_loss("squared")(jnp.array([1.0, 2.0]), jnp.array([0.0, 0.0])))
    5.0
    >>> round(float(as_loss("logistic")(jnp.array([0.0]), jnp.array([1.0]))), 6)  # log 2
    0.693147
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .errors import ConfigError

__all__ = ["AbstractLoss", "AbstractMarginLoss", "SquaredLoss", "LogisticLoss", "ExponentialLoss", "LOSSES",
           "as_loss"]


class AbstractLoss(eqx.Module):
    """A loss ``(predictions, targets) -> per-sample loss``, summed over the last (output) axis.

    ``name`` is the string the objective accepts (``loss="squared"``); ``kind`` is ``"regression"`` (any real
    targets) or ``"margin"`` (labels in ``{-1, +1}``). Losses are stateless and compare by value.
    """

    name: ClassVar[str]
    kind: ClassVar[str]

    @abc.abstractmethod
    def __call__(self, predictions: jax.Array, targets: jax.Array) -> jax.Array:
        """Per-sample loss: the shape of ``predictions`` without its last axis."""


class SquaredLoss(AbstractLoss):
    """``||f - y||^2`` per sample (no 1/2); its mean over samples is the library's squared loss."""

    name: ClassVar[str] = "squared"
    kind: ClassVar[str] = "regression"

    def __call__(self, predictions, targets):
        return jnp.sum((predictions - targets) ** 2, axis=-1)


class AbstractMarginLoss(AbstractLoss):
    """A loss of the margins ``m_k = y_k f_k``: ``sum_k phi(m_k)``; labels ``y_k`` are ``+-1``."""

    kind: ClassVar[str] = "margin"

    @abc.abstractmethod
    def phi(self, margins: jax.Array) -> jax.Array:
        """The loss of one margin (elementwise)."""

    def __call__(self, predictions, targets):
        return jnp.sum(self.phi(targets * predictions), axis=-1)


class LogisticLoss(AbstractMarginLoss):
    """``log(1 + exp(-m))`` (softplus, stable for large ``|m|``)."""

    name: ClassVar[str] = "logistic"

    def phi(self, margins):
        return jax.nn.softplus(-margins)


class ExponentialLoss(AbstractMarginLoss):
    """``exp(-m)``."""

    name: ClassVar[str] = "exponential"

    def phi(self, margins):
        return jnp.exp(-margins)


LOSSES: dict[str, AbstractLoss] = {loss.name: loss for loss in (SquaredLoss(), LogisticLoss(), ExponentialLoss())}


def as_loss(loss) -> AbstractLoss:
    """A loss object from its name (one of :data:`LOSSES`) or an :class:`AbstractLoss` instance."""
    if isinstance(loss, AbstractLoss):
        return loss
    if isinstance(loss, str) and loss in LOSSES:
        return LOSSES[loss]
    raise ConfigError(f"loss: expected one of {', '.join(map(repr, LOSSES))} or a dl.AbstractLoss, got {loss!r}")

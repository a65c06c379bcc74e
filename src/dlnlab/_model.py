"""The model interface: parameters -> an end-to-end matrix.

Every model dlnlab trains is linear in its input, so a problem sees it only through its end-to-end matrix
``A(params)`` of shape ``(d_out, d_in)``: a DLN's product ``W_L ... W_1`` (:class:`dlnlab.Net`), a diagonal
network's ``beta = w_+^D - w_-^D`` as a ``(1, d)`` row (:class:`dlnlab.DiagonalNet`). :class:`dlnlab.Objective`
composes ``problem.cost(model.end_to_end(params))`` with the model's weight decay, so a new model is one subclass:
``d_in``, ``d_out``, ``end_to_end`` and ``check_params`` (plus ``decay_terms`` if weight decay should act on
something other than every parameter array's squared norm).

Models are small frozen dataclasses (configuration, no arrays): they compare and hash by value, so an objective
that holds one keeps it in its static structure.

Example:
    >>> import jax.numpy as jnp, dlnlab as dl
    >>> net = dl.DiagonalNet(3, depth=2)
    >>> net.end_to_end((jnp.array([2.0, 1.0, 0.0]), jnp.array([1.0, 1.0, 1.0]))).tolist()
    [[3.0, 0.0, -1.0]]
"""

from __future__ import annotations

import abc
from typing import ClassVar

import jax
import jax.numpy as jnp

__all__ = ["AbstractModel"]


class AbstractModel(abc.ABC):
    """A model whose output is linear in its input: ``f(x) = A(params) x``.

    Attributes:
        is_dln: params are a DLN weight tuple ``(W_1, ..., W_L)`` (end-to-end summaries, neuron noise and the
            DLN theory apply).
    """

    is_dln: ClassVar[bool] = False

    @property
    @abc.abstractmethod
    def d_in(self) -> int:
        """Input dimension (columns of the end-to-end matrix)."""

    @property
    @abc.abstractmethod
    def d_out(self) -> int:
        """Output dimension (rows of the end-to-end matrix)."""

    @abc.abstractmethod
    def end_to_end(self, params) -> jax.Array:
        """The end-to-end matrix ``A(params)`` of shape ``(d_out, d_in)`` (differentiable)."""

    @abc.abstractmethod
    def check_params(self, params, name: str = "params"):
        """Validate ``params`` eagerly (structure, shapes, dtype, finite values), naming the place; tracers pass
        with their static properties checked. Returns the params in canonical form (e.g. a tuple of arrays)."""

    def decay_terms(self, params) -> tuple[jax.Array, ...]:
        """The squared norms that weight decay multiplies, one per decay coefficient (default: one per parameter
        array, ``||leaf||^2``, in the order of ``jax.tree.leaves``)."""
        return tuple(jnp.sum(leaf * leaf) for leaf in jax.tree.leaves(params))

    def n_decay_terms(self, params=None) -> int | None:
        """How many weight-decay coefficients apply to ``params`` (the length of :meth:`decay_terms`);
        with ``params=None``, the count when the model fixes it, else ``None``."""
        return None if params is None else len(jax.tree.leaves(params))

    def apply(self, params, X) -> jax.Array:
        """Outputs ``(n, d_out)`` for inputs ``X`` of shape ``(n, d_in)``."""
        return X @ self.end_to_end(params).T

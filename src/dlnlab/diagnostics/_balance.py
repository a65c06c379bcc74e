"""Balancedness: the gaps ``D_i = W_{i+1}^T W_{i+1} - W_i W_i^T`` conserved by gradient flow.

Under gradient flow on any loss of the end-to-end matrix the gaps are constant (Arora et al. 2018, Du et al. 2018);
under gradient descent with step ``eta`` and gradients ``G_i`` they move by exactly
``eta^2 (G_{i+1}^T G_{i+1} - G_i G_i^T)`` per step; weight decay ``gamma`` (no 1/2) makes them decay like
``exp(-4 gamma t)`` under flow.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp

from ._validate import layers

__all__ = ["balance_gaps", "balancedness", "Balancedness"]


def balance_gaps(params) -> tuple[jax.Array, ...]:
    """``(W_2^T W_2 - W_1 W_1^T, ..., W_L^T W_L - W_{L-1} W_{L-1}^T)``; params must be chained weight
    matrices (a :class:`dlnlab.errors.DataError` otherwise)."""
    params = layers(params)
    return tuple(params[i + 1].T @ params[i + 1] - params[i] @ params[i].T for i in range(len(params) - 1))


class Balancedness(NamedTuple):
    """``per_pair``: Frobenius norm of every gap; ``normalised``: ``sum ||D_i|| / sum (||W_{i+1}^T W_{i+1}||
    + ||W_i W_i^T||)`` in [0, 1], 0 for an exactly balanced net (0 also for the zero net)."""

    per_pair: jax.Array
    normalised: jax.Array


def balancedness(params) -> Balancedness:
    """How far a net is from balanced (see :class:`Balancedness`)."""
    params = layers(params)
    if len(params) < 2:
        return Balancedness(jnp.zeros((0,)), jnp.zeros(()))
    gaps = balance_gaps(params)
    per_pair = jnp.stack([jnp.linalg.norm(D) for D in gaps])
    scale = sum(
        jnp.linalg.norm(params[i + 1].T @ params[i + 1]) + jnp.linalg.norm(params[i] @ params[i].T)
        for i in range(len(params) - 1)
    )
    total = jnp.sum(per_pair)
    return Balancedness(per_pair, jnp.where(scale > 0, total / jnp.where(scale > 0, scale, 1.0), 0.0))

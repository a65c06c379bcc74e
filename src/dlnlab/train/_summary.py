"""Summaries recorded along a run (values only: never differentiated, so SVDs are safe)."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from ..diagnostics import balancedness, end_to_end, layer_norms, singular_values
from ..errors import ConfigError


def make_summary(objective, extra=None):
    """``params -> dict`` of the standard summaries plus ``extra(params)`` (a dict of arrays)."""

    def summary(params):
        loss, g = objective.value_and_grad(params)
        out = {
            "loss": loss,
            "grad_norm": jnp.sqrt(sum(jnp.sum(x * x) for x in jax.tree.leaves(g))),
            "singular_values": singular_values(end_to_end(params)),
            "layer_norms": layer_norms(params),
            "balancedness": balancedness(params).normalised,
        }
        if extra is not None:
            more = extra(params)
            if not isinstance(more, dict):
                raise ConfigError(f"summaries: expected a callable returning a dict, got {type(more).__name__}")
            clash = set(more) & set(out)
            if clash:
                raise ConfigError(f"summaries: names {sorted(clash)} clash with the standard summaries")
            out.update({k: jnp.asarray(v) for k, v in more.items()})
        return out

    return summary


def all_finite(tree) -> jax.Array:
    return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))

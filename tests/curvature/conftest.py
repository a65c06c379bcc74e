"""Curvature tests run in float64 (enabled here: importing dlnlab changes no JAX setting)."""

import jax

jax.config.update("jax_enable_x64", True)

"""Shared fixtures: float64 everywhere (enabled here: importing dlnlab changes no JAX setting) and reference
problems."""

import os

import jax
import numpy as np
import pytest

jax.config.update("jax_enable_x64", True)

# The CLI keeps a persistent compilation cache in the user's cache folder; tests that run the CLI must not
# write there (test_cli checks the cache itself in a temporary folder).
os.environ.setdefault("DLNLAB_CACHE_DIR", "")
# Stores (sweeps, the pieces of reproductions) are signed with a store key; tests use a fixed one instead of creating
# the user's key file in ~/.config/dlnlab.
os.environ.setdefault("DLNLAB_STORE_KEY", "dlnlab-tests")


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def anisotropic_regression(rng, d_in=4, d_out=3, n=200):
    """Samples with a badly conditioned input covariance and a noisy linear teacher."""
    X = rng.normal(size=(n, d_in)) * np.geomspace(2.0, 0.2, d_in)
    Y = X @ rng.normal(size=(d_in, d_out)) + 0.1 * rng.normal(size=(n, d_out))
    return X, Y


@pytest.fixture
def make_data(rng):
    """``make_data(d_in=4, d_out=3, n=200) -> (X, Y)`` with anisotropic inputs."""
    return lambda **kw: anisotropic_regression(rng, **kw)

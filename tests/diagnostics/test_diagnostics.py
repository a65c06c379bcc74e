"""Diagnostics against hand-made matrices with known answers."""

import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab as dl
from dlnlab import diagnostics as dg


def test_ranks():
    s = jnp.array([3.0, 1.0, 1e-6, 0.0])
    assert int(dg.numerical_rank(s)) == 2
    assert int(dg.numerical_rank(s, rtol=1e-8)) == 3
    assert float(dg.effective_rank(jnp.array([2.0, 2.0, 2.0]))) == pytest.approx(3.0)
    assert float(dg.effective_rank(jnp.array([5.0, 0.0]))) == pytest.approx(1.0)
    assert float(dg.effective_rank(jnp.zeros(3))) == 0.0
    M = np.outer([1.0, 2.0], [3.0, 0.0, 1.0])
    assert int(dg.numerical_rank(M)) == 1


def test_rank_one_ratio_and_alignment():
    rng = np.random.default_rng(0)
    u, v, w = rng.normal(size=4), rng.normal(size=3), rng.normal(size=2)
    aligned = (jnp.outer(u, v), jnp.outer(w, u))  # W_2's right singular vector is W_1's left one
    np.testing.assert_allclose(dg.rank_one_ratio(aligned), [1.0, 1.0], atol=1e-12)
    np.testing.assert_allclose(dg.alignment(aligned), [1.0], atol=1e-12)
    u_perp = rng.normal(size=4)
    u_perp -= u_perp @ u / (u @ u) * u
    crossed = (jnp.outer(u, v), jnp.outer(w, u_perp))
    np.testing.assert_allclose(dg.alignment(crossed), [0.0], atol=1e-12)
    assert float(dg.rank_one_ratio((jnp.eye(4),))[0]) == pytest.approx(0.5)


def test_balancedness():
    bal = dl.Net((3, 4, 2)).init(0, scheme="balanced", target=np.arange(6.0).reshape(2, 3))
    b = dg.balancedness(bal)
    assert float(b.normalised) < 1e-12
    unbalanced = (2.0 * bal[0], bal[1] / 2.0)
    b = dg.balancedness(unbalanced)
    gap = np.asarray(unbalanced[1].T @ unbalanced[1] - unbalanced[0] @ unbalanced[0].T)
    assert float(b.per_pair[0]) == pytest.approx(np.linalg.norm(gap))
    assert 0.1 < float(b.normalised) <= 1.0

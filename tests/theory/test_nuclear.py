"""Tests of dlnlab.theory.nuclear against exact recovery and an independent Douglas-Rachford solver."""

import numpy as np
import pytest

from dlnlab.errors import ConfigError, DataError
from dlnlab.theory import nuclear as nn


def _svt(Z, tau):
    U, s, Vt = np.linalg.svd(Z, full_matrices=False)
    return (U * np.maximum(s - tau, 0.0)) @ Vt


def _douglas_rachford(project, shape, gamma=0.5, iters=20000):
    """min ||X||_* s.t. X in an affine set, by Douglas-Rachford splitting: SVT and the affine projection."""
    Z = np.zeros(shape)
    for _ in range(iters):
        X = _svt(Z, gamma)
        Z = Z + project(2 * X - Z) - X
    return project(_svt(Z, gamma))


def _nuc(X):
    return np.linalg.svd(X, compute_uv=False).sum()


def _mask(rng, shape, frac):
    mask = rng.random(shape) < frac
    mask[0, 0] = True
    return mask


@pytest.mark.parametrize("solver", ["clarabel", "scs"])
def test_exact_recovery_completion(solver):
    rng = np.random.default_rng(0)
    # 20 x 15, rank 2 (66 degrees of freedom), ~220 entries seen: enough for recovery of an incoherent matrix here
    # (at 12 x 9 with 75 % seen, or with one column scaled up, the minimiser is not M: recovery needs incoherence)
    M = nn.random_low_rank((20, 15), 2, seed=3)
    mask = _mask(rng, M.shape, 0.8)
    sol = nn.nuclear_completion(M, mask, solver=solver)
    assert np.linalg.norm(sol.matrix - M) < 1e-5 * np.linalg.norm(M)
    assert sol.rank == 2 and sol.solver == solver
    assert sol.residual < 1e-7 and sol.duality_gap < 1e-6 and sol.dual_norm < 1 + 1e-6


def test_exact_recovery_sensing():
    rng = np.random.default_rng(1)
    M = nn.random_low_rank((7, 5), 1, seed=4)
    A = rng.normal(size=(28, 7, 5)) * np.geomspace(2.0, 0.5, 5)  # anisotropic measurements
    sol = nn.nuclear_sensing(A, np.einsum("kij,ij->k", A, M))
    assert np.linalg.norm(sol.matrix - M) < 1e-5 * np.linalg.norm(M)
    assert sol.rank == 1


def test_completion_agrees_with_douglas_rachford_without_recovery():
    rng = np.random.default_rng(2)
    M = nn.random_low_rank((8, 6), 3, seed=5)
    mask = _mask(rng, M.shape, 0.45)  # too few entries to recover M: the answer is not M
    sol = nn.nuclear_completion(M, mask, solver="clarabel", tol=1e-9)

    def project(V):
        V = V.copy()
        V[mask] = M[mask]
        return V

    ref = _douglas_rachford(project, M.shape)
    assert _nuc(ref) == pytest.approx(sol.nuclear_norm, rel=1e-6)
    assert np.linalg.norm(sol.matrix - ref) < 1e-3 * np.linalg.norm(ref)
    assert np.linalg.norm(sol.matrix - M) > 1e-2 * np.linalg.norm(M)
    assert sol.nuclear_norm < _nuc(M)  # M itself is feasible and worse
    # brute force: no feasible perturbation does better
    for _ in range(50):
        delta = rng.normal(size=M.shape) * ~mask
        for eps in (1e-1, 1e-3):
            assert _nuc(sol.matrix + eps * delta) >= sol.nuclear_norm * (1 - 1e-8)


def test_sensing_agrees_with_douglas_rachford_without_recovery():
    rng = np.random.default_rng(3)
    M = nn.random_low_rank((5, 6), 3, seed=6)
    A = rng.normal(size=(14, 5, 6))
    y = np.einsum("kij,ij->k", A, M)
    sol = nn.nuclear_sensing(A, y, solver="clarabel", tol=1e-9)
    F = A.reshape(14, -1)
    Fp = np.linalg.pinv(F)

    def project(V):
        v = V.reshape(-1)
        return (v - Fp @ (F @ v - y)).reshape(V.shape)

    ref = _douglas_rachford(project, M.shape)
    assert _nuc(ref) == pytest.approx(sol.nuclear_norm, rel=1e-6)
    assert np.linalg.norm(sol.matrix - ref) < 1e-3 * np.linalg.norm(ref)
    assert sol.duality_gap < 1e-7 and sol.dual_norm < 1 + 1e-7


def test_mask_formats_agree():
    rng = np.random.default_rng(4)
    M = nn.random_low_rank((6, 7), 2, seed=7)
    mask = _mask(rng, M.shape, 0.6)
    a = nn.nuclear_completion(M, mask, solver="clarabel")
    b = nn.nuclear_completion(M, np.argwhere(mask)[::-1], solver="clarabel")  # pairs, in another order
    assert a.nuclear_norm == pytest.approx(b.nuclear_norm, rel=1e-7)


def test_random_low_rank():
    M = nn.random_low_rank((30, 10), 4, seed=2)
    s = np.linalg.svd(M, compute_uv=False)
    assert np.linalg.norm(M) == pytest.approx(1.0, rel=1e-14) and s[3] > 1e-3 and s[4] < 1e-14
    assert not np.array_equal(M, nn.random_low_rank((30, 10), 4, seed=3))


def test_bad_input():
    M = np.ones((3, 4))
    with pytest.raises(DataError, match="mask.*out of range"):
        nn.nuclear_completion(M, np.array([[0, 4]]))
    with pytest.raises(DataError, match="mask.*2 times"):
        nn.nuclear_completion(M, np.array([[1, 1], [1, 1]]))
    with pytest.raises(DataError, match="mask"):
        nn.nuclear_completion(M, np.ones((3, 3), bool))
    with pytest.raises(DataError, match="mask"):
        nn.nuclear_completion(M, np.ones((3, 4)))  # floats: neither booleans nor index pairs
    with pytest.raises(DataError, match="A"):
        nn.nuclear_sensing(np.ones((5, 3)), np.ones(5))
    with pytest.raises(DataError, match="y"):
        nn.nuclear_sensing(np.ones((5, 3, 4)), np.ones(6))
    rng = np.random.default_rng(0)
    with pytest.raises(DataError, match="y: no matrix"):
        nn.nuclear_sensing(rng.normal(size=(10, 2, 2)), rng.normal(size=10))
    with pytest.raises(ConfigError, match="rank"):
        nn.random_low_rank((3, 4), 4)
    with pytest.raises(ConfigError, match="rank"):
        nn.random_low_rank((3, 4), 0)
    with pytest.raises(ConfigError, match="solver"):
        nn.nuclear_completion(M, M > 0, solver="mosek")
    with pytest.raises(ConfigError, match="tol"):
        nn.nuclear_completion(M, M > 0, tol=0.0)

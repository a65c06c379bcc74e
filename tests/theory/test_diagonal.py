"""Tests of dlnlab.theory.diagonal (woodworth2020) against the integrated gradient flow and second solvers."""

import cvxpy as cp
import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp
from scipy.optimize import brentq

from dlnlab.errors import ConfigError, DataError
from dlnlab.theory import diagonal as dg


def _problem(seed=0, n=12, d=30, s=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, d)) * np.geomspace(3.0, 0.3, d)  # anisotropic features
    beta = np.zeros(d)
    beta[rng.choice(d, s, replace=False)] = rng.normal(size=s) + np.sign(rng.normal(size=s))
    return X, X @ beta


def _flow_limit(X, y, alpha, depth, t1):
    """Gradient flow of w_+, w_- on (1/n) ||X (w_+^D - w_-^D) - y||^2 from w_+ = w_- = alpha, integrated by Radau."""
    n, d = X.shape

    def rhs(_, w):
        wp, wm = w[:d], w[d:]
        g = 2.0 / n * X.T @ (X @ (wp**depth - wm**depth) - y)
        return np.concatenate([-depth * wp ** (depth - 1) * g, depth * wm ** (depth - 1) * g])

    # Radau builds its Jacobian by finite differences: nothing here uses the closed form of the limit
    sol = solve_ivp(rhs, (0.0, t1), np.full(2 * d, float(alpha)), method="Radau", rtol=1e-12, atol=1e-16)
    assert sol.success
    w = sol.y[:, -1]
    return w[:d] ** depth - w[d:] ** depth


@pytest.mark.parametrize("alpha,depth,t1", [(1.0, 2, 2e3), (0.3, 2, 2e4), (0.1, 2, 2e5), (1.0, 3, 2e3),
                                            (0.4, 3, 5e4)])
def test_flow_ends_at_implicit_bias(alpha, depth, t1):
    X, y = _problem()
    beta_flow = _flow_limit(X, y, alpha, depth, t1)
    assert np.linalg.norm(X @ beta_flow - y) < 1e-9 * np.linalg.norm(y)  # the flow has converged
    r = dg.implicit_bias(X, y, alpha, depth)
    assert r.residual < 1e-12 and r.stationarity < 1e-12
    assert np.linalg.norm(r.beta - beta_flow) < 1e-9 * np.linalg.norm(beta_flow)  # measured: 1e-13 to 3e-12
    # and it is not just any interpolator: the min-l2 one differs by far more than the tolerance
    assert np.linalg.norm(dg.min_l2_interpolator(X, y) - beta_flow) > 1e-2 * np.linalg.norm(beta_flow)


@pytest.mark.parametrize("alpha", [1e-3, 0.03, 0.3, 1.0, 10.0])
def test_newton_agrees_with_clarabel_depth2(alpha):
    X, y = _problem(1, n=10, d=25)
    a = dg.implicit_bias(X, y, alpha)
    b = dg.implicit_bias(X, y, alpha, solver="clarabel")
    assert np.linalg.norm(a.beta - b.beta) < 1e-7 * np.linalg.norm(a.beta)
    assert a.potential == pytest.approx(b.potential, rel=1e-9)


@pytest.mark.parametrize("alpha", [0.3, 1.0])
def test_newton_agrees_with_clarabel_depth3(alpha):
    X, y = _problem(2, n=8, d=20)
    a = dg.implicit_bias(X, y, alpha, 3)
    b = dg.implicit_bias(X, y, alpha, 3, solver="clarabel")
    assert np.linalg.norm(a.beta - b.beta) < 1e-5 * np.linalg.norm(a.beta)


def _h(s, D):
    return (1 - s) ** (-D / (D - 2)) - (1 + s) ** (-D / (D - 2))


@pytest.mark.parametrize("depth", [2, 3, 4, 6])
def test_potential_by_quadrature(depth):
    alpha = 0.7
    beta = np.array([0.0, 0.3, -1.7, 4.0, 1e-3])
    if depth == 2:
        qprime = lambda z: np.arcsinh(z / 2)
    else:
        qprime = lambda z: brentq(lambda s: _h(s, depth) - z, -1 + 1e-15, 1 - 1e-15, xtol=1e-15)
    scale = alpha**depth
    ref = sum(scale * quad(qprime, 0.0, b / scale, epsabs=1e-13, epsrel=1e-12)[0] for b in beta)
    assert dg.potential(beta, alpha, depth) == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("depth,alpha", [(2, 0.05), (2, 2.0), (3, 0.2), (4, 0.5)])
def test_minimal_among_interpolators(depth, alpha):
    """Brute force: moving along the null space of X (staying an interpolator) in any direction raises Q_alpha."""
    X, y = _problem(3, n=6, d=14)
    r = dg.implicit_bias(X, y, alpha, depth)
    null = np.linalg.svd(X)[2][X.shape[0]:].T
    rng = np.random.default_rng(0)
    Q0 = dg.potential(r.beta, alpha, depth)
    for scale in (1e-1, 1e-2, 1e-4):
        for _ in range(20):
            delta = null @ rng.normal(size=null.shape[1])
            delta *= scale * np.linalg.norm(r.beta) / np.linalg.norm(delta)
            assert dg.potential(r.beta + delta, alpha, depth) > Q0
            assert dg.potential(r.beta - delta, alpha, depth) > Q0


def test_limits_small_and_large_alpha():
    X, y = _problem(4, n=20, d=40, s=3)
    l1 = dg.min_l1_interpolator(X, y)
    # second solvers: the l1 problem in cvxpy (clarabel), the l2 one as lstsq's minimum-norm solution
    b = cp.Variable(X.shape[1])
    cp.Problem(cp.Minimize(cp.norm1(b)), [X @ b == y]).solve(solver=cp.CLARABEL)
    assert np.linalg.norm(l1 - b.value) < 1e-6 * np.linalg.norm(l1)
    l2 = dg.min_l2_interpolator(X, y)
    np.testing.assert_allclose(l2, np.linalg.lstsq(X, y, rcond=None)[0], atol=1e-12)
    to_l1 = [np.linalg.norm(dg.implicit_bias(X, y, a).beta - l1) / np.linalg.norm(l1) for a in (1e-1, 1e-3, 1e-6)]
    assert to_l1[0] > to_l1[1] > to_l1[2] and to_l1[2] < 1e-5
    to_l2 = [np.linalg.norm(dg.implicit_bias(X, y, a).beta - l2) / np.linalg.norm(l2) for a in (1.0, 10.0, 1e3)]
    assert to_l2[0] > to_l2[1] > to_l2[2] and to_l2[2] < 1e-5
    # depth: at the same alpha < 1 a deeper network is closer to min-l1
    by_depth = [np.abs(dg.implicit_bias(X, y, 0.1, D).beta - l1).sum() for D in (2, 3, 4)]
    assert by_depth[0] > by_depth[1] > by_depth[2]


def test_link_is_the_flow_form():
    # the flow's closed form for D = 3: w_+ = alpha (1 + c r)^(-1), w_- = alpha (1 - c r)^(-1), c = 3 alpha
    alpha, r = 0.4, np.array([-0.5, 0.1, 0.7])
    c = 3 * alpha
    beta = (alpha / (1 + c * r)) ** 3 - (alpha / (1 - c * r)) ** 3
    np.testing.assert_allclose(dg.link(-c * r, alpha, 3), beta, rtol=1e-13)
    np.testing.assert_allclose(dg.link(r, alpha, 2), 2 * alpha**2 * np.sinh(r), rtol=1e-13)


def test_bad_input():
    X, y = _problem()
    with pytest.raises(ConfigError, match="alpha"):
        dg.implicit_bias(X, y, 0.0)
    with pytest.raises(ConfigError, match="alpha"):
        dg.implicit_bias(X, y, -1.0)
    with pytest.raises(ConfigError, match="depth"):
        dg.implicit_bias(X, y, 1.0, depth=1)
    rng = np.random.default_rng(0)
    Xo = rng.normal(size=(20, 5))
    with pytest.raises(DataError, match="y: not interpolable"):
        dg.implicit_bias(Xo, rng.normal(size=20), 1.0)
    with pytest.raises(DataError, match="y: not interpolable"):
        dg.min_l1_interpolator(Xo, rng.normal(size=20))
    with pytest.raises(DataError, match="y"):
        dg.min_l2_interpolator(X, y[:-1])
    with pytest.raises(DataError, match="X"):
        dg.implicit_bias(X[0], y, 1.0)
    with pytest.raises(ConfigError, match="solver"):
        dg.implicit_bias(X, y, 1.0, solver="cvx")
    with pytest.raises(DataError, match="tol"):
        dg.implicit_bias(X, y, 1.0, solver="clarabel", tol=1e-6)
    # an interpolable overdetermined system is fine
    b = rng.normal(size=5)
    np.testing.assert_allclose(dg.implicit_bias(Xo, Xo @ b, 0.5).beta, b, atol=1e-10)

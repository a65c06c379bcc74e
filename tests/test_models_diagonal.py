"""Diagonal linear networks as a model: beta and gradients against hand formulas, training through the engine
(the flow's limit against woodworth2020's characterisation solved independently), diagnostics, bad input."""

import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError


def _sparse_regression(rng, n=6, d=15, s=2):
    X = rng.normal(size=(n, d)) * np.linspace(1.5, 0.5, d)  # anisotropic columns
    beta = np.zeros(d)
    beta[:s] = [1.0, -0.7][:s]
    return X, X @ beta, beta


@pytest.mark.parametrize("depth", [1, 2, 3])
def test_beta_is_the_difference_of_powers(rng, depth):
    net = dl.DiagonalNet(5, depth=depth)
    wp, wm = rng.uniform(0.1, 1.5, size=5), rng.uniform(0.1, 1.5, size=5)
    np.testing.assert_allclose(np.asarray(net.beta((jnp.asarray(wp), jnp.asarray(wm)))), wp**depth - wm**depth,
                               rtol=1e-14)
    assert net.end_to_end((jnp.asarray(wp), jnp.asarray(wm))).shape == (1, 5)
    w0 = net.init(scale=0.3)
    assert all(np.all(np.asarray(w) == 0.3) for w in w0) and np.all(np.asarray(net.beta(w0)) == 0.0)


@pytest.mark.parametrize("depth,decay", [(2, 0.0), (3, 0.05), (1, 0.2)])
def test_gradient_matches_the_chain_rule_by_hand(rng, depth, decay):
    """d/dw_+ = D w_+^(D-1) g + 2 gamma w_+ and d/dw_- = -D w_-^(D-1) g + 2 gamma w_-, g = 2 (Sxx beta - Sxy)."""
    X, y, _ = _sparse_regression(rng)
    y = y + 0.1 * rng.normal(size=y.shape)
    net = dl.DiagonalNet(15, depth=depth)
    obj = dl.Objective(dl.Regression.from_data(X, y), net=net, weight_decay=decay)
    wp, wm = rng.uniform(0.2, 1.0, size=15), rng.uniform(0.2, 1.0, size=15)
    beta = wp**depth - wm**depth
    g = 2.0 * X.T @ (X @ beta - y) / X.shape[0]
    gp, gm = obj.grad((jnp.asarray(wp), jnp.asarray(wm)))
    np.testing.assert_allclose(np.asarray(gp), depth * wp ** (depth - 1) * g + 2 * decay * wp, rtol=1e-11, atol=1e-13)
    np.testing.assert_allclose(np.asarray(gm), -depth * wm ** (depth - 1) * g + 2 * decay * wm, rtol=1e-11,
                               atol=1e-13)
    value = np.mean((X @ beta - y) ** 2) + decay * (np.sum(wp**2) + np.sum(wm**2))
    assert float(obj.value((jnp.asarray(wp), jnp.asarray(wm)))) == pytest.approx(value, rel=1e-12)
    assert not obj.is_dln


def _q_alpha_minimiser(X, y, alpha):
    """argmin Q_alpha(beta) s.t. X beta = y (woodworth2020, depth 2): beta = 2 alpha^2 sinh(X^T nu) with nu the
    minimiser of the convex dual sum_i 2 alpha^2 cosh((X^T nu)_i) - y^T nu (Newton, trust region); an
    independent route from training."""
    c = 2 * alpha**2
    sol = scipy.optimize.minimize(
        lambda nu: c * np.sum(np.cosh(X.T @ nu)) - y @ nu, np.zeros(X.shape[0]),
        jac=lambda nu: X @ (c * np.sinh(X.T @ nu)) - y,
        hess=lambda nu: (X * (c * np.cosh(X.T @ nu))) @ X.T, method="trust-exact", options={"gtol": 1e-13})
    nu = sol.x
    for _ in range(5):  # polish with plain Newton steps (trust-exact stops early when c is large)
        nu = nu - np.linalg.solve((X * (c * np.cosh(X.T @ nu))) @ X.T, X @ (c * np.sinh(X.T @ nu)) - y)
    beta = c * np.sinh(X.T @ nu)
    assert np.linalg.norm(X @ beta - y) < 1e-8 * np.linalg.norm(y)  # interpolates
    return beta


@pytest.mark.parametrize("alpha", [1.0, 0.3])
def test_gradient_flow_ends_at_the_q_alpha_interpolator(rng, alpha):
    X, y, _ = _sparse_regression(rng)
    net = dl.DiagonalNet(15, depth=2)
    obj = dl.Objective(dl.Regression.from_data(X, y), net=net)
    run = dl.train(obj, net.init(scale=alpha), dl.Flow(t1=400.0, rtol=1e-10, atol=1e-12),
                   stop=dl.Stop(loss=1e-22))
    beta = np.asarray(net.beta(run.params))
    expected = _q_alpha_minimiser(X, y, alpha)
    np.testing.assert_allclose(beta, expected, atol=1e-6 * np.abs(expected).max())
    # and the two regimes differ: the small init is sparser in l1 than the large one
    assert np.sum(np.abs(expected)) > 0


def test_small_init_recovers_the_sparse_support_and_large_init_does_not(rng):
    X, y, target = _sparse_regression(rng, n=8, d=20)
    norms = {}
    for alpha in (1e-5, 10.0):
        beta = _q_alpha_minimiser(X, y, alpha)
        norms[alpha] = dl.diagnostics.beta_norms(beta)
        rec = dl.diagnostics.support_recovery(beta, support=[0, 1])
        if alpha < 1:
            assert rec.exact and rec.margin > 0.1
    l1 = scipy.optimize.linprog(np.ones(40), A_eq=np.hstack([X, -X]), b_eq=y, bounds=(0, None)).x
    l1 = l1[:20] - l1[20:]
    l2 = np.linalg.pinv(X) @ y
    assert norms[1e-5].l1 == pytest.approx(np.sum(np.abs(l1)), rel=1e-3)
    assert norms[10.0].l2 == pytest.approx(np.linalg.norm(l2), rel=1e-3)
    assert norms[10.0].l1 > norms[1e-5].l1


def test_gd_and_sgd_train_a_diagonal_net(rng):
    X, y, _ = _sparse_regression(rng, n=12, d=10)
    net = dl.DiagonalNet(10, depth=2)
    obj = dl.Objective(dl.Regression.from_data(X, y), net=net)
    p0 = net.init(scale=0.5)
    gd = dl.train(obj, p0, dl.GD(lr=0.02, steps=3000))
    sgd = dl.train(obj, p0, dl.SGD(lr=0.01, steps=3000, batch_size=4), key=0)
    for run in (gd, sgd):
        assert float(run.history["loss"][-1]) < 1e-3 * float(run.history["loss"][0])


def test_beta_norms_and_support_recovery_by_hand():
    beta = np.array([0.5, -0.2, 0.0, 0.3, -0.01])
    n = dl.diagnostics.beta_norms(beta)
    assert n.l1 == pytest.approx(1.01, rel=1e-14) and n.l2 == pytest.approx(np.sqrt(0.25 + 0.04 + 0.09 + 1e-4))
    rec = dl.diagnostics.support_recovery(beta, support=[0, 3])
    assert rec.estimated == (0, 3) and rec.exact and rec.margin == pytest.approx(0.1)
    rec = dl.diagnostics.support_recovery(beta, support=[0, 1, 2])
    assert rec.estimated == (0, 1, 3) and not rec.exact and rec.false_positives == 1 and rec.false_negatives == 1
    assert rec.margin == pytest.approx(0.0 - 0.3)
    rec = dl.diagnostics.support_recovery(beta[None, :], support=np.array([1, 0, 0, 1, 0], bool), threshold=0.05)
    assert rec.estimated == (0, 1, 3) and rec.true_positives == 2 and rec.false_positives == 1


@pytest.mark.parametrize("build,field", [
    (lambda: dl.DiagonalNet(0), "d"),
    (lambda: dl.DiagonalNet(3, depth=0), "depth"),
    (lambda: dl.DiagonalNet(3, depth=2.5), "depth"),
    (lambda: dl.DiagonalNet(3).init(scale=0.0), "scale"),
    (lambda: dl.DiagonalNet(3).init(scale=-1.0), "scale"),
    (lambda: dl.DiagonalNet(3).init(scale=float("nan")), "scale"),
    (lambda: dl.DiagonalNet(3).init(scale=None), "scale"),
    (lambda: dl.DiagonalNet(3).init(scale=1.0, scheme="gaussian"), "scheme"),
    (lambda: dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones((2, 3)), 1.0), net=dl.DiagonalNet(3)),
     "net"),
    (lambda: dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones(3), 1.0), net=dl.DiagonalNet(3),
                          noise=dl.Dropout(0.1)), "noise"),
    (lambda: dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones(3), 1.0), net=dl.DiagonalNet(3),
                          weight_decay=[0.1, 0.2, 0.3]), "weight_decay"),
    (lambda: dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones(3), 1.0), net=dl.DiagonalNet(3)).value(
        (jnp.ones(3), jnp.ones(4))), r"params\[1\]"),
    (lambda: dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones(3), 1.0), net=dl.DiagonalNet(3)).value(
        (jnp.ones(3),)), "params"),
    (lambda: dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones(3), 1.0), net=dl.DiagonalNet(3)).value(
        (jnp.ones(3), jnp.array([1.0, np.nan, 1.0]))), r"params\[1\].*NaN"),
    (lambda: dl.diagnostics.support_recovery(np.ones(3), [0, 3]), "support"),
    (lambda: dl.diagnostics.support_recovery(np.ones(3), [0, 0]), "support"),
    (lambda: dl.diagnostics.beta_norms(np.ones((2, 3))), "beta"),
])
def test_bad_input_names_the_field(build, field):
    with pytest.raises((ConfigError, DataError), match=field):
        build()

"""Tests of dlnlab.theory.margin against independent computations (ji2019)."""

import jax
import numpy as np
import pytest
from scipy.optimize import minimize_scalar, nnls

import dlnlab as dl
from dlnlab.errors import DataError
from dlnlab.theory import margin as mg


def _separable(seed, n, d, *, aniso=None, gap=0.15):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4 * n, d))
    if aniso is not None:
        X = X * np.asarray(aniso)
    teacher = rng.normal(size=d)
    s = X @ teacher / np.linalg.norm(teacher)
    keep = np.abs(s) > gap * np.std(s)
    X, y = X[keep][:n], np.sign(s[keep][:n])
    return X / np.linalg.norm(X, axis=1).max(), y


def _min_norm_hull(Z):
    """Min-norm point of conv{z_i} (geometric SVM) by NNLS with a heavily weighted sum-to-1 row."""
    M = 1e4
    A = np.vstack([Z.T, M * np.ones(len(Z))])
    b = np.concatenate([np.zeros(Z.shape[1]), [M]])
    lam, _ = nnls(A, b, maxiter=50 * len(Z))
    p = Z.T @ lam
    return p / np.linalg.norm(p), np.linalg.norm(p)


@pytest.mark.parametrize(
    "seed,n,d,aniso",
    [
        (0, 40, 2, None),
        (1, 60, 5, [3.0, 1.0, 0.3, 0.1, 2.0]),
        (2, 30, 8, None),
        (3, 100, 3, [1.0, 10.0, 0.1]),
    ],
)
def test_agrees_with_min_norm_hull(seed, n, d, aniso):
    X, y = _separable(seed, n, d, aniso=aniso)
    mm = mg.max_margin(X, y)
    u, g = _min_norm_hull(y[:, None] * X)
    assert np.linalg.norm(mm.direction - u) < 1e-6
    assert abs(mm.margin - g) < 1e-7 * max(g, 1e-3) + 1e-9
    c = mm.certificate
    assert c.ok and c.duality_gap < 1e-8 and c.dual_qp_agreement < 1e-6
    assert abs(np.min((y[:, None] * X) @ mm.direction) - mm.margin) < 1e-9
    assert np.allclose(mm.weights, mm.direction / mm.margin)


def test_two_d_brute_force_angle_scan():
    X, y = _separable(5, 50, 2)
    Z = y[:, None] * X

    def neg_min_margin(t):
        return -np.min(Z @ np.array([np.cos(t), np.sin(t)]))

    grid = np.linspace(-np.pi, np.pi, 20001)
    t0 = grid[np.argmin([neg_min_margin(t) for t in grid])]
    res = minimize_scalar(
        neg_min_margin, bounds=(t0 - 1e-3, t0 + 1e-3), method="bounded", options={"xatol": 1e-12}
    )
    mm = mg.max_margin(X, y)
    assert abs(mm.margin + res.fun) < 1e-8
    assert np.linalg.norm(mm.direction - [np.cos(res.x), np.sin(res.x)]) < 1e-5
    # 2-D generic data have 2 support vectors: they span the plane (Assumption 3)
    assert len(mm.support) == 2 and mm.spans_input


def test_closed_form_instance_and_support_span():
    X = np.array([[1.0, 0.5], [1.0, -0.5], [-1.0, 0.0], [2.0, 0.1]])
    y = np.array([1.0, 1.0, -1.0, 1.0])
    mm = mg.max_margin(X, y)
    assert abs(mm.margin - 1.0) < 1e-9 and np.allclose(mm.direction, [1.0, 0.0], atol=1e-9)
    assert mm.support.tolist() == [0, 1, 2] and mm.spans_input and mm.support_rank == 2
    # one support vector only: Assumption 3 fails and is reported
    X1 = np.array([[1.0, 0.0], [2.0, 3.0], [-3.0, 1.0]])
    mm1 = mg.max_margin(X1, np.array([1.0, 1.0, -1.0]))
    assert mm1.support.tolist() == [0] and not mm1.spans_input and not mm1.spans_data
    assert np.allclose(mm1.direction, [1.0, 0.0], atol=1e-8)


def test_accepts_classification_and_matches_random_directions_bound():
    X, y = _separable(7, 40, 4, aniso=[1.0, 0.2, 2.0, 0.5])
    mm = mg.max_margin(dl.Classification(X, y))
    # no unit direction has a larger minimum margin (definition of gamma), checked by Monte Carlo
    U = np.random.default_rng(0).normal(size=(20000, 4))
    U /= np.linalg.norm(U, axis=1, keepdims=True)
    assert np.max(np.min((y[:, None] * X) @ U.T, axis=0)) <= mm.margin + 1e-12
    assert float(mg.normalized_margin(mm.direction, X, y)) == pytest.approx(mm.margin, abs=1e-10)


@pytest.mark.parametrize(
    "X,y",
    [
        (
            np.array([[1.0, 1.0], [-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0]]),
            np.array([1.0, 1.0, -1.0, -1.0]),
        ),  # XOR
        (
            np.array([[1.0], [2.0], [3.0], [4.0]]),
            np.array([1.0, 1.0, -1.0, -1.0]),
        ),  # separable only with intercept
        (
            np.array([[0.0, 0.0], [1.0, 0.0]]),
            np.array([1.0, 1.0]),
        ),  # a point at the origin has margin 0
    ],
)
def test_non_separable_raises(X, y):
    with pytest.raises(DataError, match="not linearly separable"):
        mg.max_margin(X, y)


def test_bad_input():
    with pytest.raises(DataError, match="y: expected labels"):
        mg.max_margin(np.ones((3, 2)), np.array([0.0, 1.0, 1.0]))
    with pytest.raises(DataError, match="y: expected 3 labels"):
        mg.max_margin(np.ones((3, 2)), np.ones(2))
    with pytest.raises(DataError, match="X: contains NaN"):
        mg.max_margin(np.array([[np.nan, 1.0]]), np.ones(1))


def _random_params(seed, widths, scale=0.5):
    return dl.Net(widths).init(jax.random.key(seed), scheme="gaussian", scale=scale)


def test_predictor_quantities_against_numpy():
    X, y = _separable(3, 30, 3)
    params = _random_params(0, (3, 5, 4, 1))
    Ws = [np.asarray(W) for W in params]
    w = (Ws[2] @ Ws[1] @ Ws[0])[0]
    mm = mg.max_margin(X, y)
    assert np.allclose(mg.predictor(params), w, rtol=1e-12)
    assert float(mg.max_margin_cosine(params, mm)) == pytest.approx(
        w @ mm.direction / np.linalg.norm(w)
    )
    nm = np.min(y * (X @ w)) / np.linalg.norm(w)
    assert float(mg.normalized_margin(params, X, y)) == pytest.approx(nm, rel=1e-12)
    prod = np.prod([np.linalg.norm(W) for W in Ws])
    gf = float(mg.frobenius_margin(params, X, y))
    assert gf == pytest.approx(np.min(y * (X @ w)) / prod, rel=1e-12)
    v1 = np.linalg.svd(Ws[0])[2][0]
    assert float(mg.end_to_end_alignment(params)) == pytest.approx(abs(w @ v1) / prod, rel=1e-10)
    # gamma_F <= gamma for any net (norm submultiplicativity), on many random nets
    for s in range(20):
        p = _random_params(s, (3, 6, 2, 1), scale=1.0)
        assert float(mg.frobenius_margin(p, X, y)) <= mm.margin + 1e-12


def test_balanced_rank_one_net():
    u = np.array([0.6, 0.8, 0.0])
    params = dl.Net((3, 4, 5, 1)).init(
        jax.random.key(1), scheme="balanced", target=2.0 * u[None, :]
    )
    assert mg.balance_constant(params) == pytest.approx(0.0, abs=1e-12)
    assert float(mg.end_to_end_alignment(params)) == pytest.approx(1.0, abs=1e-12)
    assert float(mg.max_margin_cosine(params, u)) == pytest.approx(1.0, abs=1e-12)


def test_balance_constant_against_definition():
    params = [np.asarray(W) for W in _random_params(2, (4, 3, 6, 1), scale=0.7)]
    fro2 = [np.sum(W**2) for W in params]
    gaps = [
        np.max(
            np.abs(np.linalg.eigvalsh(params[k] @ params[k].T - params[k + 1].T @ params[k + 1]))
        )
        for k in range(2)
    ]
    assert mg.balance_constant(params) == pytest.approx(max(fro2) - fro2[-1] + sum(gaps), rel=1e-12)


def test_lemma2_along_gradient_flow_and_can_fail():
    """Lemma 2 holds along a fine-step GD (gradient flow) trajectory with unequal widths, and the
    check
    reports a violation for a trajectory that does not start where it claims."""
    X, y = _separable(11, 30, 3, aniso=[2.0, 1.0, 0.3])
    obj = dl.Objective(dl.Classification(X, y), loss="logistic")
    params0 = _random_params(4, (3, 7, 4, 1), scale=0.6)
    grad = jax.jit(lambda q: obj.grad(q))
    p = params0
    seen_gap = 0.0
    for t in range(3000):
        g = grad(p)
        p = tuple(W - 2e-3 * G for W, G in zip(p, g, strict=False))
        if t % 500 == 499:
            res = mg.lemma2(params0, p, rtol=1e-6)
            assert res.holds_a and res.holds_b
            seen_gap = max(seen_gap, res.rank_one_gap.max() / res.D)
    assert seen_gap > 0.05  # the bound is not vacuous on this instance
    balanced = dl.Net((3, 7, 4, 1)).init(
        jax.random.key(0), scheme="balanced", target=np.ones((1, 3))
    )
    res = mg.lemma2(balanced, params0)
    assert res.D == pytest.approx(0.0, abs=1e-12) and not res.holds_a

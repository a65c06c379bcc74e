"""Problems behind one interface: costs against direct NumPy sums, moments against samples, minibatches against
brute-force averages over every subset, gradients against finite differences, and bad input."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize
from jax.flatten_util import ravel_pytree

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError


def _sensing(rng, m, d_out=3, d_in=5, **kw):
    A = rng.normal(size=(m, d_out, d_in)) * np.geomspace(3.0, 0.3, d_in)  # anisotropic measurements
    y = rng.normal(size=m)
    return A, y, dl.MatrixSensing(A, y, **kw)


@pytest.mark.parametrize("moments", [False, True, "auto"])
def test_sensing_cost_is_the_mean_squared_residual_without_half(rng, moments):
    A, y, prob = _sensing(rng, m=40, moments=moments)
    W = rng.normal(size=(3, 5))
    direct = np.mean([(np.sum(A[k] * W) - y[k]) ** 2 for k in range(40)])
    assert float(prob.cost(jnp.asarray(W))) == pytest.approx(direct, rel=1e-12)
    assert (prob.moments is not None) == (moments is True or (moments == "auto" and 40 > 15))


def test_sensing_auto_form_follows_the_cost_of_each_form(rng):
    assert _sensing(rng, m=15)[2].moments is None  # m = p: the sample form is no dearer
    assert _sensing(rng, m=16)[2].moments is not None
    big = dl.MatrixSensing(np.ones((3000, 50, 50)) * 0.0 + np.eye(50)[None], np.ones(3000), moments="auto")
    assert big.moments is None  # p = 2500 > 2048: the p x p moment matrix is not stored automatically


def test_sensing_gradient_matches_hand_formula_and_finite_differences(rng):
    A, y, prob = _sensing(rng, m=7)
    W = rng.normal(size=(3, 5))
    hand = 2.0 / 7 * sum((np.sum(A[k] * W) - y[k]) * A[k] for k in range(7))
    np.testing.assert_allclose(np.asarray(jax.grad(prob.cost)(jnp.asarray(W))), hand, rtol=1e-12, atol=1e-13)
    net = dl.Net((5, 4, 3))
    params = net.init(jax.random.key(0), scheme="gaussian", scale=0.5)
    obj = dl.Objective(prob, net=net, weight_decay=0.03)
    eps = 1e-6
    for i, Wi in enumerate(params):
        G = np.zeros(Wi.shape)
        for idx in np.ndindex(Wi.shape):
            E = np.zeros(Wi.shape)
            E[idx] = eps
            plus = tuple(p + E if j == i else p for j, p in enumerate(params))
            minus = tuple(p - E if j == i else p for j, p in enumerate(params))
            G[idx] = (float(obj.value(plus)) - float(obj.value(minus))) / (2 * eps)
        np.testing.assert_allclose(np.asarray(obj.grad(params)[i]), G, rtol=1e-6, atol=1e-8)


def test_sensing_moments_and_samples_agree_with_gaussian_measurements():
    prob_m = dl.MatrixSensing.random(4, 3, rank=2, n_measurements=50, seed=3, moments=True)
    prob_s = dl.MatrixSensing.random(4, 3, rank=2, n_measurements=50, seed=3, moments=False)
    np.testing.assert_array_equal(prob_m.measurements, prob_s.measurements)
    W = np.random.default_rng(0).normal(size=(4, 3))
    assert float(prob_m.cost(W)) == pytest.approx(float(prob_s.cost(W)), rel=1e-12)
    T = np.asarray(prob_s.target)
    assert np.linalg.matrix_rank(T) == 2 and np.sum(T**2) == pytest.approx(12.0, rel=1e-12)
    assert float(prob_s.cost(T)) < 1e-28 and float(prob_s.relative_error(T)) == 0.0


def test_gaussian_measurements_are_standard_normal():
    prob = dl.MatrixSensing.gaussian(np.ones((20, 30)), 200, seed=1, moments=False)
    entries = np.asarray(prob.measurements).ravel()  # 120k iid draws
    assert abs(entries.mean()) < 0.02 and entries.var() == pytest.approx(1.0, rel=0.02)


def _every_subset_mean(cost_fn, n, b):
    vals = [float(cost_fn(jnp.asarray(c))) for c in itertools.combinations(range(n), b)]
    return np.mean(vals)


def test_minibatch_costs_average_to_the_cost_over_every_subset(rng, make_data):
    A, y, sens = _sensing(rng, m=6, moments=True)  # the batch uses the samples, the cost the moments
    W = jnp.asarray(rng.normal(size=(3, 5)))
    assert _every_subset_mean(lambda i: sens.batch_cost(W, i), 6, 2) == pytest.approx(float(sens.cost(W)), rel=1e-12)
    X, Y = make_data(d_in=3, d_out=2, n=7)
    reg = dl.Regression.from_data(X, Y)
    B = jnp.asarray(rng.normal(size=(2, 3)))
    assert _every_subset_mean(lambda i: reg.batch_cost(B, i), 7, 3) == pytest.approx(float(reg.cost(B)), rel=1e-12)
    T = rng.normal(size=(3, 4))
    mc = dl.MatrixCompletion.from_indices(T, [0, 2, 1, 2, 0], [3, 0, 1, 2, 0])
    flat = np.flatnonzero(np.asarray(mc.mask).ravel())
    M = jnp.asarray(rng.normal(size=(3, 4)))
    mean = np.mean([float(mc.batch_cost(M, jnp.asarray(c))) for c in itertools.combinations(flat, 2)])
    assert mean == pytest.approx(float(mc.cost(M)), rel=1e-12)


def test_completion_minibatches_draw_distinct_observed_entries_uniformly():
    mask = np.zeros((4, 5), bool)
    mask.ravel()[[1, 3, 4, 8, 13, 19]] = True
    mc = dl.MatrixCompletion(np.zeros((4, 5)), mask)
    assert mc.n_samples == 6
    draws = np.asarray(jax.vmap(lambda k: mc.batch_indices(k, 3))(jax.random.split(jax.random.key(0), 6000)))
    assert all(len(set(d)) == 3 for d in draws[:200])
    counts = np.bincount(draws.ravel(), minlength=20)
    assert set(np.flatnonzero(counts)) == {1, 3, 4, 8, 13, 19}
    # each observed entry is in a batch with probability 1/2: 3000 expected, sd ~39
    assert np.all(np.abs(counts[[1, 3, 4, 8, 13, 19]] - 3000) < 200)


def test_completion_from_indices_equals_the_mask_form_and_random_instances(rng):
    T = rng.normal(size=(3, 4))
    mask = np.zeros((3, 4), bool)
    mask[[0, 2, 1], [3, 0, 1]] = True
    a = dl.MatrixCompletion(T, mask)
    b = dl.MatrixCompletion.from_indices(T, [2, 0, 1], [0, 3, 1])
    np.testing.assert_array_equal(a.mask, b.mask)
    W = rng.normal(size=(3, 4))
    direct = np.mean([(W[i, j] - T[i, j]) ** 2 for i, j in [(0, 3), (2, 0), (1, 1)]])
    assert float(b.cost(W)) == pytest.approx(direct, rel=1e-12)
    r = dl.MatrixCompletion.random(6, 5, rank=2, n_observed=17, seed=4)
    assert int(np.sum(r.mask)) == 17 and np.linalg.matrix_rank(np.asarray(r.target)) == 2
    assert float(r.relative_error(jnp.zeros((6, 5)))) == pytest.approx(1.0, rel=1e-12)


def test_saddle_sequence_on_sensing_matches_a_brute_force_rank_one_search(rng):
    """The greedy rank-1 saddle of a sensing cost against the best of many local optimisations over u v^T."""
    prob = dl.MatrixSensing.random(3, 4, rank=2, n_measurements=30, seed=5)
    seq = dl.theory.saddles.saddle_sequence(prob)
    assert seq[0].rank == 0 and seq[0].loss == pytest.approx(float(np.mean(np.asarray(prob.y) ** 2)), rel=1e-12)
    assert seq[-1].loss < 1e-10  # 30 generic measurements of a 3 x 4 matrix determine it

    F = np.asarray(prob.measurements).reshape(30, -1)
    yv = np.asarray(prob.y)

    def rank1(z):
        W = np.outer(z[:3], z[3:])
        return np.mean((F @ W.ravel() - yv) ** 2)

    best = min(scipy.optimize.minimize(rank1, rng.normal(size=7), method="BFGS", options={"gtol": 1e-12}).fun
               for _ in range(20))
    assert seq[1].loss == pytest.approx(best, rel=1e-6)


def test_losses_are_the_stated_formulas(rng):
    X = rng.normal(size=(9, 3))
    y = np.where(rng.normal(size=9) > 0, 1.0, -1.0)
    clf = dl.Classification(X, y)
    a = rng.normal(size=(1, 3))
    f = X @ a[0]
    expected = {"logistic": np.mean(np.log1p(np.exp(-y * f))), "exponential": np.mean(np.exp(-y * f)),
                "squared": np.mean((f - y) ** 2)}
    for name, value in expected.items():
        obj = dl.Objective(clf, loss=name)
        assert float(obj.value((jnp.asarray(a),))) == pytest.approx(value, rel=1e-12)
        assert obj.loss == name
    with pytest.raises(ConfigError, match="loss"):
        dl.Objective(dl.MatrixSensing.random(2, 2, 1, 5), loss="logistic")


def test_a_new_problem_and_a_new_loss_are_one_subclass_each(rng):
    class Hinge2(dl.AbstractLoss):  # squared hinge, defined here and nowhere else
        name = "squared_hinge"
        kind = "margin"

        def __call__(self, predictions, targets):
            return jnp.sum(jnp.maximum(0.0, 1.0 - targets * predictions) ** 2, axis=-1)

    X = rng.normal(size=(8, 2))
    y = np.where(X[:, 0] > 0, 1.0, -1.0)
    a = jnp.asarray([[0.3, -2.0]])
    obj = dl.Objective(dl.Classification(X, y), loss=Hinge2())
    expected = np.mean(np.maximum(0.0, 1.0 - y * (X @ np.asarray(a[0]))) ** 2)
    assert float(obj.value((a,))) == pytest.approx(expected, rel=1e-12)

    class Nearest(dl.AbstractProblem):
        d_in = 3
        d_out = 2

        def cost(self, A, loss=None):
            return jnp.sum((A - 1.0) ** 2)

    obj = dl.Objective(Nearest(), net=dl.Net((3, 2, 2)))
    params = dl.Net((3, 2, 2)).init(0, scheme="gaussian", scale=0.5)
    assert float(obj.value(params)) == pytest.approx(float(np.sum((params[1] @ params[0] - 1.0) ** 2)), rel=1e-12)
    with pytest.raises(ConfigError, match="batch_size"):
        obj.sample_value(params, jax.random.key(0), batch_size=1)
    with pytest.raises(ConfigError, match="noise"):
        dl.Objective(Nearest(), noise=dl.Dropout(0.1))


@pytest.mark.parametrize("build,field", [
    (lambda: dl.MatrixSensing(np.ones((4, 3)), np.ones(4)), "measurements"),
    (lambda: dl.MatrixSensing(np.ones((4, 3, 2)), np.ones(5)), "y"),
    (lambda: dl.MatrixSensing(np.ones((4, 3, 2)), np.ones((4, 1))), "y"),
    (lambda: dl.MatrixSensing(np.ones((4, 3, 2))), "y"),
    (lambda: dl.MatrixSensing(np.ones((4, 3, 2)), target=np.ones((2, 3))), "target"),
    (lambda: dl.MatrixSensing(np.ones((0, 3, 2)), np.ones(0)), "measurements"),
    (lambda: dl.MatrixSensing(np.full((4, 3, 2), np.nan), np.ones(4)), "measurements"),
    (lambda: dl.MatrixSensing(np.ones((4, 3, 2)), np.ones(4), moments="yes"), "moments"),
    (lambda: dl.MatrixSensing.gaussian(np.ones((2, 2)), 0), "n_measurements"),
    (lambda: dl.MatrixSensing.random(3, 4, rank=4, n_measurements=5), "rank"),
    (lambda: dl.MatrixSensing.random(3, 4, rank=0, n_measurements=5), "rank"),
    (lambda: dl.MatrixSensing.random(3, 4, rank=1, n_measurements=5, seed=-1), "seed"),
    (lambda: dl.MatrixCompletion.random(3, 4, rank=5, n_observed=5), "rank"),
    (lambda: dl.MatrixCompletion.random(3, 4, rank=1, n_observed=13), "n_observed"),
    (lambda: dl.MatrixCompletion.from_indices(np.ones((3, 4)), [0, 3], [0, 1]), "rows"),
    (lambda: dl.MatrixCompletion.from_indices(np.ones((3, 4)), [0, 1], [0, -1]), "cols"),
    (lambda: dl.MatrixCompletion.from_indices(np.ones((3, 4)), [0, 1, 0], [2, 1, 2]), "observed twice"),
    (lambda: dl.MatrixCompletion.from_indices(np.ones((3, 4)), [0, 1], [2]), "rows, cols"),
    (lambda: dl.MatrixCompletion.from_indices(np.ones((3, 4)), [0.5], [2]), "rows"),
    (lambda: dl.MatrixCompletion.from_indices(np.ones((3, 4)), [], []), "rows, cols"),
    (lambda: dl.MatrixCompletion(np.ones((3, 4)), np.ones((4, 3), bool)), "mask"),
])
def test_bad_problem_input_names_the_field(build, field):
    with pytest.raises((ConfigError, DataError), match=field):
        build()


def test_bad_minibatches_are_refused(rng):
    prob = dl.MatrixSensing.random(2, 3, rank=1, n_measurements=4)
    obj = dl.Objective(prob)
    params = (jnp.ones((2, 3)),)
    with pytest.raises(ConfigError, match="batch_size.*at most 4"):
        obj.sample_value(params, jax.random.key(0), batch_size=5)
    moments_only = dl.Objective(dl.Regression.from_moments(np.eye(3), np.ones((2, 3)), 1.0))
    with pytest.raises(ConfigError, match="batch_size"):
        moments_only.sample_value(params, jax.random.key(0), batch_size=1)


@pytest.mark.parametrize("kind", ["sensing", "completion"])
def test_matrix_problems_train_and_measure_through_the_public_api(kind):
    prob = (dl.MatrixSensing.random(4, 3, rank=1, n_measurements=9, seed=2) if kind == "sensing"
            else dl.MatrixCompletion.random(4, 3, rank=1, n_observed=8, seed=2))
    net = dl.Net((3, 3, 3, 4))
    obj = dl.Objective(prob, net=net)
    p0 = net.init(jax.random.key(1), scheme="gaussian", scale=0.5)
    gd = dl.train(obj, p0, dl.GD(lr=0.02, steps=1500))
    sgd = dl.train(obj, p0, dl.SGD(lr=0.01, steps=1500, batch_size=4), key=3)
    for run in (gd, sgd):
        assert float(run.history["loss"][-1]) < 0.05 * float(run.history["loss"][0])
    # curvature: Lanczos against a dense eigendecomposition of the autodiff Hessian
    flat, unravel = ravel_pytree(gd.params)
    H = np.asarray(jax.hessian(lambda v: obj.value(unravel(v)))(flat))
    top = dl.curvature.top_eigenvalues(obj, gd.params, k=1).values[0]
    assert top == pytest.approx(np.linalg.eigvalsh(H)[-1], rel=1e-8)
    A = np.asarray(dl.diagnostics.end_to_end(gd.params))
    assert A.shape == (4, 3) and float(prob.cost(A)) == pytest.approx(float(gd.history["loss"][-1]), rel=1e-6)

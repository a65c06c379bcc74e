"""Training: conservation laws, exact GD drift, flow against independent solvers, statuses and errors."""

import jax
import numpy as np
import optax
import pytest
from scipy.integrate import solve_ivp

import dlnlab as dl
from dlnlab.diagnostics import balance_gaps
from dlnlab.errors import ConfigError, DataError
from dlnlab.theory import modes


@pytest.fixture
def problem(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=80)
    return dl.Regression.from_data(X, Y)


def gaps_of(params):
    return [np.asarray(D) for D in balance_gaps(params)]


def test_balancedness_is_conserved_along_flow(problem):
    net = dl.Net((3, 5, 4, 2))
    p0 = net.init(jax.random.key(0), scheme="gaussian", scale=0.5)
    run = dl.train(dl.Objective(problem), p0, dl.Flow(t1=3.0, rtol=1e-10, atol=1e-12))
    assert run.final_loss < 0.5 * run.loss[0]  # it really moved
    for before, after in zip(gaps_of(p0), gaps_of(run.params)):
        np.testing.assert_allclose(after, before, atol=1e-7 * max(1.0, np.abs(before).max()))


def test_weight_decay_makes_the_gaps_decay_exponentially(problem):
    """With decay gamma on every layer, d/dt D_i = -4 gamma D_i under flow (the loss part conserves D_i)."""
    net = dl.Net((3, 4, 2))
    p0 = net.init(jax.random.key(1), scheme="gaussian", scale=0.7)
    gamma, t1 = 0.05, 2.0
    run = dl.train(dl.Objective(problem, weight_decay=gamma), p0, dl.Flow(t1=t1, rtol=1e-10, atol=1e-12))
    np.testing.assert_allclose(gaps_of(run.params)[0], np.exp(-4 * gamma * t1) * gaps_of(p0)[0], atol=1e-7)


def test_gd_gaps_drift_by_exactly_eta_squared_gradient_gaps(problem):
    net = dl.Net((3, 5, 4, 2))
    obj = dl.Objective(problem)
    params = net.init(jax.random.key(2), scheme="gaussian", scale=0.5)
    eta = 0.03
    for _ in range(3):
        grads = [np.asarray(g) for g in obj.grad(params)]
        before = gaps_of(params)
        params = dl.train(obj, params, dl.GD(lr=eta, steps=1)).params
        after = gaps_of(params)
        for i in range(len(before)):
            drift = eta**2 * (grads[i + 1].T @ grads[i + 1] - grads[i] @ grads[i].T)
            np.testing.assert_allclose(after[i] - before[i], drift, atol=1e-12)
            assert np.abs(drift).max() > 1e-6  # the drift is not trivially zero


def test_flow_matches_scipy_solve_ivp(problem):
    net = dl.Net((3, 4, 2))
    obj = dl.Objective(problem, weight_decay=0.01)
    p0 = net.init(jax.random.key(3), scheme="gaussian", scale=0.4)
    ts = np.linspace(0.0, 2.0, 11)
    run = dl.train(obj, p0, dl.Flow(t1=2.0, rtol=1e-10, atol=1e-12), record=dl.Record(times=ts))
    sizes = [W.size for W in p0]

    def unflatten(x):
        return tuple(x[a:b].reshape(W.shape) for W, a, b in zip(p0, np.cumsum([0] + sizes[:-1]), np.cumsum(sizes)))

    grad = jax.jit(lambda p: obj.grad(p))
    ref = solve_ivp(lambda t, x: -np.concatenate([np.ravel(g) for g in grad(unflatten(x))]), (0.0, 2.0),
                    np.concatenate([np.ravel(W) for W in p0]), t_eval=ts, rtol=1e-11, atol=1e-13, method="DOP853")
    ref_losses = [float(obj.value(unflatten(x))) for x in ref.y.T]
    np.testing.assert_allclose(run.history["loss"], ref_losses, rtol=1e-8)
    np.testing.assert_allclose(np.concatenate([np.ravel(W) for W in run.params]), ref.y[:, -1], atol=1e-7)


@pytest.mark.parametrize("depth", [2, 3])
def test_flow_matches_the_saxe_closed_form(depth, rng):
    Syx = rng.normal(size=(3, 4))
    prob = dl.Regression.from_moments(np.eye(4), Syx, float(np.sum(Syx**2)) + 1.0)
    net = dl.Net((4,) + (5,) * (depth - 1) + (3,))
    ts = np.linspace(0.0, 4.0, 41)
    run = dl.train(dl.Objective(prob), modes.aligned_init(net, prob, 1e-3), dl.Flow(t1=4.0, rtol=1e-10, atol=1e-12),
                   record=dl.Record(times=ts, summaries=("loss", "singular_values")))
    theory = np.linalg.svd(modes.end_to_end_trajectory(prob, 1e-3, ts, depth=depth), compute_uv=False)
    np.testing.assert_allclose(run.history["singular_values"], theory, atol=1e-7)
    assert theory[-1, 0] > 100 * theory[0, 0]  # the modes were learned during the window


def test_moments_and_samples_give_the_same_trajectory(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=500)
    from_data = dl.Regression.from_data(X, Y)
    from_moments = dl.Regression.from_moments(X.T @ X / len(X), Y.T @ X / len(X), np.sum(Y**2) / len(X))
    p0 = dl.Net((3, 6, 2)).init(jax.random.key(4), scheme="gaussian", scale=0.3)
    a = dl.train(dl.Objective(from_data), p0, dl.GD(lr=0.02, steps=200))
    b = dl.train(dl.Objective(from_moments), p0, dl.GD(lr=0.02, steps=200))
    np.testing.assert_allclose(a.history["loss"], b.history["loss"], rtol=1e-10)
    for Wa, Wb in zip(a.params, b.params):
        np.testing.assert_allclose(Wa, Wb, rtol=1e-9, atol=1e-12)


def test_gd_equals_a_handwritten_loop(problem):
    obj = dl.Objective(problem, weight_decay=0.02)
    params = dl.Net((3, 4, 2)).init(jax.random.key(5), scheme="gaussian", scale=0.3)
    run = dl.train(obj, params, dl.GD(lr=0.05, steps=50), record=dl.Record(n=5))
    grad = jax.jit(lambda p: obj.grad(p))
    p = params
    for _ in range(50):
        p = tuple(W - 0.05 * G for W, G in zip(p, grad(p)))
    for a, b in zip(run.params, p):
        np.testing.assert_allclose(a, b, rtol=1e-12, atol=1e-14)
    np.testing.assert_array_equal(run.times, np.arange(0, 51, 10))


def test_diverging_learning_rate_ends_with_status_and_no_nan(problem):
    params = dl.Net((3, 4, 2)).init(jax.random.key(6), scheme="gaussian", scale=1.0)
    run = dl.train(dl.Objective(problem), params, dl.GD(lr=10.0, steps=500))
    assert run.status == "diverged"
    assert run.diverged_at is not None and 0 <= run.diverged_at < 500
    assert all(np.all(np.isfinite(v)) for v in run.history.values())
    assert all(np.all(np.isfinite(np.asarray(W))) for W in run.params)


def test_thresholds_stop_gd_and_flow(problem):
    obj = dl.Objective(problem)
    params = dl.Net((3, 4, 2)).init(jax.random.key(7), scheme="gaussian", scale=0.3)
    target = float(obj.value(params)) * 0.5
    run = dl.train(obj, params, dl.GD(lr=0.01, steps=5000), record=dl.Record(n=5000),
                   stop=dl.Stop(loss=target))
    assert run.status == "converged" and run.final_loss <= target and run.loss[-2] > target
    flow = dl.train(obj, params, dl.Flow(t1=100.0), stop=dl.Stop(loss=target))
    assert flow.status == "converged"
    assert flow.final_loss == pytest.approx(target, rel=1e-3)


def test_flow_grad_threshold_is_not_fooled_by_the_origin_saddle():
    """From a tiny init the gradient is ~1e-12 at t=0, far below the threshold; the flow must still learn."""
    prob = dl.Regression.from_moments(np.eye(3), np.diag([3.0, 2.0, 1.0]), 14.0)
    net = dl.Net((3, 4, 4, 3))
    params = net.init(jax.random.key(8), scheme="gaussian", scale=1e-4)
    obj = dl.Objective(prob)
    assert float(np.sqrt(sum(np.sum(np.asarray(g) ** 2) for g in obj.grad(params)))) < 1e-6
    run = dl.train(obj, params, dl.Flow(t1=1e4), record=dl.Record(spacing="log"), stop=dl.Stop(grad_norm=1e-6))
    assert run.status == "converged"
    assert run.final_loss < 1e-6  # reached the global minimum (loss 0), not the saddle (loss 14)


def test_sgd_with_noise_and_minibatches_tracks_the_exact_loss(problem):
    obj = dl.Objective(problem, noise=dl.Dropout(0.1))
    params = dl.Net((3, 8, 2)).init(jax.random.key(9), scheme="gaussian", scale=0.3)
    gd = dl.train(obj, params, dl.GD(lr=0.01, steps=800))
    sgd = dl.train(obj, params, dl.SGD(lr=0.01, steps=800, batch_size=20), key=1)
    assert sgd.final_loss < 0.3 * sgd.loss[0]
    assert sgd.final_loss == pytest.approx(gd.final_loss, rel=0.2)
    again = dl.train(obj, params, dl.SGD(lr=0.01, steps=800, batch_size=20), key=1)
    np.testing.assert_array_equal(again.history["loss"], sgd.history["loss"])  # seeded: reproducible


def test_any_optax_optimizer_and_the_loss_is_passed_as_value(problem):
    obj = dl.Objective(problem)
    params = dl.Net((3, 4, 2)).init(jax.random.key(10), scheme="gaussian", scale=0.3)
    run = dl.train(obj, params, dl.GD(steps=300, optimizer=optax.adam(1e-2)))
    assert run.final_loss < 0.5 * run.loss[0]
    seen = []

    def record_value():
        def update(updates, state, params=None, *, value=None, **extra):
            jax.debug.callback(lambda v: seen.append(float(v)), value)
            return updates, state

        return optax.GradientTransformationExtraArgs(lambda p: optax.EmptyState(), update)

    dl.train(obj, params, dl.GD(steps=3, optimizer=optax.chain(record_value(), optax.sgd(0.01))))
    assert seen[0] == pytest.approx(float(obj.value(params)), rel=1e-12)


def test_batched_training_equals_separate_runs(problem):
    net = dl.Net((3, 4, 2))
    inits = [net.init(jax.random.key(s), scheme="gaussian", scale=0.3) for s in range(3)]
    objs = [dl.Objective(problem, weight_decay=g) for g in (0.0, 0.01, 0.1)]
    lrs = [0.01, 0.02, 0.05]
    batched = dl.train_batched(objs, inits, [dl.GD(lr=lr_, steps=100) for lr_ in lrs])
    for run, obj, p0, lr in zip(batched, objs, inits, lrs):
        single = dl.train(obj, p0, dl.GD(lr=lr, steps=100))
        np.testing.assert_allclose(run.history["loss"], single.history["loss"], rtol=1e-12)
    flows = dl.train_batched(objs[0], inits, dl.Flow(t1=1.0))
    for run, p0 in zip(flows, inits):
        np.testing.assert_allclose(run.final_loss, dl.train(objs[0], p0, dl.Flow(t1=1.0)).final_loss,
                                   rtol=1e-10)


def test_bad_training_options_name_the_field(problem):
    obj = dl.Objective(problem)
    params = dl.Net((3, 4, 2)).init(jax.random.key(11), scheme="gaussian", scale=0.3)
    with pytest.raises(ConfigError, match="method"):
        dl.train(obj, params, "newton")
    with pytest.raises(ConfigError, match="batch_size"):
        dl.train(obj, params, dl.SGD(lr=1e-2, steps=1000), key=0)
    with pytest.raises(DataError, match=r"params\[1\]"):
        dl.train(obj, (params[0], params[1][:, :2]), dl.GD(lr=1e-2, steps=1000))
    with pytest.raises(DataError, match="NaN"):
        dl.train(obj, (params[0] * np.nan, params[1]), dl.GD(lr=1e-2, steps=1000))


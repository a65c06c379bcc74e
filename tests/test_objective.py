"""The objective: the library's normalisation, exact noise averaging and exact gradients."""

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError


def finite_difference_grad(f, params, eps=1e-6):
    """Central differences, entry by entry (independent of autodiff)."""
    f = jax.jit(lambda p, f=f: f(p))
    out = []
    for i, W in enumerate(params):
        G = np.zeros(W.shape)
        for idx in np.ndindex(W.shape):
            E = np.zeros(W.shape)
            E[idx] = eps
            plus = tuple(p + E if j == i else p for j, p in enumerate(params))
            minus = tuple(p - E if j == i else p for j, p in enumerate(params))
            G[idx] = (float(f(plus)) - float(f(minus))) / (2 * eps)
        out.append(G)
    return out


def test_squared_loss_has_no_half_and_averages_samples(make_data):
    X, Y = make_data(n=50)
    params = dl.Net((4, 5, 3)).init(jax.random.key(0), scheme="gaussian", scale=0.3)
    A = np.asarray(params[1] @ params[0])
    direct = np.mean(np.sum((X @ A.T - Y) ** 2, axis=1))
    obj = dl.Objective(dl.Regression.from_data(X, Y))
    assert float(obj.value(params)) == pytest.approx(direct, rel=1e-12)


def test_weight_decay_is_per_layer_without_half(rng):
    prob = dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 1.0)
    params = dl.Net((2, 3, 1)).init(jax.random.key(1), scheme="gaussian", scale=1.0)
    plain = float(dl.Objective(prob).value(params))
    decayed = float(dl.Objective(prob, weight_decay=[0.1, 0.3]).value(params))
    expected = 0.1 * np.sum(np.asarray(params[0]) ** 2) + 0.3 * np.sum(np.asarray(params[1]) ** 2)
    assert decayed - plain == pytest.approx(expected, rel=1e-12)


def test_float32_problem_keeps_float32_with_weight_decay(rng):
    """The decay is stored in float64 but must not promote a float32 loss; values agree with float64."""
    Sxx = np.cov(rng.normal(size=(3, 50)))
    Syx = rng.normal(size=(2, 3))
    p64 = tuple(rng.normal(size=s) for s in [(4, 3), (2, 4)])
    results = {}
    for dtype in (jnp.float32, jnp.float64):
        obj = dl.Objective(dl.Regression.from_moments(Sxx, Syx, 9.0, dtype=dtype), weight_decay=[1e-2, 3e-2])
        value, grads = obj.value_and_grad(tuple(jnp.asarray(W, dtype) for W in p64))
        assert value.dtype == dtype and all(g.dtype == dtype for g in grads)
        results[dtype] = float(value)
    assert results[jnp.float32] == pytest.approx(results[jnp.float64], rel=1e-5)


def test_residual_decay_acts_on_the_branch():
    net = dl.Net((3, 3, 3), residual=True)
    prob = dl.Regression.from_moments(np.eye(3), np.eye(3), 3.0)
    params = net.init(jax.random.key(0), scheme="zero")
    assert all(np.allclose(W, np.eye(3)) for W in params)
    # at the identity the branches are zero, so decay adds nothing and the identity fits Syx = I exactly
    assert float(dl.Objective(prob, weight_decay=0.5, net=net).value(params)) == pytest.approx(0.0, abs=1e-12)
    assert float(dl.Objective(prob, weight_decay=0.5).value(params)) == pytest.approx(3.0, rel=1e-12)


def _classification(rng, n=30, d=3):
    X = rng.normal(size=(n, d))
    y = np.sign(X @ np.array([1.0, -0.5, 0.3]) + 1e-3)
    return dl.Classification(X, y)


CASES = [
    (loss, noise, residual, decay)
    for loss, noise, residual, decay in itertools.product(
        ["squared", "logistic", "exponential"], [None, "dropout", "gaussian"], [False, True], [0.0, 0.07]
    )
    if loss == "squared" or noise is None  # noise is exact for regression only (see the next test)
]


@pytest.mark.parametrize("loss,noise,residual,decay", CASES)
def test_gradient_matches_finite_differences(rng, make_data, loss, noise, residual, decay):
    width = 3
    if loss == "squared":
        X, Y = make_data(d_in=3, d_out=3 if residual else 2, n=40)
        prob = dl.Regression.from_data(X, Y)
    else:
        prob = _classification(rng)
    net = dl.Net((3, width, width, prob.d_out), residual=residual)
    noise_obj = {None: None, "dropout": dl.Dropout(0.3), "gaussian": dl.MultiplicativeNoise(0.5)}[noise]
    obj = dl.Objective(prob, loss=loss, weight_decay=decay, noise=noise_obj, net=net)
    params = net.init(jax.random.key(3), scheme="gaussian", scale=0.4)
    auto = obj.grad(params)
    fd = finite_difference_grad(obj.value, tuple(np.asarray(W) for W in params))
    for a, f in zip(auto, fd):
        np.testing.assert_allclose(np.asarray(a), f, rtol=1e-6, atol=1e-8)


def test_noise_requires_regression(rng):
    with pytest.raises(ConfigError, match="noise"):
        dl.Objective(_classification(rng), loss="logistic", noise=dl.Dropout(0.2))


@pytest.mark.parametrize("noise", [dl.Dropout(0.25), dl.MultiplicativeNoise(0.4)])
def test_exact_noise_loss_matches_monte_carlo_with_real_masks(make_data, noise):
    """Average the loss of a network whose hidden units are multiplied by sampled masks (per sample, per unit)."""
    X, Y = make_data(d_in=3, d_out=2, n=64)
    net = dl.Net((3, 4, 5, 2))
    params = net.init(jax.random.key(7), scheme="gaussian", scale=0.6)
    exact = float(dl.Objective(dl.Regression.from_data(X, Y), noise=noise).value(params))

    @jax.jit
    def sampled_loss(key):
        k1, k2 = jax.random.split(key)
        h1 = (X @ params[0].T) * noise.sample(k1, (X.shape[0], 4))
        h2 = (h1 @ params[1].T) * noise.sample(k2, (X.shape[0], 5))
        return jnp.mean(jnp.sum((h2 @ params[2].T - Y) ** 2, axis=1))

    draws = jax.vmap(sampled_loss)(jax.random.split(jax.random.key(0), 5_000))
    mean, sem = float(jnp.mean(draws)), float(jnp.std(draws)) / np.sqrt(draws.size)
    assert abs(mean - exact) < 4 * sem
    noiseless = float(dl.Objective(dl.Regression.from_data(X, Y)).value(params))
    assert exact - noiseless > 10 * sem  # the noise term is really there and measured


def test_sample_value_is_unbiased(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=50)
    prob = dl.Regression.from_data(X, Y)
    obj = dl.Objective(prob, noise=dl.Dropout(0.2), weight_decay=0.01)
    params = dl.Net((3, 4, 2)).init(jax.random.key(2), scheme="gaussian", scale=0.5)
    draws = jax.vmap(lambda k: obj.sample_value(params, k, batch_size=10))(jax.random.split(jax.random.key(1), 5_000))
    sem = float(jnp.std(draws)) / np.sqrt(draws.size)
    assert abs(float(jnp.mean(draws)) - float(obj.value(params))) < 4 * sem
    moments_only = dl.Objective(dl.Regression.from_moments(prob.Sxx, prob.Syx, prob.Syy), noise=dl.Dropout(0.2),
                                weight_decay=0.01)
    draws = jax.vmap(lambda k: moments_only.sample_value(params, k))(jax.random.split(jax.random.key(1), 5_000))
    sem = float(jnp.std(draws)) / np.sqrt(draws.size)
    assert abs(float(jnp.mean(draws)) - float(obj.value(params))) < 4 * sem


def test_bad_inputs_name_the_field(rng):
    prob = dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 1.0)
    with pytest.raises(ConfigError, match="loss"):
        dl.Objective(prob, loss="hinge")
    with pytest.raises(ConfigError, match="loss"):
        dl.Objective(prob, loss="logistic")
    with pytest.raises(ConfigError, match="weight_decay"):
        dl.Objective(prob, weight_decay=-1.0)
    with pytest.raises(ConfigError, match=r"weight_decay\[1\]"):
        dl.Objective(prob, weight_decay=[0.1, float("nan")])
    with pytest.raises(DataError, match="params"):
        dl.Objective(prob).value((jnp.ones((3, 2)), jnp.ones((2, 3))))
    with pytest.raises(DataError, match="Y"):
        dl.Regression.from_data(np.ones((4, 2)), np.ones((5, 1)))
    with pytest.raises(DataError, match="NaN"):
        dl.Regression.from_data(np.full((4, 2), np.nan), np.ones((4, 1)))
    with pytest.raises(DataError, match="positive semi-definite"):
        dl.Regression.from_moments(-np.eye(2), np.ones((1, 2)), 1.0)
    with pytest.raises(DataError, match="labels"):
        dl.Classification(np.ones((3, 2)), np.array([1, 0, -1]))
    with pytest.raises(ConfigError, match="p"):
        dl.Dropout(1.0)


def test_abstract_objective_interface_and_as_objective():
    obj = dl.as_objective(lambda p: jnp.sum(p["w"] ** 2) + jnp.sum(jnp.sin(p["b"])))
    params = {"w": jnp.array([1.0, -2.0]), "b": jnp.array([0.3])}
    assert isinstance(obj, dl.AbstractObjective) and dl.as_objective(obj) is obj
    assert not obj.is_dln and obj.n_samples is None and not obj.stochastic
    g = obj.grad(params)
    np.testing.assert_allclose(g["w"], [2.0, -4.0], rtol=1e-14)
    np.testing.assert_allclose(g["b"], np.cos([0.3]), rtol=1e-14)
    v, g2 = obj.value_and_grad(params)
    assert float(v) == pytest.approx(5.0 + np.sin(0.3), rel=1e-14) and float(g2["w"][0]) == 2.0
    assert float(obj.sample_value(params, jax.random.key(0))) == float(v)
    with pytest.raises(ConfigError, match="batch_size"):
        obj.sample_value(params, jax.random.key(0), batch_size=2)
    with pytest.raises(DataError, match=r"params\['w'\].*int"):
        obj.check_params({"w": jnp.array([1, 2]), "b": jnp.array([0.3])})
    with pytest.raises(DataError, match=r"params\['b'\].*NaN"):
        obj.grad({"w": jnp.array([1.0]), "b": jnp.array([np.nan])})
    with pytest.raises(DataError, match="params"):
        obj.check_params({})
    with pytest.raises(ConfigError, match="objective"):
        dl.as_objective(3.0)
    with pytest.raises(TypeError):
        dl.AbstractObjective()  # value is abstract


def test_objective_properties_follow_problem_noise_and_model(make_data):
    X, Y = make_data(d_in=3, d_out=1, n=20)
    prob = dl.Regression.from_data(X, Y)
    assert dl.Objective(prob).n_samples == 20 and dl.Objective(prob).is_dln
    assert dl.Objective(prob, noise=dl.Dropout(0.1)).stochastic and not dl.Objective(prob).stochastic
    assert not dl.Objective(prob, net=dl.DiagonalNet(3)).is_dln
    moments = dl.Regression.from_moments(prob.Sxx, prob.Syx, prob.Syy)
    assert dl.Objective(moments).n_samples is None
    obj = dl.Objective(prob)
    params = (jnp.ones((2, 3)), jnp.ones((1, 2)))
    assert obj._check(params) == obj.check_params(params)  # the alias callers still use

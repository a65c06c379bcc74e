"""Tests of the ji2019 step-size rules (loss-scaled step, Assumption-5 ball schedule)."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import dlnlab as dl
from dlnlab.errors import ConfigError
from dlnlab.train._schedules import ball_sgd, loss_scaled_sgd


def _problem(seed=0, n=30, d=3):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(4 * n, d)) * np.array([2.0, 1.0, 0.3])[:d]
    s = X @ np.ones(d) / np.sqrt(d)
    keep = np.abs(s) > 0.3  # a clear margin, so that the risk can fall fast
    X, y = X[keep][:n], np.sign(s[keep][:n])
    X = X / np.linalg.norm(X, axis=1).max()
    return dl.Objective(dl.Classification(X, y), loss="logistic")


def test_loss_scaled_step_is_lr_over_loss_clipped():
    opt = loss_scaled_sgd(0.2, min_step_size=0.5, max_step_size=100.0)
    g = (jnp.arange(6.0).reshape(2, 3), jnp.ones((1, 2)))
    s = opt.init(g)
    for value, eta in ((0.01, 20.0), (1.0, 0.5), (1e-9, 100.0), (0.0, 100.0)):
        upd, s = opt.update(g, s, g, value=jnp.asarray(value))
        assert float(s.step_size) == pytest.approx(eta)
        assert np.allclose(upd[0], -eta * g[0]) and np.allclose(upd[1], -eta * g[1])


def test_loss_scaled_errors():
    opt = loss_scaled_sgd(0.1)
    g = (jnp.ones((2, 2)),)
    with pytest.raises(ConfigError, match="value"):
        opt.update(g, opt.init(g), g)
    with pytest.raises(ConfigError, match="learning_rate"):
        loss_scaled_sgd(-1.0)
    with pytest.raises(ConfigError, match="min_step_size"):
        loss_scaled_sgd(0.1, min_step_size=10.0, max_step_size=1.0)


def test_loss_scaled_through_dl_train_beats_constant_step():
    obj = _problem()
    p0 = dl.Net((3, 5, 5, 1)).init(jax.random.key(0), scheme="fan_in", scale=0.3)
    fast = dl.train(obj, p0, dl.GD(steps=1500, optimizer=loss_scaled_sgd(1e-3, min_step_size=1.0, max_step_size=1e50)))
    const = dl.train(obj, p0, dl.GD(lr=1.0, steps=1500))
    # same first step (floor 1), then the risk falls far faster than with the constant step 1
    assert fast.final_loss < 1e-3 * const.final_loss
    assert fast.status == "completed"
    assert np.allclose(fast.history["loss"][0], const.history["loss"][0])


def test_ball_schedule_formula_descent_and_radius():
    """eta_t = min(1 / (2 L^2 R^(2L-2) (1/4 + 1)), 1) on B(R); risk decreases by at least
    eta/2 ||grad||^2 (the paper's eq. (4)); R_t never decreases and contains W(t+1)."""
    obj = _problem(1)
    L = 3
    params = dl.Net((3, 4, 4, 1)).init(jax.random.key(1), scheme="gaussian", scale=0.8)
    opt = ball_sgd()
    s = opt.init(params)
    R_prev = float(s.radius)
    assert R_prev == pytest.approx(max(1.0, max(float(np.linalg.norm(W)) for W in params)))
    step = jax.jit(lambda p, s: _step(obj, opt, p, s))
    for _ in range(200):
        loss, g, new, s = step(params, s)
        R, eta = float(s.radius), float(s.step_size)
        assert R >= R_prev
        assert eta == pytest.approx(min(1.0 / (2 * L**2 * R ** (2 * L - 2) * 1.25), 1.0), rel=1e-12)
        assert max(float(np.linalg.norm(W)) for W in new) <= R * (1 + 1e-12)
        gn2 = sum(float(jnp.sum(G**2)) for G in g)
        assert float(obj.value(new)) <= float(loss) - eta / 2 * gn2 * (1 - 1e-9)
        params, R_prev = new, R
    assert int(s.backtracks) > 0  # the line search was exercised: the layers grow


def _step(obj, opt, p, s):
    loss, g = obj.value_and_grad(p)
    upd, s = opt.update(g, s, p)
    return loss, g, optax.apply_updates(p, upd), s


def test_ball_schedule_errors():
    with pytest.raises(ConfigError, match="growth"):
        ball_sgd(growth=1.0)
    opt = ball_sgd()
    g = (jnp.ones((2, 2)),)
    with pytest.raises(ConfigError, match="params"):
        opt.update(g, opt.init(g))

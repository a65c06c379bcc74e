"""The batched descent engine: runs of one batch stop independently and exactly, divergence found by replaying a
chunk is the step a per-step check finds, and float32 problems train in float32."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError

# L(w) = E(w x - y)^2 with E x^2 = 1, y = 0 and w_0 = 1: gd with step lr multiplies w by (1 - 2 lr), so the loss
# after t steps is (1 - 2 lr)^(2t). With the default threshold 1e12 (L_0 = 1) a run blows up at the first t with
# |1 - 2 lr|^(2t) >= 1e12: t = 3 for lr = 101 (factor -201), t = 5 for lr = 11 (factor -21), never for lr = 0.1.
SCALAR = dl.Objective(dl.Regression.from_moments(np.eye(1), np.zeros((1, 1)), 0.0))
ONE = (np.ones((1, 1)),)


def first_blowup(lr):
    t = 0
    while abs(1 - 2 * lr) ** (2 * t) < 1e12:
        t += 1
    return t


@pytest.mark.parametrize("every", [1, 4, 7])
def test_each_run_of_a_batch_diverges_at_its_own_step(every):
    lrs = [101.0, 0.1, 11.0, 0.3]
    assert [first_blowup(lr) for lr in lrs[::2]] == [3, 5]
    runs = dl.train_batched(SCALAR, [ONE] * 4, [dl.GD(lr=lr_, steps=20) for lr_ in lrs],
                            record=dl.Record(times=range(0, 20 + 1, every)))
    for run, lr in zip(runs, lrs):
        factor = 1 - 2 * lr
        if abs(factor) > 1:
            bad = first_blowup(lr)
            assert run.status == "diverged" and run.diverged_at == bad and run.n_steps == bad
            # frozen at the last finite params: those of step `bad`, whose loss is the blow-up
            np.testing.assert_allclose(float(run.params[0][0, 0]), factor**bad, rtol=1e-12)
            expected_times = sorted(set(range(0, bad + 1, every)) | {bad})
        else:
            assert run.status == "completed" and run.diverged_at is None and run.n_steps == 20
            np.testing.assert_allclose(float(run.params[0][0, 0]), factor**20, rtol=1e-12)
            expected_times = sorted(set(range(0, 21, every)) | {20})
        np.testing.assert_array_equal(run.times, expected_times)
        np.testing.assert_allclose(run.loss, factor ** (2.0 * np.asarray(expected_times)), rtol=1e-10)


def test_batched_runs_equal_single_runs_with_early_stops(make_data):
    """Different learning rates, one run stopped by the loss threshold, one diverging: every run of the batch
    is the run dl.train gives alone (same params to rounding, same status, steps and records)."""
    X, Y = make_data(d_in=3, d_out=2, n=60)
    obj = dl.Objective(dl.Regression.from_data(X, Y), weight_decay=0.01)
    net = dl.Net((3, 4, 4, 2))
    inits = [net.init(jax.random.key(s), scheme="gaussian", scale=0.5) for s in range(5)]
    lrs = [0.05, 0.01, 0.0002, 10.0, 1e-6]
    opts = dict(record=dl.Record(n=12), stop=dl.Stop(loss=0.1 * float(obj.value(inits[0]))))
    batched = dl.train_batched(obj, inits, [dl.GD(lr=lr_, steps=300) for lr_ in lrs], **opts)
    alone = [dl.train(obj, p, dl.GD(lr=lr, steps=300), **opts) for p, lr in zip(inits, lrs)]
    assert {r.status for r in alone} == {"converged", "diverged", "completed"}  # the batch really mixes stopping rules
    for b, a in zip(batched, alone):
        assert (b.status, b.diverged_at, b.n_steps) == (a.status, a.diverged_at, a.n_steps)
        np.testing.assert_array_equal(b.times, a.times)
        np.testing.assert_allclose(b.loss, a.loss, rtol=1e-12)
        for Wb, Wa in zip(b.params, a.params):
            np.testing.assert_allclose(Wb, Wa, rtol=1e-12, atol=1e-14)
    for run in batched:
        if run.ok:  # the final params are those of the last record, taken independently here
            np.testing.assert_allclose(run.final_loss, float(obj.value(run.params)), rtol=1e-12)


def test_batched_sgd_equals_single_sgd_runs(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=40)
    obj = dl.Objective(dl.Regression.from_data(X, Y))
    net = dl.Net((3, 5, 2))
    inits = [net.init(jax.random.key(10 + s), scheme="gaussian", scale=0.3) for s in range(3)]
    keys = jax.random.split(jax.random.key(3), 3)
    batched = dl.train_batched(obj, inits, dl.SGD(lr=0.05, steps=40, batch_size=8), key=jax.random.key(3))
    for run, p, k in zip(batched, inits, keys):
        alone = dl.train(obj, p, dl.SGD(lr=0.05, steps=40, batch_size=8), key=k)
        for Wb, Wa in zip(run.params, alone.params):
            np.testing.assert_allclose(Wb, Wa, rtol=1e-12, atol=1e-14)
    assert not np.allclose(batched[0].params[0], batched[1].params[0])


def test_float32_problem_trains_in_float32(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=50)
    p32 = dl.Regression.from_data(X, Y, dtype=jnp.float32)
    assert {a.dtype for a in (p32.Sxx, p32.Syx, p32.Syy, p32.X, p32.Y)} == {jnp.dtype(jnp.float32)}
    p64 = dl.Regression.from_data(X, Y)
    assert p64.Sxx.dtype == jnp.float64
    np.testing.assert_allclose(p32.Sxx, p64.Sxx, rtol=1e-6)  # moments taken in float64, then stored
    net = dl.Net((3, 4, 2))
    init = net.init(jax.random.key(1), scheme="gaussian", scale=0.3)
    run32 = dl.train(dl.Objective(p32), tuple(W.astype(jnp.float32) for W in init), dl.GD(lr=0.05, steps=200))
    run64 = dl.train(dl.Objective(p64), init, dl.GD(lr=0.05, steps=200))
    assert all(W.dtype == jnp.float32 for W in run32.params)
    for W32, W64 in zip(run32.params, run64.params):
        np.testing.assert_allclose(W32, W64, rtol=1e-4, atol=1e-5)
        assert not np.array_equal(np.asarray(W32, np.float64), np.asarray(W64))  # really computed in float32


def test_from_moments_dtype_and_its_errors():
    prob = dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 2.0, dtype="float32")
    assert (prob.Sxx.dtype, prob.Syx.dtype, prob.Syy.dtype) == (jnp.float32,) * 3
    for bad in ("int32", "banana", bool):
        with pytest.raises(ConfigError, match="dtype"):
            dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 2.0, dtype=bad)
    with pytest.raises(DataError, match="Sxx.*overflow float32"):
        dl.Regression.from_moments(1e39 * np.eye(2), np.ones((1, 2)), 2.0, dtype=jnp.float32)
    with pytest.raises(DataError, match="overflow float32"):
        dl.Regression.from_data(np.full((3, 2), 1e20), np.ones((3, 1)), dtype=jnp.float32)


def test_batched_params_with_nan_name_the_layer():
    good = (np.ones((2, 1)), np.ones((1, 2)))
    bad = (np.ones((2, 1)), np.array([[1.0, np.nan]]))
    # dl.Objective itself rejects the matrix (naming the layer) before the batch's own test, which also names the run
    with pytest.raises(DataError, match=r"\[1\]: contains NaN"):
        dl.train_batched(SCALAR, [good, good, bad, good], dl.GD(lr=0.1, steps=3))

"""Numerical trouble never hides, and bad training options get one clear error.

Property: for any learning rate and initial scale, ``dl.train`` returns either a finite run with an
ok status or a run with status ``"diverged"``, the step where it happened, finite parameters and a
history without NaN or inf; divergence is checked against an independent recomputation from the
returned parameters. The compiled programs are cached on the structure of a call, so after the first
example every call only runs (the learning rate, the weights and the data are traced arguments). Bad
fields of the method, record and stop objects are generated in test_reliability_constructors.py; here
the bad combinations that only ``dl.train`` can see (an object of the wrong kind, a key where none
applies, record times past the end, a batch larger than the data).
"""

from __future__ import annotations

import jax
import numpy as np
import reliability_helpers as rh
from hypothesis import given
from hypothesis import strategies as st

import dlnlab as dl

STEPS, EVERY = rh.STEPS, rh.EVERY
RECORD = dl.Record(times=range(0, STEPS + 1, EVERY))
NET, OBJ, OBJ_NOISY = rh.training_problem()
LOG_LR = st.floats(-4.0, 1.5)
LOG_SCALE = st.floats(-3.0, 2.5)


def _check_run(run, obj, lr, *, stochastic):
    assert run.status in ("completed", "converged", "diverged"), run.status
    assert rh.all_finite(run.params), "parameters with NaN/inf"
    for k, v in run.history.items():
        assert np.all(np.isfinite(v)), f"history[{k!r}] holds NaN/inf ({run.status})"
    assert np.all(np.diff(run.times) > 0), f"record times not increasing: {run.times}"
    blowup = 1e12 * max(1.0, abs(float(run.loss[0])))
    if run.status == "diverged":
        assert isinstance(run.diverged_at, int) and 0 <= run.diverged_at <= STEPS
        assert str(run.diverged_at) in run.message
        if not stochastic:  # independent check: from the returned params the next step blows up
            loss, g = obj.value_and_grad(run.params)
            nxt = [W - lr * G for W, G in zip(run.params, g)]
            assert (not np.isfinite(float(loss)) or float(loss) >= blowup
                    or not rh.all_finite(nxt)), "diverged although the step from its params is fine"
        rh.OUTCOMES["gd/sgd run: diverged, reported with its step"] += 1
    else:
        assert run.n_steps == STEPS and run.times[-1] == STEPS
        assert np.all(run.loss < blowup)
        if not stochastic:  # the last record is the loss of the returned params
            np.testing.assert_allclose(run.final_loss, float(obj.value(run.params)), rtol=1e-10)
        rh.OUTCOMES["gd/sgd run: finite, ok status"] += 1


@rh.property_settings(60)
@given(log_lr=LOG_LR, log_scale=LOG_SCALE, seed=st.integers(0, 2**31),
       scheme=st.sampled_from(["gaussian", "fan_in", "orthogonal"]))
def test_gd_is_finite_or_reports_divergence(log_lr, log_scale, seed, scheme):
    lr, scale = 10.0**log_lr, 10.0**log_scale
    params = NET.init(seed, scheme=scheme, scale=scale)
    run = rh.outcome("train(gd: lr, init)", lambda: dl.train(OBJ, params, dl.GD(lr=lr, steps=STEPS),
                                                             record=RECORD))
    if run is not None:
        _check_run(run, OBJ, lr, stochastic=False)


@rh.property_settings(30)
@given(log_lr=LOG_LR, log_scale=LOG_SCALE, seed=st.integers(0, 2**31), key=st.integers(0, 2**31))
def test_sgd_with_dropout_is_finite_or_reports_divergence(log_lr, log_scale, seed, key):
    lr, scale = 10.0**log_lr, 10.0**log_scale
    params = NET.init(seed, scheme="gaussian", scale=scale)
    run = rh.outcome("train(sgd: lr, init)", lambda: dl.train(
        OBJ_NOISY, params, dl.SGD(lr=lr, steps=STEPS, batch_size=8), record=RECORD, key=key))
    if run is not None:
        _check_run(run, OBJ_NOISY, lr, stochastic=True)


@rh.property_settings(5)
@given(log_scale=st.floats(-2.0, 1.6), seed=st.integers(0, 100))
def test_flow_never_records_nan(log_scale, seed):
    params = NET.init(seed, scheme="gaussian", scale=10.0**log_scale)
    run = dl.train(OBJ, params, dl.Flow(t1=rh.FLOW["t1"], max_steps=rh.FLOW["max_steps"]))
    assert run.status in ("completed", "converged", "diverged", "failed")
    assert rh.all_finite(run.params) and len(run.times) >= 1
    assert all(np.all(np.isfinite(v)) for v in run.history.values())
    assert np.all(np.diff(run.times) > 0) and run.times[-1] <= 5.0
    if run.status == "completed":  # reached t1: a gradient flow never increases the loss
        assert run.times[-1] == 5.0 and np.all(np.diff(run.loss) <= 1e-9 * max(1.0, run.loss[0]))
    rh.ACCEPTED["train(flow: init)"] += 1
    rh.OUTCOMES[f"flow run: {run.status}"] += 1


# -- bad combinations: one broken per example, so every example must be rejected -------------------
JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=5), st.just(object()), st.just({}),
                 st.just([1, [2]]), st.just(1 + 1j))
NOT_NONE_JUNK = JUNK.filter(lambda v: v is not None)
GD = dl.GD(lr=0.01, steps=3)
BAD_CALLS = {
    "method": (st.one_of(st.sampled_from(["gd", "sgd", "flow", "adam"]), NOT_NONE_JUNK, st.just(dl.Record())),
               lambda v: dict(method=v)),
    "key": (st.one_of(st.integers(0, 5), st.just(jax.random.key(0))), lambda v: dict(key=v)),  # GD takes no key
    "SGD.key": (st.none(), lambda v: dict(method=dl.SGD(lr=0.01, steps=3, batch_size=4), key=v)),
    "key ": (st.one_of(st.floats(), st.text(max_size=4), st.integers(2**63, 2**80)),
             lambda v: dict(method=dl.SGD(lr=0.01, steps=3, batch_size=4), key=v)),
    "SGD.batch_size": (st.integers(25, 10**9), lambda v: dict(method=dl.SGD(lr=0.01, steps=3, batch_size=v), key=0)),
    "Record.times": (st.one_of(st.integers(4, 10**6).map(lambda t: (0, t)), st.just((0.5, 2.0))),
                     lambda v: dict(record=dl.Record(times=v))),
    "record": (st.one_of(NOT_NONE_JUNK, st.just(dl.Stop())), lambda v: dict(record=v)),
    "stop": (st.one_of(NOT_NONE_JUNK, st.just(dl.Record())), lambda v: dict(stop=v)),
}
_P = NET.init(1, scheme="gaussian", scale=0.3)


@rh.property_settings(120)
@given(data=st.data())
def test_bad_train_calls_are_rejected_before_compiling(data):
    name = data.draw(st.sampled_from(sorted(BAD_CALLS)), label="case")
    strategy, build = BAD_CALLS[name]
    call = {"method": GD, **build(data.draw(strategy, label=name))}
    field = name.strip().split(".")[-1]
    rh.outcome("train(options)", lambda: dl.train(OBJ, _P, call.pop("method"), **call), field=field,
               must_fail=True)


BAD_PARAMS = st.one_of(
    JUNK, st.just(()), st.just(_P[:2]), st.just(tuple(reversed(_P))),
    st.just((_P[0] * np.nan, _P[1], _P[2])), st.just((_P[0], _P[1] * np.inf, _P[2])),
    st.just((np.ones((5, 3, 1)), _P[1], _P[2])), st.just(tuple(np.asarray(W, int) for W in _P)),
)


@rh.property_settings(60)
@given(params=BAD_PARAMS, batched=st.booleans())
def test_bad_params_and_objectives(params, batched):
    if batched:
        rh.outcome("train_batched(bad params)", lambda: dl.train_batched(OBJ, [_P, params], GD),
                   must_fail=True)
    else:
        rh.outcome("train(bad params)", lambda: dl.train(OBJ, params, GD), field="params",
                   must_fail=True)


@rh.property_settings(40)
@given(objectives=st.one_of(JUNK.filter(lambda o: not callable(o)), st.just([OBJ]), st.just([OBJ, "x"]),
                            st.just([OBJ] * 3), st.just(OBJ)),
       methods=st.one_of(st.just([GD] * 3), st.just([GD]), st.just([GD, dl.Flow(t1=1.0)]), st.just(GD),
                         st.just([GD, dl.GD(lr=0.01, steps=4)])))
def test_bad_batched_options(objectives, methods):
    bad_obj = objectives is not OBJ and not (isinstance(objectives, list) and len(objectives) == 2
                                             and all(isinstance(o, dl.Objective) for o in objectives))
    bad_methods = methods is not GD
    if not (bad_obj or bad_methods):
        return
    rh.outcome("train_batched(options)", lambda: dl.train_batched(objectives, [_P, _P], methods),
               must_fail=True)


def test_divergence_is_reported_at_the_first_bad_step():
    """A hand-made blow-up: on L(w) = E(w x - y)^2 with E x^2 = 1, gd with lr multiplies the error by
    (1 - 2 lr) per step, so lr = 101 multiplies it by -201: after k steps the loss is 201^(2k) times
    the initial one and crosses 1e12 x L0 at k = 3 (201^6 = 6.6e13 > 1e12 > 201^4 = 1.6e9)."""
    prob = dl.Regression.from_moments(np.eye(1), np.zeros((1, 1)), 0.0)
    obj = dl.Objective(prob)
    run = dl.train(obj, (np.ones((1, 1)),), dl.GD(lr=101.0, steps=20), record=dl.Record(n=20))
    assert run.status == "diverged" and run.diverged_at == 3
    np.testing.assert_allclose(run.loss, 201.0 ** (2 * np.arange(4)), rtol=1e-12)
    np.testing.assert_allclose(np.asarray(run.params[0]), [[(-201.0) ** 3]], rtol=1e-12)
    assert jax.numpy.isfinite(run.final_loss) and "step 3" in run.message

"""Reliability of models, problems and the objective: the silent acceptances of issue 13 item 6 (each failed on
0.1) and generated bad inputs for the matrix problems and the diagonal network."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reliability_helpers as rh
from hypothesis import given
from hypothesis import strategies as st

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError


# -- issue 13, item 6: each accepted silently (or returned NaN) on 0.1 ---------------------------------------------
def test_residual_net_without_a_square_block_is_refused():
    with pytest.raises(ConfigError, match="residual") as info:
        dl.Net((3, 4, 2), residual=True)
    rh.check_message(info.value, "residual")
    dl.Net((3, 4, 4, 2), residual=True)  # one square block: fine


@pytest.mark.parametrize("scheme,opts,field", [
    ("zero", {"scale": 5.0}, "scale"),
    ("zero", {"gamma": 1.0}, "gamma"),
    ("gaussian", {"scale": 0.1, "gamma": 1.0}, "gamma"),
    ("width_power", {"gamma": 1.0, "scale": 0.1}, "scale"),
    ("balanced", {"target": np.eye(2), "scale": 2.0}, "scale"),
    ("fan_in", {"target": np.eye(2)}, "target"),
])
def test_init_options_that_do_not_apply_are_refused(scheme, opts, field):
    with pytest.raises(ConfigError, match=field) as info:
        dl.Net((2, 2, 2)).init(0, scheme, **opts)
    rh.check_message(info.value, field)


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.bool_, np.uint8])
def test_integer_params_are_refused_naming_the_layer_and_dtype(dtype):
    obj = dl.Objective(dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 1.0))
    params = (jnp.ones((3, 2)), jnp.ones((1, 3), dtype=dtype))
    for call in (obj.value, obj.grad, lambda p: obj.sample_value(p, jax.random.key(0))):
        with pytest.raises(DataError, match=r"params\[1\].*" + np.dtype(dtype).name) as info:
            call(params)
        rh.check_message(info.value)


@pytest.mark.parametrize("loss,noise", [("squared", None), ("squared", dl.Dropout(0.3)), ("logistic", None),
                                        ("exponential", None)])
def test_huge_finite_params_give_inf_not_nan(loss, noise):
    rng = np.random.default_rng(0)
    if loss == "squared":
        prob = dl.Regression.from_data(rng.normal(size=(20, 3)), rng.normal(size=(20, 2)))
        out = 2
    else:
        X = rng.normal(size=(20, 3))
        prob = dl.Classification(X, np.where(X[:, 0] > 0, 1.0, -1.0))
        out = 1
    obj = dl.Objective(prob, loss=loss, noise=noise, weight_decay=0.0)
    # finite weights whose product overflows float64 with mixed signs (inf - inf = NaN in a naive sum)
    params = (jnp.asarray(rng.normal(size=(4, 3)) * 1e200), jnp.asarray(rng.normal(size=(out, 4)) * 1e200))
    assert float(obj.value(params)) == np.inf
    assert float(obj.sample_value(params, jax.random.key(0))) == np.inf
    assert float(dl.Objective(prob, loss=loss, weight_decay=1e-3).value(params)) == np.inf


def test_overflowing_weight_decay_alone_is_inf():
    obj = dl.Objective(dl.Regression.from_moments(np.eye(2), np.zeros((1, 2)), 0.0), weight_decay=1.0)
    assert float(obj.value((jnp.full((3, 2), 1e200), jnp.zeros((1, 3))))) == np.inf


# -- generated bad inputs -----------------------------------------------------------------------------------------
NUMBERS = st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.integers(-10, 10),
                    st.sampled_from([0, -1, 1e-300, 1e300]))
JUNK = st.one_of(st.none(), st.text(max_size=3), st.lists(st.integers(0, 3), max_size=2), st.booleans())


@rh.property_settings(150)
@given(d=st.one_of(st.integers(-2, 6), JUNK), depth=st.one_of(st.integers(-1, 4), JUNK),
       scale=st.one_of(NUMBERS, JUNK))
def test_diagonal_net(d, depth, scale):
    net = rh.outcome("DiagonalNet(d, depth)", lambda: dl.DiagonalNet(d, depth=depth))
    if net is None:
        return
    params = rh.outcome("DiagonalNet.init(scale)", lambda: net.init(scale=scale), field="scale")
    if params is not None:
        assert float(scale) > 0 and rh.all_finite(params)
        assert np.all(np.asarray(net.beta(params)) == 0.0)


@rh.property_settings(150)
@given(rows=st.lists(st.integers(-3, 6), max_size=6), cols=st.lists(st.integers(-3, 6), max_size=6))
def test_completion_index_lists(rows, cols):
    T = np.arange(12.0).reshape(3, 4)
    prob = rh.outcome("MatrixCompletion.from_indices", lambda: dl.MatrixCompletion.from_indices(T, rows, cols))
    if prob is not None:
        pairs = list(zip(rows, cols))
        assert len(set(pairs)) == len(pairs) and all(0 <= r < 3 and 0 <= c < 4 for r, c in pairs)
        assert int(np.sum(prob.mask)) == len(pairs)


SHAPES = st.lists(st.integers(0, 3), min_size=0, max_size=4).map(tuple)


@rh.property_settings(150)
@given(shape=st.one_of(SHAPES, st.tuples(*[st.integers(1, 3)] * 3)), m_y=st.one_of(st.none(), st.integers(0, 4)),
       target_shape=st.one_of(st.none(), SHAPES), moments=st.one_of(st.sampled_from(["auto", True, False]), JUNK),
       bad=st.sampled_from([None, None, np.nan, np.inf]))
def test_matrix_sensing(shape, m_y, target_shape, moments, bad):
    A = np.random.default_rng(0).normal(size=shape)
    m_y = (shape[0] if shape else 0) if m_y is None else m_y  # None: a matching length (more valid inputs)
    if bad is not None and A.size:
        A.ravel()[0] = bad
    target = None if target_shape is None else np.ones(target_shape)
    prob = rh.outcome("MatrixSensing", lambda: dl.MatrixSensing(A, np.ones(m_y), target=target, moments=moments))
    if prob is not None:
        assert len(shape) == 3 and min(shape) >= 1 and shape[0] == m_y and bad is None
        assert rh.all_finite(prob.cost(jnp.zeros(shape[1:])))


@rh.property_settings(120)
@given(d_out=st.integers(-1, 4), d_in=st.integers(-1, 4), rank=st.one_of(st.integers(-1, 5), JUNK),
       n=st.one_of(st.integers(-1, 20), JUNK))
def test_random_low_rank_instances(d_out, d_in, rank, n):
    prob = rh.outcome("MatrixCompletion.random", lambda: dl.MatrixCompletion.random(d_out, d_in, rank, n))
    if prob is not None:
        assert 1 <= rank <= min(d_out, d_in) and 1 <= n <= d_out * d_in
        assert np.linalg.matrix_rank(np.asarray(prob.target)) == rank
    prob = rh.outcome("MatrixSensing.random", lambda: dl.MatrixSensing.random(d_out, d_in, rank, n))
    if prob is not None:
        assert 1 <= rank <= min(d_out, d_in) and n >= 1

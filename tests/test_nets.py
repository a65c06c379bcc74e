"""Net specifications and initialisation schemes."""

import jax
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError


def test_shapes_follow_the_convention():
    net = dl.Net((5, 7, 3, 2))
    params = net.init(jax.random.key(0), scheme="fan_in")
    assert [W.shape for W in params] == [(7, 5), (3, 7), (2, 3)]
    assert net.depth == 3 and net.n_params == 35 + 21 + 6
    X = np.random.default_rng(0).normal(size=(4, 5))
    A = np.asarray(params[2] @ params[1] @ params[0])
    np.testing.assert_allclose(net.apply(params, X), X @ A.T, rtol=1e-12)


@pytest.mark.parametrize("scheme,kw,var", [
    ("gaussian", {"scale": 0.3}, lambda m, n, w: 0.09),
    ("width_power", {"gamma": 1.5}, lambda m, n, w: w**-1.5),
    ("fan_in", {}, lambda m, n, w: 1.0 / n),
    ("xavier", {}, lambda m, n, w: 2.0 / (m + n)),
])
def test_random_schemes_have_the_stated_variance(scheme, kw, var):
    net = dl.Net((300, 400, 200))
    params = net.init(jax.random.key(1), scheme=scheme, **kw)
    for W in params:
        m, n = W.shape
        # sample variance of 60k-120k iid entries: relative standard error below 0.6%
        assert float(np.var(np.asarray(W))) == pytest.approx(var(m, n, 400), rel=0.03)


def test_orthogonal_and_identity():
    net = dl.Net((3, 5, 5, 2))
    params = net.init(jax.random.key(2), scheme="orthogonal")
    for W in params:
        W = np.asarray(W)
        G = W @ W.T if W.shape[0] <= W.shape[1] else W.T @ W
        np.testing.assert_allclose(G, np.eye(min(W.shape)), atol=1e-12)
    ident = net.init(jax.random.key(2), scheme="identity")
    np.testing.assert_array_equal(ident[1], np.eye(5))
    assert np.all(np.asarray(net.init(jax.random.key(0), scheme="zero")[0]) == 0)


def test_residual_blocks_add_the_identity_only_on_square_layers():
    net = dl.Net((3, 4, 4, 2), residual=True)
    assert net.residual_layers == (False, True, False)
    params = net.init(jax.random.key(3), scheme="zero")
    np.testing.assert_array_equal(params[1], np.eye(4))
    assert np.all(np.asarray(params[0]) == 0)


@pytest.mark.parametrize("widths,rank", [((4, 6, 5, 3), 3), ((5, 2, 4, 6), 2), ((3, 3), 3)])
def test_balanced_init_is_exactly_balanced_and_hits_the_target(widths, rank):
    rng = np.random.default_rng(4)
    d_in, d_out = widths[0], widths[-1]
    target = rng.normal(size=(d_out, rank)) @ rng.normal(size=(rank, d_in))
    params = dl.Net(widths).init(jax.random.key(5), scheme="balanced", target=target)
    np.testing.assert_allclose(np.asarray(dl.diagnostics.end_to_end(params)), target, atol=1e-10)
    for D in dl.diagnostics.balance_gaps(params):
        np.testing.assert_allclose(np.asarray(D), 0.0, atol=1e-10)


def test_bad_nets_and_inits_name_the_field():
    with pytest.raises(ConfigError, match=r"widths\[1\]"):
        dl.Net((3, 0, 2))
    with pytest.raises(ConfigError, match="widths"):
        dl.Net((3,))
    with pytest.raises(ConfigError, match="scheme"):
        dl.Net((2, 2)).init(0, scheme="he")
    with pytest.raises(ConfigError, match="scale"):
        dl.Net((2, 2)).init(0, scheme="gaussian")
    with pytest.raises(DataError, match="rank"):
        dl.Net((4, 1, 4)).init(0, scheme="balanced", target=np.eye(4))
    with pytest.raises(DataError, match="target"):
        dl.Net((4, 4, 4)).init(0, scheme="balanced", target=np.eye(3))


def test_check_params_names_the_layer_for_shape_dtype_and_values():
    net = dl.Net((3, 4, 2))
    good = net.init(jax.random.key(0), scheme="gaussian", scale=0.1)
    assert all(a is b or np.array_equal(a, b) for a, b in zip(net.check_params(list(good)), good))
    with pytest.raises(DataError, match=r"params\[1\]: expected shape \(2, 4\)"):
        net.check_params((good[0], good[1].T))
    with pytest.raises(DataError, match=r"params: expected 2 weight matrices"):
        net.check_params(good[:1])
    with pytest.raises(DataError, match=r"params\[0\].*int32"):
        net.check_params((np.ones((4, 3), np.int32), good[1]))
    with pytest.raises(DataError, match=r"params\[1\].*NaN.*\(0, 2\)"):
        net.check_params((good[0], np.asarray(good[1]).copy() * np.array([1, 1, np.nan, 1])))


def test_decay_terms_act_on_the_residual_branch_only_on_square_layers():
    net = dl.Net((3, 3, 2), residual=True)
    rng = np.random.default_rng(0)
    W1, W2 = rng.normal(size=(3, 3)), rng.normal(size=(2, 3))
    t1, t2 = net.decay_terms((W1, W2))
    assert float(t1) == pytest.approx(np.sum((W1 - np.eye(3)) ** 2), rel=1e-14)
    assert float(t2) == pytest.approx(np.sum(W2**2), rel=1e-14)
    assert net.n_decay_terms() == 2 and net.is_dln and (net.d_in, net.d_out) == (3, 2)


def test_residual_and_init_options_that_do_not_apply_are_errors():
    with pytest.raises(ConfigError, match="residual"):
        dl.Net((3, 4, 2), residual=True)
    with pytest.raises(ConfigError, match="scale: does not apply to scheme 'zero'"):
        dl.Net((2, 2)).init(0, scheme="zero", scale=5)
    with pytest.raises(ConfigError, match="gamma"):
        dl.Net((2, 2)).init(0, scheme="gaussian", scale=1.0, gamma=2.0)

"""dl.theory.flat against independent computations: autodiff Hessians of dl.Objective, brute-force
minimisation over the minima manifold, grid searches and the paper note's reference numbers.

Library loss E||f(x) - y||^2 (no 1/2): each sharpness is twice the paper's (1/2-loss) value."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.optimize as so

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError
from dlnlab.theory import flat


@functools.partial(jax.jit, static_argnums=(3,))
def _hessian_top(v, Sxx, Syx, shapes, scale):
    def f(v):
        ws, k = [], 0
        for m, n in shapes:
            ws.append(v[k:k + m * n].reshape(m, n))
            k += m * n
        prob = dl.Regression(Sxx=Sxx, Syx=Syx, Syy=jnp.zeros(()))
        return scale * dl.Objective(prob).value(tuple(ws))

    return jnp.linalg.eigvalsh(jax.hessian(f)(v))[-1]


def dense_top(prob, params, scale=1.0):
    """Top eigenvalue of jax.hessian of ``scale * dl.Objective(prob).value`` (not using flat)."""
    params = tuple(jnp.asarray(W) for W in params)
    v = jnp.concatenate([W.ravel() for W in params])
    shapes = tuple(W.shape for W in params)
    return float(_hessian_top(v, prob.Sxx, prob.Syx, shapes, scale))


def moments(T, Sxx):
    T, Sxx = np.asarray(T, float), np.asarray(Sxx, float)
    return dl.Regression.from_moments(Sxx, T @ Sxx, float(np.trace(T @ Sxx @ T.T)) + 1.0)


def gl_minimum(rng, T, widths, strength=0.7):
    """A random global minimum: balanced factors, padded, then random invertible gauges G_i."""
    N = len(widths) - 1
    Ws = [np.asarray(W) for W in dl.Net(widths).init(jax.random.key(int(rng.integers(1 << 30))),
                                                     scheme="balanced", target=T)]
    for i in range(N - 1):
        h = widths[i + 1]
        G = np.eye(h) + strength * rng.normal(size=(h, h))
        Ws[i] = G @ Ws[i]
        Ws[i + 1] = Ws[i + 1] @ np.linalg.inv(G)
    return Ws


def random_spd(rng, d, cond):
    Q = np.linalg.qr(rng.normal(size=(d, d)))[0]
    return Q @ np.diag(np.geomspace(1.0, cond, d)) @ Q.T


# -- sharpness at a minimum --------------------------------------------------------------------
@pytest.mark.parametrize("widths,cond",
                         [((3, 4, 2, 2), 8.0), ((2, 3, 3, 3, 2), 1.0), ((3, 5, 1), 20.0)])
def test_sharpness_matches_autodiff_hessian(rng, widths, cond):
    d0, dN = widths[0], widths[-1]
    r = min(widths)
    T = rng.normal(size=(dN, r)) @ rng.normal(size=(r, d0))  # rank <= narrowest width
    prob = moments(T, random_spd(rng, d0, cond))
    for rep in range(2):
        Ws = gl_minimum(rng, T, widths)
        ref = dense_top(prob, Ws)
        assert flat.sharpness_at_minimum(prob, Ws) == pytest.approx(ref, rel=1e-9)
        assert flat.sharpness_at_minimum(prob, Ws, method="lanczos") == pytest.approx(ref, rel=1e-9)
        if rep:
            continue
        # the core's curvature module: dense Hessian and Lanczos on Hessian-vector products
        obj = dl.Objective(prob)
        assert dl.curvature.sharpness(obj, Ws, method="exact") == pytest.approx(ref, rel=1e-9)
        assert dl.curvature.sharpness(obj, Ws, method="lanczos") == pytest.approx(ref, rel=1e-8)
        # the paper's 1/2 loss: half the library value, checked against the Hessian of loss / 2
        assert flat.sharpness_at_minimum(prob, Ws, half=True) == pytest.approx(
            dense_top(prob, Ws, 0.5), rel=1e-9)


def test_sharpness_from_samples_and_singular_covariance(rng):
    # n < d_in samples: Sxx is singular and the global minima are W Sxx = Syx, not W = T
    X = rng.normal(size=(2, 3))
    Y = X @ rng.normal(size=(3, 2))
    prob = dl.Regression.from_data(X, Y)
    W_ls = np.linalg.lstsq(X, Y, rcond=None)[0].T
    Ws = gl_minimum(rng, W_ls, (3, 3, 2))
    assert flat.sharpness_at_minimum(prob, Ws) == pytest.approx(dense_top(prob, Ws), rel=1e-8)


def test_not_a_minimum_is_rejected(rng):
    T = rng.normal(size=(2, 2))
    prob = moments(T, np.eye(2))
    Ws = gl_minimum(rng, T, (2, 2, 2))
    Ws[0] = Ws[0] * 1.1
    with pytest.raises(DataError, match="not a global minimum"):
        flat.sharpness_at_minimum(prob, Ws)


def test_invariance_orthogonal_and_padding(rng):
    T = np.diag([2.0, 1.0]) + 0.3
    prob = moments(T, np.diag([1.0, 4.0]))
    net_a, net_b = dl.Net((2, 2, 2, 2)), dl.Net((2, 5, 7, 2))
    a = net_a.init(jax.random.key(0), scheme="balanced", target=T)
    b = net_b.init(jax.random.key(1), scheme="balanced", target=T)
    lam = flat.sharpness_at_minimum(prob, a)
    assert flat.sharpness_at_minimum(prob, b) == pytest.approx(lam, rel=1e-10)
    assert flat.balanced_sharpness(prob, 3) == pytest.approx(lam, rel=1e-10)
    assert dense_top(prob, b) == pytest.approx(lam, rel=1e-9)


# -- flattest sharpness ------------------------------------------------------------------------
def test_scalar_chain_against_brute_force():
    # paper note check 3 (1/2 loss): N=3, t=2, sigma_xx=1 -> 3 * 2^(4/3) = 7.559526 at w_i = 2^(1/3)
    prob = dl.Regression.from_moments([[1.0]], [[2.0]], 4.0)
    assert flat.flattest_sharpness(prob, 3, half=True) == pytest.approx(7.559526, abs=1e-6)
    assert flat.flattest_sharpness(prob, 3) == pytest.approx(2 * 7.559526, abs=2e-6)

    def sharp(z):  # free w1, w2 on the hyperbola w1 w2 w3 = 2, sharpness from the autodiff Hessian
        w1, w2 = np.exp(z)
        return dense_top(prob, [np.array([[w1]]), np.array([[w2]]), np.array([[2 / (w1 * w2)]])])

    best = so.minimize(sharp, [0.5, -0.3], method="Nelder-Mead", options={"xatol": 1e-8})
    assert best.fun == pytest.approx(flat.flattest_sharpness(prob, 3), rel=1e-7)
    assert np.exp(best.x) == pytest.approx([2 ** (1 / 3)] * 2, rel=1e-4)


def test_whitened_closed_form_and_no_flatter_minimum(rng):
    prob = moments(np.diag([2.0, 1.0]), np.eye(2))
    assert flat.flattest_sharpness(prob, 2, half=True) == pytest.approx(4.0, abs=1e-12)
    assert flat.flattest_sharpness(prob, 4, half=True) == pytest.approx(11.313708, abs=1e-6)
    # Sxx = c I scales the value by c
    T = rng.normal(size=(3, 4))
    p3 = moments(T, 2.5 * np.eye(4))
    s1 = np.linalg.svd(T, compute_uv=False)[0]
    lam = flat.flattest_sharpness(p3, 3)
    assert lam == pytest.approx(2 * 3 * 2.5 * s1 ** (4 / 3), rel=1e-12)
    sharp = [flat.sharpness_at_minimum(p3, gl_minimum(rng, T, (4, 3, 5, 3))) for _ in range(25)]
    assert min(sharp) >= lam * (1 - 1e-10)
    # the flattest weights reach it, and the autodiff Hessian agrees
    Ws = flat.flattest_minimum(p3, (4, 3, 5, 3))
    assert dense_top(p3, Ws) == pytest.approx(lam, rel=1e-9)


def test_general_covariance_by_grid_search(rng):
    # d_in = 2: max over the unit circle on a fine grid, independent of the multistart BFGS
    T = np.array([[1.0, 1.0], [0.0, 1.0], [0.5, -2.0]])
    Sxx = np.array([[1.0, 0.4], [0.4, 3.0]])
    prob = moments(T, Sxx)
    theta = np.linspace(0, np.pi, 200001)
    U = np.stack([np.cos(theta), np.sin(theta)])
    quad = np.einsum("ik,ij,jk->k", U, np.linalg.inv(Sxx), U)
    for N in (1, 2, 3, 5):
        grid = 2 * N * np.max(np.linalg.norm(T @ U, axis=0) ** (2 - 2 / N) / quad)
        assert flat.flattest_sharpness(prob, N) == pytest.approx(grid, rel=1e-8)


@pytest.mark.parametrize("T,Sxx,N", [
    (np.diag([2.0, 1.0]), np.diag([1.0, 4.0]), 2),
    (np.diag([2.0, 1.0]), np.diag([1.0, 4.0]), 3),
    (np.array([[1.0, 1.0], [0.0, 1.0]]), np.diag([1.0, 3.0]), 3),
])
def test_general_covariance_attained_and_balanced_is_sharper(rng, T, Sxx, N):
    """Paper note check 6: the gauge-optimised minimum reaches lambda*, the W-balanced one does not,
    and no random minimum is flatter."""
    prob = moments(T, Sxx)
    lam = flat.flattest_sharpness(prob, N)
    widths = (2,) + (3,) * (N - 1) + (2,)
    Ws = flat.flattest_minimum(prob, widths)
    assert dense_top(prob, Ws) == pytest.approx(lam, rel=1e-6)
    assert flat.balanced_sharpness(prob, N) > 1.01 * lam
    others = [flat.sharpness_at_minimum(prob, gl_minimum(rng, T, widths)) for _ in range(20)]
    assert min(others) >= lam
    # structure of the flattest minimum: equal gains along u*, coupling from layer 2 on
    u = flat.flattest_direction(prob, N)
    gbar = np.linalg.norm(T @ u) ** (1 / N)
    assert flat.layer_gains(Ws, u) == pytest.approx([gbar] * N, rel=1e-4)
    assert flat.path_coupling(Ws, u)[1:] == pytest.approx(1.0, abs=1e-5)


def test_per_axis_formula_undershoots():
    # paper note check 7: diagonal T and Sxx, yet cross-channel terms push lambda* above the
    # per-axis value
    t, s2, N = np.array([3.167, 1.151]), np.array([1.471, 3.935]), 2
    prob = moments(np.diag(t), np.diag(s2))
    lam = flat.flattest_sharpness(prob, N)
    per_axis = 2 * N * np.max(s2 * t ** (2 - 2 / N))
    assert lam > 1.05 * per_axis
    assert dense_top(prob, flat.flattest_minimum(prob, (2, 2, 2))) == pytest.approx(lam, rel=1e-6)


# -- gains, nearly balanced bound, coupling ----------------------------------------------------
def test_gain_interval_note_values_and_definition():
    for N, rho, lo, hi in [(2, 1.1, 0.801, 1.248), (4, 1.1, 0.702, 1.521), (4, 1.5, 0.492, 2.734),
                           (8, 1.1, 0.604, 2.018)]:
        a, b = flat.gain_interval(N, rho)
        assert (a, b) == pytest.approx((lo, hi), abs=1e-3)
        for g in (a, b):  # one layer at the bound, the others equal: mean(x) = rho exactly
            x = g ** -2
            assert (x + (N - 1) * x ** (-1 / (N - 1))) / N == pytest.approx(rho, rel=1e-10)
    assert flat.gain_interval(3, 1.0) == (1.0, 1.0)


def test_path_bound_and_gain_interval_at_random_minima(rng):
    T = rng.normal(size=(3, 3))
    prob = moments(T, random_spd(rng, 3, 6.0))
    N = 4
    lam_star = flat.flattest_sharpness(prob, N)
    u = flat.flattest_direction(prob, N)
    gbar = np.linalg.norm(T @ u) ** (1 / N)
    Sinv = np.linalg.inv(np.asarray(prob.Sxx))
    for _ in range(15):
        Ws = gl_minimum(rng, T, (3, 3, 3, 3, 3), strength=0.4)
        lam = flat.sharpness_at_minimum(prob, Ws)
        g = flat.layer_gains(Ws, u)
        assert np.prod(g) == pytest.approx(np.linalg.norm(T @ u), rel=1e-10)
        # the path lower bound (library loss: factor 2)
        v = rng.normal(size=3)
        gv = flat.layer_gains(Ws, v)
        bound = 2 * np.linalg.norm(T @ v) ** 2 / (v @ Sinv @ v) * np.sum(gv**-2)
        assert lam >= bound * (1 - 1e-10)
        assert np.mean((gbar / g) ** 2) <= lam / lam_star * (1 + 1e-10)
        lo, hi = flat.gain_interval(N, lam / lam_star)
        assert np.all(g / gbar >= lo * (1 - 1e-9)) and np.all(g / gbar <= hi * (1 + 1e-9))


def test_coupling_of_constructed_and_random_weights(rng):
    # W_i = Q_i D_i Q_{i-1}^T, distinct singular values: left vectors of W_i = right ones of W_{i+1}
    Q = [np.linalg.qr(rng.normal(size=(4, 4)))[0] for _ in range(4)]
    D = [np.diag([4.0, 3.0, 2.0, 1.0]), np.diag([1.0, 5.0, 2.0, 0.5]),
         np.diag([3.0, 2.0, 1.5, 1.0])]
    Ws = [Q[i + 1] @ D[i] @ Q[i].T for i in range(3)]
    C = flat.coupling(Ws)
    assert flat.coupling_scores(Ws) == pytest.approx([1.0, 1.0], abs=1e-10)
    # the top left vector of W_1 (Q_1 e_1) is the 3rd right vector of W_2 (D_2 sorted: 5, 2, 1, 0.5)
    assert C[0][0, 2] == pytest.approx(1.0, abs=1e-10)
    assert C[0][0, 0] == pytest.approx(0.0, abs=1e-10)
    for M in C:  # orthonormal bases: every row of |U^T V|^2 sums to 1
        assert np.sum(M**2, axis=1) == pytest.approx(1.0, abs=1e-10)
    rand = [rng.normal(size=(30, 30)) for _ in range(3)]
    assert np.all(flat.coupling_scores(rand) < 0.9)
    assert flat.coupling(rand, top=3)[0].shape == (3, 3)
    assert flat.path_coupling(Ws, Q[0][:, 0]) == pytest.approx([1.0, 1.0], abs=1e-10)
    # top-2 subspaces share one vector in each pair (Q_1 e_2, resp. Q_2 e_2)
    assert flat.subspace_coupling(Ws, 2) == pytest.approx([0.5, 0.5], abs=1e-10)
    assert flat.subspace_coupling(Ws, 4) == pytest.approx([1.0, 1.0], abs=1e-10)
    # independent random 30 x 30 matrices: Monte Carlo mean of the overlap is k / 30 = 0.2
    vals = [flat.subspace_coupling([rng.normal(size=(30, 30)) for _ in range(2)], 6)[0]
            for _ in range(40)]
    assert np.mean(vals) == pytest.approx(0.2, abs=0.03)


# -- bad input ---------------------------------------------------------------------------------
def test_bad_input_errors(rng):
    prob = moments(np.eye(2), np.eye(2))
    with pytest.raises(ConfigError, match="prob"):
        flat.flattest_sharpness(np.eye(2), 2)
    with pytest.raises(ConfigError, match="depth"):
        flat.flattest_sharpness(prob, 0)
    with pytest.raises(ConfigError, match="method"):
        flat.sharpness_at_minimum(prob, [np.eye(2)], method="power")
    with pytest.raises(DataError, match="end-to-end shape"):
        flat.sharpness_at_minimum(prob, [np.eye(3, 2), np.eye(3)])
    with pytest.raises(DataError, match="params\\[1\\]"):
        flat.sharpness_at_minimum(prob, [np.eye(2), np.eye(3)])
    singular = dl.Regression.from_moments(np.diag([1.0, 0.0]), np.zeros((1, 2)), 0.0)
    with pytest.raises(DataError, match="Sxx"):
        flat.flattest_sharpness(singular, 2)
    with pytest.raises(DataError, match="widths"):
        flat.flattest_minimum(prob, (2, 1, 2))
    with pytest.raises(DataError, match="widths"):
        flat.flattest_minimum(prob, (3, 2, 2))
    with pytest.raises(DataError, match="direction"):
        flat.layer_gains([np.eye(2), np.zeros((2, 2)), np.eye(2)], [1.0, 0.0])
    with pytest.raises(DataError, match="direction"):
        flat.layer_gains([np.eye(2)], [1.0, 0.0, 0.0])
    with pytest.raises(ConfigError, match="top"):
        flat.coupling([np.eye(2), np.eye(2)], top=0)
    with pytest.raises(ConfigError, match="k: expected at most 2"):
        flat.subspace_coupling([np.eye(2), np.eye(3, 2)], 3)
    with pytest.raises(ConfigError, match="rho"):
        flat.gain_interval(3, 0.5)
    with pytest.raises(DataError, match="params"):
        flat.layer_gains([np.array([[np.nan]])], [1.0])

"""dl.theory.exact (ziyin2022) against independent computations: hand-derived closed forms,
polynomial roots, multi-restart L-BFGS on the full parameters of dl.Objective, dense Hessians,
finite differences, Monte Carlo."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree
from scipy.optimize import minimize
from threadpoolctl import threadpool_limits

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError
from dlnlab.theory import exact as ex

SCALAR = dl.Regression.from_moments(np.eye(1), np.ones((1, 1)), 1.0)
ANISO = dl.Regression.from_moments(np.diag([1.0, 0.5]), np.array([[1.0, 0.3]]), 2.0)
MULTIROOT = dl.Regression.from_moments(np.diag([1.0, 1e-3]), np.array([[1.0, 0.1]]), 12.0)


def brute_force(prob, widths, wd, noise=None, restarts=12, seed=0, scales=(0.3, 1.0, 2.0)):
    """Best objective over random-restart L-BFGS runs on the full parameters (no knowledge of the
    theory)."""
    obj = dl.Objective(prob, weight_decay=wd, noise=noise)
    net = dl.Net(widths)
    x0, unravel = ravel_pytree(net.init(jax.random.key(0), scheme="zero"))
    vg = jax.jit(jax.value_and_grad(lambda x: obj.value(unravel(x))))
    fun = lambda x: tuple(np.asarray(a, dtype=float) for a in vg(jnp.asarray(x)))
    rng = np.random.default_rng(seed)
    best = math.inf
    with threadpool_limits(
        1, user_api="blas"
    ):  # multithreaded BLAS on tiny L-BFGS updates is 20x slower
        for i in range(restarts):
            x = rng.normal(size=x0.size) * scales[i % len(scales)]
            res = minimize(
                fun,
                x,
                jac=True,
                method="L-BFGS-B",
                options={"maxiter": 5000, "gtol": 1e-13, "ftol": 1e-16, "maxcor": 30},
            )
            best = min(best, float(res.fun))
    return best


def objective_at(sol, prob, wd, noise=None, point=None, **kw):
    return float(dl.Objective(prob, weight_decay=wd, noise=noise).value(sol.params(point, **kw)))


# -- closed forms derived by hand (ziyin2022.md checks 1, 2, 6, 18) ------------------------------
@pytest.mark.parametrize("gamma", [0.1, 0.5, 0.9])
def test_one_hidden_layer_scalar_closed_form(gamma):
    sol = ex.solve(SCALAR, (1, 1, 1), gamma)
    assert sol.loss == pytest.approx(1.0 - (1.0 - gamma) ** 2, rel=1e-13)
    assert sol.t == pytest.approx(1.0 - gamma, rel=1e-13)
    assert sol.end_to_end[0, 0] == pytest.approx(1.0 - gamma, rel=1e-13)
    assert sol.order_parameter == pytest.approx(2 * (1.0 - gamma), rel=1e-13)


def test_one_hidden_layer_dropout_and_threshold():
    sol = ex.solve(SCALAR, (1, 2, 1), 0.5, dl.Dropout(0.5))  # sigma^2 = 1, k = 1.5
    assert (sol.k, sol.t, sol.loss) == pytest.approx((1.5, 1 / 3, 1 - 1 / 6), rel=1e-13)
    # threshold gamma_c = ||E[xy]|| whatever the width, noise and the split gamma_u gamma_w = m^2
    assert ex.solve(SCALAR, (1, 7, 1), 0.999, dl.Dropout(0.6)).t > 0
    assert ex.solve(SCALAR, (1, 7, 1), 1.001, dl.Dropout(0.6)).trivial
    assert (
        ex.solve(SCALAR, (1, 3, 1), (0.25, 3.9)).t > 0
        and ex.solve(SCALAR, (1, 3, 1), (0.25, 4.1)).trivial
    )


def test_two_hidden_layers_roots_match_quartic():
    sol = ex.solve(SCALAR, (1, 3, 5, 1), 0.1)
    b = np.sort(
        [r.real for r in np.roots([1, 0, 0, -1, 0.1]) if abs(r.imag) < 1e-12 and r.real > 0]
    )
    pts = sol.stationary_points
    assert [p.t for p in pts] == pytest.approx([0.0, *(b**2)], rel=1e-12)
    assert [p.kind for p in pts] == ["minimum", "saddle", "minimum"]
    assert sol.loss == pytest.approx(1 - b[1] ** 3 + 2 * 0.1 * b[1] ** 2, rel=1e-13)
    assert pts[1].loss - 1.0 == pytest.approx(0.001001, abs=1e-6)  # the barrier around zero


def test_ridge_is_depth_zero():
    A, m = np.array([[2.0, 0.4], [0.4, 0.3]]), np.array([0.7, -0.2])
    prob = dl.Regression.from_moments(A, m[None], 1.5)
    sol = ex.solve(prob, (2, 1), 0.2, dl.Dropout(0.3))  # no hidden layer: noise is irrelevant
    v = np.linalg.solve(A + 0.2 * np.eye(2), m)
    assert sol.end_to_end[0] == pytest.approx(v, rel=1e-12)
    assert sol.loss == pytest.approx(float(v @ A @ v - 2 * v @ m + 1.5 + 0.2 * v @ v), rel=1e-13)
    assert [p.kind for p in sol.stationary_points] == ["minimum"]


def test_isotropic_critical_table():
    # ziyin2022.md check 7 (exact values: 16^(-1/3) and (4/729)^(1/4)) and D gamma* -> e^2 / a
    c2 = ex.critical_weight_decay(SCALAR, (1, 4, 4, 1))
    c3 = ex.critical_weight_decay(SCALAR, (1, 2, 6, 3, 1))
    assert c2.critical == pytest.approx(16 ** (-1 / 3), rel=1e-13)
    assert c3.critical == pytest.approx((4 / 729) ** 0.25, rel=1e-13)
    assert (c2.spinodal, c3.spinodal) == pytest.approx((0.472470, 0.384900), abs=1e-6)
    c10 = ex.critical_weight_decay(SCALAR, (1,) + (3,) * 10 + (1,))
    assert 10 * c10.critical == pytest.approx(0.917407, abs=1e-6)


# -- roots: an independent polynomial solve ------------------------------------------------------
@pytest.mark.parametrize("D,gamma", [(2, 0.2), (3, 0.05), (2, 0.02)])
def test_roots_match_polynomial(D, gamma):
    a, m = np.array([1.0, 1e-3, 0.05]), np.array([1.0, 0.1, -0.3])
    prob = dl.Regression.from_moments(np.diag(a), m[None], 40.0)
    sol = ex.solve(prob, (3,) + (4,) * D + (1,), gamma)
    P = np.polynomial.Polynomial
    fac = [P([gamma] + [0] * (D - 1) + [aj]) for aj in a]  # a_j t^D + gamma
    lhs = P([0] * (D - 1) + [1]) * sum(
        m[j] ** 2 * math.prod(fac[l] ** 2 for l in range(3) if l != j) for j in range(3)
    )
    poly = lhs - math.prod(f**2 for f in fac)
    r = poly.roots()
    r = np.sort(r[(abs(r.imag) < 1e-9 * abs(r)) & (r.real > 0)].real)
    ts = [p.t for p in sol.stationary_points if p.t > 0]
    assert len(ts) == len(r) >= 2
    assert ts == pytest.approx(r, rel=1e-8)


# -- closed form vs brute force (the global minimum is reached and never beaten) -----------------
CASES = [
    (ANISO, (2, 4, 4, 1), 0.05, dl.Dropout(0.2)),
    (ANISO, (2, 4, 2, 3, 1), (0.02, 0.05, 0.1, 0.2), dl.MultiplicativeNoise(0.7)),
    (ANISO, (2, 2, 5, 1), (0.05, 0.3, 0.1), dl.MultiplicativeNoise(0.7)),
    (ANISO, (2, 3, 4, 1), 0.3, dl.Dropout(0.2)),  # trivial global minimum
    (MULTIROOT, (2, 3, 2, 1), 0.2, None),  # the global minimum is not the largest root
]


@pytest.mark.parametrize("prob,widths,wd,noise", CASES)
def test_closed_form_vs_brute_force(prob, widths, wd, noise):
    sol = ex.solve(prob, widths, wd, noise)
    assert objective_at(sol, prob, wd, noise) == pytest.approx(sol.loss, rel=1e-12)
    best = brute_force(prob, widths, wd, noise)
    assert best >= sol.loss * (1 - 1e-12)
    assert best == pytest.approx(sol.loss, rel=1e-8)


def test_multiroot_selection_and_local_optimum():
    sol = ex.solve(MULTIROOT, (2, 4, 4, 1), 0.2)
    pts = sol.stationary_points
    assert [p.kind for p in pts] == ["minimum", "saddle", "minimum", "saddle", "minimum"]
    assert sol.t == pts[2].t < pts[4].t and pts[4].loss > sol.loss  # largest root is not the best
    # a local optimisation from the largest root's weights stays there: a non-global minimum
    obj = dl.Objective(MULTIROOT, weight_decay=0.2)
    x0, unravel = ravel_pytree(sol.params(pts[4]))
    vg = jax.jit(jax.value_and_grad(lambda x: obj.value(unravel(x))))
    rng = np.random.default_rng(1)
    with threadpool_limits(1, user_api="blas"):
        res = minimize(
            lambda x: tuple(np.asarray(a) for a in vg(jnp.asarray(x))),
            np.asarray(x0) + 1e-3 * rng.normal(size=x0.size),
            jac=True,
            method="L-BFGS-B",
            options={"gtol": 1e-12, "ftol": 1e-16, "maxiter": 5000},
        )
    assert res.fun == pytest.approx(pts[4].loss, rel=1e-9)


_META = ex.critical_weight_decay(ANISO, (2, 3, 4, 1), dl.Dropout(0.2))


@pytest.mark.parametrize(
    "prob,widths,wd,noise",
    [
        (MULTIROOT, (2, 3, 2, 1), 0.2, None),
        (ANISO, (2, 3, 4, 1), (0.02, 0.04, 0.03), dl.Dropout(0.2)),
        # between gamma* and the spinodal: trivial global minimum, metastable nonzero minimum
        (ANISO, (2, 3, 4, 1), 0.5 * (_META.critical + _META.spinodal), dl.Dropout(0.2)),
    ],
)
def test_every_stationary_point_realised_and_classified(prob, widths, wd, noise):
    """Each reduced point is a critical point of the full objective whose Hessian spectrum matches
    its kind."""
    sol = ex.solve(prob, widths, wd, noise)
    obj = dl.Objective(prob, weight_decay=wd, noise=noise)
    _, unravel = ravel_pytree(sol.params())
    f = lambda x: obj.value(unravel(x))
    grad, hess = jax.jit(jax.grad(f)), jax.jit(jax.hessian(f))  # compiled once per instance
    assert len(sol.stationary_points) >= 3
    for p in sol.stationary_points:
        x = ravel_pytree(sol.params(p))[0]
        assert float(jnp.linalg.norm(grad(x))) < 1e-9
        assert float(f(x)) == pytest.approx(p.loss, rel=1e-12)
        ev = np.linalg.eigvalsh(np.asarray(hess(x)))
        if p.kind == "minimum":
            assert ev[0] > -1e-9
        else:
            assert ev[0] < -1e-4


def test_params_structure_and_symmetries():
    sol = ex.solve(ANISO, (2, 3, 5, 4, 1), (0.01, 0.02, 0.03, 0.04), dl.Dropout(0.25))
    obj = dl.Objective(ANISO, weight_decay=(0.01, 0.02, 0.03, 0.04), noise=dl.Dropout(0.25))
    for key in (None, jax.random.key(3)):
        Ws = sol.params(key=key)
        assert [W.shape for W in Ws] == [(3, 2), (5, 3), (4, 5), (1, 4)]
        assert float(obj.value(Ws)) == pytest.approx(sol.loss, rel=1e-12)
        assert np.asarray(dl.nets.end_to_end(Ws)) == pytest.approx(sol.end_to_end, rel=1e-12)
        norms = np.array([float(jnp.sum(W * W)) for W in Ws])
        assert norms == pytest.approx(sol.layer_norms_sq, rel=1e-12)
        assert np.asarray((0.01, 0.02, 0.03, 0.04)) * norms == pytest.approx(
            sol.gamma_eff * sol.t, rel=1e-12
        )
        for W in Ws:  # rank one, equal-magnitude hidden units
            s = np.linalg.svd(np.asarray(W), compute_uv=False)
            assert s[1:].max(initial=0) < 1e-12 * s[0]
            assert np.ptp(np.linalg.norm(np.asarray(W), axis=1)) < 1e-12


def test_order_parameter_is_derivative_of_loss():
    """Envelope theorem with equal decay: dL*/dgamma = sum_l ||W_l||^2 (central finite
    differences)."""
    for widths, g in [((2, 3, 1), 0.2), ((2, 4, 3, 1), 0.05), ((2, 2, 2, 2, 1), 0.04)]:
        sol = ex.solve(ANISO, widths, g, dl.Dropout(0.1))
        h = 1e-6
        fd = (
            ex.solve(ANISO, widths, g + h, dl.Dropout(0.1)).loss
            - ex.solve(ANISO, widths, g - h, dl.Dropout(0.1)).loss
        ) / (2 * h)
        assert sol.order_parameter > 0
        assert fd == pytest.approx(sol.order_parameter, rel=1e-6)


def test_effective_loss_is_a_lower_bound():
    sol = ex.solve(ANISO, (2, 3, 3, 1), 0.05, dl.Dropout(0.3))
    obj = dl.Objective(ANISO, weight_decay=0.05, noise=dl.Dropout(0.3))
    net = dl.Net((2, 3, 3, 1))
    for s in range(5):
        Ws = net.init(jax.random.key(s), scheme="gaussian", scale=0.8)
        assert float(obj.value(Ws)) >= sol.effective_loss(dl.nets.end_to_end(Ws)) - 1e-12
    assert sol.effective_loss(sol.end_to_end) == pytest.approx(sol.loss, rel=1e-13)


# -- critical weight decay -----------------------------------------------------------------------
def test_critical_and_spinodal_general_by_solve():
    """gamma* and the spinodal are where solve()'s selection flips and where nonzero minima
    vanish."""
    prof = (1.0, 2.0, 0.5, 1.5)
    crit = ex.critical_weight_decay(ANISO, (2, 3, 2, 4, 1), dl.Dropout(0.3), profile=prof)
    assert crit.method == "numerical" and crit.spinodal > crit.critical > 0
    wd = lambda g: tuple(g * p for p in prof)
    below = ex.solve(ANISO, (2, 3, 2, 4, 1), wd(crit.critical * (1 - 1e-7)), dl.Dropout(0.3))
    above = ex.solve(ANISO, (2, 3, 2, 4, 1), wd(crit.critical * (1 + 1e-7)), dl.Dropout(0.3))
    assert below.t > 0 and above.trivial
    meta = ex.solve(ANISO, (2, 3, 2, 4, 1), wd(crit.spinodal * (1 - 1e-6)), dl.Dropout(0.3))
    gone = ex.solve(ANISO, (2, 3, 2, 4, 1), wd(crit.spinodal * (1 + 1e-6)), dl.Dropout(0.3))
    assert any(p.kind == "minimum" and p.t > 0 for p in meta.stationary_points)
    assert all(p.t == 0 for p in gone.stationary_points)


@pytest.mark.parametrize(
    "widths,noise",
    [
        ((1, 4, 4, 1), None),
        ((1, 2, 2, 1), dl.Dropout(0.5)),
        ((1, 100, 100, 100, 1), dl.Dropout(0.5)),
        ((1, 3, 1), None),
    ],
)
def test_critical_closed_form_vs_bisection(widths, noise):
    cf = ex.critical_weight_decay(SCALAR, widths, noise)
    nu = ex.critical_weight_decay(SCALAR, widths, noise, method="numerical")
    assert cf.method == "closed_form" and nu.method == "numerical"
    assert nu.critical == pytest.approx(cf.critical, rel=1e-12)
    assert nu.spinodal == pytest.approx(cf.spinodal, rel=1e-9)


def test_critical_decreases_with_noise_and_grows_with_width():
    g = [
        ex.critical_weight_decay(SCALAR, (1, d, d, 1), dl.Dropout(0.5)).critical
        for d in (2, 8, 1000)
    ]
    assert g[0] < g[1] < g[2] < 16 ** (-1 / 3)
    assert ex.critical_weight_decay(SCALAR, (1, 2, 1), dl.Dropout(0.5)).critical == 1.0
    assert ex.critical_weight_decay(SCALAR, (1, 1)).critical == math.inf


# -- Hessian at zero -----------------------------------------------------------------------------
def test_hessian_at_zero_one_hidden_layer():
    m = np.array([0.6, -0.8])  # ||m|| = 1
    prob = dl.Regression.from_moments(np.diag([2.0, 0.3]), m[None], 3.0)
    gw, gu = 0.3, 0.5
    h = ex.hessian_at_zero(prob, (2, 3, 1), (gw, gu), dl.Dropout(0.4))
    r = math.sqrt((gu - gw) ** 2 + 4.0)
    want = np.sort([gu + gw - r] * 3 + [gu + gw + r] * 3 + [2 * gw] * 3)
    assert h.eigenvalues == pytest.approx(want, abs=1e-12)
    assert h.kind == "strict_saddle" and not ex.solve(prob, (2, 3, 1), (gw, gu)).trivial
    big = ex.hessian_at_zero(prob, (2, 3, 1), (1.2, 1.0))
    assert big.kind == "strict_minimum" and ex.solve(prob, (2, 3, 1), (1.2, 1.0)).trivial


@pytest.mark.parametrize("widths,wd", [((2, 3, 2, 1), (0.01, 0.02, 0.03)), ((2, 2, 3, 2, 1), 1e-3)])
def test_hessian_at_zero_deep_is_positive_definite(widths, wd):
    h = ex.hessian_at_zero(ANISO, widths, wd, dl.Dropout(0.2))
    g = np.broadcast_to(np.asarray(wd, dtype=float), (len(widths) - 1,))
    want = np.sort(np.concatenate([[2 * g[i]] * widths[i] * widths[i + 1] for i in range(len(g))]))
    assert h.kind == "strict_minimum" and h.eigenvalues == pytest.approx(want, rel=1e-12)
    assert not ex.solve(ANISO, widths, wd, dl.Dropout(0.2)).trivial  # zero is a *bad* minimum here


# -- prediction variance -------------------------------------------------------------------------
def test_prediction_variance_monte_carlo():
    noise = dl.Dropout(0.2)
    sol = ex.solve(ANISO, (2, 4, 3, 1), 0.05, noise)
    Ws = sol.params()
    x = np.array([0.7, -1.2])
    keys = jax.random.split(jax.random.key(7), 2)
    n = 100_000

    def forward(k1, k2):
        h = Ws[0] @ x * noise.sample(k1, (4,))
        h = Ws[1] @ h * noise.sample(k2, (3,))
        return (Ws[2] @ h)[0]

    f = jax.vmap(forward)(jax.random.split(keys[0], n), jax.random.split(keys[1], n))
    var = sol.prediction_variance(x)
    assert var == pytest.approx((sol.k - 1) * float(sol.end_to_end[0] @ x) ** 2, rel=1e-14)
    se = float(jnp.std(f)) / math.sqrt(n)
    assert abs(float(jnp.mean(f)) - float(sol.end_to_end[0] @ x)) < 5 * se
    assert float(jnp.var(f)) == pytest.approx(var, rel=0.02)
    # data average equals the exact expected loss minus the deterministic loss of the mean map
    det = dl.Objective(ANISO).value(Ws)
    stoch = dl.Objective(ANISO, noise=noise).value(Ws)
    assert sol.prediction_variance() == pytest.approx(float(stoch - det), rel=1e-10)


def test_prediction_variance_vanishes_with_width():
    v = [
        ex.solve(ANISO, (2, d, d, 1), 0.01, dl.MultiplicativeNoise(1.0)).prediction_variance()
        for d in (64, 256, 1024, 4096)
    ]
    assert v[3] < 0.3 * v[1] and v[1] > 0
    assert 4 * v[3] == pytest.approx(v[2], rel=0.01)  # ~ 1/width
    assert ex.solve(ANISO, (2, 4, 4, 1), 0.01).prediction_variance(
        np.ones((3, 2))
    ) == pytest.approx(0.0)


# -- vector outputs (beyond the paper) -----------------------------------------------------------
def test_vector_outputs_vs_brute_force():
    rng = np.random.default_rng(4)
    Syx = rng.normal(size=(3, 4)) * 0.8
    prob = dl.Regression.from_moments(1.5 * np.eye(4), Syx, 9.0)
    for widths, wd in [((4, 3, 2, 3), (0.1, 0.2, 0.15)), ((4, 5, 3), 0.6)]:
        sol = ex.solve(prob, widths, wd)
        assert objective_at(sol, prob, wd) == pytest.approx(sol.loss, rel=1e-12)
        assert objective_at(sol, prob, wd, key=jax.random.key(1)) == pytest.approx(
            sol.loss, rel=1e-12
        )
        best = brute_force(prob, widths, wd, restarts=8)
        assert best >= sol.loss * (1 - 1e-12) and best == pytest.approx(sol.loss, rel=1e-8)
    # rank cap: width 2 keeps the two strongest modes
    sol = ex.solve(prob, (4, 3, 2, 3), (0.1, 0.2, 0.15))
    assert np.linalg.matrix_rank(sol.end_to_end, tol=1e-9) == 2
    assert any(p.kind == "saddle" for p in sol.stationary_points)


def test_whitened_scalar_output_two_methods_agree():
    m = np.array([[0.5, -1.0, 0.25]])
    iso = dl.Regression.from_moments(2.0 * np.eye(3), m, 3.0)
    sol = ex.solve(iso, (3, 4, 2, 1), 0.05)
    stacked = dl.Regression.from_moments(2.0 * np.eye(3), np.vstack([m, 0.0 * m]), 3.0)
    vec = ex.solve(stacked, (3, 4, 2, 2), 0.05)
    assert vec.loss == pytest.approx(sol.loss, rel=1e-13)
    assert vec.end_to_end[0] == pytest.approx(sol.end_to_end[0], rel=1e-12)


def test_zero_weight_decay_dropout_only():
    sol = ex.solve(ANISO, (2, 3, 3, 1), 0.0, dl.Dropout(0.3))
    v = np.linalg.solve(sol.k * np.diag([1.0, 0.5]), [1.0, 0.3])
    assert sol.end_to_end[0] == pytest.approx(v, rel=1e-12)
    assert objective_at(sol, ANISO, 0.0, dl.Dropout(0.3)) == pytest.approx(sol.loss, rel=1e-12)
    assert sol.stationary_points[0].kind == "saddle"


# -- bad input and immutability ------------------------------------------------------------------
def test_bad_inputs():
    with pytest.raises(ConfigError, match="weight_decay"):
        ex.solve(ANISO, (2, 3, 1), (0.1, 0.2, 0.3))
    with pytest.raises(ConfigError, match="weight_decay"):
        ex.solve(ANISO, (2, 3, 1), (0.0, 0.2))
    with pytest.raises(ConfigError, match="weight_decay"):
        ex.solve(ANISO, (2, 3, 1), -0.1)
    with pytest.raises(DataError, match="widths"):
        ex.solve(ANISO, (3, 3, 1), 0.1)
    with pytest.raises(ConfigError, match="widths"):
        ex.solve(ANISO, (2, 0, 1), 0.1)
    with pytest.raises(ConfigError, match="noise"):
        ex.solve(ANISO, (2, 3, 1), 0.1, noise=0.5)
    with pytest.raises(ConfigError, match="prob"):
        ex.solve(np.eye(2), (2, 3, 1), 0.1)
    vec = dl.Regression.from_moments(np.diag([1.0, 2.0]), np.eye(2), 3.0)
    with pytest.raises(DataError, match="isotropic"):
        ex.solve(vec, (2, 3, 2), 0.1)
    with pytest.raises(ConfigError, match="noise"):
        ex.solve(
            dl.Regression.from_moments(np.eye(2), np.eye(2), 3.0), (2, 3, 2), 0.1, dl.Dropout(0.1)
        )
    outside = dl.Regression.from_moments(np.diag([1.0, 0.0]), np.array([[1.0, 0.5]]), 3.0)
    with pytest.raises(DataError, match="range of Sxx"):
        ex.solve(outside, (2, 3, 3, 1), 0.1)
    with pytest.raises(ConfigError, match="method"):
        ex.critical_weight_decay(ANISO, (2, 3, 1), method="closed")
    with pytest.raises(ConfigError, match="profile"):
        ex.critical_weight_decay(ANISO, (2, 3, 1), profile=(1.0, 0.0))


def test_prediction_variance_bad_input():
    sol = ex.solve(ANISO, (2, 3, 3, 1), 0.05, dl.Dropout(0.2))
    with pytest.raises(DataError, match="x: expected shape"):
        sol.prediction_variance(np.ones(3))


def test_solution_is_immutable():
    sol = ex.solve(ANISO, (2, 3, 1), 0.1)
    with pytest.raises(AttributeError):
        sol.k = 2.0
    with pytest.raises(ValueError):
        sol.end_to_end[0, 0] = 1.0

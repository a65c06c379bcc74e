"""dl.theory.saddles against independent computations: brute-force rank-constrained minimisation,
direct optimisation on the parameter sphere, scipy ODE integration of hand-written gradient flows
(in both the library's and the paper's 1/2 normalisation), finite Hessians and constrained
minimisation of the distance to the global-minimum set."""

import jax
import numpy as np
import pytest
import scipy.integrate
import scipy.optimize

import dlnlab as dl
from dlnlab.errors import ConfigError, DataError
from dlnlab.theory import saddles as sd


def _correlated(seed=0, d_in=4, d_out=3, singular=False):
    rng = np.random.default_rng(seed)
    n = 200
    X = rng.normal(size=(n, d_in)) @ rng.normal(size=(d_in, d_in)) * np.array([2.0, 1.0, 0.5, 0.2])[:d_in]
    if singular:
        X[:, -1] = X[:, 0] - X[:, 1]  # rank-deficient inputs
    Y = X @ rng.normal(size=(d_in, d_out)) + 0.3 * rng.normal(size=(n, d_out))
    return X, Y


def _brute_rank_k(X, Y, k, restarts=6, seed=0):
    """min over A = U V^T (U: d_out x k) of the sample mean of ||A x - y||^2, by BFGS from many starts."""
    d_in, d_out = X.shape[1], Y.shape[1]
    rng = np.random.default_rng(seed)

    def f(z):
        U, V = z[: d_out * k].reshape(d_out, k), z[d_out * k:].reshape(d_in, k)
        R = X @ V @ U.T - Y
        G = 2 * R.T @ X / len(X)  # d_out x d_in gradient wrt A
        return np.mean(np.sum(R**2, axis=1)), np.concatenate([(G @ V).ravel(), (G.T @ U).ravel()])

    best = None
    for _ in range(restarts):
        res = scipy.optimize.minimize(f, rng.normal(size=(d_out + d_in) * k), jac=True, method="BFGS",
                                      options={"gtol": 1e-12, "maxiter": 10_000})
        if best is None or res.fun < best.fun:
            best = res
    U, V = best.x[: d_out * k].reshape(d_out, k), best.x[d_out * k:].reshape(d_in, k)
    return best.fun, U @ V.T


@pytest.mark.parametrize("singular", [False, True])
def test_reduced_rank_regression_matches_brute_force(singular):
    X, Y = _correlated(1, singular=singular)
    prob = dl.Regression.from_data(X, Y)
    seq = sd.saddle_sequence(prob)
    assert [s.rank for s in seq] == [0, 1, 2, 3]
    assert seq[-1].is_minimum and not any(s.is_minimum for s in seq[:-1])
    for s in seq[1:]:
        loss, A = _brute_rank_k(X, Y, s.rank, seed=s.rank)
        assert s.loss == pytest.approx(loss, rel=1e-8, abs=1e-10)
        # A is unique on the range of the inputs: compare predictions.
        np.testing.assert_allclose(X @ s.end_to_end.T, X @ A.T, atol=1e-5)
    # Losses decrease, escape speed = top singular value of -grad C computed by finite differences.
    assert np.all(np.diff([s.loss for s in seq]) < 0)
    A = seq[1].end_to_end
    eps = 1e-6
    G = np.zeros_like(A)
    for i in range(A.shape[0]):
        for j in range(A.shape[1]):
            E = np.zeros_like(A)
            E[i, j] = eps
            G[i, j] = (np.mean(np.sum((X @ (A + E).T - Y) ** 2, 1)) - np.mean(np.sum((X @ (A - E).T - Y) ** 2, 1))) / (
                2 * eps)
    assert seq[1].escape_speed == pytest.approx(np.linalg.svd(-G, compute_uv=False)[0], rel=1e-6)


def test_whitened_is_eckart_young_and_greedy_agrees():
    rng = np.random.default_rng(2)
    Syx = rng.normal(size=(3, 5))
    s = np.linalg.svd(Syx, compute_uv=False)
    prob = dl.Regression.from_moments(np.eye(5), Syx, float(np.sum(s**2)) + 0.7)
    closed = sd.saddle_sequence(prob)
    greedy = sd.saddle_sequence(prob, method="greedy")
    # Library normalisation (no 1/2): C(A_k) = noise + sum_{i>k} s_i^2 ; escape speed 2 s_{k+1}.
    np.testing.assert_allclose([c.loss for c in closed], [0.7 + np.sum(s[k:] ** 2) for k in range(4)], rtol=1e-12)
    np.testing.assert_allclose([c.escape_speed for c in closed[:-1]], 2 * s, rtol=1e-12)
    for c, g in zip(closed, greedy, strict=True):
        np.testing.assert_allclose(g.end_to_end, c.end_to_end, atol=1e-6)


def test_greedy_on_correlated_regression_is_reduced_rank_regression():
    X, Y = _correlated(3)
    prob = dl.Regression.from_data(X, Y)
    for c, g in zip(sd.saddle_sequence(prob), sd.saddle_sequence(prob, method="greedy"), strict=True):
        assert g.loss == pytest.approx(c.loss, rel=1e-9)
        np.testing.assert_allclose(g.end_to_end, c.end_to_end, atol=1e-5)


class _Sensing:
    """Matrix sensing written here: C(A) = mean_j (<M_j, A> - y_j)^2 (convex in A)."""

    def __init__(self, M, y):
        self.M, self.y = M, y
        self.d_out, self.d_in = M.shape[1:]

    def cost(self, A):
        return jax.numpy.mean((jax.numpy.einsum("jab,ab->j", self.M, A) - self.y) ** 2)


def test_greedy_matrix_sensing_and_completion():
    rng = np.random.default_rng(4)
    T = rng.normal(size=(6, 2)) @ rng.normal(size=(2, 5))
    M = rng.normal(size=(40, 6, 5))
    prob = _Sensing(M, np.einsum("jab,ab->j", M, T))
    seq = sd.saddle_sequence(prob)
    assert seq[-1].rank == 2 and seq[-1].is_minimum
    np.testing.assert_allclose(seq[-1].end_to_end, T, atol=1e-6)  # 40 generic measurements identify T
    # Rank-1 saddle: a critical point on the rank-1 manifold (first-order conditions U^T G = 0, G V = 0).
    A1 = seq[1].end_to_end
    U, _, Vt = np.linalg.svd(A1)
    G = np.asarray(jax.grad(prob.cost)(A1))
    assert np.linalg.norm(U[:, :1].T @ G) < 1e-6 * np.linalg.norm(G)
    assert np.linalg.norm(G @ Vt[:1].T) < 1e-6 * np.linalg.norm(G)
    # Matrix completion: recovers the rank-2 target; A_1 is no worse than a brute-force rank-1 fit.
    n = 12
    T = rng.normal(size=(n, 2)) @ rng.normal(size=(2, n))
    mask = rng.random((n, n)) < 0.6
    mc = dl.MatrixCompletion(T, mask)
    seq = sd.saddle_sequence(mc)
    assert seq[-1].rank == 2 and seq[-1].is_minimum
    assert float(mc.test_error(seq[-1].end_to_end)) < 1e-8

    def f(z):
        A = np.outer(z[:n], z[n:])
        return np.sum(np.where(mask, A - T, 0.0) ** 2) / mask.sum()

    best = min(scipy.optimize.minimize(f, rng.normal(size=2 * n), method="BFGS").fun for _ in range(8))
    assert seq[1].loss <= best + 1e-8


def test_escape_speed_is_the_sphere_maximum():
    rng = np.random.default_rng(5)
    prob = dl.Regression.from_moments(np.eye(3), rng.normal(size=(2, 3)), 5.0)
    G = 2 * np.asarray(prob.Syx)
    for L, widths in ((2, (3, 4, 2)), (3, (3, 5, 4, 2)), (4, (3, 2, 3, 4, 2))):
        shapes = [(widths[i + 1], widths[i]) for i in range(L)]
        sizes = [a * b for a, b in shapes]

        def neg(z, shapes=shapes, sizes=sizes, widths=widths):
            z = z / np.linalg.norm(z)
            Ws = np.split(z, np.cumsum(sizes)[:-1])
            A = np.eye(widths[0])
            for W, sh in zip(Ws, shapes, strict=True):
                A = W.reshape(sh) @ A
            return -np.sum(G * A)

        best = min(scipy.optimize.minimize(neg, rng.normal(size=sum(sizes)), method="BFGS").fun for _ in range(6))
        assert sd.escape_speed(prob, L) == pytest.approx(-best, rel=1e-6)
        net = dl.Net(widths)
        p = sd.escape_params(net, prob, key=1)
        assert sum(float(np.sum(np.asarray(W) ** 2)) for W in p) == pytest.approx(1.0)
        A = np.asarray(dl.nets.end_to_end(p))
        assert np.sum(G * A) == pytest.approx(sd.escape_speed(prob, L), rel=1e-10)
        assert all(np.linalg.matrix_rank(np.asarray(W)) == 1 for W in p)


def _flow_escape(grad_fn, theta0, level, t_max):
    """Integrate d theta/dt = -grad(theta) with scipy until s_1(A) = level; return the time."""
    shapes = [W.shape for W in theta0]
    sizes = [W.size for W in theta0]

    def unpack(z):
        return [c.reshape(s) for c, s in zip(np.split(z, np.cumsum(sizes)[:-1]), shapes, strict=True)]

    def rhs(t, z):
        return -np.concatenate([g.ravel() for g in grad_fn(unpack(z))])

    def event(t, z):
        A = np.eye(shapes[0][1])
        for W in unpack(z):
            A = W @ A
        return np.linalg.norm(A, 2) - level

    event.terminal = True
    sol = scipy.integrate.solve_ivp(rhs, (0, t_max), np.concatenate([W.ravel() for W in theta0]), method="DOP853",
                                    rtol=1e-10, atol=1e-300, events=event)
    return sol.t_events[0][0]


def _grads(Ws, G_of_A):
    A = np.eye(Ws[0].shape[1])
    pre = [A]
    for W in Ws:
        A = W @ A
        pre.append(A)
    G = G_of_A(A)
    out, post = [], np.eye(Ws[-1].shape[0])
    for i in range(len(Ws) - 1, -1, -1):
        out.append(post.T @ G @ pre[i].T)
        post = post @ Ws[i]
    return out[::-1]


@pytest.mark.parametrize("L", [2, 3, 4])
def test_predicted_escape_times_and_time_conversion(L):
    # Whitened regression, aligned balanced init on the top mode: the flow is exactly the mode ODE.
    s = np.array([3.0, 1.0])
    Syx = np.diag(s)
    prob = dl.Regression.from_moments(np.eye(2), Syx, 10.0)
    a0 = 0.05
    widths = (2,) + (3,) * (L - 1) + (2,)
    z = [np.eye(w)[:, 0] for w in widths]
    theta0 = [a0 * np.outer(z[i + 1], z[i]) for i in range(L)]
    t_lib = _flow_escape(lambda Ws: _grads(Ws, lambda A: 2 * (A - Syx)), theta0, s[0] / 2, 1e4)
    t_paper = _flow_escape(lambda Ws: _grads(Ws, lambda A: A - Syx), theta0, s[0] / 2, 1e4)
    pred_lib = sd.predicted_escape_times(prob, depth=L, a0=a0)[0]
    pred_paper = sd.predicted_escape_times(prob, depth=L, a0=a0, convention="paper")[0]
    assert pred_lib == pytest.approx(t_lib, rel=1e-6)
    assert pred_paper == pytest.approx(t_paper, rel=1e-6)
    assert t_paper == pytest.approx(sd.PAPER_TIME_PER_LIBRARY_TIME * t_lib, rel=1e-6)
    # sigma-dependence: depth 2 logarithmic with slope 1/S, depth >= 3 a power L-2.
    sig = np.array([1e-6, 1e-8]) if L == 2 else np.array([1e-3, 1e-4])
    J = np.array([sd.predicted_escape_times(prob, depth=L, sigma=x)[0] for x in sig])
    S = 2 * s[0]
    if L == 2:
        assert (J[1] - J[0]) / np.log(sig[0] / sig[1]) == pytest.approx(1 / S, rel=1e-3)
    else:
        assert np.log(J[1] / J[0]) / np.log(sig[0] / sig[1]) == pytest.approx(L - 2, rel=2e-3)


def test_depth2_random_init_escape_time():
    # Random (unaligned) small init, whitened inputs, unequal widths: the time predicted from the init's
    # projection on the escape mode. (With correlated inputs only the log(1/sigma) slope is predicted:
    # the first mode then rotates from the top pair of Syx to A_1, which adds an O(1) delay.)
    rng = np.random.default_rng(11)
    U, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    V, _ = np.linalg.qr(rng.normal(size=(4, 3)))
    Syx = U @ np.diag([3.0, 1.5, 0.5]) @ V.T
    prob = dl.Regression.from_moments(np.eye(4), Syx, 20.0)
    seq = sd.saddle_sequence(prob)
    for sigma in (1e-4, 1e-8):
        theta0 = [sigma * rng.normal(size=(7, 4)), sigma * rng.normal(size=(3, 7))]
        level = np.linalg.norm(seq[1].end_to_end, 2) / 2
        t = _flow_escape(lambda Ws: _grads(Ws, lambda A: 2 * (A - Syx)), theta0, level, 1e3)
        a0 = sd.depth2_mode_scale(theta0, prob, saddles=seq)
        pred = sd.predicted_escape_times(prob, depth=2, a0=a0, saddles=seq)[0]
        assert pred == pytest.approx(t, rel=0.02)


def test_saddle_params_critical_and_strict_at_depth_two():
    X, Y = _correlated(7)
    prob = dl.Regression.from_data(X, Y)
    obj = dl.Objective(prob)
    seq = sd.saddle_sequence(prob)
    for widths in ((4, 5, 3), (4, 6, 2, 3)):
        net = dl.Net(widths)
        for s in seq[: min(widths[1:-1])]:
            p = sd.saddle_params(net, s, key=2)
            g = np.concatenate([np.ravel(x) for x in obj.grad(p)])
            assert np.linalg.norm(g) < 1e-9 * max(1.0, s.escape_speed)
            assert float(obj.value(p)) == pytest.approx(s.loss, rel=1e-10)
            if len(widths) == 3 and s.rank < 2:
                H = np.asarray(dl.curvature.hessian(obj, p))
                lam = np.linalg.eigvalsh((H + H.T) / 2)
                # A new hidden neuron along the escape pair gives curvature -s; nothing is steeper.
                assert lam[0] == pytest.approx(-s.escape_speed, rel=1e-6)
    # Depth 3: the Hessian at the origin vanishes (non-strict saddle): the gradient at eps * v is O(eps^2).
    net = dl.Net((4, 6, 2, 3))
    for k in range(3):
        v = net.init(k, scheme="gaussian", scale=1.0)
        g = [np.linalg.norm(np.concatenate([np.ravel(x) for x in obj.grad(tuple(e * W for W in v))]))
             for e in (1e-3, 1e-4)]
        assert g[1] / g[0] == pytest.approx(1e-2, rel=1e-3)


def test_end_to_end_ntk_matches_jacobian():
    rng = np.random.default_rng(8)
    p = tuple(rng.normal(size=s) for s in ((5, 3), (4, 5), (2, 4)))
    J = jax.jacobian(lambda q: dl.nets.end_to_end(q).T.ravel())(p)  # column-major vec
    Jm = np.concatenate([np.asarray(j).reshape(6, -1) for j in J], axis=1)
    np.testing.assert_allclose(sd.end_to_end_ntk(p), Jm @ Jm.T, rtol=1e-10)


def test_init_distances_bounds_and_brute_force():
    rng = np.random.default_rng(9)
    Astar = rng.normal(size=(2, 3))
    prob = dl.Regression.from_moments(np.eye(3), Astar, float(np.sum(Astar**2)))
    for w, gamma in ((60, 0.5), (8, 2.0)):
        p = [rng.normal(size=(w, 3)) * w ** (-gamma / 2), rng.normal(size=(2, w)) * w ** (-gamma / 2)]
        d = sd.init_distances(prob, p)
        assert d.to_saddle == pytest.approx(np.sqrt(sum(np.sum(W**2) for W in p)))  # depth 2: ||theta||
        z0 = np.concatenate([W.ravel() for W in p])

        def f(z, mu, w=w, z0=z0):
            W1, W2 = z[: 3 * w].reshape(w, 3), z[3 * w:].reshape(2, w)
            R = W2 @ W1 - Astar
            g = np.concatenate([(2 * mu * W2.T @ R).ravel(), (2 * mu * R @ W1.T).ravel()])
            return np.sum((z - z0) ** 2) + mu * np.sum(R**2), 2 * (z - z0) + g

        # Brute force: quadratic penalty with increasing weight (L-BFGS), from the init and random starts.
        best = np.inf
        for start in (z0, z0 + 0.3 * rng.normal(size=z0.size)):
            z = start
            for mu in (1e3, 1e6, 1e9):
                z = scipy.optimize.minimize(f, z, args=(mu,), jac=True, method="L-BFGS-B",
                                            options={"maxiter": 20_000, "gtol": 1e-12, "ftol": 0}).x
            W1, W2 = z[: 3 * w].reshape(w, 3), z[3 * w:].reshape(2, w)
            if np.abs(W2 @ W1 - Astar).max() < 1e-6:
                best = min(best, float(np.linalg.norm(z - z0)))
        assert d.converged and np.isfinite(best)
        assert d.global_min_lower_bound <= best + 1e-6 and best <= d.to_global_min + 1e-6
        if gamma < 1:  # lazy: the linearised distance is already accurate
            assert d.to_global_min_linearised == pytest.approx(best, rel=0.05)
        else:  # near the origin: far from every global minimum
            assert d.global_min_lower_bound > 0.5 * np.linalg.norm(Astar, 2) ** 0.5


def test_saddle_distance_exponent_monte_carlo():
    rng = np.random.default_rng(10)
    ws = np.array([32, 128, 512])
    for gamma in (0.5, 1.5):
        d = [sd.saddle_distance([rng.normal(size=shape) * w ** (-gamma / 2) for shape in ((w, 4), (w, w), (3, w))])
             for w in ws]
        assert np.polyfit(np.log(ws), np.log(d), 1)[0] == pytest.approx((1 - gamma) / 2, abs=0.03)


def test_bad_input():
    prob = dl.Regression.from_moments(np.eye(2), np.ones((1, 2)), 3.0)
    with pytest.raises(ConfigError, match="prob"):
        sd.saddle_sequence(dl.Classification(np.eye(2), np.array([1.0, -1.0])))
    with pytest.raises(ConfigError, match="method"):
        sd.saddle_sequence(prob, method="exact")
    with pytest.raises(ConfigError, match="closed_form"):
        sd.saddle_sequence(dl.MatrixCompletion(np.eye(2), np.eye(2, dtype=bool)), method="closed_form")
    with pytest.raises(DataError, match="Syx"):
        sd.saddle_sequence(dl.Regression.from_moments(np.diag([1.0, 0.0]), np.ones((1, 2)), 3.0))
    with pytest.raises(ConfigError, match="sigma/a0"):
        sd.predicted_escape_times(prob, depth=2, sigma=0.1, a0=0.1)
    with pytest.raises(ConfigError, match="depth"):
        sd.predicted_escape_times(prob, depth=1, sigma=0.1)
    with pytest.raises(ConfigError, match="convention"):
        sd.predicted_escape_times(prob, depth=2, sigma=0.1, convention="half")
    with pytest.raises(DataError, match="A"):
        sd.escape_direction(prob, np.zeros((2, 2)))

"""Tests of dlnlab.theory.dmf (arora2019) against factor-level gradient flow and descent computed here."""

import numpy as np
import pytest
from scipy.integrate import solve_ivp
from scipy.stats import ortho_group

from dlnlab.errors import ConfigError, DataError
from dlnlab.theory import dmf


def _prod(Ws, lo=0, hi=None):
    """W_hi ... W_{lo+1} (0-based slice lo:hi of the factor tuple); identity of the right size if empty."""
    hi = len(Ws) if hi is None else hi
    out = np.eye(Ws[lo].shape[1]) if hi > lo else None
    for W in Ws[lo:hi]:
        out = W @ out
    return out


def _factor_grads(Ws, G):
    """Chain rule: dL/dW_j = (W_N..W_{j+1})^T G (W_{j-1}..W_1)^T for L = l(W_N ... W_1), G = grad l."""
    N = len(Ws)
    out = []
    for j in range(N):
        left = _prod(Ws, j + 1) if j + 1 < N else np.eye(G.shape[0])
        right = _prod(Ws, 0, j) if j > 0 else np.eye(G.shape[1])
        out.append(left.T @ G @ right.T)
    return out


def _product_rule_velocity(Ws, G):
    """d(W_N ... W_1)/dt under dW_j/dt = -dL/dW_j."""
    N = len(Ws)
    V = 0.0
    for j, gj in enumerate(_factor_grads(Ws, G)):
        left = _prod(Ws, j + 1) if j + 1 < N else np.eye(G.shape[0])
        right = _prod(Ws, 0, j) if j > 0 else np.eye(G.shape[1])
        V = V - left @ gj @ right
    return V


def _random_balanced(rng, W, N, hidden):
    """Balanced factors built with random orthogonal embeddings (independent of dmf.balanced_factorization)."""
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    k = int(np.sum(s > 1e-10 * s[0]))  # the rank: the hidden widths may be as small as it
    U, s, Vt = U[:, :k], s[:k], Vt[:k]
    root = s ** (1.0 / N)
    E = [ortho_group.rvs(h, random_state=rng)[:, :k] for h in hidden]
    Ws = []
    for j in range(N):
        left = U if j == N - 1 else E[j]
        right = Vt.T if j == 0 else E[j - 1]
        Ws.append((left * root) @ right.T)
    return Ws


def _psd_power(S, p):
    lam, Q = np.linalg.eigh(S)
    lam = np.where(lam > 1e-12 * lam.max(), lam, 0.0)  # eigh leaves ~1e-16 on the kernel: its sqrt would be 1e-8
    return np.eye(len(S)) if p == 0 else (Q * lam**p) @ Q.T


def _instance(rng, d_out, d_in, rank):
    W = rng.normal(size=(d_out, rank)) @ rng.normal(size=(rank, d_in)) * np.geomspace(3.0, 0.2, d_in)
    G = rng.normal(size=(d_out, d_in))
    return W, G


@pytest.mark.parametrize("N,d_out,d_in,rank,hidden", [
    (1, 4, 3, 3, ()), (2, 4, 3, 3, (5,)), (3, 3, 5, 3, (3, 6)), (4, 4, 4, 2, (2, 7, 3)), (3, 5, 2, 2, (4, 4)),
])
def test_velocity_equals_product_rule(N, d_out, d_in, rank, hidden):
    rng = np.random.default_rng(N * 10 + d_in)
    W, G = _instance(rng, d_out, d_in, rank)
    Ws = _random_balanced(rng, W, N, hidden)
    for a, b in zip(Ws, Ws[1:]):
        np.testing.assert_allclose(b.T @ b, a @ a.T, atol=1e-12)
    np.testing.assert_allclose(_prod(Ws), W, atol=1e-12)
    ref = _product_rule_velocity(Ws, G)
    got = dmf.end_to_end_velocity(W, G, N)
    np.testing.assert_allclose(got, ref, atol=1e-12 * np.abs(ref).max())
    # kron form with eigendecomposition powers (row-major vec), 0^0 = I also for rank-deficient W
    P = sum(np.kron(_psd_power(W @ W.T, (N - j) / N), _psd_power(W.T @ W, (j - 1) / N)) for j in range(1, N + 1))
    np.testing.assert_allclose(dmf.preconditioner(W, N), P, atol=1e-11 * np.abs(P).max())
    np.testing.assert_allclose(-(P @ G.ravel()).reshape(W.shape), ref, atol=1e-11 * np.abs(ref).max())
    assert np.linalg.eigvalsh(P).min() > -1e-10 and np.allclose(P, P.T)


def test_factor_gradients_by_finite_differences():
    rng = np.random.default_rng(3)
    M = rng.normal(size=(3, 4))
    mask = rng.random((3, 4)) < 0.6
    loss = dmf.CompletionLoss(M, mask)
    Ws = [rng.normal(size=(5, 4)), rng.normal(size=(2, 5)), rng.normal(size=(3, 2))]
    grads = _factor_grads(Ws, loss.grad(_prod(Ws)))
    h = 1e-6
    for j in range(3):
        for idx in np.ndindex(Ws[j].shape):
            Wp = [w.copy() for w in Ws]
            Wm = [w.copy() for w in Ws]
            Wp[j][idx] += h
            Wm[j][idx] -= h
            fd = (loss.value(_prod(Wp)) - loss.value(_prod(Wm))) / (2 * h)
            assert fd == pytest.approx(grads[j][idx], abs=1e-7)


def test_losses_against_direct_formulas():
    rng = np.random.default_rng(4)
    M = rng.normal(size=(4, 3))
    idx = np.array([[0, 0], [3, 2], [1, 2], [2, 0], [0, 1]])
    W = rng.normal(size=(4, 3))
    c = dmf.CompletionLoss(M, idx)
    assert c.value(W) == pytest.approx(np.mean([(W[i, j] - M[i, j]) ** 2 for i, j in idx]), rel=1e-14)
    A = rng.normal(size=(7, 4, 3)) * np.array([5.0, 1.0, 0.1])
    y = rng.normal(size=7)
    s = dmf.SensingLoss(A, y)
    assert s.value(W) == pytest.approx(np.mean([(np.sum(Ak * W) - yk) ** 2 for Ak, yk in zip(A, y)]), rel=1e-14)
    for loss in (c, s):
        G = loss.grad(W)
        for ij in np.ndindex(W.shape):
            E = np.zeros_like(W)
            E[ij] = 1e-6
            assert (loss.value(W + E) - loss.value(W - E)) / 2e-6 == pytest.approx(G[ij], abs=1e-7)


@pytest.mark.parametrize("N", [2, 3, 4])
def test_singular_value_velocity(N):
    rng = np.random.default_rng(N)
    W, G = _instance(rng, 4, 5, 4)
    Ws = _random_balanced(rng, W, N, (6,) * (N - 1))
    V = _product_rule_velocity(Ws, G)
    U, s, Vt = np.linalg.svd(W, full_matrices=False)
    sig, ds = dmf.singular_value_velocity(W, G, N)
    np.testing.assert_allclose(sig, s, rtol=1e-13)
    # first-order perturbation of distinct singular values: d sigma_r = u_r^T dW v_r
    np.testing.assert_allclose(ds, np.einsum("ir,ij,rj->r", U, V, Vt), rtol=1e-10)


def test_singular_values_along_simulated_descent():
    """Difference quotients of sigma_r along small-step GD on balanced depth-3 factors vs Theorem 3."""
    rng = np.random.default_rng(11)
    M = rng.normal(size=(5, 2)) @ rng.normal(size=(2, 4))
    mask = rng.random(M.shape) < 0.7
    loss = dmf.CompletionLoss(M, mask)
    W0 = 0.3 * rng.normal(size=(5, 4))
    Ws = list(dmf.balanced_factorization(W0, 3, hidden=(6, 4)))
    eta, steps = 1e-5, 4000
    hist = []
    for _ in range(steps + 1):
        W = _prod(Ws)
        hist.append((np.linalg.svd(W, compute_uv=False), W))
        grads = _factor_grads(Ws, loss.grad(W))
        Ws = [w - eta * g for w, g in zip(Ws, grads)]
    for k in (500, 2000, 3500):
        fd = (hist[k + 1][0] - hist[k - 1][0]) / (2 * eta)
        _, ds = dmf.singular_value_velocity(hist[k][1], loss.grad(hist[k][1]), 3)
        np.testing.assert_allclose(fd, ds, rtol=2e-4, atol=1e-4 * np.abs(ds).max())


def _factor_flow(loss, Ws, times):
    shapes = [w.shape for w in Ws]
    sizes = np.cumsum([0] + [w.size for w in Ws])

    def unpack(y):
        return [y[a:b].reshape(sh) for a, b, sh in zip(sizes, sizes[1:], shapes)]

    def rhs(_, y):
        Fs = unpack(y)
        return -np.concatenate([g.ravel() for g in _factor_grads(Fs, loss.grad(_prod(Fs)))])

    sol = solve_ivp(rhs, (0, times[-1]), np.concatenate([w.ravel() for w in Ws]), t_eval=times, method="DOP853",
                    rtol=1e-12, atol=1e-14)
    assert sol.success
    return np.array([_prod(unpack(y)) for y in sol.y.T])


@pytest.mark.parametrize("kind", ["completion", "sensing"])
def test_end_to_end_flow_tracks_factor_flow(kind):
    rng = np.random.default_rng(7)
    M = rng.normal(size=(4, 1)) @ rng.normal(size=(1, 6)) + 0.5 * rng.normal(size=(4, 1)) @ rng.normal(size=(1, 6))
    if kind == "completion":
        idx = np.array(sorted({(int(i), int(j)) for i, j in rng.integers(0, [4, 6], size=(30, 2))}))
        loss = dmf.CompletionLoss(M, idx)
    else:
        A = rng.normal(size=(9, 4, 6)) * np.geomspace(3.0, 0.3, 6)
        loss = dmf.SensingLoss(A, np.einsum("kij,ij->k", A, M))
    W0 = 0.05 * rng.normal(size=(4, 6))
    Ws = _random_balanced(rng, W0, 3, (5, 8))
    times = np.linspace(0.0, 40.0, 9)
    ref = _factor_flow(loss, Ws, times)
    got = dmf.end_to_end_flow(loss, W0, 3, times, rtol=1e-11, atol=1e-14)
    np.testing.assert_allclose(got.matrices, ref, atol=1e-8 * np.abs(ref).max())
    assert got.losses[-1] < got.losses[0]
    np.testing.assert_allclose(got.singular_values, np.linalg.svd(ref, compute_uv=False), atol=1e-8)


def test_balanced_factorization():
    rng = np.random.default_rng(5)
    W = rng.normal(size=(3, 2)) @ rng.normal(size=(2, 5))  # rank 2
    Ws = dmf.balanced_factorization(W, 4, hidden=(2, 6, 3))
    assert [w.shape for w in Ws] == [(2, 5), (6, 2), (3, 6), (3, 3)]
    np.testing.assert_allclose(_prod(Ws), W, atol=1e-12)
    for a, b in zip(Ws, Ws[1:]):
        np.testing.assert_allclose(b.T @ b, a @ a.T, atol=1e-12)
    with pytest.raises(ConfigError, match="hidden.*rank"):
        dmf.balanced_factorization(W, 3, hidden=(1, 4))
    with pytest.raises(ConfigError, match="hidden"):
        dmf.balanced_factorization(W, 3, hidden=(4,))


def test_bad_input():
    M = np.zeros((3, 4))
    with pytest.raises(DataError, match="mask.*out of range"):
        dmf.CompletionLoss(M, np.array([[0, 0], [3, 1]]))
    with pytest.raises(DataError, match="mask.*2 times"):
        dmf.CompletionLoss(M, np.array([[0, 0], [1, 1], [0, 0]]))
    with pytest.raises(DataError, match="mask"):
        dmf.CompletionLoss(M, np.ones((4, 3), bool))
    with pytest.raises(DataError, match="mask"):
        dmf.CompletionLoss(M, np.zeros((3, 4), bool))
    with pytest.raises(DataError, match="A"):
        dmf.SensingLoss(np.zeros((5, 3)), np.zeros(5))
    with pytest.raises(DataError, match="y"):
        dmf.SensingLoss(np.zeros((5, 3, 4)), np.zeros(4))
    loss = dmf.SensingLoss(np.ones((5, 3, 4)), np.zeros(5))
    with pytest.raises(DataError, match="W0"):
        dmf.end_to_end_flow(loss, np.zeros((4, 3)), 2, [0.0, 1.0])
    with pytest.raises(ConfigError, match="depth"):
        dmf.end_to_end_flow(loss, np.zeros((3, 4)), 0, [0.0, 1.0])
    with pytest.raises(DataError, match="times"):
        dmf.end_to_end_flow(loss, np.zeros((3, 4)), 2, [1.0, 0.5])
    with pytest.raises(DataError, match="grad"):
        dmf.end_to_end_velocity(np.zeros((3, 4)), np.zeros((4, 3)), 2)
    with pytest.raises(ConfigError, match="method"):
        dmf.end_to_end_flow(loss, np.zeros((3, 4)), 2, [0.0, 1.0], method="euler")


def test_library_flow_of_a_balanced_net_follows_end_to_end_flow():
    """What a user does: train a balanced net with dl.train(..., dl.Flow) and compare its product with the theory."""
    import jax.numpy as jnp

    import dlnlab as dl

    rng = np.random.default_rng(0)
    M = rng.normal(size=(5, 2)) @ rng.normal(size=(2, 4))
    mask = rng.random(M.shape) < 0.6
    W0 = 0.1 * rng.normal(size=(5, 4))
    params = tuple(jnp.asarray(w) for w in dmf.balanced_factorization(W0, 3, hidden=(6, 4)))
    Mj, mj = jnp.asarray(M), jnp.asarray(mask)

    def loss_fn(p):
        W = p[2] @ p[1] @ p[0]
        return jnp.sum(jnp.where(mj, W - Mj, 0.0) ** 2) / jnp.sum(mj)

    run = dl.train(loss_fn, params, dl.Flow(t1=30.0, rtol=1e-10, atol=1e-12))
    W_net = np.asarray(run.params[2] @ run.params[1] @ run.params[0])
    theory = dmf.end_to_end_flow(dmf.CompletionLoss(M, mask), W0, 3, [0.0, 30.0])
    assert np.abs(W_net - theory.matrices[-1]).max() < 1e-8 * np.abs(W_net).max()
    assert np.linalg.norm(W_net - W0) > 0.5  # it moved

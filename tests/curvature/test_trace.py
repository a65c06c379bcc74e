"""Hessian trace: exact against the dense Hessian; Hutchinson and Hutch++ unbiased, with variances that shrink at
the rates theory gives (measured slopes on a matrix with a decaying spectrum)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from curvature_cases import block_index, dense_reference, make_case

from dlnlab import curvature


def test_exact_trace_matches_the_dense_hessian(case):
    _, f, params = case
    H, _ = dense_reference(f, params)
    est = curvature.trace(f, params, method="exact")
    assert est.value == pytest.approx(np.trace(H), rel=1e-12, abs=1e-12)
    assert est.std_error == 0.0 and est.num_matvecs == H.shape[0] and float(est) == est.value


def test_block_trace():
    f, params = make_case("dln", seed=2)
    H, _ = dense_reference(f, params)
    idx = block_index(params, (0, 2))
    assert float(curvature.trace(f, params, method="exact", layers=(0, 2))) == pytest.approx(
        np.trace(H[np.ix_(idx, idx)]), rel=1e-12)


@pytest.mark.parametrize("method", ["hutchinson", "hutch++"])
def test_estimators_are_unbiased_and_report_their_error(method):
    """Over 40 keys the mean is within 4 standard errors of the exact trace, and the reported std_error matches
    the spread across keys."""
    f, params = make_case("dln", seed=1)
    H, _ = dense_reference(f, params)
    ests = [curvature.trace(f, params, method=method, num_samples=30, key=k) for k in range(40)]
    values = np.array([e.value for e in ests])
    spread = values.std(ddof=1)
    assert abs(values.mean() - np.trace(H)) < 4 * spread / np.sqrt(len(values))
    reported = np.sqrt(np.mean([e.std_error**2 for e in ests]))
    assert 0.6 < reported / spread < 1.6
    assert all(e.num_matvecs == 30 for e in ests)


def _decaying_quadratic(n=120, seed=0):
    """``x -> x^T A x / 2`` with Hessian ``A = Q diag(i^-2) Q^T`` (a random rotation, so Rademacher probes have
    variance): Hutchinson's variance is ``2 (||A||_F^2 - sum_i A_ii^2) / m``; Hutch++ removes the top of the
    spectrum and is left with the tail ``sum_{i > m/3} i^-4 ~ m^-3``, so its variance falls much faster."""
    rng = np.random.default_rng(seed)
    Q = np.linalg.qr(rng.normal(size=(n, n)))[0]
    A = (Q * np.arange(1.0, n + 1) ** -2.0) @ Q.T
    A = (A + A.T) / 2
    Aj = jnp.asarray(A)
    return jax.tree_util.Partial(lambda x, A: 0.5 * x @ A @ x, A=Aj), jnp.zeros(n), A


def test_hutchinson_variance_falls_as_one_over_m_and_hutchpp_faster():
    f, x0, A = _decaying_quadratic()
    ms = np.array([6, 24, 96])
    reps = 150
    var = {}
    for method in ("hutchinson", "hutch++"):
        v = []
        for m in ms:
            vals = np.array([curvature.trace(f, x0, method=method, num_samples=int(m), key=r).value
                             for r in range(reps)])
            v.append(np.mean((vals - np.trace(A)) ** 2))  # mean squared error about the exact trace
        var[method] = np.array(v)
    slope = {k: np.polyfit(np.log(ms), np.log(v), 1)[0] for k, v in var.items()}
    theory = 2 * (np.sum(A**2) - np.sum(np.diag(A) ** 2)) / ms
    np.testing.assert_allclose(var["hutchinson"], theory, rtol=0.35)  # 150 reps: a variance to ~12 %
    assert -1.25 < slope["hutchinson"] < -0.75, slope
    assert slope["hutch++"] < -2.0, slope
    assert np.all(var["hutch++"][1:] < var["hutchinson"][1:] / 10)


def test_dln_trace_closed_form():
    """``E||W_L..W_1 x - y||^2`` is linear in each weight entry, so only the Gauss-Newton part reaches the Hessian's
    diagonal: ``tr H = sum_i 2 ||P_i||_F^2 tr(Q_i Sxx Q_i^T) + 2 gamma_i |W_i|`` with ``P_i = W_L..W_{i+1}``,
    ``Q_i = W_{i-1}..W_1``. The exact method matches it, and Hutch++ with a sketch as large as the space is exact."""
    import dlnlab as dl

    rng = np.random.default_rng(5)
    X = rng.normal(size=(90, 4)) * np.array([2.5, 1.0, 0.4, 0.1])
    Y = X @ rng.normal(size=(4, 3))
    decay = [0.0, 0.02, 0.05]
    obj = dl.Objective(dl.Regression.from_data(X, Y), weight_decay=decay)
    params = dl.Net((4, 7, 2, 3)).init(jax.random.key(2), scheme="gaussian", scale=0.8)
    Ws = [np.asarray(W) for W in params]
    Sxx = X.T @ X / len(X)
    closed = 0.0
    for i, W in enumerate(Ws):
        P = np.eye(W.shape[0])
        for V in Ws[i + 1:]:
            P = V @ P
        Q = np.eye(4)
        for V in Ws[:i]:
            Q = V @ Q
        closed += 2 * np.sum(P**2) * np.trace(Q @ Sxx @ Q.T) + 2 * decay[i] * W.size
    assert curvature.trace(obj, params, method="exact").value == pytest.approx(closed, rel=1e-12)
    n = sum(W.size for W in Ws)
    assert curvature.trace(obj, params, method="hutch++", num_samples=3 * n + 2).value == pytest.approx(
        closed, rel=1e-9)

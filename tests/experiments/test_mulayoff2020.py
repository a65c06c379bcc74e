"""The mulayoff2020 experiment: registration, a cheap step end to end, and its helpers against
independent computations (NumPy losses, dl.curvature's dense Hessian, GD divergence near unstable minima)."""

from pathlib import Path
from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import _relu_denoiser as relu
from dlnlab.experiments import get
from dlnlab.experiments import mulayoff2020 as m
from dlnlab.experiments._base import Context
from dlnlab.theory import flat


def test_registered_with_all_claim_steps():
    exp = get("mulayoff2020")
    names = [s.__name__ for s in exp.steps]
    assert names == ["closed_form", "resnet_zero_init", "init_scale", "non_whitened", "gd_stability",
                     "relu_denoiser", "figures"]
    assert "Mulayoff" in exp.reference and "@inproceedings" in exp.bibtex


def test_problem_has_zero_minimum_at_target(rng):
    T = m.nonsymmetric_target(3)
    S = np.diag([1.0, 2.0, 5.0, 10.0])
    prob = m.problem(T, S)
    assert float(prob.cost(jnp.asarray(T))) == pytest.approx(0.0, abs=1e-10)
    assert flat.target(prob) == pytest.approx(T, abs=1e-12)
    T_sym, _ = m.symmetric_target(0)
    assert np.linalg.eigvalsh(T_sym) == pytest.approx([0.6, 1.0, 1.5, 2.5])


def test_non_whitened_step_records_the_boundary(tmp_path: Path):
    ctx = Context(paper="mulayoff2020", out=tmp_path, quick=True)
    m.non_whitened(ctx)
    (claim,) = ctx.claims
    assert claim.claim == "non_whitened_boundary" and claim.passed
    row = ctx.rows[0]
    # the zero-init limit is the balanced minimum, strictly sharper than the flattest one
    assert row["lambda"] == pytest.approx(row["lambda_balanced"], rel=1e-3)
    assert row["ratio"] > 1.5
    m._STATE.clear()


def _scalar_run(ws, status="converged"):
    return SimpleNamespace(params=tuple(jnp.full((1, 1), w) for w in ws), status=status)


def test_stays_converged_rejects_unstable_minima():
    # scalar chain N=3, t=2: the flattest minimum w_i = 2^(1/3) has sharpness 2*3*2^(4/3)
    eta_c = 2 / (2 * 3 * 2 ** (4 / 3))
    w = 2 ** (1 / 3)
    near = [w * (1 + 1e-9), w, 2 / (w * w * (1 + 1e-9)) * (1 + 1e-10)]
    runs = [_scalar_run(near), _scalar_run(near), _scalar_run(near, status="max_steps")]
    ok = m._stays_converged(runs, [0.98 * eta_c, 1.02 * eta_c, 0.98 * eta_c], 2.0)
    assert ok.tolist() == [True, False, False]


def test_relu_loss_and_sharpness_match_independent_computations():
    X, Y = relu.digits_denoising(n=40, noise=0.5, seed=1)
    assert X.shape == (40, 64) and float(jnp.max(Y)) <= 1.0
    assert float(jnp.std(X - Y)) == pytest.approx(0.5, rel=0.05)
    params = relu.init(0, (64, 3, 3, 64), gain=1.0)
    Xn, Yn = np.asarray(X), np.asarray(Y)
    h = Xn
    for W in params[:-1]:
        h = np.maximum(h @ np.asarray(W).T, 0.0)
    out = h @ np.asarray(params[-1]).T
    assert float(relu.loss(params, X, Y)) == pytest.approx(np.mean(np.sum((out - Yn) ** 2, axis=1)), rel=1e-12)
    dense = dl.curvature.sharpness(lambda p: relu.loss(p, X, Y), params, method="exact")
    assert relu.top_eigenvalue(params, X, Y) == pytest.approx(dense, rel=1e-7)
    # GD below 2/sharpness decreases the loss; the scanned GD matches plain Python steps
    p1, losses, _ = relu.train_gd(params, X, Y, lr=0.5 / dense, steps=4, record_every=1)
    grad = jax.jit(jax.grad(relu.loss))
    manual = params
    for _ in range(4):
        g = grad(manual, X, Y)
        manual = tuple(W - 0.5 / dense * gw for W, gw in zip(manual, g, strict=True))
    for a, b in zip(p1, manual, strict=True):
        assert np.asarray(a) == pytest.approx(np.asarray(b), abs=1e-12)
    assert losses[-1] < float(relu.loss(params, X, Y))


def test_gl_minima_are_global_minima_and_balanced_without_gl(rng):
    T = rng.normal(size=(2, 3))
    S = np.diag([0.5, 1.5, 6.0])
    prob = m.problem(T, S)
    for widths, strength in [((3, 4, 3, 2), 0.0), ((3, 4, 3, 2), 0.6), ((3, 3, 5, 3, 2), 1.0)]:
        Ws = m._gl_minimum(rng, T, widths, strength)
        assert [W.shape for W in Ws] == [(widths[i + 1], widths[i]) for i in range(len(widths) - 1)]
        A = np.linalg.multi_dot(Ws[::-1])
        np.testing.assert_allclose(A, T, atol=1e-10)
        assert float(prob.cost(jnp.asarray(A))) == pytest.approx(0.0, abs=1e-10)
        gaps = [np.linalg.norm(Ws[i + 1].T @ Ws[i + 1] - Ws[i] @ Ws[i].T) for i in range(len(Ws) - 1)]
        assert (max(gaps) < 1e-10) == (strength == 0.0)  # balanced exactly when no GL map was applied


def test_chain_hessian_and_gd_path_match_the_objective(rng):
    """The written-out scalar-chain Hessian equals dl.curvature's dense Hessian of dl.Objective, and the NumPy
    GD path follows dl.Objective's gradient."""
    obj = dl.Objective(dl.Regression.from_moments([[1.0]], [[2.0]], 4.0))
    w = rng.uniform(0.3, 2.0, size=(4, 3))
    H = m._chain_hessian(w)
    for row, Hr in zip(w, H, strict=True):
        params = tuple(np.full((1, 1), x) for x in row)
        np.testing.assert_allclose(Hr, dl.curvature.hessian(obj, params), rtol=1e-12, atol=1e-12)
    w0, eta = np.array([0.1, 1.8, 1.8]), 0.03
    lam = m._chain_gd_sharpness(w0, [eta], 2)
    params = tuple(np.full((1, 1), x) for x in w0)
    for k in range(3):
        assert lam[k, 0] == pytest.approx(np.linalg.eigvalsh(dl.curvature.hessian(obj, params))[-1], rel=1e-12)
        params = tuple(W - eta * g for W, g in zip(params, obj.grad(params), strict=True))


def test_digit_images_are_sklearns():
    from sklearn.datasets import load_digits

    from dlnlab.experiments._digits import digits

    images, labels = digits()
    assert images.shape == (1797, 64)
    np.testing.assert_array_equal(images, load_digits().data)
    np.testing.assert_array_equal(labels, load_digits().target)


def test_relu_random_baseline_is_the_random_subspace_null():
    """The baseline of the coupling claim has the distribution of the overlap of two independent uniformly random
    8-dim subspaces of R^32 (drawn here by QR of Gaussian matrices, not through SVDs of He nets): mean k/h."""
    base = relu.random_baseline((64, 32, 32, 64), 8, n=300, seed=3)
    assert base.shape == (300, 2)
    rng = np.random.default_rng(5)
    ref = []
    for _ in range(2000):
        U = np.linalg.qr(rng.normal(size=(32, 8)))[0]
        V = np.linalg.qr(rng.normal(size=(32, 8)))[0]
        ref.append(np.sum((U.T @ V) ** 2) / 8)
    ref = np.asarray(ref)
    assert ref.mean() == pytest.approx(8 / 32, abs=4 * ref.std() / np.sqrt(ref.size))
    for col in base.T:
        assert col.mean() == pytest.approx(8 / 32, abs=4 * ref.std() / np.sqrt(col.size))
        assert col.std(ddof=1) == pytest.approx(ref.std(ddof=1), rel=0.2)
    # an exactly coupled pair (W_2 = W_1^T up to scale) scores 1, far above the baseline
    W1 = relu.init(0, (64, 32), gain=1.0)[0]
    assert flat.subspace_coupling((W1, 3.0 * W1.T), 8) == pytest.approx([1.0], abs=1e-12)

"""The ziyin2022 experiment: registration, its helpers against independent computations, and that
its cheap steps pass with the real theory and fail with a slightly wrong one."""

import jax
import numpy as np
import optax
import pytest

import dlnlab as dl
from dlnlab.experiments import get
from dlnlab.experiments import ziyin2022 as z
from dlnlab.experiments._base import Context
from dlnlab.theory import exact


def test_registered():
    exp = get("ziyin2022")
    assert exp.name == "ziyin2022" and len(exp.steps) >= 8
    assert "Ziyin" in exp.reference and "@inproceedings" in exp.bibtex


def test_problem_is_anisotropic_and_realisable():
    prob = z.problem()
    a = np.linalg.eigvalsh(np.asarray(prob.Sxx))
    assert a == pytest.approx([0.2, 0.5, 1.0], rel=1e-12)
    m = np.asarray(prob.Syx)[0]
    # moments of some data set: E[xy]^T Sxx^-1 E[xy] <= E[y^2] (here label noise 0.2)
    assert float(prob.Syy) - m @ np.linalg.solve(np.asarray(prob.Sxx), m) == pytest.approx(0.2)


def test_mask_sampler_matches_exact_noise_moments():
    """Monte Carlo with the experiment's NumPy sampler vs the exact noise-averaged loss."""
    prob = z.problem()
    for noise in (dl.Dropout(0.3), dl.MultiplicativeNoise(0.5)):
        params = dl.Net((3, 4, 2, 1)).init(jax.random.key(1), scheme="gaussian", scale=0.7)
        V = z._mask_samples(params, noise, np.random.default_rng(0), 100_000)
        v = np.asarray(dl.nets.end_to_end(params))[0]
        Sxx = np.asarray(prob.Sxx)
        dv = V - v
        mc = float(np.mean(np.sum((dv @ Sxx) * dv, axis=1)))
        exact_var = float(
            dl.Objective(prob, noise=noise).value(params) - dl.Objective(prob).value(params)
        )
        assert np.abs(V.mean(axis=0) - v).max() < 0.01 * np.abs(v).max()
        assert mc == pytest.approx(exact_var, rel=0.02)


def test_scheduled_decay_equals_objective_decay():
    """A constant schedule reproduces GD on the objective with weight decay, step for step."""
    prob = z.problem()
    params = dl.Net((3, 4, 4, 1)).init(jax.random.key(0), scheme="fan_in", scale=1.0)
    opt = optax.chain(z.scheduled_decay([0.2, 0.2], 10), optax.sgd(0.03))
    a = dl.train(dl.Objective(prob), params, dl.GD(optimizer=opt, steps=40))
    b = dl.train(dl.Objective(prob, weight_decay=0.2), params, dl.GD(lr=0.03, steps=40))
    for Wa, Wb in zip(a.params, b.params, strict=True):
        assert np.asarray(Wa) == pytest.approx(np.asarray(Wb), rel=1e-12, abs=1e-14)
    # a staircase changes the decay after `per` steps
    opt = optax.chain(z.scheduled_decay([0.0, 5.0], 3), optax.sgd(0.1))
    state = opt.init(params)
    zero = jax.tree.map(np.zeros_like, params)
    upd = []
    for _ in range(4):
        u, state = opt.update(zero, state, params)
        upd.append(float(np.abs(np.asarray(u[0])).max()))
    assert upd[:3] == [0.0, 0.0, 0.0] and upd[3] > 0


def _run(step, tmp_path):
    ctx = Context(paper="ziyin2022", out=tmp_path, quick=True, seed=0)
    step(ctx)
    return {c.claim: c for c in ctx.claims}


def test_critical_decay_step_passes_and_catches_a_wrong_closed_form(tmp_path, monkeypatch):
    claims = _run(z.step_critical_decay, tmp_path)
    assert set(claims) == {"6_closed_form_vs_numerical", "6_depth_law", "6_width_law"}
    assert all(c.passed for c in claims.values())
    assert (tmp_path / "figures" / "ziyin2022_critical_decay.png").exists()
    real = exact.critical_weight_decay

    def off_by_1e6(*args, **kw):  # a closed form wrong in the sixth digit
        r = real(*args, **kw)
        if r.method == "closed_form" and r.hidden_layers >= 2:
            return exact.CriticalDecay(
                r.critical * (1 + 1e-6), r.spinodal, r.method, r.hidden_layers
            )
        return r

    monkeypatch.setattr(exact, "critical_weight_decay", off_by_1e6)
    assert not _run(z.step_critical_decay, tmp_path)["6_closed_form_vs_numerical"].passed


def test_loss_slices_step(tmp_path, monkeypatch):
    claims = _run(z.step_loss_slices, tmp_path)
    assert claims["slices_curvature_at_zero"].passed
    # with the weight decay counted with a 1/2 (a normalisation slip) the claim must fail
    real = dl.Objective

    def halved(prob, *, weight_decay=0.0, **kw):
        return real(prob, weight_decay=np.asarray(weight_decay) / 2, **kw)

    monkeypatch.setattr(z, "Objective", halved)
    assert not _run(z.step_loss_slices, tmp_path)["slices_curvature_at_zero"].passed


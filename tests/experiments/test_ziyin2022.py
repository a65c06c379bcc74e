"""The ziyin2022 experiment: conformance, its helpers against independent computations, and planted 1 % errors in
the theory quantities it is about (critical weight decay, the D = 1 Hessian at zero, the prediction variance, the
minimiser's layer norms, the global minimum loss) each failing a claim."""

import dataclasses

import jax
import numpy as np
import optax
import pytest

import dlnlab as dl
from dlnlab.experiments import get
from dlnlab.experiments import ziyin2022 as z
from dlnlab.experiments._context import Context
from dlnlab.experiments.ziyin2022 import _claims_exact, _claims_gd, _claims_noise, _runs
from dlnlab.theory import exact

TINY = dict(z.SIZES["quick"], fracs=[0.1, 0.97, 1.03], gd_steps=300, init_fracs=[0.3], init_seeds=1,
            sweep_levels=2, sweep_per=50, bf_families=1, bf_instances=1, bf_restarts=1, sgd_runs=1, sgd_steps=100,
            mc_samples=2000, numerical_depths=[2], max_depth=6, var_widths=[1, 2, 4], var_noises=[0.1, 1.0, 10.0],
            var_depths=[1, 2, 3], struct_seeds=1, struct_steps=100)


def _ctx(tmp_path, **sizes):
    exp = dataclasses.replace(z.EXPERIMENT, sizes={"quick": dict(TINY, **sizes), "full": z.SIZES["full"]})
    return Context(exp, out=tmp_path, mode="quick", seed=0)


def _claims(ctx, fn, state=None):
    fn(ctx, {"size": ctx.size} if state is None else state)
    return {c.claim: c for c in ctx.claims}


def test_conforms_with_small_sizes(tmp_path):
    exp = dataclasses.replace(z.EXPERIMENT, sizes={"quick": TINY, "full": z.SIZES["full"]})
    res = dl.check_experiment(exp, out=tmp_path)
    assert {c.claim for c in res.claims} >= {"6_tie_at_gamma_star", "2_hessian_at_zero_D1", "8_minimiser_structure",
                                             "5_variance_vanishes_with_depth", "7_common_inits_stuck"}


def test_registered_on_the_contract():
    exp = get("ziyin2022")
    assert isinstance(exp, dl.Experiment) and exp is z.EXPERIMENT
    assert set(exp.sizes["quick"]) == set(exp.sizes["full"])
    assert "7_common_inits_stuck" in exp.not_reproduced


def test_depth_convention_hidden_layers_to_widths():
    w = z.widths_for(3, 6)
    assert w == (3, 6, 6, 6, 1) and len(w) - 1 == 4  # D = 3 hidden layers, L = 4 weight matrices
    assert exact.solve(z.problem(), w, 0.05).hidden_layers == 3


def test_problem_is_anisotropic_and_realisable():
    prob = z.problem()
    assert np.linalg.eigvalsh(np.asarray(prob.Sxx)) == pytest.approx([0.2, 0.5, 1.0], rel=1e-12)
    m = np.asarray(prob.Syx)[0]
    assert float(prob.Syy) - m @ np.linalg.solve(np.asarray(prob.Sxx), m) == pytest.approx(0.2)


def test_mask_sampler_matches_exact_noise_moments():
    """Monte Carlo with the experiment's sampler vs the exact noise-averaged loss of dl.Objective."""
    prob = z.problem()
    for noise in (dl.Dropout(0.3), dl.MultiplicativeNoise(0.5)):
        params = dl.Net((3, 4, 2, 1)).init(jax.random.key(1), scheme="gaussian", scale=0.7)
        V = _claims_noise.mask_samples(params, noise, np.random.default_rng(0), 100_000)
        v = np.asarray(dl.nets.end_to_end(params))[0]
        dv = V - v
        mc = float(np.mean(np.sum((dv @ np.asarray(prob.Sxx)) * dv, axis=1)))
        assert np.abs(V.mean(axis=0) - v).max() < 0.01 * np.abs(v).max()
        assert mc == pytest.approx(_claims_noise.exact_variance(prob, (3, 4, 2, 1), 0.0, noise, params), rel=0.02)


def test_zero_hessian_formula_against_finite_differences():
    """The paper's D = 1 eigenvalues against a finite-difference Hessian of dl.Objective at zero (not autodiff)."""
    prob = z.problem()
    e = float(np.linalg.norm(np.asarray(prob.Syx)))
    gw, gu = 0.4, 1.3
    obj = dl.Objective(prob, weight_decay=(gw, gu))
    n, h = 3 * 2 + 2, 1e-4
    shapes = [(2, 3), (1, 2)]

    def f(x):
        return float(obj.value((x[:6].reshape(shapes[0]), x[6:].reshape(shapes[1]))))

    H = np.zeros((n, n))
    for i in range(n):
        for j in range(n):
            ei, ej = np.eye(n)[i] * h, np.eye(n)[j] * h
            H[i, j] = (f(ei + ej) - f(ei - ej) - f(ej - ei) + f(-ei - ej)) / (4 * h * h)
    want = _claims_exact.zero_hessian_one_hidden(gw, gu, e, 2, 3)
    assert np.linalg.eigvalsh(H) == pytest.approx(want, abs=1e-6)


def test_scheduled_decay_equals_objective_decay():
    prob = z.problem()
    params = dl.Net((3, 4, 4, 1)).init(jax.random.key(0), scheme="fan_in", scale=1.0)
    opt = optax.chain(z.scheduled_decay([0.2, 0.2], 10), optax.sgd(0.03))
    a = dl.train(dl.Objective(prob), params, dl.GD(optimizer=opt, steps=40))
    b = dl.train(dl.Objective(prob, weight_decay=0.2), params, dl.GD(lr=0.03, steps=40))
    for Wa, Wb in zip(a.params, b.params, strict=True):
        assert np.asarray(Wa) == pytest.approx(np.asarray(Wb), rel=1e-12, abs=1e-14)


def test_hessian_one_hidden_passes_and_a_wrong_formula_fails(tmp_path, monkeypatch):
    assert all(c.passed for c in _claims(_ctx(tmp_path), _claims_exact.hessian_one_hidden).values())
    real = _claims_exact.zero_hessian_one_hidden
    monkeypatch.setattr(_claims_exact, "zero_hessian_one_hidden", lambda *a: real(*a) * 1.01)
    assert not _claims(_ctx(tmp_path), _claims_exact.hessian_one_hidden)["2_hessian_at_zero_D1"].passed


@pytest.mark.parametrize("wrong", ["one_percent", "depth_plus_one", "depth_minus_one"])
def test_critical_decay_catches_a_wrong_gamma_star(tmp_path, monkeypatch, wrong):
    claims = _claims(_ctx(tmp_path), _claims_exact.critical_decay)
    assert claims["6_tie_at_gamma_star"].passed and claims["6_closed_form_vs_numerical"].passed
    real = exact.critical_weight_decay

    def planted(prob, widths, *a, **kw):
        r = real(prob, widths, *a, **kw)
        if wrong == "one_percent" or r.hidden_layers < 2 or kw.get("method") == "numerical":
            return dataclasses.replace(r, critical=r.critical * (1.01 if wrong == "one_percent" else 1.0))
        w = tuple(widths)
        w = w[:1] + w[1:2] * (len(w) - 1 if wrong == "depth_plus_one" else len(w) - 3) + w[-1:]
        if len(w) < 4:
            return r
        return dataclasses.replace(r, critical=real(prob, w, *a, **kw).critical)

    monkeypatch.setattr(exact, "critical_weight_decay", planted)
    assert not _claims(_ctx(tmp_path), _claims_exact.critical_decay)["6_tie_at_gamma_star"].passed


def test_variance_claims_catch_a_wrong_noise_variance(tmp_path, monkeypatch):
    claims = _claims(_ctx(tmp_path), _claims_noise.variance_limits)
    assert claims["5_variance_formula"].passed
    real = exact.Solution.prediction_variance
    monkeypatch.setattr(exact.Solution, "prediction_variance", lambda s, x=None: real(s, x) * 1.01)
    assert not _claims(_ctx(tmp_path), _claims_noise.variance_limits)["5_variance_formula"].passed


def _closed_form_structure_piece(size):
    """The structure piece of a run that ended exactly at the closed form (random hypercube signs per seed)."""
    prob, widths = z.problem(), z.widths_for(size["struct_depth"], size["width"])
    out = {}
    for tag, noise in (("noisy", dl.Dropout(size["struct_p"])), ("clean", None)):
        g = size["struct_frac"] * exact.critical_weight_decay(prob, widths, noise).critical
        sol = exact.solve(prob, widths, g, noise)
        P = [sol.params(key=jax.random.key(i)) for i in range(size["struct_seeds"])]
        if tag == "clean":  # the noiseless family: rescale hidden units unequally (same loss)
            P = [(W1 * np.arange(1, 7)[:, None], W2 / np.arange(1, 7)[None, :] * np.arange(1, 7)[:, None],
                  W3 / np.arange(1, 7)[None, :]) for W1, W2, W3 in P]
        out[f"params_{tag}"] = tuple(np.stack([np.asarray(p[i]) for p in P]) for i in range(len(widths) - 1))
        out[f"loss_{tag}"] = np.full(len(P), sol.loss)
    return out


def test_structure_claim_pins_the_layer_norms(tmp_path, monkeypatch):
    ctx = _ctx(tmp_path, struct_seeds=2)
    state = {"size": ctx.size, "structure": _closed_form_structure_piece(ctx.size)}
    claims = _claims(ctx, _claims_noise.minimiser_structure, state)
    assert claims["8_minimiser_structure"].passed
    real = exact.Solution.layer_norms_sq
    monkeypatch.setattr(exact.Solution, "layer_norms_sq", property(lambda s: real.fget(s) * 1.01))
    ctx = _ctx(tmp_path, struct_seeds=2)
    assert not _claims(ctx, _claims_noise.minimiser_structure, state)["8_minimiser_structure"].passed


def test_one_hidden_layer_claims_catch_a_wrong_global_minimum(tmp_path, monkeypatch):
    ctx = _ctx(tmp_path, gd_steps=8000)
    piece = _runs.gd_depth(hidden_layers=1, width=6, fracs=[0.1, 0.97, 1.03], small_scheme="fan_in_0.02",
                           init_fracs=[], init_schemes=[], init_seeds=0, steps=8000, seed=0)
    state = {"size": ctx.size, "gd": {1: piece}}
    assert all(c.passed for c in _claims(ctx, _claims_gd.one_hidden_layer, state).values())
    real = exact.Solution.loss
    monkeypatch.setattr(exact.Solution, "loss", property(lambda s: real.fget(s) * 1.01))
    assert not _claims(_ctx(tmp_path), _claims_gd.one_hidden_layer, state)["1_gd_reaches_closed_form"].passed

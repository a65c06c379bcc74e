"""dl.summaries: every named summary recorded by the engine equals the diagnostics/curvature of the recorded
params, at every record; sharpness tracked by warm-started Lanczos matches dense Hessian eigenvalues."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.flatten_util import ravel_pytree

import dlnlab as dl
from dlnlab.errors import ConfigError

ALL = ("loss", "grad_norm", "singular_values", "layer_norms", "balancedness", "alignment", "sharpness")


@pytest.fixture
def setup(make_data):
    X, Y = make_data(d_in=3, d_out=2, n=60)
    obj = dl.Objective(dl.Regression.from_data(X, Y), weight_decay=0.01)
    p0 = dl.Net((3, 5, 4, 2)).init(jax.random.key(0), scheme="gaussian", scale=0.5)  # unequal widths
    return obj, p0


def dense_top(obj, params):
    x, unravel = ravel_pytree(params)
    return np.linalg.eigvalsh(np.asarray(_hessian(obj, x, unravel)))[-1]


@eqx.filter_jit
def _hessian(obj, x, unravel):
    return jax.hessian(lambda y: obj.value(unravel(y)))(x)


def params_at(obj, p0, lr, steps):
    """GD replayed by hand (independent of the engine) to the given step counts."""
    grad = eqx.filter_jit(lambda o, p: o.grad(p))
    out, p, done = {}, tuple(jnp.asarray(W) for W in p0), 0
    for s in sorted(steps):
        while done < s:
            p = tuple(W - lr * G for W, G in zip(p, grad(obj, p)))
            done += 1
        out[s] = p
    return out


def test_every_named_summary_at_every_record_matches_the_diagnostics(setup):
    obj, p0 = setup
    run = dl.train(obj, p0, dl.GD(lr=0.03, steps=300), record=dl.Record(n=6, summaries=ALL))
    assert set(run.history) == set(ALL)
    ref = params_at(obj, p0, 0.03, [int(t) for t in run.times])
    for i, t in enumerate(run.times):
        p = ref[int(t)]
        np.testing.assert_allclose(run.history["loss"][i], obj.value(p), rtol=1e-10)
        g = obj.grad(p)
        np.testing.assert_allclose(run.history["grad_norm"][i], np.sqrt(sum(np.sum(np.asarray(x) ** 2) for x in g)),
                                   rtol=1e-9)
        A = np.asarray(p[2] @ p[1] @ p[0])
        np.testing.assert_allclose(run.history["singular_values"][i], np.linalg.svd(A, compute_uv=False),
                                   rtol=1e-9, atol=1e-12)
        np.testing.assert_allclose(run.history["layer_norms"][i], [np.linalg.norm(np.asarray(W)) for W in p],
                                   rtol=1e-10)
        np.testing.assert_allclose(run.history["balancedness"][i], dl.diagnostics.balancedness(p).normalised,
                                   rtol=1e-9)
        np.testing.assert_allclose(run.history["alignment"][i], dl.diagnostics.alignment(p), rtol=1e-8, atol=1e-10)
        # the tracked sharpness against a dense eigendecomposition (an independent computation)
        np.testing.assert_allclose(run.history["sharpness"][i], dense_top(obj, p), rtol=1e-9)


def test_sharpness_tracks_through_edge_of_stability_against_curvature(setup):
    """A step size past 2/sharpness makes the spectrum move fast (and the trajectory chaotic, so the params are
    recorded alongside); 12 HVPs per warm record still track it, and dl.curvature.top_eigenvalues agrees at every
    record."""
    obj, p0 = setup
    lam0 = dense_top(obj, p0)
    _, unravel = ravel_pytree(p0)

    def flat(params):
        return ravel_pytree(params)[0]

    run = dl.train(obj, p0, dl.GD(lr=1.9 / lam0, steps=120),
                   record=dl.Record(n=12, summaries=("loss", flat, dl.summaries.Sharpness(iterations=12))))
    for i in range(len(run.times)):
        top = dl.curvature.top_eigenvalues(obj, unravel(jnp.asarray(run.history["flat"][i])), k=1,
                                           method="exact").values[0]
        np.testing.assert_allclose(run.history["sharpness"][i], top, rtol=1e-9)
    assert np.ptp(run.history["sharpness"]) > 0.05 * lam0  # the spectrum moved


def test_sharpness_of_a_larger_net_needs_the_warm_start(make_data):
    """With more parameters than HVPs per record (here 8 of ~200) the warm start is what makes it exact."""
    X, Y = make_data(d_in=6, d_out=4, n=80)
    obj = dl.Objective(dl.Regression.from_data(X, Y))
    p0 = dl.Net((6, 12, 10, 4)).init(jax.random.key(1), scheme="gaussian", scale=0.4)
    run = dl.train(obj, p0, dl.GD(lr=0.01, steps=200), record=dl.Record(n=8, summaries=("sharpness",)))
    ref = params_at(obj, p0, 0.01, [int(t) for t in run.times])
    tops = [dense_top(obj, ref[int(t)]) for t in run.times]
    np.testing.assert_allclose(run.history["sharpness"], tops, rtol=1e-6)
    assert run.history["sharpness"].max() > 1.2 * run.history["sharpness"].min()  # it really moved


def test_flow_records_sharpness_cold(setup):
    obj, p0 = setup
    run = dl.train(obj, p0, dl.Flow(t1=2.0, rtol=1e-10, atol=1e-12),
                   record=dl.Record(n=3, summaries=("sharpness", "singular_values")))
    assert "loss" not in run.history
    flow = dl.train(obj, p0, dl.Flow(t1=2.0, rtol=1e-10, atol=1e-12))
    np.testing.assert_allclose(run.history["sharpness"][-1], dense_top(obj, flow.params), rtol=1e-8)


def test_user_summaries_and_name_clashes(setup):
    obj, p0 = setup

    def first_entry(params):
        return params[0][0, 0]

    def pair(params):
        return {"w0_sq": jnp.sum(params[0] ** 2), "w1_sq": jnp.sum(params[1] ** 2)}

    run = dl.train(obj, p0, dl.GD(lr=0.01, steps=10), record=dl.Record(n=2, summaries=("loss", first_entry, pair)))
    assert set(run.history) == {"loss", "first_entry", "w0_sq", "w1_sq"}
    np.testing.assert_allclose(run.history["w1_sq"][-1], np.sum(np.asarray(run.params[1]) ** 2), rtol=1e-12)
    np.testing.assert_allclose(run.history["first_entry"][0], p0[0][0, 0])
    with pytest.raises(ConfigError, match="'loss'.*twice"):
        dl.train(obj, p0, dl.GD(lr=0.01, steps=2),
                 record=dl.Record(n=1, summaries=("loss", dl.summaries.Function("loss", first_entry))))
    with pytest.raises(ConfigError, match="given twice"):
        dl.Record(summaries=("loss", "loss"))
    with pytest.raises(ConfigError, match="Sharpness.iterations"):
        dl.summaries.Sharpness(iterations=0)


def test_sharpness_recorded_every_step_on_a_period_two_orbit():
    """Edge of stability (docs/tutorials/sharpness.md): with 2/eta = 0.9 lambda* GD ends on a period-two orbit
    whose two points have top eigenvectors in different modes. Recorded every step, the tracked sharpness (8 HVPs
    per record) must equal the exact top eigenvalue at every record; warm-starting from the previous record's
    vector alone found 12.746 instead of 21.458 at the even points (the Krylov space stayed in the other mode)."""
    from dlnlab.theory import flat as flat_theory

    prob = dl.Regression.from_moments(np.eye(3), np.diag([2.0, 1.0, 0.5]), 5.25)
    obj = dl.Objective(prob)
    lr = 2 / (0.9 * flat_theory.flattest_sharpness(prob, 3))
    p0 = dl.Net((3, 8, 8, 3)).init(jax.random.key(1), scheme="gaussian", scale=0.15)
    p_mid = dl.train(obj, p0, dl.GD(lr=lr, steps=2900)).params
    _, unravel = ravel_pytree(p_mid)

    def flat(params):
        return ravel_pytree(params)[0]

    run = dl.train(obj, p_mid, dl.GD(lr=lr, steps=60), record=dl.Record(n=61, summaries=(flat, "sharpness")))
    exact = np.array([dl.curvature.top_eigenvalues(obj, unravel(jnp.asarray(v)), k=1, method="exact").values[0]
                      for v in run.history["flat"]])
    # the first warm record after the cold one has no orbit history yet (its start is the cold record's second
    # Ritz vector): 1e-6 there, 1e-9 once both points of the orbit have been seen
    np.testing.assert_allclose(run.history["sharpness"][:2], exact[:2], rtol=1e-6)
    np.testing.assert_allclose(run.history["sharpness"][2:], exact[2:], rtol=1e-9)
    assert exact[::2].min() > 2 / lr > exact[1::2].max()  # really a two-cycle straddling 2/eta

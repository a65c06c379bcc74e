"""Fast checks of the ji2019 experiment's building blocks (the full claims run in the CLI)."""

import numpy as np

from dlnlab import Classification, Objective
from dlnlab.experiments import get
from dlnlab.experiments import ji2019 as ex
from dlnlab.theory import margin as mg


def test_registered_with_all_claim_steps():
    exp = get("ji2019")
    assert [s.__name__ for s in exp.steps] == [
        "step_limits",
        "step_conservation",
        "step_lemma2",
        "step_depth_and_loss",
        "step_large_init",
        "step_digits",
    ]


def test_datasets_are_separable_and_normalised():
    X, y = ex.separable_data(0, 40, 2, teacher=(1.0, 0.5))
    assert np.isclose(np.linalg.norm(X, axis=1).max(), 1.0) and set(np.unique(y)) == {-1.0, 1.0}
    mm = mg.max_margin(X, y)
    assert mm.certificate.ok and mm.spans_input
    Xd, yd = ex.digits_pair(0, 1)
    assert Xd.shape == (360, 64) and np.isclose(np.linalg.norm(Xd, axis=1).max(), 1.0)
    from sklearn.datasets import load_digits  # the data file read directly is scikit-learn's data

    dg = load_digits()
    pick = (dg.target == 0) | (dg.target == 1)
    np.testing.assert_allclose(Xd * np.linalg.norm(dg.data[pick], axis=1).max(), dg.data[pick], rtol=1e-14)
    np.testing.assert_array_equal(yd, np.where(dg.target[pick] == 0, 1.0, -1.0))
    assert mg.max_margin(Xd, yd).certificate.ok


def test_short_fit_turns_towards_max_margin():
    """A short loss-scaled run already aligns the predictor and the layers (claim 1, reduced)."""
    X, y = ex.separable_data(0, 40, 2, teacher=(1.0, 0.5))
    run, p0, mm, obj = ex.fit(X, y, steps=1100)
    assert float(obj.value(p0)) <= np.log(2.0) + 1e-12  # sign flip gives Assumption 2 here
    h = run.history
    assert h["loss"][-1] < 1e-20
    assert h["cos"][-1] > 0.99999 and h["rank_one"][-1].min() > 0.998
    assert np.all(h["margin_ratio"][-1] <= 1 + 1e-9)  # never above the SVM margin


def test_layer_quantities_match_the_library_diagnostics():
    """The NumPy quantities computed from recorded layers equal dl.diagnostics / theory.margin."""
    import jax

    from dlnlab.diagnostics import alignment, rank_one_ratio

    X, y = ex.separable_data(3, 30, 3)
    mm = mg.max_margin(X, y)
    rng = np.random.default_rng(1)
    stacks = [rng.normal(size=(5, m, n)) for n, m in ((3, 4), (4, 6), (6, 1))]
    q = ex.layer_quantities(stacks, mm.direction, X, y, mm.margin)

    def library(*p):
        return {
            "w": mg.predictor(p),
            "cos": mg.max_margin_cosine(p, mm.direction),
            "margin_ratio": mg.normalized_margin(p, X, y) / mm.margin,
            "e2e_alignment": mg.end_to_end_alignment(p),
            "rank_one": rank_one_ratio(p),
            "alignment": alignment(p),
            **mg.lemma2_terms(p),
        }

    lib = jax.jit(jax.vmap(library))(*stacks)  # one compilation for all times and quantities
    assert set(lib) <= set(q)
    for k, v in lib.items():
        np.testing.assert_allclose(q[k], v, rtol=1e-10, atol=1e-14, err_msg=k)


def test_gd_drift_law_holds_and_catches_a_wrong_step():
    """The exact one-step law of the balance gaps holds along GD and fails for a misreported step."""
    X, y = ex.separable_data(0, 40, 2, teacher=(1.0, 0.5))
    obj = Objective(Classification(X, y), loss="logistic")
    p0 = ex.initial_params(obj, (2, 10, 10, 10, 1), scale=0.1, seed=0)
    ps, gs, etas = ex.gd_path(obj, p0, 900)
    assert np.isclose(etas[0], 1.0) and etas.max() > 1e20  # the floor at the start, then loss-scaled
    ok = ex.gd_drift_check(ps, gs, etas)
    assert ok["max_relative_error"] < 1e-6 and ok["accumulated_bound_holds"]
    bad = ex.gd_drift_check(ps, gs, 1.01 * etas)
    assert bad["max_relative_error"] > 1e-2


def test_runner_reuse_does_not_leak_between_data_sets():
    """Runs with the same shapes share one compiled runner: another data set in between leaves a
    repeated fit bit-identical, and the other data set gets its own answer."""
    X, y = ex.separable_data(0, 40, 2, teacher=(1.0, 0.5))
    X2, y2 = ex.separable_data(5, 40, 2, teacher=(0.3, -1.0))
    first = ex.fit(X, y, steps=1100)[0]  # the step count of test_short_fit: no extra compilation
    other = ex.fit(X2, y2, steps=1100)[0]
    again = ex.fit(X, y, steps=1100)[0]
    for k in ("loss", "W1", "W4", "cos"):
        np.testing.assert_array_equal(first.history[k], again.history[k])
    assert other.history["cos"][-1] > 0.99 and abs(first.history["w"][-1] @ other.history["w"][-1]) < (
        np.linalg.norm(first.history["w"][-1]) * np.linalg.norm(other.history["w"][-1]) * 0.9
    )

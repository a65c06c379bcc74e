"""Fast checks of the ji2019 experiment's building blocks (the full claims run in the CLI)."""

import numpy as np

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

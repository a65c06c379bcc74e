"""woodworth2020 on the experiment contract: it conforms, and a 1 % error planted in the theory it checks (the
Q_alpha minimiser, the min-l1 LP, the min-l2 pseudo-inverse) fails the claim about it.

The experiment runs here at tiny sizes (d = 40, n = 20) so that the three conformance runs stay fast on two cores;
the quick and full sizes are exercised by ``dlnlab reproduce woodworth2020 --quick``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import woodworth2020 as ww
from dlnlab.theory import diagonal

TINY = {"d": 40, "n": 20, "s": 2, "n_test": 200, "replicates": 2, "max_steps": 6000,
        "alphas_depth2": [0.1, 0.3, 1.0, 2.0, 3.0], "alphas_depth3": [0.3, 1.0, 2.0],
        "check_depth2": [0.1, 1.0], "check_depth3": [0.3, 1.0], "rich_alpha": 0.1, "limit_alpha": 1e-12,
        "kernel_alpha_depth2": 3.0, "kernel_alpha_depth3": 2.0, "theory_alphas": [1e-3, 3.0],
        "trend_below_1": [0.3], "trend_above_1": [2.0],
        "ratio_below_1": 0.9, "ratio_above_1": 0.7}
EXP = dataclasses.replace(ww.EXPERIMENT, sizes={"quick": TINY, "full": TINY})
PINNED = ("q_alpha_depth2", "q_alpha_depth3", "rich_limit_l1", "kernel_limit_l2")


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("woodworth2020")
    return out, dl.check_experiment(EXP, out=out)


def test_woodworth2020_conforms_and_its_theory_claims_pass(checked):
    _, res = checked
    outcome = {c.claim: c.outcome for c in res.claims}
    assert set(outcome) == {*PINNED, "flow_approaches_l1", "rich_generalises", "kernel_does_not",
                            "depth_closer_to_l1", "depth_closer_to_l2_above_1"}
    assert all(outcome[c] == "passed" for c in PINNED), outcome
    q = next(c for c in res.claims if c.claim == "q_alpha_depth2").to_dict()
    assert q["tolerance"] == {"kind": "at_most", "bound": ww.Q_TOL} and 0 <= q["measured"] <= ww.Q_TOL


def test_sizes_are_data():
    quick, full = ww.EXPERIMENT.sizes["quick"], ww.EXPERIMENT.sizes["full"]
    assert (quick["d"], full["d"], full["n"]) == (100, 1000, 100) and full["n_test"] == 2000
    for z in (quick, full, TINY):
        for depth in (2, 3):
            grid = z[f"alphas_depth{depth}"]
            assert set(z[f"check_depth{depth}"]) <= set(grid) and z[f"kernel_alpha_depth{depth}"] in grid
        assert z["rich_alpha"] in z["alphas_depth2"]
        for a in (*z["trend_below_1"], *z["trend_above_1"]):
            assert a in z["alphas_depth2"] and a in z["alphas_depth3"]


def test_the_problem_is_a_noise_free_sparse_regression():
    p = ww.problem(d=30, n=10, s=3, n_test=50, seed=[1, 2])
    assert np.count_nonzero(p["beta_star"]) == 3 and np.allclose(p["beta_star"][:3], 1 / np.sqrt(3))
    np.testing.assert_allclose(p["y"], p["X"] @ p["beta_star"], rtol=0, atol=1e-14)
    assert ww.test_error(p["beta_star"], p) == 0.0 and ww.test_error(np.zeros(30), p) == pytest.approx(1.0)


def _scaled(fn, *, field=None):
    def wrong(*args, **kwargs):
        out = fn(*args, **kwargs)
        if field is None:
            return 1.01 * out
        return dataclasses.replace(out, **{field: 1.01 * getattr(out, field)})
    return wrong


@pytest.mark.parametrize("name,wrong,fails", [
    ("implicit_bias", _scaled(diagonal.implicit_bias, field="beta"), {"q_alpha_depth2", "q_alpha_depth3",
                                                                       "rich_limit_l1"}),
    ("min_l1_interpolator", _scaled(diagonal.min_l1_interpolator), {"rich_limit_l1"}),
    ("min_l2_interpolator", _scaled(diagonal.min_l2_interpolator), {"kernel_limit_l2"}),
])
def test_a_one_percent_error_in_the_theory_fails_its_claim(checked, monkeypatch, name, wrong, fails):
    out, _ = checked
    monkeypatch.setattr(diagonal, name, wrong)
    res = dl.reproduce([EXP], out=out / "first", report=False)  # the stored flows, the planted theory
    assert res.pieces["woodworth2020"]["reused"] == 2
    outcome = {c.claim: c.outcome for c in res.claims}
    assert {c for c in PINNED if outcome[c] == "failed"} == fails, outcome
    assert res.exit_code == 1


def test_the_diagonal_sweepable_ends_at_the_theory_limit():
    """dlnlab sweep's diagonal_regression: its metrics against the theory computed here (a second route)."""
    from dlnlab.sweep._registry import get_sweepable

    fn = get_sweepable("diagonal_regression")
    base = {"d": 30, "n": 12, "s": 2, "n_test": 100, "depth": 2, "t1": 1e6, "max_steps": 6000, "seed": 0}
    configs = [{**base, "alpha": a, "data_seed": k} for a, k in ((1.0, 0), (0.1, 1))]
    for cfg, out in zip(configs, fn.run_batch(configs), strict=True):
        p = ww.problem(d=30, n=12, s=2, n_test=100, seed=cfg["data_seed"])
        beta = diagonal.implicit_bias(p["X"], p["y"], alpha=cfg["alpha"]).beta
        l2 = np.linalg.pinv(p["X"]) @ p["y"]
        assert out["status"] == "converged" and out["metrics"]["converged"] == 1.0
        assert out["metrics"]["l1_norm"] == pytest.approx(np.abs(beta).sum(), rel=1e-6)
        assert out["metrics"]["dist_l2"] == pytest.approx(np.linalg.norm(beta - l2) / np.linalg.norm(l2), rel=1e-4)
        assert out["metrics"]["test_error"] == pytest.approx(ww.test_error(beta, p), rel=1e-4)

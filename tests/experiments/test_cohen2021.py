"""cohen2021 on the experiment contract: it conforms, its theory-pinned claims pass at a tiny size, and a 1 % error
planted in the theory it checks (the flow limit's sharpness, the flattest sharpness, the stability threshold 2/eta)
fails a claim.

Tiny sizes (hidden width 4, two EoS step sizes, 400 steps) keep the three conformance runs fast on two cores; the
quick and full sizes are exercised by ``dlnlab reproduce cohen2021 --quick``.
"""

from __future__ import annotations

import dataclasses

import jax
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import cohen2021 as co
from dlnlab.sweep import _functions_eos as eos
from dlnlab.theory import flat

TINY = {**{k: co.SIZES["quick"][k] for k in ("x_spectrum", "t_spectrum", "noise", "geometry_seed", "init_scale",
                                              "stable_lr", "below_lr", "perturbation", "band")},
        "widths": [5, 4, 4, 3], "eos_lrs": [0.09, 0.1], "steps": 400, "keep_every": 5, "boundary_steps": 1500,
        "dense_checks": 4}
EXP = dataclasses.replace(co.EXPERIMENT, sizes={"quick": TINY, "full": TINY})
PINNED = ("flow_limit_sharpness", "stability_boundary", "regimes", "tracked_sharpness")


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("cohen2021")
    return out, dl.check_experiment(EXP, out=out)


def test_cohen2021_conforms_and_its_pinned_claims_pass(checked):
    _, res = checked
    outcome = {c.claim: c.outcome for c in res.claims}
    assert all(outcome[c] == "passed" for c in PINNED), outcome
    assert outcome["flow_sharpening_monotone"] == "not_reproduced", outcome
    flow = next(c for c in res.claims if c.claim == "flow_limit_sharpness").to_dict()
    assert flow["tolerance"] == {"kind": "close", "rtol": co.LIMIT_RTOL, "atol": 0.0}


def test_sizes_are_data_and_the_regimes_hold_for_the_quick_problem():
    quick, full = co.SIZES["quick"], co.SIZES["full"]
    assert set(quick) == set(full)
    prob, _, _ = eos.problem(**{k: quick[k] for k in ("x_spectrum", "t_spectrum", "noise", "geometry_seed")}, seed=3)
    depth = len(quick["widths"]) - 1
    lam_flow, lam_star = flat.balanced_sharpness(prob, depth), flat.flattest_sharpness(prob, depth)
    for z in (quick, full):
        assert all(lam_star < eos.edge(lr) < lam_flow for lr in z["eos_lrs"])
        assert eos.edge(z["stable_lr"]) > lam_flow and eos.edge(z["below_lr"]) < lam_star


def test_the_flow_limit_closed_form_is_the_dense_hessian_at_the_balanced_minimum():
    """balanced_sharpness (what flow_limit_sharpness pins) against dense eigh at the exact balanced minimum, on an
    unequal-width net and another data rotation (a second route to the same number)."""
    z = co.SIZES["quick"]
    prob, T, _ = eos.problem(**{k: z[k] for k in ("x_spectrum", "t_spectrum", "noise", "geometry_seed")}, seed=11)
    params = dl.Net((5, 7, 4, 3)).init(jax.random.key(2), scheme="balanced", target=T)
    dense = dl.curvature.top_eigenvalues(dl.Objective(prob), params, method="exact").values[0]
    assert dense == pytest.approx(flat.balanced_sharpness(prob, 3), rel=1e-10)
    assert flat.flattest_sharpness(prob, 3) < 0.7 * dense  # the EoS band is wide: lambda_* / lambda_flow = 0.58


def test_path_distance_is_the_distance_to_the_polyline():
    path = np.array([[0.0, 0.0], [2.0, 0.0], [2.0, 2.0]])
    pts = np.array([[1.0, 0.5], [3.0, 1.0], [2.0, 3.0]])
    expected = np.array([0.5, 1.0, 1.0]) / np.linalg.norm(pts, axis=1)
    np.testing.assert_allclose(co.path_distance(pts, path), expected, rtol=1e-12)


def _scaled(fn, factor):
    def wrong(*args, **kwargs):
        return factor * fn(*args, **kwargs)
    return wrong


@pytest.mark.parametrize("target,name,factor,fails", [
    (flat, "balanced_sharpness", 1.01, {"flow_limit_sharpness", "stability_boundary"}),
    (flat, "balanced_sharpness", 0.99, {"flow_limit_sharpness", "stability_boundary"}),
    (flat, "flattest_sharpness", 1.01, {"stability_boundary"}),
    (flat, "flattest_sharpness", 0.99, {"stability_boundary"}),
    (eos, "edge", 1.01, {"stability_boundary"}),
    (eos, "edge", 0.99, {"stability_boundary"}),
])
def test_a_one_percent_error_in_the_theory_fails_its_claim(checked, monkeypatch, target, name, factor, fails):
    out, _ = checked
    monkeypatch.setattr(target, name, _scaled(getattr(target, name), factor))
    res = dl.reproduce([EXP], out=out / "first", report=False)  # the stored runs, the planted theory
    assert res.pieces["cohen2021"]["reused"] >= 3  # flow, GD and the flattest minimum are not recomputed
    outcome = {c.claim: c.outcome for c in res.claims}
    assert {c for c in PINNED if outcome[c] == "failed"} == fails, outcome
    assert res.exit_code == 1

"""jacot2021 on the experiment contract: it conforms on a small size, its problems match their defining formulas,
the distance bounds bracket independent computations, and a 1 % error in a saddle's end-to-end matrix or loss
(planted in dlnlab.theory.saddles.saddle_sequence) fails the claims that pin them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import jacot2021 as J
from dlnlab.experiments.jacot2021 import _distances as D
from dlnlab.theory import saddles as sd

SMALL = {"sig3": [1e-3, 3e-3], "sig2": [1e-8, 1e-4], "sig4": [1e-2, 2e-2], "n_save": 150, "n_save_d2": 30,
         "escape_draws": 2, "widths": [8, 32], "gammas": [0.5, 1.5], "draws": 1, "small": 1e-3, "large": 0.5,
         "completion_width": 12, "dist_widths": [64, 256], "dist_gammas": [0.5, 1.5], "dist_draws": 1,
         "bracket_widths": [64, 256], "bracket_draws": 1}


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("jacot2021")
    exp = dataclasses.replace(J.EXPERIMENT, sizes={"quick": SMALL, "full": SMALL})
    return exp, out, dl.check_experiment(exp, out=out, repeat=False)


def test_conforms_and_the_saddle_claims_pass_on_a_small_size(checked):
    _, _, res = checked
    outcome = {c.claim: c.outcome for c in res.claims}
    for claim in ("staircase", "staircase_order", "plateau_states", "plateau_layer_ranks", "plateau_states_completion",
                  "plateau_loss_completion", "first_escape_depth3", "first_escape_rank_one_depth3"):
        assert outcome[claim] == "passed", (claim, [c for c in res.claims if c.claim == claim])
    # the tolerance written is the one applied
    c = next(c for c in res.claims if c.claim == "plateau_states")
    assert c.tolerance.bound == J._claims.STATE_TOL


def _planted(monkeypatch, *, scale_A=1.0, scale_loss=1.0):
    true = sd.saddle_sequence

    def wrong(prob, **kw):
        seq = true(prob, **kw)
        return [dataclasses.replace(s, end_to_end=s.end_to_end * scale_A, loss=s.loss * scale_loss) for s in seq]

    monkeypatch.setattr(sd, "saddle_sequence", wrong)


def _rerun(exp, out):
    res = dl.reproduce([exp], out=out / "first", report=False)
    assert res.pieces["jacot2021"]["computed"] == 0  # the stored runs, the planted theory
    return {c.claim: c.outcome for c in res.claims}


def test_a_one_percent_error_in_a_saddle_end_to_end_matrix_fails(checked, monkeypatch):
    exp, out, _ = checked
    _planted(monkeypatch, scale_A=1.01)
    outcome = _rerun(exp, out)
    assert outcome["plateau_states"] == "failed" and outcome["plateau_states_completion"] == "failed"


def test_a_one_percent_error_in_a_saddle_loss_fails(checked, monkeypatch):
    exp, out, _ = checked
    _planted(monkeypatch, scale_loss=1.01)
    outcome = _rerun(exp, out)
    assert outcome["staircase"] == "failed" and outcome["plateau_loss_completion"] == "failed"
    assert outcome["plateau_states"] == "passed"


def test_regression_problem_saddle_losses():
    prob = J.regression_problem(3, mu=(4.0, 2.0, 1.0), lam=(2.0, 1.0, 0.5, 0.25), noise=0.5)
    # Reduced-rank regression by hand: whiten with Sxx^(-1/2), truncate, map back.
    Sxx, Syx = np.asarray(prob.Sxx), np.asarray(prob.Syx)
    lam, Q = np.linalg.eigh(Sxx)
    M = Syx @ Q / np.sqrt(lam)
    np.testing.assert_allclose(np.linalg.svd(M, compute_uv=False), [4.0, 2.0, 1.0], rtol=1e-12)
    losses = [s.loss for s in sd.saddle_sequence(prob)]
    np.testing.assert_allclose(losses, [21.5, 5.5, 1.5, 0.5], rtol=1e-10)


def test_completion_problem_rank_and_mask():
    prob = J.completion_problem(0, n=10, rank=3, observed=0.7)
    s = np.linalg.svd(np.asarray(prob.target), compute_uv=False)
    np.testing.assert_allclose(s[:3], 10 * 0.6 ** np.arange(3), rtol=1e-12)
    assert s[3] < 1e-10 and 0.5 < float(np.mean(np.asarray(prob.mask))) < 0.9


def test_distance_bounds_bracket_known_points():
    """Lower bounds never exceed the distance to an explicit point of the set; upper bounds are such distances."""
    prob = J.regression_problem(1)
    rng = np.random.default_rng(5)
    for g in (0.5, 1.5):
        p = (rng.normal(size=(12, prob.d_in)) * 12 ** (-g / 2), rng.normal(size=(prob.d_out, 12)) * 12 ** (-g / 2))
        s_lo, s_up = D.saddle_bounds(p)
        assert s_lo <= s_up and abs(s_up - np.sqrt(sum(np.sum(W**2) for W in p))) < 1e-12  # the origin
        g_lo, g_up = D.global_min_bounds(prob, p)
        # an explicit global minimum: A* = Syx Sxx^-1 factored as (W1, A* W1^+) keeping W1
        A_star = np.asarray(prob.Syx) @ np.linalg.inv(np.asarray(prob.Sxx))
        W2 = A_star @ np.linalg.pinv(p[0])
        assert abs(prob.cost(W2 @ p[0]) - sd.saddle_sequence(prob)[-1].loss) < 1e-8
        assert g_lo <= np.linalg.norm(W2 - p[1]) + 1e-12
        if np.isfinite(g_up):
            assert g_lo <= g_up + 1e-12

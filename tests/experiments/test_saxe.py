"""saxe on the experiment contract: it conforms, its claims pass, and a 1 % error in the theory it checks fails it."""

from __future__ import annotations

import json

import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import saxe
from dlnlab.theory import modes


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("saxe")
    return out, dl.check_experiment(saxe.EXPERIMENT, out=out)


def test_saxe_conforms_and_every_claim_passes(checked):
    _, res = checked
    assert res.exit_code == 0
    assert [c.claim for c in res.claims] == [f"depth{d}_{k}" for d in (2, 3)
                                             for k in ("trajectory", "balanced", "final_loss")]
    assert all(c.outcome == "passed" for c in res.claims)
    traj = res.claims[0].to_dict()
    assert traj["tolerance"] == {"kind": "at_most", "bound": saxe.TRAJ_TOL}
    assert 0 <= traj["measured"] <= traj["expected"] == saxe.TRAJ_TOL


def test_sizes_are_data_and_pieces_are_stored(checked):
    out, res = checked
    assert saxe.EXPERIMENT.sizes["quick"]["records"] < saxe.EXPERIMENT.sizes["full"]["records"]
    assert res.pieces["saxe"] == {"computed": 2, "reused": 0}
    records = [json.loads(p.read_text()) for p in (out / "first" / "runs").glob("*.json")]
    assert sorted(r["function"] for r in records) == ["saxe:flow_depth2", "saxe:flow_depth3"]  # the rerun reused
    assert {r["config"]["seed"] for r in records} == {0}


@pytest.mark.parametrize("error", ["scale", "rate"])
def test_a_one_percent_error_in_the_mode_trajectory_fails_the_trajectory_claims(checked, monkeypatch, error):
    out, _ = checked
    true = modes.mode_strength

    def wrong(s, u0, t, *, depth=2):
        if error == "scale":
            return 1.01 * true(s, u0, t, depth=depth)
        return true(s, u0, 1.01 * np.asarray(t), depth=depth)

    monkeypatch.setattr(modes, "mode_strength", wrong)
    res = dl.reproduce(["saxe"], out=out / "first", report=False)  # the stored flows, the planted theory
    assert res.pieces["saxe"]["reused"] == 2
    outcome = {c.claim: c.outcome for c in res.claims}
    assert outcome["depth2_trajectory"] == outcome["depth3_trajectory"] == "failed"
    assert outcome["depth2_final_loss"] == "passed" and res.exit_code == 1

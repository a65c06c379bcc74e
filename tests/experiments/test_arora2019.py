"""arora2019 on the experiment contract: it conforms, its claims pass, and a 1 % error in the end-to-end flow, the
preconditioner P_W or the singular-value dynamics fails the claim that checks it."""

from __future__ import annotations

import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import arora2019
from dlnlab.theory import dmf


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("arora2019")
    return out, dl.check_experiment(arora2019.EXPERIMENT, out=out)


def test_arora2019_conforms_and_every_claim_passes(checked):
    _, res = checked
    assert res.exit_code == 0
    outcome = {c.claim: c.outcome for c in res.claims}
    # Declared in advance: at the fewest observations depth 3 does not beat depth 2 (docs/papers/arora2019.md).
    assert outcome.pop("depth3_beats_depth2_fewest") == "not_reproduced"
    assert set(outcome.values()) == {"passed"}
    assert {"end_to_end_flow", "preconditioner", "singular_value_dynamics", "depth3_beats_depth2",
            "depth2_near_nuclear", "effective_rank_falls", "one_at_a_time"} <= set(outcome)
    flow = next(c for c in res.claims if c.claim == "end_to_end_flow").to_dict()
    assert flow["tolerance"] == {"kind": "at_most", "bound": arora2019.FLOW_TOL}


def test_sizes_are_data(checked):
    _, res = checked
    q, f = arora2019.EXPERIMENT.sizes["quick"], arora2019.EXPERIMENT.sizes["full"]
    assert (f["d"], f["rank"], f["init"], f["steps"]) == (100, 5, 1e-3, 20000)  # roosephu's canonical setup
    assert q["d"] < f["d"] and q["n_mid"] in q["obs"] and f["n_many"] in f["obs"]
    assert res.pieces["arora2019"]["computed"] == 4


def _rerun(out, monkeypatch, name, fn):
    monkeypatch.setattr(dmf, name, fn)
    res = dl.reproduce(["arora2019"], out=out / "first", report=False)  # stored runs, planted theory
    assert res.pieces["arora2019"]["reused"] == 4
    return {c.claim: c.outcome for c in res.claims}, res


def test_a_one_percent_error_in_the_end_to_end_velocity_fails_the_flow_claim(checked, monkeypatch):
    out, _ = checked
    true = dmf.end_to_end_velocity
    outcome, res = _rerun(out, monkeypatch, "end_to_end_velocity", lambda W, G, depth: 1.01 * true(W, G, depth))
    assert outcome["end_to_end_flow"] == "failed" and res.exit_code == 1
    assert outcome["depth3_beats_depth2"] == "passed"  # the training itself is untouched


def test_a_one_percent_error_in_the_preconditioner_fails_its_claim(checked, monkeypatch):
    out, _ = checked
    true = dmf.preconditioner
    outcome, _ = _rerun(out, monkeypatch, "preconditioner", lambda W, depth: 1.01 * true(W, depth))
    assert outcome["preconditioner"] == "failed"
    assert outcome["singular_value_dynamics"] == outcome["end_to_end_flow"] == "passed"


@pytest.mark.parametrize("where", ["scale", "exponent"])
def test_a_one_percent_error_in_the_singular_value_dynamics_fails_its_claim(checked, monkeypatch, where):
    out, _ = checked
    true = dmf.singular_value_velocity

    def wrong(W, G, depth):
        s, ds = true(W, G, depth)
        if where == "scale":
            return s, 1.01 * ds
        return s, ds * np.power(s, 0.01 * (2.0 - 2.0 / depth))  # sigma^(2 - 2/N) -> sigma^(1.01 (2 - 2/N))

    outcome, _ = _rerun(out, monkeypatch, "singular_value_velocity", wrong)
    assert outcome["singular_value_dynamics"] == "failed"
    assert outcome["preconditioner"] == "passed"


def test_the_sweepable_function_recovers_a_fully_observed_target_and_refuses_bad_fields():
    from dlnlab.errors import ConfigError
    from dlnlab.sweep import get_sweepable

    fn = get_sweepable("deep_matrix_completion")
    cfgs = [fn.normalise({"d": 6, "rank": 1, "n_observed": n, "depth": 3, "steps": 3000, "seed": 1}) for n in (36, 30)]
    out = fn.run_batch(cfgs)
    assert out[0]["metrics"]["relative_error"] < 1e-3  # every entry observed: the fit is the target
    assert out[0]["metrics"]["final_loss"] < 1e-5 and 0.99 < out[0]["metrics"]["effective_rank"] < 1.1
    assert out[1]["trajectory"]["singular_values"].shape[1] == 6
    with pytest.raises(ConfigError, match="n_observed"):
        fn.normalise({"d": 4, "n_observed": 17})
    with pytest.raises(ConfigError, match="rank"):
        fn.normalise({"d": 4, "rank": 5})

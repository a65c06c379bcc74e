"""gissin2020 on the experiment contract: it conforms, its claims pass, and a 1 % error in the toy model's closed
form (the trajectory, the learning time, the incremental index) fails the claim that checks it."""

from __future__ import annotations

import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import gissin2020
from dlnlab.theory import incremental


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("gissin2020")
    return out, dl.check_experiment(gissin2020.EXPERIMENT, out=out)


def test_gissin2020_conforms_and_every_claim_passes(checked):
    _, res = checked
    assert res.exit_code == 0
    outcome = {c.claim: c.outcome for c in res.claims}
    assert set(outcome.values()) == {"passed"}
    assert {"toy_trajectory", "toy_learning_time", "toy_incremental_index", "index_falls_with_depth",
            "depth1_all_at_once", "sensing_index_falls_with_depth"} <= set(outcome)


def test_sizes_are_data(checked):
    f = gissin2020.EXPERIMENT.sizes["full"]
    assert (f["d"], f["m"], f["depths"], f["init"]) == (50, 1000, [1, 2, 3, 4], 1e-4)  # dsgissin's setup


def _rerun(out, monkeypatch, name, fn):
    monkeypatch.setattr(incremental, name, fn)
    res = dl.reproduce(["gissin2020"], out=out / "first", report=False)
    return {c.claim: c.outcome for c in res.claims}, res


@pytest.mark.parametrize("where", ["scale", "time"])
def test_a_one_percent_error_in_the_trajectory_fails_the_trajectory_claim(checked, monkeypatch, where):
    out, _ = checked
    true = incremental.trajectory

    def wrong(times, targets, sigma0, depth):
        if where == "scale":
            return 1.01 * true(times, targets, sigma0, depth)
        return true(1.01 * np.asarray(times), targets, sigma0, depth)

    outcome, res = _rerun(out, monkeypatch, "trajectory", wrong)
    assert res.pieces["gissin2020"]["reused"] == 3  # the stored flow, the planted theory
    assert outcome["toy_trajectory"] == "failed" and res.exit_code == 1
    assert outcome["toy_learning_time"] == "passed"


def test_a_one_percent_error_in_the_incremental_index_fails_its_claim(checked, monkeypatch):
    out, _ = checked
    true = incremental.incremental_index
    outcome, _ = _rerun(out, monkeypatch, "incremental_index", lambda *a, **k: 1.01 * true(*a, **k))
    assert outcome["toy_incremental_index"] == "failed"
    assert outcome["toy_trajectory"] == "passed"


def test_a_one_percent_error_in_the_learning_time_fails_its_claim(checked, monkeypatch):
    out, _ = checked
    true = incremental.learning_time
    outcome, _ = _rerun(out, monkeypatch, "learning_time", lambda *a, **k: 1.01 * true(*a, **k))
    assert outcome["toy_learning_time"] == "failed"


def test_the_sweepable_index_is_about_one_half_at_depth_one_and_falls_with_depth():
    from dlnlab.errors import ConfigError
    from dlnlab.sweep import get_sweepable

    fn = get_sweepable("incremental_sensing")
    index = {}
    for depth in (1, 3):
        cfg = fn.normalise({"d": 5, "m": 1000, "depth": depth, "init_scale": 1e-3, "steps": 3000})
        out = fn.run_batch([cfg])[0]
        index[depth] = out["metrics"]["incremental_index"]
    assert 0.4 < index[1] < 0.6 and index[3] < 0.05 * index[1]  # near-isotropic sensing: close to the toy model
    with pytest.raises(ConfigError, match="targets"):
        fn.normalise({"targets": [3.0, 6.0]})

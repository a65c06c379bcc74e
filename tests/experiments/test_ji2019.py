"""ji2019 on the experiment contract: it conforms, and a 1 % error in the max-margin direction fails its claims.

The experiment runs here at small sizes (the 2-D runs keep enough steps to pin the SVM direction); the quick and
full sizes are exercised by ``dlnlab reproduce ji2019 --quick``.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import ji2019 as ex
from dlnlab.theory import margin as mg

SMALL = {"steps": 1500, "steps_5d": 300, "digits_steps": 100, "flow_t1": 100.0, "drift_steps": 300,
         "ball_steps": 200}
EXP = dataclasses.replace(ex.EXPERIMENT, sizes={"quick": SMALL, "full": SMALL})


@pytest.fixture(scope="module")
def checked(tmp_path_factory):
    out = tmp_path_factory.mktemp("ji2019")
    return out, dl.check_experiment(EXP, out=out)


def test_ji2019_conforms_and_the_2d_claims_pass(checked):
    _, res = checked
    outcome = {c.claim: c.outcome for c in res.claims}
    assert list(outcome) == ["1-2d-svm", "1-2d", "1-5d-svm", "1-5d", "2-flow", "2-gd", "3", "4", "5", "6", "7"]
    for cid in ("1-2d-svm", "1-2d", "2-gd", "3", "7"):
        assert outcome[cid] == "passed", cid
    assert ex.EXPERIMENT.sizes["quick"]["steps"] < ex.EXPERIMENT.sizes["full"]["steps"]


def test_datasets_are_separable_and_normalised():
    X, y = ex.data("2d", 0)
    assert np.isclose(np.linalg.norm(X, axis=1).max(), 1.0) and set(np.unique(y)) == {-1.0, 1.0}
    mm = mg.max_margin(X, y)
    assert mm.certificate.ok and mm.spans_input
    Xd, yd = ex.digits_pair(0, 1)
    assert Xd.shape == (360, 64) and np.isclose(np.linalg.norm(Xd, axis=1).max(), 1.0)


def _perturbed(true):
    """``max_margin`` with a 1 % error in the direction (``u_bar + 0.01 xi``, ``xi`` a unit vector orthogonal to
    it, renormalised) and the margin that direction really has (``min_i <u, z_i>``)."""

    def wrong(X, y=None, **kw):
        mm = true(X, y, **kw)
        u = np.asarray(mm.direction, float)
        xi = np.roll(u, 1) * np.where(np.arange(len(u)) == 0, -1.0, 1.0) if len(u) == 2 else np.ones_like(u)
        xi = xi - (xi @ u) * u
        v = u + 0.01 * xi / np.linalg.norm(xi)
        v = v / np.linalg.norm(v)
        return dataclasses.replace(mm, direction=v, margin=float(np.min(np.asarray(y) * (np.asarray(X) @ v))))

    return wrong


def _scaled_margin(true, factor):
    """``max_margin`` with the right direction and ``gamma`` off by ``factor``."""

    def wrong(X, y=None, **kw):
        mm = true(X, y, **kw)
        return dataclasses.replace(mm, margin=factor * mm.margin)

    return wrong


@pytest.mark.parametrize("error", ["direction", "margin+1%", "margin-1%"])
def test_a_one_percent_error_in_the_max_margin_fails_the_claims(checked, monkeypatch, error):
    out, _ = checked
    true = mg.max_margin
    wrong = {"direction": _perturbed(true), "margin+1%": _scaled_margin(true, 1.01),
             "margin-1%": _scaled_margin(true, 0.99)}[error]
    monkeypatch.setattr(mg, "max_margin", wrong)
    res = dl.reproduce([EXP], out=out / "first", report=False)  # the stored runs, the planted theory
    assert res.pieces["ji2019"]["computed"] == 0
    outcome = {c.claim: c.outcome for c in res.claims}
    assert outcome["1-2d"] == "failed"
    assert outcome["2-gd"] == "passed" and res.exit_code == 1


def test_gd_drift_law_catches_a_wrong_step(checked):
    """The exact one-step law of the balance gaps fails for a step size misreported by 1 %."""
    d = ex.path_piece(rule="loss_scaled", n_steps=300, seed=0)
    Ws = [d[f"W{k + 1}"] for k in range(ex.DEPTH)]
    Gs = [d[f"G{k + 1}"][:-1] for k in range(ex.DEPTH)]
    n = int(np.argmax(d["eta"] > 1e40)) if np.any(d["eta"] > 1e40) else len(d["eta"])
    ok = ex.gd_drift_check([W[: n + 1] for W in Ws], [G[:n] for G in Gs], d["eta"][:n])
    bad = ex.gd_drift_check([W[: n + 1] for W in Ws], [G[:n] for G in Gs], 1.01 * d["eta"][:n])
    assert ok["max_relative_error"] < 1e-6 and ok["accumulated_bound_holds"]
    assert bad["max_relative_error"] > 1e-2

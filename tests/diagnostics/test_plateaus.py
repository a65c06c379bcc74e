"""detect_plateaus on synthetic records with known answers and on a real gradient-descent run checked
against the Eckart-Young saddle losses computed here from the SVD."""

from types import SimpleNamespace

import jax
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.diagnostics._plateaus import detect_plateaus, plateau_summaries
from dlnlab.errors import ConfigError, DataError


def _synthetic():
    """Two sigmoids in log-time: mode 1 (value 3) at t = 10, mode 2 (value 1) at t = 1000."""
    t = np.concatenate([[0.0], np.geomspace(1e-2, 1e5, 701)])
    lt = np.log10(np.maximum(t, 1e-3))
    s1 = 3.0 / (1 + np.exp(-12 * (lt - 1))) + 1e-6
    s2 = 1.0 / (1 + np.exp(-12 * (lt - 3))) + 1e-6
    loss = (3 - s1) ** 2 + (1 - s2) ** 2 + 0.25
    return SimpleNamespace(times=t, history={"loss": loss, "singular_values": np.stack([s1, s2], 1)})


def test_synthetic_jumps_states_and_losses():
    run = _synthetic()
    found = detect_plateaus(run)
    # Half-way crossings are exactly at 10 and 1000 (log-interpolated between records).
    np.testing.assert_allclose(found.jump_times, [10.0, 1000.0], rtol=2e-3)
    assert found.is_staircase and list(np.unique(found.rank)) == [0, 1, 2]
    np.testing.assert_allclose(found.losses, [9 + 1 + 0.25, 1 + 0.25, 0.25], atol=1e-3)
    assert [p.rank for p in found.plateaus] == [0, 1, 2] and found.plateaus[-1].final
    assert 10 < found.plateaus[1].time < 1000
    assert found.layer_ranks is None
    # Explicit thresholds: a level of 0.3 for the first mode is crossed before its half-way point.
    early = detect_plateaus(run, thresholds=[0.3])
    assert early.jump_times[0] < 10 and early.jump_times.size == 1


def test_out_of_order_learning_is_not_a_staircase():
    run = _synthetic()
    sv = run.history["singular_values"][:, ::-1].copy()  # the small mode first
    bad = SimpleNamespace(times=run.times, history={"loss": run.history["loss"], "singular_values": sv})
    assert not detect_plateaus(bad, rank_rtol=0.0).is_staircase


def test_gd_run_plateaus_equal_eckart_young_losses():
    rng = np.random.default_rng(0)
    U, _ = np.linalg.qr(rng.normal(size=(3, 3)))
    V, _ = np.linalg.qr(rng.normal(size=(4, 3)))
    s = np.array([2.0, 1.0, 0.5])
    prob = dl.Regression.from_moments(np.eye(4), U @ np.diag(s) @ V.T, float(np.sum(s**2)) + 0.1)
    params = dl.Net((4, 6, 5, 3)).init(jax.random.key(1), scheme="gaussian", scale=3e-3)
    run = dl.train(dl.Objective(prob), params, dl.GD(lr=0.02, steps=12_000),
                   record=dl.Record(n=600, summaries=("loss", "singular_values", plateau_summaries)))
    found = detect_plateaus(run)
    eckart_young = [0.1 + np.sum(s[k:] ** 2) for k in range(4)]  # library loss: no 1/2
    assert found.is_staircase and found.jump_times.size == 3
    np.testing.assert_allclose(found.losses, eckart_young, rtol=2e-2, atol=1e-3)
    assert found.layer_ranks[1:] == [(1, 1, 1), (2, 2, 2), (3, 3, 3)]
    # Plateau states sit at the truncated SVDs of the target.
    for k in (1, 2):
        Ak = U[:, :k] @ np.diag(s[:k]) @ V[:, :k].T
        assert np.linalg.norm(found.plateaus[k].end_to_end - Ak) < 2e-2 * np.linalg.norm(Ak)


def test_bad_input():
    run = _synthetic()
    with pytest.raises(ConfigError, match="run"):
        detect_plateaus(object())
    with pytest.raises(DataError, match="singular_values"):
        detect_plateaus(SimpleNamespace(times=run.times, history={"loss": run.history["loss"]}))
    with pytest.raises(DataError, match=r"^run.times: expected strictly increasing"):
        detect_plateaus(SimpleNamespace(times=run.times[::-1], history=run.history))
    with pytest.raises(ConfigError, match="thresholds"):
        detect_plateaus(run, thresholds=[1.0, -1.0])
    with pytest.raises(ConfigError, match="frac"):
        detect_plateaus(run, frac=0.0)

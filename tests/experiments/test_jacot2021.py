"""The jacot2021 experiment: registration, its problems (checked against their defining formulas) and
the first-escape measurement on a hand-made run. The full quick run is exercised by
`dlnlab reproduce jacot2021 --quick` (too slow for the unit-test budget)."""

from types import SimpleNamespace

import numpy as np

import dlnlab as dl
from dlnlab import experiments
from dlnlab.experiments import jacot2021 as J
from dlnlab.theory import saddles as sd


def test_registered_with_all_steps():
    exp = experiments.get("jacot2021")
    assert [s.__name__ for s in exp.steps] == [
        "step_staircase", "step_escape_depth4", "step_depth2", "step_init_distances", "step_matrix_completion"]
    assert "2106.15933" in exp.reference and exp.bibtex.startswith("@article")


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


def test_first_escape_reads_the_right_record():
    prob = dl.Regression.from_moments(np.eye(2), np.diag([2.0, 1.0]), 5.0)
    seq = sd.saddle_sequence(prob)
    u = np.array([1.0, 0.0])
    scales = np.array([1e-6, 1e-3, 0.04, 1.5, 2.0])  # |A| / |A_1| = scale / 2
    A = [a * np.outer(u, u) + 1e-9 * np.eye(2) for a in scales]
    hist = {"end_to_end": np.array(A), "balancedness": np.zeros(5),
            "layer_singular_values_0": np.array([[a, 1e-9] for a in scales]),
            "layer_singular_values_1": np.array([[a, 1e-9] for a in scales])}
    f = J._first_escape(SimpleNamespace(history=hist), seq, 2)
    assert abs(f["|A|/|A_1|"] - 0.02) < 1e-8 and abs(f["cos_u"] - 1.0) < 1e-12 and f["s2/s1"] < 1e-6
    # No record inside the window: no state to measure.
    hist2 = dict(hist, end_to_end=np.array([1e-9 * np.eye(2), 2 * np.outer(u, u)] * 2 + [np.eye(2)]))
    assert J._first_escape(SimpleNamespace(history=hist2), seq, 2) is None

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


def test_direction_is_gaussian_with_layer_shapes():
    base = J._direction((5, 10, 10, 4), 0)
    assert [W.shape for W in base] == [(10, 5), (10, 10), (4, 10)]
    x = np.concatenate([W.ravel() for W in base])
    assert abs(x.mean()) < 0.2 and abs(x.std() - 1) < 0.15  # 190 N(0, 1) draws
    assert all(np.array_equal(a, b) for a, b in zip(base, J._direction((5, 10, 10, 4), 0), strict=True))


def test_embedded_runs_are_the_narrow_flows_with_their_own_horizons():
    # Whitened 2 x 2 regression, nets of width 1 and 3 padded with zero neurons to width 6: the zero neurons
    # must stay exactly zero (they get zero gradient), so each run is the narrow flow and converges to the
    # narrow net's optimum; each run keeps its own horizon and record span.
    prob = dl.Regression.from_moments(np.eye(2), np.diag([2.0, 1.0]), 5.0)
    cells = [(1, 0.3, 0), (3, 0.1, 1)]
    inits, runs = J._embedded(prob, cells, 6, 20, [8.0, 5.0], 0, decades=[1.0, 2.0])
    for (w, _, _), p0, r, t1, dec in zip(cells, inits, runs, [8.0, 5.0], [1.0, 2.0], strict=True):
        assert np.all(np.asarray(p0[0])[w:] == 0) and np.all(np.asarray(r.params[0])[w:] == 0)
        assert np.all(np.asarray(r.params[1])[:, w:] == 0)
        assert r.times[0] == 0 and abs(r.times[1] - t1 * 10**-dec) < 1e-12 * t1 and abs(r.times[-1] - t1) < 1e-9
    # Width 1 can only reach rank one: A -> diag(2, 0), loss Syy - 2^2 = 1 (the rank-1 saddle of the wider net).
    A = np.asarray(runs[0].params[1]) @ np.asarray(runs[0].params[0])
    np.testing.assert_allclose(A, np.diag([2.0, 0.0]), atol=1e-3)
    assert abs(runs[0].final_loss - 1.0) < 1e-5
    # Width 3 learns both modes: A -> Syx Sxx^-1 = diag(2, 1), loss -> Syy - 4 - 1 = 0.
    A = np.asarray(runs[1].params[1]) @ np.asarray(runs[1].params[0])
    np.testing.assert_allclose(A, np.diag([2.0, 1.0]), atol=1e-3)

"""The gradient-flow engine: compiled-runner reuse across traced options, event statuses, stiff solvers."""

import jax
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.theory import modes
from dlnlab.train import _api


@pytest.fixture
def saxe(rng):
    """A whitened depth-2 problem with the Saxe closed form: loss(t) = const + sum_i (s_i - u_i(t))^2."""
    Syx = rng.normal(size=(3, 4))
    prob = dl.Regression.from_moments(np.eye(4), Syx, float(np.sum(Syx**2)) + 1.0)
    net = dl.Net((4, 5, 3))
    u0 = 1e-3
    s = np.linalg.svd(Syx, compute_uv=False)

    def loss_at(t):
        u = np.stack([modes.mode_strength(si, u0, np.atleast_1d(t), depth=2) for si in s], axis=-1)
        return 1.0 + np.sum((s - u) ** 2, axis=-1)

    return prob, modes.aligned_init(net, prob, u0), u0, loss_at


def test_new_times_tolerances_and_thresholds_reuse_the_compiled_runner(saxe):
    prob, p0, u0, loss_at = saxe
    obj = dl.Objective(prob)
    traces = []

    def extra(params):  # runs only while JAX traces the runner
        traces.append(1)
        return {"w1_sq": (params[0] ** 2).sum()}

    before = _api._compiled.cache_info()
    runs = []
    for t1, t_stop, tol in ((4.0, 2.5, 1e-10), (6.0, 3.5, 1e-11)):
        ts = np.linspace(0.0, t1, 21)
        threshold = float(loss_at(t_stop)[0])
        runs.append((dl.train(obj, p0, method="flow", t1=t1, save_at=ts, rtol=tol, atol=tol * 1e-2,
                              loss_threshold=threshold, divergence_threshold=1e6 * t1, summaries=extra), t_stop))
        if len(runs) == 1:
            n_traces = len(traces)
    after = _api._compiled.cache_info()
    assert n_traces > 0 and len(traces) == n_traces  # the second call traced nothing
    assert (after.misses - before.misses, after.hits - before.hits) == (1, 1)
    for run, t_stop in runs:
        assert run.status == "converged"
        # the event stops at the closed-form time at which the loss reaches the threshold
        assert run.times[-1] == pytest.approx(t_stop, rel=1e-6)
        theory = np.linalg.svd(modes.end_to_end_trajectory(prob, u0, run.times, depth=2), compute_uv=False)
        np.testing.assert_allclose(run.history["singular_values"], theory, atol=1e-6)
        assert theory[-1, 0] > 100 * theory[0, 0]  # a mode was learned before the stop


def test_a_run_stopped_by_the_loss_threshold_is_converged():
    """At the located crossing the loss equals the threshold up to rounding; the status must not depend on
    which side of the threshold rounding puts it (it used to come back as "solver_failed")."""
    rng = np.random.default_rng(0)
    Syx = rng.normal(size=(4, 4))
    prob = dl.Regression.from_moments(np.eye(4), Syx, float(np.sum(Syx**2)) + 1.0)  # minimum loss 1
    obj = dl.Objective(prob)
    p0 = dl.Net((4, 8, 8, 4)).init(jax.random.key(0), scheme="gaussian", scale=0.1)
    ends = []
    for threshold in (1.001, 1.01, 1.1, 1.5, 3.0):
        run = dl.train(obj, p0, method="flow", t1=50.0, save_at="log", loss_threshold=threshold)
        assert run.status == "converged", (threshold, run.message)
        assert run.final_loss <= threshold * (1 + 1e-12)
        assert run.final_loss == pytest.approx(threshold, rel=1e-9)
        ends.append(run.times[-1])
    assert np.all(np.diff(ends) < 0)  # a higher threshold is met earlier

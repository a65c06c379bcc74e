"""Tests of dlnlab.theory.incremental (gissin2020) against independent integrations of the factor flow."""

import numpy as np
import pytest
from scipy.integrate import quad, solve_ivp

from dlnlab.errors import ConfigError, DataError
from dlnlab.theory import incremental as inc


def _factor_flow(targets, sigma0, depth, times):
    """Gradient flow on N separate factors per mode of sum_i (prod_k w_ik - s_i)^2 (no 1/2), by DOP853."""
    s = np.asarray(targets, float)
    k = s.size
    w0 = np.broadcast_to(np.asarray(sigma0, float) ** (1.0 / depth), (k,))

    def rhs(_, y):
        w = y.reshape(k, depth)
        prod = np.prod(w, axis=1)
        others = np.stack([np.prod(np.delete(w, j, axis=1), axis=1) for j in range(depth)], axis=1)
        return (-2.0 * (prod - s)[:, None] * others).ravel()

    y0 = np.repeat(w0[:, None], depth, axis=1).ravel()
    sol = solve_ivp(rhs, (0.0, times[-1]), y0, method="DOP853", t_eval=times, rtol=1e-13, atol=1e-16)
    assert sol.success
    return np.prod(sol.y.reshape(k, depth, -1), axis=1).T


@pytest.mark.parametrize("depth", [1, 2, 3, 4, 6])
def test_trajectory_matches_factor_flow(depth):
    targets = np.array([12.0, 6.0, 4.0, 3.0, 0.0, 0.7])
    sigma0 = np.array([1e-3, 2e-3, 1e-3, 5e-4, 1e-2, 3.0])  # the last mode starts above its target
    t_half = float(inc.learning_time(3.0, 5e-4, depth))
    times = np.concatenate([[0.0], np.geomspace(1e-3, 3.0 * t_half, 40)])
    ref = _factor_flow(targets, sigma0, depth, times)
    got = inc.trajectory(times, targets, sigma0, depth)
    np.testing.assert_allclose(got, ref, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("depth,s,s0", [(3, 2.5, 1e-4), (4, 0.3, 1e-6), (5, 7.0, 1e-2), (7, 1.0, 1e-5),
                                        (3, 1.0, 4.0), (5, 0.5, 0.9), (2, 1.5, 6.0)])
def test_time_to_reach_against_quadrature(depth, s, s0):
    # t(sigma) = int_{sigma0}^{sigma} dx / velocity(x): a numerical quadrature of the ODE itself
    for frac in (0.1, 0.5, 0.999):
        sigma = s0 + frac * (s - s0)
        ref, _ = quad(lambda x: 1.0 / float(inc.mode_velocity(x, s, depth)), s0, sigma, epsabs=0, epsrel=1e-12,
                      limit=500, points=None)
        got = float(inc.time_to_reach(sigma, s, s0, depth))
        assert got == pytest.approx(ref, rel=1e-9)


@pytest.mark.parametrize("depth", [2, 3, 4])
def test_learning_time_by_event(depth):
    s, s0 = 4.0, 1e-5

    def hit(t, y):
        return y[0] - 0.5 * s

    hit.terminal = True
    sol = solve_ivp(lambda t, y: [-2 * depth * y[0] ** (2 - 2 / depth) * (y[0] - s)], (0, 1e7), [s0],
                    method="DOP853", events=hit, rtol=1e-12, atol=1e-18)
    assert float(inc.learning_time(s, s0, depth)) == pytest.approx(sol.t_events[0][0], rel=1e-8)


def test_learning_time_scaling_polynomial_vs_log():
    s = 2.0
    for depth in (3, 4, 5):
        t = inc.learning_time(s, 1e-14, depth)
        assert t * (1e-14) ** ((depth - 2) / depth) * 2 * (depth - 2) * s == pytest.approx(1.0, rel=1e-3)
    t2 = inc.learning_time(s, 1e-14, 2)
    assert t2 == pytest.approx(np.log(s / 1e-14) / (4 * s), rel=1e-3)
    # already above the fraction: learned at time 0
    assert inc.learning_time([s, 0.1], 0.06, 3).tolist()[1] == 0.0


def test_incremental_index_orders():
    targets = [12.0, 6.0, 4.0, 3.0]
    by_depth = [inc.incremental_index(targets, 1e-4, d) for d in (1, 2, 3, 4)]
    assert all(a > b for a, b in zip(by_depth, by_depth[1:]))
    # depth 1: sigma_1 reaches s_1 / 2 at exp(-2t) = (s_1/2) / (s_1 - sigma0); sigma_2 follows the same law
    e = 6.0 / (12.0 - 1e-4)
    assert by_depth[0] == pytest.approx((6.0 + (1e-4 - 6.0) * e) / 6.0, rel=1e-12)
    by_init = [inc.incremental_index(targets, a, 3) for a in (1e-1, 1e-3, 1e-6)]
    assert all(a > b for a, b in zip(by_init, by_init[1:]))


def test_bad_input():
    with pytest.raises(ConfigError, match="depth"):
        inc.trajectory([0.0], [1.0], 1e-3, depth=0)
    with pytest.raises(ConfigError, match="sigma0"):
        inc.trajectory([0.0], [1.0], 0.0, depth=2)
    with pytest.raises(DataError, match="targets"):
        inc.trajectory([0.0], [-1.0], 1e-3, depth=2)
    with pytest.raises(DataError, match="sigma0"):
        inc.trajectory([0.0], [1.0, 2.0], [1e-3, 1e-3, 1e-3], depth=2)
    with pytest.raises(DataError, match="times"):
        inc.trajectory([-1.0], [1.0], 1e-3, depth=2)
    with pytest.raises(DataError, match="sigma"):
        inc.time_to_reach(2.0, 1.0, 1e-3, depth=3)
    with pytest.raises(ConfigError, match="fraction"):
        inc.learning_time(1.0, 1e-3, depth=3, fraction=1.0)
    with pytest.raises(DataError, match="targets"):
        inc.incremental_index([1.0, 1.0], 1e-3, depth=3)

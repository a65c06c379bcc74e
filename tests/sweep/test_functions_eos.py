"""The eos_regression sweepable (cohen2021's phase diagram): its problem, its edge statistics and its metrics,
each against an independent computation, and its bad-input errors."""

from __future__ import annotations

from pathlib import Path

import jax
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.errors import ConfigError
from dlnlab.sweep import _functions_eos as eos
from dlnlab.sweep import get_sweepable, load_spec

PROBLEM = {"x_spectrum": (4.0, 2.0, 1.0, 0.5, 0.25), "t_spectrum": (2.0, 1.0, 0.5), "noise": 0.1,
           "geometry_seed": 104}


def test_edge_is_two_over_eta_and_the_statistics_count_what_they_say():
    assert eos.edge(0.08) == pytest.approx(25.0, rel=1e-15)
    lr, floor = 0.1, 1.0  # edge 20
    S = np.array([10.0, 18.0, 20.5, 30.0, 20.9, 19.5, 19.6, 19.6])
    L = floor + np.array([5.0, 3.0, 4.0, 2.0, 2.5, 1e-3, 1e-3 + 1e-16, 1e-3])  # one rounding-size "increase"
    st = eos.edge_statistics(S, L, lr, floor, band=0.05)
    np.testing.assert_allclose(st["ratio"], S / 20.0, rtol=1e-15)
    assert (st["cross"], st["max_ratio"], st["final_ratio"]) == (2, 1.5, pytest.approx(0.98))
    assert st["edge_fraction"] == pytest.approx(5 / 8)  # 20.5, 20.9, 19.5, 19.6, 19.6 are within 5 % of 20
    assert (st["loss_increases"], st["last_increase"]) == (2, 4)
    assert (st["peak"], st["after_peak"]) == (3, 1)
    never = eos.edge_statistics(S / 10, L, lr, floor, band=0.05)
    assert never["cross"] == -1 and never["edge_fraction"] == 0.0


def test_the_problem_floor_and_the_rotation_invariance_of_its_sharpness():
    from dlnlab.theory import flat

    lams = []
    for seed in (0, 5):
        prob, T, floor = eos.problem(**PROBLEM, seed=seed)
        Sxx, Syx = np.asarray(prob.Sxx), np.asarray(prob.Syx)
        np.testing.assert_allclose(np.linalg.eigvalsh(Sxx), sorted(PROBLEM["x_spectrum"]), rtol=1e-12)
        np.testing.assert_allclose(np.linalg.svd(T, compute_uv=False), PROBLEM["t_spectrum"], rtol=1e-12)
        lsq = float(prob.Syy) - float(np.trace(Syx @ np.linalg.solve(Sxx, Syx.T)))  # least squares, independently
        assert lsq == pytest.approx(floor, rel=1e-10) and floor == 0.1
        lams.append((flat.balanced_sharpness(prob, 3), flat.flattest_sharpness(prob, 3)))
    np.testing.assert_allclose(lams[0], lams[1], rtol=1e-8)  # rotations change no sharpness


def test_eos_regression_metrics_in_the_three_regimes():
    """One EoS, one stable and one below-lambda_* step size at width 4: the regimes' signatures, and flow_ratio
    against dense eigh at the exact balanced minimum (a second route to lambda_flow)."""
    fn = get_sweepable("eos_regression")
    base = fn.normalise({"depth": 3, "width": 4, "steps": 400, "init_scale": 0.01})
    configs = [fn.normalise({**base, "lr": lr}) for lr in (0.09, 0.058, 0.13)]
    eos_out, stable, below = fn.run_batch(configs)
    prob, T, _ = eos.problem(**PROBLEM, seed=0)
    minimum = dl.Net((5, 4, 4, 3)).init(jax.random.key(0), scheme="balanced", target=T)
    lam_flow = dl.curvature.top_eigenvalues(dl.Objective(prob), minimum, method="exact").values[0]
    for cfg, out in zip(configs, (eos_out, stable, below), strict=True):
        assert out["metrics"]["flow_ratio"] == pytest.approx(lam_flow * cfg["lr"] / 2, rel=1e-9)
        assert out["trajectory"]["sharpness"].shape == (401,)
    m = eos_out["metrics"]
    assert m["crossed"] == 1.0 and m["max_ratio"] > 1.0 and m["loss_increases"] > 0
    assert 0.9 < m["final_ratio"] <= 1.0 and m["excess_loss"] < 1e-8 and m["flattest_ratio"] < 1.0 < m["flow_ratio"]
    m = stable["metrics"]
    assert m["crossed"] == 0.0 and m["loss_increases"] == 0.0 and m["flow_ratio"] < 1.0
    assert m["final_ratio"] == pytest.approx(m["flow_ratio"], rel=0.02)  # GD ends at the flow's limit
    m = below["metrics"]
    assert m["flattest_ratio"] > 1.0 and m["excess_loss"] > 1e-3  # no stable minimum: no convergence


@pytest.mark.parametrize("config,field", [
    ({"t_spectrum": [1.0] * 6}, "t_spectrum"),
    ({"width": 2}, "width"),
    ({"init": "orthogonal"}, "init"),
    ({"lr": 0.0}, "lr"),
    ({"band": -0.1}, "band"),
])
def test_bad_input_is_one_clear_error(config, field):
    with pytest.raises(ConfigError, match=field):
        get_sweepable("eos_regression").normalise(config)


def test_the_example_sweep_maps_lr_depth_and_init():
    spec = load_spec(Path(__file__).resolve().parents[2] / "examples" / "sweep_cohen2021.toml")
    assert spec.function == "eos_regression"
    assert {"lr", "depth", "init_scale"} <= set(spec.grid)

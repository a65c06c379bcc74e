"""The theory entry points under generated bad inputs: one option broken per example, so each must
get a clear DlnlabError naming it; a few valid inputs are checked against independent quantities."""

from __future__ import annotations

import numpy as np
import reliability_helpers as rh
from hypothesis import given
from hypothesis import strategies as st

import dlnlab as dl
from dlnlab.theory import exact, flat, margin, saddles

JUNK = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.just(object()), st.just({}),
                 st.just([1, [2]]), st.just(1 + 1j))
REG = dl.Regression.from_moments(np.diag([3.0, 1.0]), np.array([[2.0, 0.0], [0.0, 0.5]]), 4.5)
CLF = dl.Classification(np.array([[1.0, 0.0], [-1.0, 0.5]]), np.array([1.0, -1.0]))
BAD_PROB = st.one_of(JUNK, st.just(CLF), st.just(np.eye(2)))
BAD_NUM = st.one_of(st.floats(max_value=-1e-9), st.sampled_from([np.nan, np.inf]), JUNK)
BAD_DEPTH = st.one_of(st.integers(-3, 0), st.floats(1.5, 4.5), JUNK)

CASES = {
    "exact.solve": (lambda o: exact.solve(o["prob"], o["widths"], o["weight_decay"], o["noise"]),
                    {"prob": REG, "widths": (2, 3, 2), "weight_decay": 0.1, "noise": None},
                    {"prob": BAD_PROB,
                     "widths": st.one_of(JUNK, st.just((3, 3, 2)), st.just((2, 0, 2)), st.just((2,))),
                     "weight_decay": BAD_NUM,
                     "noise": st.one_of(st.text(max_size=3), st.integers(), st.just(object()))}),
    "flat.flattest_sharpness": (lambda o: flat.flattest_sharpness(o["prob"], o["depth"]),
                                {"prob": REG, "depth": 3}, {"prob": BAD_PROB, "depth": BAD_DEPTH}),
    "saddles.saddle_sequence": (lambda o: saddles.saddle_sequence(o["prob"], method=o["method"],
                                                                  tol=o["tol"]),
                                {"prob": REG, "method": "auto", "tol": 1e-6},
                                {"prob": BAD_PROB, "method": st.one_of(st.text(max_size=4), JUNK),
                                 "tol": BAD_NUM}),
}


@rh.property_settings(120)
@given(data=st.data(), case=st.sampled_from(sorted(CASES)))
def test_theory_entry_points_reject_bad_options(data, case):
    call, good, bad = CASES[case]
    field = data.draw(st.sampled_from(sorted(bad)), label="field")
    opts = {**good, field: data.draw(bad[field], label=field)}
    rh.outcome(f"theory: {case}", lambda: call(opts), must_fail=True)


@st.composite
def labelled(draw):
    n, d = draw(st.integers(1, 6)), draw(st.integers(1, 3))
    X = np.asarray(draw(st.lists(st.floats(-3, 3), min_size=n * d, max_size=n * d))).reshape(n, d)
    y = np.asarray(draw(st.lists(st.sampled_from([-1.0, 1.0]), min_size=n, max_size=n)))
    broken = draw(st.sampled_from([None, None, "X", "y"]))
    if broken == "X":
        X = draw(st.one_of(JUNK, st.just(X * np.nan), st.just(X[:, :0]), st.just(X.ravel())))
    elif broken == "y":
        y = draw(st.one_of(JUNK, st.just(y * 2), st.just(y[:-1]), st.just(np.zeros_like(y))))
    return X, y


@rh.property_settings(80)
@given(Xy=labelled())
def test_max_margin_is_an_error_or_a_certified_separator(Xy):
    X, y = Xy
    res = rh.outcome("theory: margin.max_margin", lambda: margin.max_margin(X, y))
    if res is not None:  # independent check: a unit direction separating every sample by the margin
        w = np.asarray(res.direction).ravel()
        assert abs(np.linalg.norm(w) - 1.0) < 1e-8 and res.margin > 0
        assert np.all(y * (X @ w) >= res.margin * (1 - 1e-6) - 1e-9)


# -- options that were accepted silently or crashed deep inside (issue 13, item 6) --------------------------

WHITE = dl.Regression.from_moments(np.eye(2), np.array([[2.0, 0.0], [0.0, 0.5]]), 4.5)
ANISO = dl.Regression.from_moments(np.diag([3.0, 1.0]), np.array([[2.0, 0.3], [0.1, 0.5]]), 6.0)


def test_degenerate_counts_are_refused():
    import pytest

    from dlnlab.errors import ConfigError

    for call, field in [(lambda: flat.flattest_sharpness(ANISO, 3, n_starts=0), "n_starts"),
                        (lambda: flat.flattest_direction(ANISO, 3, n_starts=0), "n_starts"),
                        (lambda: flat.flattest_sharpness(ANISO, 3, seed=-1), "seed"),
                        (lambda: saddles.saddle_sequence(REG, max_rank=0), "max_rank"),
                        (lambda: saddles.saddle_sequence(REG, max_rank=-2), "max_rank")]:
        with pytest.raises(ConfigError) as info:
            call()
        rh.check_message(info.value, field)
        rh.REJECTED["theory: n_starts, seed, max_rank"] += 1
    assert len(saddles.saddle_sequence(REG, max_rank=1)) == 2  # the origin and the rank-one saddle


BAD_U0 = st.one_of(st.sampled_from([np.nan, np.inf, -np.inf, -1.0, 1e300, 1e101, [1.0, 2.0, 3.0], [[1.0]], "abc",
                                    None, [1.0, np.nan], [1.0, -2.0], [1e300, 1.0]]), JUNK)


@rh.property_settings(60)
@given(u0=BAD_U0, depth=st.integers(2, 5))
def test_mode_trajectories_refuse_bad_initial_strengths(u0, depth):
    from dlnlab.theory import modes

    rh.outcome("theory: modes.end_to_end_trajectory", lambda: modes.end_to_end_trajectory(WHITE, u0, [0.0, 1.0],
                                                                                          depth=depth),
               field="u0", must_fail=True)


@rh.property_settings(40)
@given(u0=st.floats(1e-12, 1e100), s=st.floats(0.0, 10.0), depth=st.integers(1, 4))
def test_mode_strength_is_finite_and_solves_its_ode(u0, s, depth):
    """Independent check: u(0) = u0 and a central finite difference of u(t) matches the flow's right-hand side
    du/dt = 2 L |u|^(2 - 2/L) (s - u) (depth 1: 2 (s - u)); huge u0 (1e20, where 0.1's depth-2 formula gave inf
    by cancellation) included."""
    from dlnlab.theory import modes

    t = np.array([0.0, 0.3, 0.3 - 1e-6, 0.3 + 1e-6])
    u = rh.outcome("theory: modes.mode_strength", lambda: modes.mode_strength(s, u0, t, depth=depth))
    assert u is not None and np.all(np.isfinite(u)) and np.all(u >= 0)
    assert abs(u[0] - u0) <= 1e-9 * u0
    L = depth
    rhs = 2.0 * (s - u[1]) if L == 1 else 2 * L * u[1] ** (2 - 2 / L) * (s - u[1])
    fd = (u[3] - u[2]) / 2e-6
    assert abs(fd - rhs) <= 1e-4 * max(1.0, abs(rhs), u[1] ** 2), (fd, rhs)

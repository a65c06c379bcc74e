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

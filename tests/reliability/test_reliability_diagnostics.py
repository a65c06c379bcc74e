"""Property-based bad-input tests of dl.diagnostics and of eager Objective calls on non-finite weights.

Each generated input gets either one clear DlnlabError naming the argument (counted as rejected) or a
valid result checked against NumPy (SVDs, norms and products computed here, not by dlnlab).
"""

from __future__ import annotations

from types import SimpleNamespace

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import reliability_helpers as rh
from hypothesis import given
from hypothesis import strategies as st

import dlnlab as dl
from dlnlab import diagnostics as dg
from dlnlab.errors import DataError

JUNK = st.one_of(
    st.none(), st.booleans(), st.text(max_size=4), st.just(b"\x00"), st.just([]), st.just({}),
    st.just(object()), st.just([[1.0, 2.0], [3.0]]), st.just(1 + 2j), st.integers(-3, 3),
)
NOT_A_NUMBER = st.one_of(st.none(), st.booleans(), st.text(max_size=4), st.just(object()), st.just([]),
                        st.just(1 + 2j), st.just("0.5"))
ENTRY = st.one_of(st.floats(-3, 3), st.sampled_from([np.nan, np.inf, -np.inf, 0.0]))


FLOATS = st.floats(-3, 3)


def matrix(rows, cols, elements=FLOATS):
    return st.lists(elements, min_size=rows * cols, max_size=rows * cols).map(
        lambda v: np.asarray(v, dtype=float).reshape(rows, cols))


@st.composite
def chained(draw):
    """Chained weight matrices of a random small net (finite entries)."""
    widths = draw(st.lists(st.integers(1, 3), min_size=2, max_size=4))
    return tuple(draw(matrix(widths[i + 1], widths[i])) for i in range(len(widths) - 1))


_RUN = SimpleNamespace(times=np.arange(3.0), history={"loss": np.ones(3)}, params=(np.eye(2),))


@st.composite
def param_sets(draw):
    """Valid chained params, or one defect: junk, a Run, a broken chain, NaN/inf, a bad dtype or ndim."""
    params = list(draw(chained()))
    # about one valid set in four: the valid ones are the slow ones (an SVD compiled per new shape)
    defects = ["junk", "run", "chain", "value", "dtype", "ndim", "empty", "element"]
    defect = None if draw(st.integers(0, 3)) == 3 else draw(st.sampled_from(defects))
    i = draw(st.integers(0, len(params) - 1))
    if defect == "junk":
        return draw(JUNK)
    if defect == "run":
        return _RUN
    if defect == "chain":  # a layer whose columns do not match the rows of the layer before
        params.insert(i + 1, np.ones((draw(st.integers(1, 3)), params[i].shape[0] + 1)))
    elif defect == "value":
        W = params[i].copy()
        W.flat[draw(st.integers(0, W.size - 1))] = draw(st.sampled_from([np.nan, np.inf, -np.inf]))
        params[i] = W
    elif defect == "dtype":
        params[i] = draw(st.sampled_from([params[i].astype(bool), params[i] * 1j, params[i].astype(str)]))
    elif defect == "ndim":
        params[i] = draw(st.sampled_from([params[i].ravel(), params[i][None], np.float64(1.0)]))
    elif defect == "empty":
        return draw(st.sampled_from([(), [], (np.ones((0, 2)),), (np.ones((2, 0)), np.ones((1, 2)))]))
    elif defect == "element":
        params[i] = draw(JUNK)
    return tuple(params) if draw(st.booleans()) else params


def _fro(W):
    """Frobenius norm scaled by the largest entry (no underflow for tiny matrices)."""
    m = np.max(np.abs(W), initial=0.0)
    return m * np.sqrt(np.sum((W / m) ** 2)) if m > 0 else 0.0


def _top(W):
    U, s, Vt = np.linalg.svd(W)
    return U[:, 0], s, Vt[0]


def _check_params_result(fn, params, out):
    # XLA flushes subnormal numbers to zero: the NumPy reference does the same
    Ws = [np.where(np.abs(W) < np.finfo(float).tiny, 0.0, np.asarray(W, dtype=float)) for W in params]
    if fn == "end_to_end":
        A = Ws[0]
        for W in Ws[1:]:
            A = W @ A
        np.testing.assert_allclose(out, A, rtol=1e-12, atol=1e-12)
    elif fn == "layer_norms":
        np.testing.assert_allclose(out, [_fro(W) for W in Ws], rtol=1e-12)
    elif fn == "rank_one_ratio":
        want = [s[0] / _fro(s) if s[0] > 0 else 0.0 for s in (np.linalg.svd(W)[1] for W in Ws)]
        np.testing.assert_allclose(out, want, rtol=1e-10, atol=1e-12)
    elif fn in ("balance_gaps", "balancedness"):
        gaps = [Ws[i + 1].T @ Ws[i + 1] - Ws[i] @ Ws[i].T for i in range(len(Ws) - 1)]
        if fn == "balance_gaps":
            assert len(out) == len(gaps)
            for D, G in zip(out, gaps):
                np.testing.assert_allclose(D, G, rtol=1e-12, atol=1e-12)
        else:
            np.testing.assert_allclose(out.per_pair, [_fro(G) for G in gaps], rtol=1e-12, atol=1e-12)
            assert 0.0 <= float(out.normalised) <= 1.0 + 1e-12
    elif fn == "alignment":
        out = np.asarray(out)
        assert out.shape == (len(Ws) - 1,) and np.all((out >= 0) & (out <= 1 + 1e-12))
        for i in range(len(Ws) - 1):
            u, s_lo, _ = _top(Ws[i])
            _, s_hi, v = _top(Ws[i + 1])
            separated = all(len(s) < 2 or s[0] - s[1] > 1e-6 * max(s[0], 1e-300) for s in (s_lo, s_hi))
            if separated and s_lo[0] > 1e-6 and s_hi[0] > 1e-6:  # top vectors are unique up to sign
                assert abs(float(out[i]) - abs(v @ u)) < 1e-8
    elif fn == "plateau_summaries":
        for i, W in enumerate(Ws):
            np.testing.assert_allclose(out[f"layer_singular_values_{i}"], np.linalg.svd(W)[1], atol=1e-10)


PARAM_FNS = ["end_to_end", "layer_norms", "rank_one_ratio", "balance_gaps", "balancedness", "alignment",
             "plateau_summaries"]


@rh.property_settings(210)
@given(fn=st.sampled_from(PARAM_FNS), params=param_sets())
def test_diagnostics_of_params(fn, params):
    out = rh.outcome("diagnostics on params", lambda: getattr(dg, fn)(params), field="params")
    if out is not None:
        assert rh.all_finite(out)
        _check_params_result(fn, params, out)


@st.composite
def spectra_inputs(draw):
    kind = draw(st.sampled_from(["matrix", "vector", "bad"]))
    if kind == "matrix":
        x = draw(matrix(draw(st.integers(1, 3)), draw(st.integers(1, 3)), ENTRY))
    elif kind == "vector":
        x = np.asarray(draw(st.lists(ENTRY, min_size=1, max_size=4)))
    else:
        x = draw(st.one_of(JUNK, st.sampled_from([np.ones((2, 0)), np.zeros(0), np.ones((2, 2, 2, 0)),
                                                    np.eye(2, dtype=bool), np.eye(2) * 1j, np.float64(2.0),
                                                    np.array([["a", "b"]])]), st.just(_RUN)))
    tol = draw(st.one_of(st.none(), st.floats(0, 0.5), st.sampled_from([-1e-3, np.nan, np.inf, "0.1"]),
                         JUNK))
    return x, tol


@rh.property_settings(160)
@given(fn=st.sampled_from(["singular_values", "numerical_rank", "effective_rank"]), xt=spectra_inputs(),
       which=st.sampled_from(["rtol", "atol"]))
def test_spectral_diagnostics(fn, xt, which):
    x, tol = xt
    kw = {} if fn != "numerical_rank" or tol is None else {which: tol}
    good_tol = isinstance(tol, (int, float)) and not isinstance(tol, bool) and np.isfinite(tol) and tol >= 0
    field = which if kw and not good_tol else None
    out = rh.outcome("diagnostics on matrices/spectra", lambda: getattr(dg, fn)(x, **kw))
    if out is None:
        return
    a = np.asarray(x, dtype=float)
    s = np.linalg.svd(a, compute_uv=False) if a.ndim == 2 else np.sort(np.abs(a))[::-1]
    assert field is None, f"a bad {which}={tol!r} was accepted"
    if fn == "singular_values":
        assert a.ndim >= 2
        np.testing.assert_allclose(out, s, rtol=1e-12, atol=1e-12)
    elif fn == "numerical_rank":
        cut = max(kw.get("atol", 0.0), kw.get("rtol", 1e-3) * s[0])
        near = np.abs(s - cut) < 1e-12 * max(1.0, s[0])  # the threshold itself is rounding-sensitive
        assert abs(int(out) - int(np.sum(s > cut))) <= int(np.sum(near))
    else:
        p = s / s.sum() if s.sum() > 0 else s
        want = np.exp(-np.sum(p[p > 0] * np.log(p[p > 0]))) if s.sum() > 0 else 0.0
        np.testing.assert_allclose(float(out), want, rtol=1e-10)


# -- detect_plateaus on broken runs ----------------------------------------------------------------
def _good_run():
    t = np.concatenate([[0.0], np.geomspace(1e-2, 1e5, 59)])
    lt = np.log10(np.maximum(t, 1e-3))
    s1 = 3.0 / (1 + np.exp(-12 * (lt - 1))) + 1e-6
    s2 = 1.0 / (1 + np.exp(-12 * (lt - 3))) + 1e-6
    hist = {"loss": (3 - s1) ** 2 + (1 - s2) ** 2, "singular_values": np.stack([s1, s2], 1),
            "end_to_end": np.stack([np.diag([a, b]) for a, b in zip(s1, s2)]),
            "layer_singular_values_0": np.stack([s1, s2], 1)}
    return t, hist


T, HIST = _good_run()
N = T.size
BAD_RECORDS = {
    "times": st.sampled_from([T[::-1], np.r_[T[:5], T[4:]], T[:2], np.r_[T[:-1], np.nan], T[None],
                              T.astype(str), None, "abc", T[:-3]]),
    "loss": st.sampled_from([HIST["loss"][:-1], np.r_[HIST["loss"][:-1], np.inf], HIST["loss"][:, None],
                             "x", [1.0, [2.0]]]),
    "singular_values": st.sampled_from([HIST["singular_values"][:, 0], -HIST["singular_values"],
                                        HIST["singular_values"][:-2], np.zeros((N, 0)),
                                        np.where(np.eye(N, 2, dtype=bool), np.nan, HIST["singular_values"])]),
    "end_to_end": st.sampled_from([HIST["end_to_end"][:, 0], HIST["end_to_end"][:-1],
                                   HIST["end_to_end"] * np.nan]),
    "layer_singular_values_0": st.sampled_from([HIST["singular_values"][:3], object()]),
    "layer_singular_values_x": st.just(HIST["singular_values"]),
    "missing": st.sampled_from(["loss", "singular_values"]),
    "run": st.one_of(JUNK, st.just((np.eye(2),)), st.just([SimpleNamespace(times=T, history=HIST)])),
    "frac": st.one_of(st.sampled_from([0.0, 1.5, -0.1, np.nan]), NOT_A_NUMBER),
    "rank_rtol": st.one_of(st.sampled_from([-1.0, 2.0, np.inf]), NOT_A_NUMBER),
    "layer_rtol": st.one_of(st.sampled_from([-1.0, 2.0, np.nan]), NOT_A_NUMBER),
    "thresholds": st.one_of(st.sampled_from([[], [1.0, 1.0, 1.0], [-1.0], [np.nan], [np.inf], "ab",
                                             np.ones((40, 40))]), st.just(object())),
}
OPTIONS = ("frac", "rank_rtol", "layer_rtol", "thresholds")


@rh.property_settings(110)
@given(data=st.data(), broken=st.sampled_from([None, *sorted(BAD_RECORDS)]))
def test_detect_plateaus_on_broken_runs(data, broken):
    times, hist, kw = T, dict(HIST), {}
    run = unset = object()
    if broken is not None:
        value = data.draw(BAD_RECORDS[broken], label=broken)
        if broken == "times":
            times = value
        elif broken == "missing":
            del hist[value]
        elif broken == "run":
            run = value
        elif broken in OPTIONS:
            kw[broken] = value
        else:
            hist[broken] = value
    if run is unset:
        run = SimpleNamespace(times=times, history=hist)
    found = rh.outcome("diagnostics.detect_plateaus", lambda: dg.detect_plateaus(run, **kw),
                       must_fail=broken is not None)
    if found is not None:  # the unbroken run: modes 1 and 2 cross half their final values at t = 10 and 1000
        np.testing.assert_allclose(found.jump_times, [10.0, 1000.0], rtol=0.05)
        assert found.is_staircase and len(found.plateaus) == 3
        np.testing.assert_allclose(found.losses, [10.0, 1.0, 0.0], atol=0.05)  # (3 - s1)^2 + (1 - s2)^2
        assert [r[0] for r in found.layer_ranks[1:]] == [1, 2]


def test_plateau_errors_name_the_record():
    hist = dict(HIST, loss=HIST["loss"][:-1])
    with pytest.raises(DataError, match=r"^run.history\['loss'\]: expected a 1-D array of 60 records"):
        dg.detect_plateaus(SimpleNamespace(times=T, history=hist))
    run = SimpleNamespace(times=T, history=HIST, params=(np.eye(2),))
    with pytest.raises(DataError, match=r"^params: .*training run \(use run.params\)"):
        dg.balancedness(run)


# -- Objective: eager calls reject non-finite weights; traced calls are not checked ----------------
_PROB = dl.Regression.from_moments(np.diag([2.0, 1.0, 0.5]), np.ones((2, 3)), 7.0)
_OBJ = dl.Objective(_PROB, weight_decay=1e-3)
_P = dl.Net((3, 4, 2)).init(1, scheme="gaussian", scale=0.5)


@rh.property_settings(90)
@given(fn=st.sampled_from(["value", "grad", "value_and_grad", "data_loss"]),
       hits=st.lists(st.tuples(st.integers(0, 1), st.integers(0, 11), st.sampled_from([np.nan, np.inf, -np.inf])),
                     max_size=3),
       as_jax=st.booleans())
def test_objective_rejects_non_finite_weights(fn, hits, as_jax):
    params = [np.array(W) for W in _P]
    for layer, flat, v in hits:
        params[layer].flat[flat % params[layer].size] = v
    params = tuple(jnp.asarray(W) for W in params) if as_jax else tuple(params)
    out = rh.outcome("Objective eager, non-finite params", lambda: getattr(_OBJ, fn)(params), field="params",
                     must_fail=bool(hits))
    if out is None:
        first = min(layer for layer, _, _ in hits)
        with pytest.raises(DataError, match=rf"^params\[{first}\]: contains NaN or infinite"):
            getattr(_OBJ, fn)(params)
    else:
        assert rh.all_finite(out)


def test_traced_calls_are_not_checked_and_stay_compiled():
    bad = (jnp.asarray(_P[0]).at[0, 0].set(jnp.nan), jnp.asarray(_P[1]))
    # Under jit / vmap / grad the weights are tracers: no check, no error, the NaN propagates (the training
    # loops detect it themselves; the objective reports a non-finite value as +inf), and the good weights give
    # the eager value.
    assert not np.isfinite(float(jax.jit(lambda p: _OBJ.value(p))(bad)))
    batched = tuple(jnp.stack([W, W]) for W in _P)
    np.testing.assert_allclose(jax.vmap(lambda p: _OBJ.value(p))(batched), [_OBJ.value(_P)] * 2, rtol=1e-14)
    g = jax.jit(lambda p: _OBJ.grad(p))(_P)
    for a, b in zip(g, _OBJ.grad(_P)):
        np.testing.assert_allclose(a, b, rtol=1e-13)
    with pytest.raises(DataError, match=r"^params\[0\]: expected real floating-point weights, got dtype int64"):
        _OBJ.grad((np.ones((4, 3), dtype=np.int64), np.ones((2, 4))))

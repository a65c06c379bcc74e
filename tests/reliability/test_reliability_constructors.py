"""Property-based bad-input tests of every public constructor: Net and its init schemes,
Regression.from_data/from_moments, Classification, Dropout/MultiplicativeNoise, Objective and the
curvature options.

Each generated input gets either one clear DlnlabError naming the field (counted) or a valid object
that is checked (finite, right shapes, the defining identity holds). No other exception, no NaN.
"""

from __future__ import annotations

import jax
import numpy as np
import reliability_helpers as rh
from hypothesis import given
from hypothesis import strategies as st

import dlnlab as dl

# -- building blocks --------------------------------------------------------------------------------
NUMBERS = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.floats(-1e3, 1e3),
    st.integers(-10, 10),
    st.sampled_from([0.0, -0.0, 1e-300, 1e300, -1e300, 1e308, float("nan"), float("inf")]),
)
JUNK = st.one_of(
    st.none(), st.booleans(), st.text(max_size=6), st.just(b"\x00\xff"), st.just([]), st.just({}),
    st.just(object()), st.just([1, [2, 3]]), st.just(1 + 2j), st.just(np.array([1.0, 2.0])),
)
ELEMENTS = st.one_of(
    st.floats(-10, 10),
    st.sampled_from([np.nan, np.inf, -np.inf, 1e200, -1e200, 1e-300, 0.0]),
)


@st.composite
def arrays(draw, max_rows=5, max_cols=4, ndim=None, elements=ELEMENTS):
    nd = draw(st.sampled_from([0, 1, 2, 3])) if ndim is None else ndim
    shape = tuple(draw(st.integers(0, max_rows if i == 0 else max_cols)) for i in range(nd))
    values = draw(st.lists(elements, min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    return np.asarray(values, dtype=float).reshape(shape)


SMALL = st.floats(-3, 3)


def matrix(rows, cols, elements=SMALL):
    """A (rows, cols) array of the given elements (no filtering: fast to generate)."""
    return st.lists(elements, min_size=rows * cols, max_size=rows * cols).map(
        lambda v: np.asarray(v, dtype=float).reshape(rows, cols))


def good_matrix(rows, cols):
    return matrix(rows, cols)


# -- Net ------------------------------------------------------------------------------------------
WIDTH = st.one_of(st.integers(-3, 40), st.integers(2**40, 2**70), st.floats(-2, 9), JUNK,
                  st.just(np.int64(3)), st.just(np.float64(3.0)))
WIDTHS = st.one_of(
    st.lists(WIDTH, max_size=5).map(tuple),
    st.lists(st.integers(1, 9), max_size=5),
    JUNK,
    st.text(max_size=4),
)


@rh.property_settings(200)
@given(widths=WIDTHS, residual=st.one_of(st.booleans(), JUNK, st.integers(0, 1)))
def test_net_widths(widths, residual):
    net = rh.outcome("Net(widths, residual)", lambda: dl.Net(widths, residual=residual))
    if net is not None:
        assert len(net.widths) >= 2 and all(isinstance(w, int) and w >= 1 for w in net.widths)
        assert net.depth == len(net.widths) - 1 and isinstance(net.residual, bool)
        assert net.n_params == sum(a * b for a, b in net.shapes)




BAD_INIT = {
    "scheme": st.one_of(st.sampled_from(["he", "Gaussian", "", "balanced "]), JUNK),
    "key": st.one_of(st.integers(2**63, 2**70), st.integers(-(2**70), -(2**63) - 1), st.floats(), JUNK,
                     st.just(jax.random.split(jax.random.key(0), 2))),
    "dtype": st.sampled_from(["int32", "bool", "foo", object, complex, "complex128"]),
    "scale": st.one_of(NUMBERS, JUNK),
    "gamma": st.one_of(NUMBERS, JUNK),
    "target": st.one_of(arrays(max_rows=3, max_cols=3), JUNK, st.just(np.ones((2, 3)) * 1e300)),
}


@st.composite
def init_options(draw):
    """Valid options of a random scheme with at most one option replaced by a bad value."""
    opts = {
        "scheme": draw(st.sampled_from(dl.nets.INIT_SCHEMES)),
        "key": draw(st.one_of(st.integers(0, 2**62), st.just(jax.random.key(1)),
                              st.just(jax.random.PRNGKey(2)))),
        "dtype": draw(st.sampled_from([None, "float64", "float32", np.float64])),
        "scale": draw(st.floats(0, 3)),
        "gamma": draw(st.floats(-1, 3)),
        "target": draw(good_matrix(2, 3)),
    }
    broken = draw(st.sampled_from([None, *sorted(BAD_INIT)]))
    if broken is not None:
        opts[broken] = draw(BAD_INIT[broken])
    return opts


@rh.property_settings(160)
@given(residual=st.booleans(), opts=init_options())
def test_net_init(residual, opts):
    net = dl.Net((3, 3, 2), residual=residual)
    opts = dict(opts)
    key, scheme = opts.pop("key"), opts.pop("scheme")
    params = rh.outcome("Net.init(options)", lambda: net.init(key, scheme, **opts))
    if params is not None:
        assert [tuple(W.shape) for W in params] == list(net.shapes)
        assert rh.all_finite(params)
        if scheme == "balanced":
            tol = 1e-9 if params[0].dtype == np.float64 else 1e-4
            np.testing.assert_allclose(dl.nets.end_to_end(params), opts["target"], atol=tol)


# -- problems -------------------------------------------------------------------------------------
def _check_regression(prob):
    Sxx, Syx, Syy = (np.asarray(a) for a in (prob.Sxx, prob.Syx, prob.Syy))
    assert rh.all_finite((Sxx, Syx, Syy)) and Sxx.shape == (prob.d_in, prob.d_in)
    assert Syx.shape == (prob.d_out, prob.d_in) and prob.d_in >= 1 and prob.d_out >= 1
    np.testing.assert_array_equal(Sxx, Sxx.T)
    scale = max(1.0, np.abs(Sxx).max())
    assert np.linalg.eigvalsh(Sxx).min() >= -1e-9 * scale
    assert float(Syy) >= 0  # (XLA flushes subnormals to zero, hence the absolute tolerance)
    np.testing.assert_allclose(float(prob.cost(np.zeros((prob.d_out, prob.d_in)))), float(Syy),
                               rtol=1e-15, atol=1e-300)


DATA = st.one_of(arrays(), arrays(ndim=2), arrays(ndim=2, elements=st.floats(-5, 5)), JUNK,
                 st.just([[1, 2], [3]]), st.just(np.array([["a", "b"]])), st.just(np.ones((2, 2)) * 1j))


@st.composite
def samples(draw):
    n, d, k = draw(st.integers(1, 6)), draw(st.integers(1, 3)), draw(st.integers(1, 2))
    X, Y = draw(matrix(n, d, st.floats(-5, 5))), draw(matrix(n, k, st.floats(-5, 5)))
    broken = draw(st.sampled_from([None, "X", "Y"]))
    if broken == "X":
        X = draw(DATA)
    elif broken == "Y":
        Y = draw(DATA)
    return X, Y


@rh.property_settings(110)
@given(XY=samples())
def test_regression_from_data(XY):
    X, Y = XY
    prob = rh.outcome("Regression.from_data", lambda: dl.Regression.from_data(X, Y))
    if prob is not None:
        _check_regression(prob)
        n = np.asarray(X).shape[0]
        Xa = np.asarray(X, float)
        np.testing.assert_allclose(prob.Sxx, Xa.T @ Xa / n, rtol=1e-12, atol=1e-300)


BAD_MOMENTS = {
    "Sxx": st.one_of(arrays(max_rows=3, max_cols=3), JUNK, st.just(-np.eye(2)),
                     st.just(np.array([[1.0, 2.0], [0.0, 1.0]])), st.just(np.eye(2) * 1e200)),
    "Syx": st.one_of(arrays(max_rows=3, max_cols=3), JUNK, st.just(np.ones((0, 2)))),
    "Syy": st.one_of(NUMBERS, JUNK, st.just(np.array([1.0, 2.0]))),
}


@st.composite
def moments(draw):
    """Valid moments (a PSD Sxx from a random factor) with at most one of them replaced."""
    d = draw(st.integers(1, 3))
    B = draw(matrix(d, d))
    m = {"Sxx": B @ B.T, "Syx": draw(matrix(draw(st.integers(1, 2)), d)),
         "Syy": draw(st.one_of(st.floats(0, 50), st.just(np.float64(2.0))))}
    broken = draw(st.sampled_from([None, *sorted(BAD_MOMENTS)]))
    if broken is not None:
        m[broken] = draw(BAD_MOMENTS[broken])
    return m["Sxx"], m["Syx"], m["Syy"]


@rh.property_settings(150)
@given(m=moments())
def test_regression_from_moments(m):
    prob = rh.outcome("Regression.from_moments", lambda: dl.Regression.from_moments(*m))
    if prob is not None:
        _check_regression(prob)


LABELS = st.one_of(
    st.lists(st.sampled_from([-1.0, 1.0]), min_size=0, max_size=5).map(np.array),
    st.lists(st.sampled_from([-1, 1, 0, 2, 0.5, np.nan, True]), min_size=1, max_size=5),
    JUNK, arrays(ndim=2),
)


@rh.property_settings(120)
@given(XY=samples(), y=LABELS, good_labels=st.booleans())
def test_classification(XY, y, good_labels):
    X = XY[0]
    if good_labels:  # labels of the right length, so that only X can be wrong
        n = X.shape[0] if isinstance(X, np.ndarray) and X.ndim else 1
        y = np.where(np.arange(n) % 2 == 0, 1.0, -1.0)
    clf = rh.outcome("Classification", lambda: dl.Classification(X, y))
    if clf is not None:
        assert set(np.unique(np.asarray(clf.y))) <= {-1.0, 1.0} and rh.all_finite(clf.X)
        assert clf.X.shape[0] == clf.y.shape[0] >= 1 and clf.d_in >= 1
        A = np.ones((1, clf.d_in))
        # atol: XLA flushes subnormal inputs to zero, which no user-visible margin depends on
        np.testing.assert_allclose(clf.margins(A), np.asarray(clf.y) * np.asarray(clf.X).sum(1), atol=1e-300)


@rh.property_settings(120)
@given(kind=st.sampled_from(["dropout", "multiplicative"]), v=st.one_of(NUMBERS, JUNK))
def test_noise_models(kind, v):
    cls, field = (dl.Dropout, "p") if kind == "dropout" else (dl.MultiplicativeNoise, "var")
    noise = rh.outcome(f"{cls.__name__}", lambda: cls(v), field=field)
    if noise is not None:
        assert np.isfinite(noise.variance) and noise.variance >= 0
        m = np.asarray(noise.sample(jax.random.key(0), (4000,)))
        assert rh.all_finite(m)
        if noise.variance < 10:  # mean one (Monte Carlo, 4000 draws: 6 standard errors)
            assert abs(m.mean() - 1.0) <= 6 * np.sqrt(noise.variance / 4000) + 1e-12


# -- Objective ------------------------------------------------------------------------------------
_REG = dl.Regression.from_moments(np.diag([2.0, 1.0, 0.5]), np.ones((2, 3)), 7.0)
_CLF = dl.Classification(np.array([[1.0, 0, 0], [0, -1.0, 1], [2, 1, 0]]), np.array([1.0, -1, 1]))
_MC = dl.MatrixCompletion(np.ones((2, 3)), np.eye(2, 3, dtype=bool))


BAD_OBJECTIVE = {
    "problem": JUNK,
    "loss": st.one_of(st.sampled_from(["logistic", "exponential", "hinge", "Squared"]), JUNK),
    "weight_decay": st.one_of(NUMBERS, JUNK, st.lists(NUMBERS, max_size=4), st.just([[0.1]])),
    "noise": st.one_of(JUNK, st.sampled_from([dl.Dropout(0.2), dl.MultiplicativeNoise(0.5)])),
    "net": st.one_of(JUNK, st.sampled_from([dl.Net((3, 4, 1)), dl.Net((2, 2)), dl.Net((3, 9, 9, 2))])),
}


@st.composite
def objective_options(draw):
    problem = draw(st.sampled_from([_REG, _CLF, _MC]))
    opts = {
        "problem": problem,
        "loss": draw(st.sampled_from(dl.objective.LOSSES)) if problem is _CLF else "squared",
        "weight_decay": draw(st.one_of(st.floats(0, 1), st.lists(st.floats(0, 1), min_size=2,
                                                                  max_size=2))),
        "noise": draw(st.sampled_from([None, dl.Dropout(0.3), dl.MultiplicativeNoise(2.0)]))
        if problem is _REG else None,
        "net": draw(st.sampled_from([None, dl.Net((problem.d_in, 4, problem.d_out)),
                                     dl.Net((problem.d_in, problem.d_in, problem.d_out), residual=True)])),
    }
    broken = draw(st.sampled_from([None, *sorted(BAD_OBJECTIVE)]))
    if broken is not None:
        opts[broken] = draw(BAD_OBJECTIVE[broken])
    return opts


@rh.property_settings(110)
@given(opts=objective_options())
def test_objective_options(opts):
    opts = dict(opts)
    problem, net = opts.pop("problem"), opts["net"]
    obj = rh.outcome("Objective(options)", lambda: dl.Objective(problem, **opts))
    if obj is None:
        return
    widths = net.widths if net is not None else (problem.d_in, 3, problem.d_out)
    params = dl.Net(widths).init(0, scheme="gaussian", scale=0.3)
    value = rh.outcome("Objective.value(params)", lambda: obj.value(params))
    if value is not None:  # a valid objective gives a value that is never NaN
        assert not np.isnan(float(value)) and float(obj.penalty(params)) >= 0
        if np.max(obj.weight_decay, initial=0.0) <= 1e100:  # and finite unless the decay overflows
            assert np.isfinite(float(value))
        if obj.noise is None and np.all(np.asarray(obj.weight_decay) == 0) and problem is _REG:
            A = np.asarray(dl.nets.end_to_end(params))  # no decay, no noise: the moment formula
            expect = np.trace(A @ _REG.Sxx @ A.T) - 2 * np.trace(A @ _REG.Syx.T) + 7.0
            np.testing.assert_allclose(float(value), expect, rtol=1e-12)


PARAM_SETS = st.one_of(
    st.just("good"), JUNK,
    st.lists(arrays(ndim=2, max_rows=4, max_cols=4), min_size=0, max_size=3).map(tuple),
)


@rh.property_settings(120)
@given(params=PARAM_SETS, with_net=st.booleans())
def test_objective_rejects_bad_params(params, with_net):
    obj = dl.Objective(_REG, net=dl.Net((3, 4, 2)) if with_net else None)
    if isinstance(params, str) and params == "good":
        params = dl.Net((3, 4, 2)).init(3, scheme="gaussian", scale=0.5)
    A = rh.outcome("diagnostics.end_to_end(params)", lambda: dl.diagnostics.end_to_end(params),
                   field="params")
    if A is not None:
        assert A.shape == (np.shape(params[-1])[0], np.shape(params[0])[1])
    v = rh.outcome("Objective.value(bad params)", lambda: obj.value(params), field="params")
    if v is not None:  # shapes were right: finite params of moderate size give a finite value
        moderate = rh.all_finite(params) and max(np.abs(np.asarray(W)).max(initial=0) for W in params) < 1e50
        assert np.isfinite(float(v)) or not moderate


# -- curvature options (one option broken per example: always a bad input) ----------------------
_OBJ = dl.Objective(_REG)
_P = dl.Net((3, 2, 2)).init(0, scheme="gaussian", scale=0.5)
BAD_CURVATURE = {
    "k": st.one_of(st.integers(-5, 0), st.integers(11, 10**6), st.floats(), JUNK),
    "which": st.one_of(st.text(max_size=8).filter(lambda s: s not in ("largest", "smallest")), JUNK),
    "method": st.one_of(st.text(max_size=8).filter(lambda s: s not in dl.curvature.METHODS),
                        st.just(None), st.just(["exact"])),
    "tol": st.one_of(st.floats(max_value=-1e-300), st.sampled_from([np.nan, np.inf]), st.text(max_size=3)),
    "max_iter": st.one_of(st.integers(-5, 0), st.floats(), st.text(max_size=3)),
    "key": st.one_of(st.floats(), st.text(max_size=3), st.just([1, 2]), st.integers(2**64, 2**70)),
}


BAD_CURVATURE["max_index"] = st.one_of(st.integers(-5, 0), st.floats(), JUNK)
CURVATURE_FIELDS = {
    "top_eigenvalues": ("k", "which", "method", "tol", "max_iter", "key"),
    "sharpness": ("method", "tol"),
    "morse_index": ("tol", "method", "max_index"),
}


@rh.property_settings(150)
@given(data=st.data(), fn=st.sampled_from(sorted(CURVATURE_FIELDS)))
def test_curvature_options(data, fn):
    field = data.draw(st.sampled_from(CURVATURE_FIELDS[fn]), label="field")
    value = data.draw(BAD_CURVATURE[field], label=field)
    call = getattr(dl.curvature, fn)
    rh.outcome(f"curvature.{fn}(options)", lambda: call(_OBJ, _P, **{field: value}), field=field,
               must_fail=True)


@rh.property_settings(60)
@given(params=st.one_of(PARAM_SETS.filter(lambda p: not (isinstance(p, str) and p == "good")),
                        st.just((np.full((2, 3), np.nan), np.ones((2, 2))))),
       v=st.one_of(arrays(ndim=1, max_rows=12), JUNK))
def test_curvature_bad_params_and_vectors(params, v):
    eig = rh.outcome("curvature(bad params)",
                     lambda: dl.curvature.top_eigenvalues(_OBJ, params, method="exact"), field="params")
    if eig is not None:  # shapes and values happened to be valid: a finite spectrum
        assert rh.all_finite(eig.values)
    rh.outcome("curvature.hvp(bad v)", lambda: dl.curvature.hvp(_OBJ, _P, v), must_fail=True)


# -- training configuration: GD, SGD, Flow, Record, Stop (every field, generated bad values) -------------------
POS_BAD = st.one_of(st.floats(max_value=0.0), st.sampled_from([np.nan, np.inf, -np.inf]), JUNK.filter(
    lambda v: v is not None and not isinstance(v, np.ndarray)))
INT_BAD = st.one_of(st.integers(-10**6, -1), st.floats(0.5, 1e6).filter(lambda x: x != int(x)), st.just(2.0),
                    JUNK.filter(lambda v: v is not None))
TRAIN_CONFIG = {
    ("GD", "lr"): POS_BAD,
    ("GD", "steps"): INT_BAD,
    ("GD", "optimizer"): st.one_of(st.text(max_size=3), st.integers(), st.just(len), st.just(object())),
    ("GD", "t1"): NUMBERS,  # a field of another method
    ("SGD", "lr"): POS_BAD,
    ("SGD", "steps"): INT_BAD,
    ("SGD", "batch_size"): st.one_of(st.integers(-10**6, 0), INT_BAD),
    ("SGD", "solver"): st.text(max_size=5),
    ("Flow", "t1"): st.one_of(POS_BAD, st.none()),
    ("Flow", "solver"): st.one_of(st.text(max_size=6).filter(lambda s: s not in ("tsit5", "dopri5", "dopri8", "rkc")),
                                  JUNK),
    ("Flow", "rtol"): POS_BAD,
    ("Flow", "atol"): POS_BAD,
    ("Flow", "max_steps"): st.one_of(st.integers(-10**6, 0), INT_BAD),
    ("Flow", "lr"): NUMBERS,
    ("Record", "n"): st.one_of(st.integers(-10**6, 0), INT_BAD),
    ("Record", "spacing"): st.one_of(st.text(max_size=6).filter(lambda s: s not in ("linear", "log")),
                                     JUNK.filter(lambda v: v is not None)),
    ("Record", "times"): st.one_of(st.just([]), st.just([[1.0]]), st.just([2.0, 1.0]), st.just([1.0, 1.0]),
                                   st.just([-1.0, 2.0]), st.just([0.0, np.nan]), st.just([0.0, np.inf]),
                                   st.text(min_size=1, max_size=4), st.just(object())),
    ("Record", "summaries"): st.one_of(st.just(()), st.just(("loss", "loss")),
                                       st.text(max_size=8).filter(lambda s: s not in dl.summaries.NAMED),
                                       st.just((1, 2)), st.just(("loss", None))),
    ("Record", "lr"): NUMBERS,
    ("Stop", "loss"): st.one_of(st.sampled_from([np.nan, np.inf, -np.inf]), JUNK.filter(
        lambda v: v is not None and not isinstance(v, np.ndarray))),
    ("Stop", "grad_norm"): st.one_of(st.floats(max_value=-1e-300), st.sampled_from([np.nan, np.inf]),
                                     JUNK.filter(lambda v: v is not None and not isinstance(v, np.ndarray))),
    ("Stop", "divergence"): st.one_of(st.floats(max_value=1.0), st.sampled_from([np.nan, np.inf]), JUNK),
    ("Stop", "steps"): NUMBERS,
}
_VALID = {"GD": {"lr": 0.1}, "SGD": {"lr": 0.1}, "Flow": {"t1": 1.0}, "Record": {}, "Stop": {}}


@rh.property_settings(300)
@given(data=st.data(), case=st.sampled_from(sorted(TRAIN_CONFIG)))
def test_training_configuration_fields(data, case):
    """Every field of the method, record and stop objects: a generated bad value (or a field that belongs to
    another class) is one ConfigError naming it, at construction, before any training."""
    cls, field = case
    value = data.draw(TRAIN_CONFIG[case], label=field)
    kwargs = {**_VALID[cls], field: value}
    rh.outcome(f"dl.{cls}(bad {field})", lambda: getattr(dl, cls)(**kwargs), field=field, must_fail=True)


def test_training_configuration_accepts_good_values_and_compares_by_value():
    import optax

    for a, b in [(dl.GD(lr=1e-3, steps=0), dl.GD(lr=0.001, steps=0)),
                 (dl.SGD(lr=1, steps=5, batch_size=np.int64(3)), dl.SGD(lr=1.0, steps=5, batch_size=3)),
                 (dl.Flow(t1=2, solver="rkc", rtol=1e-3, atol=1e-6, max_steps=10),
                  dl.Flow(t1=2.0, solver="rkc", rtol=0.001, atol=1e-6, max_steps=10)),
                 (dl.Record(times=np.array([0, 5, 10])), dl.Record(times=(0.0, 5.0, 10.0))),
                 (dl.Stop(loss=-1.0, grad_norm=0), dl.Stop(loss=-1, grad_norm=0.0)),
                 (dl.GD(optimizer=optax.sgd(0.1, momentum=0.9)), dl.GD(optimizer=optax.sgd(0.1, momentum=0.9)))]:
        assert a == b and hash(a) == hash(b)

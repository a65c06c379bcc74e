"""The experiment contract: typed claim checks, outcomes, contract errors, stored pieces, x64, check_experiment."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import dlnlab as dl
from dlnlab.experiments import ContractError, Experiment, NotReproduced, check_experiment, reproduce
from dlnlab.experiments._claims import AtLeast, AtMost, Close, Holds

SIZES = {"quick": {"n": 3}, "full": {"n": 5}}


def _exp(*claims, name="t", **kw):
    return Experiment(name=name, title="test", reference="none", sizes=kw.pop("sizes", SIZES), claims=claims, **kw)


def _run(tmp_path, *exps, **kw):
    return reproduce(list(exps), out=tmp_path, report=kw.pop("report", False), **kw)


# -- verdicts: computed from the typed tolerance, checked against hand-made cases --------------------------------
def test_close_is_numpys_isclose_rule_elementwise_and_nan_fails():
    tol = Close(rtol=1e-3, atol=1e-6)
    assert tol.verdict(measured=1000.999, expected=1000.0)  # 0.999 <= 1e-6 + 1.0
    assert not tol.verdict(measured=1001.01, expected=1000.0)
    assert tol.verdict(measured=[0.0, 2.0], expected=[5e-7, 2.001])
    assert not tol.verdict(measured=[0.0, 2.0], expected=[2e-6, 2.0])  # the first entry alone breaks it
    assert not tol.verdict(measured=float("nan"), expected=0.0)
    assert Close(atol=0.0).verdict(measured={"rank": 1, "ok": True}, expected={"rank": 1, "ok": True})
    assert not Close(atol=0.0).verdict(measured={"rank": 2, "ok": True}, expected={"rank": 1, "ok": True})
    assert Close(atol=0.1).verdict(measured=np.full((2, 3), 1.05), expected=1.0)  # a scalar expected broadcasts


def test_bounds_and_holds():
    assert AtMost(1e-7).verdict(measured=[1e-8, 1e-7])
    assert not AtMost(1e-7).verdict(measured=[1e-8, 1.1e-7])
    assert not AtMost(1.0).verdict(measured=float("nan"))
    assert AtLeast([0.9, 0.5]).verdict(measured=[0.95, 0.5])
    assert not AtLeast(0.9999).verdict(measured=0.9998)
    assert Holds().verdict(measured=[True, np.bool_(True)])
    assert not Holds().verdict(measured={"a": True, "b": False})


@pytest.mark.parametrize(
    ("call", "field"),
    [
        (lambda c: c.check_close("x", "s", measured=1.0, expected="> 0.9999", rtol=1e-3), "expected"),
        (lambda c: c.check_close("x", "s", measured=1.0, expected=[1.0, "two"], rtol=1e-3), "expected[1]"),
        (lambda c: c.check_close("x", "s", measured=1.0, expected=1.0), "tolerance"),
        (lambda c: c.check_close("x", "s", measured=1.0, expected=1.0, rtol=-1e-3), "rtol"),
        (lambda c: c.check_close("x", "s", measured=1.0, expected=1.0, atol="0.1"), "atol"),
        (lambda c: c.check_close("x", "s", measured="1.0", expected=1.0, atol=0.1), "measured"),
        (lambda c: c.check_close("x", "s", measured=[1.0, 2.0], expected=[1.0, 2.0, 3.0], atol=0.1), "measured"),
        (lambda c: c.at_most("x", "s", measured=1.0, bound="1e-6"), "expected"),
        (lambda c: c.at_least("x", "s", measured=1.0), "tolerance"),
        (lambda c: c.holds("x", "s", measured=1.0), "measured"),
        (lambda c: c.holds("x", "", measured=True), "statement"),
        (lambda c: c.holds("bad id!", "s", measured=True), "claim id"),
        (lambda c: (c.holds("x", "s", measured=True), c.holds("x", "again", measured=True)), "claim id"),
        (lambda c: c.cached("p", lambda a: {"a": np.ones(2)}, a=np.ones(3)), "config['a']"),
        (lambda c: c.cached("p", lambda: {"a": "text"}), "returned['a']"),
    ],
)
def test_a_broken_contract_is_one_error_naming_experiment_and_field_and_exits_2(tmp_path, call, field):
    def bad(ctx, state):
        call(ctx)

    def fine(ctx, state):
        ctx.holds("fine", "the other experiment still runs", measured=True)

    res = _run(tmp_path, _exp(bad, name="broken"), _exp(fine, name="other"))
    assert res.exit_code == 2
    (problem,) = res.problems
    assert "experiment 'broken'" in problem and f"{field}:" in problem and "expected" in problem
    assert [c.claim for c in res.claims if c.paper == "other"] == ["fine"]  # the others still ran
    assert [c.outcome for c in res.claims if c.paper == "broken"][-1] == "failed"


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"sizes": {"quick": {"n": 3}, "full": {"m": 5}}}, "sizes['full']"),
        ({"sizes": {"quick": {"n": 3}}}, "sizes"),
        ({"sizes": {"quick": {"n": 3}, "full": {"n": object()}}}, "sizes['full']['n']"),
        ({"not_reproduced": {"c": ("", "docs/x.md")}}, "evidence"),
        ({"not_reproduced": {"c": "no evidence"}}, "not_reproduced['c']"),
        ({"claims": ()}, "claims"),
        ({"claims": (1,)}, "claims"),
        ({"setup": "not callable"}, "setup"),
        ({"name": "has space"}, "name"),
    ],
)
def test_experiment_validates_at_construction(kwargs, field):
    args = dict(name="t", title="test", reference="none", sizes=SIZES, claims=(lambda ctx, s: None,))
    with pytest.raises(ContractError, match=r"expected") as info:
        Experiment(**{**args, **kwargs})
    assert field in str(info.value) and ("'t'" in str(info.value) or field == "name")


def test_sizes_are_the_modes_data(tmp_path):
    seen = []

    def c(ctx, state):
        seen.append((ctx.mode, ctx.size.n, ctx.size["n"]))
        ctx.holds("ok", "runs", measured=True)

    _run(tmp_path / "q", _exp(c), quick=True)
    _run(tmp_path / "f", _exp(c), quick=False)
    assert seen == [("quick", 3, 3), ("full", 5, 5)]


# -- outcomes and exit codes ---------------------------------------------------------------------------------------
def _declared(measured):
    def c(ctx, state):
        ctx.at_least("coupling", "layers couple", measured=measured, bound=0.5)
        ctx.holds("other", "another claim", measured=True)

    return _exp(c, not_reproduced={"coupling": NotReproduced("decays to random", "docs/papers/t.md#finding")})


def test_a_declared_failure_is_not_reproduced_and_exits_0(tmp_path):
    res = _run(tmp_path, _declared(0.1))
    rows = json.loads((tmp_path / "claims.json").read_text())
    assert [(r["claim"], r["outcome"], r["passed"]) for r in rows] == [
        ("coupling", "not_reproduced", False), ("other", "passed", True)]
    assert res.exit_code == 0 and not res.unexpected


def test_an_unexpected_pass_is_reported_and_exits_1(tmp_path):
    res = _run(tmp_path, _declared(0.9), report=True)
    assert res.exit_code == 1 and [c.claim for c in res.unexpected] == ["coupling"]
    assert res.claims[0].outcome == "passed"
    assert "unexpected pass" in (tmp_path / "report.html").read_text()


def test_an_undeclared_failure_exits_1_and_rows_record_the_tolerance_applied(tmp_path):
    def c(ctx, state):
        ctx.check_close("loss", "reaches the floor", measured=1.0 + 2e-6, expected=1.0, rtol=1e-6, atol=0)

    res = _run(tmp_path, _exp(c))
    (row,) = json.loads((tmp_path / "claims.json").read_text())
    assert res.exit_code == 1 and row["outcome"] == "failed" and row["passed"] is False
    assert row["tolerance"] == {"kind": "close", "rtol": 1e-6, "atol": 0.0}
    assert row["expected"] == 1.0 and row["measured"] == pytest.approx(1.0 + 2e-6)
    assert res.frame().loc[0, "outcome"] == "failed"


def test_declared_ids_must_be_checked(tmp_path):
    def c(ctx, state):
        ctx.holds("a", "a", measured=True)

    res = _run(tmp_path, _exp(c, not_reproduced={"typo": ("x", "docs/x.md")}))
    assert res.exit_code == 2 and "not_reproduced['typo']" in res.problems[0]


def test_a_claim_function_that_checks_nothing_breaks_the_contract(tmp_path):
    res = _run(tmp_path, _exp(lambda ctx, state: None))
    assert res.exit_code == 2 and "expected at least one claim" in res.problems[0]


def test_crashed_setup_skips_its_dependants_and_runs_other_experiments(tmp_path):
    def setup(ctx):
        raise RuntimeError("no data")

    def c(ctx, state):
        ctx.holds("a", "a", measured=True)

    res = _run(tmp_path, _exp(c, setup=setup, name="a"), _exp(c, name="b"))
    assert [(x.paper, x.claim, x.outcome) for x in res.claims] == [("a", "setup_crashed", "failed"),
                                                                     ("b", "a", "passed")]
    assert "no data" in res.claims[0].measured and res.exit_code == 1


# -- runner: state, float64, stored pieces -------------------------------------------------------------------------
def test_state_comes_from_setup_and_float64_holds_only_during_the_run(tmp_path):
    def setup(ctx):
        return {"dtype": str(jnp.ones(2).dtype), "n": ctx.size.n}

    def c(ctx, state):
        ctx.holds("x64", "the run computes in float64", measured=state["dtype"] == "float64")
        ctx.check_close("n", "state is setup's", measured=state["n"], expected=3, atol=0)

    with jax.enable_x64(False):
        res = _run(tmp_path, _exp(c, setup=setup))
        assert not jax.config.read("jax_enable_x64")  # restored
    assert res.exit_code == 0


def _counting_experiment(log):
    def piece(n, seed):
        log.append((n, seed))
        return {"x": np.arange(n) * (seed + 1.0), "total": np.sum(np.arange(n)) * (seed + 1.0)}

    def setup(ctx):
        return ctx.cached("piece", piece, n=ctx.size.n, seed=ctx.seed)

    def c(ctx, state):
        ctx.check_close("total", "the sum is stored with the array", measured=float(state["x"].sum()),
                        expected=float(state["total"]), rtol=1e-12)

    return _exp(c, setup=setup)


def test_stored_pieces_are_reused_by_config_and_seed(tmp_path):
    log = []
    exp = _counting_experiment(log)
    first = _run(tmp_path, exp)
    again = _run(tmp_path, exp)
    other_seed = _run(tmp_path, exp, seed=1)
    full = _run(tmp_path, exp, quick=False)
    fresh = _run(tmp_path, exp, fresh=True)
    assert log == [(3, 0), (3, 1), (5, 0), (3, 0)]
    assert first.pieces["t"] == {"computed": 1, "reused": 0} and again.pieces["t"] == {"computed": 0, "reused": 1}
    assert other_seed.pieces["t"]["computed"] == full.pieces["t"]["computed"] == fresh.pieces["t"]["computed"] == 1
    assert json.dumps(first.claims[0].to_dict()) == json.dumps(again.claims[0].to_dict())
    stored = sorted(p.name for p in (tmp_path / "runs").glob("*.json"))
    assert len(stored) == 3  # one record per (config, seed), the fresh run rewrote its own


def test_a_stored_piece_reads_back_what_was_computed(tmp_path):
    values = {"a": np.linspace(0, 1, 7).reshape(7, 1), "k": np.int64(3), "ok": np.array([True, False])}
    params = (np.ones((3, 2)), np.arange(6.0).reshape(2, 3))  # a DLN's (W_1, W_2)
    nested = {"params": params, "by": {"depth": [np.zeros(2), np.ones(1)]}, "grid": [0.5, 1.0]}

    def same(a, b):
        return bool(np.array_equal(a, b) and np.asarray(a).dtype == np.asarray(b).dtype)

    def c(ctx, state):
        got = ctx.cached("p", lambda: values)
        ctx.holds("same", "arrays survive the store", measured=[same(got[k], values[k]) for k in values])
        tree = ctx.cached("tree", lambda: nested)
        ctx.holds("tree", "nested dicts and sequences come back as dicts and tuples", measured=[
            isinstance(tree["params"], tuple) and len(tree["params"]) == 2,
            all(same(x, y) for x, y in zip(tree["params"], params)),
            same(tree["by"]["depth"][1], np.ones(1)), same(tree["grid"], np.array([0.5, 1.0]))])

    assert _run(tmp_path, _exp(c)).exit_code == 0
    again = _run(tmp_path, _exp(c))
    assert again.exit_code == 0 and again.pieces["t"]["reused"] == 2


# -- the conformance test --------------------------------------------------------------------------------------------
def test_check_experiment_accepts_a_conforming_experiment():
    log = []
    res = check_experiment(_counting_experiment(log))
    assert res.exit_code == 0 and len(log) == 2  # first run and the fresh-folder run; the rerun reused the store


def test_check_experiment_catches_state_kept_outside_setup():
    calls = []

    def c(ctx, state):
        calls.append(1)
        ctx.check_close("count", "module state leaks", measured=len(calls), expected=1, atol=10)

    with pytest.raises(ContractError, match=r"experiment 't': claim 'count': measured: expected the same value"):
        check_experiment(_exp(c))


def test_check_experiment_refuses_a_step_experiment_and_a_crash():
    from dlnlab.experiments._base import StepExperiment

    with pytest.raises(ContractError, match="0.1 step experiment"):
        check_experiment(StepExperiment("old", "t", "r", "", steps=()))

    def c(ctx, state):
        raise KeyError("missing")

    with pytest.raises(ContractError, match=r"experiment 't': c: expected it to run without raising"):
        check_experiment(_exp(c), repeat=False)


def test_public_names():
    assert dl.Experiment is Experiment and dl.reproduce is reproduce and dl.check_experiment is check_experiment


def test_all_runs_every_loadable_experiment_and_a_broken_plugin_exits_2(tmp_path, monkeypatch):
    from dlnlab.experiments import _registry

    def ok(ctx, state):
        ctx.holds("ok", "runs", measured=True)

    class EntryPoint:
        def __init__(self, name, value, obj):
            self.name, self.value, self._obj = name, value, obj

        def load(self):
            if isinstance(self._obj, Exception):
                raise self._obj
            return self._obj

    eps = [EntryPoint("good", "pkg:GOOD", _exp(ok, name="good")),
           EntryPoint("gone", "pkg:GONE", ImportError("No module named 'pkg_gone'"))]
    monkeypatch.setattr(_registry, "BUILTIN", ())
    monkeypatch.setattr(_registry, "_entry_points", lambda: eps)
    res = reproduce("all", out=tmp_path, report=False)
    assert [(c.paper, c.claim) for c in res.claims] == [("good", "ok")]
    assert res.exit_code == 2 and len(res.problems) == 1
    assert res.problems[0].startswith("experiment plugin 'gone' (entry point 'pkg:GONE'")
    with pytest.raises(ContractError, match="experiment plugin 'gone'.*ImportError"):
        reproduce(["gone"], out=tmp_path)

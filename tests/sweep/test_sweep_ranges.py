"""Sweep field ranges (issue 13, item 5): every numeric field of a built-in sweepable function has a documented
range checked when the config is loaded; a run that overflows is "diverged", not "failed"; nothing the computation
prints (LAPACK's ``** On entry to DLASCL``) reaches stdout."""

from __future__ import annotations

import math
import os

import numpy as np
import pytest

from dlnlab.errors import ConfigError
from dlnlab.sweep import Field, Sweepable, get_sweepable, load_spec, register_sweepable, sweepable_names
from dlnlab.sweep._executors import run_batch

TR = get_sweepable("teacher_regression")
NUMERIC = sorted(k for k, f in TR.all_fields.items() if f.kind in ("int", "float", "ints", "floats"))


@pytest.mark.parametrize("field, value", [("steps", 9223372036854775807), ("steps", 2**70), ("lr", 1e308),
                                          ("teacher_sv", [1e308]), ("init_scale", 1e300), ("width", 1e11),
                                          ("width", 10**11), ("gamma", -1e300), ("records", 10**9),
                                          ("t1", 1e300), ("depth", 10**6), ("seed", 2**64)])
def test_values_from_the_red_team_are_refused_up_front(field, value):
    where = "grid" if field != "seed" else None
    cfg = {"function": "teacher_regression", "fixed": {"d_in": 6, "d_out": 4}}
    if where:
        cfg["grid"] = {field: [value]}
        with pytest.raises(ConfigError, match=rf"^{field}(\[0\])?: expected a value [<>]= "):
            load_spec(cfg)
    else:
        cfg["seeds"] = [value]
        with pytest.raises(ConfigError, match=r"^seeds: expected"):
            load_spec(cfg)


def test_every_numeric_field_has_a_documented_range():
    for name in NUMERIC:
        f = TR.all_fields[name]
        assert f.low is not None and f.high is not None and math.isfinite(f.high), name
        assert f.help, name
    for name in NUMERIC:  # the ends of the range are accepted, just beyond them is refused
        f = TR.all_fields[name]
        one = f.kind[:-1] if f.kind.endswith("s") else f.kind
        wrap = (lambda v: [v]) if f.kind.endswith("s") else (lambda v: v)
        f.normalise(name, wrap(f.high))
        beyond = f.high + 1 if one == "int" else f.high * (1 + 1e-9) + 1e-300
        with pytest.raises(ConfigError, match="expected a value <="):
            f.normalise(name, wrap(beyond))


PRINTS = "printing_sweepable"


def _printing_batch(configs):
    import jax.numpy as jnp

    os.write(1, b"raw bytes on file descriptor 1\n")
    print("python print")
    jnp.linalg.svd(jnp.full((3, 3), jnp.inf), compute_uv=False).block_until_ready()  # LAPACK complains here
    return [{"status": "diverged", "message": "blew up", "metrics": {}, "trajectory": {}} for _ in configs]


def test_nothing_the_computation_prints_reaches_stdout(capfd):
    if PRINTS not in sweepable_names():
        register_sweepable(Sweepable(name=PRINTS, fields={"x": Field("float", 1.0, low=0.0, high=1.0)},
                                     run_batch=_printing_batch, static=(), metrics=(), batch_size=1))
    ((outcome, _),) = run_batch(PRINTS, [{"x": 1.0, "seed": 0}], 1)
    out = capfd.readouterr().out
    assert out == "", out
    assert "raw bytes on file descriptor 1" in outcome["message"] and "python print" in outcome["message"]
    assert outcome["status"] == "diverged"


@pytest.mark.parametrize("depth", [2, 3])
def test_an_overflowing_run_is_diverged_not_failed(capfd, depth):
    cfg = TR.normalise({"depth": depth, "lr": 1e6, "steps": 20, "records": 4, "width": 5})
    ((outcome, _),) = run_batch(TR.name, [cfg], TR.batch_size)
    assert outcome["status"] == "diverged", outcome["message"]
    assert "LinAlgError" not in outcome["message"]
    out = capfd.readouterr().out
    assert "DLASCL" not in out and out == "", out
    loss = outcome["trajectory"]["loss"]
    assert np.all(np.isfinite(loss))  # the history holds finite records only


def test_weights_whose_product_overflows_give_diverged_not_a_linalg_error(capfd):
    """The last finite weights of a blown-up depth-3 run can multiply to inf (lr=1e308 in 0.1 ended "failed"
    with LinAlgError after LAPACK printed DLASCL on stdout)."""
    from types import SimpleNamespace

    from dlnlab.sweep._functions import _outcome

    W = np.full((2, 2), 1e200)
    run = SimpleNamespace(params=(W, W, W), status="completed", message="", times=np.arange(3.0),
                          history={"loss": np.array([3.0, 2.0, 1.0]), "balancedness": np.zeros(3),
                                   "singular_values": np.ones((3, 2))}, n_grad_evals=3)
    out = _outcome(run, floor=0.5)
    assert out["status"] == "diverged" and "overflows" in out["message"]
    assert math.isnan(out["metrics"]["effective_rank"]) and math.isnan(out["metrics"]["numerical_rank"])
    assert out["metrics"]["final_loss"] == 1.0
    assert capfd.readouterr().out == ""

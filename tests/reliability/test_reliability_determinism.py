"""Determinism: the same config and seed give bit-identical numbers across runs and across executors
(a spawned local process pool and a Dask LocalCluster) on CPU."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
import reliability_helpers as rh

import dlnlab as dl
from dlnlab.sweep import get_sweepable, load_spec
from dlnlab.sweep._executors import DaskExecutor, LocalExecutor, worker_environment

# The training tests' problem and options: the compiled programs are shared (no extra compile).
NET, OBJ, OBJ_NOISY = rh.training_problem()


def _same(a, b) -> bool:
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return np.array_equal(np.asarray(a), np.asarray(b), equal_nan=True) and (
        np.asarray(a).dtype == np.asarray(b).dtype)


_EVERY = dl.Record(times=range(0, rh.STEPS + 1, rh.EVERY))


@pytest.mark.parametrize("method,opts", [
    ("gd", {"method": dl.GD(lr=0.01, steps=rh.STEPS), "record": _EVERY}),
    ("sgd", {"method": dl.SGD(lr=0.01, steps=rh.STEPS, batch_size=8), "record": _EVERY, "key": 11}),
    ("flow", {"method": dl.Flow(t1=rh.FLOW["t1"], max_steps=rh.FLOW["max_steps"])}),
])
def test_same_config_and_seed_give_the_same_bits(method, opts):
    obj = OBJ_NOISY if method == "sgd" else OBJ
    runs = [dl.train(obj, NET.init(5, scheme="gaussian", scale=0.4), **opts) for _ in range(2)]
    a, b = runs
    assert a.status == b.status and a.n_steps == b.n_steps
    assert _same(a.history, b.history) and _same(a.params, b.params) and _same(a.times, b.times)
    if method == "sgd":  # and the seed matters: another key gives other numbers
        c = dl.train(obj, NET.init(5, scheme="gaussian", scale=0.4), **{**opts, "key": 12})
        assert not _same(a.history["loss"], c.history["loss"])


SWEEP = {"function": "teacher_regression", "seeds": 2,
         "fixed": {"steps": 30, "width": 4, "d_in": 3, "d_out": 2, "teacher_sv": [2.0, 0.5],
                   "records": 5, "input_anisotropy": 3.0},
         "grid": {"init_scale": [0.1, 0.5], "lr": [0.05, 60.0]}}  # lr = 60 diverges


@pytest.mark.slow
def test_local_pool_and_dask_give_the_same_bits(monkeypatch):
    for k, v in worker_environment().items():  # both executors set these; set them once for both
        monkeypatch.setenv(k, v)
    fn = get_sweepable("teacher_regression")
    configs = load_spec(SWEEP).expand()
    batch = [(fn.name, configs, fn.batch_size)]
    with ThreadPoolExecutor(2) as pool:  # both start their worker processes at once
        jobs = [pool.submit(lambda ex=ex: list(ex.run(batch)))
                for ex in (LocalExecutor(workers=1), DaskExecutor(workers=1))]
        ((_, local),), ((_, dask),) = (j.result() for j in jobs)
    assert len(local) == len(dask) == 8
    for (o1, _), (o2, _) in zip(local, dask):
        assert o1["status"] == o2["status"] != "failed", o1["message"]
        assert _same(o1["metrics"], o2["metrics"])
        assert _same(o1["trajectory"], o2["trajectory"])
    # and the runs differ between seeds and scales (the comparison is not vacuous)
    assert len({o["metrics"]["final_loss"] for o, _ in local}) == 8
    # a diverged run is a result with finite numbers, reported as such
    status = {cfg["lr"]: set() for cfg in configs}
    for cfg, (o, _) in zip(configs, local):
        status[cfg["lr"]].add(o["status"])
        assert all(np.all(np.isfinite(v)) for v in o["trajectory"].values())
        assert np.isfinite(o["metrics"]["final_loss"])
    assert status == {0.05: {"completed"}, 60.0: {"diverged"}}

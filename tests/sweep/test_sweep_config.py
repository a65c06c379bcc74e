"""Sweep configs: grids, zipped axes, seeds, normalisation, content addresses and clear errors."""

from __future__ import annotations

import io
import json

import numpy as np
import pytest

from dlnlab.errors import ConfigError
from dlnlab.sweep import Store, get_sweepable, load_spec, load_trajectory, plan_batches, run_id

BASE = {"function": "teacher_regression", "fixed": {"steps": 10}}


def test_cartesian_zip_and_seeds_expand_to_every_combination():
    spec = load_spec(
        {
            **BASE,
            "grid": {"lr": [0.01, 0.02], "depth": [2, 3, 4]},
            "zip": [{"width": [5, 6], "init_scale": [0.1, 0.2]}],
            "seeds": [3, 7],
        }
    )
    configs = spec.expand()
    assert len(configs) == 2 * 3 * 2 * 2
    got = {(c["lr"], c["depth"], c["width"], c["init_scale"], c["seed"]) for c in configs}
    want = {
        (lr, d, w, s, seed)
        for lr in (0.01, 0.02)
        for d in (2, 3, 4)
        for w, s in ((5, 0.1), (6, 0.2))
        for seed in (3, 7)
    }
    assert got == want  # zipped fields move together: never (5, 0.2)
    assert all(c["steps"] == 10 for c in configs)
    assert spec.varying_axes == [("lr",), ("depth",), ("width", "init_scale")]


def test_normalisation_gives_equal_runs_equal_ids():
    fn = get_sweepable("teacher_regression")
    a = fn.normalise({"lr": 1, "steps": 10})
    b = fn.normalise({"lr": 1.0, "steps": 10.0, "depth": 3})  # 3 is the default depth
    assert a == b and isinstance(a["lr"], float) and isinstance(a["steps"], int)
    assert run_id(fn.name, a) == run_id(fn.name, b)
    c = fn.normalise({"lr": 1.0000001, "steps": 10})
    assert run_id(fn.name, c) != run_id(fn.name, a)
    assert run_id(fn.name, a, version="0.0.0") != run_id(fn.name, a)  # new version, new address
    assert load_spec({**BASE, "grid": {"lr": [1, 1.0]}}).expand().__len__() == 1


def test_toml_file_and_string(tmp_path):
    text = """
name = "demo"
function = "teacher_regression"
seeds = 2
[fixed]
steps = 10
[grid]
lr = [0.01, 0.02]
[[zip]]
width = [4, 8]
depth = [2, 3]
"""
    path = tmp_path / "s.toml"
    path.write_text(text)
    spec = load_spec(path)
    assert spec.name == "demo" and len(spec.expand()) == 2 * 2 * 2
    assert load_spec(text).expand() == spec.expand()


@pytest.mark.parametrize(
    "config, match",
    [
        ({**BASE, "grid": {"nope": [1]}}, "grid.nope: not a field"),
        (
            {**BASE, "zip": [{"width": [4, 8], "lr": [0.1]}]},
            "zip\\[0\\]: expected lists of equal length",
        ),
        ({**BASE, "grid": {"steps": [1, 2]}}, "grid.steps: field already set in fixed"),
        ({**BASE, "grid": {"lr": []}}, "grid.lr: expected a non-empty list"),
        ({**BASE, "grid": {"lr": [-1.0]}}, "lr: expected a value >= 0"),
        ({**BASE, "fixed": {"init": "magic"}}, "init: expected one of"),
        ({**BASE, "fixed": {"depth": 2.5}}, "depth: expected an integer"),
        ({**BASE, "seeds": 0}, "seeds: expected a count >= 1"),
        ({**BASE, "seeds": [1, 1]}, "seeds: expected distinct"),
        ({**BASE, "grid": {"seed": [1]}}, "set seeds with the top-level"),
        ({**BASE, "function": "os.system"}, "function: expected one of"),
        ({**BASE, "extra": 1}, "unknown key 'extra'"),
        ({"grid": {"lr": [1.0]}}, "function: missing"),
        ({**BASE, "fixed": {"teacher_sv": [1.0] * 9}}, "teacher_sv: expected at most"),
    ],
)
def test_bad_configs_name_the_field(config, match):
    with pytest.raises(ConfigError, match=match):
        load_spec(config)


def test_malformed_toml_and_missing_file(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text('function = "teacher_regression"\n[grid\nlr = [1]\n')
    with pytest.raises(ConfigError, match="^config: malformed TOML in bad.toml"):
        load_spec(bad)
    with pytest.raises(ConfigError, match="no such file"):
        load_spec(tmp_path / "absent.toml")


def test_batches_group_static_fields_and_have_fixed_size():
    spec = load_spec({**BASE, "grid": {"depth": [2, 3], "lr": [0.01, 0.02, 0.03]}, "seeds": 3})
    fn = spec.sweepable
    todo = [(run_id(fn.name, c), c) for c in spec.expand()]
    batches = plan_batches(todo, fn)
    seen = [rid for _, runs in batches for rid, _ in runs]
    assert sorted(seen) == sorted(r for r, _ in todo)  # every run once
    for _, runs in batches:
        assert 1 <= len(runs) <= fn.batch_size
        assert len({fn.batch_key(c) for _, c in runs}) == 1  # one compiled program per batch
    assert plan_batches(list(reversed(todo)), fn) == batches  # order-independent


def test_store_commit_marker_and_cleanup(tmp_path):
    fn = get_sweepable("teacher_regression")
    cfg = fn.normalise({"steps": 10})
    rid = run_id(fn.name, cfg)
    with Store(tmp_path) as store:
        assert not store.is_done(rid)
        traj = {"loss": np.array([3.0, 2.0, 1.0]), "times": np.arange(3.0)}
        store.write(
            rid,
            function=fn.name,
            version="x",
            config=cfg,
            seconds=0.5,
            outcome={
                "status": "max_steps",
                "metrics": {"final_loss": 1.0, "fit_time": float("nan")},
                "trajectory": traj,
            },
        )
        assert store.is_done(rid)
        rec = json.loads((tmp_path / "runs" / f"{rid}.json").read_text())
        assert rec["metrics"]["fit_time"] is None and rec["config"] == json.loads(json.dumps(cfg))
        loaded = load_trajectory(tmp_path, rid)
        np.testing.assert_array_equal(loaded["loss"], traj["loss"])
        # A failed run is stored but not done: the next sweep retries it.
        store.write(
            rid,
            function=fn.name,
            version="x",
            config=cfg,
            seconds=0.0,
            outcome={"status": "failed", "message": "boom"},
        )
        assert not store.is_done(rid)
        df = store.table([rid], metrics=fn.metrics)
        assert df.loc[0, "status"] == "failed" and df.loc[0, "message"] == "boom"
        buf = io.BytesIO()
        df.to_parquet(buf)  # every column is Parquet-compatible
    (tmp_path / "runs" / f".{rid}.json.abc.tmp").write_text("partial")
    with Store(tmp_path) as store:
        assert not list((tmp_path / "runs").glob("*.tmp"))  # leftovers of a killed writer removed
        with pytest.raises(ConfigError, match="no other sweep is writing to"):
            Store(tmp_path, lock_timeout=0).__enter__()

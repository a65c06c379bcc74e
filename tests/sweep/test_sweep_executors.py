"""Executors: local pool vs Dask LocalCluster bit for bit, batching independence, resume after SIGKILL."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import dlnlab as dl
from dlnlab.sweep import get_sweepable, load_spec, load_trajectory, run_id
from dlnlab.sweep._executors import run_batch

SMALL = {
    "function": "teacher_regression",
    "seeds": 3,
    "fixed": {
        "steps": 60,
        "width": 5,
        "d_in": 4,
        "d_out": 3,
        "teacher_sv": [3.0, 1.0],
        "records": 6,
        "input_anisotropy": 4.0,
    },
    "grid": {"init_scale": [0.05, 0.3], "lr": [0.02, 0.05]},
}


def _trajectories(out, ids):
    return {rid: load_trajectory(out, rid) for rid in ids}


def _same_bits(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(np.array_equal(a[k], b[k], equal_nan=True) for k in a)


@pytest.mark.slow
def test_dask_localcluster_matches_local_pool_bit_for_bit(tmp_path):
    local = dl.sweep(
        SMALL, out=tmp_path / "local", executor="local", workers=1, plot=False, report=False
    )
    dask = dl.sweep(
        SMALL, out=tmp_path / "dask", executor="dask", workers=2, plot=False, report=False
    )
    assert len(local) == 12 and set(local["status"]) <= {"completed", "converged"}
    cols = [c for c in local.columns if c != "seconds"]
    pd.testing.assert_frame_equal(local[cols], dask[cols], check_exact=True)
    ids = list(local["run_id"])
    tl, td = _trajectories(tmp_path / "local", ids), _trajectories(tmp_path / "dask", ids)
    assert all(_same_bits(tl[r], td[r]) for r in ids)
    # Training did something: the loss fell on every run.
    assert all(tl[r]["loss"][-1] < tl[r]["loss"][0] for r in ids)
    # A re-run finds everything stored and recomputes nothing.
    before = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "local" / "runs").iterdir()}
    again = dl.sweep(SMALL, out=tmp_path / "local", plot=False, report=False)
    after = {p.name: p.stat().st_mtime_ns for p in (tmp_path / "local" / "runs").iterdir()}
    assert before == after
    pd.testing.assert_frame_equal(again[cols], local[cols], check_exact=True)


def test_run_numbers_do_not_depend_on_batch_companions():
    fn = get_sweepable("teacher_regression")
    configs = load_spec(SMALL).expand()[:3]
    together = run_batch(fn.name, configs, fn.batch_size)
    alone = run_batch(fn.name, [configs[1]], fn.batch_size)
    assert together[1][0]["status"] == alone[0][0]["status"] != "failed"
    m1, m2 = together[1][0]["metrics"], alone[0][0]["metrics"]
    assert m1.keys() == m2.keys()
    assert all(np.array_equal(m1[k], m2[k], equal_nan=True) for k in m1)
    assert _same_bits(together[1][0]["trajectory"], alone[0][0]["trajectory"])


def test_a_crashing_function_gives_failed_outcomes_not_an_exception():
    out = run_batch("teacher_regression", [{"not": "a config"}], 8)
    ((outcome, _),) = out
    assert outcome["status"] == "failed" and "KeyError" in outcome["message"]


@pytest.mark.slow
def test_sigkill_mid_sweep_then_resume_stores_every_run_once(tmp_path):
    # Three static settings (steps) make three separately compiled batches: the sweep takes a while.
    cfg = {**SMALL, "grid": {"steps": [40, 41, 42]}, "seeds": 4}
    cfg["fixed"] = {k: v for k, v in SMALL["fixed"].items() if k != "steps"}
    toml = tmp_path / "sweep.toml"
    toml.write_text(_to_toml(cfg))
    out = tmp_path / "store"
    total = len(load_spec(cfg).expand())
    cmd = [
        sys.executable,
        "-m",
        "dlnlab.cli",
        "sweep",
        str(toml),
        "--out",
        str(out),
        "--quiet",
        "--no-plot",
        "--workers",
        "1",
    ]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True
    )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline and proc.poll() is None:
            if len(list((out / "runs").glob("*.json"))) >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep finished before it could be killed"
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    finally:
        try:
            os.killpg(proc.pid, signal.SIGKILL)  # the orphaned pool workers
        except ProcessLookupError:
            pass
    done_before = len(list((out / "runs").glob("*.json")))
    assert 0 < done_before < total
    res = subprocess.run(cmd[:-1] + ["2"], capture_output=True, text=True, timeout=400)
    assert res.returncode == 0, res.stderr[-2000:]
    ids = {run_id("teacher_regression", c) for c in load_spec(cfg).expand()}
    files = sorted(p.name for p in (out / "runs").iterdir())
    assert files == sorted([f"{r}.json" for r in ids] + [f"{r}.npz" for r in ids])  # once each
    for r in ids:
        rec = json.loads((out / "runs" / f"{r}.json").read_text())
        assert rec["run_id"] == r and rec["status"] in ("completed", "converged")
        with np.load(out / "runs" / f"{r}.npz", allow_pickle=False) as z:
            assert z["loss"].shape[0] > 1
    assert not list(out.rglob("*.tmp"))
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == total and df["run_id"].is_unique and set(df["run_id"]) == ids


def _to_toml(cfg: dict) -> str:
    def val(v):
        return json.dumps(v)

    lines = [f'function = "{cfg["function"]}"', f"seeds = {cfg['seeds']}", "[fixed]"]
    lines += [f"{k} = {val(v)}" for k, v in cfg["fixed"].items()]
    lines += ["[grid]"] + [f"{k} = {val(v)}" for k, v in cfg["grid"].items()]
    return "\n".join(lines) + "\n"


def test_cli_sweep_and_plot_exit_codes(tmp_path, capsys):
    from dlnlab.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("function = [unclosed\n")
    assert main(["sweep", str(bad), "--out", str(tmp_path / "o")]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "malformed TOML" in err and "Traceback" not in err
    unknown = tmp_path / "unknown.toml"
    unknown.write_text('function = "teacher_regression"\n[grid]\nwidht = [1, 2]\n')
    assert main(["sweep", str(unknown), "--out", str(tmp_path / "o")]) == 2
    assert "grid.widht: not a field" in capsys.readouterr().err
    assert main(["sweep", str(unknown), "--out", str(tmp_path), "--executor", "spark"]) == 2
    assert main(["plot", str(tmp_path / "nothing")]) == 2
    assert "out: expected a finished sweep folder" in capsys.readouterr().err


def test_examples_sweep_toml_is_valid():
    spec = load_spec(Path(__file__).resolve().parents[2] / "examples" / "sweep.toml")
    assert len(spec.expand()) >= 4 and spec.varying_axes

"""Store integrity: atomic writes, checksums verified on read, SIGKILL at random moments, two writers.

The sweeps here run a NumPy-only sweepable function in forked processes (no JAX in the child, no
interpreter start-up), so 20 kills at random moments fit in seconds. The store logic under test is
the real one: ``dl.sweep`` with its Store, lock and atomic writes; only the executor is the serial
in-process one (the store is written by the sweep process whichever executor computes the runs).
"""

from __future__ import annotations

import hashlib
import io
import json
import multiprocessing
import os
import signal
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import reliability_helpers as rh

from dlnlab.errors import ConfigError, DataError
from dlnlab.sweep import Store, load_spec, load_trajectory, run_id
from dlnlab.sweep import _api as sweep_api

os.environ.setdefault("DLNLAB_STORE_KEY", "dlnlab-tests")  # sign test stores with a test key, not ~/.config

rh.register_cheap()
CFG = {"function": rh.CHEAP, "seeds": 4, "fixed": {"n": 60},
       "grid": {"x": [round(0.1 * i, 1) for i in range(1, 26)]}}
IDS = sorted(run_id(rh.CHEAP, c) for c in load_spec(CFG).expand())
KILLS = 20
FIGURES: dict = {}  # numbers for docs/reliability.md (printed by the tests)


class _LoggingExecutor(rh.SerialExecutor):
    """The serial executor that also appends the id of every run it computes to a file."""

    def __init__(self, log):
        self.log = log

    def run(self, batches):
        for i, result in super().run(batches):
            with open(self.log, "a") as f:
                f.write("".join(f"{run_id(batches[i][0], c)}\n" for c in batches[i][1]))
            yield i, result


def _sweep_in_this_process(out, cfg=CFG, *, log=None, **kw):
    old = sweep_api.make_executor
    sweep_api.make_executor = rh.serial_executor if log is None else (lambda *a, **k: _LoggingExecutor(log))
    try:
        return sweep_api.sweep(cfg, out=out, plot=False, report=False, quiet=True, **kw)
    finally:
        sweep_api.make_executor = old


def _child(out, go=None, log=None):
    if go is not None:
        go.wait()
    if log is not None:  # the waiting message goes to stderr: keep it for the test
        sys.stderr = open(f"{log}.err", "w", buffering=1)
    try:
        _sweep_in_this_process(out, log=log)
    except ConfigError as exc:
        os._exit(3 if "another sweep" in str(exc) else 4)
    os._exit(0)


def _fork(*args):
    ctx = multiprocessing.get_context("fork")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # JAX warns about fork; the child never touches JAX
        p = ctx.Process(target=_child, args=args)
        p.start()
    return p


def _check_consistent(out: Path) -> int:
    """Every committed run (its JSON exists) is readable and verified; returns how many."""
    store = Store(out)
    done = 0
    for path in sorted((out / "runs").glob("*.json")):
        rid = path.stem
        rec = store.record(rid)
        assert rec is not None, f"unreadable or unverified record {path.name}"
        assert rec["status"] != "failed", rec["message"]
        assert store.is_done(rid), f"record {rid} without a verified trajectory"
        load_trajectory(out, rid)
        done += 1
    leftovers = [p.name for p in out.rglob("*") if p.is_file() and p.name.endswith(".tmp")]
    assert all(n.startswith(".") for n in leftovers), leftovers  # only hidden temporaries
    return done


def _check_complete(out: Path, reference: Path):
    files = sorted(p.name for p in (out / "runs").iterdir())
    assert files == sorted([f"{r}.json" for r in IDS] + [f"{r}.npz" for r in IDS])  # none lost/extra
    assert not list(out.rglob("*.tmp"))
    df = pd.read_parquet(out / "results.parquet")
    assert len(df) == len(IDS) and df["run_id"].is_unique and sorted(df["run_id"]) == IDS
    for rid in IDS:  # identical numbers to an uninterrupted sweep
        a, b = load_trajectory(out, rid), load_trajectory(reference, rid)
        assert a.keys() == b.keys() and all(np.array_equal(a[k], b[k]) for k in a)
        ra, rb = (json.loads((d / "runs" / f"{rid}.json").read_text()) for d in (out, reference))
        assert ra["metrics"] == rb["metrics"] and ra["config"] == rb["config"]


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    out = tmp_path_factory.mktemp("reference")
    t0 = time.monotonic()
    p = _fork(out)
    p.join(120)
    assert p.exitcode == 0
    FIGURES["full_sweep_seconds"] = time.monotonic() - t0
    _check_complete(out, out)
    return out


def test_sigkill_at_random_moments_never_loses_or_corrupts_a_run(reference, tmp_path):
    rng = np.random.default_rng(2024)
    full = FIGURES["full_sweep_seconds"]
    kills, completed, stores, progress = 0, 0, [], []
    out = tmp_path / "store0"
    stores.append(out)
    fresh = True
    while kills < KILLS:
        t0 = time.monotonic()
        p = _fork(out)
        p.join(rng.uniform(0.0, 0.7 * full))
        if not p.is_alive() and fresh:  # a whole sweep took this long: aim the kills within it
            full = min(full, time.monotonic() - t0)
        fresh = False
        if p.is_alive():
            os.kill(p.pid, signal.SIGKILL)
            p.join(30)
        if p.exitcode == -signal.SIGKILL:
            kills += 1
            progress.append(_check_consistent(out))
        else:
            assert p.exitcode == 0
            completed += 1
            _check_complete(out, reference)
            out = tmp_path / f"store{len(stores)}"
            stores.append(out)
            fresh = True
    # Resume every store to completion: nothing lost, duplicated or unreadable, same numbers.
    for s in stores:
        _sweep_in_this_process(s)
        _check_complete(s, reference)
    FIGURES.update(kills=kills, completed_between_kills=completed, stores=len(stores),
                   runs_per_store=len(IDS), runs_lost=0)
    rh.OUTCOMES["store: SIGKILLs survived (each resumed complete)"] += kills
    rh.OUTCOMES["store: runs lost, duplicated or unreadable"] += 0  # asserted by _check_complete
    print(f"\nSIGKILL figures: {FIGURES}; runs committed at each kill: {progress}")
    assert any(0 < n < len(IDS) for n in progress)  # kills landed mid-sweep, not only at the ends


def _computed(logs) -> list[str]:
    return sorted(line for log in logs if log.exists() for line in log.read_text().split())


def _wait_for(predicate, seconds=60.0):
    t0 = time.monotonic()
    while not predicate():
        assert time.monotonic() - t0 < seconds, "timed out"
        time.sleep(0.02)


def test_two_sweeps_on_one_store_both_finish_and_compute_each_run_once(reference, tmp_path):
    outcomes = []
    # Round 0: the test holds the lock, so both sweeps must wait (and say so), then share the store.
    # Rounds 1-2: two sweeps released at the same instant.
    for r in range(3):
        out, ctx = tmp_path / f"shared{r}", multiprocessing.get_context("fork")
        logs = [tmp_path / f"computed{r}-{k}" for k in range(2)]
        go = ctx.Event()
        holder = Store(out).__enter__() if r == 0 else None
        procs = [_fork(out, go, log) for log in logs]
        go.set()
        if holder is not None:
            errs = [Path(f"{log}.err") for log in logs]
            _wait_for(lambda errs=errs: all(e.exists() and "waiting" in e.read_text() for e in errs))
            holder.__exit__(None, None, None)
        for p in procs:
            p.join(120)
        outcomes.append([p.exitcode for p in procs])
        assert outcomes[-1] == [0, 0], outcomes  # both finished
        assert _computed(logs) == IDS  # every run computed exactly once, by one of the two
        _check_complete(out, reference)
        if r == 0:
            for log in logs:
                msg = Path(f"{log}.err").read_text()
                assert f"out: another sweep (pid {os.getpid()} on " in msg and "waiting until it finishes" in msg
    FIGURES["concurrent_outcomes"] = outcomes
    rh.OUTCOMES["store: two sweeps at once, both finished, runs once"] += len(outcomes)
    print(f"\nexit codes of two sweeps started together on one store (0 = finished): {outcomes}")


def test_lock_timeout(tmp_path):
    with Store(tmp_path):
        t0 = time.monotonic()
        late = r"^out: expected another sweep \(pid \d+ .* within 0.2 s \(lock_timeout\), got no release"
        with pytest.raises(ConfigError, match=late):
            _sweep_in_this_process(tmp_path, lock_timeout=0.2)
        assert time.monotonic() - t0 >= 0.2  # it did wait
        busy = r"^out: expected a folder no other sweep is writing to \(lock_timeout=0\), got '"
        with pytest.raises(ConfigError, match=busy):
            with Store(tmp_path, lock_timeout=0):
                pass
        for bad in (-1.0, float("nan"), "5", True, [1]):
            with pytest.raises(ConfigError, match=r"^lock_timeout: expected"):
                _sweep_in_this_process(tmp_path, lock_timeout=bad)
    assert not list((tmp_path / "runs").glob("*.json"))  # the refused sweeps stored nothing
    df = _sweep_in_this_process(tmp_path, lock_timeout=0)  # free again: runs at once
    assert sorted(df["run_id"]) == IDS


def _write_one(out, rid="a" * 32, traj=None):
    traj = {"loss": np.arange(5.0)} if traj is None else traj
    with Store(out) as store:
        store.write(rid, function=rh.CHEAP, version="x", config={"x": 1.0}, seconds=0.1,
                    outcome={"status": "max_steps", "metrics": {"m": 1.0}, "trajectory": traj})
    return rid


def test_checksums_are_verified_on_read(tmp_path):
    rid = _write_one(tmp_path)
    store = Store(tmp_path)
    rec = store.record(rid)
    assert rec is not None and store.is_done(rid)
    npz = tmp_path / "runs" / f"{rid}.npz"
    assert rec["npz_sha256"] == hashlib.sha256(npz.read_bytes()).hexdigest()
    # One flipped byte in the trajectory: detected, the run counts as not done (a sweep redoes it).
    raw = bytearray(npz.read_bytes())
    raw[len(raw) // 2] ^= 0x01
    npz.write_bytes(bytes(raw))
    assert not store.is_done(rid)
    with pytest.raises(DataError, match="checksum"):
        load_trajectory(tmp_path, rid)
    # An edited record (a metric changed by hand) fails its own checksum.
    _write_one(tmp_path, rid)
    path = tmp_path / "runs" / f"{rid}.json"
    rec = json.loads(path.read_text())
    rec["metrics"]["m"] = 2.0
    path.write_text(json.dumps(rec))
    assert store.record(rid) is None and not store.is_done(rid)
    # A truncated record is unreadable, never half-read.
    _write_one(tmp_path, rid)
    path.write_text(path.read_text()[:40])
    assert store.record(rid) is None


def test_a_corrupted_run_is_recomputed_by_the_next_sweep(reference, tmp_path):
    out = tmp_path / "s"
    _sweep_in_this_process(out)
    victim = IDS[3]
    npz = out / "runs" / f"{victim}.npz"
    npz.write_bytes(npz.read_bytes()[:-7])
    _sweep_in_this_process(out)
    _check_complete(out, reference)


class _Boom:
    """Unpickling this would create a folder: proof that a stored array was unpickled."""

    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.mkdir, (self.path,))


def test_trajectories_are_never_unpickled(tmp_path):
    rid = _write_one(tmp_path)
    marker = tmp_path / "pwned"
    buf = io.BytesIO()
    np.savez(buf, loss=np.array([_Boom(str(marker))], dtype=object))
    npz = tmp_path / "runs" / f"{rid}.npz"
    npz.write_bytes(buf.getvalue())
    rec = json.loads((tmp_path / "runs" / f"{rid}.json").read_text())
    # Even with a forged, matching checksum the object array is refused, not unpickled.
    rec["npz_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()
    body = {k: v for k, v in rec.items() if k != "sha256"}
    rec["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    (tmp_path / "runs" / f"{rid}.json").write_text(json.dumps(rec, sort_keys=True))
    with pytest.raises(DataError):
        load_trajectory(tmp_path, rid)
    assert not marker.exists()
    with pytest.raises(ConfigError, match="object"):
        _write_one(tmp_path, "b" * 32, traj={"bad": np.array([{}], dtype=object)})


def test_sweeps_record_diverged_runs_go_on_and_report_them(tmp_path):
    cfg = {"function": rh.CHEAP, "seeds": 2, "fixed": {"n": 5}, "grid": {"x": [1.0, 5000.0]}}
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(sweep_api, "make_executor", rh.serial_executor)
        df = sweep_api.sweep(cfg, out=tmp_path, plot=False, quiet=True)
    assert sorted(df["status"]) == ["diverged", "diverged", "max_steps", "max_steps"]
    assert set(df.loc[df["status"] == "diverged", "x"]) == {5000.0}
    assert all(Store(tmp_path).is_done(r) for r in df["run_id"])  # stored, not retried
    html = (tmp_path / "report.html").read_text()
    assert "status diverged" in html and html.count(">diverged<") == 2

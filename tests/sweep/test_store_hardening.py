"""Store and CLI hardening (issue 13): nothing read from a store or a config chooses a path outside ``--out``, a plot
never mixes two sweeps, a broken store gives one clear line (exit 2), never a traceback.

Sweeps run a NumPy-only sweepable function in this process (the store logic is what is under test).
"""

from __future__ import annotations

import io
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlnlab.cli import main
from dlnlab.errors import ConfigError, DataError
from dlnlab.sweep import Field, Store, Sweepable, get_sweepable, load_trajectory, register_sweepable, sweepable_names
from dlnlab.sweep import _api as sweep_api

CHEAP = "hardening_cheap"


def _batch(configs):
    out = []
    for cfg in configs:
        rng = np.random.default_rng([cfg["seed"], cfg["n"]])
        loss = np.cumsum(rng.normal(size=cfg["n"]) ** 2) * cfg["x"]
        out.append({"status": "max_steps", "message": "", "metrics": {"final_loss": float(loss[-1]),
                                                                      "first": float(loss[0])},
                    "trajectory": {"loss": loss}})
    return out


def _register():
    if CHEAP in sweepable_names():
        return get_sweepable(CHEAP)
    return register_sweepable(Sweepable(
        name=CHEAP, fields={"x": Field("float", 1.0, "scale", low=0.0, high=1e6),
                            "n": Field("int", 5, "length", low=1, high=100)},
        run_batch=_batch, static=("n",), metrics=("final_loss", "first"), batch_size=2))


_register()
CFG = {"function": CHEAP, "seeds": 2, "grid": {"x": [0.5, 1.0, 2.0]}}


class _Serial:
    name = "serial"

    def run(self, batches):
        from dlnlab.sweep._executors import run_batch

        for i, b in enumerate(batches):
            yield i, run_batch(*b)


@pytest.fixture(autouse=True)
def _serial(monkeypatch):
    monkeypatch.setattr(sweep_api, "make_executor", lambda *a, **k: _Serial())


def _sweep(out, cfg=CFG, **kw):
    return sweep_api.sweep(cfg, out=out, plot=False, report=False, quiet=True, **kw)


def _cli(capsys, argv):
    code = main([str(a) for a in argv])
    cap = capsys.readouterr()
    assert "Traceback" not in cap.out + cap.err
    return code, cap.out, cap.err


def _one_clear_line(code, err, field="out"):
    assert code == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"dlnlab: error: {field}: "), err
    assert "expected" in lines[0] and "got" in lines[0], err
    return lines[0]


# -- 1. path traversal ---------------------------------------------------------------------------


def _files_under(root: Path) -> set[str]:
    return {str(p.relative_to(root)) for p in root.rglob("*") if p.is_file()}


def test_metric_names_from_a_store_never_choose_a_path_outside_out(tmp_path, capsys):
    store = tmp_path / "a" / "b" / "c" / "store"
    _sweep(store)
    evil = "/../../../ESCAPED2"
    meta = json.loads((store / "sweep.json").read_text())
    meta["metrics"] = [evil]
    (store / "sweep.json").write_text(json.dumps(meta))
    df = pd.read_parquet(store / "results.parquet")
    df[evil] = np.arange(len(df), dtype=float)
    df.to_parquet(store / "results.parquet", index=False)
    before = _files_under(tmp_path)
    code, _, err = _cli(capsys, ["plot", store])
    assert code == 2, err
    assert "ESCAPED2" not in " ".join(_files_under(tmp_path) - before)
    assert not list(tmp_path.rglob("*ESCAPED2*"))


@pytest.mark.parametrize("metric", ["../../up", "/abs/path", "a/b", "..", ".hidden", "x\x00y", "sweep\\..\\w", ""])
def test_metric_names_given_on_the_command_line_must_be_slugs(tmp_path, capsys, metric):
    store = tmp_path / "store"
    _sweep(store)
    before = _files_under(tmp_path)
    code, _, err = _cli(capsys, ["plot", store, "--metric", metric])
    line = _one_clear_line(code, err, "--metric")
    assert "letters, digits" in line
    assert _files_under(tmp_path) == before
    assert not (store / "figures").exists()


def test_plot_writes_only_under_out_figures(tmp_path, capsys):
    store = tmp_path / "store"
    _sweep(store)
    before = _files_under(tmp_path)
    code, out, err = _cli(capsys, ["plot", store, "--metric", "final_loss"])
    assert code == 0, err
    new = _files_under(tmp_path) - before
    assert new == {"store/figures/sweep_final_loss.png", "store/figures/sweep_final_loss.svg"}
    assert out.strip().endswith("sweep_final_loss.png")


# -- 2. no orphan workers ------------------------------------------------------------------------


def _children(pid: int) -> set[int]:
    """Live processes whose parent is ``pid`` (Linux /proc)."""
    out = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:
            continue
        fields = text.rsplit(")", 1)[1].split()
        if int(fields[1]) == pid and fields[0] != "Z":
            out.add(int(stat.parent.name))
    return out


def _alive(pid: int) -> bool:
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return text.rsplit(")", 1)[1].split()[0] != "Z"


@pytest.mark.slow
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="needs Linux /proc to find the workers")
@pytest.mark.parametrize("how", ["SIGKILL", "SIGINT"])
def test_pool_workers_exit_when_the_sweep_process_is_sigkilled(tmp_path, how):
    """SIGKILL (no cleanup in the parent): the workers notice and exit. SIGINT (Ctrl-C): the sweep shuts its pool
    down as before, reports the interruption (exit 130), and leaves no worker behind."""
    import signal
    import subprocess
    import sys
    import time

    toml = tmp_path / "sweep.toml"
    # Many small compiled batches (four static step counts): the workers are busy when the parent dies.
    toml.write_text('function = "teacher_regression"\nseeds = 8\n[fixed]\nwidth = 4\nd_in = 3\nd_out = 2\n'
                    'teacher_sv = [1.0]\nrecords = 4\n[grid]\nsteps = [30, 31, 32, 33]\n')
    out = tmp_path / "store"
    cmd = [sys.executable, "-m", "dlnlab.cli", "sweep", str(toml), "--out", str(out), "--quiet", "--no-plot",
           "--workers", "2"]
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, start_new_session=True)
    workers: set[int] = set()
    try:
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and proc.poll() is None:
            workers |= _children(proc.pid)
            if len(list((out / "runs").glob("*.json"))) >= 1:
                break
            time.sleep(0.05)
        assert proc.poll() is None, "the sweep ended before it could be killed: " + proc.stderr.read().decode()[-500:]
        workers |= _children(proc.pid)
        assert len(workers) >= 2, workers  # the pool workers (and the resource tracker) were seen
        os.kill(proc.pid, getattr(signal, how))
        code = proc.wait(timeout=300)
        if how == "SIGINT":
            err = proc.stderr.read().decode()
            assert code == 130 and "dlnlab: interrupted" in err and "Traceback" not in err, (code, err[-2000:])
            assert not list(out.rglob("*.tmp")), "a clean shutdown leaves no temporaries"
        t0 = time.monotonic()
        while any(_alive(w) for w in workers) and time.monotonic() - t0 < 60:
            time.sleep(0.05)
        left = sorted(w for w in workers if _alive(w))
        print(f"\norphans: {len(left)} of {len(workers)} children of the killed sweep alive "
              f"{time.monotonic() - t0:.2f} s after the kill")
        assert not left, f"{len(left)} of {len(workers)} children outlived the killed sweep by 60 s: {left}"
    finally:
        for w in workers:  # never leave them behind, whatever the outcome
            try:
                os.kill(w, signal.SIGKILL)
            except ProcessLookupError:
                pass


# -- 3. a plot never mixes sweeps; edits are detected ----------------------------------------------

CFG_B = {"function": CHEAP, "seeds": 2, "grid": {"x": [3.0, 4.0]}, "fixed": {"n": 7}}


class _DiesAfterOneBatch(_Serial):
    def run(self, batches):
        for i, res in super().run(batches):
            yield i, res
            raise RuntimeError("killed (test)")


def test_plot_after_a_killed_sweep_never_draws_the_previous_sweeps_table(tmp_path, capsys, monkeypatch):
    store = tmp_path / "store"
    _sweep(store)  # sweep A: complete
    monkeypatch.setattr(sweep_api, "make_executor", lambda *a, **k: _DiesAfterOneBatch())
    with pytest.raises(RuntimeError, match="killed"):
        _sweep(store, CFG_B)  # sweep B: its sweep.json is written, one batch stored, then it dies
    assert json.loads((store / "sweep.json").read_text())["grid"] == CFG_B["grid"]
    code, _, err = _cli(capsys, ["plot", store])
    line = _one_clear_line(code, err)
    assert "2 of 4 runs" in line and "another sweep" in line, line
    assert not (store / "figures").exists()
    with pytest.raises(ConfigError, match="^out: "):
        sweep_api.load_results(store)


def test_a_table_that_does_not_match_its_sweep_is_rebuilt_from_the_records(tmp_path, capsys):
    store = tmp_path / "store"
    _sweep(store)  # sweep A
    b = {**CFG_B, "grid": {"x": [0.5, 2.0]}, "fixed": {}}  # sweep B: runs that A already stored
    spec_b = sweep_api.load_spec(b)
    meta = json.loads((store / "sweep.json").read_text())
    meta.update(grid=b["grid"], runs=[sweep_api.run_id(CHEAP, c) for c in spec_b.expand()])
    (store / "sweep.json").write_text(json.dumps(meta))  # as a running sweep B leaves it
    df = sweep_api.load_results(store)
    assert sorted(df["run_id"]) == sorted(meta["runs"]) and sorted(set(df["x"])) == [0.5, 2.0]
    code, out, err = _cli(capsys, ["plot", store])
    assert code == 0, err


def test_an_edited_table_is_not_plotted_as_is(tmp_path, capsys):
    store = tmp_path / "store"
    truth = _sweep(store)
    edited = truth.copy()
    edited["final_loss"] = -1.0
    edited.to_parquet(store / "results.parquet", index=False)
    df = sweep_api.load_results(store)  # rebuilt from the verified records
    assert (df["final_loss"] > 0).all()
    pd.testing.assert_frame_equal(df.sort_values("run_id").reset_index(drop=True)[["run_id", "final_loss"]],
                                  truth.sort_values("run_id").reset_index(drop=True)[["run_id", "final_loss"]])
    # An untouched store is read as written (the manifest matches).
    _sweep(store)
    pd.testing.assert_frame_equal(sweep_api.load_results(store), pd.read_parquet(store / "results.parquet"))


def _forge(store: Path, rid: str, change):
    """Edit a record the way someone who knows the format would: change it, recompute its SHA-256."""
    import hashlib

    path = store / "runs" / f"{rid}.json"
    rec = json.loads(path.read_text())
    change(rec)
    body = {k: v for k, v in rec.items() if k not in ("sha256", "mac")}
    rec["sha256"] = hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()
    path.write_text(json.dumps(rec, sort_keys=True))


def test_an_edited_record_with_a_recomputed_checksum_is_detected_and_recomputed(tmp_path):
    store = tmp_path / "store"
    truth = _sweep(store).set_index("run_id")
    rid = truth.index[0]
    _forge(store, rid, lambda rec: rec["metrics"].update(final_loss=123.0))
    assert Store(store).record(rid) is None and not Store(store).is_done(rid)
    with pytest.raises(DataError):
        load_trajectory(store, rid)
    again = _sweep(store).set_index("run_id")  # the next sweep recomputes it
    assert again.loc[rid, "final_loss"] == truth.loc[rid, "final_loss"] != 123.0
    assert Store(store).is_done(rid)


# -- 4. a broken store gets one clear line (exit 2), never a traceback --------------------------------


def _toml(tmp_path, cfg=CFG) -> Path:
    path = tmp_path / "cfg.toml"
    grid = "".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg["grid"].items())
    fixed = "".join(f"{k} = {json.dumps(v)}\n" for k, v in cfg.get("fixed", {}).items())
    path.write_text(f'function = "{cfg["function"]}"\nseeds = {cfg["seeds"]}\n[fixed]\n{fixed}[grid]\n{grid}')
    return path


class _Counting(_Serial):
    batches = 0

    def run(self, batches):
        for item in super().run(batches):
            _Counting.batches += 1
            yield item


@pytest.mark.parametrize("where", ["store", "runs"])
def test_a_read_only_store_is_refused_before_any_run_is_computed(tmp_path, capsys, monkeypatch, where):
    import tempfile

    store = tmp_path / "store"
    _sweep(store, {**CFG, "seeds": 1})  # an existing store
    folder = store if where == "store" else store / "runs"
    if os.geteuid() != 0:
        folder.chmod(0o555)
    else:  # root ignores permission bits: refuse file creation in that folder the way the kernel would
        real = tempfile.mkstemp

        def mkstemp(*a, dir=None, **k):
            if dir is not None and Path(dir) == folder:
                raise PermissionError(13, "Permission denied", str(dir))
            return real(*a, dir=dir, **k)

        monkeypatch.setattr(tempfile, "mkstemp", mkstemp)
    monkeypatch.setattr(sweep_api, "make_executor", lambda *a, **k: _Counting())
    _Counting.batches = 0
    try:
        code, _, err = _cli(capsys, ["sweep", _toml(tmp_path), "--out", store, "--quiet", "--no-plot"])
    finally:
        folder.chmod(0o755)
    line = _one_clear_line(code, err)
    assert "writable" in line and str(folder) in line, line
    assert _Counting.batches == 0  # refused before computing: no work is lost


@pytest.mark.parametrize("name", ["runs/{rid}.json", "runs/{rid}.npz", "results.parquet", ".lock", "sweep.json",
                                  "manifest.json", "figures", "runs"])
def test_a_folder_or_file_where_the_store_needs_the_other_is_one_clear_line(tmp_path, capsys, monkeypatch, name):
    store = tmp_path / "store"
    (store / "runs").mkdir(parents=True)
    rid = sweep_api.run_id(CHEAP, sweep_api.load_spec(CFG).expand()[0])
    path = store / name.format(rid=rid)
    if name in ("figures", "runs"):
        if path.is_dir():
            path.rmdir()
        path.write_text("a file where a folder belongs")
    else:
        (path / "inner").mkdir(parents=True)
    monkeypatch.setattr(sweep_api, "make_executor", lambda *a, **k: _Counting())
    _Counting.batches = 0
    code, _, err = _cli(capsys, ["sweep", _toml(tmp_path), "--out", store, "--quiet"])
    line = _one_clear_line(code, err)
    assert str(path) in line, line
    assert _Counting.batches == 0


@pytest.mark.parametrize("meta", [[1, 2], "text", {"runs": "abc"}, {"runs": ["../../etc/passwd"]},
                                  {"runs": [], "varying_axes": [1, 2]}, {"runs": [], "varying_axes": "x"},
                                  {"runs": [], "metrics": [None]}, None])
def test_a_malformed_sweep_json_is_one_clear_line_for_plot(tmp_path, capsys, meta):
    store = tmp_path / "store"
    _sweep(store)
    (store / "sweep.json").write_text(json.dumps(meta))
    code, _, err = _cli(capsys, ["plot", store])
    line = _one_clear_line(code, err)
    assert "sweep.json" in line


def test_a_forged_object_array_trajectory_is_recomputed_not_trusted(tmp_path):
    """Even with every checksum recomputed by someone holding the store key, an object array is never
    unpickled and the run counts as not done: the next sweep recomputes it."""
    import hashlib

    from dlnlab.sweep import _integrity

    store = tmp_path / "store"
    truth = _sweep(store).set_index("run_id")
    rid = truth.index[1]
    buf = io.BytesIO()
    np.savez(buf, loss=np.array([{"evil": 1}], dtype=object))
    (store / "runs" / f"{rid}.npz").write_bytes(buf.getvalue())

    def forge(rec):
        rec["npz_sha256"] = hashlib.sha256(buf.getvalue()).hexdigest()

    _forge(store, rid, forge)
    path = store / "runs" / f"{rid}.json"
    rec = json.loads(path.read_text())
    rec["mac"] = _integrity.mac({k: v for k, v in rec.items() if k not in ("sha256", "mac")})
    path.write_text(json.dumps(rec))
    assert Store(store).record(rid) is not None  # the record itself verifies (the key holder forged it)
    assert not Store(store).is_done(rid)
    with pytest.raises(DataError, match="plain array"):
        load_trajectory(store, rid)
    _sweep(store)
    assert Store(store).is_done(rid)
    np.testing.assert_array_equal(load_trajectory(store, rid)["loss"].shape, (5,))


def test_a_write_that_fails_mid_sweep_is_one_clear_line(tmp_path, capsys, monkeypatch):
    import errno

    from dlnlab.sweep import _store

    real, calls = _store.atomic_write_bytes, []

    def full_disk(path, data):
        calls.append(path)
        if len(calls) == 3:
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real(path, data)

    monkeypatch.setattr(_store, "atomic_write_bytes", full_disk)
    store = tmp_path / "store"
    code, _, err = _cli(capsys, ["sweep", _toml(tmp_path), "--out", store, "--quiet"])
    line = _one_clear_line(code, err)
    assert "No space left on device" in line and str(calls[2]) in line


# -- 6. an error is the only line, even with the progress display on ---------------------------------


class _Unreachable:
    name = "dask"

    def run(self, batches):
        raise ConfigError("scheduler: expected a reachable Dask scheduler, got 'tcp://127.0.0.1:1' that cannot be "
                          "reached (test)")
        yield


def test_an_executor_error_is_not_preceded_by_a_progress_line(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(sweep_api, "make_executor", lambda *a, **k: _Unreachable())
    code, out, err = _cli(capsys, ["sweep", _toml(tmp_path), "--out", tmp_path / "store", "--executor", "dask",
                                   "--scheduler", "tcp://127.0.0.1:1"])  # no --quiet: the progress bar is on
    _one_clear_line(code, err, "scheduler")
    assert out == ""


def test_a_sweepable_function_cannot_register_a_metric_that_is_a_path():
    for bad in ("../up", "a/b", ".hidden", "", "x\x00"):
        with pytest.raises(ConfigError, match="^metrics: expected names"):
            Sweepable(name="bad_metric", fields={}, run_batch=_batch, static=(), metrics=(bad,))


def test_pool_workers_enable_float64_themselves():
    """Importing dlnlab changes no JAX setting; the worker's initializer turns float64 on (even when the
    environment does not ask for it)."""
    import subprocess
    import sys

    code = ("import os, jax, dlnlab\n"
            "before = jax.config.read('jax_enable_x64')\n"
            "from dlnlab.sweep._executors import _worker_start\n"
            "_worker_start(os.getppid())\n"
            "print(before, jax.config.read('jax_enable_x64'), jax.numpy.ones(1).dtype)\n")
    env = {k: v for k, v in os.environ.items() if k not in ("JAX_ENABLE_X64", "DLNLAB_X64")}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, env=env)
    assert res.returncode == 0, res.stderr[-2000:]
    assert res.stdout.split() == ["False", "True", "float64"], res.stdout


def test_load_trajectory_takes_run_ids_not_paths(tmp_path):
    store = tmp_path / "store"
    _sweep(store)
    for bad in ("../../etc/passwd", "a" * 31, "A" * 32, 5, None, "/" + "a" * 31):
        with pytest.raises(ConfigError, match="^run_id: expected a run id"):
            load_trajectory(store, bad)

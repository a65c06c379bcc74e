"""The command line under generated arguments: exit 0/1, or exit 2 with one line on stderr
(``dlnlab: error: FIELD: ...`` saying what was given and what was expected); never a traceback.

Experiments are replaced by a no-op step runner and sweeps run the NumPy-only test function in this
process, so that every generated command line is cheap; argument parsing, config loading, output
folder checks, the store and the report are the real ones.
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import re
import tempfile
from pathlib import Path

import pytest
import reliability_helpers as rh
from hypothesis import given
from hypothesis import strategies as st

import dlnlab.experiments._runner as runner
import dlnlab.report as report
from dlnlab import experiments
from dlnlab.cli import main
from dlnlab.sweep import _api as sweep_api

os.environ.setdefault("DLNLAB_STORE_KEY", "dlnlab-tests")  # sign test stores with a test key, not ~/.config

rh.register_cheap()
ROOT = Path(tempfile.mkdtemp(prefix="dlnlab-cli-fuzz-"))


def _files():
    f = {}
    f["good.toml"] = f'function = "{rh.CHEAP}"\nseeds = 2\n[fixed]\nn = 5\n'
    f["grid.toml"] = f'name = "<b>x</b>"\nfunction = "{rh.CHEAP}"\nseeds = [0]\n[grid]\nx = [0.5, 1.0]\n'
    f["malformed.toml"] = "function = [unclosed\n"
    f["unknown.toml"] = f'function = "{rh.CHEAP}"\n[grid]\nwidht = [1, 2]\n'
    f["evil.toml"] = 'function = "os.system"\n'
    f["nan.toml"] = f'function = "{rh.CHEAP}"\n[fixed]\nx = nan\n'
    f["huge.toml"] = f'function = "{rh.CHEAP}"\nseeds = 9223372036854775807\n'
    f["empty.toml"] = ""
    for name, text in f.items():
        (ROOT / name).write_text(text)
    (ROOT / "binary.toml").write_bytes(b"\xff\xfe\x00function")
    (ROOT / "folder.toml").mkdir(exist_ok=True)
    (ROOT / "afile").write_text("not a folder")
    (ROOT / "emptydir").mkdir(exist_ok=True)
    (ROOT / "badstore").mkdir(exist_ok=True)
    (ROOT / "badstore" / "sweep.json").write_text("{not json")
    return [str(ROOT / n) for n in [*f, "binary.toml", "folder.toml", "missing.toml"]]


TOMLS = _files()
OUTS = [str(ROOT / "out1"), str(ROOT / "out2"), str(ROOT / "afile"), str(ROOT / "afile" / "sub"),
        "", " ", "/proc/dlnlab-cannot-write", str(ROOT / "emptydir")]
DIRS = [str(ROOT / "store"), str(ROOT / "missing"), str(ROOT / "afile"), str(ROOT / "emptydir"),
        str(ROOT / "badstore")]
ODD = st.sampled_from(["--bogus", "-x", "--", "--out", "--seed", "--quick=1", "\x00", "é", "-"])
NAMES = st.sampled_from(["all", "saxe", "nope", "ALL", "<script>", "../x", ""])
SEEDS = st.sampled_from(["0", "3", "-1", "abc", "1e3", "99999999999999999999", ""])


@st.composite
def argv(draw):
    cmd = draw(st.sampled_from(["reproduce", "sweep", "plot", "list", "reproduc", "", "-h", "run"]))
    args = [cmd] if cmd else []
    if cmd == "reproduce":
        args += draw(st.lists(NAMES, max_size=2))
        for flag in draw(st.lists(st.sampled_from(["--quick", "--out", "--seed", "--quiet",
                                                    "--no-report"]), max_size=3, unique=True)):
            args.append(flag)
            if flag == "--out":
                args.append(draw(st.sampled_from(OUTS)))
            elif flag == "--seed":
                args.append(draw(SEEDS))
    elif cmd == "sweep":
        args += draw(st.lists(st.sampled_from(TOMLS), max_size=2))
        for flag in draw(st.lists(st.sampled_from(["--out", "--executor", "--workers", "--scheduler",
                                                    "--quiet", "--no-plot", "--lock-timeout"]),
                                  max_size=4, unique=True)):
            args.append(flag)
            if flag == "--out":
                args.append(draw(st.sampled_from(OUTS)))
            elif flag == "--executor":
                args.append(draw(st.sampled_from(["local", "dask", "spark", ""])))
            elif flag == "--workers":
                args.append(draw(st.sampled_from(["1", "0", "-2", "two", "1.5"])))
            elif flag == "--scheduler":
                args.append(draw(st.sampled_from(["tcp://127.0.0.1:1", "localhost:8786", "", "x://"])))
            elif flag == "--lock-timeout":
                args.append(draw(st.sampled_from(["0", "2.5", "-1", "nan", "inf", "soon", ""])))
    elif cmd == "plot":
        args += draw(st.lists(st.sampled_from(DIRS), max_size=2))
        for flag in draw(st.lists(st.sampled_from(["--x", "--y", "--metric"]), max_size=2, unique=True)):
            args += [flag, draw(st.sampled_from(["x", "seed", "nope", "final_loss", "", "../../up", "/tmp/x",
                                                 "a\x00b"]))]
    if draw(st.booleans()):
        args.insert(draw(st.integers(0, len(args))), draw(ODD))
    return args


class _NoDask:
    name = "dask"

    def run(self, batches):  # a real Dask run is covered by test_determinism
        raise AssertionError("the CLI fuzz never reaches Dask: an address is unreachable")


@contextlib.contextmanager
def _cheap_environment():
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(runner, "run_experiment", lambda exp, ctx, on_step=None: None)
        mp.setattr(report, "plot_sweep", lambda *a, **k: [])

        real = sweep_api.make_executor

        def make(executor="local", *, workers=None, scheduler=None):
            real(executor, workers=workers, scheduler=scheduler)  # the real validation
            if scheduler is not None:
                from dlnlab.errors import ConfigError

                raise ConfigError(f"scheduler: expected a reachable scheduler, got {scheduler!r} (test: no network)")
            return rh.SerialExecutor()

        mp.setattr(sweep_api, "make_executor", make)
        mp.chdir(ROOT)  # an empty --out must never write into the repository
        yield


def _prepare_store():
    with _cheap_environment():
        sweep_api.sweep(str(ROOT / "grid.toml"), out=ROOT / "store", quiet=True)


_prepare_store()


def _hostile_stores() -> list[str]:
    """Stores a hostile or unlucky user could hand to ``dlnlab plot`` (issue 13): each must give exit 0 with
    figures inside the store, or one clear line; never a file outside it, never a traceback."""
    import shutil

    import pandas as pd

    made = []

    def copy(name):
        dst = ROOT / name
        if dst.exists():
            shutil.rmtree(dst)
        shutil.copytree(ROOT / "store", dst)
        made.append(str(dst))
        return dst

    d = copy("traversal")
    meta = json.loads((d / "sweep.json").read_text())
    meta["metrics"] = ["/../../../ESCAPED2"]
    (d / "sweep.json").write_text(json.dumps(meta))
    df = pd.read_parquet(d / "results.parquet")
    df["/../../../ESCAPED2"] = range(len(df))
    df.to_parquet(d / "results.parquet", index=False)
    (copy("listmeta") / "sweep.json").write_text("[1, 2]")
    d = copy("badaxes")
    meta = json.loads((d / "sweep.json").read_text())
    meta["varying_axes"] = [1, [None]]
    (d / "sweep.json").write_text(json.dumps(meta))
    d = copy("parquetdir")
    (d / "results.parquet").unlink()
    (d / "results.parquet" / "x").mkdir(parents=True)
    d = copy("edited")
    df = pd.read_parquet(d / "results.parquet")
    df["final_loss"] = -1.0
    df.to_parquet(d / "results.parquet", index=False)
    d = copy("othersweep")
    meta = json.loads((d / "sweep.json").read_text())
    meta["runs"] = ["0" * 32] + meta["runs"]  # a sweep that has not stored all its runs yet
    (d / "sweep.json").write_text(json.dumps(meta))
    return made


HOSTILE = _hostile_stores()
DIRS += HOSTILE


# the field is an option (--seed), an argument (config, NAME) or a config key (grid.x)
_CLI_ERROR = re.compile(r"^dlnlab: error: -{0,2}[A-Za-z_][^\s:]*(?:, -{0,2}[A-Za-z_][^\s:]*)*: (.*)$")


@rh.property_settings(150)
@given(args=argv())
def test_cli_exit_codes_and_one_line_errors(args):
    out, err = io.StringIO(), io.StringIO()
    with _cheap_environment(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main(list(args))
    text = out.getvalue() + err.getvalue()
    assert "Traceback" not in text, text
    assert not list(ROOT.parent.glob("ESCAPED*")) and not list(ROOT.glob("ESCAPED*"))  # nothing outside a store
    assert code in (0, 1, 2), code
    if code == 2:
        lines = err.getvalue().strip().splitlines()
        assert len(lines) == 1, err.getvalue()
        m = _CLI_ERROR.match(lines[0])
        assert m, f"not 'dlnlab: error: FIELD: ...': {lines[0]!r}"
        assert "expected" in m.group(1) and "got" in m.group(1), f"given or expected missing: {lines[0]!r}"
        rh.REJECTED["CLI argv"] += 1
    else:
        rh.ACCEPTED["CLI argv"] += 1


def test_cli_reproduce_writes_claims_and_report_for_valid_names(tmp_path):
    with _cheap_environment():
        assert main(["reproduce", experiments.names()[0], "--out", str(tmp_path), "--quiet"]) == 0
    assert json.loads((tmp_path / "claims.json").read_text()) == []
    assert (tmp_path / "report.html").is_file()


def test_cli_plot_on_hostile_stores():
    """Each hostile store: a clear line and exit 2, or (a stale or edited table) a plot of the table rebuilt from
    the verified records, exit 0."""
    expected = {"traversal": 2, "listmeta": 2, "badaxes": 2, "othersweep": 2, "parquetdir": 0, "edited": 0}
    for d in HOSTILE:
        out, err = io.StringIO(), io.StringIO()
        with _cheap_environment(), contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["plot", d])
        assert "Traceback" not in out.getvalue() + err.getvalue()
        assert code == expected[Path(d).name], (d, err.getvalue())
        if code == 2:
            line = err.getvalue().strip()
            assert "\n" not in line and _CLI_ERROR.match(line) and "expected" in line and "got" in line, line
            rh.REJECTED["CLI plot on hostile stores"] += 1
        else:
            rh.ACCEPTED["CLI plot on hostile stores"] += 1
    assert not list(ROOT.parent.glob("ESCAPED*")) and not list(ROOT.glob("ESCAPED*"))

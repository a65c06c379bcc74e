"""The command line: `dlnlab reproduce` end to end on the saxe demo, exit codes, crash handling."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from html.parser import HTMLParser

import numpy as np
import pandas as pd
import pytest

from dlnlab import __version__
from dlnlab.cli import main
from dlnlab.experiments import Experiment, reproduce
from dlnlab.theory import modes

KEYS = {"paper", "claim", "statement", "expected", "measured", "tolerance", "outcome", "passed"}


@pytest.fixture(scope="module")
def saxe_out(tmp_path_factory):
    out = tmp_path_factory.mktemp("reproduce")
    code = main(["reproduce", "saxe", "--quick", "--out", str(out), "--quiet"])
    return out, code


def test_reproduce_saxe_writes_every_artifact_and_passes(saxe_out):
    out, code = saxe_out
    assert code == 0
    claims = json.loads((out / "claims.json").read_text())
    assert isinstance(claims, list) and len(claims) == 6
    for c in claims:
        assert set(c) == KEYS and c["paper"] == "saxe" and c["passed"] is True
    by_id = {c["claim"]: c for c in claims}
    for depth in (2, 3):
        traj = by_id[f"depth{depth}_trajectory"]
        assert traj["measured"] <= traj["tolerance"]["bound"] <= 1e-6
    rows = pd.read_parquet(out / "results.parquet")
    assert set(rows["depth"]) == {2, 3} and len(rows) == 6
    # The flow's final singular values are the targets (3, 1.5, 0.75) to the solver's accuracy.
    np.testing.assert_allclose(
        np.sort(rows["final_sigma"].to_numpy()), np.sort(rows["s"].to_numpy()), rtol=1e-6
    )
    assert (out / "figures" / "saxe_modes.svg").is_file()
    assert (out / "figures" / "saxe_modes.png").is_file()
    assert (out / "report.html").is_file()


def test_report_contains_every_claim(saxe_out):
    out, _ = saxe_out
    claims = json.loads((out / "claims.json").read_text())
    text = []

    class P(HTMLParser):
        def handle_data(self, data):
            text.append(data)

    P().feed((out / "report.html").read_text())
    body = "".join(text)
    for c in claims:
        assert c["claim"] in body and c["statement"] in body
    assert "saxe2014exact" in body and __version__ in body


def test_saxe_tolerance_would_catch_a_normalisation_slip():
    # With Saxe et al.'s 1/2-normalised loss the depth-2 rate is 2s instead of 4s; the demo's
    # tolerance must reject that curve as a stand-in for the library's flow.
    t = np.linspace(0.0, 8.0, 121)
    ours = modes.mode_strength(3.0, 1e-3, t, depth=2)
    half = 3.0 / (1.0 + (3.0 / 1e-3 - 1.0) * np.exp(-2.0 * 3.0 * t))
    from dlnlab.experiments.saxe import TRAJ_TOL

    assert np.max(np.abs(ours - half)) / 3.0 > 1e4 * TRAJ_TOL


@pytest.fixture
def fake_experiment():
    calls = []

    def good(ctx, state):
        calls.append("good")
        ctx.check_close("ok", "a claim that holds", expected=1.0, measured=1.0, atol=0.0)

    def explode(ctx, state):
        calls.append("explode")
        raise ZeroDivisionError("division by zero in the test step")

    def after(ctx, state):
        calls.append("after")
        ctx.check_close("late", "a claim after the crash", expected=0, measured=1, atol=0)

    exp = Experiment(name="zz_fake", title="fake", reference="none", claims=(good, explode, after))
    return exp, calls


def test_a_crashing_step_is_a_failed_claim_and_the_run_goes_on(fake_experiment, tmp_path):
    exp, calls = fake_experiment
    res = reproduce([exp], quick=False, out=tmp_path, report=False)
    assert res.exit_code == 1
    assert calls == ["good", "explode", "after"]
    claims = {c["claim"]: c for c in json.loads((tmp_path / "claims.json").read_text())}
    assert claims["ok"]["passed"] and not claims["late"]["passed"]
    crash = claims["explode_crashed"]
    assert crash["passed"] is False and crash["outcome"] == "failed" and set(crash) == KEYS
    assert "explode" in crash["measured"] and "ZeroDivisionError" in crash["measured"]
    assert "division by zero in the test step" in crash["measured"]


# "dlnlab: error: FIELD: ..." where FIELD is an option (--seed), an argument (config) or a config key.
_CLI_ERROR = re.compile(r"^dlnlab: error: (-{0,2}[A-Za-z_][^\s:]*(, -{0,2}[A-Za-z_][^\s:]*)*): (.*)$")


def _one_line_error(capsys, argv, *expected, field=None):
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err
    assert err.count("\n") == 1 and "Traceback" not in err, err
    m = _CLI_ERROR.match(err.strip())
    assert m, f"not 'dlnlab: error: FIELD: ...': {err!r}"
    assert field is None or m.group(1) == field, (field, err)
    assert "expected" in m.group(3) and "got" in m.group(3), f"does not say what was given and expected: {err!r}"
    for e in expected:
        assert e in err
    return err


def test_bad_inputs_exit_2_with_one_line(capsys, tmp_path):
    _one_line_error(
        capsys,
        ["reproduce", "no_such_paper", "--out", str(tmp_path)],
        "experiment:",
        "no_such_paper",
        "saxe",
    )
    blocker = tmp_path / "a_file"
    blocker.write_text("")
    _one_line_error(
        capsys, ["reproduce", "saxe", "--out", str(blocker / "sub")], "out: expected a writable folder"
    )
    _one_line_error(capsys, ["reproduce", "saxe", "--seed", "-3", "--out", str(tmp_path)], "seed:")
    _one_line_error(capsys, ["reproduce", "saxe", "--seed", "abc"], "--seed")
    _one_line_error(capsys, ["reproduce"], "NAME")
    _one_line_error(capsys, ["frobnicate"], "COMMAND: expected one of", "got 'frobnicate'")
    bad = tmp_path / "bad.toml"
    bad.write_text("function = \n")
    _one_line_error(capsys, ["sweep", str(bad), "--out", str(tmp_path / "s")], "malformed TOML")


@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "malformed.toml").write_text("function = [unclosed\n")
    (tmp_path / "binary.toml").write_bytes(b"\xff\xfe\x00function")
    (tmp_path / "folder.toml").mkdir()
    (tmp_path / "unknown.toml").write_text('function = "teacher_regression"\n[grid]\nwidht = [1, 2]\n')
    (tmp_path / "nofunction.toml").write_text("seeds = 2\n")
    (tmp_path / "evil.toml").write_text('function = "os.system"\n')
    (tmp_path / "ok.toml").write_text('function = "teacher_regression"\n')
    (tmp_path / "afile").write_text("")
    return tmp_path


# argv (with {d} for the fixture folder), the field the error must name, a piece of the message
CLI_ERRORS = [
    ([], "COMMAND", "required, got nothing"),
    (["run"], "COMMAND", "got 'run'"),
    (["reproduce"], "NAME", "required, got nothing"),
    (["reproduce", "nope", "--out", "{d}/r"], "experiment", "got 'nope'"),
    (["reproduce", "saxe", "--seed", "abc"], "--seed", "expected an integer in [0, 2**63), got 'abc'"),
    (["reproduce", "saxe", "--seed", "-1"], "--seed", "got -1"),
    (["reproduce", "saxe", "--seed"], "--seed", "after it, got nothing"),
    (["reproduce", "saxe", "--bogus"], "--bogus", "expected one of --fresh, --help, --no-report, --out"),
    (["reproduce", "saxe", "--quick=1"], "--quick", "expected no value (it is a flag), got '1'"),
    (["reproduce", "saxe", "--q"], "--q", "expected one of --quick, --quiet"),
    (["reproduce", "saxe", "--out", "{d}/afile/sub"], "out", "expected a writable folder, got"),
    (["reproduce", "saxe", "--out", ""], "out", "expected a folder path, got an empty value"),
    (["sweep"], "config", "also missing: --out"),
    (["sweep", "{d}/ok.toml"], "--out", "required, got nothing"),
    (["sweep", "{d}/ok.toml", "{d}/ok.toml", "--out", "{d}/s"], "config", "got an extra argument"),
    (["sweep", "{d}/missing.toml", "--out", "{d}/s"], "config", "(no such file)"),
    (["sweep", "{d}/folder.toml", "--out", "{d}/s"], "config", "(a folder)"),
    (["sweep", "{d}/binary.toml", "--out", "{d}/s"], "config", "expected a UTF-8 TOML file"),
    (["sweep", "{d}/malformed.toml", "--out", "{d}/s"], "config", "malformed TOML in malformed.toml"),
    (["sweep", "{d}/unknown.toml", "--out", "{d}/s"], "grid.widht", "got 'widht'"),
    (["sweep", "{d}/nofunction.toml", "--out", "{d}/s"], "function", "got no 'function' key"),
    (["sweep", "{d}/evil.toml", "--out", "{d}/s"], "function", "got 'os.system'"),
    (["sweep", "{d}/ok.toml", "--out", "{d}/afile"], "out", "expected a writable folder"),
    (["sweep", "{d}/ok.toml", "--out", "{d}/s", "--workers", "two"], "--workers", "got 'two'"),
    (["sweep", "{d}/ok.toml", "--out", "{d}/s", "--workers", "0"], "--workers", "expected an integer >= 1"),
    (["sweep", "{d}/ok.toml", "--out", "{d}/s", "--executor", "spark"], "--executor", "got 'spark'"),
    (["sweep", "{d}/ok.toml", "--out", "{d}/s", "--scheduler", "tcp://h:1"], "scheduler", "executor 'dask'"),
    (["sweep", "{d}/ok.toml", "--out", "{d}/s", "--executor", "dask", "--scheduler", "h:1"], "scheduler",
     "got 'h:1'"),
    (["sweep", "{d}/ok.toml", "--out", "{d}/s", "--lock-timeout", "nan"], "--lock-timeout", "got 'nan'"),
    (["plot"], "dir", "required, got nothing"),
    (["plot", "{d}/missing"], "out", "expected a finished sweep folder"),
    (["plot", "{d}", "--x"], "--x", "after it, got nothing"),
    (["plot", "{d}", "{d}"], "dir", "got an extra argument"),
    (["list", "extra"], "list", "got an extra argument 'extra'"),
]


@pytest.mark.parametrize("argv, field, piece", CLI_ERRORS, ids=[" ".join(a[0]) or "(none)" for a in CLI_ERRORS])
def test_every_bad_input_gets_one_line_with_field_given_and_expected(capsys, bad_files, argv, field, piece):
    argv = [a.replace("{d}", str(bad_files)) for a in argv]
    _one_line_error(capsys, argv, piece, field=field)


def test_help_and_version(capsys):
    assert main(["--version"]) == 0
    assert capsys.readouterr().out.strip() == f"dlnlab {__version__}"
    assert main(["--help"]) == 0
    out = capsys.readouterr().out
    assert "reproduce" in out and "sweep" in out and "plot" in out


def test_console_entry_point_in_a_fresh_process(tmp_path):
    res = subprocess.run(
        [sys.executable, "-m", "dlnlab.cli", "reproduce", "nope", "--out", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert res.returncode == 2
    assert res.stderr.count("\n") == 1 and "Traceback" not in res.stderr
    assert "experiment: expected one of" in res.stderr


_CACHE_PROBE = """
import jax, jax.numpy as jnp
from dlnlab import cli
cli._compilation_cache()
jax.jit(lambda x: jnp.sin(x) @ x)(jnp.ones((3, 3))).block_until_ready()
print(jax.config.jax_compilation_cache_dir)
"""


def test_cli_keeps_compiled_programs_in_the_cache_folder_unless_turned_off(tmp_path):
    import os
    import subprocess
    import sys

    env = {k: v for k, v in os.environ.items() if k != "JAX_COMPILATION_CACHE_DIR"}
    env["JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS"] = "0"
    on = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=dict(env, DLNLAB_CACHE_DIR=str(tmp_path / "c")),
                        capture_output=True, text=True, timeout=300)
    assert on.returncode == 0, on.stderr[-2000:]
    assert on.stdout.strip() == str(tmp_path / "c") and any((tmp_path / "c").iterdir())
    off = subprocess.run([sys.executable, "-c", _CACHE_PROBE], env=dict(env, DLNLAB_CACHE_DIR=""),
                         capture_output=True, text=True, timeout=300)
    assert off.returncode == 0, off.stderr[-2000:]
    assert off.stdout.strip() == "None"

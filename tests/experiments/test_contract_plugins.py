"""Experiments from installed packages (entry points), in real `dlnlab` processes: listing, running, broken
plugins, and a reproduction killed with SIGKILL that resumes without losing a stored piece."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

GOOD = '''
import os, time
import numpy as np
import dlnlab as dl


def piece(i, seed):
    log = os.environ.get("PIECE_LOG")
    if log:
        with open(log, "a") as f:
            f.write(f"{i}\\n")
    time.sleep(float(os.environ.get("PIECE_SLEEP", "0")))
    return {"v": np.array([i * i + seed], dtype=float)}


def setup(ctx):
    return [ctx.cached(f"p{i}", piece, i=i, seed=ctx.seed)["v"][0] for i in range(ctx.size.n)]


def total(ctx, state):
    n = ctx.size.n
    ctx.check_close("total", "the pieces sum to sum i^2 + n seed", measured=float(sum(state)),
                    expected=n * (n - 1) * (2 * n - 1) / 6 + n * ctx.seed, rtol=0, atol=0)


EXPERIMENT = dl.Experiment(name="NAME", title="plugin NAME", reference="none",
                           sizes={"quick": {"n": SIZE}, "full": {"n": SIZE}}, setup=setup, claims=(total,))
'''


def _good(name: str, n: int) -> str:
    return GOOD.replace("NAME", name).replace("SIZE", str(n))


def _plugin(site: Path, dist: str, module: str, source: str, entries: dict[str, str]) -> None:
    """A package as pip leaves it: the module and a dist-info folder with its entry points."""
    (site / f"{module}.py").write_text(textwrap.dedent(source))
    info = site / f"{dist}-0.1.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {dist}\nVersion: 0.1\n")
    lines = "".join(f"{k} = {v}\n" for k, v in entries.items())
    (info / "entry_points.txt").write_text(f"[dlnlab.experiments]\n{lines}")


def _env(site: Path, **extra) -> dict:
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "DLNLAB_CACHE_DIR": "", **extra}


def _dlnlab(site: Path, *args, **extra):
    return subprocess.run([sys.executable, "-m", "dlnlab.cli", *args], env=_env(site, **extra),
                          capture_output=True, text=True, timeout=600)


def test_installed_plugins_are_listed_and_run_and_broken_ones_get_one_clear_error(tmp_path):
    site = tmp_path / "site"
    site.mkdir()
    _plugin(site, "goodlab", "goodlab", _good("tiny", 3), {"tiny": "goodlab:EXPERIMENT"})
    _plugin(site, "brokenlab", "brokenlab", "import not_a_module_anywhere\n", {"broken": "brokenlab:EXPERIMENT"})
    _plugin(site, "wronglab", "wronglab", "EXPERIMENT = {'name': 'wrong'}\n", {"wrong": "wronglab:EXPERIMENT"})
    _plugin(site, "misnamed", "misnamed", _good("other", 2), {"misnamed": "misnamed:EXPERIMENT"})
    _plugin(site, "clash", "clash", _good("saxe", 2), {"saxe": "clash:EXPERIMENT"})

    listed = _dlnlab(site, "list")
    assert listed.returncode == 2, listed.stderr
    names = [line.split()[0] for line in listed.stdout.split("sweepable")[0].splitlines()[1:]]
    for name in ("jacot2021", "ji2019", "mulayoff2020", "saxe", "ziyin2022", "tiny"):
        assert name in names  # the others are all still listed
    assert "plugin tiny  [goodlab]" in listed.stdout
    errors = listed.stderr.strip().splitlines()
    assert len(errors) == 4 and all(e.startswith("dlnlab: error: experiment plugin '") for e in errors)
    by_name = {e.split("'")[1]: e for e in errors}
    assert "value: expected an importable dl.Experiment, got ModuleNotFoundError" in by_name["broken"]
    assert "value: expected a dl.Experiment, got dict" in by_name["wrong"]
    assert "name: expected the entry point's name to equal the experiment's name 'other'" in by_name["misnamed"]
    assert "name: expected a name no other experiment uses, got 'saxe' (already provided by dlnlab)" in by_name["saxe"]

    bad = _dlnlab(site, "reproduce", "broken", "--out", str(tmp_path / "bad"), "--quiet")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1
    assert bad.stderr.startswith("dlnlab: error: experiment plugin 'broken'")

    ran = _dlnlab(site, "reproduce", "tiny", "--quick", "--out", str(tmp_path / "out"), "--quiet", "--seed", "2")
    assert ran.returncode == 0, ran.stderr
    (row,) = json.loads((tmp_path / "out" / "claims.json").read_text())
    assert row["paper"] == "tiny" and row["outcome"] == "passed" and row["measured"] == 0 + 1 + 4 + 3 * 2


def _records(out: Path) -> int:
    return len(list((out / "runs").glob("*.json"))) if (out / "runs").is_dir() else 0


def test_a_reproduction_killed_with_sigkill_loses_nothing_and_resumes(tmp_path):
    import shutil

    import dlnlab

    site = tmp_path / "site"
    site.mkdir()
    # Both processes run one frozen copy of dlnlab: stored pieces are addressed by the code that made them, and
    # the working tree may change between the two runs.
    shutil.copytree(Path(dlnlab.__file__).parent, site / "dlnlab", ignore=shutil.ignore_patterns("__pycache__"))
    n = 8
    _plugin(site, "slowlab", "slowlab", _good("slow", n), {"slow": "slowlab:EXPERIMENT"})
    out, log = tmp_path / "out", tmp_path / "pieces.log"
    args = [sys.executable, "-m", "dlnlab.cli", "reproduce", "slow", "--quick", "--out", str(out), "--quiet"]
    proc = subprocess.Popen(args, env=_env(site, PIECE_LOG=str(log), PIECE_SLEEP="0.5"),
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 300
        while _records(out) < 3:
            assert proc.poll() is None, proc.stderr.read().decode()
            assert time.monotonic() < deadline, "the reproduction stored nothing"
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == -signal.SIGKILL
    stored = _records(out)
    before = log.read_text().split()
    assert 3 <= stored < n and not (out / "claims.json").exists()

    resumed = subprocess.run(args, env=_env(site, PIECE_LOG=str(log)), capture_output=True, text=True, timeout=600)
    assert resumed.returncode == 0, resumed.stderr
    after = log.read_text().split()[len(before):]
    done_before = [i for i in before if i != before[-1]] if len(before) > stored else before
    assert not set(done_before) & set(after)  # no stored piece was computed again
    assert sorted(set(before) | set(after), key=int) == [str(i) for i in range(n)]
    assert len(after) == n - stored  # only the pieces not stored (the one in flight included) ran again
    assert _records(out) == n

    fresh = _dlnlab(site, "reproduce", "slow", "--quick", "--out", str(tmp_path / "fresh"), "--quiet")
    assert fresh.returncode == 0, fresh.stderr
    assert json.loads((out / "claims.json").read_text()) == json.loads((tmp_path / "fresh" / "claims.json").read_text())

"""docs/writing-an-experiment.md, step by step: write the files it shows, run its conformance test, install the
package with pip, then `dlnlab list` and `dlnlab reproduce lsq --quick --out results` as it says."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

DOC = Path(__file__).resolve().parents[2] / "docs" / "writing-an-experiment.md"


def _files(root: Path) -> list[str]:
    """Every code block with a ``title="path"`` written under ``root``; the empty ``__init__.py`` the text asks for."""
    text = DOC.read_text(encoding="utf-8")
    written = []
    for title, body in re.findall(r'```\w+ title="([^"]+)"\n(.*?)```', text, re.S):
        path = root / title
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(body)
        written.append(title)
    assert "an empty `mylab/src/mylab/__init__.py`" in text
    (root / "mylab" / "src" / "mylab" / "__init__.py").write_text("")
    return written


def _run(args, env, cwd):
    return subprocess.run(args, env=env, cwd=cwd, capture_output=True, text=True, timeout=900)


def test_the_tutorial_as_written(tmp_path):
    assert _files(tmp_path) == ["mylab/src/mylab/lsq.py", "mylab/tests/test_lsq.py", "mylab/pyproject.toml"]
    assert "pip install ./mylab" in DOC.read_text() and "dlnlab reproduce lsq --quick --out results" in DOC.read_text()
    site = tmp_path / "site"
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    env = {**os.environ, "PYTHONPATH": path, "DLNLAB_CACHE_DIR": ""}

    # Step 3: install it (into a private folder; offline, so without build isolation, as the text says).
    pip = _run([sys.executable, "-m", "pip", "install", "--no-deps", "--no-build-isolation", "--no-index",
                "--target", str(site), "./mylab"], env, tmp_path)
    assert pip.returncode == 0, pip.stdout + pip.stderr
    assert (site / "mylab-0.1.0.dist-info" / "entry_points.txt").read_text().split() == [
        "[dlnlab.experiments]", "lsq", "=", "mylab.lsq:EXPERIMENT"]

    # Step 2: its conformance test passes.
    check = _run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "mylab/tests/test_lsq.py"],
                 env, tmp_path)
    assert check.returncode == 0, check.stdout[-3000:] + check.stderr[-3000:]

    # Step 4: listed next to ours, and run like ours.
    listed = _run([sys.executable, "-m", "dlnlab.cli", "list"], env, tmp_path)
    assert listed.returncode == 0, listed.stderr
    assert re.search(r"^  lsq +GD on a depth-2 linear network reaches least squares  \[mylab\]$", listed.stdout, re.M)
    assert re.search(r"^  saxe ", listed.stdout, re.M)
    ran = _run([sys.executable, "-m", "dlnlab.cli", "reproduce", "lsq", "--quick", "--out", "results"], env, tmp_path)
    assert ran.returncode == 0, ran.stderr[-3000:]
    assert "2 of 2 claims passed" in ran.stdout
    rows = json.loads((tmp_path / "results" / "claims.json").read_text())
    assert [(r["paper"], r["claim"], r["outcome"]) for r in rows] == [("lsq", "end_to_end", "passed"),
                                                                     ("lsq", "final_loss", "passed")]
    assert rows[0]["tolerance"] == {"kind": "close", "rtol": 0.0, "atol": 1e-06}
    for name in ("figures/lsq_loss.svg", "figures/lsq_loss.png", "results.parquet", "report.html"):
        assert (tmp_path / "results" / name).is_file()
    assert len(list((tmp_path / "results" / "runs").glob("*.json"))) == 1

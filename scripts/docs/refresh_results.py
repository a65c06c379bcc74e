"""Refresh the committed results the paper pages are generated from (docs/reproduction/).

Runs ``dlnlab reproduce all --quick`` into a temporary folder and copies ``claims.json`` and the PNG figures to
``docs/reproduction/``, with ``run.json`` saying when, at which commit and with which dlnlab it ran, and how long it
took. The site build reads this folder (it never runs the reproductions itself); commit the folder after a
refresh. A claim that failed is kept as it is: the pages show it.

Usage: ``python scripts/docs/refresh_results.py [NAME ...]`` (default: all).
"""

from __future__ import annotations

import datetime
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
DEST = ROOT / "docs" / "reproduction"


def main(names: list[str]) -> int:
    names = names or ["all"]
    with tempfile.TemporaryDirectory() as tmp:
        cmd = ["dlnlab", "reproduce", *names, "--quick", "--out", tmp, "--quiet", "--no-report"]
        start = time.time()
        code = subprocess.run(cmd, cwd=ROOT).returncode
        seconds = time.time() - start
        if code not in (0, 1) or not (Path(tmp) / "claims.json").is_file():
            print(f"refresh_results: {' '.join(cmd)} exited {code}; docs/reproduction left unchanged", file=sys.stderr)
            return 2
        if names == ["all"] and (DEST / "figures").is_dir():
            shutil.rmtree(DEST / "figures")
        (DEST / "figures").mkdir(parents=True, exist_ok=True)
        claims = json.loads((Path(tmp) / "claims.json").read_text())
        if names != ["all"] and (DEST / "claims.json").is_file():  # merge: replace only the papers rerun
            rerun = {c["paper"] for c in claims}
            old = json.loads((DEST / "claims.json").read_text())
            claims = [c for c in old if c["paper"] not in rerun] + claims
        (DEST / "claims.json").write_text(json.dumps(claims, indent=2) + "\n")
        for png in sorted((Path(tmp) / "figures").glob("*.png")):
            shutil.copy2(png, DEST / "figures" / png.name)
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True)
    from dlnlab import __version__

    run = {
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "dlnlab": __version__,
        "commit": commit.stdout.strip() or None,
        "command": " ".join(["dlnlab", "reproduce", *names, "--quick"]),
        "seconds": round(seconds, 1),
        "exit_code": code,
    }
    (DEST / "run.json").write_text(json.dumps(run, indent=2) + "\n")
    print(f"docs/reproduction refreshed: {len(claims)} claims, exit code {code}, {seconds:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))

"""The built documentation site renders in headless Chromium without console errors.

Runs on the site that ``mkdocs build --strict`` wrote to ``site/`` (``.ci/run`` builds it after the test suite and
then runs this file); skipped with a message when the site has not been built or Chromium is missing. The pages are
served over HTTP on the loopback interface (as a user's ``mkdocs serve`` would), because the theme's search worker
refuses ``file://`` URLs.
"""

from __future__ import annotations

import functools
import http.server
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import pytest

SITE = Path(__file__).resolve().parents[2] / "site"

# (page, text that must be in the rendered DOM): an executed tutorial (its output and its SVG figure) and an API
# reference page (a rendered signature).
PAGES = [
    ("tutorials/sweeps/", ("bit-identical to the local pool: True", "<svg")),
    ("api/dlnlab/", ("dlnlab.Net", "dlnlab.Objective")),
]


def _chromium() -> str:
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip("chromium not found: install it (Debian/Ubuntu: apt-get install -y chromium) to run the docs "
                    "rendering test")
    return exe


@pytest.fixture(scope="module")
def server():
    if not (SITE / "index.html").is_file():
        pytest.skip(f"no built site in {SITE}: run `pip install '.[docs]' && mkdocs build --strict` first")
    handler = functools.partial(_QuietHandler, directory=str(SITE))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/"
    finally:
        httpd.shutdown()
        httpd.server_close()


class _QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format, *args):  # noqa: A002 - the base class's name
        pass


def _render(exe: str, url: str, tmp_path: Path) -> tuple[str, str, Path]:
    shot = tmp_path / "shot.png"
    common = [exe, "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking", "--no-first-run",
              "--disable-dev-shm-usage", "--hide-scrollbars", "--window-size=1300,1800", "--enable-logging=stderr",
              "--v=0", "--virtual-time-budget=5000"]
    shot_run = subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, text=True, timeout=120)
    assert shot_run.returncode == 0, shot_run.stderr[-2000:]
    dom_run = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120)
    assert dom_run.returncode == 0, dom_run.stderr[-2000:]
    return dom_run.stdout, shot_run.stderr + dom_run.stderr, shot


@pytest.mark.parametrize(("page", "expected"), PAGES, ids=[p for p, _ in PAGES])
def test_built_page_renders_without_console_errors(server, page, expected, tmp_path):
    exe = _chromium()
    if not (SITE / page / "index.html").is_file():
        pytest.fail(f"{page} is missing from the built site {SITE}")
    dom, log, shot = _render(exe, server + page, tmp_path)
    # Console messages of the page (a script error, a failed resource) are logged by Chromium as CONSOLE lines.
    console = [line for line in log.splitlines() if "CONSOLE" in line or "Uncaught" in line]
    assert not console, "\n".join(console[:20])
    for text in expected:
        assert text in dom, f"{page}: {text!r} not in the rendered page"
    assert re.search(r'class="md-content"', dom), f"{page}: the theme did not render"
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def _gen_papers(monkeypatch):
    """scripts/docs/gen_papers.py's functions, without running it (mkdocs-gen-files replaced by a stub)."""
    import types

    monkeypatch.setitem(sys.modules, "mkdocs_gen_files", types.SimpleNamespace(open=None))
    path = SITE.parent / "scripts" / "docs" / "gen_papers.py"
    source = path.read_text().rsplit("\nmain()", 1)[0]
    namespace = {"__file__": str(path), "__name__": "gen_papers"}
    exec(compile(source, str(path), "exec"), namespace)
    return namespace


def test_paper_results_section_from_claims(monkeypatch):
    gen = _gen_papers(monkeypatch)
    claims = [
        {"paper": "demo", "claim": "ok", "statement": "a <script>x</script> statement", "expected": 1.0,
         "measured": 1.0000001234567, "tolerance": {"kind": "close", "rtol": 0.0, "atol": 1e-6},
         "outcome": "passed", "passed": True},
        {"paper": "demo", "claim": "bad", "statement": "fails", "expected": [1, 2], "measured": {"a": 0.5},
         "tolerance": 0.1, "passed": False},  # a 0.1 claims.json row: no outcome field
        {"paper": "demo", "claim": "known", "statement": "does not hold", "expected": True, "measured": False,
         "tolerance": {"kind": "holds"}, "outcome": "not_reproduced", "passed": False},
    ]
    text = gen["results_section"]("demo", claims, ["demo_curve.png"], {"date": "today"}, "../figs/")
    assert "3 claims: 1 passed, 1 failed, 1 not reproduced" in text
    assert "<script>" not in text and "&lt;script&gt;" in text
    assert "<td><code>1</code></td>" in text                 # measured 1.0000001234567 at 6 significant digits
    assert "a: <code>0.5</code>" in text                     # dict values one per line
    assert "close atol=1e-06" in text                        # typed tolerance, zero fields dropped
    assert '!!! failure "Failed in this run"' in text and "`bad`: fails" in text
    assert "**`known`**: does not hold (as declared, the statement did not hold)" in text
    assert "![demo: curve](../figs/demo_curve.png)" in text
    assert gen["_fmt"](1.0000001234567) == "1" and gen["_fmt"](123456789.0) == "1.23457e+08"

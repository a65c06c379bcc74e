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

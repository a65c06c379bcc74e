"""The HTML report: parses, holds every claim, escapes config text, embeds figures, renders in Chromium."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlnlab.experiments import Claim, Experiment, NotReproduced
from dlnlab.report import render_report, write_report
from dlnlab.report._plots import heatmap_grid, line_stats, plot_sweep

EVIL = '<script>alert("x")</script>'


class _Collect(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.text, self.attrs, self.stack_errors = [], [], [], 0

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs.extend(attrs)

    def handle_data(self, data):
        self.text.append(data)


def _parse(text: str) -> _Collect:
    p = _Collect()
    p.feed(text)
    p.close()
    return p


def _figure(tmp_path: Path) -> Path:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(3, 2))
    fig.subplots().plot([0, 1, 2], [0, 1, 4])
    path = tmp_path / "demo_curve.png"
    fig.savefig(path)
    return path


def _claims():
    return [
        Claim("demo", "c_pass", "a statement that passes", 1.0, 1.0 + 1e-9, 1e-6, True),
        Claim("demo", "c_fail", f"a failing statement with {EVIL}", [1, 2], [1, 3], 0.1, False),
        Claim("other", "c_nan", "non-finite measurement & <tags>", 0.0, "nan", 1e-3, False),
    ]


def _noop(ctx, state):
    pass


EXP = Experiment(
    name="demo",
    title="Demo <b>title</b>",
    reference="Someone & Other, 2020",
    bibtex="@article{demo, title={A & B}}",
    claims=(_noop,),
)


def test_report_parses_contains_every_claim_and_escapes(tmp_path):
    fig = _figure(tmp_path)
    claims = _claims()
    path = write_report(
        tmp_path,
        claims=claims,
        experiments=[EXP],
        figures={"demo": [fig]},
        config={"command": f"dlnlab sweep {EVIL}", "name": EVIL},
    )
    text = path.read_text(encoding="utf-8")
    parsed = _parse(text)
    # The only tags are the report's own: no script from the config or a claim got through.
    assert "script" not in parsed.tags
    assert EVIL not in text and "&lt;script&gt;" in text
    body = "".join(parsed.text)
    for c in claims:
        assert c.statement in body and c.claim in body
    assert "Demo <b>title</b>" in body and "b" not in parsed.tags  # the title's tag is text
    assert "@article{demo, title={A & B}}" in body
    assert "1 of 3" not in body and "2 of 3 claims not as declared (2 failed, 0 unexpected passes)" in body


def test_report_is_self_contained(tmp_path):
    fig = _figure(tmp_path)
    text = render_report(claims=_claims(), experiments=[EXP], figures={"demo": [fig]})
    parsed = _parse(text)
    urls = [v for k, v in parsed.attrs if k in ("src", "href") and v is not None]
    assert urls and all(u.startswith("data:") for u in urls)
    (img,) = [u for u in urls if u.startswith("data:image/png;base64,")]
    assert base64.b64decode(img.split(",", 1)[1]) == fig.read_bytes()
    assert "http://" not in text and "https://" not in text
    assert "<link" not in text


def test_claims_json_roundtrip_in_report(tmp_path):
    claims = [c.to_dict() for c in _claims()]
    (tmp_path / "claims.json").write_text(json.dumps(claims))
    loaded = json.loads((tmp_path / "claims.json").read_text())
    body = "".join(_parse(render_report(claims=loaded)).text)
    for c in loaded:
        assert c["statement"] in body


def test_line_stats_and_heatmap_grid_by_hand():
    df = pd.DataFrame(
        {
            "lr": [0.1, 0.1, 0.1, 0.2, 0.2, 0.3],
            "depth": [2, 2, 3, 2, 3, 3],
            "seed": [0, 1, 0, 0, 0, 0],
            "loss": [1.0, 3.0, 5.0, 0.5, np.inf, np.nan],
        }
    )
    xs, mean, lo, hi = line_stats(df, "lr", "loss")
    assert xs == [0.1, 0.2, 0.3]
    np.testing.assert_array_equal(mean[:2], [3.0, 0.5])  # (1 + 3 + 5) / 3 and the one finite 0.5
    np.testing.assert_array_equal(lo[:2], [1.0, 0.5])
    np.testing.assert_array_equal(hi[:2], [5.0, 0.5])
    assert np.isnan(mean[2]) and np.isnan(lo[2])
    xs, ys, grid = heatmap_grid(df, "lr", "depth", "loss")
    assert ys == [2, 3]
    expected = np.array([[2.0, 0.5, np.nan], [5.0, np.nan, np.nan]])
    np.testing.assert_array_equal(grid, expected)


def test_plot_sweep_writes_lines_and_heatmaps(tmp_path):
    df = pd.DataFrame(
        {
            "a": [1, 1, 2, 2],
            "b": [0.1, 0.2, 0.1, 0.2],
            "m": [1.0, 2.0, 3.0, 4.0],
            "status": ["max_steps", "diverged", "max_steps", "max_steps"],
        }
    )
    lines = plot_sweep(df, axes=["a"], metrics=["m"], out=tmp_path / "l")
    heat = plot_sweep(df, axes=["a", "b"], metrics=["m"], out=tmp_path / "h")
    names = sorted(p.name for p in lines)
    assert names == ["sweep_diverged_fraction.png", "sweep_m.png"]  # a diverged run adds a panel
    for p in lines + heat:
        assert p.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and p.with_suffix(".svg").is_file()
    with pytest.raises(ValueError, match="not a column"):
        plot_sweep(df, axes=["nope"], metrics=["m"], out=tmp_path)


def test_report_renders_in_headless_chromium(tmp_path):
    exe = shutil.which("chromium") or shutil.which("chromium-browser")
    if exe is None:
        pytest.skip(
            "chromium not found: install it (Debian/Ubuntu: apt-get install -y chromium) "
            "to run the browser rendering test"
        )
    fig = _figure(tmp_path)
    page = write_report(
        tmp_path,
        claims=_claims(),
        experiments=[EXP],
        figures={"demo": [fig]},
        config={"name": EVIL},
    )
    shot = tmp_path / "shot.png"
    proc = subprocess.run(
        [
            exe,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--no-first-run",
            "--disable-dev-shm-usage",
            "--hide-scrollbars",
            "--window-size=1200,1600",
            f"--screenshot={shot}",
            "--enable-logging=stderr",
            "--v=0",
            page.resolve().as_uri(),
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert shot.is_file() and shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert shot.stat().st_size > 10_000  # a blank page compresses to far less than a rendered table
    # Console messages of the page (a script error, an escaped script that ran) are logged by Chromium.
    assert "Uncaught" not in proc.stderr and 'alert("x")' not in proc.stderr
    assert "CONSOLE" not in proc.stderr


def test_report_shows_outcomes_evidence_links_and_timing():
    exp = Experiment(
        name="demo", title="t", reference="r", claims=(_noop,),
        not_reproduced={
            "c_nr": NotReproduced("coupling decays to the random level <b>", "docs/papers/demo.md#finding"),
            "c_unexp": ("a finding", "javascript:alert(1)"),
        },
    )
    claims = [
        Claim("demo", "c_pass", "passes", 1.0, 1.0, {"kind": "close", "rtol": 1e-6, "atol": 0.0}, True),
        Claim("demo", "c_fail", "fails", 0.0, 1.0, {"kind": "at_most", "bound": 0.0}, False),
        Claim("demo", "c_nr", "declared", 1.0, 0.0, {"kind": "at_least", "bound": 1.0}, False, "not_reproduced"),
        Claim("demo", "c_unexp", "declared but passes", True, True, {"kind": "holds"}, True),
    ]
    text = render_report(claims=claims, experiments=[exp], seconds={"demo": 12.34})
    parsed = _parse(text)
    body = " ".join(parsed.text)
    for word in ("pass", "FAIL", "not reproduced (declared)", "unexpected pass"):
        assert word in body
    assert "rtol 1e-06, atol 0" in body and "at most 0" in body and "at least 1" in body
    assert "1 passed, 1 failed, 1 not reproduced (declared), 1 unexpected passes" in body
    assert "Run time 12.3 s" in body
    assert "coupling decays to the random level <b>" in body and "b" not in parsed.tags
    hrefs = [v for k, v in parsed.attrs if k == "href"]
    assert hrefs == ["docs/papers/demo.md#finding"]  # the javascript: link is text, not a link
    assert "2 of 4 claims not as declared (1 failed, 1 unexpected passes)" in body

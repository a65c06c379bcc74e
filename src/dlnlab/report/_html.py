"""The self-contained HTML report: one file, figures embedded as data URIs, no script, no network.

Every piece of text that reaches the page (claim statements, configuration values, references,
BibTeX, file names) goes through :func:`html.escape`, so a string such as ``<script>`` coming from a
sweep config is shown, never executed. Figures are embedded as base64 PNG ``data:`` URIs, so the
file can be mailed or archived alone.
"""

from __future__ import annotations

import base64
import html
import math
import os
import platform
import sys
import time
import unicodedata
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._io import atomic_write_text

__all__ = ["write_report", "render_report", "machine_info", "format_value", "format_tolerance", "DLNLAB_BIBTEX"]

DLNLAB_BIBTEX = """@software{dlnlab,
  title  = {dlnlab: a laboratory for deep linear networks},
  note   = {version %s},
  year   = {2026}
}"""

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;color:#1d2330;line-height:1.45;padding:0 1em}
h1{font-size:1.7em;margin-bottom:.2em}
h2{border-bottom:2px solid #d8dde6;padding-bottom:.2em;margin-top:1.8em}
.meta{color:#5a6372}
.badge{display:inline-block;padding:.25em .7em;border-radius:1em;font-weight:600}
.ok{background:#dff3e4;color:#17692f}.bad{background:#fbe1e1;color:#a11d1d}
table{border-collapse:collapse;width:100%;font-size:.9em;margin:.6em 0}
th,td{border:1px solid #d8dde6;padding:.3em .5em;text-align:left;vertical-align:top}
th{background:#f1f3f7}td.num{font-family:ui-monospace,Menlo,Consolas,monospace;font-size:.92em}
td{overflow-wrap:anywhere}table.claims{table-layout:fixed}
tr.fail td{background:#fff4f4}.figs{display:flex;flex-wrap:wrap;gap:.8em}
figure{flex:1 1 420px;max-width:560px;margin:.3em 0}
figure img{width:100%;border:1px solid #e3e6ec}figcaption{font-size:.85em;color:#5a6372}
pre{background:#f6f8fa;border:1px solid #e3e6ec;padding:.8em;overflow-x:auto;font-size:.85em}
.ref{font-style:italic}
.nr{background:#fff3d6;color:#8a5a00}.unexp{background:#f3e1fb;color:#6d1d91}
tr.not_reproduced td{background:#fffaf0}
"""


def format_value(v: Any, *, digits: int = 6, max_items: int = 8) -> str:
    """A short human form of a claim value (numbers to ``digits`` significant digits, long lists
    cut)."""
    if v is None:
        return "-"
    if isinstance(v, bool):
        return "yes" if v else "no"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            return str(v)
        return f"{v:.{digits}g}"
    if isinstance(v, Mapping):
        items = [f"{k}: {format_value(x, digits=digits)}" for k, x in list(v.items())[:max_items]]
        return "{" + ", ".join(items) + (", ..." if len(v) > max_items else "") + "}"
    if isinstance(v, (list, tuple)):
        items = [format_value(x, digits=digits) for x in v[:max_items]]
        return (
            "[" + ", ".join(items) + (f", ... ({len(v)} items)" if len(v) > max_items else "") + "]"
        )
    try:
        import numpy as np

        arr = np.asarray(v)
        if arr.dtype.kind in "biuf":
            return format_value(arr.tolist(), digits=digits, max_items=max_items)
    except Exception:  # noqa: BLE001 - fall back to str for anything exotic
        pass
    return str(v)


def format_tolerance(t: Any) -> str:
    """A typed tolerance as text: ``rtol 1e-06, atol 0``, ``at most 1e-07``, ``at least 0.99``, ``holds``."""
    if isinstance(t, Mapping) and "kind" in t:
        kind = t["kind"]
        if kind == "close":
            return f"rtol {format_value(t.get('rtol'))}, atol {format_value(t.get('atol'))}"
        if kind in ("at_most", "at_least"):
            return f"{kind.replace('_', ' ')} {format_value(t.get('bound'))}"
        if kind == "holds":
            return "holds (must be true)"
    return format_value(t)


def machine_info() -> dict[str, str]:
    """Where the report was produced: host, OS, CPU, Python and library versions, JAX backend."""
    info = {
        "host": platform.node(),
        "platform": platform.platform(),
        "processor": platform.machine(),
        "cpus": str(os.cpu_count()),
        "python": sys.version.split()[0],
    }
    try:
        import jax
        import numpy as np

        info.update(
            {
                "jax": jax.__version__,
                "backend": jax.default_backend(),
                "devices": ", ".join(str(d) for d in jax.devices()),
                "numpy": np.__version__,
                "float64": str(bool(jax.config.read("jax_enable_x64"))),
            }
        )
    except Exception as exc:  # noqa: BLE001 - the report must still be written
        info["jax"] = f"unavailable ({exc})"
    return info


_BIDI_CONTROLS = frozenset("\u061c\u200e\u200f\u202a\u202b\u202c\u202d\u202e\u2066\u2067\u2068\u2069")


def _visible(ch: str) -> str:
    """Control and bidirectional-formatting characters as visible escapes (``\\x00``, ``\\u202e``): a NUL makes
    the HTML invalid and U+202E (right-to-left override) shows a name reversed, so one name can pose as another."""
    if ch in "\t\n\r" or not (unicodedata.category(ch) == "Cc" or ch in _BIDI_CONTROLS):
        return ch
    return ch.encode("unicode_escape").decode("ascii")


def _e(x: Any) -> str:
    text = str(x)
    if any(unicodedata.category(c) == "Cc" or c in _BIDI_CONTROLS for c in text):
        text = "".join(_visible(c) for c in text)
    return html.escape(text, quote=True)


def _kv_table(pairs: Mapping[str, Any]) -> str:
    rows = "".join(
        f"<tr><th>{_e(k)}</th><td>{_e(format_value(v))}</td></tr>" for k, v in pairs.items()
    )
    return f"<table>{rows}</table>"


def _img(path: Path) -> str:
    data = base64.b64encode(Path(path).read_bytes()).decode("ascii")
    mime = "image/svg+xml" if Path(path).suffix == ".svg" else "image/png"
    name = Path(path).stem
    return (
        f'<figure><img alt="{_e(name)}" src="data:{mime};base64,{data}">'
        f"<figcaption>{_e(name)}</figcaption></figure>"
    )


def _figs(paths) -> str:
    imgs = [_img(p) for p in paths if Path(p).exists()]
    return f'<div class="figs">{"".join(imgs)}</div>' if imgs else ""


_BADGES = {
    "passed": ("ok", "pass"),
    "failed": ("bad", "FAIL"),
    "not_reproduced": ("nr", "not reproduced (declared)"),
    "unexpected": ("unexp", "unexpected pass"),
}


def _outcome(c: Mapping[str, Any], declared: Mapping[str, Sequence[str]]) -> str:
    outcome = c.get("outcome") or ("passed" if c.get("passed") else "failed")
    if outcome == "passed" and c.get("claim") in declared.get(c.get("paper"), ()):
        return "unexpected"
    return outcome


def _claims_table(claims: Sequence[Mapping[str, Any]], declared: Mapping[str, Sequence[str]] | None = None) -> str:
    declared = declared or {}
    head = (
        "<tr><th>paper</th><th>claim</th><th>statement</th><th>expected</th><th>measured</th>"
        "<th>tolerance</th><th>outcome</th></tr>"
    )
    body = []
    for c in claims:
        outcome = _outcome(c, declared)
        cls, word = _BADGES.get(outcome, ("bad", outcome))
        row = {"passed": "pass", "failed": "fail", "unexpected": "fail"}.get(outcome, outcome)
        body.append(
            f'<tr class="{_e(row)}"><td>{_e(c.get("paper", ""))}</td>'
            f"<td>{_e(c.get('claim', ''))}</td><td>{_e(c.get('statement', ''))}</td>"
            f'<td class="num">{_e(format_value(c.get("expected")))}</td>'
            f'<td class="num">{_e(format_value(c.get("measured")))}</td>'
            f'<td class="num">{_e(format_tolerance(c.get("tolerance")))}</td>'
            f'<td><span class="badge {cls}">{_e(word)}</span></td></tr>'
        )
    if not body:
        body.append('<tr><td colspan="7">no claims were checked</td></tr>')
    cols = "".join(f'<col style="width:{w}%">' for w in (8, 11, 33, 14, 14, 11, 9))
    return f'<table class="claims"><colgroup>{cols}</colgroup>{head}{"".join(body)}</table>'


def _link(target: str) -> str:
    """A docs link: http(s) URLs and relative paths become links, anything else (javascript:, data:) text."""
    t = str(target)
    safe = t.startswith(("https://", "http://")) or (":" not in t.split("/")[0] and not t.startswith("//"))
    return f'<a href="{_e(t)}">{_e(t)}</a>' if safe else _e(t)


def _declared_list(exp) -> str:
    items = []
    for cid, nr in dict(getattr(exp, "not_reproduced", {}) or {}).items():
        evidence = getattr(nr, "evidence", None) or (nr[0] if isinstance(nr, (tuple, list)) else str(nr))
        docs = getattr(nr, "docs", None) or (nr[1] if isinstance(nr, (tuple, list)) and len(nr) > 1 else "")
        items.append(f"<li><code>{_e(cid)}</code>: {_e(evidence)} (see {_link(docs)})</li>")
    if not items:
        return ""
    return "<p>Declared not reproduced (a finding, registered before the run):</p><ul>" + "".join(items) + "</ul>"


def _frame_table(df, *, max_rows: int = 200) -> str:
    cols = list(df.columns)
    head = "".join(f"<th>{_e(c)}</th>" for c in cols)
    rows = []
    for rec in df.head(max_rows).to_dict("records"):
        rows.append(
            "<tr>" + "".join(f"<td>{_e(format_value(rec[c]))}</td>" for c in cols) + "</tr>"
        )
    more = (
        f"<p class='meta'>{len(df) - max_rows} more rows in the Parquet table.</p>"
        if len(df) > max_rows
        else ""
    )
    return f"<table><tr>{head}</tr>{''.join(rows)}</table>{more}"


def _as_dict(c) -> Mapping[str, Any]:
    return c.to_dict() if hasattr(c, "to_dict") else c


def render_report(
    *,
    claims: Iterable,
    experiments: Sequence = (),
    figures: Mapping[str, Sequence[Path]] | None = None,
    config: Mapping[str, Any] | None = None,
    sweep: Mapping[str, Any] | None = None,
    title: str = "dlnlab report",
    seconds: Mapping[str, float] | None = None,
) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    from .. import __version__

    claims = [_as_dict(c) for c in claims]
    figures = dict(figures or {})
    seconds = dict(seconds or {})
    declared = {e.name: tuple(getattr(e, "not_reproduced", ()) or ()) for e in experiments}
    outcomes = [_outcome(c, declared) for c in claims]
    n_bad = sum(o in ("failed", "unexpected") for o in outcomes)
    n_nr = outcomes.count("not_reproduced")
    nr = f", {n_nr} not reproduced as declared" if n_nr else ""
    status = (
        f'<span class="badge ok">{outcomes.count("passed")} of {len(claims)} claims passed{_e(nr)}</span>'
        if n_bad == 0
        else f'<span class="badge bad">{n_bad} of {len(claims)} claims not as declared '
        f"({outcomes.count('failed')} failed, {outcomes.count('unexpected')} unexpected passes)</span>"
    )
    if sweep is not None and not claims:
        status = f'<span class="badge ok">{_e(sweep.get("status", "sweep"))}</span>'

    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{_e(title)}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)}</h1>",
        f'<p class="meta">dlnlab {_e(__version__)} &middot; generated '
        f"{_e(time.strftime('%Y-%m-%d %H:%M:%S'))} &middot; {status}</p>",
    ]
    if claims or experiments:
        parts += ["<h2>Summary of claims</h2>", _claims_table(claims, declared)]
    for exp in experiments:
        mine = [_outcome(c, declared) for c in claims if c.get("paper") == exp.name]
        took = f" Run time {seconds[exp.name]:.1f} s." if exp.name in seconds else ""
        parts.append(f'<h2 id="{_e(exp.name)}">{_e(exp.name)}: {_e(exp.title)}</h2>')
        parts.append(f'<p class="ref">{_e(exp.reference)}</p>')
        parts.append(
            f'<p class="meta">{len(mine)} claims: {mine.count("passed")} passed, {mine.count("failed")} failed, '
            f'{mine.count("not_reproduced")} not reproduced (declared), {mine.count("unexpected")} unexpected '
            f"passes.{_e(took)}</p>"
        )
        parts.append(_declared_list(exp))
        parts.append(_figs(figures.get(exp.name, [])))
    if sweep is not None:
        parts.append(f'<h2 id="sweep">Sweep: {_e(sweep.get("name", ""))}</h2>')
        parts.append(_kv_table(sweep.get("summary", {})))
        parts.append(_figs(sweep.get("figures", [])))
        if sweep.get("table") is not None:
            parts += ["<h3>Runs</h3>", _frame_table(sweep["table"])]
    parts += [
        "<h2>Run configuration</h2>",
        _kv_table({"dlnlab": __version__, **dict(config or {})}),
    ]
    parts += ["<h2>Machine</h2>", _kv_table(machine_info())]
    bib = [exp.bibtex.strip() for exp in experiments if getattr(exp, "bibtex", "")]
    bib.append(DLNLAB_BIBTEX % __version__)
    parts += [
        "<h2>BibTeX</h2>",
        f"<pre>{_e(chr(10).join(b + chr(10) for b in bib))}</pre>",
        "</body></html>",
    ]
    return "\n".join(parts)


def write_report(
    out,
    *,
    claims: Iterable,
    experiments: Sequence = (),
    figures: Mapping[str, Sequence[Path]] | None = None,
    config: Mapping[str, Any] | None = None,
    sweep: Mapping[str, Any] | None = None,
    filename: str = "report.html",
    title: str = "dlnlab report",
    seconds: Mapping[str, float] | None = None,
) -> Path:
    """Write ``out/report.html`` (atomically) and return its path.

    Args:
        claims: :class:`~dlnlab.experiments.Claim` objects or their dicts (as in claims.json).
        experiments: the experiments that ran (name, title, reference, bibtex): one section each.
        figures: experiment name -> PNG paths to embed in its section.
        config: the run configuration shown in the report (command line, quick, seed, ...).
        sweep: optional sweep section: ``name``, ``summary`` (dict), ``figures`` (paths), ``table``
            (DataFrame).
        seconds: experiment name -> run time, shown in its section.
    """
    text = render_report(
        claims=claims,
        experiments=experiments,
        figures=figures,
        config=config,
        sweep=sweep,
        title=title,
        seconds=seconds,
    )
    path = Path(out) / filename
    atomic_write_text(path, text)
    return path

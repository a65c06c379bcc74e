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
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ._io import atomic_write_text

__all__ = ["write_report", "render_report", "machine_info", "format_value", "DLNLAB_BIBTEX"]

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


def _e(x: Any) -> str:
    return html.escape(str(x), quote=True)


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


def _claims_table(claims: Sequence[Mapping[str, Any]]) -> str:
    head = (
        "<tr><th>paper</th><th>claim</th><th>statement</th><th>expected</th><th>measured</th>"
        "<th>tolerance</th><th>result</th></tr>"
    )
    body = []
    for c in claims:
        ok = bool(c.get("passed"))
        badge = (
            '<span class="badge ok">pass</span>' if ok else '<span class="badge bad">FAIL</span>'
        )
        body.append(
            f'<tr class="{"pass" if ok else "fail"}"><td>{_e(c.get("paper", ""))}</td>'
            f"<td>{_e(c.get('claim', ''))}</td><td>{_e(c.get('statement', ''))}</td>"
            f'<td class="num">{_e(format_value(c.get("expected")))}</td>'
            f'<td class="num">{_e(format_value(c.get("measured")))}</td>'
            f'<td class="num">{_e(format_value(c.get("tolerance")))}</td><td>{badge}</td></tr>'
        )
    if not body:
        body.append('<tr><td colspan="7">no claims were checked</td></tr>')
    cols = "".join(f'<col style="width:{w}%">' for w in (8, 11, 35, 15, 15, 9, 7))
    return f'<table class="claims"><colgroup>{cols}</colgroup>{head}{"".join(body)}</table>'


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
) -> str:
    """The report as an HTML string (see :func:`write_report`)."""
    from .. import __version__

    claims = [_as_dict(c) for c in claims]
    figures = dict(figures or {})
    n_bad = sum(not c.get("passed") for c in claims)
    status = (
        f'<span class="badge ok">{len(claims)} of {len(claims)} claims passed</span>'
        if n_bad == 0
        else f'<span class="badge bad">{n_bad} of {len(claims)} claims failed</span>'
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
        parts += ["<h2>Summary of claims</h2>", _claims_table(claims)]
    for exp in experiments:
        mine = [c for c in claims if c.get("paper") == exp.name]
        bad = sum(not c.get("passed") for c in mine)
        parts.append(f'<h2 id="{_e(exp.name)}">{_e(exp.name)}: {_e(exp.title)}</h2>')
        parts.append(f'<p class="ref">{_e(exp.reference)}</p>')
        parts.append(f'<p class="meta">{len(mine)} claims, {bad} failed.</p>')
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
) -> Path:
    """Write ``out/report.html`` (atomically) and return its path.

    Args:
        claims: :class:`~dlnlab.experiments.Claim` objects or their dicts (as in claims.json).
        experiments: the experiments that ran (name, title, reference, bibtex): one section each.
        figures: experiment name -> PNG paths to embed in its section.
        config: the run configuration shown in the report (command line, quick, seed, ...).
        sweep: optional sweep section: ``name``, ``summary`` (dict), ``figures`` (paths), ``table``
            (DataFrame).
    """
    text = render_report(
        claims=claims,
        experiments=experiments,
        figures=figures,
        config=config,
        sweep=sweep,
        title=title,
    )
    path = Path(out) / filename
    atomic_write_text(path, text)
    return path

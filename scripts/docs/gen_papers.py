"""Generate the results part of the paper pages from a reproduction's ``claims.json``, at every ``mkdocs build``.

Run by mkdocs-gen-files. The results are read from ``docs/reproduction/`` (``claims.json``, ``figures/*.png`` and
``run.json``, written by ``python scripts/docs/refresh_results.py``, which runs ``dlnlab reproduce all --quick``):
the site build itself never runs the reproductions (minutes of CPU the CI does not have). Set
``DLNLAB_DOCS_RESULTS=DIR`` to build the pages from another run's folder instead (its figures are then copied
into the site).

For each paper in the claims:

- ``docs/papers/<paper>.md`` (hand-written mathematics and findings) gets a generated section appended: the claims
  table, what was not reproduced (with the evidence the experiment declared), failures, and the figures;
- a paper without a hand-written page gets a generated page (title and reference from the experiment registry);
- ``papers/index.md`` lists every paper with its counts, and ``papers/SUMMARY.md`` is the section's navigation.

Nothing here is copied by hand: edit the experiment, rerun the refresh script, and the pages follow.
"""

from __future__ import annotations

import html
import json
import math
import os
import sys
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

def _fmt(value, depth: int = 0) -> str:
    """A compact, exact-enough rendering of a JSON value (6 significant digits)."""
    if isinstance(value, bool) or value is None:
        return str(value).lower() if value is not None else "null"
    if isinstance(value, float):
        if math.isnan(value) or math.isinf(value):
            return str(value)
        return f"{value:.6g}"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, str):
        return value
    if isinstance(value, list):
        return "[" + ", ".join(_fmt(v, depth + 1) for v in value) + "]"
    if isinstance(value, dict):
        if set(value) >= {"kind"} and depth == 0:  # a typed tolerance: {"kind": "close", "rtol": ..., "atol": ...}
            rest = {k: v for k, v in value.items() if k != "kind" and v not in (None, 0, 0.0)}
            return value["kind"] + (" " + ", ".join(f"{k}={_fmt(v, 1)}" for k, v in rest.items()) if rest else "")
        return "{" + "; ".join(f"{k}: {_fmt(v, depth + 1)}" for k, v in value.items()) + "}"
    return str(value)


def _cell(value) -> str:
    """A table cell: one ``key: value`` line per entry of a dict, so wide records stay readable."""
    if isinstance(value, dict) and "kind" not in value:
        return "<br>".join(f"{html.escape(str(k))}: <code>{html.escape(_fmt(v, 1))}</code>" for k, v in value.items())
    return f"<code>{html.escape(_fmt(value))}</code>"


def _outcome(claim: dict) -> str:
    return claim.get("outcome") or ("passed" if claim.get("passed") else "failed")


def _experiment(name: str):
    """The registered experiment (title, reference, declared not-reproduced claims), or None."""
    try:
        from dlnlab import experiments

        return experiments.get(name)
    except Exception:  # an experiment that is no longer registered still has its results shown
        return None


def _registered() -> list[str]:
    """Names of the registered experiments (ours and installed plugins); a new one gets a page at once."""
    try:
        from dlnlab import experiments

        return list(experiments.names())
    except Exception:  # the registry failing must not hide the committed results
        return []


def claims_table(claims: list[dict]) -> str:
    rows = [
        "<table>",
        "<thead><tr><th>claim</th><th>statement</th><th>expected</th><th>measured</th><th>tolerance</th>"
        "<th>outcome</th></tr></thead>",
        "<tbody>",
    ]
    for c in claims:
        outcome = _outcome(c)
        mark = {"failed": "FAILED", "not_reproduced": "not reproduced (declared)"}.get(outcome, outcome)
        rows.append(
            f"<tr><td><code>{html.escape(str(c['claim']))}</code></td><td>{html.escape(str(c['statement']))}</td>"
            f"<td>{_cell(c.get('expected'))}</td><td>{_cell(c.get('measured'))}</td>"
            f"<td>{_cell(c.get('tolerance'))}</td><td>{html.escape(mark)}</td></tr>"
        )
    rows += ["</tbody>", "</table>", ""]
    return "\n".join(rows)


def results_section(paper: str, claims: list[dict], figures: list[str], run: dict, fig_prefix: str,
                    heading: str = "##") -> str:
    n = len(claims)
    counts = {k: sum(_outcome(c) == k for c in claims) for k in ("passed", "failed", "not_reproduced")}
    when = ", ".join(f"{k} {run[k]}" for k in ("date", "dlnlab", "commit", "command") if run.get(k))
    out = [
        f"{heading} Results of the latest quick run (generated)\n",
        f"*Generated from `claims.json`{' (' + when + ')' if when else ''}; "
        f"refresh with `python scripts/docs/refresh_results.py`.* Run it yourself: `dlnlab reproduce {paper} "
        "--quick` (or without `--quick` at the paper's scale).\n",
        f"{n} claims: {counts['passed']} passed, {counts['failed']} failed, "
        f"{counts['not_reproduced']} not reproduced (declared in advance).\n",
        claims_table(claims),
    ]
    exp = _experiment(paper)
    declared = dict(getattr(exp, "not_reproduced", {}) or {})
    not_rep = [c for c in claims if _outcome(c) == "not_reproduced"] + [
        c for c in claims if c["claim"] in declared and _outcome(c) != "not_reproduced"
    ]
    out.append(f"{heading}# What was not reproduced\n")
    if not declared and not not_rep:
        out.append("Every statement of the paper that the experiment checks held in this run.\n")
    for c in not_rep:
        entry = declared.get(c["claim"])
        status = ("as declared, the statement did not hold" if _outcome(c) == "not_reproduced"
                  else f"declared not reproduced, but the run gave **{_outcome(c)}**")
        out.append(f"- **`{c['claim']}`**: {html.escape(str(c['statement']))} ({status}).")
        if entry is not None:
            docs = str(getattr(entry, "docs", ""))
            link = docs if docs.startswith(("http://", "https://")) else None
            out.append(f"  Evidence: {html.escape(str(getattr(entry, 'evidence', '')))}"
                       + (f" ([details]({link}))" if link else (f" (see `{docs}`)" if docs else "")))
    out.append("")
    failed = [c for c in claims if _outcome(c) == "failed"]
    if failed:
        out.append('!!! failure "Failed in this run"')
        out.extend(f"    - `{c['claim']}`: {html.escape(str(c['statement']))}" for c in failed)
        out.append("")
    if figures:
        out.append(f"{heading}# Figures\n")
        for f in figures:
            name = Path(f).stem.removeprefix(f"{paper}_").replace("_", " ")
            out.append(f"![{paper}: {name}]({fig_prefix}{f})\n")
            out.append(f"*{name}*\n")
    return "\n".join(out)


def main() -> None:
    custom = os.environ.get("DLNLAB_DOCS_RESULTS")
    results = Path(custom).resolve() if custom else ROOT / "docs" / "reproduction"
    claims_file = results / "claims.json"
    claims = json.loads(claims_file.read_text()) if claims_file.is_file() else []
    run = json.loads((results / "run.json").read_text()) if (results / "run.json").is_file() else {}
    papers: dict[str, list[dict]] = {}
    for c in claims:
        papers.setdefault(c["paper"], []).append(c)

    fig_dir = results / "figures"
    all_figs = sorted(p.name for p in fig_dir.glob("*.png")) if fig_dir.is_dir() else []
    if custom:  # figures of an outside folder are copied into the site
        for name in all_figs:
            with mkdocs_gen_files.open(f"reproduction/figures/{name}", "wb") as f:
                f.write((fig_dir / name).read_bytes())

    hand = {p.stem for p in (ROOT / "docs" / "papers").glob("*.md")}
    order = sorted(set(papers) | hand | set(_registered()))
    nav = ["* [Overview](index.md)"]
    index = [
        "# Reproduced papers\n",
        "Each page holds the paper's statements in dlnlab's conventions and what the laboratory found, followed by",
        "the claims table and figures of the latest quick run, generated from its `claims.json`. Reproduce any of",
        "them with `dlnlab reproduce NAME [--quick]`.\n",
        "| paper | claims | passed | failed | not reproduced |",
        "|---|---|---|---|---|",
    ]
    for paper in order:
        cl = papers.get(paper, [])
        figs = [f for f in all_figs if f.startswith(f"{paper}_")]
        exp = _experiment(paper)
        title = getattr(exp, "title", None) or paper
        counts = [sum(_outcome(c) == k for c in cl) for k in ("passed", "failed", "not_reproduced")]
        index.append(f"| [{paper}]({paper}.md): {html.escape(str(title))} | {len(cl)} | "
                     + " | ".join(map(str, counts)) + " |")
        nav.append(f"* [{paper}]({paper}.md)")
        section = (results_section(paper, cl, figs, run, "../reproduction/figures/") if cl else
                   "## Results of the latest quick run (generated)\n\nThis paper has no claims in the committed "
                   f"results yet: run `dlnlab reproduce {paper} --quick`.\n")
        if paper in hand:
            with mkdocs_gen_files.open(f"papers/{paper}.md", "a") as f:
                f.write("\n\n" + section)
        else:
            ref = getattr(exp, "reference", "")
            with mkdocs_gen_files.open(f"papers/{paper}.md", "w") as f:
                f.write(f"# {paper}: {title}\n\n{html.escape(str(ref))}\n\n"
                        "*This page is generated from the experiment's registration and results.*\n\n" + section)
    with mkdocs_gen_files.open("papers/index.md", "w") as f:
        f.write("\n".join(index) + "\n")
    with mkdocs_gen_files.open("papers/SUMMARY.md", "w") as f:
        f.write("\n".join(nav) + "\n")


main()

"""mkdocs hooks: the pages in docs/ link to files elsewhere in the repository; the site carries copies.

The guides are also read on the repository browser, where ``../benchmarks/plots/flow.png`` or
``../examples/sweep.toml`` are the right links. mkdocs only publishes ``docs/``, so such a link would be broken in
the site (a strict-mode warning). These hooks copy each linked repository file into the site under ``_repo/`` and
point the link there, so the same Markdown is right in both places. A link to a file that does not exist is left
alone (mkdocs then reports it).
"""

from __future__ import annotations

import logging
import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

log = logging.getLogger("mkdocs.hooks.dlnlab")

_LINK = re.compile(r"(\]\()(\.\./[^)\s#]+)([)#\s])")
_PREFIX = "_repo"


def _outside_target(page_src: str, link: str, docs_dir: Path, root: Path) -> str | None:
    """The repository-relative path of ``link`` from page ``page_src`` when it leaves docs/ and exists."""
    target = (docs_dir / posixpath.dirname(page_src) / link).resolve()
    try:
        target.relative_to(docs_dir)
        return None  # inside docs/: mkdocs handles it
    except ValueError:
        pass
    try:
        rel = target.relative_to(root)
    except ValueError:
        return None
    return rel.as_posix() if target.is_file() else None


def on_files(files: Files, config) -> Files:
    docs_dir = Path(config["docs_dir"]).resolve()
    root = docs_dir.parent
    wanted = set()
    for f in files.documentation_pages():
        if f.abs_src_path is None or not os.path.isfile(f.abs_src_path):
            continue
        text = Path(f.abs_src_path).read_text(encoding="utf-8")
        for m in _LINK.finditer(text):
            rel = _outside_target(f.src_uri, m.group(2), docs_dir, root)
            if rel is not None:
                wanted.add(rel)
    for rel in sorted(wanted):
        uri = f"{_PREFIX}/{rel}"
        if files.get_file_from_path(uri) is None:
            files.append(File.generated(config, uri, abs_src_path=str(root / rel)))
    return files


def on_page_markdown(markdown: str, page, config, files: Files) -> str:
    docs_dir = Path(config["docs_dir"]).resolve()
    root = docs_dir.parent

    def repl(m: re.Match) -> str:
        rel = _outside_target(page.file.src_uri, m.group(2), docs_dir, root)
        if rel is None:
            return m.group(0)
        new = posixpath.relpath(f"{_PREFIX}/{rel}", posixpath.dirname(page.file.src_uri) or ".")
        return f"{m.group(1)}{new}{m.group(3)}"

    return _gate_tutorial(_LINK.sub(repl, markdown), page)


# --- Tutorials that need an API that has not landed yet -----------------------------------------------------------
# A tutorial may list what it needs in its front matter (``requires: [dlnlab.GD, dlnlab.Record]``). While one of
# those names is missing from the installed package the page is shown with its code but not executed, under a
# note that says why (an executed block that fails would be a build error). Once the names exist, the page runs.

_EXEC = re.compile(r'^(```+)python [^\n]*exec="(?:on|1|true|yes)"[^\n]*$', flags=re.M)


def _missing(names) -> list[str]:
    import importlib

    out = []
    for name in names or ():
        module, _, attr = str(name).rpartition(".")
        try:
            if not hasattr(importlib.import_module(module), attr):
                out.append(name)
        except ImportError:
            out.append(name)
    return out


def _gate_tutorial(markdown: str, page) -> str:
    missing = _missing(page.meta.get("requires"))
    if not missing:
        return markdown
    log.info("%s: not executed, this dlnlab lacks %s", page.file.src_uri, ", ".join(missing))
    # Blocks that only produce output (no source shown) are dropped; the others are shown as plain code.
    markdown = re.sub(r'```python exec="on"(?![^\n]*source=)[^\n]*\n.*?\n```\n?', "", markdown, flags=re.S)
    markdown = _EXEC.sub(r"\1python", markdown)
    note = (f'!!! warning "Not executed in this build"\n    This tutorial uses {", ".join(f"`{m}`" for m in missing)}, '
            "which this version of dlnlab does not have yet: the code is shown without its output.\n\n")
    title_end = markdown.find("\n", markdown.find("# ")) + 1 if markdown.lstrip().startswith("# ") else 0
    return markdown[:title_end] + "\n" + note + markdown[title_end:]


# --- Guides added by others ----------------------------------------------------------------------------------------
# A new top-level page in docs/ (a guide someone wrote) joins the "Guides" section by itself instead of being an
# orphan that strict mode refuses; pages elsewhere must be placed in the nav by hand.


def on_nav(nav, config, files: Files):
    from mkdocs.structure.nav import Section
    from mkdocs.structure.pages import Page

    listed = {p.file.src_uri for p in nav.pages}
    guides = next((s for s in nav.items if isinstance(s, Section) and s.title == "Guides"), None)
    if guides is None:
        return nav
    for f in sorted(files.documentation_pages(), key=lambda f: f.src_uri):
        if "/" in f.src_uri or f.src_uri in listed or f.src_uri == "index.md":
            continue
        page = Page(None, f, config)
        page.parent = guides
        guides.children.append(page)
        log.info("%s: not in mkdocs.yml's nav, added to Guides", f.src_uri)
    nav.pages = [p for p in _walk(nav.items)]
    return nav


def _walk(items):
    from mkdocs.structure.pages import Page

    for item in items:
        if isinstance(item, Page):
            yield item
        elif getattr(item, "children", None):
            yield from _walk(item.children)

"""mkdocs hooks: the pages in docs/ link to files elsewhere in the repository; the site carries copies.

The guides are also read on the repository browser, where ``../benchmarks/plots/flow.png`` or
``../examples/sweep.toml`` are the right links. mkdocs only publishes ``docs/``, so such a link would be broken in
the site (a strict-mode warning). These hooks copy each linked repository file into the site under ``_repo/`` and
point the link there, so the same Markdown is right in both places. A link to a file that does not exist is left
alone (mkdocs then reports it).
"""

from __future__ import annotations

import os
import posixpath
import re
from pathlib import Path

from mkdocs.structure.files import File, Files

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

    return _LINK.sub(repl, markdown)

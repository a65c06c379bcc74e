"""Generate the API reference (``api/``) from the package's public surface, at every ``mkdocs build``.

Run by mkdocs-gen-files. The pages are not written by hand so that the reference follows the code: a name added to
a public module (``dlnlab.diagnostics.__init__`` re-exporting it, or ``__all__``) gets its entry on the next build,
a module that does not exist yet (``dlnlab.summaries`` before it lands) gets no page, and a new theory module
gets a page of its own. Which names are public is decided by importing the package (the re-exports are the public
surface, see docs/architecture.md), and each name is rendered by mkdocstrings from its docstring.

A committed ``docs/api/<page>.md`` replaces the generated page of that name (for a page that needs prose).
"""

from __future__ import annotations

import contextlib
import importlib
import inspect
import io
import pkgutil
import re
import sys
import types
from pathlib import Path

import mkdocs_gen_files

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "src"))

import dlnlab  # noqa: E402

# (page, module, title); theory modules are discovered below. Missing modules are skipped.
MODULE_PAGES = [
    ("diagnostics", "dlnlab.diagnostics", "dl.diagnostics"),
    ("curvature", "dlnlab.curvature", "dl.curvature"),
    ("summaries", "dlnlab.summaries", "dl.summaries"),
    ("experiments", "dlnlab.experiments", "The experiment contract: dl.experiments"),
    ("sweep", "dlnlab.sweep", "Sweeps: dlnlab.sweep"),
    ("report", "dlnlab.report", "Figures and the report: dlnlab.report"),
    ("errors", "dlnlab.errors", "dl.errors"),
]

# Top-level names grouped by the module that defines them (first match of the prefix wins).
TOP_GROUPS = [
    ("Networks and models", ("dlnlab.nets", "dlnlab._model", "dlnlab._diagonal")),
    ("Problems and noise", ("dlnlab.problems",)),
    ("Objectives and losses", ("dlnlab.objective", "dlnlab._losses")),
    ("Training", ("dlnlab.train", "dlnlab.summaries")),
    ("Experiments", ("dlnlab.experiments",)),
    ("Sweeps", ("dlnlab.sweep",)),
]


def _try_import(name: str) -> types.ModuleType | None:
    try:
        return importlib.import_module(name)
    except ModuleNotFoundError as e:
        if e.name is not None and (name == e.name or name.startswith(e.name + ".")):
            return None  # the module does not exist (yet)
        raise


def public_names(module: types.ModuleType) -> list[str]:
    """The names a user is meant to use: ``__all__`` if defined, else every re-export not starting with ``_``."""
    names = getattr(module, "__all__", None)
    if names is None:
        names = [n for n in vars(module) if not n.startswith("_")]
    return [n for n in names if not (n.startswith("__") and n.endswith("__"))]


def canonical_path(module: types.ModuleType, name: str) -> str:
    """The path mkdocstrings should render for ``module.name``.

    Normally the public path itself (griffe follows the re-export). When a public name shadows a submodule of the
    same name (``dlnlab.train`` is the function, ``dlnlab/train/`` the package that defines it) the static loader
    sees the submodule, so the object's defining path is used instead.
    """
    obj = getattr(module, name)
    sub = sys.modules.get(f"{module.__name__}.{name}")
    if isinstance(sub, types.ModuleType) and sub is not obj and hasattr(obj, "__qualname__"):
        return f"{obj.__module__}.{obj.__qualname__}"
    return f"{module.__name__}.{name}"


def directive(module: types.ModuleType, name: str, display: str, level: int = 3) -> str:
    path = canonical_path(module, name)
    lines = [f"::: {path}", "    options:", f"      heading_level: {level}"]
    if path != f"{module.__name__}.{name}":
        lines.append(f'      heading: "{display}"')
        lines.append(f'      toc_label: "{display}"')
    return "\n".join(lines) + "\n"


def first_line(module: types.ModuleType) -> str:
    doc = inspect.getdoc(module) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def module_page(module: types.ModuleType, title: str) -> str:
    out = [f"# {title}\n", f"::: {module.__name__}", "    options:", "      show_root_heading: false",
           "      members: false\n"]
    subs, objs = [], []
    for name in public_names(module):
        value = getattr(module, name, None)
        if value is None and not hasattr(module, name):
            continue
        (subs if isinstance(value, types.ModuleType) else objs).append(name)
    for name in objs:
        out.append(directive(module, name, f"{module.__name__}.{name}"))
    if subs:
        out.append("## Submodules\n")
        out.extend(f"- `{module.__name__}.{s}`: {first_line(getattr(module, s))}" for s in subs)
        out.append("")
    return "\n".join(out)


def top_level_page() -> str:
    out = [
        "# dl: the top level\n",
        "`import dlnlab as dl`: the names below are the public surface of the package (its explicit re-exports).",
        "Subpackages have pages of their own.\n",
    ]
    groups: dict[str, list[str]] = {g: [] for g, _ in TOP_GROUPS}
    groups["Other"] = []
    modules = []
    for name in public_names(dlnlab):
        value = getattr(dlnlab, name)
        if isinstance(value, types.ModuleType):
            modules.append(name)
            continue
        where = getattr(value, "__module__", None) or "dlnlab"
        group = next((g for g, prefixes in TOP_GROUPS if where.startswith(prefixes)), "Other")
        groups[group].append(name)
    for group, names in groups.items():
        if not names:
            continue
        out.append(f"## {group}\n")
        out.extend(directive(dlnlab, n, f"dlnlab.{n}") for n in names)
    if modules:
        out.append("## Subpackages\n")
        out.extend(f"- `dlnlab.{m}`: {first_line(getattr(dlnlab, m))}" for m in sorted(modules))
        out.append("")
    return "\n".join(out)


def cli_page() -> str:
    """The command line, from the CLI's own ``--help`` (so it cannot drift from the parser)."""
    from dlnlab import cli

    def help_text(*argv: str) -> str:
        buf = io.StringIO()
        with contextlib.redirect_stdout(buf), contextlib.suppress(SystemExit):
            cli.main([*argv, "--help"])
        return buf.getvalue().rstrip()

    main = help_text()
    # Subcommands are the indented lines under the COMMAND positional: "    name   help".
    commands = re.findall(r"^ {4}([a-z][a-z0-9_-]*)\s{2,}\S", main, flags=re.M)
    out = [
        "# The command line: dlnlab\n",
        "Generated from `dlnlab --help` at build time. Exit codes: 0 when every claim has its registered outcome, "
        "1 otherwise, 2 on bad input (one line on stderr). The workflow is described in "
        "[the command-line workflow](../workflow.md).\n",
        "```text",
        "$ dlnlab --help",
        main,
        "```\n",
    ]
    for c in commands:
        out += [f"## dlnlab {c}\n", "```text", f"$ dlnlab {c} --help", help_text(c), "```\n"]
    return "\n".join(out)


def main() -> None:
    committed = {p.stem for p in (ROOT / "docs" / "api").glob("*.md")}
    committed |= {f"theory/{p.stem}" for p in (ROOT / "docs" / "api" / "theory").glob("*.md")}
    pages: list[tuple[str, str, str]] = []  # (page, nav title, content)

    pages.append(("dlnlab", "dl (top level)", top_level_page()))
    for page, modname, title in MODULE_PAGES:
        module = _try_import(modname)
        if module is not None:
            pages.append((page, modname.replace("dlnlab.", "dl."), module_page(module, title)))

    theory = importlib.import_module("dlnlab.theory")
    theory_pages = []
    for info in sorted(pkgutil.iter_modules(theory.__path__), key=lambda i: i.name):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"dlnlab.theory.{info.name}")
        theory_pages.append((f"theory/{info.name}", f"dl.theory.{info.name}",
                             module_page(module, f"dl.theory.{info.name}")))
    pages.append(("cli", "Command line", cli_page()))

    index = [
        "# API reference\n",
        "Generated at every build from the package itself: every public name of every public module, rendered",
        "from its docstring (conventions, normalisation, a runnable example, the paper). Conventions used",
        "everywhere are on [the conventions page](../conventions.md).\n",
        "| page | what it covers |",
        "|---|---|",
    ]
    for page, nav, _ in pages + theory_pages:
        if page == "cli":
            what = "the `dlnlab` command (reproduce, sweep, plot, list)"
        else:
            modname = "dlnlab." + page.replace("/", ".") if page != "dlnlab" else "dlnlab"
            what = first_line(importlib.import_module(modname))
        index.append(f"| [{nav}]({page}.md) | {what.replace('|', '/')} |")
    index.append("")

    def write(page: str, content: str) -> None:
        if page not in committed:
            with mkdocs_gen_files.open(f"api/{page}.md", "w") as f:
                f.write(content)

    nav = ["* [Overview](index.md)"]
    for page, title, content in pages:
        if page != "cli":
            nav.append(f"* [{title}]({page}.md)")
        write(page, content)
    nav.append("* dl.theory")
    for page, title, content in theory_pages:
        nav.append(f"    * [{title.removeprefix('dl.theory.')}]({page}.md)")
        write(page, content)
    nav.append("* [Command line](cli.md)")
    if "index" not in committed:
        with mkdocs_gen_files.open("api/index.md", "w") as f:
            f.write("\n".join(index))
    with mkdocs_gen_files.open("api/SUMMARY.md", "w") as f:
        f.write("\n".join(nav) + "\n")


main()

"""The ``dlnlab`` command line.

Commands::

    dlnlab reproduce all --quick --out results    # every registered experiment, reduced size
    dlnlab reproduce saxe --out results            # one experiment, full size
    dlnlab sweep examples/sweep.toml --out results/sweep [--executor dask [--scheduler tcp://HOST:8786]]
    dlnlab plot results/sweep [--x FIELD] [--y FIELD] [--metric NAME ...]
    dlnlab list                                    # experiments and sweepable functions

Exit codes: 0 when every claim has its declared outcome (passed, or not_reproduced where the experiment
declared it; every sweep run completed), 1 when a claim failed or passed unexpectedly (a sweep run failed),
2 on bad input (also an experiment that breaks the contract, or a broken plugin in ``list``): one line on
stderr, ``dlnlab: error: FIELD: ...``, naming the argument, what was given and what was expected, no
traceback (argument errors and every :class:`dlnlab.errors.DlnlabError`: an unknown experiment, an
unwritable ``--out``, a malformed TOML).
"""

from __future__ import annotations

import argparse
import math
import os
import re
import shlex
import sys

__all__ = ["main"]

# What every argument expects, for the one-line errors of argparse's own checks.
_EXPECTED = {
    "COMMAND": "one of reproduce, sweep, plot, list",
    "NAME": "experiment names or 'all' (see dlnlab list)",
    "config": "a sweep TOML file",
    "dir": "the --out folder of a finished sweep",
    "--out": "a folder",
    "--seed": "an integer in [0, 2**63)",
    "--workers": "an integer >= 1",
    "--executor": "'local' or 'dask'",
    "--scheduler": "an address tcp://HOST:PORT",
    "--lock-timeout": "a number of seconds >= 0",
    "--x": "a config field",
    "--y": "a config field",
    "--metric": "one or more metric names",
}
# What the positional arguments of each command take (for an extra, unrecognised one).
_POSITIONAL = {
    "reproduce": ("NAME", "experiment names together, before any option"),
    "sweep": ("config", "one TOML file"),
    "plot": ("dir", "one sweep folder"),
    "list": ("list", "no arguments"),
}


class _BadArguments(Exception):
    pass


def _rephrase(message: str) -> str:
    """argparse's message as ``FIELD: ..., got ...; expected ...``."""
    m = re.match(r"the following arguments are required: (.+)", message)
    if m:
        names = m.group(1).split(", ")
        more = f" (also missing: {', '.join(names[1:])})" if len(names) > 1 else ""
        return f"{names[0]}: required, got nothing{more}; expected {_EXPECTED.get(names[0], 'a value')}"
    m = re.match(r"argument ([^:/\s]+)(?:/\S+)?: (.*)", message)
    if not m:
        m2 = re.match(r"ambiguous option: (\S+?)(?:=\S*)? could match (.+)", message)
        if m2:
            return f"{m2.group(1)}: ambiguous abbreviation, got {m2.group(1)!r}; expected one of {m2.group(2)}"
        return f"arguments: expected the form shown by 'dlnlab --help', got an error: {message}"
    name, rest = m.group(1), m.group(2)
    want = _EXPECTED.get(name, "a value")
    m = re.match(r"invalid choice: (.+?) \(choose from (.+)\)$", rest)
    if m:
        return f"{name}: expected one of {m.group(2)}, got {m.group(1)}"
    if re.match(r"expected (one|at least one) argument", rest):
        return f"{name}: expected {want} after it, got nothing"
    m = re.match(r"ignored explicit argument (.+)", rest)
    if m:
        return f"{name}: expected no value (it is a flag), got {m.group(1)}"
    m = re.match(r"invalid \S+ value: (.+)", rest)
    if m:
        return f"{name}: expected {want}, got {m.group(1)}"
    if rest.startswith("expected "):  # the type checks below
        return f"{name}: {rest}"
    return f"{name}: {rest}; expected {want}, got something else"


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (the caller prints it and exits 2)."""

    def error(self, message):
        raise _BadArguments(_rephrase(" ".join(str(message).split())))


def _integer(low: int, high: int | None = None):
    what = f"an integer >= {low}" if high is None else f"an integer in [{low}, 2**63)"

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if value < low or (high is not None and value >= high):
            raise argparse.ArgumentTypeError(f"expected {what}, got {value}")
        return value

    return parse


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"expected a number of seconds >= 0, got {text!r}")
    return value


def _extra_arguments(command: str | None, parser, extra: list[str]) -> str:
    """The message for arguments argparse did not recognise (the first one is named)."""
    token = extra[0]
    sub = parser.subcommands.get(command)
    if token.startswith("-") and token.strip("-") and sub is not None:
        options = sorted({o for a in sub._actions for o in a.option_strings if o.startswith("--")})
        return (f"{token.split('=')[0]}: not an option of 'dlnlab {command}', got {token!r}; expected one of "
                f"{', '.join(options)}")
    field, want = _POSITIONAL.get(command, ("arguments", "the form shown by 'dlnlab --help'"))
    return f"{field}: got an extra argument {token!r}; expected {want}"


def _check_out(out: str) -> None:
    """``--out`` of reproduce: a folder that can be created and written."""
    import tempfile
    from pathlib import Path

    from .errors import ConfigError

    if not out.strip():
        return  # the runner's own message (an empty value)
    path = Path(out).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except (OSError, ValueError) as exc:
        raise ConfigError(f"out: expected a writable folder, got {out!r} "
                          f"({getattr(exc, 'strerror', None) or exc})") from None


def _version() -> str:
    from . import __version__

    return __version__


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _compilation_cache() -> None:
    """Keep XLA's compiled programs between CLI runs: compilation dominates a quick reproduction, and a rerun of
    ``reproduce ji2019 --quick`` took 14 s instead of 20 s. ``DLNLAB_CACHE_DIR`` picks the folder (default
    ``$XDG_CACHE_HOME/dlnlab/jax``) and an empty value turns it off; ``JAX_COMPILATION_CACHE_DIR``, when set,
    wins. Set through the environment too, so sweep workers (fresh processes) share it. Programs with host
    callbacks (diffrax's flow loop) are never cached by JAX: the flow still compiles on every run."""
    import jax

    folder = os.environ.get("JAX_COMPILATION_CACHE_DIR")
    if folder is None:
        base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
        folder = os.environ.get("DLNLAB_CACHE_DIR", os.path.join(base, "dlnlab", "jax"))
    if folder:
        os.environ["JAX_COMPILATION_CACHE_DIR"] = folder
        jax.config.update("jax_compilation_cache_dir", folder)


def _cmd_reproduce(args) -> int:
    _compilation_cache()
    os.environ.setdefault("MPLBACKEND", "Agg")  # headless figures for the 0.1 experiments that use pyplot
    from .experiments._runner import reproduce, resolve

    selection = args.names
    resolve(selection)  # an unknown or broken name is reported before a bad --out, as reproduce() does
    _check_out(args.out)
    res = reproduce(
        selection,
        out=args.out,
        quick=args.quick,
        seed=args.seed,
        fresh=args.fresh,
        quiet=args.quiet,
        report=not args.no_report,
        console=None if args.quiet else _console(),
        command=args.command_line,
    )
    n = len(res.claims)
    n_pass = sum(c.outcome == "passed" for c in res.claims) - len(res.unexpected)
    n_nr = sum(c.outcome == "not_reproduced" for c in res.claims)
    parts = [f"{res.n_failed} failed"]
    if n_nr:
        parts.append(f"{n_nr} not reproduced as declared")
    if res.unexpected:
        parts.append(f"{len(res.unexpected)} unexpected passes")
    where = res.files.get("report", res.files["claims"])
    print(f"{n_pass} of {n} claims passed ({', '.join(parts)}) -> {where}")
    for problem in res.problems:
        print("dlnlab: error: " + " ".join(problem.split()), file=sys.stderr)
    return res.exit_code


def _cmd_sweep(args) -> int:
    _compilation_cache()
    from .sweep import sweep

    df = sweep(
        args.config,
        out=args.out,
        executor=args.executor,
        workers=args.workers,
        scheduler=args.scheduler,
        quiet=args.quiet,
        plot=not args.no_plot,
        console=None if args.quiet else _console(),
        lock_timeout=args.lock_timeout,
    )
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"{len(df)} runs ({parts or 'none'}) -> {args.out}")
    return 1 if counts.get("failed", 0) else 0


def _cmd_plot(args) -> int:
    from .sweep import plot_store
    from .sweep._api import check_name

    for m in args.metric or ():
        check_name("--metric", m)

    paths = plot_store(args.dir, x=args.x, y=args.y, metrics=args.metric)
    for p in paths:
        print(p)
    return 0


def _cmd_list(args) -> int:
    from .experiments import discover
    from .sweep import get_sweepable, sweepable_names

    found = discover()
    print("experiments (dlnlab reproduce NAME):")
    for name, exp in found.experiments.items():
        origin = found.origins.get(name, "dlnlab")
        print(f"  {name:14s} {exp.title}" + ("" if origin == "dlnlab" else f"  [{origin}]"))
    for name in found.errors:
        print(f"  {name:14s} (broken: see the error below)")
    print("sweepable functions (function = NAME in a sweep TOML):")
    for name in sweepable_names():
        fn = get_sweepable(name)
        print(f"  {name}")
        for field, spec in sorted(fn.all_fields.items()):
            print(f"      {field:18s} {spec.kind:6s} default {spec.default!r}  {spec.help}")
        print(f"      metrics: {', '.join(fn.metrics)}")
    for exc in found.errors.values():
        print("dlnlab: error: " + " ".join(str(exc).split()), file=sys.stderr)
    return 2 if found.errors else 0


def _parser() -> _Parser:
    p = _Parser(
        prog="dlnlab",
        description="dlnlab: a laboratory for deep linear networks. Reproduce papers, run sweeps, "
        "plot and report.",
        epilog="Exit codes: 0 every claim has its declared outcome, 1 a claim failed or passed unexpectedly, "
        "2 bad input.",
    )
    p.add_argument("--version", action="version", version=f"dlnlab {_version()}")
    sub = p.add_subparsers(dest="command", metavar="COMMAND", required=True)

    r = sub.add_parser(
        "reproduce",
        help="run experiments and check their claims",
        description="Run registered experiments (or 'all') and write claims.json, "
        "results.parquet, figures/ and report.html to --out.",
    )
    r.add_argument("names", nargs="+", metavar="NAME", help="experiment names, or 'all'")
    r.add_argument("--quick", action="store_true", help="reduced sizes (minutes for everything)")
    r.add_argument("--out", default="results", help="output folder (default: results)")
    r.add_argument("--seed", type=_integer(0, 2**63), default=0, help="base seed (default: 0)")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument("--no-report", action="store_true", help="skip report.html")
    r.add_argument("--fresh", action="store_true",
                   help="recompute every stored piece under OUT/runs instead of reusing it")
    r.set_defaults(func=_cmd_reproduce)

    s = sub.add_parser(
        "sweep",
        help="run a config grid from a TOML file",
        description="Run every config of a sweep TOML on a content-addressed store: "
        "runs already stored under --out are skipped.",
    )
    s.add_argument("config", help="sweep TOML file (see docs/workflow.md)")
    s.add_argument("--out", required=True, help="store folder")
    s.add_argument(
        "--executor",
        choices=("local", "dask"),
        default="local",
        help="local process pool (default) or Dask",
    )
    s.add_argument(
        "--scheduler",
        default=None,
        help="Dask scheduler address tcp://HOST:PORT (default: start a LocalCluster)",
    )
    s.add_argument("--workers", type=_integer(1), default=None, help="worker processes (default: CPUs)")
    s.add_argument(
        "--lock-timeout",
        type=_seconds,
        default=None,
        metavar="SECONDS",
        help="when another sweep is writing to --out, wait at most this long (default: until it "
        "finishes), then skip the runs it stored",
    )
    s.add_argument("--quiet", action="store_true", help="no progress display")
    s.add_argument("--no-plot", action="store_true", help="skip the figures")
    s.set_defaults(func=_cmd_sweep)

    pl = sub.add_parser(
        "plot",
        help="plot a finished sweep",
        description="Lines with seed bands for one varying axis, heatmaps for two.",
    )
    pl.add_argument("dir", help="the sweep's --out folder")
    pl.add_argument("--x", default=None, help="config field on the x axis")
    pl.add_argument("--y", default=None, help="config field on the y axis (heatmap)")
    pl.add_argument("--metric", nargs="+", default=None, help="metrics to plot (default: all)")
    pl.set_defaults(func=_cmd_plot)

    ls = sub.add_parser("list", help="list experiments and sweepable functions")
    ls.set_defaults(func=_cmd_list)
    p.subcommands = {"reproduce": r, "sweep": s, "plot": pl, "list": ls}
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dlnlab`` console script; returns the exit code."""
    from .errors import DlnlabError

    argv = list(sys.argv[1:] if argv is None else argv)
    parser = _parser()
    try:
        args, extra = parser.parse_known_args(argv)
        if extra:
            raise _BadArguments(_extra_arguments(getattr(args, "command", None), parser, extra))
    except _BadArguments as exc:
        print(f"dlnlab: error: {exc} (see dlnlab --help)", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    args.command_line = "dlnlab " + shlex.join(argv)
    import jax  # the command line computes in float64 (a process-wide JAX setting: the CLI's choice, not the library's)

    jax.config.update("jax_enable_x64", True)
    try:
        return int(args.func(args))
    except DlnlabError as exc:
        print("dlnlab: error: " + " ".join(str(exc).split()), file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("dlnlab: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

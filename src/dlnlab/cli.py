"""The ``dlnlab`` command line.

Commands::

    dlnlab reproduce all --quick --out results    # every registered experiment, reduced size
    dlnlab reproduce saxe --out results            # one experiment, full size
    dlnlab sweep examples/sweep.toml --out results/sweep [--executor dask [--scheduler tcp://HOST:8786]]
    dlnlab plot results/sweep [--x FIELD] [--y FIELD] [--metric NAME ...]
    dlnlab list                                    # experiments and sweepable functions

Exit codes: 0 when every claim passed (every sweep run completed), 1 when a claim failed (a sweep
run failed), 2 on bad input: one line on stderr naming what was wrong, no traceback (argument errors
and every :class:`dlnlab.errors.DlnlabError`: an unknown experiment, an unwritable ``--out``, a
malformed TOML).
"""

from __future__ import annotations

import argparse
import shlex
import sys

__all__ = ["main"]


class _BadArguments(Exception):
    pass


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad argument as one line (the caller prints it and exits 2)."""

    def error(self, message):
        raise _BadArguments(f"{self.prog}: {message}")


def _version() -> str:
    from . import __version__

    return __version__


def _console():
    from rich.console import Console

    return Console(stderr=True)


def _cmd_reproduce(args) -> int:
    from . import experiments  # noqa: F401 - registers every experiment
    from .experiments._runner import reproduce

    selection = args.names
    summary = reproduce(
        selection,
        out=args.out,
        quick=args.quick,
        seed=args.seed,
        quiet=args.quiet,
        report=not args.no_report,
        console=None if args.quiet else _console(),
        command=args.command_line,
    )
    n, bad = len(summary.claims), summary.n_failed
    where = summary.files.get("report", summary.files["claims"])
    print(f"{n - bad} of {n} claims passed ({bad} failed) -> {where}")
    return summary.exit_code


def _cmd_sweep(args) -> int:
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
    )
    counts = df["status"].value_counts().to_dict() if len(df) else {}
    parts = ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
    print(f"{len(df)} runs ({parts or 'none'}) -> {args.out}")
    return 1 if counts.get("failed", 0) else 0


def _cmd_plot(args) -> int:
    from .sweep import plot_store

    paths = plot_store(args.dir, x=args.x, y=args.y, metrics=args.metric)
    for p in paths:
        print(p)
    return 0


def _cmd_list(args) -> int:
    from . import experiments
    from .sweep import get_sweepable, sweepable_names

    print("experiments (dlnlab reproduce NAME):")
    for name in experiments.names():
        print(f"  {name:14s} {experiments.get(name).title}")
    print("sweepable functions (function = NAME in a sweep TOML):")
    for name in sweepable_names():
        fn = get_sweepable(name)
        print(f"  {name}")
        for field, spec in sorted(fn.all_fields.items()):
            print(f"      {field:18s} {spec.kind:6s} default {spec.default!r}  {spec.help}")
        print(f"      metrics: {', '.join(fn.metrics)}")
    return 0


def _parser() -> _Parser:
    p = _Parser(
        prog="dlnlab",
        description="dlnlab: a laboratory for deep linear networks. Reproduce papers, run sweeps, "
        "plot and report.",
        epilog="Exit codes: 0 all claims passed, 1 a claim failed, 2 bad input.",
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
    r.add_argument("--seed", type=int, default=0, help="base seed (default: 0)")
    r.add_argument("--quiet", action="store_true", help="no progress display")
    r.add_argument("--no-report", action="store_true", help="skip report.html")
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
    s.add_argument("--workers", type=int, default=None, help="worker processes (default: CPUs)")
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
    return p


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``dlnlab`` console script; returns the exit code."""
    from .errors import DlnlabError

    argv = list(sys.argv[1:] if argv is None else argv)
    try:
        args = _parser().parse_args(argv)
    except _BadArguments as exc:
        print(f"{exc} (see dlnlab --help)", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)
    args.command_line = "dlnlab " + shlex.join(argv)
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

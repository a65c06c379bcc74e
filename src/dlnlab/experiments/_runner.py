"""Run registered experiments and write what they found: claims.json, results.parquet, figures/,
report.html.

Used by ``dlnlab reproduce`` (the CLI only parses arguments and calls :func:`reproduce`). A step
that raises is
not allowed to kill the run: it becomes a failed claim ``<step>_crashed`` that says which step
crashed and why, and the remaining steps and experiments still run. ``claims.json`` is rewritten
(atomically) after every experiment, so an interrupted run keeps what it already established.

Output layout (``claims.json`` is a list of ``{paper, claim, statement, expected, measured,
tolerance, passed}`` as fixed in DESIGN.md)::

    DIR/claims.json  DIR/results.parquet  DIR/figures/<paper>_<name>.{svg,png}  DIR/report.html

Example:
    >>> from dlnlab.experiments._runner import reproduce
    >>> summary = reproduce(["saxe"], out="results", quick=True, quiet=True)   # doctest: +SKIP
    >>> summary.exit_code                                                        # doctest: +SKIP
    0
"""

from __future__ import annotations

import json
import tempfile
import time
import traceback
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from .._checks import as_int
from ..errors import ConfigError
from ..report._io import atomic_write_bytes, atomic_write_text
from ._base import Claim, Context, Experiment, get, names

__all__ = ["reproduce", "Summary", "prepare_out", "resolve", "rows_to_frame"]


@dataclass
class Summary:
    """What :func:`reproduce` did: every claim, per-experiment wall times and the files written."""

    out: Path
    claims: list[Claim] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)

    @property
    def n_failed(self) -> int:
        return sum(not c.passed for c in self.claims)

    @property
    def exit_code(self) -> int:
        """0 when every claim passed, 1 otherwise (the CLI's contract)."""
        return 0 if self.n_failed == 0 else 1


def prepare_out(out) -> Path:
    """Create the output folder and check it is writable; a clear ConfigError otherwise."""
    if out is None or str(out).strip() == "":
        raise ConfigError("out: expected a folder path, got an empty value")
    path = Path(out).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=path, prefix=".write-test-"):
            pass
    except OSError as exc:
        raise ConfigError(f"out: expected a writable folder, got {str(path)!r} ({exc.strerror or exc})") from None
    return path


def resolve(selection: Sequence[str] | str) -> list[Experiment]:
    """Experiments named in ``selection`` (``"all"`` means every registered one), in a stable
    order."""
    if isinstance(selection, str):
        selection = [selection]
    if not selection:
        raise ConfigError("experiment: expected a name or 'all', got nothing")
    chosen: list[str] = []
    for name in selection:
        for n in names() if name == "all" else [name]:
            get(n)  # raises a ConfigError listing the valid names
            if n not in chosen:
                chosen.append(n)
    return [get(n) for n in chosen]


def _crash_claim(paper: str, step: str, exc: BaseException) -> Claim:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    why = f"{type(exc).__name__}: {exc}".strip()
    return Claim(
        paper,
        f"{step}_crashed",
        f"step {step!r} ran to completion",
        expected="no exception",
        measured=f"step {step!r} raised {why}{at}",
        tolerance=None,
        passed=False,
    )


def run_experiment(exp: Experiment, ctx: Context, *, on_step=None) -> None:
    """Run every step; a step that raises becomes a failed claim and the next step still runs."""
    for step in exp.steps:
        if on_step is not None:
            on_step(step.__name__)
        try:
            step(ctx)
        except Exception as exc:  # noqa: BLE001 - a crashed step is a result, not a reason to stop
            ctx.claims.append(_crash_claim(exp.name, step.__name__, exc))
            try:
                import matplotlib.pyplot as plt

                plt.close("all")
            except Exception:  # noqa: BLE001
                pass


def rows_to_frame(rows: list[dict]):
    """A pandas DataFrame from heterogeneous result rows; columns Parquet cannot hold become JSON
    text."""
    import pandas as pd

    df = pd.DataFrame(rows)
    for col in df.columns:
        if df[col].dtype != object:
            continue
        vals = [v for v in df[col] if v is not None and not (isinstance(v, float) and v != v)]
        kinds = {type(v) for v in vals}
        if kinds <= {str} or kinds <= {bool}:
            continue
        if kinds <= {int, float}:
            df[col] = pd.to_numeric(df[col])
            continue
        df[col] = [None if v is None else json.dumps(v) for v in df[col]]
    return df


def _write_parquet(rows: list[dict], path: Path) -> None:
    import io

    df = rows_to_frame(rows) if rows else __import__("pandas").DataFrame({"paper": [], "table": []})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def _write_claims(claims: list[Claim], path: Path) -> None:
    atomic_write_text(path, json.dumps([c.to_dict() for c in claims], indent=2))


class _Display:
    """A rich progress display: one task per experiment, advancing per step; silent when quiet."""

    def __init__(self, quiet: bool, console=None):
        self.quiet = quiet
        self.progress = None
        if not quiet:
            from rich.console import Console
            from rich.progress import (
                BarColumn,
                MofNCompleteColumn,
                Progress,
                TextColumn,
                TimeElapsedColumn,
            )

            self.console = console or Console(stderr=True)
            self.progress = Progress(
                TextColumn("{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeElapsedColumn(),
                console=self.console,
                transient=False,
            )

    def __enter__(self):
        if self.progress is not None:
            self.progress.__enter__()
        return self

    def __exit__(self, *exc):
        if self.progress is not None:
            self.progress.__exit__(*exc)

    def start(self, exp: Experiment):
        if self.progress is None:
            return None
        return self.progress.add_task(f"[bold]{exp.name}[/]", total=len(exp.steps))

    def step(self, task, exp: Experiment, name: str, done: int):
        if self.progress is not None:
            self.progress.update(task, completed=done, description=f"[bold]{exp.name}[/] {name}")

    def finish(self, task, exp: Experiment, claims: list[Claim], seconds: float):
        if self.progress is None:
            return
        n_bad = sum(not c.passed for c in claims)
        mark = "[green]all passed[/]" if n_bad == 0 else f"[red]{n_bad} failed[/]"
        self.progress.update(
            task,
            completed=len(exp.steps),
            description=f"[bold]{exp.name}[/] {len(claims)} claims, {mark}",
        )
        for c in claims:
            colour, word = ("green", "PASS") if c.passed else ("red", "FAIL")
            self.progress.console.print(
                f"  [{colour}]{word}[/] {exp.name}/{c.claim}", highlight=False
            )
        self.progress.console.print(f"  {exp.name}: {seconds:.1f} s", style="dim", highlight=False)


def reproduce(
    selection: Sequence[str] | str,
    *,
    out,
    quick: bool = False,
    seed: int = 0,
    quiet: bool = False,
    report: bool = True,
    console=None,
    command: str | None = None,
) -> Summary:
    """Run the selected experiments and write DIR/claims.json, results.parquet, figures/ and
    report.html.

    Args:
        selection: experiment names, or ``"all"``.
        out: output folder (created; must be writable).
        quick: run every experiment at its reduced size.
        seed: base seed handed to every experiment (``ctx.seed``).
        quiet: no progress display.
        report: write report.html.
        command: the command line, recorded in the report.

    Raises:
        ConfigError: an unknown experiment, a bad seed or an unwritable ``out`` (before anything
            runs).
    """
    experiments = resolve(selection)
    seed = as_int("seed", seed, low=0)
    path = prepare_out(out)
    summary = Summary(out=path)
    rows: list[dict] = []
    figures: dict[str, list[Path]] = {}
    started = time.time()
    with _Display(quiet, console) as display:
        for exp in experiments:
            ctx = Context(paper=exp.name, out=path, quick=quick, seed=seed)
            task = display.start(exp)
            t0 = time.perf_counter()
            count = iter(range(len(exp.steps)))
            run_experiment(
                exp, ctx, on_step=lambda n, e=exp, t=task, c=count: display.step(t, e, n, next(c))
            )
            summary.seconds[exp.name] = time.perf_counter() - t0
            summary.claims.extend(ctx.claims)
            rows.extend(ctx.rows)
            figures[exp.name] = list(ctx.figures)
            display.finish(task, exp, ctx.claims, summary.seconds[exp.name])
            _write_claims(summary.claims, path / "claims.json")
    summary.files["claims"] = path / "claims.json"
    _write_parquet(rows, path / "results.parquet")
    summary.files["results"] = path / "results.parquet"
    if report:
        from ..report import write_report

        config = {
            "command": command or "",
            "experiments": ", ".join(e.name for e in experiments),
            "quick": quick,
            "seed": seed,
            "out": str(path),
            "started": time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(started)),
            "wall time (s)": round(time.time() - started, 1),
            **{f"time {k} (s)": round(v, 1) for k, v in summary.seconds.items()},
        }
        summary.files["report"] = write_report(
            path, claims=summary.claims, experiments=experiments, figures=figures, config=config
        )
    return summary

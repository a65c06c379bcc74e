"""``dl.reproduce``: run experiments and write what they found (claims.json, results.parquet, figures/,
report.html), with their pieces stored like sweep runs so that a rerun reuses them.

For a contract experiment (:class:`dl.Experiment <dlnlab.experiments.Experiment>`) the runner calls
``setup(ctx)`` once, then every claim function and every figure function with the state it returned. A function
that raises does not stop the run: it becomes a failed claim ``<function>_crashed`` saying where and why, and
the next function runs (a crashed setup skips the claims and figures that need its state). A broken contract
(a prose expected value, a claim without a tolerance, a duplicate id, a claim function that checks nothing) is
recorded the same way and also makes the run exit 2 (bad input). The 0.1 step experiments (:mod:`._base`) run
unchanged next to them.

Everything is float64: the run holds JAX's 64-bit mode for its duration (importing dlnlab changes nothing).

Output layout (``claims.json`` rows are ``{paper, claim, statement, expected, measured, tolerance, outcome,
passed}``)::

    OUT/claims.json  OUT/results.parquet  OUT/figures/<paper>_<name>.{svg,png}  OUT/report.html
    OUT/runs/<id>.{npz,json}   stored pieces (ctx.cached), the sweep store's format

Exit code (:attr:`Reproduction.exit_code`): 0 when every claim has its declared outcome (passed, or
not_reproduced where declared), 1 otherwise (a failure or an unexpected pass), 2 when an experiment broke the
contract.

Example:
    >>> import dlnlab as dl
    >>> res = dl.reproduce(["saxe"], quick=True, out="results")     # doctest: +SKIP
    >>> res.exit_code, res.frame()[["claim", "outcome"]]              # doctest: +SKIP
"""

from __future__ import annotations

import contextlib
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
from ._base import Context as StepContext
from ._base import StepExperiment
from ._claims import Claim, ContractError, Holds
from ._context import Context
from ._experiment import Experiment
from ._registry import discover, get

__all__ = ["reproduce", "Reproduction", "prepare_out", "resolve", "rows_to_frame", "run_experiment", "x64"]


@dataclass
class Reproduction:
    """What :func:`reproduce` did: every claim, per-experiment wall times, stored pieces and files written."""

    out: Path
    claims: list[Claim] = field(default_factory=list)
    seconds: dict[str, float] = field(default_factory=dict)
    files: dict[str, Path] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)  # broken contracts (bad input)
    declared: dict[str, tuple[str, ...]] = field(default_factory=dict)  # paper -> not_reproduced claim ids
    pieces: dict[str, dict[str, int]] = field(default_factory=dict)  # paper -> {"computed": n, "reused": m}

    @property
    def unexpected(self) -> list[Claim]:
        """Claims declared not_reproduced that passed (reported, and not their declared outcome)."""
        return [c for c in self.claims if c.passed and c.claim in self.declared.get(c.paper, ())]

    @property
    def n_failed(self) -> int:
        return sum(c.outcome == "failed" for c in self.claims)

    @property
    def exit_code(self) -> int:
        """0: every claim has its declared outcome; 1: a claim failed or passed unexpectedly; 2: bad input."""
        if self.problems:
            return 2
        return 0 if self.n_failed == 0 and not self.unexpected else 1

    def frame(self):
        """The claims as a pandas DataFrame (the columns of claims.json)."""
        import pandas as pd

        cols = ["paper", "claim", "statement", "expected", "measured", "tolerance", "outcome", "passed"]
        return pd.DataFrame([c.to_dict() for c in self.claims], columns=cols)


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


def resolve(selection) -> tuple[list, list[str]]:
    """The experiments named in ``selection`` (names, ``"all"``, or Experiment objects) and the errors of the
    broken plugins that ``"all"`` had to leave out. An unknown or broken name given explicitly raises."""
    if isinstance(selection, (str, Experiment, StepExperiment)):
        selection = [selection]
    if not selection:
        raise ConfigError("experiment: expected a name or 'all', got nothing")
    d = discover()
    chosen, problems = {}, []
    for item in selection:
        if isinstance(item, (Experiment, StepExperiment)):
            chosen.setdefault(item.name, item)
        elif item == "all":
            for name, exp in d.experiments.items():
                chosen.setdefault(name, exp)
            problems += [str(e) for e in d.errors.values()]
        elif isinstance(item, str):
            chosen.setdefault(item, get(item, d))
        else:
            raise ConfigError(f"experiment: expected names, 'all' or dl.Experiment objects, got {item!r}")
    return list(chosen.values()), problems


def x64():
    """A context holding JAX's 64-bit mode (restored afterwards)."""
    import jax

    if hasattr(jax, "enable_x64"):
        return jax.enable_x64(True)
    from jax.experimental import enable_x64  # older JAX

    return enable_x64()


def _crash_claim(paper: str, stage: str, exc: BaseException) -> Claim:
    where = traceback.extract_tb(exc.__traceback__)[-1] if exc.__traceback__ else None
    at = f" at {Path(where.filename).name}:{where.lineno}" if where else ""
    why = " ".join(f"{type(exc).__name__}: {exc}".split())
    return Claim(paper, f"{stage}_crashed", f"{stage!r} ran to completion", expected=True,
                 measured=f"{stage!r} raised {why}{at}", tolerance=Holds(), passed=False)


def _close_pyplot() -> None:
    import sys

    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


def _guarded(ctx, stage: str, fn, *args) -> bool:
    """Run ``fn(*args)``; an exception becomes a failed claim (and a problem when it breaks the contract)."""
    try:
        fn(*args)
        return True
    except Exception as exc:  # noqa: BLE001 - a crashed function is a result, not a reason to stop
        ctx.claims.append(_crash_claim(ctx.paper, stage, exc))
        if isinstance(exc, ContractError) and hasattr(ctx, "problems"):
            ctx.problems.append(" ".join(str(exc).split()))
        _close_pyplot()
        return False


def _run_contract(exp: Experiment, ctx: Context, on_step) -> None:
    on_step and on_step("setup")
    state = {}
    ok = _guarded(ctx, "setup", lambda: state.setdefault("s", exp.setup(ctx) if exp.setup else None))
    crashed = not ok
    for kind, fns in (("claims", exp.claims), ("figures", exp.figures)):
        for fn in fns:
            name = getattr(fn, "__name__", "function")
            on_step and on_step(name)
            if not ok:
                continue  # no state to give it: the setup's crash claim says why
            n_claims, n_figs = len(ctx.claims), len(ctx.figures)
            if not _guarded(ctx, name, fn, ctx, state["s"]):
                crashed = True
            elif kind == "claims" and len(ctx.claims) == n_claims:
                ctx.problems.append(f"experiment {exp.name!r}: claims[{name!r}]: expected at least one claim "
                                    "checked (ctx.check_close, at_most, at_least, holds), got none")
            elif kind == "figures" and len(ctx.figures) == n_figs:
                ctx.problems.append(f"experiment {exp.name!r}: figures[{name!r}]: expected at least one "
                                    "ctx.figure(name, fig), got none")
    checked = {c.claim for c in ctx.claims}
    for cid in exp.not_reproduced:
        if cid not in checked and not crashed:
            ctx.problems.append(f"experiment {exp.name!r}: not_reproduced[{cid!r}]: expected the id of a claim "
                                f"the experiment checks, got an id no claim used (claims: {sorted(checked)})")


def run_experiment(exp, ctx, *, on_step=None) -> None:
    """Run one experiment into its context (a contract experiment or a 0.1 step experiment)."""
    if isinstance(exp, Experiment):
        _run_contract(exp, ctx, on_step)
        return
    for step in exp.steps:
        on_step and on_step(step.__name__)
        _guarded(ctx, step.__name__, step, ctx)


def rows_to_frame(rows: list[dict]):
    """A pandas DataFrame from heterogeneous result rows; columns Parquet cannot hold become JSON text."""
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

    import pandas as pd

    df = rows_to_frame(rows) if rows else pd.DataFrame({"paper": [], "table": []})
    buf = io.BytesIO()
    df.to_parquet(buf, index=False)
    atomic_write_bytes(path, buf.getvalue())


def _write_claims(claims: list[Claim], path: Path) -> None:
    atomic_write_text(path, json.dumps([c.to_dict() for c in claims], indent=2))


def _make_context(exp, path: Path, quick: bool, seed: int, pieces):
    if isinstance(exp, Experiment):
        return Context(exp, out=path, mode="quick" if quick else "full", seed=seed, pieces=pieces)
    ctx = StepContext(paper=exp.name, out=path, quick=quick, seed=seed)
    ctx.problems = []
    return ctx


def reproduce(
    names: Sequence | str,
    *,
    quick: bool = True,
    out="results",
    seed: int = 0,
    fresh: bool = False,
    quiet: bool = True,
    report: bool = True,
    console=None,
    command: str | None = None,
) -> Reproduction:
    """Run experiments and write OUT/claims.json, results.parquet, figures/ and report.html.

    Args:
        names: experiment names, ``"all"`` (every built-in and installed experiment), or Experiment objects.
        quick: the experiments' ``"quick"`` sizes (``False``: ``"full"``, the papers' scale).
        out: output folder (created; must be writable). Stored pieces live in ``out/runs``.
        seed: base seed (``ctx.seed``); part of every stored piece's address.
        fresh: recompute every stored piece instead of reusing it.
        quiet: no progress display (the CLI shows one).
        report: write report.html.
        command: the command line, recorded in the report.

    Returns:
        A :class:`Reproduction`: ``.claims``, ``.frame()`` (a DataFrame), ``.exit_code``, ``.seconds``,
        ``.pieces``, ``.problems``, ``.files``.

    Raises:
        ConfigError: an unknown or broken experiment named explicitly, a bad seed or an unwritable ``out``
            (before anything runs).
    """
    from ..sweep import Store
    from ._cache import PieceStore
    from ._display import Display

    experiments, problems = resolve(names)
    seed = as_int("seed", seed, low=0)
    path = prepare_out(out)
    res = Reproduction(out=path, problems=list(problems))
    rows: list[dict] = []
    figures: dict[str, list[Path]] = {}
    started = time.time()
    with contextlib.ExitStack() as stack:
        stack.enter_context(x64())
        store = stack.enter_context(Store(path))
        pieces = PieceStore(store, fresh=bool(fresh))
        display = stack.enter_context(Display(quiet, console))
        for exp in experiments:
            ctx = _make_context(exp, path, quick, seed, pieces)
            c0, r0 = pieces.computed, pieces.reused
            task = display.start(exp)
            done = iter(range(len(exp.stages) + 1))
            t0 = time.perf_counter()
            run_experiment(exp, ctx, on_step=lambda n, e=exp, t=task, c=done: display.step(t, e, n, next(c)))
            res.seconds[exp.name] = time.perf_counter() - t0
            res.claims.extend(ctx.claims)
            res.problems.extend(getattr(ctx, "problems", []))
            res.declared[exp.name] = tuple(exp.not_reproduced)
            res.pieces[exp.name] = {"computed": pieces.computed - c0, "reused": pieces.reused - r0}
            rows.extend(ctx.rows)
            figures[exp.name] = list(ctx.figures)
            display.finish(task, exp, ctx.claims, res.seconds[exp.name], res.pieces[exp.name])
            _write_claims(res.claims, path / "claims.json")
    res.files["claims"] = path / "claims.json"
    _write_claims(res.claims, path / "claims.json")  # also when nothing ran
    _write_parquet(rows, path / "results.parquet")
    res.files["results"] = path / "results.parquet"
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
            "stored pieces reused / computed": f"{sum(p['reused'] for p in res.pieces.values())} / "
            f"{sum(p['computed'] for p in res.pieces.values())}",
        }
        if res.problems:
            config["contract problems"] = " | ".join(res.problems)
        with x64():  # the report's machine section states the precision the claims were computed in
            res.files["report"] = write_report(path, claims=res.claims, experiments=experiments, figures=figures,
                                               config=config, seconds=res.seconds)
    return res

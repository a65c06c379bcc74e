"""``dl.sweep``: run a grid of configs on a content-addressed store and return the results table.

Example:
    >>> import dlnlab as dl
    >>> cfg = {"function": "teacher_regression", "fixed": {"steps": 200, "width": 8},
    ...        "grid": {"init_scale": [0.01, 0.1]}, "seeds": 2}
    >>> df = dl.sweep(cfg, out="sweeps/demo")                          # doctest: +SKIP
    >>> df[["init_scale", "seed", "final_loss", "status"]]             # doctest: +SKIP
"""

from __future__ import annotations

import io
import json
import re
import tempfile
import time
from collections import defaultdict
from pathlib import Path

import numpy as np

from ..errors import ConfigError
from ..report._io import atomic_write_text
from ._config import SweepSpec, load_spec, run_id
from ._executors import make_executor
from ._integrity import check_manifest
from ._store import Store, check_lock_timeout

_RUN_ID = re.compile(r"[0-9a-f]{32}")

__all__ = ["sweep", "plot_store", "plan_batches", "load_results"]


def plan_batches(todo: list[tuple[str, dict]], fn) -> list[tuple[str, list[tuple[str, dict]]]]:
    """Group runs that can share one compiled call, in a deterministic order, in chunks of
    ``batch_size``."""
    groups: dict[tuple, list] = defaultdict(list)
    for rid, cfg in todo:
        groups[fn.batch_key(cfg)].append((rid, cfg))
    out = []
    for key in sorted(groups, key=repr):
        runs = sorted(groups[key])
        out += [(fn.name, runs[i : i + fn.batch_size]) for i in range(0, len(runs), fn.batch_size)]
    return out


class _Progress:
    def __init__(self, quiet: bool, total: int, done: int, diverged: int, label: str, console=None):
        self.counts = {"done": done, "failed": 0, "diverged": diverged}
        self.progress = None
        if quiet:
            return
        from rich.console import Console
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(
            TextColumn("[bold]{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            TextColumn(
                "failed [red]{task.fields[failed]}[/] diverged [yellow]{task.fields[diverged]}[/]"
            ),
            TextColumn("ETA"),
            TimeRemainingColumn(),
            console=console or Console(stderr=True),
        )
        self.progress.start()
        self.task = self.progress.add_task(
            label, total=total, completed=done, failed=0, diverged=diverged
        )

    def update(self, status: str):
        self.counts["done"] += 1
        if status == "failed":
            self.counts["failed"] += 1
        if status == "diverged":
            self.counts["diverged"] += 1
        if self.progress is not None:
            self.progress.update(
                self.task,
                completed=self.counts["done"],
                failed=self.counts["failed"],
                diverged=self.counts["diverged"],
            )

    def close(self, error: bool = False):
        """Stop the display; after an error it is erased, so the error is the only line left."""
        if self.progress is not None:
            if error:
                self.progress.live.transient = True
            self.progress.stop()


_SLUG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}")


def check_name(field: str, name, where: str = "") -> str:
    """A name that becomes part of a file name: letters, digits, ``_ . + -``, not starting with a dot, so
    it can never point outside the folder it is written to (``..``, ``/``, NUL and the like are refused)."""
    if not isinstance(name, str) or not _SLUG.fullmatch(name):
        raise ConfigError(
            f"{field}: expected a name made of letters, digits, '_', '.', '+', '-' (at most 100, not starting "
            f"with '.'), got {name!r}{where}"
        )
    return name


def _plot_metrics(df, metrics) -> list[str]:
    keep = []
    for m in metrics:
        if m not in df.columns:
            continue
        v = df[m].to_numpy(dtype=float)
        v = v[np.isfinite(v)]
        if v.size and np.ptp(v) > 1e-12 * max(1.0, np.abs(v).max()):
            keep.append(m)
    return keep


def _sweep_meta(out: Path, raw: bytes) -> dict:
    """``sweep.json`` as written by :func:`sweep`, or one clear error (it is read from disk: never trusted)."""
    where = str(out / "sweep.json")
    try:
        meta = json.loads(raw)
    except ValueError as exc:
        meta = exc
    problem = None
    if isinstance(meta, ValueError):
        problem = f"text that is not JSON ({meta})"
    elif not isinstance(meta, dict):
        kind = {list: "a list", str: "a string", int: "a number", float: "a number", bool: "a boolean"}
        problem = f"{kind.get(type(meta), 'null')} instead of a JSON object"
    elif not (isinstance(meta.get("runs"), list) and all(isinstance(r, str) and _RUN_ID.fullmatch(r)
                                                          for r in meta["runs"])):
        problem = "'runs' that is not a list of run ids (32 hex digits)"
    elif not (isinstance(meta.get("metrics", []), list) and all(isinstance(m, str) for m in meta.get("metrics", []))):
        problem = "'metrics' that is not a list of names"
    elif not (isinstance(meta.get("varying_axes", []), list) and all(
            isinstance(a, list) and a and all(isinstance(f, str) for f in a) for a in meta.get("varying_axes", []))):
        problem = "'varying_axes' that is not a list of lists of field names"
    if problem:
        raise ConfigError(f"out: expected a sweep.json written by dlnlab sweep, got {problem} in {where!r}")
    return meta


def _load(out: Path) -> tuple[dict, object]:
    import pandas as pd

    try:
        raw = (out / "sweep.json").read_bytes()
    except OSError as exc:
        raise ConfigError(
            f"out: expected a finished sweep folder (sweep.json and results.parquet), got {str(out)!r} "
            f"({exc.strerror or exc})"
        ) from None
    meta = _sweep_meta(out, raw)
    try:
        table = (out / "results.parquet").read_bytes()
    except OSError as exc:
        table, why = None, f"no readable results.parquet ({exc.strerror or exc})"
    try:
        man = json.loads((out / "manifest.json").read_bytes())
    except (OSError, ValueError):
        man = None
    if table is not None:
        why = check_manifest(man, raw, table)
        if why is None:
            try:
                return meta, pd.read_parquet(io.BytesIO(table))
            except (OSError, ValueError) as exc:  # the manifest matched: the writer produced this table
                why = f"results.parquet does not parse ({exc})"
    # The table is not the one this sweep wrote: rebuild it from the verified run records, if all are there.
    store = Store(out)
    runs = meta["runs"]
    stored = [rid for rid in runs if store.record(rid) is not None]
    if len(stored) < len(runs):
        raise ConfigError(
            f"out: expected a finished sweep in {str(out)!r}, got {len(stored)} of {len(runs)} runs of its "
            f"sweep.json stored and {why}; run that sweep again to finish it, or wait for it"
        )
    return meta, store.table(runs, metrics=meta.get("metrics", []))


def load_results(out):
    """The results table (a pandas DataFrame) of the sweep in folder ``out``, verified: the stored
    ``results.parquet`` when its manifest ties it to ``sweep.json``, else a table rebuilt from the run records
    (each verified with its checksum and store key); a sweep that is still running, or was killed before it
    stored every run, is a :class:`~dlnlab.errors.ConfigError` (never the previous sweep's table)."""
    return _load(Path(out))[1]


def plot_store(out, *, x: str | None = None, y: str | None = None, metrics=None) -> list[Path]:
    """Plot a finished sweep folder: lines with seed bands (one varying axis) or heatmaps (two).

    ``x``/``y`` pick the config fields to plot against (default: the sweep's varying axes);
    ``metrics`` defaults to every metric that varies. The table is :func:`load_results`'s.
    """
    from ..report import plot_sweep

    out = Path(out)
    meta, df = _load(out)
    axes = [a[0] for a in meta.get("varying_axes", [])]
    if x is not None:
        axes = [x] + ([y] if y is not None else [a for a in axes if a != x][:1])
    elif y is not None:
        raise ConfigError(f"y: expected x as well (a heatmap needs both), got y={y!r} without x")
    if not axes:
        raise ConfigError("x: expected a field to plot against, got a sweep that varies no field besides the "
                          "seed (give --x FIELD)")
    if len(axes) > 2:
        raise ConfigError(
            f"x, y: expected at most two axes to plot, got {len(axes)} varying axes {axes}; choose two with "
            "--x and --y"
        )
    if metrics:
        chosen = [check_name("metrics", m) for m in metrics]
    else:
        where = f" (in {str(out / 'sweep.json')!r}; expected the names a sweep writes there)"
        chosen = _plot_metrics(df, [check_name("metrics", m, where) for m in meta.get("metrics", [])])
    return plot_sweep(df, axes=axes, metrics=chosen, out=out / "figures")


def sweep(
    config,
    *,
    out=None,
    executor: str = "local",
    workers: int | None = None,
    scheduler: str | None = None,
    quiet: bool = True,
    plot: bool = True,
    report: bool = True,
    console=None,
    lock_timeout: float | None = None,
):
    """Run a sweep and return its table (a pandas DataFrame, one row per run).

    Args:
        config: a TOML file path, a TOML string or a dict (see :mod:`dlnlab.sweep._config` for the
            format).
        out: the store folder; runs already stored there (same config, same dlnlab version) are not
            re-run.
            Default: a new temporary folder.
        executor: ``"local"`` (process pool) or ``"dask"``.
        workers: worker processes (default: the number of CPUs, at most the number of batches).
        scheduler: ``tcp://HOST:PORT`` of a running Dask scheduler (executor ``"dask"``; default:
            start a LocalCluster).
        quiet: no progress bar.
        plot, report: write figures (``out/figures``) and ``out/report.html``.
        lock_timeout: when another sweep is writing to ``out``, wait at most this many seconds for it
            (default ``None``: until it finishes; ``0``: refuse at once). Waiting prints one line on
            stderr; afterwards every run the other sweep stored is skipped, so two sweeps started on
            one folder both finish and each run is computed and stored once.

    Returns:
        DataFrame with ``run_id``, every config field, every metric, ``status`` (``"converged"``,
        ``"max_steps"``, ``"diverged"``, ``"failed"``, ...), ``message`` and ``seconds``.
        Trajectories: :func:`dlnlab.sweep.load_trajectory` ``(out, run_id)``.
    """
    from .. import __version__

    spec: SweepSpec = load_spec(config)
    lock_timeout = check_lock_timeout(lock_timeout)
    runner = make_executor(executor, workers=workers, scheduler=scheduler)
    fn = spec.sweepable
    configs = spec.expand()
    ids = [run_id(fn.name, c) for c in configs]
    if out is not None and not str(out).strip():
        raise ConfigError(f"out: expected a folder path, got {str(out)!r}")
    out = Path(tempfile.mkdtemp(prefix="dlnlab-sweep-")) if out is None else Path(out).expanduser()
    started = time.time()
    try:
        with Store(out, lock_timeout=lock_timeout) as store:
            meta = {
                **spec.to_dict(),
                "version": __version__,
                "runs": ids,
                "metrics": list(fn.metrics),
                "varying_axes": [list(a) for a in spec.varying_axes],
            }
            atomic_write_text(out / "sweep.json", json.dumps(meta, indent=2))
            todo = [(rid, cfg) for rid, cfg in zip(ids, configs, strict=True) if not store.is_done(rid)]
            store.check_runs(rid for rid, _ in todo)
            skipped = len(ids) - len(todo)
            diverged0 = sum(
                1
                for rid in ids
                if (store.record(rid) or {}).get("status") == "diverged" and store.is_done(rid)
            )
            batches = plan_batches(todo, fn)
            progress = _Progress(quiet, len(ids), skipped, diverged0, spec.name or fn.name, console)
            try:
                tasks = [(name, [cfg for _, cfg in runs], fn.batch_size) for name, runs in batches]
                for bi, results in runner.run(tasks):
                    for (rid, cfg), (outcome, seconds) in zip(batches[bi][1], results, strict=True):
                        rec = store.write(
                            rid,
                            function=fn.name,
                            version=__version__,
                            config=cfg,
                            outcome=outcome,
                            seconds=seconds,
                        )
                        progress.update(rec["status"])
            except BaseException:
                progress.close(error=True)
                raise
            progress.close()
            df = store.table(ids, metrics=fn.metrics)
            store.write_table(df)
            store.write_manifest(ids)  # last: ties the table to this sweep.json and these records
            figures = []
            if plot and spec.varying_axes and len(spec.varying_axes) <= 2:
                figures = plot_store(out)
            if report:
                from ..report import write_report

                counts = df["status"].value_counts().to_dict() if len(df) else {}
                summary = {
                    "function": fn.name,
                    "runs": len(ids),
                    "already stored": skipped,
                    "ran now": len(todo),
                    **{f"status {k}": v for k, v in sorted(counts.items())},
                    "axes": "; ".join(" + ".join(a) for a in spec.axes) or "-",
                    "seeds": list(spec.seeds),
                    "executor": runner.name,
                    "wall time (s)": round(time.time() - started, 1),
                    **({"waited for another sweep (s)": round(store.waited, 1)} if store.waited else {}),
                }
                config_rows = {"config": json.dumps(spec.to_dict()), "out": str(out)}
                write_report(
                    out,
                    claims=[],
                    figures={},
                    config=config_rows,
                    sweep={
                        "name": spec.name or fn.name,
                        "status": f"{len(ids)} runs: "
                        + ", ".join(f"{v} {k}" for k, v in sorted(counts.items())),
                        "summary": summary,
                        "figures": figures,
                        "table": df.drop(columns=["message"], errors="ignore"),
                    },
                    title=f"dlnlab sweep: {spec.name or fn.name}",
                )
    except OSError as exc:  # a file of the store that cannot be written (disk full, permissions)
        if exc.filename is None or out.resolve() not in Path(exc.filename).resolve().parents:
            raise
        raise ConfigError(f"out: expected a writable store folder, got {str(out)!r} where {str(exc.filename)!r} "
                          f"cannot be written ({exc.strerror or exc})") from None
    return df

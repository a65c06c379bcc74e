"""Sweep figures: lines with seed bands for 1-D grids, heatmaps (phase diagrams) for 2-D grids.

A sweep table has one row per run: config columns, a ``seed`` column, metric columns and ``status``.
For every metric the runs are grouped by the plotted axes; across seeds (and across any axes not
plotted) the line shows the mean and the band spans min to max, the heatmap shows the mean.
Diverged and failed runs (whose numbers are those of their last finite state) and non-finite values
are left out of the statistics; an extra panel ``diverged_fraction`` shows where runs diverged.

Example:
    >>> import pandas as pd
    >>> from dlnlab.report import plot_sweep
    >>> df = pd.DataFrame({"lr": [0.1, 0.1, 0.2, 0.2], "seed": [0, 1, 0, 1],
    ...                    "loss": [1.0, 1.2, 0.5, 0.4], "status": ["max_steps"] * 4})
    >>> paths = plot_sweep(df, axes=["lr"], metrics=["loss"], out="figs")   # doctest: +SKIP
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import numpy as np

from ..errors import ConfigError

__all__ = ["plot_sweep", "line_stats", "heatmap_grid"]


def _log_scale(values) -> bool:
    v = np.asarray(
        [x for x in values if isinstance(x, (int, float)) and np.isfinite(x)], dtype=float
    )
    return v.size > 1 and bool(np.all(v > 0)) and v.max() / v.min() > 100


def _order(values):
    try:
        return sorted(set(values))
    except TypeError:
        return sorted(set(values), key=str)


def line_stats(df, x: str, metric: str):
    """``(xs, mean, lo, hi)``: per value of ``x``, mean, min and max of the finite values of
    ``metric`` (NaN where no run is finite)."""
    xs = _order(df[x])
    mean, lo, hi = [], [], []
    for v in xs:
        y = df.loc[df[x] == v, metric].to_numpy(dtype=float)
        y = y[np.isfinite(y)]
        mean.append(y.mean() if y.size else np.nan)
        lo.append(y.min() if y.size else np.nan)
        hi.append(y.max() if y.size else np.nan)
    return xs, np.asarray(mean), np.asarray(lo), np.asarray(hi)


def heatmap_grid(df, x: str, y: str, metric: str):
    """``(xs, ys, grid)`` with ``grid[i, j]`` the mean of the finite ``metric`` values at
    ``(x = xs[j], y = ys[i])`` (NaN where none is finite)."""
    xs, ys = _order(df[x]), _order(df[y])
    grid = np.full((len(ys), len(xs)), np.nan)
    for i, vy in enumerate(ys):
        for j, vx in enumerate(xs):
            vals = df.loc[(df[x] == vx) & (df[y] == vy), metric].to_numpy(dtype=float)
            vals = vals[np.isfinite(vals)]
            if vals.size:
                grid[i, j] = vals.mean()
    return xs, ys, grid


def _line(ax, df, x, metric):
    xs, mean, lo, hi = line_stats(df, x, metric)
    numeric = all(isinstance(v, (int, float, np.number)) and not isinstance(v, bool) for v in xs)
    pos = np.asarray(xs, dtype=float) if numeric else np.arange(len(xs), dtype=float)
    n_seeds = int(df.groupby(x).size().max()) if len(df) else 0
    ax.fill_between(pos, lo, hi, alpha=0.25, color="C0", lw=0, label=f"min-max over {n_seeds} runs")
    ax.plot(pos, mean, "o-", color="C0", ms=4, label="mean")
    if numeric and _log_scale(xs):
        ax.set_xscale("log")
    if not numeric:
        ax.set_xticks(pos, [str(v) for v in xs], rotation=30)
    if _log_scale(np.concatenate([lo, hi]).tolist()):
        ax.set_yscale("log")
    ax.set(xlabel=x, ylabel=metric)
    ax.legend(frameon=False, fontsize=8)


def _heatmap(fig, ax, df, x, y, metric):
    from matplotlib.colors import LogNorm

    xs, ys, grid = heatmap_grid(df, x, y, metric)
    finite = grid[np.isfinite(grid)]
    norm = (
        LogNorm(finite.min(), finite.max()) if finite.size and _log_scale(finite.tolist()) else None
    )
    cmap = __import__("matplotlib").colormaps["viridis"].with_extremes(bad="#bbbbbb")
    mesh = ax.pcolormesh(np.ma.masked_invalid(grid), cmap=cmap, norm=norm)
    fig.colorbar(mesh, ax=ax, label=f"{metric} (mean)")
    ax.set_xticks(
        np.arange(len(xs)) + 0.5,
        [f"{v:.3g}" if isinstance(v, float) else str(v) for v in xs],
        rotation=45 if len(xs) > 6 else 0,
    )
    ax.set_yticks(
        np.arange(len(ys)) + 0.5, [f"{v:.3g}" if isinstance(v, float) else str(v) for v in ys]
    )
    ax.set(xlabel=x, ylabel=y)


def plot_sweep(
    df, *, axes: Sequence[str], metrics: Sequence[str], out, prefix: str = "sweep"
) -> list[Path]:
    """Write one figure per metric (SVG and PNG) under ``out`` and return the PNG paths.

    Args:
        df: the sweep table (pandas DataFrame, one row per run).
        axes: the config columns to plot against: one name gives lines with seed bands, two give
            heatmaps (first name on the x axis). Other varying columns are pooled with the seeds.
        metrics: numeric columns to plot.
        out: folder for the figures (created).
    """
    from matplotlib.figure import Figure  # no pyplot: no backend to choose, nothing global to close

    axes = list(axes)
    if not 1 <= len(axes) <= 2:
        raise ConfigError(f"axes: expected one or two config fields to plot against, got {axes}")
    for name in [*axes, *metrics]:
        if name not in df.columns:
            raise ConfigError(
                f"axes/metrics: {name!r} is not a column of the sweep table; "
                f"columns are {', '.join(map(str, df.columns))}"
            )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    df = df.copy()
    metrics = list(metrics)
    if "status" in df.columns and (df["status"] == "diverged").any():
        df["diverged_fraction"] = (df["status"] == "diverged").astype(float)
        metrics.append("diverged_fraction")
    # Diverged and failed runs carry the numbers of their last finite state: leave them out of the
    # statistics (the diverged_fraction panel shows where they are).
    ok = df[~df["status"].isin(["diverged", "failed"])] if "status" in df.columns else df
    paths = []
    for metric in metrics:
        data = df if metric == "diverged_fraction" else ok
        fig = Figure(figsize=(5.0, 3.6))
        ax = fig.subplots()
        if len(axes) == 1:
            _line(ax, data, axes[0], metric)
        else:
            _heatmap(fig, ax, data, axes[0], axes[1], metric)
        ax.set_title(metric)
        fig.tight_layout()
        stem = out / f"{prefix}_{metric}"
        fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
        fig.savefig(stem.with_suffix(".png"), dpi=110, bbox_inches="tight")
        paths.append(stem.with_suffix(".png"))
    return paths

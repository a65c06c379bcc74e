"""Experiments: named, registered reproductions whose results are claims with expected vs measured values.

An :class:`Experiment` is a list of *steps*; each step is a function ``step(ctx) -> None`` that runs part of a
paper's reproduction and records its findings through the :class:`Context` it is given:

- ``ctx.claim(...)`` records a claim (one row of ``claims.json``: paper, claim id, statement, expected, measured,
  tolerance, passed);
- ``ctx.figure(name, fig)`` saves a matplotlib figure as SVG and PNG under ``out/figures/`` and closes it;
- ``ctx.table(name, rows)`` adds result rows (dicts of scalars) for ``results.parquet``;
- ``ctx.quick`` says whether to run the reduced (quick) size; ``ctx.seed`` is the base seed.

Experiments import the library, never the CLI; the CLI and the report consume what the context collected.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["Claim", "Context", "Experiment", "register", "get", "names", "REGISTRY"]


def _jsonable(x: Any) -> Any:
    """Convert NumPy/JAX scalars and arrays to plain JSON values (non-finite floats become strings)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (str, bool)) or x is None:
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr.tolist()
    if arr.ndim:
        return [_jsonable(v) for v in arr.tolist()]
    v = float(arr)
    return v if math.isfinite(v) else str(v)


@dataclass(frozen=True)
class Claim:
    """One checked statement of a paper: what theory expects, what was measured, and the tolerance."""

    paper: str
    claim: str
    statement: str
    expected: Any
    measured: Any
    tolerance: Any
    passed: bool

    def to_dict(self) -> dict:
        return {
            "paper": self.paper, "claim": self.claim, "statement": self.statement,
            "expected": _jsonable(self.expected), "measured": _jsonable(self.measured),
            "tolerance": _jsonable(self.tolerance), "passed": bool(self.passed),
        }


@dataclass
class Context:
    """What a running experiment writes to. Created by the runner; one per experiment."""

    paper: str
    out: Path
    quick: bool = True
    seed: int = 0
    claims: list[Claim] = field(default_factory=list)
    figures: list[Path] = field(default_factory=list)
    rows: list[dict] = field(default_factory=list)

    @property
    def figures_dir(self) -> Path:
        d = Path(self.out) / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def claim(self, claim: str, statement: str, *, expected, measured, tolerance, passed: bool) -> Claim:
        c = Claim(self.paper, claim, statement, expected, measured, tolerance, bool(passed))
        self.claims.append(c)
        return c

    def figure(self, name: str, fig) -> Path:
        import matplotlib.pyplot as plt

        stem = self.figures_dir / f"{self.paper}_{name}"
        fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
        fig.savefig(stem.with_suffix(".png"), dpi=120, bbox_inches="tight")
        plt.close(fig)
        self.figures.append(stem.with_suffix(".png"))
        return stem.with_suffix(".png")

    def table(self, name: str, rows: list[dict]) -> None:
        for r in rows:
            self.rows.append({"paper": self.paper, "table": name, **{k: _jsonable(v) for k, v in r.items()}})


@dataclass(frozen=True)
class Experiment:
    """A registered reproduction: ``steps`` run in order, each recording claims/figures/rows into a Context."""

    name: str
    title: str
    reference: str
    bibtex: str
    steps: tuple[Callable[[Context], None], ...]

    def run(self, ctx: Context, *, on_step: Callable[[str], None] | None = None) -> list[Claim]:
        for step in self.steps:
            if on_step is not None:
                on_step(step.__name__)
            step(ctx)
        return ctx.claims


REGISTRY: dict[str, Experiment] = {}


def register(exp: Experiment) -> Experiment:
    REGISTRY[exp.name] = exp
    return exp


def names() -> list[str]:
    return sorted(REGISTRY)


def get(name: str) -> Experiment:
    if name not in REGISTRY:
        raise ConfigError(f"experiment: expected one of {', '.join(names()) or '(none)'} or 'all', got {name!r}")
    return REGISTRY[name]


def dump_claims(claims: list[Claim], path: Path) -> None:
    Path(path).write_text(json.dumps([c.to_dict() for c in claims], indent=2))

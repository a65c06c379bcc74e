"""The 0.1 step-based experiment, kept as a legacy adapter until issue 15 ports the last papers.

ziyin2022, mulayoff2020, jacot2021 and ji2019 are still written as a list of *steps* ``step(ctx) -> None`` that
record claims with a hand-computed ``passed`` (``ctx.claim(..., passed=...)``), branch on ``ctx.quick`` and share
state their own way. The runner (:mod:`._runner`) runs them next to contract experiments (:class:`dl.Experiment
<dlnlab.experiments.Experiment>`), so nothing regresses while they are rewritten; new experiments use the
contract. Their claims get outcome "passed" or "failed" from ``passed``.

``register`` is kept so their modules need no edit; it returns the experiment unchanged (discovery is by the
built-in list and entry points, :mod:`._registry`, not by a mutable registry).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from ._claims import Claim
from ._claims import jsonable as _jsonable

__all__ = ["StepExperiment", "Experiment", "Context", "register"]


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
class StepExperiment:
    """A 0.1 reproduction: ``steps`` run in order, each recording claims/figures/rows into a Context."""

    name: str
    title: str
    reference: str
    bibtex: str
    steps: tuple[Callable[[Context], None], ...]
    not_reproduced: dict = field(default_factory=dict)

    @property
    def stages(self) -> tuple[str, ...]:
        return tuple(s.__name__ for s in self.steps)

    def __hash__(self):
        return hash(self.name)


Experiment = StepExperiment  # the name the legacy modules import


def register(exp: StepExperiment) -> StepExperiment:
    """Kept for the legacy modules: returns ``exp`` and binds it as the calling module's ``EXPERIMENT`` when that
    name is free (ji2019 calls ``register(...)`` without keeping the result; the built-in list in
    :mod:`._registry` names ``module:EXPERIMENT``)."""
    import sys

    sys._getframe(1).f_globals.setdefault("EXPERIMENT", exp)
    return exp

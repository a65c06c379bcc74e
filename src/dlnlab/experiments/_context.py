"""The context a running experiment writes to: typed claim checks, figures, tables and stored pieces.

The runner makes one :class:`Context` per experiment and passes it to ``setup(ctx)`` and to every claim and
figure function (with the state ``setup`` returned). What the functions may read: ``ctx.paper`` (the
experiment's name), ``ctx.mode`` (``"quick"`` or ``"full"``: for labels only, never for branching), ``ctx.size``
(the mode's size dict), ``ctx.seed``. What they may write:

- ``ctx.check_close(id, statement, measured=, expected=, rtol=, atol=)``, ``ctx.at_most(id, statement,
  measured=, bound=)``, ``ctx.at_least(...)``, ``ctx.holds(id, statement, measured=)``: one claim each, its
  verdict computed here from the typed tolerance (:mod:`._claims`);
- ``ctx.figure(name, fig)``: save a :class:`matplotlib.figure.Figure` as SVG and PNG (build it with
  ``Figure()``; no pyplot and no backend switching needed);
- ``ctx.table(name, rows)``: rows (dicts of scalars) for ``results.parquet``;
- ``ctx.cached(name, fn, **config)``: ``fn(**config)`` stored under a content address and reused by a rerun
  (:mod:`._cache`).

Example (inside a claim function)::

    def final_loss(ctx, state):
        ctx.check_close("final_loss", "GD reaches the least-squares loss",
                        measured=float(state["loss"][-1]), expected=state["floor"], atol=1e-8)
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from pathlib import Path

from ._claims import AtLeast, AtMost, Claim, Close, ContractError, Holds, check_id, jsonable
from ._experiment import Experiment, Sizes

__all__ = ["Context"]


class Context:
    """What the functions of one running experiment read and write (made by the runner)."""

    def __init__(self, experiment: Experiment, *, out, mode: str = "quick", seed: int = 0, pieces=None):
        self.experiment = experiment
        self.paper = experiment.name
        self.mode = mode
        self.size: Sizes = experiment.size(mode)
        self.seed = int(seed)
        self.out = Path(out)
        self.claims: list[Claim] = []
        self.figures: list[Path] = []
        self.rows: list[dict] = []
        self.problems: list[str] = []  # contract breaches found while running (the runner exits 2)
        self._pieces = pieces
        self._figure_names: set[str] = set()

    # -- claims -------------------------------------------------------------------------------------------------
    def _where(self, claim) -> str:
        return f"experiment {self.paper!r}: claim {claim!r}"

    def _record(self, claim: str, statement: str, expected, measured, tolerance, passed: bool) -> Claim:
        where = self._where(claim)
        if any(c.claim == claim for c in self.claims):
            raise ContractError(f"{where}: claim id: expected ids unique within the experiment, got {claim!r} twice")
        declared = self.experiment.not_reproduced.get(claim)
        outcome = "passed" if passed else ("not_reproduced" if declared is not None else "failed")
        c = Claim(self.paper, claim, statement, jsonable(expected), jsonable(measured), tolerance, bool(passed),
                  outcome)
        self.claims.append(c)
        return c

    def _start(self, claim, statement) -> str:
        check_id(f"experiment {self.paper!r}", "claim id", claim)
        if not isinstance(statement, str) or not statement.strip():
            raise ContractError(f"{self._where(claim)}: statement: expected a sentence saying what is checked, "
                                f"got {statement!r}")
        return self._where(claim)

    def check_close(self, claim: str, statement: str, *, measured, expected, rtol=None, atol=None) -> Claim:
        """``|measured - expected| <= atol + rtol |expected|`` elementwise (give rtol, atol or both; 0 = exact)."""
        where = self._start(claim, statement)
        if rtol is None and atol is None:
            raise ContractError(f"{where}: tolerance: expected rtol= and/or atol= (0 asks for exact equality), "
                                "got neither")
        from ._claims import _tol

        tol = Close(rtol=_tol(where, "rtol", 0.0 if rtol is None else rtol),
                    atol=_tol(where, "atol", 0.0 if atol is None else atol))
        passed = tol.verdict(measured=measured, expected=expected, where=where)
        return self._record(claim, statement, expected, measured, tol, passed)

    def at_most(self, claim: str, statement: str, *, measured, bound=None) -> Claim:
        """``measured <= bound`` elementwise; ``bound`` is recorded as the expected value."""
        where = self._start(claim, statement)
        if bound is None:
            raise ContractError(f"{where}: tolerance: expected bound= (the limit at_most checks), got none")
        tol = AtMost(bound)
        return self._record(claim, statement, bound, measured, tol, tol.verdict(measured=measured, where=where))

    def at_least(self, claim: str, statement: str, *, measured, bound=None) -> Claim:
        """``measured >= bound`` elementwise; ``bound`` is recorded as the expected value."""
        where = self._start(claim, statement)
        if bound is None:
            raise ContractError(f"{where}: tolerance: expected bound= (the limit at_least checks), got none")
        tol = AtLeast(bound)
        return self._record(claim, statement, bound, measured, tol, tol.verdict(measured=measured, where=where))

    def holds(self, claim: str, statement: str, *, measured) -> Claim:
        """Every boolean in ``measured`` is true (expected ``True``)."""
        where = self._start(claim, statement)
        tol = Holds()
        return self._record(claim, statement, True, measured, tol, tol.verdict(measured=measured, where=where))

    # -- figures, tables, stored pieces -------------------------------------------------------------------------
    @property
    def figures_dir(self) -> Path:
        d = self.out / "figures"
        d.mkdir(parents=True, exist_ok=True)
        return d

    def figure(self, name: str, fig) -> Path:
        """Save ``fig`` as ``figures/<paper>_<name>.svg`` and ``.png``; returns the PNG path.

        Pyplot figures are closed afterwards; a :class:`matplotlib.figure.Figure` needs no backend at all.
        """
        check_id(f"experiment {self.paper!r}", "figure name", name)
        if name in self._figure_names:
            raise ContractError(f"experiment {self.paper!r}: figure name: expected names unique within the "
                                f"experiment, got {name!r} twice")
        if not hasattr(fig, "savefig"):
            raise ContractError(f"experiment {self.paper!r}: figure {name!r}: expected a matplotlib Figure, "
                                f"got {type(fig).__name__}")
        stem = self.figures_dir / f"{self.paper}_{name}"
        fig.savefig(stem.with_suffix(".svg"), bbox_inches="tight")
        fig.savefig(stem.with_suffix(".png"), dpi=120, bbox_inches="tight")
        import sys

        if "matplotlib.pyplot" in sys.modules:  # free a pyplot-managed figure; a bare Figure is garbage collected
            sys.modules["matplotlib.pyplot"].close(fig)
        self._figure_names.add(name)
        self.figures.append(stem.with_suffix(".png"))
        return stem.with_suffix(".png")

    def table(self, name: str, rows: list[Mapping]) -> None:
        """Rows of scalars for ``results.parquet`` (columns ``paper``, ``table`` and the rows' keys)."""
        check_id(f"experiment {self.paper!r}", "table name", name)
        for r in rows:
            self.rows.append({"paper": self.paper, "table": name, **{k: jsonable(v) for k, v in r.items()}})

    def cached(self, name: str, fn: Callable, /, **config) -> dict:
        """``fn(**config)`` (a dict of numeric arrays), stored under the address of (dlnlab's and this
        experiment's code, ``name``, ``config``, ``ctx.seed``) and reused by a rerun; see :mod:`._cache`."""
        if self._pieces is None:
            raise ContractError(f"experiment {self.paper!r}: cached: expected a context made by the runner "
                                "(dl.reproduce), got one without a store")
        return self._pieces.get(self.experiment, name, fn, config, self.seed)

"""``dl.check_experiment``: the conformance test of the experiment contract (like scikit-learn's
``check_estimator``), for dlnlab's experiments and anyone else's.

It checks what construction cannot: it runs the experiment (quick sizes by default) in a temporary folder and
raises one :class:`ContractError` naming the experiment and the field at the first breach:

1. it is a :class:`dl.Experiment <dlnlab.experiments.Experiment>` (construction already validated its fields:
   sizes with the same keys in quick and full, functions, declared outcomes);
2. setup, every claim function and every figure function run without raising;
3. every claim goes through a typed check (numeric or boolean expected values, a tolerance, unique ids) and
   every claim function checks at least one claim; every figure function saves at least one figure;
4. every id declared ``not_reproduced`` is a claim the experiment checks;
5. a second run on the stored pieces of the first gives the same claims (what ``ctx.cached`` stores is all a
   claim needs), and a run in a fresh folder gives them again (no state survives between runs: state belongs
   to ``setup``, never to the module).

It does not judge the science: a claim may fail and the experiment still conform. The first run's
:class:`Reproduction` is returned, so a test can go on to assert outcomes.

Example:
    >>> import dlnlab as dl
    >>> from dlnlab.experiments import saxe
    >>> res = dl.check_experiment(saxe.EXPERIMENT)          # doctest: +SKIP
    >>> res.exit_code                                        # doctest: +SKIP
    0
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

from ._base import StepExperiment
from ._claims import ContractError
from ._experiment import Experiment

__all__ = ["check_experiment"]


def _claims(res) -> dict:
    return {c.claim: c.to_dict() for c in res.claims}


def _compare(name: str, first: dict, again: dict, what: str) -> None:
    if list(first) != list(again):
        raise ContractError(f"experiment {name!r}: claims: expected the same claim ids {what}, got {list(first)} "
                            f"then {list(again)}")
    for cid, row in first.items():
        for key in ("expected", "measured", "outcome"):
            if json.dumps(row[key]) != json.dumps(again[cid][key]):
                raise ContractError(f"experiment {name!r}: claim {cid!r}: {key}: expected the same value {what}, "
                                    f"got {row[key]!r} then {again[cid][key]!r} (is state kept outside setup, "
                                    "or a piece computed outside ctx.cached?)")


def check_experiment(experiment, *, quick: bool = True, seed: int = 0, repeat: bool = True, out=None):
    """Run the conformance checks on ``experiment`` (see the module docstring); returns the first run's
    :class:`~dlnlab.experiments.Reproduction`.

    Args:
        experiment: the :class:`dl.Experiment <dlnlab.experiments.Experiment>` to check.
        quick: use its quick sizes (default) or its full sizes.
        seed: the seed of every run.
        repeat: also run it again on the stored pieces and in a fresh folder (3 runs in all).
        out: folder for the runs (default: a new temporary folder).

    Raises:
        ContractError: the first breach found, naming the experiment and the field.
    """
    from ._runner import reproduce

    if isinstance(experiment, StepExperiment):
        raise ContractError(f"experiment {experiment.name!r}: type: expected a dl.Experiment (setup, claims, "
                            "figures, typed checks), got a 0.1 step experiment (ctx.claim(..., passed=...))")
    if not isinstance(experiment, Experiment):
        raise ContractError(f"experiment: type: expected a dl.Experiment, got {type(experiment).__name__}")
    name = experiment.name
    root = Path(out) if out is not None else Path(tempfile.mkdtemp(prefix=f"dlnlab-check-{name}-"))

    def run(folder):
        return reproduce([experiment], quick=quick, out=root / folder, seed=seed, quiet=True, report=True)

    res = run("first")
    if res.problems:
        raise ContractError(res.problems[0])
    for c in res.claims:
        if c.claim.endswith("_crashed"):
            raise ContractError(f"experiment {name!r}: {c.claim[: -len('_crashed')]}: expected it to run without "
                                f"raising, got: {c.measured}")
    if not res.claims:
        raise ContractError(f"experiment {name!r}: claims: expected at least one claim checked, got none")
    if repeat:
        _compare(name, _claims(res), _claims(run("first")), "when rerun on its stored pieces")
        _compare(name, _claims(res), _claims(run("fresh")), "in a fresh folder with the same seed")
    return res

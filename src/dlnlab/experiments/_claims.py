"""Claims and the typed checks that decide them.

A claim is one row of ``claims.json``: ``{paper, claim, statement, expected, measured, tolerance, outcome,
passed}``. Its verdict is never written by hand: one of four checks computes it from the measured value, the
expected value and a typed tolerance, and the tolerance recorded is exactly the one applied.

- :class:`Close` (``ctx.check_close``): ``|measured - expected| <= atol + rtol * |expected|`` elementwise
  (NumPy's ``isclose`` rule; NaN never passes). At least one of ``rtol``/``atol`` must be given; ``0`` asks for
  exact equality (ranks, counts, booleans).
- :class:`AtMost` / :class:`AtLeast` (``ctx.at_most`` / ``ctx.at_least``): ``measured <= bound`` /
  ``measured >= bound`` elementwise; the bound is recorded as ``expected``.
- :class:`Holds` (``ctx.holds``): a boolean (or booleans) that must be true; ``expected`` is ``True``.

Expected values and bounds are numbers or booleans, or lists, tuples, dicts and arrays of them: never prose
(``"> 0.9999"`` is refused, write ``ctx.at_least(..., bound=0.9999)``). Measured values follow the same rule.

Outcomes: ``"passed"``, ``"failed"``, or ``"not_reproduced"`` (the check failed and the experiment declared in
advance, with evidence and a docs link, that this claim of the paper does not hold in our runs). A declared claim
that passes is an *unexpected pass*: outcome ``"passed"`` but not its declared outcome, so the run exits 1.

Example:
    >>> tol = Close(rtol=1e-6)
    >>> tol.verdict(measured=[1.0, 2.0 + 1e-9], expected=[1.0, 2.0])
    True
    >>> AtMost(1e-7).verdict(measured=3e-7)
    False
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import ConfigError

__all__ = ["Claim", "Close", "AtMost", "AtLeast", "Holds", "ContractError", "OUTCOMES", "jsonable", "check_id"]

OUTCOMES = ("passed", "failed", "not_reproduced")
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.\-]*$")


class ContractError(ConfigError):
    """An experiment breaks the contract (a prose expected value, a claim without a tolerance, a duplicate claim
    id, a missing size key, a plugin that is not an Experiment). The message names the experiment and the field."""


def jsonable(x: Any) -> Any:
    """NumPy/JAX scalars and arrays as plain JSON values (non-finite floats become the strings "nan", "inf")."""
    if isinstance(x, dict):
        return {str(k): jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [jsonable(v) for v in x]
    if isinstance(x, (str, bool)) or x is None:
        return x
    if isinstance(x, (int, np.integer)):
        return int(x)
    arr = np.asarray(x)
    if arr.dtype == bool:
        return arr.tolist()
    if arr.ndim:
        return [jsonable(v) for v in arr.tolist()]
    v = float(arr)
    return v if math.isfinite(v) else str(v)


def check_id(where: str, what: str, value) -> str:
    """A claim, figure or piece name: a non-empty word of letters, digits, ``_ . -``."""
    if not isinstance(value, str) or not _ID.match(value):
        raise ContractError(f"{where}: {what}: expected a name of letters, digits, '_', '.', '-' "
                            f"(not starting with a symbol), got {value!r}")
    return value


def _leaves(where: str, field: str, x, path: str = "") -> list[tuple[str, np.ndarray]]:
    """Flatten a number/boolean structure into ``(path, array)`` pairs; anything else is a ContractError."""
    if isinstance(x, dict):
        if not x:
            raise ContractError(f"{where}: {field}{path}: expected a value, got an empty dict")
        out = []
        for k in sorted(x, key=str):
            out += _leaves(where, field, x[k], f"{path}[{k!r}]")
        return out
    if isinstance(x, (str, bytes)):
        raise ContractError(f"{where}: {field}{path}: expected a number, a boolean, or lists/dicts of them "
                            f"(never prose), got the string {x!r}")
    if x is None:
        raise ContractError(f"{where}: {field}{path}: expected a number, a boolean, or lists/dicts of them, "
                            "got None")
    try:
        arr = np.asarray(x)
    except (ValueError, TypeError) as exc:
        raise ContractError(f"{where}: {field}{path}: expected a rectangular array of numbers or booleans, "
                            f"got {type(x).__name__} ({exc})") from None
    if arr.dtype.kind not in "biuf" and isinstance(x, (list, tuple)):  # find the offending entry
        out = []
        for i, v in enumerate(x):
            out += _leaves(where, field, v, f"{path}[{i}]")
        return out
    if arr.dtype.kind not in "biuf":
        raise ContractError(f"{where}: {field}{path}: expected numbers or booleans, got {type(x).__name__} of "
                            f"dtype {arr.dtype}")
    if arr.size == 0:
        raise ContractError(f"{where}: {field}{path}: expected a value, got an empty array")
    return [(path, arr)]


def _pairs(where: str, measured, expected):
    m, e = _leaves(where, "measured", measured), _leaves(where, "expected", expected)
    if len(e) == 1 and not e[0][0]:  # one expected array: compared with every measured leaf
        return [(pm, vm, e[0][1]) for pm, vm in m]
    if [p for p, _ in m] != [p for p, _ in e]:
        raise ContractError(f"{where}: measured: expected the structure of expected ({[p for p, _ in e]}), "
                            f"got {[p for p, _ in m]}")
    return [(pm, vm, ve) for (pm, vm), (_, ve) in zip(m, e)]


def _broadcast(where, path, a, b):
    try:
        return np.broadcast_arrays(a, b)
    except ValueError:
        raise ContractError(f"{where}: measured{path}: expected shape {b.shape} (that of expected), "
                            f"got {a.shape}") from None


def _tol(where: str, name: str, value) -> float:
    if isinstance(value, (bool, str)) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ContractError(f"{where}: {name}: expected a number >= 0, got {value!r}")
    v = float(value)
    if not (math.isfinite(v) and v >= 0):
        raise ContractError(f"{where}: {name}: expected a finite number >= 0, got {value!r}")
    return v


@dataclass(frozen=True)
class Close:
    """``|measured - expected| <= atol + rtol * |expected|`` elementwise; booleans must be equal."""

    rtol: float = 0.0
    atol: float = 0.0

    def verdict(self, *, measured, expected, where: str = "claim") -> bool:
        ok = True
        for path, m, e in _pairs(where, measured, expected):
            m, e = _broadcast(where, path, m, e)
            if m.dtype == bool or e.dtype == bool:
                ok &= bool(np.all(m == e))
            else:
                m, e = m.astype(float), e.astype(float)
                ok &= bool(np.all(np.abs(m - e) <= self.atol + self.rtol * np.abs(e)))  # NaN -> False
        return ok

    def to_dict(self) -> dict:
        return {"kind": "close", "rtol": self.rtol, "atol": self.atol}


@dataclass(frozen=True)
class AtMost:
    """``measured <= bound`` elementwise (NaN fails)."""

    bound: Any

    def verdict(self, *, measured, where: str = "claim") -> bool:
        return all(bool(np.all(np.less_equal(*_broadcast(where, p, m.astype(float), b.astype(float)))))
                   for p, m, b in _pairs(where, measured, self.bound))

    def to_dict(self) -> dict:
        return {"kind": "at_most", "bound": jsonable(self.bound)}


@dataclass(frozen=True)
class AtLeast:
    """``measured >= bound`` elementwise (NaN fails)."""

    bound: Any

    def verdict(self, *, measured, where: str = "claim") -> bool:
        return all(bool(np.all(np.greater_equal(*_broadcast(where, p, m.astype(float), b.astype(float)))))
                   for p, m, b in _pairs(where, measured, self.bound))

    def to_dict(self) -> dict:
        return {"kind": "at_least", "bound": jsonable(self.bound)}


@dataclass(frozen=True)
class Holds:
    """Every measured boolean is true."""

    def verdict(self, *, measured, where: str = "claim") -> bool:
        leaves = _leaves(where, "measured", measured)
        for path, m in leaves:
            if m.dtype != bool:
                raise ContractError(f"{where}: measured{path}: expected a boolean (holds checks a condition; "
                                    f"use at_most/at_least/check_close for numbers), got dtype {m.dtype}")
        return all(bool(np.all(m)) for _, m in leaves)

    def to_dict(self) -> dict:
        return {"kind": "holds"}


@dataclass(frozen=True)
class Claim:
    """One checked statement of a paper (a row of claims.json). ``outcome`` defaults from ``passed``."""

    paper: str
    claim: str
    statement: str
    expected: Any
    measured: Any
    tolerance: Any
    passed: bool
    outcome: str = ""

    def __post_init__(self):
        if not self.outcome:
            object.__setattr__(self, "outcome", "passed" if self.passed else "failed")
        if self.outcome not in OUTCOMES:
            raise ConfigError(f"outcome: expected one of {', '.join(OUTCOMES)}, got {self.outcome!r}")

    def to_dict(self) -> dict:
        tol = self.tolerance.to_dict() if hasattr(self.tolerance, "to_dict") else jsonable(self.tolerance)
        return {
            "paper": self.paper, "claim": self.claim, "statement": self.statement,
            "expected": jsonable(self.expected), "measured": jsonable(self.measured),
            "tolerance": tol, "outcome": self.outcome, "passed": bool(self.passed),
        }

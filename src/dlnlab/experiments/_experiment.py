"""``dl.Experiment``: a reproduction as data and functions, validated when it is built.

An experiment is five things: who it reproduces (``name``, ``title``, ``reference``, ``bibtex``), how big it
runs (``sizes``: a ``"quick"`` and a ``"full"`` dict with the same keys), how it computes its shared state
(``setup(ctx) -> state``; the runner owns the state and hands it to every claim and figure), what it checks
(``claims``: functions ``fn(ctx, state)`` that call ``ctx.check_close`` / ``at_most`` / ``at_least`` /
``holds``) and what it draws (``figures``: functions ``fn(ctx, state)`` that call ``ctx.figure``).
``not_reproduced`` declares, in advance and with evidence, the paper's statements that do not hold in our runs.

Example:
    >>> import dlnlab as dl
    >>> def setup(ctx):
    ...     return {"x": float(ctx.size.n) ** 0.5}
    >>> def root(ctx, state):
    ...     ctx.check_close("root", "sqrt(n) squared is n", measured=state["x"] ** 2,
    ...                     expected=ctx.size.n, rtol=1e-12)
    >>> exp = dl.Experiment(name="demo", title="a demo", reference="none", bibtex="",
    ...                     sizes={"quick": {"n": 4}, "full": {"n": 9}}, setup=setup, claims=(root,))
    >>> exp.sizes["full"]["n"]
    9
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

from ._claims import ContractError, check_id

__all__ = ["Experiment", "NotReproduced", "Sizes", "MODES"]

MODES = ("quick", "full")


@dataclass(frozen=True)
class NotReproduced:
    """A paper's statement that our runs do not support, declared before running: what was found
    (``evidence``) and where it is documented (``docs``: a docs/ path or a URL)."""

    evidence: str
    docs: str

    def to_dict(self) -> dict:
        return {"evidence": self.evidence, "docs": self.docs}


class Sizes(Mapping):
    """The size parameters of one mode, read-only: ``ctx.size.steps`` or ``ctx.size["steps"]``."""

    def __init__(self, experiment: str, mode: str, values: Mapping[str, Any]):
        self._where = f"experiment {experiment!r}: sizes[{mode!r}]"
        self._values = MappingProxyType(dict(values))

    def __getitem__(self, key):
        try:
            return self._values[key]
        except KeyError:
            raise ContractError(f"{self._where}: expected a key among {sorted(self._values)}, got {key!r}") from None

    def __getattr__(self, key):
        if key.startswith("_"):
            raise AttributeError(key)
        return self[key]

    def __iter__(self):
        return iter(self._values)

    def __len__(self):
        return len(self._values)

    def __repr__(self):
        return f"Sizes({dict(self._values)!r})"


def _check_text(where: str, name: str, value, *, empty_ok: bool = False) -> str:
    if not isinstance(value, str) or (not empty_ok and not value.strip()):
        raise ContractError(f"{where}: {name}: expected {'a' if empty_ok else 'a non-empty'} string, got {value!r}")
    return value


def _check_size_value(where: str, value):
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        raise ContractError(f"{where}: expected plain data (numbers, strings, booleans, lists of them), "
                            f"got {value!r}") from None
    return value


def _check_sizes(name: str, sizes) -> dict:
    where = f"experiment {name!r}: sizes"
    if not isinstance(sizes, Mapping):
        raise ContractError(f"{where}: expected a dict {{'quick': {{...}}, 'full': {{...}}}}, got {sizes!r}")
    keys = set(sizes)
    if keys != set(MODES):
        missing, extra = sorted(set(MODES) - keys), sorted(keys - set(MODES), key=str)
        raise ContractError(f"{where}: expected exactly the keys 'quick' and 'full', got {sorted(keys, key=str)}"
                            + (f" (missing {missing})" if missing else "") + (f" (unknown {extra})" if extra else ""))
    out = {}
    for mode in MODES:
        d = sizes[mode]
        if not isinstance(d, Mapping):
            raise ContractError(f"{where}[{mode!r}]: expected a dict of size parameters, got {d!r}")
        out[mode] = {}
        for k, v in d.items():
            check_id(f"{where}[{mode!r}]", "key", k)
            out[mode][k] = _check_size_value(f"{where}[{mode!r}][{k!r}]", v)
    q, f = set(out["quick"]), set(out["full"])
    if q != f:
        which, key = ("full", sorted(q - f)[0]) if q - f else ("quick", sorted(f - q)[0])
        raise ContractError(f"{where}[{which!r}]: expected the same keys as the other mode, got no key {key!r}")
    return out


def _check_functions(where: str, fns) -> tuple:
    if callable(fns):
        fns = (fns,)
    if not isinstance(fns, (list, tuple)):
        raise ContractError(f"{where}: expected a tuple of functions fn(ctx, state), got {fns!r}")
    for fn in fns:
        if not callable(fn):
            raise ContractError(f"{where}: expected functions fn(ctx, state), got {fn!r}")
    names = [getattr(fn, "__name__", repr(fn)) for fn in fns]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ContractError(f"{where}: expected functions with distinct names, got {dup[0]!r} twice")
    return tuple(fns)


def _check_not_reproduced(name: str, value) -> Mapping[str, NotReproduced]:
    where = f"experiment {name!r}: not_reproduced"
    if not isinstance(value, Mapping):
        raise ContractError(f"{where}: expected a dict {{claim_id: (evidence, docs_link)}}, got {value!r}")
    out = {}
    for cid, entry in value.items():
        check_id(where, "claim id", cid)
        if isinstance(entry, (tuple, list)) and len(entry) == 2:
            entry = NotReproduced(*entry)
        if not isinstance(entry, NotReproduced):
            raise ContractError(f"{where}[{cid!r}]: expected (evidence, docs_link) or dl.NotReproduced, "
                                f"got {entry!r}")
        _check_text(f"{where}[{cid!r}]", "evidence", entry.evidence)
        _check_text(f"{where}[{cid!r}]", "docs", entry.docs)
        out[cid] = entry
    return MappingProxyType(out)


@dataclass(frozen=True)
class Experiment:
    """A reproduction that ``dl.reproduce`` / ``dlnlab reproduce`` can run (see the module docstring).

    Args:
        name: a short id (letters, digits, ``_ . -``), the CLI's NAME and the ``paper`` of every claim.
        title, reference, bibtex: shown in ``dlnlab list`` and the report (bibtex may be empty).
        sizes: ``{"quick": {...}, "full": {...}}``, the same keys in both; the running mode's dict is
            ``ctx.size``. Sizes are data: never branch on the mode inside the functions.
        setup: ``setup(ctx) -> state``, run once; its state goes to every claim and figure (default: none).
        claims: functions ``fn(ctx, state)``; each records at least one claim through a typed check.
        figures: functions ``fn(ctx, state)``; each saves at least one figure through ``ctx.figure``.
        not_reproduced: ``{claim_id: (evidence, docs_link)}``: claims expected to fail, declared in advance.
        version: bump it when a change should invalidate stored runs of this experiment (edits to its module
            file or to dlnlab already do).

    Raises:
        ContractError: a field breaks the contract (the message names the experiment and the field).
    """

    name: str
    title: str
    reference: str
    bibtex: str = ""
    sizes: Mapping[str, Mapping[str, Any]] = field(default_factory=lambda: {"quick": {}, "full": {}})
    setup: Callable | None = None
    claims: tuple[Callable, ...] = ()
    figures: tuple[Callable, ...] = ()
    not_reproduced: Mapping[str, NotReproduced] = field(default_factory=dict)
    version: str = "1"

    def __post_init__(self):
        check_id("experiment", "name", self.name)
        where = f"experiment {self.name!r}"
        _check_text(where, "title", self.title)
        _check_text(where, "reference", self.reference)
        _check_text(where, "bibtex", self.bibtex, empty_ok=True)
        _check_text(where, "version", self.version)
        sizes = _check_sizes(self.name, self.sizes)
        object.__setattr__(self, "sizes", MappingProxyType({m: MappingProxyType(d) for m, d in sizes.items()}))
        if self.setup is not None and not callable(self.setup):
            raise ContractError(f"{where}: setup: expected a function setup(ctx) -> state or None, got {self.setup!r}")
        claims = _check_functions(f"{where}: claims", self.claims)
        if not claims:
            raise ContractError(f"{where}: claims: expected at least one function fn(ctx, state), got none")
        object.__setattr__(self, "claims", claims)
        object.__setattr__(self, "figures", _check_functions(f"{where}: figures", self.figures))
        object.__setattr__(self, "not_reproduced", _check_not_reproduced(self.name, self.not_reproduced))

    def size(self, mode: str) -> Sizes:
        if mode not in MODES:
            raise ContractError(f"experiment {self.name!r}: mode: expected 'quick' or 'full', got {mode!r}")
        return Sizes(self.name, mode, self.sizes[mode])

    @property
    def stages(self) -> tuple[str, ...]:
        """What the runner does, in order (for progress displays)."""
        fns = (*self.claims, *self.figures)
        return ("setup", *(getattr(f, "__name__", "step") for f in fns))

    def __hash__(self):
        return hash(self.name)

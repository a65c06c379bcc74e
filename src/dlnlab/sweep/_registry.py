"""Sweepable functions: named experiment functions a sweep config may call (names only, never
imports).

A sweep TOML names its function (``function = "teacher_regression"``); the name is looked up here,
so a config file can never make dlnlab import or execute arbitrary code. Each :class:`Sweepable`
declares its typed fields with defaults (the config is validated and *normalised* against them:
defaults filled in, ``1`` and ``1.0`` made the same float, so equal runs get equal hashes), which
fields must agree for runs to share one compiled ``dl.train_batched`` call (``static``), and
``run_batch(configs) -> outcomes``.

An outcome is a dict ``{"status": str, "message": str, "metrics": {name: float}, "trajectory":
{name: array}}``.

Example:
    >>> from dlnlab.sweep import sweepable_names
    >>> "teacher_regression" in sweepable_names()
    True
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..errors import ConfigError

__all__ = [
    "Field",
    "Sweepable",
    "register_sweepable",
    "get_sweepable",
    "sweepable_names",
    "SWEEPABLES",
]

KINDS = ("int", "float", "str", "bool", "ints", "floats")


@dataclass(frozen=True)
class Field:
    """One config field: its kind, default, bounds or choices, and a one-line help."""

    kind: str
    default: Any
    help: str = ""
    low: float | None = None
    high: float | None = None
    choices: tuple | None = None

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ConfigError(f"kind: expected one of {KINDS}, got {self.kind!r}")

    def normalise(self, name: str, value):
        """The canonical value (what is hashed) or a ConfigError naming the field."""
        if self.kind in ("ints", "floats"):
            if (
                isinstance(value, (str, bytes))
                or not isinstance(value, Sequence)
                or len(value) == 0
            ):
                raise ConfigError(f"{name}: expected a non-empty list of numbers, got {value!r}")
            one = Field(self.kind[:-1], None, low=self.low, high=self.high)
            return tuple(one.normalise(f"{name}[{i}]", v) for i, v in enumerate(value))
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"{name}: expected true or false, got {value!r}")
            return value
        if self.kind == "str":
            if not isinstance(value, str):
                raise ConfigError(f"{name}: expected a string, got {value!r}")
            out = value
        elif self.kind == "int":
            if isinstance(value, bool) or not isinstance(value, int):
                if isinstance(value, float) and value.is_integer():
                    value = int(value)
                else:
                    raise ConfigError(f"{name}: expected an integer, got {value!r}")
            out = int(value)
        else:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ConfigError(f"{name}: expected a number, got {value!r}")
            out = float(value)
            if not math.isfinite(out):
                raise ConfigError(f"{name}: expected a finite number, got {value!r}")
            out = out + 0.0  # -0.0 and 0.0 hash alike
        if self.choices is not None and out not in self.choices:
            raise ConfigError(
                f"{name}: expected one of {', '.join(map(repr, self.choices))}, got {value!r}"
            )
        if self.low is not None and out < self.low:
            raise ConfigError(f"{name}: expected a value >= {self.low}, got {value!r}")
        if self.high is not None and out > self.high:
            raise ConfigError(f"{name}: expected a value <= {self.high}, got {value!r}")
        return out


@dataclass(frozen=True)
class Sweepable:
    """A function a sweep can run.

    Args:
        name: the name used in sweep configs.
        fields: field name -> :class:`Field`. ``seed`` is added automatically (the init seed of a
            run).
        run_batch: ``run_batch(configs) -> list of outcomes``, one per config, for configs sharing
            ``static``.
        static: fields that must be equal within a batch (they fix shapes or the compiled program).
        metrics: the names of the scalar metrics every outcome carries (columns of the table).
        batch_size: runs per compiled call; batches are padded to this size, so the numbers of a run
            never depend on which other runs shared its batch.
        check: optional ``check(config)`` for constraints between fields (raises ConfigError).
        doc: one paragraph shown by ``dlnlab sweep --list``.
    """

    name: str
    fields: dict[str, Field]
    run_batch: Callable[[list[dict]], list[dict]]
    static: tuple[str, ...]
    metrics: tuple[str, ...]
    batch_size: int = 8
    check: Callable[[dict], None] | None = None
    doc: str = ""
    all_fields: dict[str, Field] = field(init=False)

    def __post_init__(self):
        object.__setattr__(
            self,
            "all_fields",
            {**self.fields, "seed": Field("int", 0, "seed of the random initialisation", low=0, high=2**63 - 1)},
        )
        bad = set(self.static) - set(self.all_fields)
        if bad:
            raise ConfigError(f"static: {sorted(bad)} are not fields of {self.name!r}")
        for m in self.metrics:  # metric names become figure file names: plain names only
            if not isinstance(m, str) or not re.fullmatch(r"[A-Za-z0-9_][A-Za-z0-9_.+-]{0,99}", m):
                raise ConfigError(f"metrics: expected names made of letters, digits, '_', '.', '+', '-' (not starting "
                                  f"with '.'), got {m!r}")
        clash = set(self.metrics) & (
            set(self.all_fields) | {"status", "message", "run_id", "seconds"}
        )
        if clash:
            raise ConfigError(f"metrics: {sorted(clash)} clash with field or column names")

    def normalise(self, config: dict) -> dict:
        """Fill defaults, validate every field and return the canonical config (sorted keys)."""
        unknown = sorted(set(config) - set(self.all_fields))
        if unknown:
            raise ConfigError(
                f"{unknown[0]}: not a field of sweep function {self.name!r}, got {unknown[0]!r}; expected "
                f"some of {', '.join(sorted(self.all_fields))}"
            )
        out = {
            k: f.normalise(k, config.get(k, f.default)) for k, f in sorted(self.all_fields.items())
        }
        if self.check is not None:
            self.check(out)
        return out

    def batch_key(self, config: dict) -> tuple:
        return tuple(config[k] for k in self.static)


SWEEPABLES: dict[str, Sweepable] = {}


def register_sweepable(fn: Sweepable) -> Sweepable:
    """Add ``fn`` to the registry (its name must be new)."""
    if fn.name in SWEEPABLES and SWEEPABLES[fn.name] is not fn:
        raise ConfigError(f"name: a sweepable function {fn.name!r} is already registered")
    SWEEPABLES[fn.name] = fn
    return fn


def sweepable_names() -> list[str]:
    return sorted(SWEEPABLES)


def get_sweepable(name) -> Sweepable:
    if not isinstance(name, str) or name not in SWEEPABLES:
        raise ConfigError(f"function: expected one of {', '.join(sweepable_names())}, got {name!r}")
    return SWEEPABLES[name]

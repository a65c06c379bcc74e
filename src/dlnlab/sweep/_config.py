"""Sweep configs: a function, fixed fields, a grid (cartesian axes and zipped axes) and seeds, from
TOML or a dict.

Format (TOML; the same keys as a Python dict)::

    name = "init scale vs depth"        # optional, shown in the report
    function = "teacher_regression"     # a registered sweepable function (see `dlnlab sweep
    --list`) seeds = 3                           # 0, 1, 2; or an explicit list [0, 5, 7]

    [fixed]                             # fields shared by every run
    steps = 2000

    [grid]                              # cartesian product: every combination
    init_scale = [0.01, 0.1, 1.0]
    depth = [2, 3, 4]

    [[zip]]                             # one zipped axis: the lists advance together (equal
    lengths) width = [8, 16, 32]
    lr = [0.08, 0.04, 0.02]

Runs = product of the grid axes x the zipped axes x the seeds. Every run config is normalised
against the function's fields (defaults filled in, numbers canonical) and identified by
``run_id = sha256(function, normalised config, dlnlab version)``: equal runs share one id, whichever
sweep or file they come from, and a new library version never reuses stale results.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import ConfigError
from ._registry import Sweepable, get_sweepable, sweepable_names

__all__ = ["SweepSpec", "load_spec", "run_id"]

_TOP = ("name", "function", "seeds", "fixed", "grid", "zip")
MAX_RUNS = 100_000  # a larger grid is almost surely a typo (and would take minutes just to expand)


def run_id(function: str, config: Mapping[str, Any], version: str | None = None) -> str:
    """The content address of a run: a hash of the function name, its normalised config and the
    version."""
    if version is None:
        from .. import __version__ as version
    text = json.dumps(
        {"function": function, "config": config, "version": version},
        sort_keys=True,
        separators=(",", ":"),
        allow_nan=False,
    )
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:32]


def _axis_values(where: str, values) -> list:
    if not isinstance(values, list) or not values:
        raise ConfigError(f"{where}: expected a non-empty list of values, got {values!r}")
    return values


@dataclass(frozen=True)
class SweepSpec:
    """A validated sweep: function, fixed fields, grid axes, zipped axes and seeds."""

    function: str
    fixed: dict
    grid: dict
    zips: tuple
    seeds: tuple
    name: str = ""

    @property
    def sweepable(self) -> Sweepable:
        return get_sweepable(self.function)

    @property
    def axes(self) -> list[tuple[str, ...]]:
        """Every axis (a tuple of field names: one for a grid axis, several for a zipped one)."""
        return [(k,) for k in self.grid] + [tuple(z) for z in self.zips]

    @property
    def varying_axes(self) -> list[tuple[str, ...]]:
        """Axes with more than one value (what a plot is drawn against)."""
        out = [(k,) for k, v in self.grid.items() if len(v) > 1]
        return out + [tuple(z) for z in self.zips if len(next(iter(z.values()))) > 1]

    def expand(self) -> list[dict]:
        """The normalised config of every run (duplicates removed, deterministic order)."""
        fn = self.sweepable
        grid_axes = [[{k: v} for v in vals] for k, vals in self.grid.items()]
        zip_axes = [
            [dict(zip(z, combo, strict=True)) for combo in zip(*z.values(), strict=True)]
            for z in self.zips
        ]
        out, seen = [], set()
        for combo in itertools.product(*grid_axes, *zip_axes, [{"seed": s} for s in self.seeds]):
            cfg = dict(self.fixed)
            for part in combo:
                cfg.update(part)
            cfg = fn.normalise(cfg)
            rid = run_id(self.function, cfg)
            if rid not in seen:
                seen.add(rid)
                out.append(cfg)
        return out

    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "function": self.function,
            "fixed": self.fixed,
            "grid": self.grid,
            "zip": list(self.zips),
            "seeds": list(self.seeds),
        }


def _seeds(value) -> tuple[int, ...]:
    if isinstance(value, bool):
        raise ConfigError(f"seeds: expected a count or a list of integers, got {value!r}")
    if isinstance(value, int):
        if not 1 <= value <= MAX_RUNS:
            raise ConfigError(f"seeds: expected a count >= 1 and <= {MAX_RUNS}, got {value}")
        return tuple(range(value))
    if (
        isinstance(value, list)
        and value
        and all(isinstance(s, int) and not isinstance(s, bool) and 0 <= s < 2**63 for s in value)
    ):
        if len(set(value)) != len(value):
            raise ConfigError(f"seeds: expected distinct seeds, got {value}")
        return tuple(value)
    raise ConfigError(
        f"seeds: expected a count or a non-empty list of integers in [0, 2**63), got {value!r}"
    )


def _short(value, limit: int = 60) -> str:
    """A one-line repr of at most ``limit`` characters, for messages."""
    text = " ".join(repr(value).split())
    return text if len(text) <= limit else text[: limit - 3] + "..."


def spec_from_dict(data: Mapping[str, Any], *, source: str = "config") -> SweepSpec:
    """Validate a config dict (the parsed TOML) into a :class:`SweepSpec`."""
    if not isinstance(data, Mapping):
        raise ConfigError(
            f"config: expected a table of sweep settings, got {type(data).__name__} (in {source})"
        )
    unknown = sorted(set(data) - set(_TOP))
    if unknown:
        raise ConfigError(
            f"config: unknown key {unknown[0]!r} in {source}; expected some of {', '.join(_TOP)}, "
            f"got {', '.join(map(repr, unknown))}"
        )
    if "function" not in data:
        raise ConfigError(
            f"function: missing from {source}; expected the name of a sweepable function "
            f"({', '.join(sweepable_names())}), got no 'function' key"
        )
    fn = get_sweepable(data["function"])
    name = data.get("name", "")
    if not isinstance(name, str):
        raise ConfigError(f"name: expected a string, got {name!r}")
    tables = {}
    for key in ("fixed", "grid"):
        t = data.get(key, {})
        if not isinstance(t, Mapping):
            raise ConfigError(f"{key}: expected a table of field = value, got {t!r}")
        tables[key] = dict(t)
    zips = data.get("zip", [])
    if isinstance(zips, Mapping):
        zips = [zips]
    if not isinstance(zips, list) or not all(isinstance(z, Mapping) and z for z in zips):
        raise ConfigError(
            "zip: expected [[zip]] tables of field = [values], each with at least one field, got "
            f"{_short(zips)}"
        )
    zips = [dict(z) for z in zips]
    owner: dict[str, str] = {}
    for where, fields in [("fixed", tables["fixed"]), ("grid", tables["grid"])] + [
        (f"zip[{i}]", z) for i, z in enumerate(zips)
    ]:
        for k in fields:
            if k == "seed":
                raise ConfigError(
                    f"{where}.seed: expected no seed field here (set seeds with the top-level "
                    f"'seeds' key), got {_short(fields[k])}"
                )
            if k not in fn.all_fields:
                raise ConfigError(
                    f"{where}.{k}: not a field of sweep function {fn.name!r}, got {k!r}; expected "
                    f"some of {', '.join(sorted(fn.all_fields))}"
                )
            if k in owner:
                raise ConfigError(
                    f"{where}.{k}: field already set in {owner[k]}; expected each field in one place, "
                    f"got it in {owner[k]} and {where}"
                )
            owner[k] = where
    grid = {k: _axis_values(f"grid.{k}", v) for k, v in tables["grid"].items()}
    for i, z in enumerate(zips):
        lengths = {k: len(_axis_values(f"zip[{i}].{k}", v)) for k, v in z.items()}
        if len(set(lengths.values())) != 1:
            raise ConfigError(f"zip[{i}]: expected lists of equal length, got lengths {lengths}")
    seeds = _seeds(data.get("seeds", 1))
    n_runs = len(seeds) * math.prod(len(v) for v in grid.values())
    n_runs *= math.prod(len(next(iter(z.values()))) for z in zips)
    if n_runs > MAX_RUNS:
        raise ConfigError(
            f"grid: expected at most {MAX_RUNS} runs (grid x zip x seeds), got {n_runs}; split the sweep"
        )
    spec = SweepSpec(
        function=fn.name, fixed=tables["fixed"], grid=grid, zips=tuple(zips), seeds=seeds, name=name
    )
    spec.expand()  # validate every run config now, before anything starts
    return spec


def load_spec(config) -> SweepSpec:
    """A :class:`SweepSpec` from a TOML file path, a TOML string or a dict."""
    if isinstance(config, SweepSpec):
        return config
    if isinstance(config, Mapping):
        return spec_from_dict(config)
    if isinstance(config, (str, Path)):
        path = Path(config)
        text = None
        if isinstance(config, Path) or (len(str(config)) < 4096 and "\n" not in str(config)):
            if not path.is_file():
                what = "a folder" if path.is_dir() else "no such file"
                raise ConfigError(f"config: expected a TOML file, got {str(path)!r} ({what})")
            try:
                text = path.read_text(encoding="utf-8")
            except (OSError, UnicodeDecodeError) as exc:
                raise ConfigError(
                    f"config: expected a UTF-8 TOML file, got {str(path)!r} that cannot be read ({exc})"
                ) from None
            source = path.name
        else:
            text, source = str(config), "config"
        try:
            data = tomllib.loads(text)
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(
                f"config: malformed TOML in {source} ({exc}); expected TOML text (see docs/workflow.md), "
                "got text that does not parse"
            ) from None
        return spec_from_dict(data, source=source)
    raise ConfigError(
        f"config: expected a TOML path, a TOML string or a dict, got {type(config).__name__}"
    )

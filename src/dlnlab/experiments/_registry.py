"""Which experiments exist: dlnlab's own (a fixed list) and those of installed packages (entry points).

A package registers an experiment by naming a module attribute that holds a :class:`dl.Experiment
<dlnlab.experiments.Experiment>` under the entry-point group ``"dlnlab.experiments"``, the entry point's name
being the experiment's name::

    # the package's pyproject.toml
    [project.entry-points."dlnlab.experiments"]
    decay = "mylab.decay:EXPERIMENT"

Discovery reads the installed metadata every time it is asked (nothing is cached in module state), so a package
installed while Python runs is seen by the next ``dlnlab list``. A plugin that does not load, is not an
Experiment, or whose name clashes is reported as a :class:`ContractError` naming it and the field, and every other
experiment stays available.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass

from ..errors import ConfigError
from ._base import StepExperiment
from ._claims import ContractError
from ._experiment import Experiment

__all__ = ["GROUP", "BUILTIN", "discover", "names", "get", "Discovery"]

GROUP = "dlnlab.experiments"
BUILTIN = (
    ("arora2019", "dlnlab.experiments.arora2019:EXPERIMENT"),
    ("cohen2021", "dlnlab.experiments.cohen2021:EXPERIMENT"),
    ("gissin2020", "dlnlab.experiments.gissin2020:EXPERIMENT"),
    ("jacot2021", "dlnlab.experiments.jacot2021:EXPERIMENT"),
    ("ji2019", "dlnlab.experiments.ji2019:EXPERIMENT"),
    ("mulayoff2020", "dlnlab.experiments.mulayoff2020:EXPERIMENT"),
    ("saxe", "dlnlab.experiments.saxe:EXPERIMENT"),
    ("woodworth2020", "dlnlab.experiments.woodworth2020:EXPERIMENT"),
    ("ziyin2022", "dlnlab.experiments.ziyin2022:EXPERIMENT"),
)


@dataclass(frozen=True)
class Discovery:
    """What discovery found: loadable experiments by name (sorted) and one error per broken entry."""

    experiments: dict
    errors: dict  # name -> ContractError
    origins: dict  # name -> "dlnlab" or the distribution that provides it


def _load_target(target: str):
    module, _, attr = target.partition(":")
    return getattr(importlib.import_module(module), attr)


def _check_loaded(name: str, obj, where: str):
    if not isinstance(obj, (Experiment, StepExperiment)):
        raise ContractError(f"{where}: value: expected a dl.Experiment, got {type(obj).__name__}")
    if obj.name != name:
        raise ContractError(f"{where}: name: expected the entry point's name to equal the experiment's name "
                            f"{obj.name!r}, got {name!r}")
    return obj


def _entry_points():
    from importlib.metadata import entry_points

    return list(entry_points(group=GROUP))


def discover() -> Discovery:
    """Load every built-in and installed experiment; broken ones become errors, the rest stay usable."""
    found, errors, origins = {}, {}, {}
    for name, target in BUILTIN:
        try:
            found[name] = _check_loaded(name, _load_target(target), f"experiment {name!r}")
            origins[name] = "dlnlab"
        except Exception as exc:  # noqa: BLE001 - one broken module must not hide the others
            errors[name] = exc if isinstance(exc, ContractError) else ContractError(
                f"experiment {name!r} ({target}): value: expected an importable dl.Experiment, got "
                f"{type(exc).__name__} while loading: " + " ".join(str(exc).split()))
    for ep in _entry_points():
        dist = getattr(getattr(ep, "dist", None), "name", None) or "an installed package"
        where = f"experiment plugin {ep.name!r} (entry point {ep.value!r} of {dist}, group {GROUP!r})"
        if ep.name in found or ep.name in errors:
            errors.setdefault(f"{ep.name}@{dist}", ContractError(
                f"{where}: name: expected a name no other experiment uses, got {ep.name!r} (already provided by "
                f"{origins.get(ep.name, 'another plugin')})"))
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin must not hide the others
            errors[ep.name] = ContractError(
                f"{where}: value: expected an importable dl.Experiment, got {type(exc).__name__} while loading: "
                + " ".join(str(exc).split()))
            continue
        try:
            found[ep.name] = _check_loaded(ep.name, obj, where)
            origins[ep.name] = dist
        except ContractError as exc:
            errors[ep.name] = exc
    return Discovery(dict(sorted(found.items())), errors, origins)


def names() -> list[str]:
    """Names of every loadable experiment, sorted."""
    return list(discover().experiments)


def get(name: str, discovery: Discovery | None = None):
    """The experiment called ``name``; a ConfigError lists the valid names, a broken plugin its error."""
    d = discovery or discover()
    if name in d.experiments:
        return d.experiments[name]
    if name in d.errors:
        raise d.errors[name]
    raise ConfigError(f"experiment: expected one of {', '.join(d.experiments) or '(none)'} or 'all', got {name!r}")

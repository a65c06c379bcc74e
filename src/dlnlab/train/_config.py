"""The base of the training configuration objects: frozen, keyword-only, validated, compared by value.

``dl.GD``, ``dl.SGD``, ``dl.Flow``, ``dl.Record`` and ``dl.Stop`` are frozen dataclasses built with
:func:`config`. A field that the class does not have is a :class:`~dlnlab.errors.ConfigError` naming it and the
class it belongs to (``dl.GD(lr=0.1, t1=5.0)``: ``t1`` belongs to ``dl.Flow``), never silently ignored. Equality
and hashing go through ``_key()``, which a class overrides where a field (an optax optimizer) needs a value-based
stand-in.
"""

from __future__ import annotations

import dataclasses
import functools

from ..errors import ConfigError

__all__ = ["config", "REGISTRY"]

# The public config classes by name, for the "belongs to" hint of an unknown field (filled at import, read-only
# afterwards).
REGISTRY: dict[str, type] = {}


def config(cls):
    """Make ``cls`` a frozen keyword-only dataclass whose unknown keywords raise a clear ConfigError."""
    cls = dataclasses.dataclass(frozen=True, kw_only=True, eq=False, repr=False)(cls)
    names = tuple(f.name for f in dataclasses.fields(cls) if not f.name.startswith("_"))
    init = cls.__init__

    @functools.wraps(init)
    def __init__(self, *args, **kwargs):
        if args:
            raise ConfigError(f"dl.{cls.__name__}: expected keyword arguments ({', '.join(names)}), got "
                              f"{len(args)} positional")
        for k in kwargs:
            if k not in names:
                owners = [n for n, c in REGISTRY.items() if k in c._fields()]
                hint = f" ({k} belongs to {', '.join('dl.' + o for o in owners)})" if owners else ""
                raise ConfigError(f"{k}: not a field of dl.{cls.__name__}; expected some of "
                                  f"{', '.join(names)}{hint}")
        init(self, **kwargs)

    cls.__init__ = __init__
    cls._fields = classmethod(lambda c: names)
    REGISTRY[cls.__name__] = cls
    return cls


class ConfigBase:
    """Value semantics for :func:`config` classes."""

    def _key(self) -> tuple:
        return tuple(getattr(self, f.name) for f in dataclasses.fields(self))

    def __eq__(self, other):
        return type(self) is type(other) and self._key() == other._key()

    def __hash__(self):
        return hash((type(self).__name__, self._key()))

    def __repr__(self):
        parts = ", ".join(f"{n}={getattr(self, n)!r}" for n in self._fields())
        return f"{type(self).__name__}({parts})"

    def replace(self, **changes):
        """A copy with some fields changed (validated again)."""
        return type(self)(**{**{n: getattr(self, n) for n in self._fields()}, **changes})

    def _set(self, name, value):
        object.__setattr__(self, name, value)

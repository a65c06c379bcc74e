"""A value-based fingerprint of an optax optimizer: the key under which its compiled runner is cached.

An ``optax.GradientTransformation`` is a pair of closures. Two ``optax.adam(1e-3)`` objects are different objects
with the same behaviour; caching compiled runners on object identity (dlnlab 0.1) recompiled for each new
object, so callers kept optimizers alive in module globals. Here an optimizer is identified by *what its
``update`` computes*: the code objects of its functions and, recursively, the values they close over (numbers
and arrays by value, functions by their own fingerprint, other objects by identity as a safe fallback).

Only ``update`` is fingerprinted: the engine calls ``init`` eagerly, outside the compiled runner, and passes the
optimizer state in as a traced argument. Hyperparameters that ``optax.inject_hyperparams`` keeps in the state are
therefore traced values, not part of the key: a loop over
``optax.inject_hyperparams(optax.adam)(learning_rate=lr)`` compiles once, while a loop over ``optax.adam(lr)``
compiles once per distinct ``lr`` (the value is a constant inside ``update``).
"""

from __future__ import annotations

import functools
import types

import numpy as np

__all__ = ["fingerprint", "OptimizerKey"]

_MAX_DEPTH = 40


def fingerprint(obj, _depth: int = 0, _seen: frozenset = frozenset()):
    """A hashable value that is equal for two objects that compute the same thing (see the module docstring)."""
    if _depth > _MAX_DEPTH or id(obj) in _seen:
        return ("id", id(obj))
    seen = _seen | {id(obj)}
    rec = functools.partial(fingerprint, _depth=_depth + 1, _seen=seen)
    if obj is None or isinstance(obj, (bool, int, float, complex, str, bytes)):
        return (type(obj).__name__, obj)
    if isinstance(obj, types.FunctionType):
        cells = tuple(rec(c.cell_contents) if _has_contents(c) else ("empty",) for c in (obj.__closure__ or ()))
        return ("fn", obj.__code__, rec(obj.__defaults__), rec(obj.__kwdefaults__), cells)
    if isinstance(obj, types.MethodType):
        return ("method", rec(obj.__func__), rec(obj.__self__))
    if isinstance(obj, functools.partial):
        return ("partial", rec(obj.func), rec(obj.args), rec(obj.keywords))
    if isinstance(obj, (types.BuiltinFunctionType, types.ModuleType, type)):
        return ("named", getattr(obj, "__module__", None), getattr(obj, "__qualname__", repr(obj)))
    if isinstance(obj, (tuple, list)):
        return (type(obj).__name__, tuple(rec(x) for x in obj))
    if isinstance(obj, dict):
        return ("dict", tuple((rec(k), rec(v)) for k, v in obj.items()))
    if hasattr(obj, "__array__") and hasattr(obj, "dtype") and hasattr(obj, "shape"):
        try:
            a = np.asarray(obj)
        except Exception:  # noqa: BLE001 - a tracer or an abstract array: not a value
            return ("id", id(obj))
        return ("array", str(a.dtype), a.shape, a.tobytes())
    if isinstance(obj, np.generic):
        return ("scalar", str(obj.dtype), obj.item())
    try:  # small value objects (frozen dataclasses, enums) compare and hash by value themselves
        hash(obj)
        if type(obj).__eq__ is not object.__eq__:
            return ("value", type(obj), obj)
    except TypeError:
        pass
    return ("id", id(obj))


def _has_contents(cell) -> bool:
    try:
        cell.cell_contents  # noqa: B018
    except ValueError:
        return False
    return True


class OptimizerKey:
    """An optimizer wrapped so that it compares and hashes by :func:`fingerprint` of its ``update``.

    It is a static argument of the compiled runners: two optimizers with equal keys share one compiled runner
    (the first one's ``update`` is what the runner calls, which computes the same thing).
    """

    __slots__ = ("optimizer", "_fp", "_hash")

    def __init__(self, optimizer):
        self.optimizer = optimizer
        self._fp = fingerprint(optimizer.update)
        self._hash = hash(self._fp)

    def __eq__(self, other):
        return isinstance(other, OptimizerKey) and self._hash == other._hash and self._fp == other._fp

    def __hash__(self):
        return self._hash

    def __repr__(self):
        return f"OptimizerKey({self._hash:#x})"

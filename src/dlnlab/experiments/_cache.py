"""Stored pieces of a reproduction: ``ctx.cached(name, fn, **config)`` on the sweep's run store.

A piece is the result of ``fn(**config)``: a dict of numeric arrays, or of nested dicts, lists and tuples of them
(a trajectory, final weights ``params``, measured quantities); it comes back as dicts and tuples of NumPy arrays.
It is stored under ``OUT/runs/<id>.{npz,json}`` by :class:`dlnlab.sweep.Store`, exactly like a
sweep run, with the content address

    id = run_id("<experiment>:<name>", {"config": config, "seed": seed}, version)

where ``version`` joins dlnlab's version, a digest of dlnlab's own source files, a digest of the file that defines
``fn`` and the experiment's ``version`` field. A rerun with the same code, config and seed loads the piece
instead of computing it; an interrupted reproduction resumes from the pieces it stored; a killed one loses only
the piece in flight (every file is written atomically and the JSON record, written last, marks it done). Any
edit to dlnlab or to the experiment's module gives new addresses, so a stale piece is never reused.

The value returned is the stored one, read back (also on the first run), so a reproduction computes the same
claims whether its pieces were just computed or reused.
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
import time
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np

from ..sweep import Store, load_trajectory, run_id
from ._claims import ContractError, check_id

__all__ = ["PieceStore", "source_digest", "normalise_config"]


@functools.cache  # the code a process runs is what it imported: later edits on disk do not change it
def source_digest(path: str | None = None) -> str:
    """SHA-256 (16 hex digits) of every ``.py`` file under ``path`` (default: the dlnlab package), by name,
    read once per process."""
    root = Path(path) if path is not None else Path(__file__).resolve().parents[1]
    h = hashlib.sha256()
    files = [root] if root.is_file() else sorted(root.rglob("*.py"))
    for f in files:
        try:
            data = f.read_bytes()
        except OSError:
            continue
        h.update(str(f.relative_to(root.parent if root.is_file() else root)).encode())
        h.update(hashlib.sha256(data).digest())
    return h.hexdigest()[:16]


def _file_digest(fn) -> str:
    try:
        path = inspect.getsourcefile(fn)
    except TypeError:
        path = None
    return source_digest(str(path)) if path and Path(path).is_file() else "no-source"


def normalise_config(where: str, x, path: str = "config"):
    """Plain JSON data (tuples become lists, NumPy scalars Python numbers); anything else is refused."""
    if isinstance(x, Mapping):
        out = {}
        for k, v in x.items():
            if not isinstance(k, str):
                raise ContractError(f"{where}: {path}: expected string keys, got {k!r}")
            out[k] = normalise_config(where, v, f"{path}[{k!r}]")
        return out
    if isinstance(x, (list, tuple)):
        return [normalise_config(where, v, f"{path}[{i}]") for i, v in enumerate(x)]
    if isinstance(x, np.generic) and x.ndim == 0:
        x = x.item()
    if isinstance(x, float) and not math.isfinite(x):
        raise ContractError(f"{where}: {path}: expected a finite number, got {x!r}")
    if x is None or isinstance(x, (bool, int, float, str)):
        return x
    raise ContractError(f"{where}: {path}: expected plain data (numbers, strings, booleans, lists and dicts of "
                        f"them) that address the stored piece, got {type(x).__name__}; pass sizes and seeds, "
                        "not arrays or objects")


def _flatten(where: str, value, path: str, out: dict) -> None:
    """Nested dicts, lists and tuples of arrays as flat ``a/b/@0`` keys (``@i``: position in a sequence)."""
    if isinstance(value, Mapping):
        if not value:
            raise ContractError(f"{where}: returned{path or ''}: expected arrays, got an empty dict")
        for k, v in value.items():
            check_id(where, "returned key", k)
            _flatten(where, v, f"{path}/{k}" if path else k, out)
        return
    if isinstance(value, (list, tuple)) and value and any(isinstance(v, (Mapping, list, tuple, np.ndarray))
                                                        or hasattr(v, "shape") for v in value):
        for i, v in enumerate(value):
            _flatten(where, v, f"{path}/@{i}", out)
        return
    try:
        arr = np.asarray(value)
    except (TypeError, ValueError):
        arr = np.asarray(None)
    if arr.dtype.kind not in "biufc":
        raise ContractError(f"{where}: returned[{path!r}]: expected a numeric or boolean array, got "
                            f"{type(value).__name__}")
    out[path] = arr


def _arrays(where: str, value) -> dict[str, np.ndarray]:
    if not isinstance(value, Mapping) or not value:
        raise ContractError(f"{where}: expected fn to return a non-empty dict of names to numeric arrays (nested "
                            f"dicts, lists and tuples of arrays allowed), got {type(value).__name__}")
    out: dict[str, np.ndarray] = {}
    _flatten(where, value, "", out)
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    """The nested value back: dicts for names, tuples for ``@i`` positions."""
    root: dict = {}
    for key, arr in flat.items():
        node, parts = root, key.split("/")
        for part in parts[:-1]:
            node = node.setdefault(part, {})
        node[parts[-1]] = arr

    def build(node):
        if not isinstance(node, dict):
            return node
        if node and all(k.startswith("@") for k in node):
            return tuple(build(node[f"@{i}"]) for i in range(len(node)))
        return {k: build(v) for k, v in node.items()}

    return build(root)


class PieceStore:
    """The pieces of one reproduction (one ``out`` folder), opened by the runner inside ``with Store(out)``."""

    def __init__(self, store: Store, *, fresh: bool = False):
        from .. import __version__

        self.store = store
        self.fresh = fresh
        self.base_version = f"{__version__}+{source_digest()}"
        self.computed = 0
        self.reused = 0

    def address(self, experiment, name: str, fn: Callable, config: dict, seed: int) -> str:
        version = f"{self.base_version}+{_file_digest(fn)}+{experiment.version}"
        return run_id(f"{experiment.name}:{name}", {"config": config, "seed": seed}, version)

    def get(self, experiment, name: str, fn: Callable, config: Mapping, seed: int) -> dict:
        where = f"experiment {experiment.name!r}: cached piece {name!r}"
        check_id(where, "name", name)
        if not callable(fn):
            raise ContractError(f"{where}: fn: expected a function fn(**config) -> dict of arrays, got {fn!r}")
        cfg = normalise_config(where, dict(config))
        rid = self.address(experiment, name, fn, cfg, seed)
        if not self.fresh and self.store.is_done(rid):
            self.reused += 1
            return _unflatten(load_trajectory(self.store.root, rid))
        t0 = time.perf_counter()
        arrays = _arrays(where, fn(**config))
        self.store.write(
            rid,
            function=f"{experiment.name}:{name}",
            version=self.base_version,
            config={"config": cfg, "seed": seed},
            outcome={"status": "completed", "trajectory": arrays},
            seconds=time.perf_counter() - t0,
        )
        self.computed += 1
        return _unflatten(load_trajectory(self.store.root, rid))

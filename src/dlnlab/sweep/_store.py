"""The content-addressed run store: plain files, atomic writes, safe to kill at any moment.

Layout of a store folder::

    runs/<run_id>.npz     trajectories (NumPy arrays; written first, loaded with allow_pickle=False)
    runs/<run_id>.json    {run_id, function, version, config, status, message, metrics, seconds,
                          npz_sha256, sha256, mac}: the commit marker, written last, so a run is done
                          exactly when its JSON exists and verifies
    sweep.json            the last sweep spec run here (written when a sweep starts)
    results.parquet       one row per run of that sweep: config fields, metrics, status
    manifest.json         ties results.parquet to sweep.json and the records (written last)
    .lock                 held while a sweep writes (a second sweep on the same folder waits for it)
    .lock.owner           who holds the lock (pid, host, start time), for the waiting message

Every file is written to a temporary name and renamed into place (:mod:`dlnlab.report._io`), so a
sweep killed with SIGKILL leaves complete files and, at worst, temporaries that the next run
removes. Every record carries the SHA-256 of its trajectory file and of itself (accidents) and an
HMAC under the user's store key (edits; see :mod:`dlnlab.sweep._integrity` for what each
guarantees); all are checked when a run is read, and its arrays must load as plain numeric arrays, so
a corrupted, edited or forged run counts as not done and is recomputed, and :func:`load_trajectory`
refuses it. Failed runs are stored too (status ``"failed"`` with the error) and retried by the next
sweep; diverged runs are results and kept.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import re
import socket
import sys
import tempfile
import time
import zipfile
from pathlib import Path

import numpy as np

from .._checks import as_float
from ..errors import ConfigError, DataError
from ..report._io import TMP_SUFFIX, atomic_write_bytes, atomic_write_text
from . import _integrity

__all__ = ["Store", "load_trajectory", "check_lock_timeout"]


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _body(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in ("sha256", "mac")}


def _record_digest(rec: dict) -> str:
    """The checksum of a record: SHA-256 of its JSON (sorted keys) without the ``sha256`` and ``mac`` fields."""
    return _sha256(json.dumps(_body(rec), sort_keys=True).encode("utf-8"))


def _plain_arrays(data: bytes) -> dict[str, np.ndarray]:
    """The arrays of an ``.npz`` file, refusing anything that would need unpickling."""
    with np.load(io.BytesIO(data), allow_pickle=False) as z:
        return {k: z[k] for k in z.files}


def _json_safe(x):
    if isinstance(x, dict):
        return {k: _json_safe(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_json_safe(v) for v in x]
    if isinstance(x, float) and x != x:
        return None
    if isinstance(x, float) and x in (float("inf"), float("-inf")):
        return str(x)
    return x


def check_lock_timeout(value) -> float | None:
    """``None`` (wait as long as it takes) or a number of seconds >= 0 (0: do not wait)."""
    if value is None:
        return None
    if isinstance(value, (str, bytes)):
        raise ConfigError(f"lock_timeout: expected a number of seconds >= 0 or None, got {value!r}")
    return as_float("lock_timeout", value, low=0.0)


class Store:
    """A store folder. Use as a context manager to hold its lock while writing.

    Args:
        root: the folder.
        lock_timeout: when another sweep holds the folder, wait at most this many seconds for it (``None``:
            as long as it takes; ``0``: refuse at once). Waiting prints one line on ``stderr`` (or calls
            ``on_wait(message)``); the sweep then skips every run the other one stored.
    """

    def __init__(self, root, *, lock_timeout: float | None = None, on_wait=None):
        self.root = Path(root)
        self.runs = self.root / "runs"
        self.lock_timeout = check_lock_timeout(lock_timeout)
        self.on_wait = on_wait
        self.waited = 0.0  # seconds spent waiting for another sweep
        self._lock = None
        self._key = None

    @property
    def key(self) -> bytes:
        """The store key that signs and verifies records (read once per Store)."""
        if self._key is None:
            self._key = _integrity.store_key()
        return self._key

    _FILES = ("sweep.json", "results.parquet", "manifest.json", "report.html", ".lock", ".lock.owner")

    def __enter__(self):
        from filelock import FileLock, Timeout

        for folder in (self.root, self.runs):
            if folder.exists() and not folder.is_dir():
                raise ConfigError(f"out: expected a writable folder, got {str(folder)!r} (a file); remove it or use "
                                  "another folder")
        try:
            self.runs.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise ConfigError(
                f"out: expected a writable folder, got {str(self.root)!r} ({exc.strerror or exc})"
            ) from None
        for name in self._FILES:
            self._expect_file(self.root / name)
        if (self.root / "figures").exists() and not (self.root / "figures").is_dir():
            raise ConfigError(f"out: expected a writable folder, got {str(self.root / 'figures')!r} (a file); remove "
                              "it or use another folder")
        self._lock = FileLock(str(self.root / ".lock"))
        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            self._wait(Timeout)
        except OSError as exc:
            self._lock = None
            raise ConfigError(f"out: expected a lockable file {str(self.root / '.lock')!r}, got "
                              f"{exc.strerror or exc}; expected a writable folder") from None
        try:
            for folder in (self.root, self.runs):  # before any run is computed: no work is lost to a write error
                self._probe(folder)
        except BaseException:
            self.__exit__()
            raise
        try:
            atomic_write_text(self.root / ".lock.owner",
                              f"pid {os.getpid()} on {socket.gethostname()} since {time.strftime('%H:%M:%S')}")
        except OSError:
            pass  # informational only
        self.clean()
        return self

    def _wait(self, Timeout):
        limit = self.lock_timeout
        try:
            owner = (self.root / ".lock.owner").read_text(encoding="utf-8").strip()
        except (OSError, ValueError):
            owner = "another process"
        where = str(self.root)
        if limit == 0:
            self._lock = None
            raise ConfigError(
                f"out: expected a folder no other sweep is writing to (lock_timeout=0), got {where!r}, held by "
                f"another sweep ({owner}); wait for it, give a timeout, or use another folder"
            )
        how_long = "until it finishes" if limit is None else f"at most {limit:g} s"
        message = (f"dlnlab: out: another sweep ({owner}) is writing to {where!r}; waiting {how_long}, then "
                   "runs it stored are skipped")
        if self.on_wait is not None:
            self.on_wait(message)
        else:
            print(message, file=sys.stderr, flush=True)
        t0 = time.monotonic()
        try:
            self._lock.acquire(timeout=-1 if limit is None else limit, poll_interval=0.05)
        except Timeout:
            self._lock = None
            raise ConfigError(
                f"out: expected another sweep ({owner}) to release {where!r} within {limit:g} s (lock_timeout), "
                f"got no release after {limit:g} s; wait longer or use another folder"
            ) from None
        self.waited = time.monotonic() - t0

    @staticmethod
    def _expect_file(path: Path) -> None:
        if path.is_dir():
            raise ConfigError(f"out: expected a file (or nothing) at {str(path)!r}, got a folder; remove it or use "
                              "another folder")

    @staticmethod
    def _probe(folder: Path) -> None:
        """Create and remove a temporary file in ``folder`` (what every atomic write does)."""
        try:
            fd, tmp = tempfile.mkstemp(dir=folder, prefix=".write-test.", suffix=TMP_SUFFIX)
            os.close(fd)
            os.unlink(tmp)
        except OSError as exc:
            raise ConfigError(
                f"out: expected a writable folder, got {str(folder)!r} that refuses new files "
                f"({exc.strerror or exc})"
            ) from None

    def check_runs(self, rids) -> None:
        """Refuse, before computing, a run whose record or trajectory path is taken by a folder."""
        for rid in rids:
            for suffix in (".json", ".npz"):
                self._expect_file(self.runs / f"{rid}{suffix}")

    def __exit__(self, *exc):
        if self._lock is not None:
            (self.root / ".lock.owner").unlink(missing_ok=True)
            self._lock.release()
            self._lock = None

    def clean(self) -> int:
        """Remove temporaries left by a killed writer; returns how many."""
        n = 0
        for folder in (self.root, self.runs):
            for p in folder.glob(f".*{TMP_SUFFIX}"):
                p.unlink(missing_ok=True)
                n += 1
        return n

    def record(self, rid: str) -> dict | None:
        """The stored record of a run, or None when it is absent, unreadable or fails its
        checksum."""
        try:
            rec = json.loads((self.runs / f"{rid}.json").read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None
        if not isinstance(rec, dict) or rec.get("run_id") != rid or rec.get("sha256") != _record_digest(rec):
            return None
        return rec if _integrity.verify(_body(rec), rec.get("mac"), self.key) else None

    def is_done(self, rid: str) -> bool:
        """A verified record that did not fail, with a trajectory matching its checksum and made of plain
        numeric arrays (a forged object array is recomputed, never trusted)."""
        rec = self.record(rid)
        if rec is None or rec.get("status") == "failed":
            return False
        try:
            data = (self.runs / f"{rid}.npz").read_bytes()
            if _sha256(data) != rec.get("npz_sha256"):
                return False
            _plain_arrays(data)
        except (OSError, ValueError, zipfile.BadZipFile, EOFError):
            return False
        return True

    def write(
        self, rid: str, *, function: str, version: str, config: dict, outcome: dict, seconds: float
    ) -> dict:
        """Store one run: trajectories first, then the JSON record that marks it done."""
        traj = {k: np.asarray(v) for k, v in (outcome.get("trajectory") or {}).items()}
        for k, v in traj.items():
            if v.dtype == object:
                raise ConfigError(f"trajectory {k!r}: expected a numeric array, got dtype object")
        buf = io.BytesIO()
        np.savez(buf, **traj)
        atomic_write_bytes(self.runs / f"{rid}.npz", buf.getvalue())
        rec = {
            "npz_sha256": _sha256(buf.getvalue()),
            "run_id": rid,
            "function": function,
            "version": version,
            "config": config,
            "status": str(outcome.get("status", "failed")),
            "message": str(outcome.get("message", "")),
            "metrics": {k: float(v) for k, v in (outcome.get("metrics") or {}).items()},
            "seconds": float(seconds),
        }
        rec = _json_safe(rec)
        rec["sha256"] = _record_digest(rec)
        rec["mac"] = _integrity.mac(_body(rec), self.key)
        atomic_write_text(self.runs / f"{rid}.json", json.dumps(rec, sort_keys=True))
        return rec

    def table(self, rids, *, metrics=()):
        """The pandas DataFrame of the given runs (one row each: run_id, config, metrics,
        status)."""
        import pandas as pd

        rows = []
        for rid in rids:
            rec = self.record(rid)
            if rec is None:
                continue
            cfg = {
                k: (json.dumps(v) if isinstance(v, list) else v) for k, v in rec["config"].items()
            }
            m = {
                k: (float("nan") if v is None else float(v))
                for k, v in rec.get("metrics", {}).items()
            }
            rows.append(
                {
                    "run_id": rid,
                    **cfg,
                    **{k: m.get(k, float("nan")) for k in metrics},
                    **{k: v for k, v in m.items() if k not in metrics},
                    "status": rec["status"],
                    "message": rec.get("message", ""),
                    "seconds": rec.get("seconds", float("nan")),
                }
            )
        return pd.DataFrame(rows)

    def write_table(self, df, name: str = "results.parquet") -> Path:
        buf = io.BytesIO()
        df.to_parquet(buf, index=False)
        return atomic_write_bytes(self.root / name, buf.getvalue())

    def write_manifest(self, rids: list[str]) -> Path:
        """Tie ``results.parquet`` to ``sweep.json`` and the records of ``rids``: written last, atomically."""
        records = {}
        for rid in rids:
            rec = self.record(rid)
            if rec is not None:
                records[rid] = rec["sha256"]
        man = _integrity.manifest((self.root / "sweep.json").read_bytes(), rids, records,
                                  (self.root / "results.parquet").read_bytes())
        return atomic_write_text(self.root / "manifest.json", json.dumps(man, indent=1))


def load_trajectory(out, rid: str) -> dict[str, np.ndarray]:
    """The stored trajectory arrays of run ``rid`` in store ``out``, verified against the
    checksum in the run's record (never unpickles)."""
    if not isinstance(rid, str) or not re.fullmatch(r"[0-9a-f]{32}", rid):  # an id never names another path
        raise ConfigError(f"run_id: expected a run id (32 hex digits, the run_id column), got {rid!r}")
    path = Path(out) / "runs" / f"{rid}.npz"
    if not path.is_file():
        raise ConfigError(f"run_id: expected a stored run, no trajectory {rid!r} under {str(out)!r}")
    rec = Store(out).record(rid)
    data = path.read_bytes()
    if rec is None or _sha256(data) != rec.get("npz_sha256"):
        raise DataError(
            f"run_id: the trajectory of {rid!r} under {str(out)!r} fails its checksum (corrupted, edited, "
            "unrecorded or signed with another store key); expected an intact run: sweep again to recompute it"
        )
    try:
        return _plain_arrays(data)
    except (ValueError, OSError, zipfile.BadZipFile, EOFError) as exc:
        raise DataError(
            f"run_id: the trajectory of {rid!r} is not a plain array file ({exc}); expected "
            "numeric arrays"
        ) from None

"""What makes a store trustworthy: keyed checksums of run records and the manifest that ties a results
table to the sweep that wrote it.

Two checks, for two threats:

* **Accidents** (a truncated file, a flipped byte): every record carries the SHA-256 of its canonical
  JSON and of its trajectory file. Anyone can recompute these, so they do not detect a deliberate edit.
* **Edits** (a metric changed by hand, a forged trajectory with a recomputed SHA-256, an edited
  ``results.parquet``): every record and the manifest also carry an HMAC-SHA256 under a secret *store
  key* kept outside the store: ``$DLNLAB_STORE_KEY`` (any text) or, when unset, 32 random bytes in
  ``$XDG_CONFIG_HOME/dlnlab/store.key`` (``~/.config/dlnlab/store.key``, created on first use, mode 0600).
  Without the key an edit cannot be given a valid HMAC, so an edited record counts as not done (the next
  sweep recomputes it) and an edited table is rebuilt from the records or refused. Someone who can read the
  key can forge anything; a store written under another key (another user, another machine) verifies only
  with that key: share it through ``DLNLAB_STORE_KEY`` to share stores, or its runs are recomputed.

The manifest (``manifest.json``, written atomically after the table, so it is the last file of a sweep)
holds the SHA-256 of ``sweep.json``, the run ids in the sweep's order, the SHA-256 of every run record and
of ``results.parquet``, and the HMAC of all of that. ``dlnlab plot`` uses the table only when the manifest
matches the ``sweep.json`` and the table on disk.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

from ..errors import ConfigError

__all__ = ["sha256", "canonical", "store_key", "mac", "manifest", "check_manifest", "KEY_ENV"]

KEY_ENV = "DLNLAB_STORE_KEY"


def sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical(obj) -> bytes:
    """The bytes that are hashed: sorted keys, no whitespace, no NaN."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), allow_nan=False).encode("utf-8")


def _key_file() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "dlnlab" / "store.key"


def store_key() -> bytes:
    """The secret key of this user's stores (see the module docstring); created on first use."""
    text = os.environ.get(KEY_ENV)
    if text:
        return text.encode("utf-8")
    path = _key_file()
    try:
        return bytes.fromhex(path.read_text(encoding="ascii").strip())
    except FileNotFoundError:
        pass
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"{KEY_ENV}: expected a readable store key in {str(path)!r} (64 hex digits) or the variable set, "
            f"got {getattr(exc, 'strerror', None) or exc}"
        ) from None
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="ascii") as f:
            f.write(secrets.token_hex(32) + "\n")
    except FileExistsError:
        pass  # another process created it first: read theirs
    except OSError as exc:
        raise ConfigError(
            f"{KEY_ENV}: expected the variable set or a writable {str(path.parent)!r} for the store key, "
            f"got {exc.strerror or exc}"
        ) from None
    return bytes.fromhex(path.read_text(encoding="ascii").strip())


def mac(body, key: bytes | None = None) -> str:
    """HMAC-SHA256 of the canonical JSON of ``body`` under the store key."""
    return hmac.new(store_key() if key is None else key, canonical(body), hashlib.sha256).hexdigest()


def verify(body, tag, key: bytes | None = None) -> bool:
    return isinstance(tag, str) and hmac.compare_digest(mac(body, key), tag)


def manifest(sweep_json: bytes, run_ids: list[str], records: dict[str, str], table: bytes) -> dict:
    """The manifest of a finished sweep (see the module docstring)."""
    body = {
        "sweep_sha256": sha256(sweep_json),
        "runs": list(run_ids),
        "records": dict(records),
        "results_sha256": sha256(table),
    }
    return {**body, "mac": mac(body)}


def check_manifest(man, sweep_json: bytes, table: bytes) -> str | None:
    """``None`` when ``man`` is this sweep's manifest for this table, else why not (for the message)."""
    if not isinstance(man, dict):
        return "no valid manifest.json (an interrupted or older sweep)"
    body = {k: v for k, v in man.items() if k != "mac"}
    if not verify(body, man.get("mac")):
        return "manifest.json fails its store-key check (edited, or written under another key)"
    if man.get("sweep_sha256") != sha256(sweep_json):
        return "results.parquet belongs to another sweep than sweep.json (a sweep is running or was killed)"
    if man.get("results_sha256") != sha256(table):
        return "results.parquet was changed after the sweep wrote it"
    return None

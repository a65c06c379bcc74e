"""Atomic file writes shared by the report, the experiment runner and the sweep store.

A file is written to a temporary name in the same folder, flushed to disk and renamed over the
target (``os.replace`` is atomic on POSIX and Windows), so a reader or a run killed mid-write sees
either the old file or the whole new one, never a truncated one. Leftover temporaries are named
``.<name>.<random>.tmp``.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["atomic_write_bytes", "atomic_write_text", "TMP_SUFFIX"]

TMP_SUFFIX = ".tmp"


def atomic_write_bytes(path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically and return the path."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=TMP_SUFFIX)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def atomic_write_text(path, text: str) -> Path:
    """Write UTF-8 ``text`` to ``path`` atomically."""
    return atomic_write_bytes(path, text.encode("utf-8"))

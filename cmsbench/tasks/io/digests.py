"""Content digests of data files: what a dataset fingerprint, a cache key and a run identity rest on.

A file's digest is the SHA-256 of its bytes. It is computed once and remembered (in memory and in a
small SQLite index under the cache folder) under the file's absolute path, size and modification time
(ns); a file rewritten in place gets a new mtime and is hashed again, so identical sizes never hide a
change. (A tool that rewrites bytes and then restores the old mtime defeats this; nothing short of
hashing every file on every run would not be fooled, and :func:`file_digest` with ``trust_stat=False``
does exactly that.)
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import threading
from pathlib import Path

from cmsbench.paths import cache_home

_CHUNK = 1 << 22
_memo: dict[tuple[str, int, int], str] = {}
_lock = threading.Lock()


def _index() -> sqlite3.Connection | None:
    try:
        folder = cache_home()
        folder.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(folder / "digests.sqlite", timeout=30)
        con.execute("CREATE TABLE IF NOT EXISTS digest (path TEXT, size INTEGER, mtime_ns INTEGER, sha256 TEXT, "
                    "PRIMARY KEY (path, size, mtime_ns))")
        return con
    except (OSError, sqlite3.Error):
        return None  # a read-only or broken cache folder: digests are still computed, just not remembered


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            h.update(chunk)
    return h.hexdigest()


def file_digest(path: str | Path, *, trust_stat: bool = True) -> str:
    """The SHA-256 of ``path``'s content (remembered under path + size + mtime_ns when ``trust_stat``)."""
    path = Path(path).resolve()
    st = os.stat(path)
    key = (str(path), int(st.st_size), int(st.st_mtime_ns))
    if trust_stat:
        with _lock:
            if key in _memo:
                return _memo[key]
        con = _index()
        if con is not None:
            try:
                row = con.execute("SELECT sha256 FROM digest WHERE path=? AND size=? AND mtime_ns=?", key).fetchone()
            except sqlite3.Error:
                row = None
            if row:
                con.close()
                with _lock:
                    _memo[key] = row[0]
                return row[0]
    else:
        con = None
    digest = sha256_file(path)
    with _lock:
        _memo[key] = digest
    if con is None and trust_stat:
        con = _index()
    if con is not None:
        try:
            with con:
                con.execute("INSERT OR REPLACE INTO digest VALUES (?, ?, ?, ?)", (*key, digest))
        except sqlite3.Error:
            pass
        con.close()
    return digest

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


_connection: tuple[str, int, sqlite3.Connection] | None = None


def _index() -> sqlite3.Connection | None:
    """The process's connection to the digest index (one per cache folder; used under ``_lock``)."""
    global _connection
    try:
        path = cache_home() / "digests.sqlite"
        if _connection is not None and _connection[:2] == (str(path), os.getpid()):
            return _connection[2]  # (a forked child opens its own)
        path.parent.mkdir(parents=True, exist_ok=True)
        con = sqlite3.connect(path, timeout=30, check_same_thread=False)
        # a cache, not a ledger: no fsync per commit (measured 93 ms a commit, one per new file, on the CI
        # disk); a crash loses at most recent entries, which are hashed again
        con.execute("PRAGMA synchronous=OFF")
        con.execute("CREATE TABLE IF NOT EXISTS digest (path TEXT, size INTEGER, mtime_ns INTEGER, sha256 TEXT, "
                    "PRIMARY KEY (path, size, mtime_ns))")
        _connection = (str(path), os.getpid(), con)
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
            row = None
            if con is not None:
                try:
                    row = con.execute("SELECT sha256 FROM digest WHERE path=? AND size=? AND mtime_ns=?", key).fetchone()
                except sqlite3.Error:
                    row = None
            if row:
                _memo[key] = row[0]
                return row[0]
    digest = sha256_file(path)
    with _lock:
        _memo[key] = digest
        con = _index()
        if con is not None:
            try:
                with con:
                    con.execute("INSERT OR REPLACE INTO digest VALUES (?, ?, ?, ?)", (*key, digest))
            except sqlite3.Error:
                pass
    return digest

"""One writer per record: an exclusive lock (``filelock``) on ``<record>.lock`` for the whole run.

A second process asking for a held lock logs who holds it (PID, host, start time, read from
``<record>.lock.owner``) and waits; once it has the lock it re-reads the record and finishes only what
is missing, so two concurrent runs of one configuration record every case once. The operating system
releases the lock when its holder dies (even by SIGKILL), so a crashed run never blocks the next.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import time
from pathlib import Path
from types import TracebackType

log = logging.getLogger(__name__)

#: Lock files this process holds (filelock would deadlock, or raise, on a second acquire from one process).
_HELD: set[str] = set()


class RecordLock:
    """``with RecordLock(path):`` holds the record's lock; ``timeout`` seconds (None: wait for ever)."""

    def __init__(self, record_path: str | Path, timeout: float | None = None) -> None:
        from filelock import FileLock

        self.record_path = Path(record_path)
        self.lock_path = self.record_path.with_name(self.record_path.name + ".lock")
        self.owner_path = self.record_path.with_name(self.record_path.name + ".lock.owner")
        self.timeout = timeout
        try:
            self.lock_path.parent.mkdir(parents=True, exist_ok=True)
        except (FileExistsError, NotADirectoryError, PermissionError) as exc:
            from cmsbench.errors import DataError

            raise DataError(f"cannot write results under {self.lock_path.parent}: {exc.strerror or exc}; "
                            "give --results a folder you can write") from exc
        self._lock = FileLock(str(self.lock_path), mode=0o666)  # group/world-writable as the umask allows
        self.waited_s = 0.0
        self.holder: str | None = None

    def _owner(self) -> str:
        try:
            info = json.loads(self.owner_path.read_text())
            return f"PID {info.get('pid')} on {info.get('host')} (since {info.get('since')})"
        except (OSError, ValueError):
            return "another process"

    def __enter__(self) -> RecordLock:
        from filelock import Timeout

        if str(self.lock_path) in _HELD:
            from cmsbench.errors import CmsbenchError

            raise CmsbenchError(f"this process is already writing {self.record_path} (a run of the same "
                                "configuration inside another); run them one after the other")

        try:
            self._lock.acquire(timeout=0)
        except Timeout:
            self.holder = self._owner()
            log.warning("record %s is being written by %s; waiting for it to finish (Ctrl-C to stop)",
                        self.record_path, self.holder)
            start = time.perf_counter()
            try:
                self._lock.acquire(timeout=-1 if self.timeout is None else self.timeout)
            except Timeout as exc:
                from cmsbench.errors import CmsbenchError

                raise CmsbenchError(f"record {self.record_path} is still being written by {self.holder} after "
                                    f"{self.timeout:g} s; wait for that run or stop it") from exc
            self.waited_s = time.perf_counter() - start
        _HELD.add(str(self.lock_path))
        try:
            self.owner_path.write_text(json.dumps({"pid": os.getpid(), "host": socket.gethostname(),
                                                   "since": time.strftime("%Y-%m-%dT%H:%M:%S")}))
        except OSError:
            pass
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        _HELD.discard(str(self.lock_path))
        self._lock.release()

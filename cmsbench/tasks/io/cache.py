"""A cache of loaded (preprocessed) cases as memory-mapped ``.npy`` files.

The key hashes the adapter (name and version), the roles, the adapter options and, for every source
file, its absolute path, size, modification time (ns) and content digest: a changed source file gets a
new key and is never served stale, even when its size is unchanged. Entries are written to a temporary folder and renamed into place atomically.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import tempfile
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.tasks.volume import Case, Volume

log = logging.getLogger(__name__)
SCHEMA = "2"  # 2: readers check CRC, affines, scaling, labels and finite voxels; keys by content


def _stat_entries(paths: Iterable[Path]) -> list[list[Any]]:
    from cmsbench.tasks.io.digests import file_digest

    out = []
    for path in sorted({Path(p).resolve() for p in paths}):
        try:
            st = path.stat()
            out.append([str(path), st.st_size, st.st_mtime_ns, file_digest(path)])
        except OSError:
            out.append([str(path), None, None, None])
    return out


def cache_key(adapter: str, adapter_version: str, roles: Iterable[str], options: dict[str, Any],
              source_files: Iterable[Path]) -> str:
    """SHA-256 over everything a loaded case depends on."""
    blob = json.dumps(
        {"schema": SCHEMA, "adapter": adapter, "version": adapter_version, "roles": sorted(roles),
         "options": options, "files": _stat_entries(source_files)},
        sort_keys=True, default=str,
    ).encode()
    return hashlib.sha256(blob).hexdigest()[:32]


def _savable(array: np.ndarray) -> np.ndarray:
    """``array`` as ``np.save`` writes it without a copy: C- or Fortran-contiguous as it is (NIfTI voxels are
    Fortran-ordered; forcing C order cost a transposing copy of every volume), else a C copy."""
    arr = np.asarray(array)
    return arr if (arr.flags.c_contiguous or arr.flags.f_contiguous) else np.ascontiguousarray(arr)


class CaseCache:
    """Stores and retrieves :class:`Case` objects under a folder, memory-mapping arrays on read."""

    def __init__(self, folder: Path, *, writes: bool = True) -> None:
        self.folder = Path(folder)
        self.writes = writes  # False: read what is there, store nothing new (notes of existing entries still)

    def _entry(self, key: str) -> Path:
        return self.folder / key[:2] / key

    def get(self, key: str) -> Case | None:
        """The cached case, or None (a damaged entry is removed and treated as a miss)."""
        entry = self._entry(key)
        meta_path = entry / "meta.json"
        if not meta_path.exists():
            return None
        try:
            meta = json.loads(meta_path.read_text())

            def vol(name: str, info: dict[str, Any]) -> Volume:
                arr = np.load(entry / f"{name}.npy", mmap_mode="r")
                return Volume(arr, np.array(info["affine"]), info["modality"], info["units"], info["source"])

            inputs = {m: vol(f"in_{m}", info) for m, info in meta["inputs"].items()}
            target = vol("target", meta["target"]) if meta["target"] else None
            labels = vol("labels", meta["labels"]) if meta["labels"] else None
            # copy-on-write: writable views (the fused metric kernels take writable masks) that never write back
            masks = {m: np.load(entry / f"mask_{m}.npy", mmap_mode="c") for m in meta["masks"]}
            return Case(meta["case_id"], inputs, target, masks, labels, meta["metadata"])
        except (OSError, ValueError, KeyError) as exc:
            log.warning("dropping damaged cache entry %s (%s)", entry, exc)
            shutil.rmtree(entry, ignore_errors=True)
            return None

    def get_note(self, key: str, name: str) -> dict[str, Any] | None:
        """A small JSON note stored beside the entry ``key`` (e.g. normalisation divisors), or None."""
        try:
            value = json.loads((self._entry(key) / f"note_{name}.json").read_text())
        except (OSError, ValueError):
            return None
        return value if isinstance(value, dict) else None

    def put_note(self, key: str, name: str, value: dict[str, Any]) -> None:
        """Store a note beside the entry ``key`` (atomically; nothing when the entry is gone)."""
        entry = self._entry(key)
        if not entry.is_dir():
            return
        tmp = entry / f".note_{name}.{os.getpid()}.tmp"
        try:
            tmp.write_text(json.dumps(value))
            os.replace(tmp, entry / f"note_{name}.json")
        except OSError as exc:  # a read-only or full cache only costs the recomputation
            log.debug("cannot store note %s for %s (%s)", name, entry, exc)
            tmp.unlink(missing_ok=True)

    def put(self, key: str, case: Case) -> None:
        """Store ``case`` atomically (a concurrent writer of the same key is harmless)."""
        if not self.writes:
            return
        entry = self._entry(key)
        entry.parent.mkdir(parents=True, exist_ok=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{key}.", dir=entry.parent))
        try:
            def info(v: Volume) -> dict[str, Any]:
                return {"affine": v.affine.tolist(), "modality": v.modality, "units": v.units, "source": v.source}

            for m, v in case.inputs.items():
                np.save(tmp / f"in_{m}.npy", _savable(v.data))
            if case.target is not None:
                np.save(tmp / "target.npy", _savable(case.target.data))
            if case.labels is not None:
                np.save(tmp / "labels.npy", _savable(case.labels.data))
            for m, arr in case.masks.items():
                np.save(tmp / f"mask_{m}.npy", _savable(np.asarray(arr, dtype=bool)))
            meta = {
                "case_id": case.case_id,
                "inputs": {m: info(v) for m, v in case.inputs.items()},
                "target": info(case.target) if case.target is not None else None,
                "labels": info(case.labels) if case.labels is not None else None,
                "masks": sorted(case.masks),
                "metadata": case.metadata,
            }
            (tmp / "meta.json").write_text(json.dumps(meta, default=str))
            try:
                os.rename(tmp, entry)
            except OSError:  # another process stored it first
                shutil.rmtree(tmp, ignore_errors=True)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise

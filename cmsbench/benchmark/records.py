"""Result records: one plain-JSON file per run, schema-versioned, written atomically.

A record holds everything needed to verify and reproduce its numbers: task (name, version, spec and its
fingerprint), method (name, version, options, card), cmsbench version and git commit, split hash, seed,
data source (phantom or real, with a fingerprint), environment, metric convention, phase timings, peak
memory, and per-case scores. Aggregates are never stored as truth: they are recomputed from the cases.
The file is rewritten (temp file + fsync + rename) after every case, so a crash never leaves a torn file
and a re-run resumes from the cases already recorded.
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from cmsbench.errors import DataError

SCHEMA = "cmsbench.result/1"
SUPPORTED_SCHEMAS = {SCHEMA}


def _clean(obj: Any) -> Any:
    """Replace NaN/inf by None (strict JSON); numpy scalars by Python numbers."""
    if isinstance(obj, dict):
        return {str(k): _clean(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_clean(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def write_json_atomic(path: Path, data: dict[str, Any]) -> None:
    """Write ``data`` as strict JSON to ``path`` via a temporary file, fsync and rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as handle:
            json.dump(_clean(data), handle, indent=1, allow_nan=False)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise


def load_record(path: str | Path) -> dict[str, Any]:
    """Read a record, checking its schema; a clear error for damaged or foreign files."""
    path = Path(path)
    try:
        record = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DataError(f"cannot read result record {path}: {exc}") from exc
    if not isinstance(record, dict) or record.get("schema") not in SUPPORTED_SCHEMAS:
        raise DataError(f"{path} is not a cmsbench result record (schema {record.get('schema') if isinstance(record, dict) else None!r})")
    return record


def iter_records(*folders: str | Path) -> Iterator[tuple[Path, dict[str, Any]]]:
    """Every readable record (``*.json`` with a cmsbench schema) below the given folders."""
    for folder in folders:
        for path in sorted(Path(folder).rglob("*.json")):
            if path.name.startswith("."):
                continue
            try:
                yield path, load_record(path)
            except DataError:
                continue


def ok_cases(record: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The cases of a record that were predicted and scored successfully."""
    return {cid: c for cid, c in record.get("cases", {}).items() if c.get("status") == "ok"}

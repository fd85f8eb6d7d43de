"""Run identity helpers: the digest that names a record and the folder a method's records go in.

A run is identified by :class:`~cmsbench.results.records.RunIdentity` (task fingerprint, method card
name + version + full options, seed, split hash, data fingerprint, samples, mode, max cases). The
runner and sweep planning both build it through :func:`cmsbench.benchmark.runner.resolve_run`, so a plan
finds exactly the record a run would write.
"""

from __future__ import annotations

import hashlib
import json
import re
from typing import Any


def _normal(obj: Any) -> Any:
    if isinstance(obj, dict):
        return {str(k): _normal(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_normal(v) for v in obj]
    if isinstance(obj, float) and obj.is_integer():
        return int(obj)  # 1 and 1.0 are one setting
    return obj


def canonical(obj: Any) -> str:
    """Canonical JSON text (sorted keys) of ``obj``: equal objects give equal text."""
    return json.dumps(obj, sort_keys=True, default=str)


def digest(obj: Any, length: int = 16) -> str:
    """A short SHA-256 hex digest of ``obj``'s canonical JSON, integral floats written as integers (``1`` and
    ``1.0`` are one setting, so they name one run)."""
    return hashlib.sha256(canonical(_normal(obj)).encode()).hexdigest()[:length]


def method_label(name: str) -> str:
    """A file-system-safe folder name for a method name."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", str(name).split("/")[-1]).strip("_") or "method"

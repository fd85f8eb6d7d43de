"""The one JSON codec of result records: the NaN / inf convention lives here and nowhere else.

Records are strict JSON (``allow_nan=False``), so any JSON reader can load them:

- NaN is written as ``null`` (a reason for it is stored next to it, e.g. ``nan_reasons``);
- +inf / -inf are written as the strings ``"inf"`` / ``"-inf"`` (a perfect PSNR is ``"inf"``);
- numpy scalars become Python numbers, tuples become lists.

:func:`decode_float` is the inverse for one stored value. Files are written atomically (temporary file,
fsync, rename), with the permissions a normal file gets under the user's umask, and through a symlink
to its target (the link itself is never replaced).
"""

from __future__ import annotations

import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

from cmsbench.errors import DataError


def encode_float(value: Any) -> float | str | None:
    """A number as stored: NaN/None -> None, +-inf -> "inf"/"-inf", else a Python float."""
    if value is None:
        return None
    if isinstance(value, str):
        return encode_float(decode_float(value))
    v = float(value)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def decode_float(value: Any) -> float | None:
    """A stored number back: None stays None (NaN), "inf"/"-inf"/"nan" strings become floats.

    Raises ``ValueError`` for anything that is not a number (a string like ``"abc"``, a list, a bool).
    """
    if value is None:
        return None
    if isinstance(value, bool):
        raise ValueError(f"expected a number, got the boolean {value!r}")
    if isinstance(value, str):
        v = float(value)  # "inf", "-inf", "nan"; anything else raises ValueError
        return None if math.isnan(v) else v
    if isinstance(value, (int, float)) or hasattr(value, "item"):
        v = float(value)
        return None if math.isnan(v) else v
    raise ValueError(f"expected a number, got {type(value).__name__}")


def to_jsonable(obj: Any) -> Any:
    """Recursively convert ``obj`` to strict-JSON-compatible Python (see the module docstring)."""
    if isinstance(obj, dict):
        return {str(k): to_jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [to_jsonable(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float):
        return encode_float(obj)
    if isinstance(obj, Path):
        return str(obj)
    return obj


def dumps(obj: Any) -> str:
    """Strict JSON text of ``obj`` (one-space indent, as every record is written)."""
    return json.dumps(to_jsonable(obj), indent=1, allow_nan=False)


def _file_mode() -> int:
    umask = os.umask(0)
    os.umask(umask)
    return 0o666 & ~umask


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` via a temporary file, fsync and rename; returns the path written.

    A symlink is written through (its target is replaced, the link stays); a directory or a non-regular
    file (device, FIFO) at ``path`` is refused with a :class:`DataError` naming it.
    """
    path = Path(path)
    if path.is_symlink():
        path = path.resolve()
    if path.exists() and not path.is_file():
        kind = "a directory" if path.is_dir() else "not a regular file"
        raise DataError(f"cannot write {path}: it is {kind}; give a file path")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except (FileExistsError, NotADirectoryError) as exc:
        raise DataError(f"cannot write {path}: a parent of it is not a directory ({exc})") from exc
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, _file_mode())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise
    return path


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) atomically, as :func:`write_bytes_atomic`."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(path: str | Path, data: Any) -> Path:
    """Write ``data`` as strict JSON (:func:`dumps`) atomically; returns the path written."""
    return write_text_atomic(path, dumps(data))


def read_json(path: str | Path) -> Any:
    """Parse a JSON file; a :class:`DataError` naming the file when it cannot be read or parsed."""
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise DataError(f"cannot read {path}: {type(exc).__name__}: {exc}") from exc

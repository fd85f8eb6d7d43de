"""NIfTI I/O through nibabel, with errors that name the file and say what to do."""

from __future__ import annotations

import gzip
import io
from pathlib import Path

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.volume import UNITS_MR, Volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def is_nifti(path: Path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` file names."""
    return path.name.endswith(NIFTI_SUFFIXES)


def read_nifti(
    path: str | Path,
    *,
    modality: str = "",
    units: str = UNITS_MR,
    dtype: type = np.float32,
    subject: str | None = None,
) -> Volume:
    """Read a 3D NIfTI file into a :class:`Volume` (data in ``dtype``, nibabel scaling applied).

    Raises :class:`DataError` naming the file (and subject) when it is missing, not NIfTI, corrupt or
    truncated, or not 3D (a trailing singleton 4th axis is dropped).
    """
    import nibabel as nib

    path = Path(path)
    who = f"subject {subject!r}: " if subject else ""
    if not path.is_file():
        raise DataError(f"{who}missing file {path}: check the dataset folder against the task's layout")
    try:
        img = _load_image(path, nib)
        data = np.asanyarray(img.dataobj)
    except Exception as exc:  # bad gzip CRC/length (BadGzipFile), truncated data, nibabel's ImageFileError, ...
        raise DataError(
            f"{who}cannot read {path}: the file is corrupt or truncated, or not NIfTI "
            f"({type(exc).__name__}: {exc}); re-download or re-extract it"
        ) from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{who}{path} holds a {data.ndim}D array of shape {data.shape}; a 3D volume is expected")
    return Volume(
        data=np.ascontiguousarray(data, dtype=dtype),
        affine=np.asarray(img.affine, dtype=np.float64),
        modality=modality,
        units=units,
        source=str(path),
    )


def _load_image(path: Path, nib):
    """The NIfTI image of ``path``, read whole: a ``.gz`` file is decompressed in one call (which checks the
    gzip CRC-32 and length, so altered or truncated bytes are refused, and runs without the GIL, so a
    background reader does not stall the scorer), then parsed from memory."""
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 348:
        raise ValueError(f"{len(raw)} bytes is shorter than a NIfTI header")
    sizeof_hdr = int.from_bytes(raw[:4], "little")
    if sizeof_hdr not in (348, 540):
        sizeof_hdr = int.from_bytes(raw[:4], "big")
    cls = nib.Nifti2Image if sizeof_hdr == 540 else nib.Nifti1Image
    return cls.from_bytes(raw)


def nifti_bytes(data: np.ndarray, affine: np.ndarray, *, compress: bool = True) -> bytes:
    """Serialise an array as NIfTI-1 bytes; gzip output carries no timestamp (byte-reproducible)."""
    import nibabel as nib

    img = nib.Nifti1Image(np.asarray(data), np.asarray(affine, dtype=np.float64))
    img.header.set_xyzt_units("mm", "sec")
    raw = img.to_bytes()
    if not compress:
        return raw
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", compresslevel=1, mtime=0, filename="") as gz:
        gz.write(raw)
    return buf.getvalue()


def write_nifti(path: str | Path, data: np.ndarray, affine: np.ndarray) -> Path:
    """Write ``data`` with ``affine`` to ``path`` (.nii or .nii.gz), atomically (temp file + rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    blob = nifti_bytes(data, affine, compress=path.name.endswith(".gz"))
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_bytes(blob)
    tmp.replace(path)
    return path


def write_volume(path: str | Path, volume: Volume) -> Path:
    """Write a :class:`Volume` as NIfTI on its own grid and affine."""
    return write_nifti(path, volume.data, volume.affine)

"""NIfTI I/O through nibabel, with errors that name the file and say what to do."""

from __future__ import annotations

import gzip
import io
from collections.abc import Collection
from pathlib import Path

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.volume import UNITS_MR, Volume

NIFTI_SUFFIXES = (".nii.gz", ".nii")


def is_nifti(path: Path) -> bool:
    """True for ``.nii`` and ``.nii.gz`` file names."""
    return path.name.endswith(NIFTI_SUFFIXES)


#: Largest accepted |scl_slope| / |scl_inter| (and smallest non-zero |scl_slope|): beyond these the
#: header's intensity scaling is treated as corrupt, not as data.
MAX_SCALING = 1e6
MIN_SLOPE = 1e-6


def read_nifti(
    path: str | Path,
    *,
    modality: str = "",
    units: str = UNITS_MR,
    dtype: type = np.float32,
    subject: str | None = None,
    labels: Collection[int] | str | None = None,
) -> Volume:
    """Read a 3D NIfTI file into a :class:`Volume` (data in ``dtype``, nibabel scaling applied).

    Refused with a :class:`DataError` naming the file (and subject): a missing, truncated or corrupt file
    (the gzip CRC-32 and length are checked), one that is not NIfTI or not 3D (a trailing singleton 4th
    axis is dropped), an RGB or complex data type, a non-finite or singular affine, an absurd intensity
    scaling (``scl_slope``/``scl_inter`` non-finite, or beyond :data:`MAX_SCALING`), NaN/inf voxels.

    ``labels``: the file is a label map: its values must be integers (a float map with non-integer
    values is an error, never truncated) from the given set (``"nonnegative"``: any integer >= 0).
    """
    import nibabel as nib

    path = Path(path)
    who = f"subject {subject!r}: " if subject else ""
    if not path.is_file():
        raise DataError(f"{who}missing file {path}: check the dataset folder against the task's layout")
    try:
        img, scaling, raw = _load_image(path, nib)
        data = _voxels(img, raw)
    except Exception as exc:  # bad gzip CRC/length (BadGzipFile), truncated data, nibabel's ImageFileError, ...
        raise DataError(
            f"{who}cannot read {path}: the file is corrupt or truncated, or not NIfTI "
            f"({type(exc).__name__}: {exc}); re-download or re-extract it"
        ) from exc
    if data.ndim == 4 and data.shape[3] == 1:
        data = data[..., 0]
    if data.ndim != 3:
        raise DataError(f"{who}{path} holds a {data.ndim}D array of shape {data.shape}; a 3D volume is expected")
    affine = _check_header(img, scaling, path, who)
    if labels is not None:
        data = _check_labels(data, labels, path, who)
    stored_integers = np.issubdtype(data.dtype, np.integer)
    with np.errstate(over="ignore", invalid="ignore"):
        data = np.ascontiguousarray(data, dtype=dtype)  # values beyond float32 become inf: reported below
    if not data.flags.writeable:  # a view of the file's bytes (a volume that was already C-ordered)
        data = data.copy()
    # integers (unscaled) are finite in any float type; everything else is checked
    if labels is None and not np.issubdtype(data.dtype, np.integer) and not stored_integers:
        finite = np.isfinite(data)
        if not finite.all():
            bad = int(data.size - np.count_nonzero(finite))
            raise DataError(f"{who}{path} has {bad} non-finite (NaN/inf) voxel(s) of {data.size}; the image is damaged: "
                            "re-export it (or fix the voxels) before benchmarking")
    return Volume(
        data=data,
        affine=affine,
        modality=modality,
        units=units,
        source=str(path),
    )


def _check_header(img, scaling: tuple[float, float], path: Path, who: str) -> np.ndarray:
    """The affine, after checking data type, affine and intensity scaling (see :func:`read_nifti`)."""
    dt = img.get_data_dtype()
    if dt.fields is not None or np.issubdtype(dt, np.complexfloating):
        raise DataError(f"{who}{path} stores {'RGB' if dt.fields else 'complex'} voxels ({dt}); a scalar "
                        "(grey-value) image is expected: convert it to one channel")
    affine = np.asarray(img.affine, dtype=np.float64)
    if not np.isfinite(affine).all():
        raise DataError(f"{who}{path} has a non-finite affine (NaN/inf in its qform/sform); fix the header")
    if abs(float(np.linalg.det(affine[:3, :3]))) < 1e-12:
        raise DataError(f"{who}{path} has a singular affine (zero voxel size or degenerate axes); fix the header")
    # the header's own scl_slope/scl_inter (nibabel hides them once loaded): NaN and a slope of 0 mean
    # "no scaling" (NIfTI-1); infinities or values beyond the bounds are corrupt
    slope, inter = scaling
    scaled = not np.isnan(slope) and slope != 0
    bad_slope = scaled and not MIN_SLOPE <= abs(slope) <= MAX_SCALING
    bad_inter = scaled and not np.isnan(inter) and not abs(inter) <= MAX_SCALING
    if bad_slope or bad_inter:
        raise DataError(f"{who}{path} has an absurd intensity scaling (scl_slope {slope:g}, scl_inter {inter:g}); "
                        "the header is corrupt: re-export the file")
    return affine


def _check_labels(data: np.ndarray, labels: Collection[int] | str, path: Path, who: str) -> np.ndarray:
    if not np.issubdtype(data.dtype, np.integer):
        if not np.isfinite(data).all():
            raise DataError(f"{who}{path} is a label map with NaN/inf values; re-export it")
        rounded = np.rint(data)
        off = rounded != data
        if off.any():
            example = float(data[off].flat[0])
            raise DataError(f"{who}{path} is a label map with {int(off.sum())} non-integer value(s) (e.g. {example:g}); "
                            "labels must be integers: re-export it without interpolation")
        data = rounded
    bad = _bad_labels(data, labels)
    allowed = "integers >= 0" if labels == "nonnegative" else str(sorted(int(v) for v in labels))
    if bad.size:
        raise DataError(f"{who}{path} holds label value(s) {[int(v) for v in bad[:10]]} outside the task's labels "
                        f"{allowed}; fix the segmentation")
    return data


def _bad_labels(data: np.ndarray, labels: Collection[int] | str) -> np.ndarray:
    """The sorted values of ``data`` outside ``labels`` (``"nonnegative"``: the negative ones). Integer maps
    are checked from their range and one comparison per value in it that is not allowed (a BraTS
    segmentation: ~10 ms, against ~70 ms for ``np.unique``)."""
    if data.dtype.kind in "iub" and data.size:
        lo, hi = int(data.min()), int(data.max())
        if labels == "nonnegative":
            if lo >= 0:
                return np.array([], dtype=np.int64)
        else:
            allowed = {int(v) for v in labels}
            candidates = [v for v in range(lo, hi + 1) if v not in allowed]
            if len(candidates) <= 32:
                return np.array([v for v in candidates if v in (lo, hi) or (data == v).any()], dtype=np.int64)
    values = np.unique(data)
    if labels == "nonnegative":
        return values[values < 0]
    return np.setdiff1d(values, np.asarray(sorted(labels)))


def _voxels(img, raw: bytes) -> np.ndarray:
    """The voxel array of ``img`` parsed from ``raw``: an unscaled numeric volume is a view of the bytes
    (nibabel's own reader would copy them once more); anything else goes through nibabel."""
    from nibabel.arrayproxy import ArrayProxy

    proxy = img.dataobj
    if (isinstance(proxy, ArrayProxy) and proxy.slope == 1 and proxy.inter == 0
            and proxy.dtype.kind in "iuf" and proxy.order == "F"):
        count = int(np.prod(proxy.shape))
        offset = int(proxy.offset)
        if len(raw) < offset + count * proxy.dtype.itemsize:
            raise ValueError(f"the voxel data is truncated: {len(raw) - offset} bytes for {count} voxels of "
                             f"{proxy.dtype.itemsize} bytes")
        return np.frombuffer(raw, dtype=proxy.dtype, count=count, offset=offset).reshape(proxy.shape, order="F")
    return np.asanyarray(proxy)


def _load_image(path: Path, nib):
    """The NIfTI image of ``path``, its header's raw ``(scl_slope, scl_inter)`` and the file's bytes.

    The file is read whole: a ``.gz`` file is decompressed in one call (which checks the gzip CRC-32 and
    length, so altered or truncated bytes are refused, and runs without the GIL, so a background reader
    does not stall the scorer), then parsed from memory.
    """
    raw = path.read_bytes()
    if raw[:2] == b"\x1f\x8b":
        raw = gzip.decompress(raw)
    if len(raw) < 348:
        raise ValueError(f"{len(raw)} bytes is shorter than a NIfTI header")
    order = "<"
    sizeof_hdr = int.from_bytes(raw[:4], "little")
    if sizeof_hdr not in (348, 540):
        order, sizeof_hdr = ">", int.from_bytes(raw[:4], "big")
    if sizeof_hdr == 540:  # NIfTI-2: float64 scl_slope/scl_inter at bytes 176/184
        cls, fields = nib.Nifti2Image, np.frombuffer(raw, dtype=f"{order}f8", count=2, offset=176)
    else:  # NIfTI-1: float32 at bytes 112/116
        cls, fields = nib.Nifti1Image, np.frombuffer(raw, dtype=f"{order}f4", count=2, offset=112)
    return cls.from_bytes(raw), (float(fields[0]), float(fields[1])), raw


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

"""DICOM series I/O through pydicom: group files into series, sort slices, build a RAS affine."""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.volume import UNITS_HU, Volume

# DICOM patient coordinates are LPS; NIfTI/cmsbench world coordinates are RAS.
_LPS_TO_RAS = np.diag([-1.0, -1.0, 1.0, 1.0])


@dataclass
class DicomSeries:
    """The files of one DICOM series and the header fields used to classify it."""

    uid: str
    description: str
    files: list[Path] = field(default_factory=list)
    patient_id: str = ""
    #: ConvolutionKernel (0018,1210), several values joined by a backslash; "" when absent
    kernel: str = ""
    study_uid: str = ""


def scan_series(folder: Path, *, subject: str | None = None) -> tuple[list[DicomSeries], list[str]]:
    """Find every DICOM series below ``folder`` (headers only). Returns (series, problems)."""
    import pydicom

    series: dict[str, DicomSeries] = {}
    problems: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() not in (".dcm", ".ima", ""):
            continue
        try:
            with warnings.catch_warnings():  # invalid values are refused when the series is read
                warnings.simplefilter("ignore")
                ds = pydicom.dcmread(str(path), stop_before_pixels=True)
                uid = str(getattr(ds, "SeriesInstanceUID", "")) or str(path.parent)
                description, patient_id = str(getattr(ds, "SeriesDescription", "")), str(getattr(ds, "PatientID", ""))
                kernel = _kernel(ds)
                study_uid = str(getattr(ds, "StudyInstanceUID", ""))
        except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, ...
            if path.suffix.lower() in (".dcm", ".ima"):
                problems.append(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc}); the file is "
                                "left out of its series: re-download it, or remove it if it is not part of the data")
            continue
        entry = series.setdefault(uid, DicomSeries(uid=uid, description=description, patient_id=patient_id,
                                                   kernel=kernel, study_uid=study_uid))
        entry.files.append(path)
    return list(series.values()), problems


def _kernel(ds) -> str:
    """The ConvolutionKernel of a header ("" when absent); multiple values joined by a backslash."""
    value = getattr(ds, "ConvolutionKernel", None)
    if value is None:
        return ""
    if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
        return "\\".join(str(v).strip() for v in value)
    return str(value).strip()


#: Largest accepted |RescaleIntercept|: CT intercepts are about -1024 HU, PET and MR ones are small;
#: beyond 1e5 (HU-ish units) the header is corrupt, not data.
MAX_RESCALE_INTERCEPT = 1e5
#: Largest accepted |RescaleSlope| (it must also be finite and non-zero).
MAX_RESCALE_SLOPE = 1e6

_NOT_AN_IMAGE = ("remove the file from the series folder if it is not an image slice (a scout, a dose report), "
                 "else re-download the series")


def _numbers(ds, keyword: str, count: int, path: Path, who: str, *, default: float | None = None) -> np.ndarray:
    """The ``count`` numbers of the DICOM attribute ``keyword`` (``default`` when absent, if given).

    A missing, empty, non-numeric, non-finite or wrongly sized value is a :class:`DataError` naming the file.
    """
    try:
        value = ds[keyword].value if keyword in ds else None
    except Exception as exc:  # pydicom may fail while converting a raw element
        raise DataError(f"{who}{path}: unreadable {keyword} ({type(exc).__name__}: {exc}); {_NOT_AN_IMAGE}") from exc
    items = [] if value is None else [value] if isinstance(value, (str, bytes, int, float)) else list(value)
    if not items or items == [""]:
        if default is not None:
            return np.full(count, float(default))
        raise DataError(f"{who}{path} lacks {keyword}: the slice cannot be placed in space; {_NOT_AN_IMAGE}")
    try:
        numbers = np.array([float(v) for v in items], dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise DataError(f"{who}{path}: {keyword} {_show(value)} is not numeric; the header is damaged: "
                        "re-download the series") from exc
    if numbers.size != count:
        raise DataError(f"{who}{path}: {keyword} holds {numbers.size} value(s) {_show(value)}, {count} expected; "
                        "the header is damaged: re-download the series")
    if not np.isfinite(numbers).all():
        raise DataError(f"{who}{path}: {keyword} {_show(value)} is not finite; the header is damaged: "
                        "re-download the series")
    return numbers


def _show(value) -> str:
    """A short printable form of a DICOM value (multiple values joined by backslashes)."""
    if not isinstance(value, (str, bytes)) and hasattr(value, "__iter__"):
        value = "\\".join(str(v) for v in value)
    text = str(value)
    return repr(text if len(text) <= 60 else text[:57] + "...")


def _read_slice(path: Path, who: str):
    """(dataset, pixel values after rescaling, position, orientation, pixel spacing) of one slice file."""
    import pydicom

    try:
        ds = pydicom.dcmread(str(path))
        pixels = np.asarray(ds.pixel_array)
    except Exception as exc:
        raise DataError(
            f"{who}cannot read DICOM file {path} ({type(exc).__name__}: {exc}); the file is corrupt "
            "or truncated: re-download the series"
        ) from exc
    if pixels.ndim != 2:
        raise DataError(f"{who}{path} holds pixel data of shape {pixels.shape} (multi-frame or colour); one "
                        "greyscale slice per file is expected: convert the series to single-frame greyscale")
    if np.iscomplexobj(pixels):
        raise DataError(f"{who}{path} holds complex pixel data; a real-valued greyscale slice is expected")
    slope = float(_numbers(ds, "RescaleSlope", 1, path, who, default=1.0)[0])
    intercept = float(_numbers(ds, "RescaleIntercept", 1, path, who, default=0.0)[0])
    if slope == 0 or abs(slope) > MAX_RESCALE_SLOPE:
        raise DataError(f"{who}{path}: RescaleSlope {slope:g} is {'zero' if slope == 0 else 'absurd'} (a non-zero "
                        f"value up to {MAX_RESCALE_SLOPE:g} is expected); the header is corrupt: re-download the series")
    if abs(intercept) > MAX_RESCALE_INTERCEPT:
        raise DataError(f"{who}{path}: RescaleIntercept {intercept:g} is beyond +-{MAX_RESCALE_INTERCEPT:g}; the "
                        "header is corrupt: re-download the series")
    with np.errstate(over="ignore", invalid="ignore"):
        values = (pixels.astype(np.float64) * slope + intercept).astype(np.float32)
    finite = np.isfinite(values)
    if not finite.all():
        raise DataError(f"{who}{path} has {int(values.size - np.count_nonzero(finite))} NaN/inf pixel value(s) "
                        f"of {values.size} after rescaling; the slice is damaged: re-download the series")
    position = _numbers(ds, "ImagePositionPatient", 3, path, who)
    orientation = _numbers(ds, "ImageOrientationPatient", 6, path, who)
    row_dir, col_dir = orientation[:3], orientation[3:]
    if (abs(np.linalg.norm(row_dir) - 1) > 1e-2 or abs(np.linalg.norm(col_dir) - 1) > 1e-2
            or abs(float(row_dir @ col_dir)) > 1e-2):
        raise DataError(f"{who}{path}: ImageOrientationPatient {orientation.round(4).tolist()} is not two "
                        "orthogonal unit vectors; the header is damaged: re-download the series")
    spacing = _numbers(ds, "PixelSpacing", 2, path, who)
    if np.any(spacing <= 0):
        raise DataError(f"{who}{path}: PixelSpacing {spacing.tolist()} must be positive; the header is damaged: "
                        "re-download the series")
    return ds, values, position, orientation, spacing


def read_dicom_series(
    files: list[Path], *, modality: str = "ct", units: str = UNITS_HU, subject: str | None = None
) -> Volume:
    """Read one series into a :class:`Volume` in RAS world coordinates (array axes: column, row, slice).

    Pixel values are converted with RescaleSlope/RescaleIntercept (HU for CT); the slope must be finite,
    non-zero and at most :data:`MAX_RESCALE_SLOPE` in magnitude, the intercept finite and within
    +-:data:`MAX_RESCALE_INTERCEPT`. Slices are sorted by their position along the slice normal. Refused
    with a :class:`DataError` naming the subject and the file or series folder: a slice without
    ImagePositionPatient, ImageOrientationPatient or PixelSpacing or with non-numeric or non-finite ones,
    NaN/inf pixel values after rescaling, and inconsistent orientation, pixel spacing, slice size or
    slice spacing within the series.
    """
    who = f"subject {subject!r}: " if subject else ""
    if not files:
        raise DataError(f"{who}empty DICOM series")
    folder = files[0].parent
    with warnings.catch_warnings():  # pydicom warns about invalid values; we refuse them with our own message
        warnings.simplefilter("ignore")
        slices = [(*_read_slice(path, who), path) for path in files]
    first_ds, _, _, iop, spacing_rc, first_path = slices[0]  # spacing: row spacing, column spacing
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    for _, _, _, this_iop, this_spacing, path in slices[1:]:
        if not np.allclose(this_iop, iop, atol=1e-4):
            raise DataError(f"{who}{path} has another ImageOrientationPatient than the rest of its series "
                            f"in {folder}; keep one series per folder")
        if not np.allclose(this_spacing, spacing_rc, rtol=1e-3, atol=1e-4):
            raise DataError(f"{who}{path} has PixelSpacing {this_spacing.tolist()} but {first_path.name} has "
                            f"{spacing_rc.tolist()}: inconsistent pixel spacing in the series in {folder}")
    order = np.argsort([float(s[2] @ normal) for s in slices], kind="stable")
    slices = [slices[i] for i in order]
    positions = [s[2] for s in slices]
    shapes = {s[1].shape for s in slices}
    if len(shapes) != 1:
        odd = next(s for s in slices if s[1].shape != slices[0][1].shape)
        raise DataError(f"{who}DICOM series in {folder} mixes slice sizes {sorted(shapes)} ({odd[5].name}: "
                        f"{odd[1].shape}, {slices[0][5].name}: {slices[0][1].shape}): keep one series per folder")
    if len(slices) > 1:
        steps = np.diff([float(p @ normal) for p in positions])
        median = float(np.median(steps))
        if np.any(steps <= 0) or np.ptp(steps) > 0.01 * max(abs(float(np.mean(steps))), 1e-6) + 1e-3:
            bad = int(np.argmax(np.where(steps <= 0, np.inf, np.abs(steps - median))))
            raise DataError(
                f"{who}DICOM series in {folder} has duplicate or unevenly spaced slices: {slices[bad][5].name} "
                f"and {slices[bad + 1][5].name} are {steps[bad]:.4g} mm apart, the median step is {median:.4g} mm "
                f"({len(slices)} slices): remove duplicates or restore missing slices"
            )
        slice_vec = (positions[-1] - positions[0]) / (len(positions) - 1)
    else:
        thickness = float(_numbers(first_ds, "SliceThickness", 1, first_path, who, default=1.0)[0]) or 1.0
        slice_vec = normal * abs(thickness)
    # pixel_array is (rows, columns) = (y, x); store as (x, y, z).
    data = np.stack([s[1].T for s in slices], axis=-1)
    affine_lps = np.eye(4)
    affine_lps[:3, 0] = row_dir * spacing_rc[1]
    affine_lps[:3, 1] = col_dir * spacing_rc[0]
    affine_lps[:3, 2] = slice_vec
    affine_lps[:3, 3] = positions[0]
    return Volume(
        data=np.ascontiguousarray(data, dtype=np.float32),
        affine=_LPS_TO_RAS @ affine_lps,
        modality=modality,
        units=units,
        source=str(folder),
    )


def _uid(seed_text: str) -> str:
    """A deterministic DICOM UID derived from ``seed_text`` (2.25 root + decimal of a hash)."""
    import hashlib

    return "2.25." + str(int(hashlib.sha256(seed_text.encode()).hexdigest()[:30], 16))


def write_dicom_series(
    folder: str | Path,
    volume: Volume,
    *,
    patient_id: str,
    series_description: str,
    series_number: int = 1,
    study_uid_seed: str | None = None,
    file_pattern: str = "1-{index:03d}.dcm",
) -> list[Path]:
    """Write an axial HU volume (RAS affine, no obliquity) as a CT DICOM series, one file per slice.

    Pixels are stored as int16 with RescaleSlope 1 / RescaleIntercept 0. UIDs derive from the patient ID,
    the description and ``study_uid_seed``, so the same call writes byte-identical files.
    """
    import pydicom
    from pydicom.dataset import FileDataset, FileMetaDataset
    from pydicom.uid import CTImageStorage, ExplicitVRLittleEndian

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    lps = np.linalg.inv(_LPS_TO_RAS) @ volume.affine
    row_dir = lps[:3, 0] / np.linalg.norm(lps[:3, 0])
    col_dir = lps[:3, 1] / np.linalg.norm(lps[:3, 1])
    spacing = volume.spacing
    seed = study_uid_seed or patient_id
    study_uid = _uid(f"study:{seed}:{patient_id}")
    series_uid = _uid(f"series:{seed}:{patient_id}:{series_description}")
    frame_uid = _uid(f"frame:{seed}:{patient_id}")
    paths = []
    data = np.clip(np.rint(np.asarray(volume.data)), -32768, 32767).astype(np.int16)
    for k in range(volume.shape[2]):
        meta = FileMetaDataset()
        meta.MediaStorageSOPClassUID = CTImageStorage
        meta.MediaStorageSOPInstanceUID = _uid(f"sop:{seed}:{patient_id}:{series_description}:{k}")
        meta.TransferSyntaxUID = ExplicitVRLittleEndian
        meta.ImplementationClassUID = "1.2.826.0.1.3680043.8.498.1"
        path = folder / file_pattern.format(index=k + 1)
        ds = FileDataset(str(path), {}, file_meta=meta, preamble=b"\0" * 128)
        ds.SOPClassUID = CTImageStorage
        ds.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
        ds.StudyInstanceUID = study_uid
        ds.SeriesInstanceUID = series_uid
        ds.FrameOfReferenceUID = frame_uid
        ds.PatientID = patient_id
        ds.PatientName = patient_id
        ds.Modality = "CT"
        ds.StudyDate = "20190101"
        ds.SeriesDescription = series_description
        ds.SeriesNumber = series_number
        ds.InstanceNumber = k + 1
        ds.ImagePositionPatient = [float(v) for v in (lps @ np.array([0, 0, k, 1.0]))[:3]]
        ds.ImageOrientationPatient = [float(v) for v in (*row_dir, *col_dir)]
        ds.PixelSpacing = [float(spacing[1]), float(spacing[0])]
        ds.SliceThickness = float(spacing[2])
        ds.Rows, ds.Columns = int(volume.shape[1]), int(volume.shape[0])
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated = 16
        ds.BitsStored = 16
        ds.HighBit = 15
        ds.PixelRepresentation = 1
        ds.RescaleSlope = 1
        ds.RescaleIntercept = 0
        ds.RescaleType = "HU"
        ds.PixelData = np.ascontiguousarray(data[:, :, k].T).tobytes()
        pydicom.dcmwrite(str(path), ds, enforce_file_format=True)
        paths.append(path)
    return paths

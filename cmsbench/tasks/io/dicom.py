"""DICOM series I/O through pydicom: group files into series, sort slices, build a RAS affine."""

from __future__ import annotations

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


def scan_series(folder: Path, *, subject: str | None = None) -> tuple[list[DicomSeries], list[str]]:
    """Find every DICOM series below ``folder`` (headers only). Returns (series, problems)."""
    import pydicom

    series: dict[str, DicomSeries] = {}
    problems: list[str] = []
    for path in sorted(p for p in folder.rglob("*") if p.is_file() and not p.name.startswith(".")):
        if path.suffix.lower() not in (".dcm", ".ima", ""):
            continue
        try:
            ds = pydicom.dcmread(str(path), stop_before_pixels=True)
        except Exception as exc:  # pydicom raises InvalidDicomError, EOFError, ...
            if path.suffix.lower() in (".dcm", ".ima"):
                problems.append(f"{path}: not a readable DICOM file ({type(exc).__name__}: {exc})")
            continue
        uid = str(getattr(ds, "SeriesInstanceUID", "")) or str(path.parent)
        entry = series.setdefault(
            uid,
            DicomSeries(uid=uid, description=str(getattr(ds, "SeriesDescription", "")),
                        patient_id=str(getattr(ds, "PatientID", ""))),
        )
        entry.files.append(path)
    return list(series.values()), problems


def read_dicom_series(
    files: list[Path], *, modality: str = "ct", units: str = UNITS_HU, subject: str | None = None
) -> Volume:
    """Read one series into a :class:`Volume` in RAS world coordinates (array axes: column, row, slice).

    Pixel values are converted with RescaleSlope/RescaleIntercept (HU for CT). Slices are sorted by
    their position along the slice normal; inconsistent spacing or orientation is an error.
    """
    import pydicom

    who = f"subject {subject!r}: " if subject else ""
    if not files:
        raise DataError(f"{who}empty DICOM series")
    slices = []
    for path in files:
        try:
            ds = pydicom.dcmread(str(path))
            pixels = ds.pixel_array.astype(np.float32)
        except Exception as exc:
            raise DataError(
                f"{who}cannot read DICOM file {path} ({type(exc).__name__}: {exc}); the file is corrupt "
                "or truncated: re-download the series"
            ) from exc
        slope = float(getattr(ds, "RescaleSlope", 1.0))
        intercept = float(getattr(ds, "RescaleIntercept", 0.0))
        slices.append((ds, pixels * slope + intercept, path))
    first = slices[0][0]
    try:
        iop = np.array([float(v) for v in first.ImageOrientationPatient])
        spacing_rc = [float(v) for v in first.PixelSpacing]  # row spacing, column spacing
    except AttributeError as exc:
        raise DataError(f"{who}{slices[0][2]} lacks ImageOrientationPatient/PixelSpacing: not an image series") from exc
    row_dir, col_dir = iop[:3], iop[3:]
    normal = np.cross(row_dir, col_dir)
    positions = []
    for ds, _, path in slices:
        this_iop = np.array([float(v) for v in ds.ImageOrientationPatient])
        if not np.allclose(this_iop, iop, atol=1e-4):
            raise DataError(f"{who}{path} has another ImageOrientationPatient than the rest of its series")
        positions.append(np.array([float(v) for v in ds.ImagePositionPatient]))
    order = np.argsort([float(p @ normal) for p in positions])
    slices = [slices[i] for i in order]
    positions = [positions[i] for i in order]
    shapes = {s[1].shape for s in slices}
    if len(shapes) != 1:
        raise DataError(f"{who}DICOM series in {files[0].parent} mixes slice sizes {sorted(shapes)}")
    if len(slices) > 1:
        steps = np.diff([float(p @ normal) for p in positions])
        if np.any(steps <= 0) or np.ptp(steps) > 0.01 * max(abs(float(np.mean(steps))), 1e-6) + 1e-3:
            raise DataError(
                f"{who}DICOM series in {files[0].parent} has duplicate or unevenly spaced slices "
                f"(steps {np.round(steps, 3).tolist()[:6]}...): remove duplicates or missing slices"
            )
        slice_vec = (positions[-1] - positions[0]) / (len(positions) - 1)
    else:
        slice_vec = normal * float(getattr(first, "SliceThickness", 1.0) or 1.0)
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
        source=str(files[0].parent),
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

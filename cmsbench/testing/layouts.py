"""Tiny datasets in every official layout, for reader tests (not physics: see ``cmsbench.tasks.phantoms``).

Each writer creates ``n`` subjects on a small grid with a bright ellipsoid "head" so that foreground
masks and normalisation are well defined, and returns the subject IDs it wrote.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmsbench.tasks.io.dicom import write_dicom_series
from cmsbench.tasks.io.nifti import write_nifti
from cmsbench.tasks.volume import Volume

SHAPE = (20, 22, 8)
AFFINE = np.array([[1.5, 0, 0, -15.0], [0, 1.5, 0, -16.0], [0, 0, 3.0, -12.0], [0, 0, 0, 1.0]])


def _head(rng: np.random.Generator, scale: float = 100.0, shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    inside = (x / 0.8) ** 2 + (y / 0.85) ** 2 + (z / 1.2) ** 2 < 1
    return (inside * scale * (1 + 0.1 * rng.standard_normal(shape))).astype(np.float32) * inside


def _lesion(shape: tuple[int, int, int] = SHAPE) -> np.ndarray:
    seg = np.zeros(shape, np.uint8)
    cx, cy, cz = shape[0] // 2, shape[1] // 2, shape[2] // 2
    seg[cx - 3:cx + 3, cy - 3:cy + 3, cz - 1:cz + 2] = 2
    seg[cx - 2:cx + 2, cy - 2:cy + 2, cz - 1:cz + 1] = 4
    seg[cx - 1:cx + 1, cy - 1:cy + 1, cz] = 1
    return seg


def write_brats(root: Path, n: int = 3, layout: str = "brats2021", seed: int = 0) -> list[str]:
    """BraTS 2021 (``BraTS2021_00000``) or 2023 GLI (``BraTS-GLI-00000-000``) folders."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        if layout == "brats2021":
            sid, sep, names, et = f"BraTS2021_{i:05d}", "_", ("t1", "t1ce", "t2", "flair"), 4
        else:
            sid, sep, names, et = f"BraTS-GLI-{i:05d}-000", "-", ("t1n", "t1c", "t2w", "t2f"), 3
        seg = _lesion()
        seg[seg == 4] = et
        head = _head(rng)
        for k, name in enumerate(names):
            img = head * (1 + 0.2 * k) + (seg > 0) * 30.0
            write_nifti(root / sid / f"{sid}{sep}{name}.nii.gz", img.astype(np.int16), AFFINE)
        write_nifti(root / sid / f"{sid}{sep}seg.nii.gz", seg, AFFINE)
        ids.append(sid)
    return ids


IXI_SITES = ("Guys", "HH", "IOP")


def write_ixi(root: Path, n: int = 3, seed: int = 0, shift_t1_mm: float = 0.0) -> list[str]:
    """IXI-T1/, IXI-T2/, IXI-PD/ folders; T1 on its own grid, optionally shifted by ``shift_t1_mm``."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        sid = f"IXI{i + 2:03d}-{IXI_SITES[i % 3]}-{1000 + i:04d}"
        head = _head(rng)
        write_nifti(root / "IXI-T2" / f"{sid}-T2.nii.gz", head.astype(np.int16), AFFINE)
        write_nifti(root / "IXI-PD" / f"{sid}-PD.nii.gz", (head * 1.3).astype(np.int16), AFFINE)
        t1_affine = AFFINE.copy()
        t1_affine[0, 3] += shift_t1_mm
        write_nifti(root / "IXI-T1" / f"{sid}-T1.nii.gz", (head * 0.7).astype(np.int16), t1_affine)
        ids.append(sid)
    return ids


def write_udpet(root: Path, n: int = 3, seed: int = 0, drfs: tuple[int, ...] = (4, 10)) -> list[str]:
    """``SUBJ/Full_dose.nii.gz``, ``SUBJ/1-DRF dose.nii.gz`` and ``metadata.csv``."""
    rng = np.random.default_rng(seed)
    ids = []
    rows = ["subject_id,weight_kg,injected_activity_bq,acquisition_delay_s,half_life_s,scanner"]
    for i in range(n):
        sid = f"UDPET_{i + 1:04d}"
        full = _head(rng, scale=20000.0)
        write_nifti(root / sid / "Full_dose.nii.gz", full, AFFINE)
        for drf in drfs:
            noisy = full + rng.normal(0, 500 * np.sqrt(drf), SHAPE).astype(np.float32) * (full > 0)
            write_nifti(root / sid / f"1-{drf} dose.nii.gz", noisy.astype(np.float32), AFFINE)
        write_nifti(root / sid / "lesion_mask.nii.gz", (_lesion() == 4).astype(np.uint8), AFFINE)
        rows.append(f"{sid},{70 + i},{2.5e8},3600,6586.2,phantom")
        ids.append(sid)
    (root / "metadata.csv").write_text("\n".join(rows) + "\n")
    return ids


def write_ldct(root: Path, n: int = 3, seed: int = 0, fmt: str = "dicom") -> list[str]:
    """TCIA-style DICOM series (Full Dose / Low Dose Images) or NIfTI pairs per patient, in HU."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        pid = f"L{100 + i:03d}"
        full = _head(rng, scale=1040.0) - 1000.0
        low = full + rng.normal(0, 40, SHAPE).astype(np.float32)
        if fmt == "nifti":
            write_nifti(root / pid / "full_dose.nii.gz", full.astype(np.int16), AFFINE)
            write_nifti(root / pid / "low_dose.nii.gz", low.astype(np.int16), AFFINE)
        else:
            study = root / pid / "01-01-2019-NA-NA-12345"
            write_dicom_series(study / "1.000000-Full Dose Images-101", Volume(full, AFFINE), patient_id=pid,
                               series_description="Full Dose Images", series_number=1)
            write_dicom_series(study / "2.000000-Low Dose Images-102", Volume(low, AFFINE), patient_id=pid,
                               series_description="Low Dose Images", series_number=2)
        ids.append(pid)
    return ids


def write_synthrad(root: Path, n: int = 3, seed: int = 0) -> list[str]:
    """``Task1/brain/1BA001/{mr,ct,mask}.nii.gz``."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        sid = f"1BA{i + 1:03d}"
        head = _head(rng)
        folder = root / "Task1" / "brain" / sid
        write_nifti(folder / "mr.nii.gz", head.astype(np.int16), AFFINE)
        write_nifti(folder / "ct.nii.gz", (head * 10 - 1000).astype(np.int16), AFFINE)
        write_nifti(folder / "mask.nii.gz", (head > 0).astype(np.uint8), AFFINE)
        ids.append(sid)
    return ids


def write_pattern(root: Path, n: int = 3, seed: int = 0) -> list[str]:
    """A private layout for a user-defined task: ``SUBJ/{t1,flair,brain_mask,lesion}.nii.gz``."""
    rng = np.random.default_rng(seed)
    ids = []
    for i in range(n):
        sid = f"lab{i:03d}"
        head = _head(rng)
        write_nifti(root / sid / "t1.nii.gz", head.astype(np.int16), AFFINE)
        write_nifti(root / sid / "flair.nii.gz", (head * 1.5).astype(np.int16), AFFINE)
        write_nifti(root / sid / "brain_mask.nii.gz", (head > 0).astype(np.uint8), AFFINE)
        write_nifti(root / sid / "lesion.nii.gz", _lesion(), AFFINE)
        ids.append(sid)
    return ids


PATTERN_TASK_TOML = """\
name = "lab_t1_flair"
version = "1.0"
description = "T1 -> FLAIR on a private collection"
inputs = ["t1"]
target = "flair"
units = "a.u."
normalisation = "healthy_median"
normalisation_region = "brain"
regions = ["brain", "lesion"]
metrics = ["psnr", "ssim", "mae"]
main_metric = "psnr"
data_range = 4.0

[split]
kind = "hash"
fractions = [0.34, 0.33, 0.33]

[files]
t1 = "{subject}/t1.nii.gz"
flair = "{subject}/flair.nii.gz"

[masks]
brain = "{subject}/brain_mask.nii.gz"
lesion = "{subject}/lesion.nii.gz"
"""

"""Quick-look montages of dataset folders in the official layouts (phantom or real)."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.phantoms.catalog import UDPET_DRFS, check_dataset

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Panel:
    """One image of the montage: a 2D slice (display orientation) and how to show it."""

    title: str
    image: np.ndarray
    cmap: str = "gray"
    vmin: float | None = None
    vmax: float | None = None


def detect_dataset(root: Path) -> str:
    """Guess which dataset layout ``root`` holds (the phantom marker wins when present)."""
    import json

    marker = root / ".cmsbench_phantom.json"
    if marker.is_file():
        return check_dataset(json.loads(marker.read_text())["dataset"])
    if any(root.glob("BraTS2021_*/BraTS2021_*_flair.nii.gz")):
        return "brats"
    if (root / "IXI-T2").is_dir() or (root / "IXI-T1").is_dir():
        return "ixi"
    if (root / "metadata.csv").is_file() or any(root.glob("*/Full_dose.nii.gz")):
        return "udpet"
    if (root / "Task1" / "brain").is_dir() or any(root.glob("1BA*/ct.nii.gz")):
        return "synthrad"
    if any(root.glob("*/*/*Full Dose Images*")):
        return "ldct"
    if any(root.glob("*/smooth.nii.gz")) or any(root.glob("*/*/*PHANTOM_HANN*")):
        return "chest"
    if (root / "dataset.json").is_file() or any(root.glob("Task*/dataset.json")):
        return "msd_ct"
    raise DataError(
        f"cannot tell which dataset layout {root} holds; pass dataset= one of brats, ixi, udpet, ldct, synthrad, chest, msd_ct"
    )


def _mid_axial(path: Path, k: int | None = None) -> np.ndarray:
    """Axial slice ``k`` (default: the middle one) of a NIfTI file, in RAS orientation."""
    import nibabel as nib

    img = nib.as_closest_canonical(nib.load(str(path)))
    k = img.shape[2] // 2 if k is None else k
    sl = np.asarray(img.dataobj[:, :, k], dtype=np.float32)
    return sl.T  # rows = anterior-posterior (shown with origin lower), columns = left-right


def _lesion_slice(path: Path) -> int | None:
    """The axial slice with the largest labelled area of a label/mask file (None if empty)."""
    import nibabel as nib

    if not path.is_file():
        return None
    lab = np.asarray(nib.as_closest_canonical(nib.load(str(path))).dataobj) > 0
    area = lab.sum(axis=(0, 1))
    return int(np.argmax(area)) if area.max() > 0 else None


def _robust_max(a: np.ndarray) -> float:
    vals = a[a > 0]
    return float(np.percentile(vals, 99.5)) if vals.size else 1.0


def _mr_panel(title: str, path: Path, k: int | None = None) -> Panel:
    sl = _mid_axial(path, k)
    return Panel(title, sl, "gray", 0.0, _robust_max(sl))


def _rows_brats(root: Path, max_subjects: int) -> list[tuple[str, list[Panel]]]:
    rows = []
    for d in sorted(p for p in root.glob("BraTS2021_*") if p.is_dir())[:max_subjects]:
        # the slice through the largest tumour area (the middle slice when there is no tumour)
        k = _lesion_slice(d / f"{d.name}_seg.nii.gz")
        panels = [_mr_panel(m, d / f"{d.name}_{m}.nii.gz", k) for m in ("t1", "t1ce", "t2", "flair")]
        panels.append(Panel("seg", _mid_axial(d / f"{d.name}_seg.nii.gz", k), "viridis", 0, 4))
        rows.append((d.name, panels))
    return rows


def _rows_ixi(root: Path, max_subjects: int) -> list[tuple[str, list[Panel]]]:
    rows = []
    for t2 in sorted((root / "IXI-T2").glob("*-T2.nii.gz"))[:max_subjects]:
        sid = t2.name[: -len("-T2.nii.gz")]
        panels = []
        for m in ("T1", "T2", "PD"):
            p = root / f"IXI-{m}" / f"{sid}-{m}.nii.gz"
            if p.is_file():
                panels.append(_mr_panel(m, p))
        rows.append((sid, panels))
    return rows


def _rows_udpet(root: Path, max_subjects: int) -> list[tuple[str, list[Panel]]]:
    rows = []
    for d in sorted(p for p in root.iterdir() if (p / "Full_dose.nii.gz").is_file())[:max_subjects]:
        k = _lesion_slice(d / "lesion_mask.nii.gz")  # through the largest lesion, else the middle
        full = _mid_axial(d / "Full_dose.nii.gz", k)
        vmax = _robust_max(full)
        panels = [Panel("full dose", full, "gray_r", 0.0, vmax)]
        for drf in UDPET_DRFS:
            p = d / f"1-{drf} dose.nii.gz"
            if p.is_file() and drf in (4, 20, 100):
                panels.append(Panel(f"1/{drf} dose", _mid_axial(p, k), "gray_r", 0.0, vmax))
        if (d / "lesion_mask.nii.gz").is_file():
            panels.append(Panel("lesion", _mid_axial(d / "lesion_mask.nii.gz", k), "gray", 0, 1))
        rows.append((d.name, panels))
    return rows


def _dicom_mid_slice(series: Path) -> np.ndarray:
    import pydicom

    files = sorted(series.glob("*.dcm"))
    if not files:
        raise DataError(f"no DICOM files in {series}")
    heads = [(float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]), f) for f in files]
    heads.sort()
    ds = pydicom.dcmread(heads[len(heads) // 2][1])
    return ds.pixel_array.astype(np.float32) * float(ds.RescaleSlope) + float(ds.RescaleIntercept)


def _rows_ldct(root: Path, max_subjects: int) -> list[tuple[str, list[Panel]]]:
    rows = []
    for patient in sorted(p for p in root.iterdir() if p.is_dir())[:max_subjects]:
        panels = []
        for kind, title in (("Full Dose Images", "full dose"), ("Low Dose Images", "low dose")):
            series = sorted(patient.glob(f"*/*{kind}*"))
            if series:
                # DICOM rows run anterior -> posterior: flip so anterior is up with origin='lower'
                panels.append(Panel(title + " [-160,240]", _dicom_mid_slice(series[0])[::-1], "gray", -160, 240))
        if len(panels) == 2:
            panels.append(Panel("low - full", panels[1].image - panels[0].image, "gray", -150, 150))
            panels.append(Panel("full dose [-1000,2000]", panels[0].image, "gray", -1000, 2000))
        rows.append((patient.name, panels))
    return rows


def _rows_synthrad(root: Path, max_subjects: int) -> list[tuple[str, list[Panel]]]:
    base = root / "Task1" / "brain" if (root / "Task1" / "brain").is_dir() else root
    rows = []
    for d in sorted(p for p in base.iterdir() if (p / "ct.nii.gz").is_file())[:max_subjects]:
        mr = _mr_panel("mr", d / "mr.nii.gz")
        ctsl = _mid_axial(d / "ct.nii.gz")
        panels = [
            mr,
            Panel("ct [-1000,2000]", ctsl, "gray", -1000, 2000),
            Panel("ct [-160,240]", ctsl, "gray", -160, 240),
            Panel("mask", _mid_axial(d / "mask.nii.gz"), "gray", 0, 1),
        ]
        rows.append((d.name, panels))
    return rows


def _rows_chest(root: Path, max_subjects: int) -> list[tuple[str, list[Panel]]]:
    """Dual-kernel CT: the smooth and sharp series (by ConvolutionKernel) in the lung window, and their difference."""
    import pydicom

    from cmsbench.tasks.adapters.ct_kernel import DEFAULT_SHARP_KERNELS, DEFAULT_SMOOTH_KERNELS, classify_kernel
    from cmsbench.tasks.adapters.ct_kernel import kernel_names as _names

    smooth, sharp = _names(DEFAULT_SMOOTH_KERNELS), _names(DEFAULT_SHARP_KERNELS)
    rows = []
    for patient in sorted(p for p in root.iterdir() if p.is_dir())[:max_subjects]:
        found: dict[str, Path] = {}
        for series in sorted(d for d in patient.glob("*/*") if d.is_dir()):
            first = next(series.glob("*.dcm"), None)
            if first is not None:
                kind = classify_kernel(str(getattr(pydicom.dcmread(first, stop_before_pixels=True),
                                                   "ConvolutionKernel", "")), smooth, sharp)
                if kind:
                    found.setdefault(kind, series)
        panels = [Panel(f"{kind} [-1350,150]", _dicom_mid_slice(found[kind])[::-1], "gray", -1350, 150)
                  for kind in ("smooth", "sharp") if kind in found]
        if len(panels) == 2:
            panels.append(Panel("sharp - smooth", panels[1].image - panels[0].image, "gray", -200, 200))
        rows.append((patient.name, panels))
def _rows_msd_ct(root: Path, max_subjects: int) -> list[tuple[str, list[Panel]]]:
    import nibabel as nib

    from cmsbench.tasks.adapters.msd import task_folders

    rows = []
    for folder in task_folders(root):
        for path in sorted((folder / "imagesTr").glob("*.nii.gz"))[:max_subjects - len(rows)]:
            img = np.asarray(nib.load(str(path)).dataobj, dtype=np.float32)
            axial = img[:, :, img.shape[2] // 2].T
            coronal = img[:, img.shape[1] // 2, :].T
            rows.append((path.name.split(".")[0], [
                Panel("axial [-160,240]", axial, "gray", -160, 240),
                Panel("axial [-1000,2000]", axial, "gray", -1000, 2000),
                Panel("coronal (z up) [-160,240]", coronal, "gray", -160, 240),
            ]))
    return rows


_ROWS = {"brats": _rows_brats, "ixi": _rows_ixi, "udpet": _rows_udpet, "ldct": _rows_ldct, "synthrad": _rows_synthrad,
         "chest": _rows_chest,
         "msd_ct": _rows_msd_ct}


def montage(root: Path, out_png: Path, dataset: str | None = None, max_subjects: int = 6) -> Path:
    """Write a PNG montage (rows: subjects, columns: modalities) of the dataset folder ``root``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    if not root.is_dir():
        raise DataError(f"dataset folder {root} does not exist")
    name = check_dataset(dataset) if dataset is not None else detect_dataset(root)
    rows = _ROWS[name](root, max_subjects)
    if not rows:
        raise DataError(f"no {name} subjects found under {root}")
    n_cols = max(len(p) for _, p in rows)
    fig, axes = plt.subplots(len(rows), n_cols, figsize=(2.2 * n_cols, 2.3 * len(rows)), squeeze=False)
    for r, (sid, panels) in enumerate(rows):
        for c in range(n_cols):
            ax = axes[r, c]
            ax.axis("off")
            if c >= len(panels):
                continue
            p = panels[c]
            ax.imshow(p.image, cmap=p.cmap, vmin=p.vmin, vmax=p.vmax, origin="lower", interpolation="nearest")
            ax.set_title(p.title, fontsize=8)
        axes[r, 0].text(
            -0.05, 0.5, sid, transform=axes[r, 0].transAxes, rotation=90, ha="right", va="center", fontsize=7
        )
    fig.suptitle(f"{name}: {root}", fontsize=9)
    fig.tight_layout()
    out_png.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out_png, dpi=80)
    plt.close(fig)
    logger.info("montage of %s written to %s", root, out_png)
    return out_png

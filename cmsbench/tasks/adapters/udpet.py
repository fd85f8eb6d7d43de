"""UDPET (Ultra-low Dose PET challenge) layout, as NIfTI.

``SUBJECT/Full_dose.nii.gz`` and ``SUBJECT/1-<DRF> dose.nii.gz`` (DRF = dose-reduction factor 2, 4,
10, 20, 50 or 100; ``1-<DRF>_dose.nii.gz`` is accepted too) in Bq/mL, and ``metadata.csv`` with columns
``subject_id, weight_kg, injected_activity_bq, acquisition_delay_s, half_life_s`` for SUV. An optional
``SUBJECT/lesion_mask.nii.gz`` (written by the phantom generator, or by a lab that labelled lesions)
enables the lesion region and SUV lesion metrics. ``body`` is the ground truth's foreground.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.adapters.base import (
    CaseRef,
    DatasetAdapter,
    Discovery,
    Problem,
    check_geometry,
    foreground_mask,
    require_dir,
)
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import UNITS_BQML, Case

DOSE_REDUCTION_FACTORS = (2, 4, 10, 20, 50, 100)
METADATA_FILE = "metadata.csv"
METADATA_COLUMNS = ("subject_id", "weight_kg", "injected_activity_bq", "acquisition_delay_s", "half_life_s")


def low_dose_names(drf: int) -> tuple[str, ...]:
    """Accepted file names of the low-dose image at dose-reduction factor ``drf``."""
    return (f"1-{drf} dose.nii.gz", f"1-{drf}_dose.nii.gz", f"1-{drf} dose.nii")


def read_metadata(path: Path) -> dict[str, dict[str, float | str]]:
    """metadata.csv -> subject ID -> numeric fields (and ``scanner`` when present)."""
    rows: dict[str, dict[str, float | str]] = {}
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [c for c in METADATA_COLUMNS if c not in (reader.fieldnames or [])]
        if missing:
            raise DataError(f"{path} lacks columns {missing}; expected {list(METADATA_COLUMNS)}")
        for line_no, row in enumerate(reader, start=2):
            try:
                values: dict[str, float | str] = {c: float(row[c]) for c in METADATA_COLUMNS[1:]}
            except (TypeError, ValueError) as exc:
                raise DataError(f"{path} line {line_no}: non-numeric value ({exc}); fix the row") from exc
            if row.get("scanner"):
                values["scanner"] = row["scanner"]
            rows[row["subject_id"]] = values
    return rows


class UdpetAdapter(DatasetAdapter):
    """Reads full-dose / low-dose PET pairs at the task's dose-reduction factor (option ``drf``)."""

    name = "udpet"

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        require_dir(root, "UDPET")
        found = Discovery()
        drf = int(task.adapter_options.get("drf", 4))
        if drf not in DOSE_REDUCTION_FACTORS:
            found.problems.append(Problem(f"dose-reduction factor {drf} is not one of {DOSE_REDUCTION_FACTORS}"))
            return found
        meta_path = root / METADATA_FILE
        metadata: dict[str, dict[str, float | str]] = {}
        if meta_path.exists():
            try:
                metadata = read_metadata(meta_path)
            except DataError as exc:
                found.problems.append(Problem(str(exc), path=str(meta_path)))
        else:
            found.problems.append(Problem(
                f"no {METADATA_FILE}: SUV metrics need weight_kg and injected_activity_bq per subject", path=str(meta_path)))
        subject_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and not d.name.startswith(".")]
        for folder in subject_dirs:
            full = folder / "Full_dose.nii.gz"
            low = next((folder / n for n in low_dose_names(drf) if (folder / n).exists()), None)
            if not full.exists() and low is None:
                continue  # not a subject folder
            problems = []
            if not full.exists():
                problems.append("missing file Full_dose.nii.gz")
            if low is None:
                problems.append(f"missing file '{low_dose_names(drf)[0]}' (dose-reduction factor {drf})")
            if problems:
                for message in problems:
                    found.problems.append(Problem(message + ": the subject is skipped", subject=folder.name, path=str(folder)))
                continue
            files = {task.target: full, task.inputs[0]: low}
            lesion = folder / "lesion_mask.nii.gz"
            if lesion.exists():
                files["lesion"] = lesion
            if metadata and folder.name not in metadata:
                found.problems.append(Problem(f"no row in {METADATA_FILE}: SUV metrics will be missing", subject=folder.name))
            found.cases.append(CaseRef(folder.name, files, metadata={"drf": drf, **metadata.get(folder.name, {})}))
        if not found.cases and not any("missing file" in p.message for p in found.problems):
            found.problems.append(Problem("no UDPET subject folders (SUBJECT/Full_dose.nii.gz) found", path=str(root)))
        return found

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        target = read_nifti(ref.files[task.target], modality=task.target, units=UNITS_BQML, subject=ref.case_id)
        low_role = task.inputs[0]
        low = read_nifti(ref.files[low_role], modality=low_role, units=UNITS_BQML, subject=ref.case_id)
        others = {low_role: low}
        masks = {}
        if "lesion" in ref.files:
            lesion = read_nifti(ref.files["lesion"], modality="lesion", units="label", dtype=np.int16,
                                subject=ref.case_id, labels="nonnegative")
            others["lesion"] = lesion
            masks["lesion"] = lesion.data > 0
        check_geometry(ref.case_id, target, others)
        robust_max = float(np.percentile(target.data, 99.9))
        masks["body"] = foreground_mask(target.data, 0.02 * robust_max) if robust_max > 0 else np.zeros(target.shape, bool)
        return Case(
            case_id=ref.case_id,
            inputs={low_role: low},
            target=target,
            masks=masks,
            metadata=dict(ref.metadata),
        )

"""TCIA LDCT-and-Projection-data layout (DICOM), NIfTI accepted.

DICOM: ``PATIENT/<study>/<n>-Full Dose Images-<k>/*.dcm`` and ``PATIENT/<study>/<n>-Low Dose
Images-<k>/*.dcm``: series are grouped by SeriesInstanceUID and told apart by SeriesDescription
("Full Dose" vs "Low Dose"/"Quarter Dose"); both must carry the folder's PatientID (when set).
NIfTI: ``PATIENT/full_dose.nii.gz`` and ``PATIENT/low_dose.nii.gz`` (or ``quarter_dose.nii.gz``).
``PATIENT`` is a TCIA patient ID (``L067``, ``C002``, ``N001``); other folders are listed as problems
and skipped. Values in HU. ``body`` is the ground truth's foreground above -500 HU.
"""

from __future__ import annotations

import re
from pathlib import Path

from cmsbench.tasks.adapters.base import (
    CaseRef,
    DatasetAdapter,
    Discovery,
    Problem,
    check_geometry,
    foreground_mask,
    require_dir,
)
from cmsbench.tasks.io.dicom import read_dicom_series, scan_series
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import UNITS_HU, Case

FULL_NAMES = ("full_dose.nii.gz", "full_dose.nii")
LOW_NAMES = ("low_dose.nii.gz", "quarter_dose.nii.gz", "low_dose.nii", "quarter_dose.nii")
#: TCIA LDCT-and-Projection-data patient IDs: L (abdomen), C (chest), N (head) and three digits.
PATIENT_RE = re.compile(r"^[LCN]\d{3}$")


def _classify(description: str) -> str | None:
    text = description.lower()
    if "full" in text:
        return "full"
    if "low" in text or "quarter" in text:
        return "low"
    return None


class LdctAdapter(DatasetAdapter):
    """Reads full-dose / low-dose CT pairs per patient."""

    name = "ldct"

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        require_dir(root, "LDCT-and-Projection-data")
        found = Discovery()
        full_role, low_role = task.target, task.inputs[0]
        for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
            pid = folder.name
            if not PATIENT_RE.match(pid):
                found.problems.append(Problem(
                    "folder name is not a TCIA LDCT patient ID (L067, C002, N001, ...) and is ignored: rename it to "
                    "its patient ID or move it out of the data root", path=str(folder)))
                continue
            full = next((folder / n for n in FULL_NAMES if (folder / n).exists()), None)
            low = next((folder / n for n in LOW_NAMES if (folder / n).exists()), None)
            if full or low:
                if full and low:
                    found.cases.append(CaseRef(pid, {full_role: full, low_role: low}, metadata={"format": "nifti"}))
                else:
                    found.problems.append(Problem(
                        f"missing file {'low_dose.nii.gz' if full else 'full_dose.nii.gz'}: the patient is skipped",
                        subject=pid, path=str(folder)))
                continue
            series, problems = scan_series(folder, subject=pid)
            found.problems.extend(Problem(p, subject=pid) for p in problems)
            by_kind: dict[str, list] = {}
            for s in series:
                kind = _classify(s.description)
                if kind:
                    by_kind.setdefault(kind, []).append(s)
            if not series:
                found.problems.append(Problem("no DICOM series found in the patient folder", subject=pid, path=str(folder)))
                continue
            missing = [k for k in ("full", "low") if k not in by_kind]
            if missing:
                found.problems.append(Problem(
                    f"no {' or '.join(m + ' dose' for m in missing)} series (SeriesDescription must contain "
                    "'Full Dose' / 'Low Dose'): the patient is skipped", subject=pid, path=str(folder)))
                continue
            strangers = [(kind, by_kind[kind][0]) for kind in ("full", "low")
                         if by_kind[kind][0].patient_id not in ("", pid)]
            for kind, s in strangers:
                found.problems.append(Problem(
                    f"the {kind}-dose series has PatientID {s.patient_id!r}, not {pid!r}: it belongs to another "
                    "patient; move it to that patient's folder (the patient is skipped)",
                    subject=pid, path=str(s.files[0].parent)))
            if strangers:
                continue
            if len(by_kind["full"]) > 1 or len(by_kind["low"]) > 1:
                found.problems.append(Problem(
                    "several full- or low-dose series (e.g. two slice thicknesses); the first of each is used",
                    subject=pid))
            found.cases.append(CaseRef(
                pid,
                {full_role: by_kind["full"][0].files[0].parent, low_role: by_kind["low"][0].files[0].parent},
                metadata={"format": "dicom",
                          "files": {full_role: [str(p) for p in by_kind["full"][0].files],
                                    low_role: [str(p) for p in by_kind["low"][0].files]}},
            ))
        if not found.cases and not found.problems:
            found.problems.append(Problem("no patient folders found", path=str(root)))
        return found

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        vols = {}
        for role, path in ref.files.items():
            if ref.metadata.get("format") == "dicom":
                files = [Path(p) for p in ref.metadata["files"][role]]
                vols[role] = read_dicom_series(files, modality=role, units=UNITS_HU, subject=ref.case_id)
            else:
                vols[role] = read_nifti(path, modality=role, units=UNITS_HU, subject=ref.case_id)
        target = vols[task.target]
        check_geometry(ref.case_id, target, {task.inputs[0]: vols[task.inputs[0]]}, tol=1e-2)
        return Case(
            case_id=ref.case_id,
            inputs={task.inputs[0]: vols[task.inputs[0]]},
            target=target,
            masks={"body": foreground_mask(target.data, -500.0)},
            metadata={"format": ref.metadata.get("format")},
        )

"""SynthRAD2023 task 1 layout: ``Task1/brain/1BA001/{mr,ct,mask}.nii.gz`` (also ``pelvis/1PA001``).

The data root may be the folder holding ``Task1``, ``Task1`` itself or ``Task1/brain``. CT in HU; the
shipped dilated body mask is the evaluation mask ``body``; ``bone`` (ground truth > 300 HU inside the
body) is derived by the scorer from the ground truth.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cmsbench.tasks.adapters.base import CaseRef, DatasetAdapter, Discovery, Problem, check_geometry, require_dir
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import UNITS_HU, UNITS_MR, Case

CASE_RE = re.compile(r"^1[BP]A\d{3}$")


def anatomy_folder(root: Path, anatomy: str = "brain") -> Path:
    """Resolve the folder that holds the case folders, whatever level the user pointed at."""
    for candidate in (root / "Task1" / anatomy, root / anatomy, root):
        if candidate.is_dir() and any(CASE_RE.match(d.name) for d in candidate.iterdir() if d.is_dir()):
            return candidate
    return root / "Task1" / anatomy


class SynthradAdapter(DatasetAdapter):
    """Reads SynthRAD2023 task 1 (MR -> CT) cases of one anatomy (option ``anatomy``, default brain)."""

    name = "synthrad2023"

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        require_dir(root, "SynthRAD2023")
        found = Discovery()
        folder = anatomy_folder(root, str(task.adapter_options.get("anatomy", "brain")))
        if not folder.is_dir():
            found.problems.append(Problem(
                "no SynthRAD2023 case folders found (expected Task1/brain/1BA001/{mr,ct,mask}.nii.gz)", path=str(root)))
            return found
        for other in sorted(d for d in folder.iterdir() if d.is_dir() and not d.name.startswith(".")
                            and not CASE_RE.match(d.name)):
            found.problems.append(Problem(
                "folder does not match the SynthRAD2023 case layout (e.g. 1BA001) and is ignored: rename or move it",
                path=str(other)))
        for case_dir in sorted(d for d in folder.iterdir() if d.is_dir() and CASE_RE.match(d.name)):
            files = {}
            for role, name in ((task.inputs[0], "mr"), (task.target, "ct"), ("mask", "mask")):
                path = case_dir / f"{name}.nii.gz"
                if path.exists():
                    files[role] = path
                else:
                    found.problems.append(Problem(f"missing file {name}.nii.gz: the case is skipped",
                                                  subject=case_dir.name, path=str(path)))
            if len(files) == 3:
                found.cases.append(CaseRef(case_dir.name, files))
        if not found.cases and not found.problems:
            found.problems.append(Problem("no SynthRAD2023 case folders (1BA001, ...) found", path=str(folder)))
        return found

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        mr = read_nifti(ref.files[task.inputs[0]], modality=task.inputs[0], units=UNITS_MR, subject=ref.case_id)
        ct = read_nifti(ref.files[task.target], modality=task.target, units=UNITS_HU, subject=ref.case_id)
        mask = read_nifti(ref.files["mask"], modality="mask", units="label", dtype=np.int16, subject=ref.case_id,
                          labels=(0, 1))
        check_geometry(ref.case_id, ct, {task.inputs[0]: mr, "mask": mask})
        return Case(
            case_id=ref.case_id,
            inputs={task.inputs[0]: mr},
            target=ct,
            masks={"body": mask.data > 0},
        )

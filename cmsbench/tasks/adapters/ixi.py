"""IXI layout: ``IXI-T1/IXI002-Guys-0828-T1.nii.gz``, ``IXI-T2/...-T2.nii.gz``, ``IXI-PD/...-PD.nii.gz``.

T2 and PD are the two echoes of one acquisition and share a grid. T1 is a separate acquisition on its
own grid and not aligned: unless a pre-registered copy is present in ``IXI-T1-registered/`` (same file
names, already on the T2 grid), the adapter resamples T1 onto the T2 grid and refines the alignment
with a rigid NMI registration (:mod:`cmsbench.tasks.registration`). The dataset cache keeps the result.
The evaluation mask ``head`` is the ground truth's foreground (Otsu threshold, largest component, holes
filled): computed from the ground truth only.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

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
from cmsbench.tasks.registration import align_to
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import UNITS_MR, Case

FILE_RE = re.compile(r"^(IXI\d{3}-([A-Za-z]+)-\d{4})-(T1|T2|PD|MRA|DTI)\.nii(\.gz)?$")
MODALITY_FOLDERS = {"t1": "IXI-T1", "t2": "IXI-T2", "pd": "IXI-PD"}
REGISTERED_T1_FOLDER = "IXI-T1-registered"
SITES = ("Guys", "HH", "IOP")


def head_mask(image: np.ndarray) -> np.ndarray:
    """Foreground of an MR head image by Otsu's threshold."""
    from skimage.filters import threshold_otsu

    positive = image[image > 0]
    if positive.size == 0:
        return np.zeros(image.shape, bool)
    return foreground_mask(image, float(threshold_otsu(positive)) * 0.5)


class IxiAdapter(DatasetAdapter):
    """Reads the IXI release folders; registers T1 to the T2/PD grid when needed."""

    name = "ixi"
    version = "1"

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        require_dir(root, "IXI")
        found = Discovery()
        roles = (*task.inputs, task.target)
        per_subject: dict[str, dict[str, Path]] = {}
        sites: dict[str, str] = {}
        for role in roles:
            folder = root / MODALITY_FOLDERS[role]
            if not folder.is_dir():
                found.problems.append(Problem(
                    f"missing folder {MODALITY_FOLDERS[role]}/ for modality {role}: extract "
                    f"{MODALITY_FOLDERS[role]}.tar into the data root", path=str(folder)))
                continue
            for path in sorted(folder.iterdir()):
                match = FILE_RE.match(path.name)
                if not match:
                    if not path.name.startswith("."):
                        found.problems.append(Problem(f"unexpected file name (not IXI###-Site-####-{role.upper()}.nii.gz)", path=str(path)))
                    continue
                sid, site = match.group(1), match.group(2)
                per_subject.setdefault(sid, {})[role] = path
                sites[sid] = site
        if not per_subject:
            if not found.problems:
                found.problems.append(Problem("no IXI files found", path=str(root)))
            return found
        registered = root / REGISTERED_T1_FOLDER
        for sid in sorted(per_subject):
            files = per_subject[sid]
            missing = [r for r in roles if r not in files]
            if missing:
                for role in missing:
                    found.problems.append(Problem(
                        f"missing modality file {MODALITY_FOLDERS[role]}/{sid}-{role.upper()}.nii.gz: "
                        "the subject is skipped", subject=sid))
                continue
            meta = {}
            if "t1" in files:
                pre = registered / files["t1"].name
                if pre.exists():
                    files = {**files, "t1": pre}
                    meta["t1_registered"] = True
            found.cases.append(CaseRef(sid, files, site=sites[sid], metadata=meta))
        return found

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        vols = {role: read_nifti(p, modality=role, units=UNITS_MR, subject=ref.case_id) for role, p in ref.files.items()}
        target = vols[task.target]
        aligned = {}
        for role, vol in vols.items():
            if role == target.modality:
                continue
            if role == "t1" and not ref.metadata.get("t1_registered"):
                aligned[role], transform = align_to(vol, target, register=True)
            else:
                aligned[role] = vol
        check_geometry(ref.case_id, target, aligned)
        meta = {"site": ref.site}
        if "t1" in aligned and not ref.metadata.get("t1_registered"):
            meta["t1_registration"] = {"rotation_deg": list(transform.rotation_deg),
                                       "translation_mm": list(transform.translation_mm)}
        return Case(
            case_id=ref.case_id,
            inputs={m: aligned[m] for m in task.inputs},
            target=target,
            masks={"head": head_mask(target.data)},
            metadata=meta,
        )

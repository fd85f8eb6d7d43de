"""BraTS 2021 and BraTS 2023 GLI layouts.

2021: ``BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz``, labels 1 necrotic core,
2 oedema, 4 enhancing. 2023 GLI: ``BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz``,
labels 1, 2, 3. Images are skull-stripped: the brain mask is where any MR image is non-zero.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cmsbench.tasks.adapters.base import CaseRef, DatasetAdapter, Discovery, Problem, check_geometry, require_dir
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import UNITS_MR, Case, Volume

_LAYOUTS = {
    # layout name: (folder regex, separator before the suffix, suffix per cmsbench modality, enhancing label)
    "brats2021": (re.compile(r"^BraTS20\d\d_\d{5}$"), "_",
                  {"t1": "t1", "t1ce": "t1ce", "t2": "t2", "flair": "flair", "seg": "seg"}, 4),
    "brats2023": (re.compile(r"^BraTS-[A-Z]+-\d{5}-\d{3}$"), "-",
                  {"t1": "t1n", "t1ce": "t1c", "t2": "t2w", "flair": "t2f", "seg": "seg"}, 3),
}


def _layout_of(folder_name: str) -> str | None:
    for name, (pattern, *_rest) in _LAYOUTS.items():
        if pattern.match(folder_name):
            return name
    return None


class BratsAdapter(DatasetAdapter):
    """Reads BraTS 2021 and 2023 GLI folders (the two may not be mixed in one root)."""

    name = "brats"

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        require_dir(root, "BraTS")
        found = Discovery()
        roles = (*task.inputs, task.target, "seg")
        subject_dirs = [d for d in sorted(root.iterdir()) if d.is_dir() and _layout_of(d.name)]
        for d in sorted(root.iterdir()):
            if d.is_dir() and not d.name.startswith(".") and not _layout_of(d.name):
                found.problems.append(Problem(
                    "folder does not match the BraTS layout (BraTS2021_00000 or BraTS-GLI-00000-000) and is "
                    "ignored: rename it to its subject ID or move it out of the data root", path=str(d)))
        if not subject_dirs:
            found.problems.append(Problem(
                "no BraTS subject folders found (expected BraTS2021_00000/ or BraTS-GLI-00000-000/ "
                "folders); point --data-root at the folder that contains them", path=str(root)))
            return found
        layouts = {_layout_of(d.name) for d in subject_dirs}
        if len(layouts) > 1:
            found.problems.append(Problem(
                f"the folder mixes BraTS layouts {sorted(layouts)}; keep one release per data root", path=str(root)))
        for folder in subject_dirs:
            layout = _layout_of(folder.name)
            _, sep, suffixes, label_et = _LAYOUTS[layout]  # type: ignore[index]
            files: dict[str, Path] = {}
            missing = []
            for role in roles:
                path = folder / f"{folder.name}{sep}{suffixes[role]}.nii.gz"
                if not path.exists() and path.with_suffix("").exists():  # uncompressed .nii
                    path = path.with_suffix("")
                if path.exists():
                    files[role] = path
                else:
                    missing.append(path.name)
            if missing:
                for name in missing:
                    found.problems.append(Problem(
                        f"missing modality file {name}: the subject is skipped; restore the file or remove "
                        "the folder", subject=folder.name, path=str(folder / name)))
                continue
            found.cases.append(CaseRef(folder.name, files, metadata={"layout": layout, "enhancing_label": label_et}))
        return found

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        vols = {
            role: read_nifti(path, modality=role, units=UNITS_MR, subject=ref.case_id)
            for role, path in ref.files.items()
            if role != "seg"
        }
        label_et = int(ref.metadata.get("enhancing_label", 4))
        seg = read_nifti(ref.files["seg"], modality="seg", units="label", dtype=np.int16, subject=ref.case_id,
                         labels=(0, 1, 2, label_et))
        target = vols[task.target]
        check_geometry(ref.case_id, target, {**{k: v for k, v in vols.items() if k != task.target}, "seg": seg})
        labels = seg.data
        brain = np.zeros(target.shape, bool)
        for vol in vols.values():
            brain |= vol.data > 0
        brain |= labels > 0
        masks = {
            "brain": brain,
            "lesion": labels > 0,
            "necrotic": labels == 1,
            "edema": labels == 2,
            "enhancing": labels == label_et,
        }
        return Case(
            case_id=ref.case_id,
            inputs={m: vols[m] for m in task.inputs},
            target=target,
            masks=masks,
            labels=Volume(labels.astype(np.int16), seg.affine, "seg", "label", seg.source),
            metadata={"layout": ref.metadata.get("layout")},
        )

"""Folder/filename-pattern layout for user-defined tasks (declared in a TOML file, no Python).

Each role (input modalities, the target, optional masks) has a pattern relative to the data root with a
``{subject}`` placeholder, e.g. ``"{subject}/{subject}_flair.nii.gz"``. Subjects are found by matching
the target's pattern. Masks named ``lesion`` may be label maps: every non-zero voxel is lesion.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np

from cmsbench.errors import TaskSpecError
from cmsbench.tasks.adapters.base import CaseRef, DatasetAdapter, Discovery, Problem, check_geometry, require_dir
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case, Volume


def _pattern_regex(pattern: str) -> re.Pattern[str]:
    parts = pattern.split("{subject}")
    return re.compile("^" + "(?P<subject>[^/]+)".join(re.escape(p) for p in parts) + "$")


class PatternAdapter(DatasetAdapter):
    """Finds files by the task's ``files`` and ``masks`` patterns (adapter options)."""

    name = "pattern"

    def _patterns(self, task: TaskSpec) -> tuple[dict[str, str], dict[str, str]]:
        files = dict(task.adapter_options.get("files", {}))
        masks = dict(task.adapter_options.get("masks", {}))
        missing = [r for r in (*task.inputs, task.target) if r not in files]
        if missing:
            raise TaskSpecError(f"task {task.name!r} gives no file pattern for {missing} in [files]")
        for role, pattern in {**files, **masks}.items():
            if "{subject}" not in pattern:
                raise TaskSpecError(f"task {task.name!r}: the pattern for {role!r} lacks the {{subject}} placeholder")
        return files, masks

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        require_dir(root, task.dataset.name)
        files, masks = self._patterns(task)
        found = Discovery()
        target_pattern = files[task.target]
        regex = _pattern_regex(target_pattern)
        glob = target_pattern.replace("{subject}", "*")
        subjects = []
        for path in sorted(root.glob(glob)):
            match = regex.match(path.relative_to(root).as_posix())
            if match:
                subjects.append(match.group("subject"))
        if not subjects:
            found.problems.append(Problem(f"no files match the target pattern {target_pattern!r}", path=str(root)))
            return found
        for sid in sorted(set(subjects)):
            paths = {role: root / p.replace("{subject}", sid) for role, p in {**files, **masks}.items()}
            missing = [role for role, p in paths.items() if not p.exists()]
            if missing:
                for role in missing:
                    found.problems.append(Problem(f"missing file for {role}: the subject is skipped",
                                                  subject=sid, path=str(paths[role])))
                continue
            found.cases.append(CaseRef(sid, paths, metadata={"mask_roles": sorted(masks)}))
        return found

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        mask_roles = set(ref.metadata.get("mask_roles", []))
        vols = {role: read_nifti(p, modality=role, units=task.units, subject=ref.case_id)
                for role, p in ref.files.items() if role not in mask_roles}
        mask_vols = {role: read_nifti(p, modality=role, units="label", dtype=np.int16, subject=ref.case_id,
                                      labels="nonnegative")
                     for role, p in ref.files.items() if role in mask_roles}
        target = vols[task.target]
        check_geometry(ref.case_id, target, {**{k: v for k, v in vols.items() if k != task.target}, **mask_vols})
        masks = {role: v.data > 0 for role, v in mask_vols.items()}
        labels = mask_vols.get("lesion")
        return Case(
            case_id=ref.case_id,
            inputs={m: vols[m] for m in task.inputs},
            target=target,
            masks=masks,
            labels=Volume(labels.data, labels.affine, "lesion", "label", labels.source) if labels else None,
        )

"""The Medical Segmentation Decathlon (MSD) CT layout: ``TaskXX_Name/dataset.json`` and ``imagesTr/*.nii.gz``.

The data root is one task folder (it holds ``dataset.json``) or a folder of several (``Task03_Liver``,
``Task08_HepaticVessel``, ``Task10_Colon``: SAINT's union), read in name order. Each task folder's
``dataset.json`` lists its cases in ``training`` (``{"image": "./imagesTr/liver_0.nii.gz", ...}``) and its
channels in ``modality`` (one must be CT). A case is named by its image file's stem (``liver_0``).

Checked, each problem naming the file: a ``dataset.json`` that is missing, unreadable or lists no CT; a
listed image that is missing; a header whose ``pixdim`` disagrees with its affine (a wrong slice spacing) or
whose voxel size is not positive. SAINT's exclusion (Peng et al., CVPR 2020): a volume whose HU range
(max - min) exceeds :data:`HU_RANGE_LIMIT` (metal) is not a case; it is listed in ``Discovery.excluded``
with its range. Reading the ranges reads every volume once (remembered under path, size and mtime in
``$CMSBENCH_HOME/msd_hu_ranges.json``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.errors import CmsbenchError
from cmsbench.tasks.adapters.base import CaseRef, Discovery, Problem, require_dir
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.volume import UNITS_HU, Volume

#: SAINT's exclusion: volumes whose max - min exceeds this many HU (metal implants) are dropped
HU_RANGE_LIMIT = 9000.0
#: a header's pixdim may differ from its affine's voxel size by this much (mm)
PIXDIM_TOLERANCE_MM = 1e-3

_RANGES: dict[tuple[str, int, int], tuple[float, float]] = {}


def task_folders(root: Path) -> list[Path]:
    """The MSD task folders under ``root``: ``root`` itself when it holds ``dataset.json``, else its
    sub-folders that do (name order)."""
    if (root / "dataset.json").is_file():
        return [root]
    return sorted(p for p in root.iterdir() if p.is_dir() and (p / "dataset.json").is_file())


def read_dataset_json(folder: Path) -> dict[str, Any]:
    """The task folder's ``dataset.json`` as a dict; :class:`CmsbenchError` naming the file when it is
    missing, not JSON, or has no ``training`` list."""
    path = folder / "dataset.json"
    try:
        info = json.loads(path.read_text())
    except OSError as exc:
        raise CmsbenchError(f"cannot read {path}: {exc}") from None
    except ValueError as exc:
        raise CmsbenchError(f"{path} is not valid JSON: {exc}") from None
    if not isinstance(info, dict) or not isinstance(info.get("training"), list):
        raise CmsbenchError(f"{path} has no 'training' list of cases (MSD dataset.json format)")
    return info


def ct_channel(info: dict[str, Any]) -> str | None:
    """The ``modality`` key of the CT channel (``"0"``), None when the task lists no CT."""
    modality = info.get("modality") or {}
    for key, name in dict(modality).items():
        if str(name).strip().upper() == "CT":
            return str(key)
    return None


def case_id_of(image: Path) -> str:
    """``liver_0`` for ``imagesTr/liver_0.nii.gz``."""
    name = image.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def header_problem(path: Path) -> str | None:
    """Why the header of ``path`` has a wrong voxel size (pixdim vs affine, non-positive), or None."""
    import nibabel as nib

    try:
        img = nib.load(str(path))
    except Exception as exc:  # noqa: BLE001 - reported, read_nifti gives the full reason later
        return f"cannot read the header ({type(exc).__name__}: {exc})"
    pixdim = np.asarray(img.header["pixdim"][1:4], dtype=np.float64)
    spacing = np.linalg.norm(np.asarray(img.affine, dtype=np.float64)[:3, :3], axis=0)
    if (pixdim <= 0).any() or (spacing <= 0).any():
        return f"non-positive voxel size (pixdim {pixdim.tolist()})"
    if np.max(np.abs(pixdim - spacing)) > PIXDIM_TOLERANCE_MM:
        return (f"header pixdim {[round(float(v), 4) for v in pixdim]} mm disagrees with the affine's voxel size "
                f"{[round(float(v), 4) for v in spacing]} mm (a wrong slice spacing): fix the header")
    return None


def _range_file() -> Path:
    from cmsbench.paths import cache_home

    return cache_home() / "msd_hu_ranges.json"


def _stored_ranges() -> dict[str, list[float]]:
    try:
        stored = json.loads(_range_file().read_text())
        return stored if isinstance(stored, dict) else {}
    except (OSError, ValueError):
        return {}


def hu_range(path: Path, subject: str) -> tuple[float, float]:
    """(min, max) HU of the volume at ``path``, remembered per path, size and mtime in this process and in
    ``$CMSBENCH_HOME/msd_hu_ranges.json`` (a real MSD task is read whole only once)."""
    stat = path.stat()
    key = (str(path), stat.st_size, stat.st_mtime_ns)
    if key in _RANGES:
        return _RANGES[key]
    text_key = f"{key[0]}|{key[1]}|{key[2]}"
    stored = _stored_ranges()
    value = stored.get(text_key)
    if isinstance(value, list) and len(value) == 2:
        _RANGES[key] = (float(value[0]), float(value[1]))
        return _RANGES[key]
    data = read_nifti(path, modality="ct", units=UNITS_HU, subject=subject).data
    _RANGES[key] = (float(data.min()), float(data.max()))
    stored[text_key] = list(_RANGES[key])
    try:  # best effort: an unwritable cache only costs reading the volume again in the next process
        target = _range_file()
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{os.getpid()}")
        tmp.write_text(json.dumps(stored))
        os.replace(tmp, target)
    except OSError:
        pass
    return _RANGES[key]


def discover_msd(root: Path, *, hu_range_limit: float | None = HU_RANGE_LIMIT) -> Discovery:
    """The CT cases of the MSD task folder(s) under ``root`` (see the module doc); role ``ct``."""
    require_dir(root, "Medical Segmentation Decathlon CT")
    found = Discovery()
    folders = task_folders(root)
    if not folders:
        found.problems.append(Problem("no MSD task folder (TaskXX_Name/dataset.json) found", path=str(root)))
        return found
    for folder in folders:
        try:
            info = read_dataset_json(folder)
        except CmsbenchError as exc:
            found.problems.append(Problem(str(exc), path=str(folder / "dataset.json")))
            continue
        if ct_channel(info) is None:
            found.problems.append(Problem(f"modality {info.get('modality')!r} lists no CT channel",
                                          path=str(folder / "dataset.json")))
            continue
        for entry in info["training"]:
            image = entry.get("image") if isinstance(entry, dict) else entry
            if not isinstance(image, str):
                found.problems.append(Problem(f"a 'training' entry without an image: {entry!r}",
                                              path=str(folder / "dataset.json")))
                continue
            path = (folder / image).resolve() if not Path(image).is_absolute() else Path(image)
            case_id = case_id_of(path)
            if not path.is_file():
                found.problems.append(Problem(f"listed in dataset.json but missing: {path.name}", subject=case_id,
                                              path=str(path)))
                continue
            bad = header_problem(path)
            if bad:
                found.problems.append(Problem(bad, subject=case_id, path=str(path)))
                continue
            if hu_range_limit is not None:
                try:
                    lo, hi = hu_range(path, case_id)
                except CmsbenchError as exc:
                    found.problems.append(Problem(str(exc), subject=case_id, path=str(path)))
                    continue
                if hi - lo > hu_range_limit:
                    found.excluded.append(Problem(
                        f"HU range {hi - lo:.0f} (min {lo:.0f}, max {hi:.0f}) exceeds {hu_range_limit:g}: "
                        "metal, excluded as in SAINT", subject=case_id, path=str(path)))
                    continue
            found.cases.append(CaseRef(case_id, {"ct": path}, metadata={"msd_task": folder.name}))
    ids = [c.case_id for c in found.cases]
    if len(set(ids)) != len(ids):
        dup = sorted({i for i in ids if ids.count(i) > 1})
        found.problems.append(Problem(f"case names {dup[:5]} occur in more than one task folder; rename them",
                                      path=str(root)))
    return found


def read_ct(ref: CaseRef) -> Volume:
    """The case's CT volume in HU (the file's own scaling applied)."""
    return read_nifti(ref.files["ct"], modality="ct", units=UNITS_HU, subject=ref.case_id)

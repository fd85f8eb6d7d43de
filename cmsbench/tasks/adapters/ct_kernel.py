"""Dual-kernel CT (``ct_kernel``): one scan reconstructed with a smooth and a sharp kernel.

Layout A (DICOM, the form of RIDER Lung CT and the AAPM / Mayo dual-kernel data): one folder per case (the
patient), holding (at any depth, e.g. ``CASE/<study>/<series>/*.dcm``) two DICOM series told apart by their
ConvolutionKernel tag (0018,1210). Which kernels are smooth and which sharp is stated by the task parameters
``smooth_kernels`` and ``sharp_kernels`` (comma-separated names, matched case-insensitively against the tag's
first value, e.g. Siemens ``B30f`` / ``B70f``, GE ``STANDARD`` / ``LUNG``). Series of other kernels are
ignored; several series of one class: the first (by SeriesInstanceUID order of discovery) is used, with a
problem saying so.

Layout B (NIfTI pair): ``CASE/smooth.nii.gz`` and ``CASE/sharp.nii.gz`` (``.nii`` accepted), in HU.

Both series must share one grid (shape, voxel spacing, origin and orientation within
:data:`GEOMETRY_TOLERANCE_MM`); a study whose series differ is refused with an error naming both series
(SeriesInstanceUID, description, kernel, folder). Values in HU. ``body`` is the ground truth's (sharp
kernel's) foreground above -500 HU; the ``lung`` region is derived by the scorer from the ground truth.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmsbench.errors import GeometryError
from cmsbench.tasks.adapters.base import CaseRef, DatasetAdapter, Discovery, Problem, foreground_mask, require_dir
from cmsbench.tasks.builtin import CT_KERNEL_SHARP, CT_KERNEL_SMOOTH
from cmsbench.tasks.io.dicom import DicomSeries, read_dicom_series, scan_series
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import UNITS_HU, Case, Volume

#: Affines (origin, spacing, orientation) of the two series may differ by this much (mm).
GEOMETRY_TOLERANCE_MM = 1e-2
NIFTI_NAMES = {"smooth": ("smooth.nii.gz", "smooth.nii"), "sharp": ("sharp.nii.gz", "sharp.nii")}
#: The task's default kernel names (comma-separated): Siemens, GE, Toshiba/Canon and the phantom's.
DEFAULT_SMOOTH_KERNELS = CT_KERNEL_SMOOTH
DEFAULT_SHARP_KERNELS = CT_KERNEL_SHARP


def kernel_names(option: object) -> tuple[str, ...]:
    """The kernel names of a task option: a comma-separated string or a sequence, upper-cased."""
    items = option.split(",") if isinstance(option, str) else list(option or ())  # type: ignore[call-overload]
    return tuple(str(k).strip().upper() for k in items if str(k).strip())


def classify_kernel(kernel: str, smooth: tuple[str, ...], sharp: tuple[str, ...]) -> str | None:
    """``"smooth"``, ``"sharp"`` or None for a ConvolutionKernel value (its first value, case-insensitive)."""
    first = kernel.split("\\")[0].strip().upper()
    if first in smooth or kernel.strip().upper() in smooth:
        return "smooth"
    if first in sharp or kernel.strip().upper() in sharp:
        return "sharp"
    return None


def describe_series(s: DicomSeries) -> str:
    """One series named for a message: UID, description, kernel, folder."""
    folder = s.files[0].parent if s.files else "?"
    return f"series {s.uid} ({s.description!r}, ConvolutionKernel {s.kernel!r}) in {folder}"


def check_pair_geometry(case_id: str, a: Volume, a_name: str, b: Volume, b_name: str,
                        tol: float = GEOMETRY_TOLERANCE_MM) -> None:
    """Raise :class:`GeometryError` naming both series unless ``a`` and ``b`` share shape, spacing and affine."""
    what = None
    if a.shape != b.shape:
        what = f"shapes differ: {a.shape} vs {b.shape}"
    else:
        sa, sb = np.asarray(a.spacing, float), np.asarray(b.spacing, float)
        diff = float(np.max(np.abs(np.asarray(a.affine) - np.asarray(b.affine))))
        if np.max(np.abs(sa - sb)) > tol:
            what = f"voxel spacings differ: {tuple(np.round(sa, 4))} vs {tuple(np.round(sb, 4))} mm"
        elif diff > tol:
            what = f"origin / orientation differ by up to {diff:.4g} mm"
    if what:
        raise GeometryError(
            f"subject {case_id!r}: the two reconstructions are not on one grid ({what}; tolerance {tol:g} mm): "
            f"{a_name} and {b_name}; a kernel pair must be two reconstructions of one acquisition on one grid: "
            "reconstruct both on the same field of view and slices, or resample one onto the other")


class CtKernelAdapter(DatasetAdapter):
    """Reads smooth / sharp reconstruction pairs, one folder per case (DICOM layout A or NIfTI layout B)."""

    name = "ct_kernel"

    def _kernels(self, task: TaskSpec) -> tuple[tuple[str, ...], tuple[str, ...]]:
        opts = task.adapter_options
        return (kernel_names(opts.get("smooth_kernels", DEFAULT_SMOOTH_KERNELS)),
                kernel_names(opts.get("sharp_kernels", DEFAULT_SHARP_KERNELS)))

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        require_dir(root, "dual-kernel CT")
        found = Discovery()
        roles = {"smooth": task.inputs[0], "sharp": task.target}
        smooth_names, sharp_names = self._kernels(task)
        for folder in sorted(d for d in root.iterdir() if d.is_dir() and not d.name.startswith(".")):
            cid = folder.name
            nifti = {k: next((folder / n for n in names if (folder / n).exists()), None)
                     for k, names in NIFTI_NAMES.items()}
            if any(nifti.values()):
                if all(nifti.values()):
                    found.cases.append(CaseRef(cid, {roles[k]: p for k, p in nifti.items() if p is not None},
                                               metadata={"format": "nifti"}))
                else:
                    lacking = next(k for k, p in nifti.items() if p is None)
                    present = next(p for p in nifti.values() if p is not None)
                    found.problems.append(Problem(
                        f"missing file {NIFTI_NAMES[lacking][0]} beside {present.name}: the case is skipped",
                        subject=cid, path=str(folder / NIFTI_NAMES[lacking][0])))
                continue
            series, problems = scan_series(folder, subject=cid)
            found.problems.extend(Problem(p, subject=cid) for p in problems)
            if not series:
                found.problems.append(Problem("no DICOM series and no smooth.nii.gz / sharp.nii.gz found",
                                              subject=cid, path=str(folder)))
                continue
            by_kind: dict[str, list[DicomSeries]] = {}
            for s in series:
                kind = classify_kernel(s.kernel, smooth_names, sharp_names)
                if kind:
                    by_kind.setdefault(kind, []).append(s)
            missing = [k for k in ("smooth", "sharp") if k not in by_kind]
            if missing:
                listing = "; ".join(f"{describe_series(s)}, first file {s.files[0].name}" for s in series)
                names = sharp_names if missing == ["sharp"] else smooth_names if missing == ["smooth"] else ()
                expected = f" (ConvolutionKernel one of {', '.join(names)})" if names else ""
                found.problems.append(Problem(
                    f"no {' and no '.join(missing)}-kernel series{expected}; found: {listing}. The case is skipped: "
                    "add the missing reconstruction, or name its kernel with --parameter "
                    f"{missing[0]}_kernels=...", subject=cid, path=str(folder)))
                continue
            studies = {by_kind[k][0].study_uid for k in ("smooth", "sharp")}
            if len(studies) > 1 and "" not in studies:
                found.problems.append(Problem(
                    f"the smooth and sharp series belong to different studies ({describe_series(by_kind['smooth'][0])}"
                    f"; {describe_series(by_kind['sharp'][0])}): a kernel pair must come from one acquisition; "
                    "the case is skipped", subject=cid, path=str(folder)))
                continue
            for kind in ("smooth", "sharp"):
                if len(by_kind[kind]) > 1:
                    found.problems.append(Problem(
                        f"several {kind}-kernel series ({'; '.join(describe_series(s) for s in by_kind[kind])}); "
                        "the first is used", subject=cid))
            pick = {k: by_kind[k][0] for k in ("smooth", "sharp")}
            found.cases.append(CaseRef(
                cid, {roles[k]: pick[k].files[0].parent for k in pick},
                metadata={"format": "dicom",
                          "files": {roles[k]: [str(p) for p in pick[k].files] for k in pick},
                          "series": {roles[k]: describe_series(pick[k]) for k in pick},
                          "kernels": {roles[k]: pick[k].kernel for k in pick}},
            ))
        if not found.cases and not found.problems:
            found.problems.append(Problem("no case folders found", path=str(root)))
        return found

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        vols: dict[str, Volume] = {}
        names: dict[str, str] = {}
        for role, path in ref.files.items():
            if ref.metadata.get("format") == "dicom":
                files = [Path(p) for p in ref.metadata["files"][role]]
                vols[role] = read_dicom_series(files, modality=role, units=UNITS_HU, subject=ref.case_id)
                names[role] = str(ref.metadata["series"][role])
            else:
                vols[role] = read_nifti(path, modality=role, units=UNITS_HU, subject=ref.case_id)
                names[role] = f"file {path}"
        src, tgt = task.inputs[0], task.target
        check_pair_geometry(ref.case_id, vols[src], f"the smooth {names[src]}", vols[tgt], f"the sharp {names[tgt]}")
        target = vols[tgt]
        return Case(
            case_id=ref.case_id,
            inputs={src: vols[src]},
            target=target,
            masks={"body": foreground_mask(target.data, -500.0)},
            metadata={"format": ref.metadata.get("format"), "kernels": dict(ref.metadata.get("kernels", {}))},
        )

"""Core data model: a :class:`Volume` (array + geometry + units) and a :class:`Case`.

Both are plain dataclasses over numpy arrays: cheap to build, free of torch.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

#: Units strings used across cmsbench.
UNITS_HU = "HU"
UNITS_BQML = "Bq/mL"
UNITS_SUV = "SUV"
UNITS_MR = "a.u."  # raw MR magnitude, arbitrary units
UNITS_MR_NORMALISED = "a.u./healthy-median"  # MR divided by a ground-truth healthy-tissue statistic


@dataclass(frozen=True, eq=False)
class Volume:
    """A 3D image on a voxel grid.

    Attributes:
        data: array of shape (X, Y, Z) in voxel order (as stored in NIfTI), float32 for images.
        affine: 4x4 voxel-to-world (RAS+, mm) matrix.
        modality: modality or contrast name (``"t1"``, ``"flair"``, ``"ct"``, ``"pet"``, ...).
        units: physical units of ``data`` (``"HU"``, ``"Bq/mL"``, ``"a.u."``, ...).
        source: file the volume was read from, if any (for error messages).
    """

    data: np.ndarray
    affine: np.ndarray = field(default_factory=lambda: np.eye(4))
    modality: str = ""
    units: str = UNITS_MR
    source: str | None = None

    def __post_init__(self) -> None:
        affine = np.asarray(self.affine, dtype=np.float64)
        if affine.shape != (4, 4):
            raise ValueError(f"affine must be 4x4, got {affine.shape}")
        object.__setattr__(self, "affine", affine)
        if np.asarray(self.data).ndim != 3:
            raise ValueError(
                f"a Volume holds a 3D array, got shape {np.shape(self.data)}"
                + (f" from {self.source}" if self.source else "")
            )

    @property
    def shape(self) -> tuple[int, int, int]:
        """Grid shape (X, Y, Z)."""
        return tuple(int(s) for s in self.data.shape)  # type: ignore[return-value]

    @property
    def spacing(self) -> tuple[float, float, float]:
        """Voxel size in mm along each array axis (column norms of the affine)."""
        return tuple(float(v) for v in np.linalg.norm(self.affine[:3, :3], axis=0))  # type: ignore[return-value]

    @property
    def orientation(self) -> str:
        """Axis codes such as ``"RAS"`` (nibabel convention)."""
        import nibabel as nib

        return "".join(nib.aff2axcodes(self.affine))

    def with_data(self, data: np.ndarray, **changes: Any) -> Volume:
        """A copy on the same grid with other voxel values (and optionally other fields)."""
        return replace(self, data=data, **changes)

    def same_grid(self, other: Volume, atol: float = 1e-3) -> bool:
        """True when shape and affine agree (affine within ``atol`` mm)."""
        return self.shape == other.shape and bool(np.allclose(self.affine, other.affine, atol=atol))


@dataclass(eq=False)
class Case:
    """One subject of a task: inputs, target, evaluation masks and metadata.

    Attributes:
        case_id: identifier unique within the dataset (the subject ID for most datasets).
        inputs: modality name -> input volume (e.g. ``{"t1": ..., "t2": ...}``).
        target: the ground-truth volume to synthesise (None where a task is scored elsewhere).
        masks: region name -> boolean array on the target grid (``"brain"``, ``"body"``,
            ``"lesion"``, BraTS sub-regions ``"necrotic"``, ``"edema"``, ``"enhancing"``).
        labels: optional integer label map (e.g. the BraTS segmentation) on the target grid.
        metadata: free metadata (site, PET body weight in g, injected dose in Bq, ...).
    """

    case_id: str
    inputs: dict[str, Volume]
    target: Volume | None
    masks: dict[str, np.ndarray] = field(default_factory=dict)
    labels: Volume | None = None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def grid(self) -> Volume:
        """The reference grid of the case (the target's, else the first input's)."""
        if self.target is not None:
            return self.target
        return next(iter(self.inputs.values()))

    def mask(self, name: str) -> np.ndarray:
        """The named boolean mask; a clear error if the case has none by that name."""
        from cmsbench.errors import DataError

        if name not in self.masks:
            raise DataError(
                f"case {self.case_id!r} has no mask {name!r}; available: {sorted(self.masks)}"
            )
        return self.masks[name]


def volumes_summary(volumes: Mapping[str, Volume]) -> str:
    """One line per volume: name, shape, spacing, orientation (for error messages)."""
    lines = []
    for name, vol in volumes.items():
        sp = ", ".join(f"{s:.3g}" for s in vol.spacing)
        lines.append(f"{name}: shape {vol.shape}, spacing ({sp}) mm, {vol.orientation}, {vol.source or '-'}")
    return "\n".join(lines)


def path_str(path: str | Path | None) -> str:
    """A printable path."""
    return "-" if path is None else str(path)

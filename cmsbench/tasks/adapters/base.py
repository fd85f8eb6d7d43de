"""The dataset-adapter interface: find a dataset's cases in its official layout, load one case."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.errors import DataError, GeometryError
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case, Volume

#: Affines of one case's volumes may differ by this much (mm) before it is an error.
AFFINE_TOLERANCE_MM = 1e-3


@dataclass(frozen=True)
class CaseRef:
    """Where one case's files are: role (modality, ``seg``, ``mask``) -> path, plus light metadata."""

    case_id: str
    files: Mapping[str, Path]
    site: str | None = None
    metadata: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a dataset folder, for ``cmsbench data check``."""

    message: str
    subject: str | None = None
    path: str | None = None

    def __str__(self) -> str:
        where = " ".join(x for x in (self.subject and f"[{self.subject}]", self.path) if x)
        return f"{where}: {self.message}" if where else self.message


@dataclass
class Discovery:
    """What an adapter found in a folder: complete cases, the problems it met, and the cases it left out on
    purpose by the protocol's rule (``excluded``: e.g. SAINT's CT volumes with an HU range over 9000), each
    with the reason; excluded cases are not problems."""

    cases: list[CaseRef] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    excluded: list[Problem] = field(default_factory=list)


class DatasetAdapter(ABC):
    """Reads one dataset family in its official layout.

    ``discover`` lists cases without reading image data (cheap); ``load`` reads one case in physical
    units (MR as stored, CT in HU, PET in Bq/mL) with its masks, checking geometry. Intensity
    normalisation is applied afterwards, from the task spec (see ``cmsbench.tasks.dataset``).
    """

    name: str = ""
    #: bumped whenever load() output changes, so cached arrays are invalidated
    version: str = "1"

    @abstractmethod
    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        """Find the cases of ``task`` under ``root``."""

    @abstractmethod
    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        """Read one case (raw physical units, masks on the target grid)."""


def require_dir(root: Path, what: str) -> None:
    """Fail clearly when the data root is missing or empty."""
    if not root.exists():
        raise DataError(f"data root {root} does not exist: pass the folder that holds the {what} dataset")
    if not root.is_dir():
        raise DataError(f"data root {root} is not a folder: pass the folder that holds the {what} dataset")


def check_geometry(case_id: str, reference: Volume, others: Mapping[str, Volume], tol: float = AFFINE_TOLERANCE_MM) -> None:
    """Raise :class:`GeometryError` unless every volume shares ``reference``'s shape, affine and orientation.

    Geometry is never overwritten: a mismatch means the files disagree and the user must resample or fix
    the header.
    """
    for name, vol in others.items():
        if vol.shape != reference.shape:
            raise GeometryError(
                f"subject {case_id!r}: {name} {vol.source} has shape {vol.shape} but "
                f"{reference.modality} {reference.source} has shape {reference.shape}; resample them onto "
                "one grid before benchmarking"
            )
        if vol.orientation != reference.orientation:
            raise GeometryError(
                f"subject {case_id!r}: {name} {vol.source} is oriented {vol.orientation} but "
                f"{reference.modality} {reference.source} is {reference.orientation}; reorient one of them"
            )
        diff = float(np.max(np.abs(vol.affine - reference.affine)))
        if diff > tol:
            raise GeometryError(
                f"subject {case_id!r}: the affine of {name} {vol.source} differs from that of "
                f"{reference.modality} {reference.source} by up to {diff:.4g} mm (tolerance {tol:g}); "
                "the volumes are not on one grid: register/resample them or fix the header"
            )


def largest_component(mask: np.ndarray) -> np.ndarray:
    """The largest 26-connected component of a boolean mask (empty stays empty)."""
    from scipy import ndimage

    labels, n = ndimage.label(mask, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return mask.astype(bool)
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    return labels == int(np.argmax(sizes))


def foreground_mask(image: np.ndarray, threshold: float) -> np.ndarray:
    """Voxels above ``threshold``, largest component, holes filled slice by slice and in 3D."""
    from scipy import ndimage

    mask = largest_component(image > threshold)
    mask = ndimage.binary_fill_holes(mask)
    for z in range(mask.shape[2]):
        mask[:, :, z] = ndimage.binary_fill_holes(mask[:, :, z])
    return mask.astype(bool)

"""Tissue consistency of a synthetic CT without any segmentation weights: HU-band tissue classes.

Every voxel inside the body mask is put in one of five classes by its HU value (the same bands for the
real and the synthetic CT), and the two class maps are compared: Dice per class, and the MAE in bone.

Default bands (:data:`DEFAULT_BANDS`; edges in HU, each band ``low <= HU < high``, which partition the real
line so that every body voxel has exactly one class):

- ``air``: HU < -950. -950 HU is the emphysema threshold of lung densitometry (RA950; Gevenois et al.,
  Am J Respir Crit Care Med 1996;154:187-192): below it a voxel is essentially air.
- ``lung``: -950 <= HU < -190: aerated lung parenchyma (about -900 to -500 HU) and the partial-volume range
  between it and fat.
- ``fat``: -190 <= HU < -29: the adipose-tissue band of CT body composition (-190 to -30 HU; Mitsiopoulos
  et al., J Appl Physiol 1998;85:115-122).
- ``soft_tissue``: -29 <= HU < 300: from the skeletal-muscle band of the same study (-29 to +150 HU) up to
  bone, so that enhanced vessels and partial-volume voxels below bone are soft tissue.
- ``bone``: HU >= 300, the threshold of cmsbench's ``bone`` region (``regions.BONE_HU``: cancellous bone
  starts at a few hundred HU, cortical bone is above 1000).

A class absent from both CTs has no Dice (undefined, not 1). Bone MAE is the mean absolute HU error over
the voxels that are bone in EITHER CT (the real CT's bone alone is the ``mae`` metric in the ``bone``
region), so bone the synthetic CT invents or misses counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cmsbench.errors import MetricError


@dataclass(frozen=True)
class TissueBands:
    """Class names and the HU edges between them: class ``i`` is ``edges[i-1] <= HU < edges[i]``."""

    names: tuple[str, ...]
    edges: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.edges) != len(self.names) - 1:
            raise MetricError(f"{len(self.names)} tissue classes need {len(self.names) - 1} HU edges, "
                              f"got {len(self.edges)}")
        if any(b <= a for a, b in zip(self.edges, self.edges[1:], strict=False)):
            raise MetricError(f"tissue HU edges must increase, got {self.edges}")

    def index(self, name: str) -> int:
        if name not in self.names:
            raise MetricError(f"unknown tissue class {name!r}; known: {', '.join(self.names)}")
        return self.names.index(name)


DEFAULT_BANDS = TissueBands(("air", "lung", "fat", "soft_tissue", "bone"), (-950.0, -190.0, -29.0, 300.0))


def tissue_classes(ct: np.ndarray, bands: TissueBands = DEFAULT_BANDS) -> np.ndarray:
    """Class index (0 .. n-1, in ``bands.names`` order) of every value of ``ct`` (HU)."""
    values = np.asarray(ct)
    if values.size and not np.all(np.isfinite(values)):
        raise MetricError("the CT holds NaN or infinite values; tissue classes need finite HU")
    return np.digitize(values, bands.edges, right=False).astype(np.int8)


def _inside(real: np.ndarray, synthetic: np.ndarray, body: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    real, synthetic = np.asarray(real), np.asarray(synthetic)
    if real.shape != synthetic.shape:
        raise MetricError(f"real CT {real.shape} and synthetic CT {synthetic.shape} differ in shape")
    if body is None:
        return real.ravel(), synthetic.ravel()
    body = np.asarray(body, bool)
    if body.shape != real.shape:
        raise MetricError(f"body mask {body.shape} and CT {real.shape} differ in shape")
    return real[body], synthetic[body]


def tissue_dice(real: np.ndarray, synthetic: np.ndarray, body: np.ndarray | None = None,
                bands: TissueBands = DEFAULT_BANDS) -> dict[str, float]:
    """Dice of each tissue class between the real and the synthetic CT inside ``body`` (None: every voxel);
    NaN for a class absent from both."""
    r, s = _inside(real, synthetic, body)
    cr, cs = tissue_classes(r, bands), tissue_classes(s, bands)
    n = len(bands.names)
    count_r = np.bincount(cr, minlength=n)
    count_s = np.bincount(cs, minlength=n)
    both = np.bincount(cr[cr == cs], minlength=n)
    out = {}
    for i, name in enumerate(bands.names):
        total = int(count_r[i] + count_s[i])
        out[name] = 2.0 * int(both[i]) / total if total else float("nan")
    return out


def bone_mae(real: np.ndarray, synthetic: np.ndarray, body: np.ndarray | None = None,
             bands: TissueBands = DEFAULT_BANDS, bone: str = "bone") -> float:
    """Mean absolute HU error over the voxels (inside ``body``) that are bone in either CT; NaN when neither
    has bone."""
    r, s = _inside(real, synthetic, body)
    i = bands.index(bone)
    sel = (tissue_classes(r, bands) == i) | (tissue_classes(s, bands) == i)
    if not sel.any():
        return float("nan")
    return float(np.mean(np.abs(r[sel].astype(np.float64) - s[sel].astype(np.float64))))


def mean_dice(per_class: dict[str, float], classes: Sequence[str] | None = None) -> float:
    """Mean of the defined per-class Dice values (NaN when none is defined)."""
    vals = [v for k, v in per_class.items() if (classes is None or k in classes) and not np.isnan(v)]
    return float(np.mean(vals)) if vals else float("nan")

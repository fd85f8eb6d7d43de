"""BraTS 2023 lesion-wise Dice and HD95 (and the legacy whole-volume ones) of a tumour segmentation.

The rules, as the official evaluator applies them (``rachitsaluja/BraTS-2023-Metrics`` ``metrics.py`` at
commit ``43c905242b2eecf421d4ab2da7af8ece9777d322``; written here from reading it, checked against its
output in ``tests/official/frozen/brats2023_lesionwise.json``), for each region (WT = labels 1, 2, 3;
TC = 1, 3; ET = 3; any other label is background):

1. Ground-truth lesions: 26-connected components of the region, MERGED when they fall in one 26-connected
   component of the region dilated ``dilation`` times by the 18-neighbourhood (GLI 3, metastases 1). A
   merged lesion may be several pieces.
2. Predicted lesions: 26-connected components of the predicted region. A predicted component is matched
   to every ground-truth lesion whose DILATED extent (the lesion dilated as in 1) it touches, so "overlap"
   means "within ``dilation`` voxels"; one component may serve several lesions.
3. Per ground-truth lesion: Dice and area-weighted HD95 (:func:`~.surface.surfel_hd95`, mm, with the
   voxel spacing) between the lesion and the union of its matched components (whole components, also
   their parts outside the lesion); no match: Dice 0, HD95 374.
4. Lesions whose volume (voxel count times the voxel volume, mm^3) is at most ``min_volume`` (GLI 50,
   metastases 2) leave the score, and so do their matches: a predicted component that touches only a
   dropped lesion is NOT a false positive.
5. False positives: predicted components matched to no lesion (kept or dropped). The score is
   ``sum(Dice of kept lesions) / (kept lesions + false positives)`` and
   ``(sum(HD95 of kept lesions) + 374 * false positives) / (kept lesions + false positives)``.
6. Nothing left to count (no kept lesion, no false positive): Dice 1, HD95 0 - also when the ground
   truth has only dropped lesions and the prediction anything that touches them.
7. Legacy: whole-region Dice and HD95 (area-weighted, mm); both empty 1 / 0; one empty: Dice 0, HD95 374.

Quirks of the official code kept as they are: the volume threshold is in mm^3 (at 1 mm isotropic, as
BraTS is distributed, that is voxels) with the spacing the official code reads from the PREDICTION's
header; the matching dilation and the merge dilation use the 18-neighbourhood while components use the
26-neighbourhood; the official ``dilation=0`` would dilate until nothing changes (scipy's
``iterations=0``), here 0 means no dilation. Not reproduced: the official sensitivity / specificity and
volume columns.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy import ndimage

from cmsbench.benchmark.downstream._inputs import Spacing, as_label_map, bounding_box, check_pair
from cmsbench.benchmark.downstream.surface import surfel_hd95
from cmsbench.errors import MetricError

#: The HD95 (mm) of a missed lesion or a false positive: the diagonal of the BraTS grid, rounded up.
MISS_HD95 = 374.0

#: The BraTS 2023 regions: name -> labels that form it.
REGIONS: dict[str, tuple[int, ...]] = {"WT": (1, 2, 3), "TC": (1, 3), "ET": (3,)}


@dataclass(frozen=True)
class LesionwiseRules:
    """The parameters that differ between the BraTS 2023 sub-challenges."""

    dilation: int = 3
    min_volume: float = 50.0  # mm^3; lesions of at most this volume are dropped
    miss_hd95: float = MISS_HD95

    def __post_init__(self) -> None:
        if int(self.dilation) != self.dilation or self.dilation < 0:
            raise MetricError(f"lesion-wise dilation must be a whole number >= 0, got {self.dilation!r}")


#: The official parameter sets (``get_LesionWiseResults``): glioma, sub-Saharan Africa, meningioma,
#: paediatric, metastases.
RULES: dict[str, LesionwiseRules] = {
    "gli": LesionwiseRules(3, 50.0),
    "ssa": LesionwiseRules(3, 50.0),
    "men": LesionwiseRules(1, 50.0),
    "ped": LesionwiseRules(3, 50.0),
    "met": LesionwiseRules(1, 2.0),
}

_CC = np.ones((3, 3, 3), bool)  # 26-connectivity
_DILATE = ndimage.generate_binary_structure(3, 2)  # 18-neighbourhood, as the official dilation


@dataclass(frozen=True)
class Lesion:
    """One (merged) ground-truth lesion: its volume, the predicted components matched to it, its scores."""

    index: int
    volume: float  # mm^3
    matched: tuple[int, ...]
    dice: float
    hd95: float  # mm; MISS_HD95 when missed
    kept: bool


@dataclass(frozen=True)
class RegionScore:
    """Lesion-wise and legacy scores of one region, with the counts behind them."""

    region: str
    lesionwise_dice: float
    lesionwise_hd95: float
    legacy_dice: float
    legacy_hd95: float
    n_tp: int  # kept lesions matched by some component
    n_fn: int  # kept lesions matched by none
    n_fp: int  # predicted components matched to no lesion
    lesions: tuple[Lesion, ...] = field(default=())

    def values(self) -> dict[str, float]:
        """The four scores under the names a record stores (``lesionwise_dice_WT``, ...)."""
        r = self.region
        return {f"lesionwise_dice_{r}": self.lesionwise_dice, f"lesionwise_hd95_{r}": self.lesionwise_hd95,
                f"legacy_dice_{r}": self.legacy_dice, f"legacy_hd95_{r}": self.legacy_hd95}


def _dice(a: np.ndarray, b: np.ndarray) -> float:
    total = int(a.sum()) + int(b.sum())
    return 2.0 * int(np.logical_and(a, b).sum()) / total if total else float("nan")


def _dilate(mask: np.ndarray, n: int) -> np.ndarray:
    return ndimage.binary_dilation(mask, structure=_DILATE, iterations=n) if n > 0 else mask.copy()


def _union_box(boxes: Sequence[tuple[slice, ...]]) -> tuple[slice, ...]:
    return tuple(slice(min(b[a].start for b in boxes), max(b[a].stop for b in boxes)) for a in range(3))


def _grow(box: tuple[slice, ...], pad: int, shape: tuple[int, ...]) -> tuple[slice, ...]:
    return tuple(slice(max(s.start - pad, 0), min(s.stop + pad, n)) for s, n in zip(box, shape, strict=True))


def _legacy(gt: np.ndarray, pred: np.ndarray, spacing: tuple[float, ...], miss: float) -> tuple[float, float]:
    if not gt.any() and not pred.any():
        return 1.0, 0.0
    hd = surfel_hd95(gt, pred, spacing)
    return _dice(gt, pred), (miss if np.isinf(hd) else hd)


def lesionwise_region(gt: np.ndarray, pred: np.ndarray, spacing: Spacing | None = None,
                      rules: LesionwiseRules = RULES["gli"], region: str = "") -> RegionScore:
    """Lesion-wise and legacy Dice / HD95 of one binary region (see the module docstring for the rules).

    ``gt``, ``pred``: boolean 3-D masks of one shape; ``spacing``: voxel size in mm (default 1 mm).
    """
    sp = check_pair(gt, pred, spacing, what=f"region {region!r} masks" if region else "masks")
    gt, pred = np.asarray(gt, bool), np.asarray(pred, bool)
    legacy_dice, legacy_hd95 = _legacy(gt, pred, sp, rules.miss_hd95)
    voxel_volume = float(np.prod(sp))
    dil = int(rules.dilation)

    # work inside the union's bounding box grown by the dilation (the dilations fit in it)
    box = bounding_box(gt | pred, pad=dil + 1)
    if box is None:
        return RegionScore(region, 1.0, 0.0, legacy_dice, legacy_hd95, 0, 0, 0)
    g, p = gt[box], pred[box]
    merged = np.zeros(g.shape, np.int32)
    gbox = bounding_box(g, pad=dil + 1)
    if gbox is not None:  # the merge needs only the ground truth's neighbourhood
        merged_ids, _ = ndimage.label(_dilate(g[gbox], dil), structure=_CC)
        merged[gbox] = np.where(g[gbox], merged_ids, 0)
    pred_cc, n_pred = ndimage.label(p, structure=_CC)
    pred_boxes = ndimage.find_objects(pred_cc)

    lesions: list[Lesion] = []
    matched_any: set[int] = set()
    for index, lesion_box in enumerate(ndimage.find_objects(merged), start=1):
        if lesion_box is None:
            continue
        # components touching the lesion dilated as for the merge
        near = _grow(lesion_box, dil, g.shape)
        extent = _dilate(merged[near] == index, dil)
        ids = tuple(int(i) for i in np.unique(pred_cc[near][extent]) if i)
        matched_any.update(ids)
        evaluated = _union_box([lesion_box, *(pred_boxes[i - 1] for i in ids)])
        lesion = merged[evaluated] == index
        volume = int(lesion.sum()) * voxel_volume
        if ids:
            matched = np.isin(pred_cc[evaluated], ids)
            dice, hd95 = _dice(lesion, matched), surfel_hd95(lesion, matched, sp)
        else:
            dice, hd95 = 0.0, float("inf")
        lesions.append(Lesion(index, volume, ids, dice, rules.miss_hd95 if np.isinf(hd95) else hd95,
                              kept=volume > rules.min_volume))

    kept = [les for les in lesions if les.kept]
    n_fp = n_pred - len(matched_any)
    denominator = len(kept) + n_fp
    if denominator == 0:
        lw_dice, lw_hd95 = 1.0, 0.0
    else:
        lw_dice = float(np.sum([les.dice for les in kept])) / denominator
        lw_hd95 = (float(np.sum([les.hd95 for les in kept])) + n_fp * rules.miss_hd95) / denominator
    n_tp = sum(1 for les in kept if les.matched)
    return RegionScore(region, lw_dice, lw_hd95, legacy_dice, legacy_hd95, n_tp, len(kept) - n_tp, n_fp,
                       tuple(lesions))


def lesionwise_scores(gt_labels: np.ndarray, pred_labels: np.ndarray, spacing: Spacing | None = None,
                      rules: LesionwiseRules | str = "gli",
                      regions: Mapping[str, Sequence[int]] = REGIONS) -> dict[str, RegionScore]:
    """BraTS 2023 lesion-wise and legacy scores of a label map against the ground truth, per region.

    ``rules``: a :class:`LesionwiseRules` or the name of an official set (``gli``, ``ssa``, ``men``,
    ``ped``, ``met``). ``spacing``: voxel size in mm (the official code takes it from the prediction's
    NIfTI header).
    """
    if isinstance(rules, str):
        if rules not in RULES:
            raise MetricError(f"unknown lesion-wise rule set {rules!r}; known: {', '.join(RULES)}")
        rules = RULES[rules]
    gt, pred = as_label_map(gt_labels, "ground-truth"), as_label_map(pred_labels, "predicted")
    check_pair(gt, pred, spacing, what="label maps")
    return {name: lesionwise_region(np.isin(gt, labels), np.isin(pred, labels), spacing, rules, name)
            for name, labels in regions.items()}

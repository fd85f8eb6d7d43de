"""Per-label segmentation scores as two challenges compute them (plain functions on label maps).

- :func:`brasyn2025_scores`: the BraSyn 2025 tutorial (``hongweilibran/BraSyn_tutorial``
  ``get_segmentation_metric.py`` at ``ab4395084eb160a220e352ef7901551745a46bbe``): for each label 1, 2, 3
  (NCR, ED, ET; not the WT/TC/ET regions) Dice and medpy's ``hd95`` WITHOUT voxel spacing (voxels;
  :func:`~.surface.pooled_hd95`). Both empty: Dice 1, HD95 0; exactly one empty: Dice 0, HD95 undefined
  (NaN; the script writes "NaN"). The script rounds to 4 decimals when writing its CSV; here nothing is
  rounded.
- :func:`synthrad2025_seg_scores`: SynthRAD2025's segmentation score (``SynthRAD2025/evaluation``
  ``segmentation_metrics.py`` at ``17cac47b6288fcb66c5818c9d50eb9534d613fa2``): for each label of a list
  (the official list depends on the anatomy; default here: every non-zero label of the ground truth) that
  is present in the ground truth, the binary masks ``gt == c`` and ``pred == c`` as ONE channel into
  MONAI's ``DiceMetric(include_background=True)`` and ``HausdorffDistanceMetric(include_background=True,
  percentile=95)`` with the ground truth's spacing (:func:`~.surface.directed_max_hd95`), then the mean over
  those labels. ``include_background=True`` only keeps MONAI from dropping that single channel: label 0 is
  not scored. A label missing from the prediction has Dice 0 and an HD95 of NaN (MONAI's distances are all
  infinite and ``torch.quantile`` of infinities is NaN), which MONAI's mean then LEAVES OUT: the HD95 is the
  mean over the labels the prediction has, and 0 when it has none of them. No listed label in the ground
  truth: both scores 0 (the official fallback). MONAI computes in float32 (values agree to ~1e-7).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from cmsbench.benchmark.downstream._inputs import Spacing, as_label_map, check_pair
from cmsbench.benchmark.downstream.surface import directed_max_hd95, pooled_hd95

BRASYN_LABELS = (1, 2, 3)


def dice(gt: np.ndarray, pred: np.ndarray) -> float:
    """Dice of two boolean masks; NaN when both are empty."""
    total = int(gt.sum()) + int(pred.sum())
    return 2.0 * int(np.logical_and(gt, pred).sum()) / total if total else float("nan")


def brasyn2025_scores(gt_labels: np.ndarray, pred_labels: np.ndarray,
                      labels: Sequence[int] = BRASYN_LABELS) -> dict[str, float]:
    """``{"dice_label1": ..., "hd95_label1": ..., ...}`` as the BraSyn 2025 tutorial computes them (voxels)."""
    gt, pred = as_label_map(gt_labels, "ground-truth"), as_label_map(pred_labels, "predicted")
    check_pair(gt, pred, None, what="label maps")
    out: dict[str, float] = {}
    for label in labels:
        g, p = gt == label, pred == label
        if not g.any() and not p.any():
            d, h = 1.0, 0.0
        elif not g.any() or not p.any():
            d, h = 0.0, float("nan")
        else:
            d, h = dice(g, p), pooled_hd95(p, g, spacing=None)
        out[f"dice_label{label}"], out[f"hd95_label{label}"] = d, h
    return out


@dataclass(frozen=True)
class SynthradSegScore:
    """SynthRAD2025's segmentation score of one case and the per-label values behind it."""

    dice: float
    hd95: float  # mm; mean over the labels the prediction has (0 when none)
    labels: tuple[int, ...]  # the labels scored (present in the ground truth)
    per_label_dice: tuple[float, ...]
    per_label_hd95: tuple[float, ...]  # NaN where the prediction lacks the label


def synthrad2025_seg_scores(gt_labels: np.ndarray, pred_labels: np.ndarray, spacing: Spacing | None,
                            labels: Sequence[int] | None = None) -> SynthradSegScore:
    """Mean Dice and mean HD95 (mm, ground-truth ``spacing``) over the listed labels present in the ground truth."""
    gt, pred = as_label_map(gt_labels, "ground-truth"), as_label_map(pred_labels, "predicted")
    sp = check_pair(gt, pred, spacing, what="label maps")
    wanted = [int(v) for v in np.unique(gt) if v != 0] if labels is None else [int(v) for v in labels]
    present = tuple(c for c in wanted if (gt == c).any())
    if not present:
        return SynthradSegScore(0.0, 0.0, (), (), ())
    dices, hds = [], []
    for c in present:
        g, p = gt == c, pred == c
        dices.append(dice(g, p))
        hds.append(directed_max_hd95(p, g, sp) if p.any() else float("nan"))
    finite = [h for h in hds if not np.isnan(h)]
    hd95 = float(np.mean(finite)) if finite else 0.0
    return SynthradSegScore(float(np.mean(dices)), hd95, present, tuple(dices), tuple(hds))

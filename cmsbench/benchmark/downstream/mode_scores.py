"""The downstream halves of the segmentation compatibility modes (``brasyn2023``, ``brasyn2025``,
``synthrad2025_seg``): a :class:`~.scoring.SegmentationResult` in, the challenge's numbers out.

- ``brasyn2023`` (and 2024): BraTS 2023 GLI lesion-wise Dice and HD95 (mm) on WT / TC / ET of the
  segmentation with the synthetic sequence (3 real + 1 synthetic), against the case's labels; beside it
  (not ranked) the real images' scores and the drop.
- ``brasyn2025``: the 2025 tutorial's Dice and HD95 per label 1 / 2 / 3 (NCR, ED, ET; HD95 in voxels),
  regions ``label1`` / ``label2`` / ``label3``.
- ``synthrad2025_seg``: SynthRAD2025's segmentation score of the synthetic image against the segmentation of
  the REAL image (consistency; the challenge's TotalSegmentator reference): mean Dice and HD95 (mm, the
  ground truth's spacing) over the labels present in the reference, region ``global``.
"""

from __future__ import annotations

import numpy as np

from cmsbench.benchmark.compat import ModeResult
from cmsbench.benchmark.downstream.conventions import brasyn2025_scores, synthrad2025_seg_scores
from cmsbench.benchmark.downstream.lesionwise import RULES, lesionwise_region
from cmsbench.benchmark.downstream.scoring import SEGMENTATION_REGIONS, SegmentationResult
from cmsbench.benchmark.downstream.segmenters import SegmenterError

_NAN = float("nan")


def _undefined(values: dict, reasons: dict, region: str, names: tuple[str, ...], reason: str) -> None:
    for n in names:
        values.setdefault(region, {})[n] = None
        reasons[f"{region}/{n}"] = reason


def brasyn2023(seg: SegmentationResult) -> ModeResult:
    """Lesion-wise WT/TC/ET of the synthetic-input segmentation (with the real one and the drop beside it)."""
    values: dict[str, dict[str, float | None]] = {}
    reasons: dict[str, str] = {}
    for region, labels in SEGMENTATION_REGIONS.items():
        scores = {}
        for which in ("synthetic", "real"):
            try:
                truth, pred = seg.reference_labels(), seg.labels(which)
            except SegmenterError as exc:
                names = ("lesionwise_dice", "lesionwise_hd95") if which == "synthetic" else (
                    "lesionwise_dice_real", "lesionwise_hd95_real")
                _undefined(values, reasons, region, (*names, "dice_drop"), f"no segmentation: {exc}")
                continue
            scores[which] = lesionwise_region(np.isin(truth, labels), np.isin(pred, labels), seg.spacing,
                                              RULES["gli"], region.upper())
        out = values.setdefault(region, {})
        if "synthetic" in scores:
            out["lesionwise_dice"] = scores["synthetic"].lesionwise_dice
            out["lesionwise_hd95"] = scores["synthetic"].lesionwise_hd95
        if "real" in scores:
            out["lesionwise_dice_real"] = scores["real"].lesionwise_dice
            out["lesionwise_hd95_real"] = scores["real"].lesionwise_hd95
        if len(scores) == 2:
            out["dice_drop"] = scores["real"].lesionwise_dice - scores["synthetic"].lesionwise_dice
    return ModeResult(values, {"downstream": "BraSyn 2023/2024: BraTS 2023 GLI lesion-wise Dice / HD95 (mm) on WT, "
                               "TC, ET of the segmentation of 3 real + 1 synthetic sequence", "reference": seg.reference},
                      reasons)


def brasyn2025(seg: SegmentationResult) -> ModeResult:
    """Dice and HD95 (voxels) per label 1/2/3 of the synthetic-input segmentation, as the 2025 tutorial."""
    values: dict[str, dict[str, float | None]] = {}
    reasons: dict[str, str] = {}
    try:
        scores = brasyn2025_scores(seg.reference_labels(), seg.labels("synthetic"))
    except SegmenterError as exc:
        for label in (1, 2, 3):
            _undefined(values, reasons, f"label{label}", ("dice", "hd95"), f"no segmentation: {exc}")
    else:
        for label in (1, 2, 3):
            d, h = scores[f"dice_label{label}"], scores[f"hd95_label{label}"]
            values[f"label{label}"] = {"dice": d, "hd95": None if np.isnan(h) else h}
            if np.isnan(h):
                reasons[f"label{label}/hd95"] = "exactly one of the two label maps has the label (the tutorial writes NaN)"
    return ModeResult(values, {"downstream": "BraSyn 2025 tutorial: Dice and medpy hd95 without spacing (voxels) per "
                               "label 1 NCR, 2 ED, 3 ET", "reference": seg.reference}, reasons)


def synthrad2025_seg(seg: SegmentationResult) -> ModeResult:
    """SynthRAD2025's mean Dice / HD95 of the synthetic image's segmentation against the real image's."""
    values: dict[str, dict[str, float | None]] = {"global": {}}
    reasons: dict[str, str] = {}
    try:
        score = synthrad2025_seg_scores(seg.labels("real"), seg.labels("synthetic"), seg.spacing)
    except SegmenterError as exc:
        _undefined(values, reasons, "global", ("seg_dice", "seg_hd95"), f"no segmentation: {exc}")
    else:
        values["global"] = {"seg_dice": score.dice, "seg_hd95": score.hd95}
    return ModeResult(values, {"downstream": "SynthRAD2025 segmentation_metrics: Dice over the labels present in the "
                               "real image's segmentation (MONAI include_background=True, one channel per label), "
                               "HD95 (mm, ground-truth spacing) mean over the labels the synthetic one has",
                               "reference": "real"}, reasons)

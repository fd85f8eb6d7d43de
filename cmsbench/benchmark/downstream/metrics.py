"""The downstream metrics, as registered metrics (``cmsbench.metrics`` entry points), and the segmentation
regions ``wt``, ``tc``, ``et`` (``cmsbench.regions``).

Segmentation metrics (``--downstream``; need ``ctx.segmentation``, scored in ``wt`` / ``tc`` / ``et``): the
BraTS 2023 GLI lesion-wise Dice and HD95 (:mod:`.lesionwise`) of the segmentation of the images with the
synthetic target (``seg_dice``, ``seg_hd95``) and of the real images (``seg_dice_real``,
``seg_hd95_real``) against the reference labels, their paired differences ``seg_dice_drop`` =
Dice(real) - Dice(synthetic) and ``seg_hd95_increase`` = HD95(synthetic) - HD95(real), and the same for the
legacy whole-region scores (``seg_legacy_*``). A perfect synthesis segments exactly like the real images:
its drop is exactly 0.

For CT tasks (``mr_ct``): the HU-band tissue consistency of :mod:`.tissue` inside the scoring region (use
them in ``body``): ``tissue_dice_<class>`` for air, lung, fat, soft tissue and bone, ``tissue_dice_mean``
(mean of the defined classes) and ``bone_mae`` (HU, bone of either CT). ``mr_ct`` lists them in its
``downstream_metrics``: ``--downstream`` scores them (no segmenter, no weights).
"""

from __future__ import annotations

import numpy as np

from cmsbench.benchmark.downstream import tissue
from cmsbench.benchmark.downstream.lesionwise import RULES, lesionwise_region
from cmsbench.benchmark.downstream.scoring import SEGMENTATION_REGIONS
from cmsbench.benchmark.downstream.segmenters import SegmenterError
from cmsbench.benchmark.metrics.api import CaseContext, Metric, MetricUndefined, Needs, Region
from cmsbench.errors import MetricError

_BANDS = tissue.DEFAULT_BANDS
_EDGES = ", ".join(f"{n} < {e:g}" for n, e in zip(_BANDS.names, _BANDS.edges, strict=False)) + f" <= {_BANDS.names[-1]}"


def _hu_voxels(ctx: CaseContext, region: str) -> tuple[np.ndarray, np.ndarray]:
    units = getattr(ctx.task, "units", "")
    if units != "HU":
        raise MetricError(f"task {ctx.task.name!r}: tissue-consistency metrics need CT in HU, the task's target "
                          f"is in {units!r}; remove them from the task's metrics")
    return ctx.voxels(region)


def _per_class(ctx: CaseContext, region: str) -> dict[str, float]:
    key = ("tissue_dice", region)
    if key not in ctx.cache:
        t, p = _hu_voxels(ctx, region)
        if t.size == 0:
            raise MetricUndefined(f"region {region!r} is empty")
        ctx.cache[key] = tissue.tissue_dice(t, p, None, _BANDS)
    return ctx.cache[key]


def _class_dice(name: str):
    def compute(ctx: CaseContext, region: str) -> float:
        value = _per_class(ctx, region)[name]
        if np.isnan(value):
            raise MetricUndefined(f"no {name.replace('_', ' ')} voxel in either CT in region {region!r}")
        return value

    return compute


def _mean_dice(ctx: CaseContext, region: str) -> float:
    value = tissue.mean_dice(_per_class(ctx, region))
    if np.isnan(value):
        raise MetricUndefined(f"region {region!r} has no voxel of any tissue class")
    return value


def _bone_mae(ctx: CaseContext, region: str) -> float:
    t, p = _hu_voxels(ctx, region)
    value = tissue.bone_mae(t, p, None, _BANDS)
    if np.isnan(value):
        raise MetricUndefined(f"no bone (>= {_BANDS.edges[-1]:g} HU) in either CT in region {region!r}")
    return value


def _ref_class_dice(name: str):
    """Plain numpy reference on a region's voxels (for tests)."""
    lo = dict(zip(_BANDS.names, (-np.inf, *_BANDS.edges), strict=True))[name]
    hi = dict(zip(_BANDS.names, (*_BANDS.edges, np.inf), strict=True))[name]

    def reference(t, p, L=None) -> float:
        a, b = (t >= lo) & (t < hi), (p >= lo) & (p < hi)
        return float(2 * np.sum(a & b) / (np.sum(a) + np.sum(b)))

    return reference


_CONV = f"HU bands {_EDGES} (tissue.DEFAULT_BANDS, sources in cmsbench.benchmark.downstream.tissue), region voxels"


def _dice_metric(name: str) -> Metric:
    return Metric(f"tissue_dice_{name}", "higher", f"Dice of the {name.replace('_', ' ')} HU band, real vs synthetic CT",
                  f"{_CONV}; undefined when neither CT has the class", _class_dice(name),
                  reference=_ref_class_dice(name))


TISSUE_DICE_AIR = _dice_metric("air")
TISSUE_DICE_LUNG = _dice_metric("lung")
TISSUE_DICE_FAT = _dice_metric("fat")
TISSUE_DICE_SOFT_TISSUE = _dice_metric("soft_tissue")
TISSUE_DICE_BONE = _dice_metric("bone")
TISSUE_DICE_MEAN = Metric("tissue_dice_mean", "higher", "mean Dice of the HU tissue bands, real vs synthetic CT",
                          f"{_CONV}; mean over the classes present in either CT", _mean_dice)
BONE_MAE = Metric("bone_mae", "lower", "mean absolute HU error in the bone of either CT",
                  f"|real - synthetic| (HU) over region voxels that are bone (>= {_BANDS.edges[-1]:g} HU) in the real OR "
                  f"the synthetic CT", _bone_mae)

# ----------------------------------------------------------------------- segmentation metrics
_SEG_NEEDS = Needs(mask=True, segmentation=True)
_RULES = RULES["gli"]
_SEG_CONV = ("BraTS 2023 GLI lesion-wise rules (components merged after a 3-voxel 18-neighbourhood dilation, "
             "lesions <= 50 mm^3 dropped, false positives counted, HD95 374 mm for a miss, both empty 1 / 0; "
             "rachitsaluja/BraTS-2023-Metrics @43c9052), regions WT 1+2+3, TC 1+3, ET 3, mm with the target's "
             "spacing; the segmenter is recorded in the run (scoring.downstream)")
_LEGACY_CONV = "whole-region Dice / HD95 (mm): both empty 1 / 0, one empty 0 / 374"


def _region_score(ctx: CaseContext, region: str, which: str):
    seg = ctx.segmentation
    if seg is None:
        raise MetricUndefined("downstream scoring is off (add --downstream)")
    if region not in SEGMENTATION_REGIONS:
        raise MetricUndefined(f"segmentation metrics are scored in regions {', '.join(SEGMENTATION_REGIONS)}")
    key = ("segmentation", which, region)
    if key not in ctx.cache:
        try:
            truth, pred = seg.reference_labels(), seg.labels(which)
        except SegmenterError as exc:
            ctx.cache[key] = exc
        else:
            labels = SEGMENTATION_REGIONS[region]
            ctx.cache[key] = lesionwise_region(np.isin(truth, labels), np.isin(pred, labels), seg.spacing, _RULES,
                                               region.upper())
    out = ctx.cache[key]
    if isinstance(out, Exception):
        raise MetricUndefined(f"no segmentation: {out}")
    return out


def _seg_value(which: str, attr: str):
    def compute(ctx: CaseContext, region: str) -> float:
        return float(getattr(_region_score(ctx, region, which), attr))

    return compute


def _seg_difference(attr: str, real_minus_synthetic: bool):
    def compute(ctx: CaseContext, region: str) -> float:
        real = float(getattr(_region_score(ctx, region, "real"), attr))
        syn = float(getattr(_region_score(ctx, region, "synthetic"), attr))
        return real - syn if real_minus_synthetic else syn - real

    return compute


def _seg_metric(name: str, direction: str | None, summary: str, convention: str, compute) -> Metric:
    return Metric(name, direction, summary, convention, compute, needs=_SEG_NEEDS)  # type: ignore[arg-type]


SEG_DICE = _seg_metric("seg_dice", "higher", "lesion-wise Dice of the segmentation with the synthetic image",
                       _SEG_CONV, _seg_value("synthetic", "lesionwise_dice"))
SEG_DICE_REAL = _seg_metric("seg_dice_real", None, "lesion-wise Dice of the segmentation of the real images "
                            "(the ceiling; not ranked)", _SEG_CONV, _seg_value("real", "lesionwise_dice"))
SEG_DICE_DROP = _seg_metric("seg_dice_drop", "lower", "Dice(real) - Dice(synthetic), lesion-wise (0: the "
                            "synthetic image changes nothing)", _SEG_CONV, _seg_difference("lesionwise_dice", True))
SEG_HD95 = _seg_metric("seg_hd95", "lower", "lesion-wise HD95 (mm) of the segmentation with the synthetic image",
                       _SEG_CONV, _seg_value("synthetic", "lesionwise_hd95"))
SEG_HD95_REAL = _seg_metric("seg_hd95_real", None, "lesion-wise HD95 (mm) of the segmentation of the real images "
                            "(not ranked)", _SEG_CONV, _seg_value("real", "lesionwise_hd95"))
SEG_HD95_INCREASE = _seg_metric("seg_hd95_increase", "lower", "HD95(synthetic) - HD95(real), lesion-wise (mm)",
                                _SEG_CONV, _seg_difference("lesionwise_hd95", False))
SEG_LEGACY_DICE = _seg_metric("seg_legacy_dice", "higher", "whole-region Dice of the segmentation with the "
                              "synthetic image", _LEGACY_CONV, _seg_value("synthetic", "legacy_dice"))
SEG_LEGACY_DICE_REAL = _seg_metric("seg_legacy_dice_real", None, "whole-region Dice of the segmentation of the "
                                   "real images (not ranked)", _LEGACY_CONV, _seg_value("real", "legacy_dice"))
SEG_LEGACY_DICE_DROP = _seg_metric("seg_legacy_dice_drop", "lower", "whole-region Dice(real) - Dice(synthetic)",
                                   _LEGACY_CONV, _seg_difference("legacy_dice", True))
SEG_LEGACY_HD95 = _seg_metric("seg_legacy_hd95", "lower", "whole-region HD95 (mm) of the segmentation with the "
                              "synthetic image", _LEGACY_CONV, _seg_value("synthetic", "legacy_hd95"))
SEG_LEGACY_HD95_REAL = _seg_metric("seg_legacy_hd95_real", None, "whole-region HD95 (mm) of the segmentation of "
                                   "the real images (not ranked)", _LEGACY_CONV, _seg_value("real", "legacy_hd95"))


def _label_region(labels: tuple[int, ...]):
    """A region from the case's BraTS masks (the ground truth): union of the sub-regions of ``labels``."""
    parts = {1: "necrotic", 2: "edema", 3: "enhancing"}

    def build(target: np.ndarray, masks: dict, *, case_id: str = "", cache: dict | None = None) -> np.ndarray:
        out = np.zeros(np.shape(target), bool)
        for label in labels:
            mask = masks.get(parts[label])
            if mask is None:
                raise MetricError(f"case {case_id!r}: region needs the {parts[label]!r} mask (BraTS labels); the "
                                  f"task has none - segmentation regions apply to tumour tasks only")
            out |= np.asarray(mask, bool)
        return out

    return build


WT = Region("wt", "whole tumour (BraTS labels 1 + 2 + 3 of the ground truth)", _label_region((1, 2, 3)), lesion=True)
TC = Region("tc", "tumour core (BraTS labels 1 + 3)", _label_region((1, 3)), lesion=True)
ET = Region("et", "enhancing tumour (BraTS label 3; 4 in BraTS 2021)", _label_region((3,)), lesion=True)

#: name -> "module:attr", the entry-point lines of these metrics
ENTRY_POINTS = {m.name: f"{__name__}:{attr}" for attr, m in list(globals().items()) if isinstance(m, Metric)}
#: name -> "module:attr" of the segmentation regions
REGION_ENTRY_POINTS = {r.name: f"{__name__}:{attr}" for attr, r in list(globals().items()) if isinstance(r, Region)}

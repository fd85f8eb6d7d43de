"""The downstream metrics that need no segmenter, as registered metrics (``cmsbench.metrics`` entry points).

For CT tasks (``mr_ct``): the HU-band tissue consistency of :mod:`.tissue` inside the scoring region (use
them in ``body``): ``tissue_dice_<class>`` for air, lung, fat, soft tissue and bone, ``tissue_dice_mean``
(mean of the defined classes) and ``bone_mae`` (HU, bone of either CT). None is in a task's metric list
yet; a task enables them by naming them in ``metrics`` (e.g. ``metrics=("mae", "psnr", "ssim",
"tissue_dice_mean", "bone_mae")``).
"""

from __future__ import annotations

import numpy as np

from cmsbench.benchmark.downstream import tissue
from cmsbench.benchmark.metrics.api import CaseContext, Metric, MetricUndefined
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

#: name -> "module:attr", the entry-point lines of these metrics
ENTRY_POINTS = {m.name: f"{__name__}:{attr}" for attr, m in list(globals().items()) if isinstance(m, Metric)}

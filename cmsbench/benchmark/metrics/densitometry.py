"""Lung densitometry (``ct_kernel``): RA950, the 15th percentile of lung HU and the mean lung density, and
the ``lung`` region they are computed in, derived from the ground truth only.

- ``lung`` region: :func:`lung_mask` of the ground truth inside the case's ``body`` mask.
- RA950 = 100 x the fraction of lung voxels below -950 HU (% of the lung volume); Perc15 = the 15th
  percentile of the lung voxels' HU (numpy's linear interpolation); MLD = their mean HU.
- ``*_error`` = quantity(prediction) - quantity(ground truth) in the same lung voxels (percentage points for
  RA950, HU for Perc15 and MLD); signed, so not ranked (the leaderboard shows their Bland-Altman bias and
  limits of agreement); ``*_abs_error`` its absolute value (ranked, lower is better).

Every densitometry metric is computed in the ``lung`` region only (``Needs.regions``).
"""

from __future__ import annotations

import numpy as np

from cmsbench.benchmark.metrics.api import CaseContext, Metric, MetricUndefined, Needs, Region

#: Emphysema threshold of RA950 (HU).
RA950_HU = -950.0
#: The percentile of Perc15.
PERCENTILE = 15.0
#: Lung candidates: ground truth below this (HU) inside the body.
LUNG_THRESHOLD_HU = -400.0
#: Components smaller than this fraction of the largest candidate component are dropped (airways, noise).
MIN_COMPONENT_FRACTION = 0.05
#: In-plane closing radius (voxels) that takes vessels and the lung border into the mask.
CLOSING_RADIUS = 2
QUANTITIES = ("ra950", "perc15", "mld")


def _disk(radius: int) -> np.ndarray:
    r = np.arange(-radius, radius + 1)
    xx, yy = np.meshgrid(r, r, indexing="ij")
    return ((xx**2 + yy**2) <= radius * radius)[:, :, None]


def lung_mask(target: np.ndarray, body: np.ndarray) -> np.ndarray:
    """The lungs of a CT in HU: voxels below :data:`LUNG_THRESHOLD_HU` inside ``body`` (which excludes the
    outside air), 26-connected components of at least :data:`MIN_COMPONENT_FRACTION` of the largest, closed
    in-plane by a disk of radius :data:`CLOSING_RADIUS` and with holes (vessels) filled slice by slice, kept
    inside ``body``."""
    from scipy import ndimage

    body = np.asarray(body, dtype=bool)
    cand = body & (np.asarray(target) < LUNG_THRESHOLD_HU)
    labels, n = ndimage.label(cand, structure=np.ones((3, 3, 3), bool))
    if n == 0:
        return cand
    sizes = np.bincount(labels.ravel())
    sizes[0] = 0
    keep = np.flatnonzero(sizes >= MIN_COMPONENT_FRACTION * sizes.max())
    mask = np.isin(labels, keep)
    mask = ndimage.binary_closing(np.pad(mask, CLOSING_RADIUS), structure=_disk(CLOSING_RADIUS))
    mask = mask[(slice(CLOSING_RADIUS, -CLOSING_RADIUS),) * 3]
    for z in range(mask.shape[2]):
        mask[:, :, z] = ndimage.binary_fill_holes(mask[:, :, z])
    return mask & body


def _build_lung(target, masks, *, case_id: str = "", cache: dict | None = None) -> np.ndarray:
    from cmsbench.benchmark.metrics import regions as reg

    cache = {} if cache is None else cache
    if "lung" not in cache:
        body = reg.build_region("body", target, masks, case_id=case_id, cache=cache)
        cache["lung"] = lung_mask(np.asarray(target), body)
    return cache["lung"]


LUNG = Region("lung", "ground truth < -400 HU inside 'body', large components, closed, holes filled per slice",
              _build_lung)


def quantities(values: np.ndarray) -> dict[str, float]:
    """RA950 (%), Perc15 (HU) and MLD (HU) of lung voxel values."""
    v = np.asarray(values, dtype=np.float64).ravel()
    if v.size == 0:
        raise MetricUndefined("empty lung mask")
    return {"ra950": float(100.0 * np.count_nonzero(v < RA950_HU) / v.size),
            "perc15": float(np.percentile(v, PERCENTILE)),
            "mld": float(v.mean())}


def _pair(ctx: CaseContext, region: str) -> tuple[dict[str, float], dict[str, float]]:
    key = ("densitometry", region)
    if key not in ctx.cache:
        t, p = ctx.voxels(region)
        ctx.cache[key] = (quantities(t), quantities(p))
    return ctx.cache[key]


def _error(quantity: str, absolute: bool):
    def compute(ctx: CaseContext, region: str) -> float:
        gt, pred = _pair(ctx, region)
        d = pred[quantity] - gt[quantity]
        return abs(d) if absolute else d

    def reference(t, p, data_range=None) -> float:
        d = quantities(p)[quantity] - quantities(t)[quantity]
        return abs(d) if absolute else d

    return compute, reference


_TEXT = {
    "ra950": ("RA950", "percentage points; RA950 = 100 x fraction of lung voxels < -950 HU"),
    "perc15": ("Perc15", "HU; Perc15 = 15th percentile of lung voxel HU (linear interpolation)"),
    "mld": ("MLD", "HU; MLD = mean lung voxel HU"),
}
_LUNG_ONLY = Needs(regions=("lung",))


def _metric(quantity: str, absolute: bool) -> Metric:
    label, unit = _TEXT[quantity]
    compute, reference = _error(quantity, absolute)
    name = f"{quantity}_{'abs_error' if absolute else 'error'}"
    sign = "|q(pred) - q(gt)|" if absolute else "q(pred) - q(gt), signed (not ranked)"
    return Metric(name, "lower" if absolute else None, f"{'absolute ' if absolute else ''}{label} error",
                  f"{sign} with q = {label} over the lung region's voxels (lung mask from the ground truth); {unit}",
                  compute, _LUNG_ONLY, reference=reference)


RA950_ERROR = _metric("ra950", False)
RA950_ABS_ERROR = _metric("ra950", True)
PERC15_ERROR = _metric("perc15", False)
PERC15_ABS_ERROR = _metric("perc15", True)
MLD_ERROR = _metric("mld", False)
MLD_ABS_ERROR = _metric("mld", True)

BUILTIN_METRICS = {m.name: f"{__name__}:{var}" for var, m in list(globals().items()) if isinstance(m, Metric)}
BUILTIN_REGIONS = {"lung": f"{__name__}:LUNG"}

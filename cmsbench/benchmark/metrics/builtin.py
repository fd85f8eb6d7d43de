"""cmsbench's built-in metrics and regions, registered through the same entry points as plugins.

Conventions (all explicit in every record's ``scoring.convention`` and ``scoring.metrics``):

- ``mae``, ``mse``: mean absolute / squared error over the region's voxels, raw (unclipped) task units.
- ``nmse``: sum of squared errors / sum of squared ground truth in the region.
- ``psnr``: ``10 log10(L^2 / MSE)`` with ``L`` the task's data range (per region for ``gt_range``); when
  the task has a window, both images are clipped to it first; ``inf`` for a perfect prediction.
- ``nrmse``: ``sqrt(MSE) / L`` (raw images).
- ``ssim``: the task's SSIM flavour; the map is computed ONCE on the whole grid and a region's SSIM is
  the mean of the map over its voxels.
- ``msssim``: masked MS-SSIM (window applied when the task has one).
- ``lpips``: LPIPS on whole axial slices (region ``global``); NaN with the reason when unavailable.
- ``suvmean_pct_error``, ``suvmax_pct_error``: signed % error of SUVmean / SUVmax, lesion regions only.
- ``psnr_<window>``, ``ssim_<window>``: PSNR / SSIM with both images clipped to a CT display window
  (abdomen C50/W400, chest C-600/W1500, head C40/W80), data range = window width.
"""

from __future__ import annotations

import math

import numpy as np

from cmsbench.benchmark.metrics import clinical
from cmsbench.benchmark.metrics import regions as reg
from cmsbench.benchmark.metrics.api import CaseContext, Metric, MetricUndefined, Needs, Region, finite_or_undefined
from cmsbench.benchmark.metrics.pixel import psnr_from_mse
from cmsbench.errors import MetricError


# ------------------------------------------------------------------------------------------- pixel
def _mae(ctx: CaseContext, r: str) -> float:
    return ctx.sums().mae(r)


def _mse(ctx: CaseContext, r: str) -> float:
    return ctx.sums().mse(r)


def _nmse(ctx: CaseContext, r: str) -> float:
    return finite_or_undefined(ctx.sums().nmse(r), "ground truth is zero in the region")


def _peak(ctx: CaseContext, r: str) -> float:
    L = ctx.peak(r)
    if not L > 0:
        raise MetricUndefined("ground truth is constant in the region (data range 0)")
    return L


def _psnr(ctx: CaseContext, r: str) -> float:
    L = _peak(ctx, r)
    return psnr_from_mse(ctx.sums().mse(r, clipped=ctx.window is not None), L)


def _nrmse(ctx: CaseContext, r: str) -> float:
    return math.sqrt(ctx.sums().mse(r)) / _peak(ctx, r)


def _ssim(ctx: CaseContext, r: str) -> float:
    if not ctx.ssim_range > 0:
        raise MetricUndefined("ground truth is constant (data range 0)")
    return finite_or_undefined(ctx.sums().ssim(r), "no voxel of the region inside the SSIM map's valid interior")


def _msssim(ctx: CaseContext, r: str) -> float:
    from cmsbench.benchmark.metrics.msssim import ms_ssim

    t, p = ctx.target, ctx.prediction
    if ctx.window:
        t, p = np.clip(t, *ctx.window), np.clip(p, *ctx.window)
    try:
        v = ms_ssim(t, p, ctx.ssim_range, mask=ctx.mask(r), config=ctx.ssim_config)
    except MetricError as exc:
        raise MetricUndefined(str(exc)) from exc
    return finite_or_undefined(v, "a per-scale masked mean was not positive")


def _lpips(ctx: CaseContext, r: str) -> float:
    from cmsbench.benchmark.metrics.lpips import UNAVAILABLE_REASON, lpips_available, lpips_slices

    if not lpips_available():
        raise MetricUndefined(UNAVAILABLE_REASON)
    if r != "global":
        raise MetricUndefined("LPIPS is only defined on whole slices (region 'global')")
    t = ctx.target
    lo, hi = ctx.window if ctx.window else (float(t.min()), float(t.min()) + ctx.ssim_range)
    try:
        return lpips_slices(t, ctx.prediction, (lo, hi), device=ctx.device)
    except Exception as exc:  # weights missing / download refused
        raise MetricUndefined(f"{UNAVAILABLE_REASON} ({type(exc).__name__}: {exc})") from exc


# -------------------------------------------------------------------------------------- per lesion
def _lesion_pair(ctx: CaseContext, c) -> tuple[np.ndarray, np.ndarray]:
    key = ("lesion", c.index)
    if key not in ctx.cache:
        ctx.cache[key] = (c.values(ctx.target).astype(np.float64), c.values(ctx.prediction).astype(np.float64))
    return ctx.cache[key]


def _lesion_psnr(ctx: CaseContext, c) -> float | None:
    t, p = _lesion_pair(ctx, c)
    if ctx.window:
        mse = float(np.mean((np.clip(t, *ctx.window) - np.clip(p, *ctx.window)) ** 2))
    else:
        mse = float(np.mean((t - p) ** 2))
    L = float(t.max() - t.min()) if ctx.data_range.kind == "gt_range" else ctx.ssim_range
    return psnr_from_mse(mse, L) if L > 0 else None


def _lesion_mae(ctx: CaseContext, c) -> float:
    t, p = _lesion_pair(ctx, c)
    return float(np.mean(np.abs(t - p)))


def _lesion_ssim(ctx: CaseContext, c) -> float | None:
    ssim_map = ctx.sums().ssim_map
    if ssim_map is None:
        return None
    sm = c.values(ssim_map)
    sm = sm[~np.isnan(sm)]
    return float(np.sum(sm, dtype=np.float64) / sm.size) if sm.size else None


def _suv(key: str):
    def compute(ctx: CaseContext, r: str) -> float:
        t, p = ctx.voxels(r)
        return clinical.suv_errors(t, p)[key]

    def per_lesion(ctx: CaseContext, c) -> float:
        t, p = _lesion_pair(ctx, c)
        return clinical.suv_errors(t, p)[key]

    return compute, per_lesion


# ------------------------------------------------------------------------------------ references
def _ref_mae(t, p, L=None):
    return float(np.mean(np.abs(np.asarray(t, np.float64) - p)))


def _ref_mse(t, p, L=None):
    return float(np.mean((np.asarray(t, np.float64) - p) ** 2))


def _ref_nmse(t, p, L=None):
    t = np.asarray(t, np.float64)
    return float(np.sum((t - p) ** 2) / np.sum(t**2))


def _ref_psnr(t, p, L):
    return float(10 * np.log10(L**2 / _ref_mse(t, p)))


def _ref_nrmse(t, p, L):
    return float(np.sqrt(_ref_mse(t, p)) / L)


_PIXEL = "task units (MR normalised by the ground truth, CT HU, PET Bq/mL), region voxels"

MAE = Metric("mae", "lower", "mean absolute error", f"{_PIXEL}, unclipped", _mae, reference=_ref_mae,
             per_lesion=_lesion_mae)
MSE = Metric("mse", "lower", "mean squared error", f"{_PIXEL}, unclipped", _mse, reference=_ref_mse)
NMSE = Metric("nmse", "lower", "normalised MSE", "sum (gt - pred)^2 / sum gt^2 over region voxels", _nmse,
              reference=_ref_nmse)
PSNR = Metric("psnr", "higher", "peak signal-to-noise ratio",
              "10 log10(L^2 / MSE), L = the task's data range (per region for gt_range); both images clipped to "
              "the task's window when it has one; inf when perfect", _psnr, Needs(data_range=True),
              per_lesion=_lesion_psnr, reference=_ref_psnr)
NRMSE = Metric("nrmse", "lower", "normalised RMSE", "sqrt(MSE) / L (unclipped)", _nrmse, Needs(data_range=True),
               reference=_ref_nrmse)
SSIM = Metric("ssim", "higher", "structural similarity",
              "task's SSIM flavour; map computed once on the whole grid, region SSIM = mean of the map over the "
              "region's voxels", _ssim, Needs(data_range=True, device=True), per_lesion=_lesion_ssim)
MSSSIM = Metric("msssim", "higher", "multi-scale SSIM", "masked MS-SSIM, 5 scales, task's SSIM window", _msssim,
                Needs(data_range=True))
LPIPS = Metric("lpips", "lower", "learned perceptual image patch similarity",
               "AlexNet LPIPS on whole axial slices mapped to [-1, 1] from the task's display range",
               _lpips, Needs(data_range=True, dims="2d", device=True))
_suvmean, _suvmean_lesion = _suv("suvmean_pct_error")
_suvmax, _suvmax_lesion = _suv("suvmax_pct_error")
SUVMEAN_PCT_ERROR = Metric("suvmean_pct_error", None, "signed % error of SUVmean",
                           "100 (pred - gt) / gt of the mean activity in the VOI (SUV factor cancels); signed, so "
                           "not ranked (neither larger nor smaller is better)", _suvmean,
                           Needs(lesion_regions_only=True), per_lesion=_suvmean_lesion)
SUVMAX_PCT_ERROR = Metric("suvmax_pct_error", None, "signed % error of SUVmax",
                          "100 (pred - gt) / gt of the max activity in the VOI; signed, not ranked", _suvmax,
                          Needs(lesion_regions_only=True), per_lesion=_suvmax_lesion)


def _window_metrics(window: str) -> tuple[Metric, Metric]:
    lo, hi = clinical.window_bounds(window)
    centre, width = clinical.CT_WINDOWS[window]

    def psnr_w(ctx: CaseContext, r: str) -> float:
        return psnr_from_mse(ctx.sums((lo, hi)).mse(r, clipped=True), hi - lo)

    def ssim_w(ctx: CaseContext, r: str) -> float:
        return finite_or_undefined(ctx.sums((lo, hi)).ssim(r), "no voxel of the region inside the SSIM map")

    text = f"both images clipped to the {window} window C{centre:g}/W{width:g} HU, data range {width:g}"
    return (Metric(f"psnr_{window}", "higher", f"PSNR in the {window} window", text, psnr_w),
            Metric(f"ssim_{window}", "higher", f"SSIM in the {window} window", text, ssim_w, Needs(device=True)))


PSNR_ABDOMEN, SSIM_ABDOMEN = _window_metrics("abdomen")
PSNR_CHEST, SSIM_CHEST = _window_metrics("chest")
PSNR_HEAD, SSIM_HEAD = _window_metrics("head")


# ------------------------------------------------------------------------------------------ regions
def _builder(name: str):
    def build(target, masks, *, case_id: str = "", cache: dict | None = None):
        return reg.build_region(name, target, masks, case_id=case_id, cache=cache)

    return build


def _region(name: str, summary: str, lesion: bool = False) -> Region:
    return Region(name, summary, _builder(name), lesion)


GLOBAL = _region("global", "every voxel")
BRAIN = _region("brain", "case 'brain' mask")
HEAD = _region("head", "case 'head' mask")
BODY = _region("body", "case 'body' mask")
LESION = _region("lesion", "case 'lesion' mask, else union of necrotic/edema/enhancing", lesion=True)
NECROTIC = _region("necrotic", "case 'necrotic' mask", lesion=True)
EDEMA = _region("edema", "case 'edema' mask", lesion=True)
ENHANCING = _region("enhancing", "case 'enhancing' mask", lesion=True)
HEALTHY = _region("healthy", "first of brain/head/body minus the lesion")
LESION_RING = _region("lesion_ring", "lesion dilated by a radius-3 ball, minus the lesion, inside brain/head/body")
BONE = _region("bone", "ground truth > 300 HU inside 'body'")

#: name -> "module:attr" of every built-in (the registries' fallback when cmsbench runs uninstalled;
#: pyproject.toml declares the same entries as entry points).
BUILTIN_METRICS = {m.name: f"{__name__}:{var}" for var, m in list(globals().items()) if isinstance(m, Metric)}
BUILTIN_REGIONS = {r.name: f"{__name__}:{var}" for var, r in list(globals().items()) if isinstance(r, Region)}

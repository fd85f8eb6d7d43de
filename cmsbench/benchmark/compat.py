"""Compatibility-mode implementations (registered as modes in :mod:`cmsbench.benchmark.modes`): each
reproduces one official evaluator as documented in ``metrics.md``, quirks included. A mode ignores the task's own conventions (data range, regions,
SSIM flavour) and applies the evaluator's; what it does is recorded in the score's ``convention``.

``synthrad2023``
    SynthRAD2023 (MRI->CT, CBCT->CT), HU, mask = ``body`` (binarised). MAE over mask voxels without
    clipping. PSNR over mask voxels of both images clipped to [-1024, 3000], data range 4024. SSIM:
    clip, set voxels outside the mask to -1024, shift by +1024, scikit-image default 3D SSIM map
    (uniform 7^3, K1 0.01, K2 0.03, sample covariance) with data range 4024, mean over mask voxels
    after cropping a 3-voxel border from map and mask. Region ``body``.
``synthrad2025``
    SynthRAD2025: both images set to -1024 outside ``body``, clipped to [-1024, 3071]; MAE and PSNR
    (data range 4095) over mask voxels of those images; masked 3D MS-SSIM with 5 scales, weights
    .0448/.2856/.3001/.2363/.1333, uniform 7^3 window, 2x box downsampling, mask subsampled by stride
    2, the luminance term applied at every scale (not textbook MS-SSIM). Assumptions where metrics.md
    is silent: images shifted by +1024 (non-negative, as in 2023), sample covariance and reflect
    borders (scikit-image's filters) at every scale, no border crop. Segmentation and dose metrics need
    external models and are not computed. Region ``body``.
``brasyn``
    BraSyn (BraTS missing-MRI synthesis): each volume clipped at its OWN 0.5/99.5 percentiles (over all
    voxels) and scaled to [0, 1] (the prediction by its own statistics: this hides global intensity
    errors). SSIM = torchmetrics' 3D SSIM (Gaussian 11, sigma 1.5, whole-sample reflect padding, mean
    over the full map, data range = the larger of the two images' max - min) of ``pred*mask`` vs
    ``gt*mask`` for the tumour (region ``lesion``) and of ``pred*(1-mask)`` vs ``gt*(1-mask)`` (region
    ``non_lesion``: every voxel outside the tumour, background included). The segmentation score
    needs a tumour segmenter and is not computed.
``brats_inpainting``
    BraTS 2023 inpainting package (``generate_metrics``), applied to each of the task's regions
    except ``global`` (the region plays the inpainting mask): both images multiplied by the mask,
    then clipped to the 0.5/99.5 percentiles of the ground truth with the region zeroed (over all
    voxels, lower bound raised to 0) and scaled to [0, 1]. MSE, RMSE, MAE and PSNR (data range 1) over
    mask voxels; SSIM = mean over mask voxels of torchmetrics' full SSIM map. Quirk reproduced: the
    official code passes a (1, X, Y, Z) tensor, which torchmetrics treats as X channels of 2D (Y, Z)
    images, so the SSIM is 2D per slice along the FIRST array axis, with whole-sample reflect padding
    and data range = the larger of the two normalised volumes' max - min.
``udpet``
    UDPET / ULD-PET challenge, Bq/mL, whole volume (region ``global``): NRMSE = RMSE / (max - min of
    gt); PSNR = 20 log10(max(gt) / RMSE); SSIM of each image divided by its own max (assumption:
    scikit-image default 3D SSIM, uniform 7, sample covariance, data range 1, border cropped). VOI
    metrics (signed % error of SUVmean and SUVmax) in every mask named ``lesion``, ``liver``,
    ``heart``, ``kidneys``, ``kidney_left``, ``kidney_right`` that the case provides.
``ldct_benchmark``
    ldct-benchmark package: per slice along the last axis, images windowed (chest C-600/W1500,
    abdomen C50/W400, head C40/W80) and scaled to [0, 1]; per window ``ssim_<w>`` (scikit-image
    default 2D SSIM, data range 1) and ``psnr_<w>`` (data range 1), and ``rmse`` in HU; each the mean
    over slices of the per-slice values. Region ``global``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmsbench.benchmark.metrics import pixel
from cmsbench.benchmark.metrics.clinical import CT_WINDOWS, suv_errors, window_bounds
from cmsbench.benchmark.metrics.msssim import MSSSIM_WEIGHTS, ms_ssim
from cmsbench.benchmark.metrics.regions import build_region, lesion_mask
from cmsbench.benchmark.metrics.ssim import SKIMAGE_DEFAULT, TORCHMETRICS_DEFAULT, SSIMConfig, masked_mean, ssim_map
from cmsbench.errors import MetricError


@dataclass
class ModeResult:
    """What a mode returns to the scorer."""

    values: dict[str, dict[str, float | None]]
    convention: dict[str, Any]
    nan_reasons: dict[str, str] = field(default_factory=dict)
    lesions: list[dict] = field(default_factory=list)


def _mask(masks: dict, name: str, mode: str, case_id: str, shape) -> np.ndarray:
    if name not in masks or masks[name] is None:
        raise MetricError(f"mode {mode!r} needs a {name!r} mask for case {case_id!r}; masks: {sorted(masks)}")
    m = np.asarray(masks[name])
    if m.shape != shape:
        raise MetricError(f"case {case_id!r}: mask {name!r} has shape {m.shape}, the images {shape}")
    return m > 0


def synthrad2023(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    lo, hi = -1024.0, 3000.0
    rng = hi - lo
    mask = _mask(masks, "body", "synthrad2023", case_id, target.shape)
    gt = np.asarray(target, dtype=np.float64)
    pr = np.asarray(prediction, dtype=np.float64)
    mae = pixel.mae(gt, pr, mask)
    gtc, prc = np.clip(gt, lo, hi), np.clip(pr, lo, hi)
    psnr = pixel.psnr(gtc, prc, rng, mask)
    gts = np.where(mask, gtc, lo) - lo
    prs = np.where(mask, prc, lo) - lo
    smap = ssim_map(gts, prs, rng, SKIMAGE_DEFAULT, device=device)  # NaN on the 3-voxel border
    ssim = masked_mean(smap, mask)
    return ModeResult(
        {"body": {"mae": mae, "psnr": psnr, "ssim": ssim}},
        {
            "evaluator": "SynthRAD2023 ImageMetrics",
            "mask": "body (binarised)",
            "mae": "mean |gt - pred| over mask voxels, HU, no clipping",
            "psnr": "both clipped to [-1024, 3000], mask voxels, data range 4024",
            "ssim": "clip, -1024 outside mask, +1024, "
            + SKIMAGE_DEFAULT.describe()
            + ", data range 4024, mean over mask voxels after cropping 3 border voxels",
        },
    )


def synthrad2025(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    lo, hi = -1024.0, 3071.0
    rng = hi - lo
    mask = _mask(masks, "body", "synthrad2025", case_id, target.shape)
    gt = np.clip(np.where(mask, np.asarray(target, np.float64), lo), lo, hi)
    pr = np.clip(np.where(mask, np.asarray(prediction, np.float64), lo), lo, hi)
    values: dict[str, float | None] = {"mae": pixel.mae(gt, pr, mask), "psnr": pixel.psnr(gt, pr, rng, mask)}
    reasons = {}
    cfg = SSIMConfig(window="uniform", size=7, sample_covariance=True, border="reflect")
    try:
        values["ms_ssim"] = ms_ssim(gt - lo, pr - lo, rng, mask=mask, config=cfg, luminance_every_scale=True)
        if math.isnan(values["ms_ssim"]):
            reasons["body/ms_ssim"] = "a per-scale masked SSIM mean was not positive"
    except MetricError as exc:
        values["ms_ssim"] = float("nan")
        reasons["body/ms_ssim"] = str(exc)
    return ModeResult(
        {"body": values},
        {
            "evaluator": "SynthRAD2025",
            "preprocessing": "-1024 outside body mask, clip [-1024, 3071], data range 4095",
            "ms_ssim": f"masked 3D MS-SSIM, weights {MSSSIM_WEIGHTS}, {cfg.describe()}, 2x box downsampling, "
            "mask stride 2, luminance at every scale, images shifted by +1024 (assumption)",
            "not_computed": "segmentation fidelity and dose metrics (external models)",
        },
        reasons,
    )


def _own_percentile_scale(a: np.ndarray) -> np.ndarray:
    lo, hi = np.percentile(a, [0.5, 99.5])
    if hi <= lo:
        return np.zeros_like(a, dtype=np.float64)
    return (np.clip(a, lo, hi) - lo) / (hi - lo)


def _tm_range(a: np.ndarray, b: np.ndarray) -> float:
    return float(max(a.max() - a.min(), b.max() - b.min()))


def brasyn(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    les = lesion_mask(masks, target.shape, case_id)
    if les is None:
        raise MetricError(
            f"mode 'brasyn' needs a lesion mask or sub-region masks for case {case_id!r}; masks: {sorted(masks)}"
        )
    gt = _own_percentile_scale(np.asarray(target, np.float64))
    pr = _own_percentile_scale(np.asarray(prediction, np.float64))
    values = {}
    for region, m in (("lesion", les), ("non_lesion", ~les)):
        a, b = gt * m, pr * m
        L = _tm_range(b, a)
        if L <= 0:
            values[region] = {"ssim": float("nan")}
            continue
        values[region] = {"ssim": masked_mean(ssim_map(a, b, L, TORCHMETRICS_DEFAULT, device=device))}
    reasons = {f"{r}/ssim": "constant images (data range 0)" for r, v in values.items() if math.isnan(v["ssim"])}
    return ModeResult(
        values,
        {
            "evaluator": "BraSyn",
            "normalisation": "each volume clipped to its own 0.5/99.5 percentiles, scaled to [0, 1] (prediction by its own statistics)",
            "ssim": "torchmetrics 3D SSIM of pred*mask vs gt*mask: "
            + TORCHMETRICS_DEFAULT.describe()
            + ", mean over the full map, data range max of the two images' max - min",
            "regions": {"lesion": "tumour (union of labels)", "non_lesion": "1 - tumour mask (background included)"},
            "not_computed": "segmentation Dice/HD95 (needs a tumour segmenter)",
        },
        reasons,
    )


def _pct_bounds(ref: np.ndarray) -> tuple[float, float]:
    lo, hi = np.percentile(ref, [0.5, 99.5])
    return max(float(lo), 0.0), float(hi)


def _pct_clip(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    return (np.clip(a, lo, hi) - lo) / (hi - lo)


def brats_inpainting(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    gt = np.asarray(target, np.float64)
    pr = np.asarray(prediction, np.float64)
    regions = [r for r in task.regions if r != "global"]
    values, reasons = {}, {}
    cache: dict = {}
    cfg2d = SSIMConfig(spatial_dims=2, border="mirror")
    for region in regions:
        m = build_region(region, target, masks, case_id=case_id, cache=cache)
        if not m.any():
            values[region] = {k: None for k in ("ssim", "psnr", "mse", "rmse", "mae")}
            reasons.update({f"{region}/{k}": f"empty mask: {region}" for k in values[region]})
            continue
        lo, hi = _pct_bounds(np.where(m, 0.0, gt))
        if not hi > lo:
            values[region] = {k: None for k in ("ssim", "psnr", "mse", "rmse", "mae")}
            reasons.update(
                {
                    f"{region}/{k}": f"0.5/99.5 percentiles of the ground truth outside {region} are equal ({lo:g})"
                    for k in values[region]
                }
            )
            continue
        a = _pct_clip(gt * m, lo, hi)
        b = _pct_clip(pr * m, lo, hi)
        L = _tm_range(b, a)
        # (1, X, Y, Z) -> torchmetrics 2D over (Y, Z) with X channels: slices along the first axis
        at, bt, mt = (np.moveaxis(v, 0, -1) for v in (a, b, m))
        ssim = masked_mean(ssim_map(at, bt, L, cfg2d, device=device), mt) if L > 0 else float("nan")
        mse = pixel.mse(a, b, m)
        values[region] = {
            "ssim": ssim,
            "psnr": pixel.psnr_from_mse(mse, 1.0),
            "mse": mse,
            "rmse": math.sqrt(mse),
            "mae": pixel.mae(a, b, m),
        }
    return ModeResult(
        values,
        {
            "evaluator": "BraTS 2023 inpainting (inpainting.challenge_metrics_2023.generate_metrics)",
            "mask": "each task region except global plays the inpainting mask",
            "normalisation": "pred*mask and gt*mask clipped to the 0.5/99.5 percentiles of gt with the region "
            "zeroed (all voxels; lower bound >= 0), scaled to [0, 1]",
            "ssim": "mean over mask voxels of torchmetrics' full SSIM map; quirk: (1, X, Y, Z) input = 2D SSIM "
            "per slice along the first axis, " + cfg2d.describe() + ", data range max of the two ranges",
            "psnr": "data range 1 (psnr_01), mask voxels",
        },
        reasons,
    )


UDPET_VOIS = ("lesion", "liver", "heart", "kidneys", "kidney_left", "kidney_right")


def udpet(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    gt = np.asarray(target, np.float64)
    pr = np.asarray(prediction, np.float64)
    rmse = math.sqrt(pixel.mse(gt, pr))
    gmax, gmin = float(gt.max()), float(gt.min())
    nrmse = rmse / (gmax - gmin) if gmax > gmin else float("nan")
    psnr = float("inf") if rmse == 0 else (20 * math.log10(gmax / rmse) if gmax > 0 else float("nan"))
    pmax = float(pr.max())
    reasons = {}
    if gmax > 0 and pmax > 0:
        ssim = masked_mean(ssim_map(gt / gmax, pr / pmax, 1.0, SKIMAGE_DEFAULT, device=device))
    else:
        ssim = float("nan")
        reasons["global/ssim"] = "image max is not positive (cannot divide by its own max)"
    values: dict[str, dict[str, float | None]] = {"global": {"nrmse": nrmse, "psnr": psnr, "ssim": ssim}}
    for name in UDPET_VOIS:
        if name in masks and masks[name] is not None:
            m = _mask(masks, name, "udpet", case_id, target.shape)
            if not m.any():
                values[name] = {"suvmean_pct_error": None, "suvmax_pct_error": None}
                reasons.update({f"{name}/{k}": f"empty mask: {name}" for k in values[name]})
            else:
                values[name] = suv_errors(gt[m], pr[m])
    return ModeResult(
        values,
        {
            "evaluator": "UDPET / ULD-PET challenge",
            "nrmse": "RMSE / (max - min of gt), whole volume",
            "psnr": "20 log10(max(gt) / RMSE), whole volume",
            "ssim": "each image divided by its own max; "
            + SKIMAGE_DEFAULT.describe()
            + ", data range 1 (assumed flavour)",
            "vois": "signed % error of SUVmean / SUVmax in " + ", ".join(UDPET_VOIS) + " masks when present",
        },
        reasons,
    )


def ldct_benchmark(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    gt = np.asarray(target, np.float64)
    pr = np.asarray(prediction, np.float64)
    if min(gt.shape[:2]) < 7:
        raise MetricError(
            f"mode 'ldct_benchmark' needs slices of at least 7x7 voxels, got {gt.shape} (case {case_id!r})"
        )
    cfg = SSIMConfig(window="uniform", size=7, sample_covariance=True, spatial_dims=2, border="valid")
    values: dict[str, float | None] = {}
    d2 = (gt - pr) ** 2
    values["rmse"] = float(np.mean(np.sqrt(d2.mean(axis=(0, 1)))))
    for name in CT_WINDOWS:
        lo, hi = window_bounds(name)
        a = (np.clip(gt, lo, hi) - lo) / (hi - lo)
        b = (np.clip(pr, lo, hi) - lo) / (hi - lo)
        mse_s = ((a - b) ** 2).mean(axis=(0, 1))
        with np.errstate(divide="ignore"):
            psnr_s = np.where(mse_s > 0, 10 * np.log10(1.0 / np.where(mse_s > 0, mse_s, 1.0)), np.inf)
        values[f"psnr_{name}"] = float(np.mean(psnr_s))
        values[f"ssim_{name}"] = masked_mean(ssim_map(a, b, 1.0, cfg, device=device))
    return ModeResult(
        {"global": values},
        {
            "evaluator": "ldct-benchmark",
            "windows": {k: {"centre": c, "width": w} for k, (c, w) in CT_WINDOWS.items()},
            "per_slice": "2D slices along the last axis; case value = mean over slices",
            "ssim": cfg.describe() + ", windowed images scaled to [0, 1], data range 1",
            "psnr": "windowed [0, 1] images, data range 1 (inf for an identical slice)",
            "rmse": "HU, unwindowed",
        },
    )

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
    SynthRAD2025 ``image_metrics.py`` (github.com/SynthRAD2025/evaluation @ 17cac47): MAE unclipped over
    the body mask, PSNR clipped to [-1024, 3071] with range 4095, masked MS-SSIM with the official
    code's quirks (edge padding to 97 voxels, per-scale exponents on the map, offset box downsampling,
    ...): listed in full in :func:`synthrad2025`'s docstring. Region ``body``.
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
from cmsbench.benchmark.metrics.msssim import MSSSIM_WEIGHTS
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


SYNTHRAD2025_SOURCE = "github.com/SynthRAD2025/evaluation image_metrics.py @ 17cac47b6288fcb66c5818c9d50eb9534d613fa2"
_SR25_LO, _SR25_HI = -1024.0, 3071.0  # the evaluator's fixed dynamic range (HU)
_SR25_MIN_SIZE = 97  # every axis is edge-padded to at least this many voxels before MS-SSIM
_SR25_WIN = 7  # uniform SSIM window; its radius (3) is cropped from every scale's map and mask


def _sr25_pad(a: np.ndarray) -> np.ndarray:
    """Edge-pad each axis shorter than 97 voxels to 97, the odd voxel going to the far side."""
    widths = []
    for n in a.shape:
        short = max(_SR25_MIN_SIZE - n, 0)
        widths.append((short // 2, short - short // 2))
    return np.pad(a, widths, mode="edge")


def _sr25_down2(a: np.ndarray) -> np.ndarray:
    """The evaluator's downsampling: a 2x2x2 box mean taken as a zero-padded 'same' convolution
    followed by stride 2, so output voxel ``i`` averages input voxels ``2i-1`` and ``2i`` on every
    axis (voxel ``-1`` counts as 0: the first plane is halved); ``ceil(n/2)`` voxels per axis."""
    for ax in range(a.ndim):
        n = a.shape[ax]
        out_n = (n + 1) // 2
        pad = [(0, 0)] * a.ndim
        pad[ax] = (1, 0)
        b = np.pad(a, pad)  # b[k] = a[k - 1], b[0] = 0; pairs (b[2i], b[2i+1]) = (a[2i-1], a[2i])
        b = b[(slice(None),) * ax + (slice(0, 2 * out_n),)]  # drops a[n-1]'s unpaired copy when n is even
        shape = a.shape[:ax] + (out_n, 2) + a.shape[ax + 1 :]
        a = b.reshape(shape).mean(axis=ax + 1)
    return a


def _sr25_scale_map(x: np.ndarray, y: np.ndarray, weight: float) -> np.ndarray:
    """One scale's SSIM map, cropped by the window radius: uniform 7^3 means, sample covariance,
    ``l^w * c^w * s^w`` with each of luminance, contrast and structure clipped at 0 and
    ``c = (2 sx sy + C2) / (vx + vy + C2)`` using ``sx = sqrt(max(vx, 0))`` only in the numerator."""
    from scipy import ndimage

    def box(a: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(a, size=_SR25_WIN)

    rng = _SR25_HI - _SR25_LO
    c1, c2 = (0.01 * rng) ** 2, (0.03 * rng) ** 2
    c3 = c2 / 2
    n = _SR25_WIN**x.ndim
    norm = n / (n - 1)
    ux, uy = box(x), box(y)
    vx = norm * (box(x * x) - ux * ux)
    vy = norm * (box(y * y) - uy * uy)
    vxy = norm * (box(x * y) - ux * uy)
    sx, sy = np.sqrt(np.maximum(vx, 0.0)), np.sqrt(np.maximum(vy, 0.0))
    lum = np.maximum((2 * ux * uy + c1) / (ux * ux + uy * uy + c1), 0.0)
    con = np.maximum((2 * sx * sy + c2) / (vx + vy + c2), 0.0)
    struct = np.maximum((vxy + c3) / (sx * sy + c3), 0.0)
    smap = lum**weight * con**weight * struct**weight
    r = (_SR25_WIN - 1) // 2
    return smap[tuple(slice(r, s - r) for s in smap.shape)]


def _sr25_ms_ssim(gt: np.ndarray, pr: np.ndarray, mask: np.ndarray) -> tuple[float, str | None]:
    """Masked MS-SSIM of the shifted, filled, clipped images as the evaluator computes it; returns the
    value and, when it is NaN, why."""
    x, y, m = _sr25_pad(gt), _sr25_pad(pr), _sr25_pad(mask)
    r = (_SR25_WIN - 1) // 2
    per_scale = []
    for j, w in enumerate(MSSSIM_WEIGHTS):
        smap = _sr25_scale_map(x, y, w)
        sel = smap[m[tuple(slice(r, s - r) for s in m.shape)]]
        if sel.size == 0:
            return float("nan"), f"no mask voxel in the cropped interior at scale {j + 1} (the evaluator returns NaN)"
        per_scale.append(min(max(float(sel.mean(dtype=np.float64)), 0.0), 1.0))
        if j < len(MSSSIM_WEIGHTS) - 1:
            x, y, m = _sr25_down2(x), _sr25_down2(y), m[::2, ::2, ::2]
    return float(np.prod(per_scale)), None


def synthrad2025(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    """SynthRAD2025 ``ImageMetrics.score_patient`` (SynthRAD2025/evaluation ``image_metrics.py``),
    re-implemented and checked against the official code to 1e-6 relative (``tests/official``).

    Mask = ``body`` binarised (> 0). Quirks of the official code, all reproduced:

    - MAE: mean ``|gt - pred|`` over mask voxels of the UNCLIPPED images (the -1024 fill outside the
      mask does not touch mask voxels; only PSNR and MS-SSIM clip).
    - PSNR: both images clipped to [-1024, 3071], mask voxels, fixed data range 4095
      (``10 log10(4095^2 / MSE)``; ``inf`` for identical mask voxels).
    - MS-SSIM (the reported value is the MASKED one; the unmasked product the code also computes is
      discarded): both images clipped to [-1024, 3071], set to -1024 outside the mask, shifted by +1024;
      data range 4095. Images AND mask are edge-padded (``np.pad`` mode ``edge``) to at least 97 voxels on
      every axis (``(97 - n) // 2`` in front, the rest behind), so small volumes get a value; the
      padding replicates the border values and border mask voxels, so padded voxels count.
    - Each of 5 scales: uniform 7^3 window (scipy ``uniform_filter``), sample covariance (343/342),
      K1 0.01, K2 0.03, ``C3 = C2 / 2``; map = ``l^w * c^w * s^w`` with the scale's weight ``w`` from
      (.0448, .2856, .3001, .2363, .1333) applied to luminance too at EVERY scale (the code's
      ``luminance_weights`` line is dead: the scale weights are used), each component clipped at 0,
      ``sqrt`` of a clipped variance in the numerators but the raw variances in the contrast
      denominator. The weights are exponents of the MAP (mean of powers), not of the per-scale means.
    - Per-scale value: mean of the map over mask voxels after cropping 3 voxels from every side of the
      map AND the mask (so mask voxels within 3 voxels of the padded border never count); clipped to
      [0, 1]; MS-SSIM = product of the 5 clipped means (NaN if a cropped mask is empty at some scale).
    - Downsampling between scales: 2x2x2 box mean as a zero-padded ``fftconvolve(..., mode='same')``
      followed by stride 2, i.e. voxel ``i`` averages input voxels ``2i-1, 2i`` (the first plane
      mixed with zeros); the mask is subsampled as ``mask[::2, ::2, ::2]`` (voxels ``2i``, half a voxel
      off the images). cmsbench sums directly instead of by FFT (differences ~1e-13).
    - Precision: cmsbench computes in float64; the official code keeps float32 inputs in float32 at the
      first scale (measured effect < 1e-8 relative).

    Segmentation fidelity and dose metrics need external models and are not computed.
    """
    lo, hi = _SR25_LO, _SR25_HI
    mask = _mask(masks, "body", "synthrad2025", case_id, target.shape)
    gt = np.asarray(target, np.float64)
    pr = np.asarray(prediction, np.float64)
    reasons: dict[str, str] = {}
    values: dict[str, float | None]
    if not mask.any():
        values = {"mae": None, "psnr": None, "ms_ssim": None}
        reasons.update({f"body/{k}": "empty body mask" for k in values})
    else:
        gtc = np.clip(np.where(mask, gt, lo), lo, hi)
        prc = np.clip(np.where(mask, pr, lo), lo, hi)
        values = {"mae": pixel.mae(gt, pr, mask), "psnr": pixel.psnr(gtc, prc, hi - lo, mask)}
        msssim, why = _sr25_ms_ssim(gtc - lo, prc - lo, mask)
        values["ms_ssim"] = msssim
        if why:
            reasons["body/ms_ssim"] = why
    return ModeResult(
        {"body": values},
        {
            "evaluator": "SynthRAD2025 ImageMetrics.score_patient",
            "source": SYNTHRAD2025_SOURCE,
            "mask": "body (binarised, > 0)",
            "mae": "mean |gt - pred| over mask voxels, HU, NOT clipped",
            "psnr": "both clipped to [-1024, 3071], mask voxels, data range 4095",
            "ms_ssim": "masked 3D MS-SSIM: clip [-1024, 3071], -1024 outside mask, +1024, data range 4095; "
            "images and mask edge-padded to >= 97 voxels per axis ((97-n)//2 in front); 5 scales, per scale "
            "uniform 7^3 window, sample covariance, K1 0.01, K2 0.03, C3 = C2/2, map = l^w c^w s^w with "
            f"w in {MSSSIM_WEIGHTS} at every scale (luminance included), each component clipped at 0; "
            "mean over mask voxels of map and mask both cropped by 3 voxels per side, clipped to [0, 1]; "
            "product of the 5 means",
            "downsampling": "2x2x2 box mean as zero-padded 'same' convolution then stride 2 (voxel i averages "
            "2i-1 and 2i, voxel -1 = 0); mask subsampled [::2, ::2, ::2]",
            "precision": "float64 (the official code keeps float32 inputs in float32 at scale 1; < 1e-8 relative)",
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

"""Compatibility-mode implementations (registered as modes in :mod:`cmsbench.benchmark.modes`): each
reproduces one official evaluator as documented in ``metrics.md``, quirks included. A mode ignores the task's own conventions (data range, regions,
SSIM flavour) and applies the evaluator's; what it does is recorded in the score's ``convention``.

``synthrad2023``
    SynthRAD2023 ``functions/image_metrics.py`` (github.com/SynthRAD2023/metrics @ 3200007), MRI->CT and
    CBCT->CT, HU, mask = ``body`` (binarised), all images cast to float32 first as the evaluator does.
    MAE over mask voxels without clipping. PSNR over mask voxels of both images clipped to [-1024, 3000],
    data range 4024. SSIM: clip, set voxels outside the mask to -1024, shift by +1024, scikit-image
    default 3D SSIM map (uniform 7^3, K1 0.01, K2 0.03, sample covariance) with data range 4024 in
    float32, mean over mask voxels after cropping a 3-voxel border from map and mask. Region ``body``.
``synthrad2025``
    SynthRAD2025 ``image_metrics.py`` (github.com/SynthRAD2025/evaluation @ 17cac47): MAE unclipped over
    the body mask, PSNR clipped to [-1024, 3071] with range 4095, masked MS-SSIM with the official
    code's quirks (edge padding to 97 voxels, per-scale exponents on the map, offset box downsampling,
    ...): listed in full in :func:`synthrad2025`'s docstring. Region ``body``.
``brasyn``
    BraSyn ``ssim.py`` ``compute_metrics`` (github.com/hongweilibran/BraSyn @ 8908040): each volume
    clipped at its OWN 0.5/99.5 percentiles (numpy, own dtype, over all voxels; a negative lower bound
    raised to 0) and scaled to [0, 1] in float64 (the prediction by its own statistics: this hides global
    intensity errors). SSIM = torchmetrics' 3D SSIM of the 5-D input (Gaussian 11, sigma 1.5, reflect
    padding, float64 map, mean over the full map, data range = the larger of the two images' max - min)
    of ``pred*mask`` vs ``gt*mask`` (region ``lesion``) and of ``pred*(1-mask)`` vs ``gt*(1-mask)``
    (region ``non_lesion``: every voxel outside the tumour, background included), rounded to float32
    (torchmetrics' metric state). Quirks listed in :func:`brasyn`'s docstring. The segmentation score
    needs a tumour segmenter and is not computed.
``brats_inpainting``
    BraTS 2023 inpainting ``compute_metrics`` (copy in github.com/hongweilibran/BraSyn
    ``evaluation_utils.py`` @ 8908040), applied to each of the task's regions except ``global`` (the
    region plays the inpainting mask): both images multiplied by the mask, then clipped to the 0.5/99.5
    percentiles of the ground truth with the region zeroed (over all voxels, a negative lower bound
    raised to 0) and scaled to [0, 1]. MSE and PSNR (torchmetrics, data range 1, float32 log10 factor)
    over mask voxels; SSIM = mean over mask voxels of torchmetrics' full 3D SSIM map (the official
    input is 5-D ``(1, 1, X, Y, Z)``: Gaussian 11, sigma 1.5, reflection padding, data range from the
    zero-filled volumes). Quirks listed in :func:`brats_inpainting`'s docstring.
``udpet``
    UDPET / ULD-PET challenge, Bq/mL, whole volume (region ``global``): NRMSE = RMSE / (max - min of
    gt); PSNR = 20 log10(max(gt) / RMSE); SSIM of each image divided by its own max (assumption:
    scikit-image default 3D SSIM, uniform 7, sample covariance, data range 1, border cropped). VOI
    metrics (signed % error of SUVmean and SUVmax) in every mask named ``lesion``, ``liver``,
    ``heart``, ``kidneys``, ``kidney_left``, ``kidney_right`` that the case provides.
``ldct_benchmark``
    ldct-benchmark ``compute_metric`` (github.com/eeulig/ldct-benchmark ``ldctbench/evaluate/utils.py``
    @ 09b1011) as its test script calls it: float32 slices in HU + 1024, per slice along the last axis,
    images windowed with the DICOM linear formula (chest C-600/W1500, abdomen C50/W400, head C40/W80;
    scale ``w - 1``, centre ``c - 0.5``) to [0, 1]; per window ``ssim_<w>`` (scikit-image default 2D SSIM
    in float32, data range 1) and ``psnr_<w>`` (data range 1), and ``rmse`` in HU of both images clipped
    to [-1024, 1900] HU; each the mean over slices. Region ``global``. Quirks listed in
    :func:`ldct_benchmark`'s docstring.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmsbench.benchmark.metrics import pixel
from cmsbench.benchmark.metrics.clinical import suv_errors
from cmsbench.benchmark.metrics.msssim import MSSSIM_WEIGHTS
from cmsbench.benchmark.metrics.regions import build_region, lesion_mask
from cmsbench.benchmark.metrics.ssim import SKIMAGE_DEFAULT, TORCHMETRICS_DEFAULT, masked_mean, ssim_map
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
    """SynthRAD2023 ``ImageMetrics.score_patient`` (SynthRAD2023/metrics ``functions/image_metrics.py``
    @ 3200007), re-implemented and checked against the official code (``tests/official``). Its quirks:

    - Every image, the mask included, is cast to float32 first (the evaluator's SimpleITK cast); the mask
      is then binarised (``> 0``).
    - MAE: mean of ``|gt - pred|`` over the mask voxels, in HU, without clipping (float64 sums).
    - PSNR: both images clipped to [-1024, 3000] in float32, mask voxels only, data range 4024; the
      squared differences are float32 (scikit-image's ``mean_squared_error`` of float32 input), their mean
      float64.
    - SSIM: both images clipped to [-1024, 3000], voxels outside the mask set to -1024 (so the window sees
      a flat background, not the prediction outside the body), shifted by +1024, then scikit-image's
      default 3D SSIM map with data range 4024 computed in float32 (the evaluator's input dtype; a float64
      map differs by up to about 1e-6 relative), and the mean (float64) over the mask voxels after
      cropping a 3-voxel border from the map and the mask (as scikit-image crops its own mean). NaN when
      no mask voxel is left after the crop. Computed on the CPU whatever the device (exact float32 order).
    """

    source = "github.com/SynthRAD2023/metrics functions/image_metrics.py @ 3200007e7029282416445719f7aae27e3a87308d"
    win = 7  # scikit-image's default uniform window; its radius (3) is the cropped border

    def skimage_float32_ssim_map(x: np.ndarray, y: np.ndarray, data_range: float) -> np.ndarray:
        # structural_similarity(x, y, data_range=..., full=True)'s map as scikit-image computes it for
        # float32 volumes: uniform 7^3 window (scipy uniform_filter, each pass rounded to float32), sample
        # covariance 343/342, K1 0.01, K2 0.03, every product in float32 in the library's order
        n = win**x.ndim
        return _skimage_ssim_map(x, y, win, n / (n - 1), (0.01 * data_range) ** 2, (0.03 * data_range) ** 2)

    lo, hi = np.float32(-1024.0), np.float32(3000.0)  # the evaluator's fixed dynamic range (HU)
    rng = 3000.0 - -1024.0
    mask = _mask(masks, "body", "synthrad2023", case_id, target.shape)
    gt = np.asarray(target).astype(np.float32)
    pr = np.asarray(prediction).astype(np.float32)
    mae = pixel.mae(gt.astype(np.float64), pr.astype(np.float64), mask)
    gtc, prc = np.clip(gt, lo, hi), np.clip(pr, lo, hi)
    d = gtc[mask] - prc[mask]
    psnr = pixel.psnr_from_mse(float(np.mean(d * d, dtype=np.float64)) if d.size else float("nan"), rng)
    gts = np.where(mask, gtc, lo) - lo
    prs = np.where(mask, prc, lo) - lo
    smap = skimage_float32_ssim_map(gts, prs, rng)
    r = (win - 1) // 2
    inner = (slice(r, -r),) * smap.ndim
    kept = smap[inner][mask[inner]]
    ssim = float(kept.mean(dtype=np.float64)) if kept.size else float("nan")
    return ModeResult(
        {"body": {"mae": mae, "psnr": psnr, "ssim": ssim}},
        {
            "evaluator": "SynthRAD2023 ImageMetrics",
            "source": source,
            "mask": "body (binarised)",
            "precision": "images cast to float32 first, as the evaluator's SimpleITK cast does",
            "mae": "mean |gt - pred| over mask voxels, HU, no clipping",
            "psnr": "both clipped to [-1024, 3000], mask voxels, data range 4024, float32 squared differences",
            "ssim": "clip, -1024 outside mask, +1024, scikit-image default 3D SSIM map in float32 (uniform 7^3, "
            "K1 0.01, K2 0.03, sample covariance), data range 4024, mean over mask voxels after cropping "
            "3 border voxels",
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


def _tm_range(a: np.ndarray, b: np.ndarray) -> float:
    return float(max(a.max() - a.min(), b.max() - b.min()))


BRATS_INPAINTING_SOURCE = (
    "github.com/hongweilibran/BraSyn evaluation_utils.py (compute_metrics) @ 890804083b446f3d6fa0b17a4ef09b174bcd0209"
)
_BI_METRICS = ("mse", "psnr", "ssim")
_BI_PERCENTILES = (0.5, 99.5)
_BI_PAD = 5  # torchmetrics' reflection padding for the 11-tap Gaussian: needs more than 5 voxels per axis


def _bi_bounds(target: np.ndarray, m: np.ndarray) -> tuple[float, float]:
    """The official normalisation bounds: 0.5/99.5 percentiles (numpy linear interpolation) of the ground
    truth with the inpainting region set to 0, over ALL voxels (background and the zeroed region count),
    taken in the ground truth's own dtype as the official ``np.percentile`` of the tensor is; a negative
    lower bound is raised to 0 (``strictlyPositive``)."""
    lo, hi = np.percentile(np.where(m, 0, target), _BI_PERCENTILES)
    return (0.0 if lo < 0 else float(lo)), float(hi)


def _bi_normalise(a: np.ndarray, m: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``(clip(a * mask, lo, hi) - lo) / (hi - lo)`` in float64: zero outside the mask (0 is clipped up to a
    positive lower bound, which maps to 0)."""
    return (np.clip(np.where(m, np.asarray(a, np.float64), 0.0), lo, hi) - lo) / (hi - lo)


def _bi_mse_psnr(gt_voxels: np.ndarray, pr_voxels: np.ndarray) -> tuple[float, float]:
    """MSE and PSNR (data range 1) of the official torchmetrics objects, float32 quirks included: the
    float64 sum of squared errors is rounded into the metrics' float32 state, divided by the voxel count
    in float32, and PSNR = ``-ln(MSE) * (10 / ln 10)`` with the log, the factor (4.3429446) and the
    product in float32 (torch's float32 log, which is not always correctly rounded)."""
    import torch

    sse = torch.tensor(float(np.sum((pr_voxels - gt_voxels) ** 2)), dtype=torch.float32)
    mse = sse / torch.tensor(float(gt_voxels.size), dtype=torch.float32)
    log10_factor = torch.tensor(10.0, dtype=torch.float32) / torch.log(torch.tensor(10.0, dtype=torch.float32))
    psnr = -torch.log(mse) * log10_factor  # the data-range term 2 ln(1) is 0
    return float(mse), float(psnr)


def _bi_metrics(gt: np.ndarray, pr: np.ndarray, m: np.ndarray, device: str) -> tuple[dict, dict]:
    """``compute_metrics(gt, pred, mask)`` of the official code for one boolean mask: the values and, per
    metric that is undefined, why."""
    if not m.any():
        return dict.fromkeys(_BI_METRICS), dict.fromkeys(_BI_METRICS, "empty inpainting mask")
    lo, hi = _bi_bounds(gt, m)
    if not hi > lo:
        why = f"0.5/99.5 percentiles of the ground truth with the mask zeroed are {lo:g} and {hi:g}: no scale"
        return dict.fromkeys(_BI_METRICS), dict.fromkeys(_BI_METRICS, why)
    a, b = _bi_normalise(gt, m, lo, hi), _bi_normalise(pr, m, lo, hi)
    values: dict[str, float | None] = {}
    reasons: dict[str, str] = {}
    values["mse"], values["psnr"] = _bi_mse_psnr(a[m], b[m])
    L = _tm_range(b, a)  # torchmetrics: data_range=None -> max(preds.max() - preds.min(), target.max() - target.min())
    if min(gt.shape) <= _BI_PAD:
        values["ssim"] = None
        reasons["ssim"] = f"volume {gt.shape} has an axis of <= {_BI_PAD} voxels: the official 3D SSIM fails there"
    elif not L > 0:
        values["ssim"] = None
        reasons["ssim"] = "both normalised volumes are constant (data range 0)"
    else:
        smap = ssim_map(a, b, L, TORCHMETRICS_DEFAULT, device=device, float64=True)
        values["ssim"] = masked_mean(smap, m)
    return values, reasons


def brats_inpainting(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    """BraTS 2023 inpainting ``compute_metrics`` (the copy in hongweilibran/BraSyn ``evaluation_utils.py``),
    re-implemented and checked against the official code to 1e-6 relative (``tests/official``).

    Each of the task's regions except ``global`` plays the inpainting mask (the official ``mask``, a
    boolean tensor), binarised (> 0). The official function returns ``(MSE, PSNR, SSIM)``; so does the mode
    (no RMSE or MAE: the official code reports none). Quirks of the official code, all reproduced:

    - Normalisation from the ground truth only: bounds = 0.5/99.5 percentiles (numpy, linear
      interpolation) of ``gt * ~mask`` over ALL voxels of the volume (background zeros and the zeroed
      inpainting region are counted), in the ground truth's own dtype; a negative lower bound is raised
      to 0 (``strictlyPositive``), a positive one is kept.
    - BOTH images are multiplied by the mask FIRST, then clipped to the bounds and scaled to [0, 1] with
      the ground truth's bounds (``(clip(x * mask) - lo) / (hi - lo)``): outside the mask both are 0
      (a positive lower bound clips the zeros up to ``lo``, which maps to 0), and prediction values above
      ``hi`` are clipped (the prediction is never scaled by its own statistics). Computed in float64 (the
      official ``np.clip`` of a tensor goes through numpy and comes back float64 for every input dtype).
    - MSE: torchmetrics ``MeanSquaredError`` on the flattened mask voxels: the float64 sum of squared
      differences is rounded into the metric's float32 state and divided by the voxel count in float32,
      so the reported MSE is a float32 value (up to 6e-8 relative from the float64 mean).
    - PSNR: torchmetrics ``PeakSignalNoiseRatio(data_range=1.0)`` on the mask voxels, from the same
      float32 sum: ``-ln(MSE) * (10 / ln 10)`` entirely in float32 (torch's float32 log; the factor is
      4.3429446, 4.5e-8 relative below ``10 / ln 10``); ``inf`` when the mask voxels are equal.
    - SSIM: the inputs are 5-D ``(1, 1, X, Y, Z)`` tensors, so torchmetrics computes a 3-D SSIM over the
      WHOLE zero-filled volumes: Gaussian window sigma 1.5, 11 taps per axis, K1 0.01, K2 0.03, no
      sample covariance, whole-sample reflection padding of 5 voxels on every side (PyTorch ``reflect``:
      ``c b | a b c``), data range = ``max(pred.max() - pred.min(), gt.max() - gt.min())`` of the two
      normalised zero-filled volumes (at most 1; not the fixed 1 PSNR uses), variances clamped at 0 (in
      float64 a no-op beyond rounding). Score = mean of the FULL (uncropped, ``return_full_image``) map over
      the mask voxels only; the zero surroundings enter through the window near the mask's surface.
    - Undefined values: an empty mask, or percentiles that give no scale, leave all three metrics without
      a value (the official code returns NaN); an axis of 5 voxels or fewer leaves SSIM without a value
      (the official reflection padding raises there).

    cmsbench computes the SSIM map with its own separable float64 engine (not torchmetrics' conv3d,
    whose float64 CPU path needs ~53 kB per voxel); differences from the official code are rounding only.
    """
    regions = [r for r in task.regions if r != "global"]
    values: dict[str, dict[str, float | None]] = {}
    reasons: dict[str, str] = {}
    cache: dict = {}
    for region in regions:
        m = build_region(region, target, masks, case_id=case_id, cache=cache)
        m = np.asarray(m) > 0
        values[region], why = _bi_metrics(target, prediction, m, device)
        reasons.update({f"{region}/{k}": f"{v} ({region})" for k, v in why.items()})
    return ModeResult(
        values,
        {
            "evaluator": "BraTS 2023 inpainting compute_metrics (copy in hongweilibran/BraSyn evaluation_utils.py)",
            "source": BRATS_INPAINTING_SOURCE,
            "mask": "each task region except global plays the inpainting mask (binarised, > 0)",
            "metrics": "MSE, PSNR, SSIM: what the official function returns (no RMSE, no MAE)",
            "normalisation": "bounds = 0.5/99.5 percentiles (numpy linear) of gt * ~mask over ALL voxels (zeros "
            "counted), lower bound raised to 0 if negative; pred * mask and gt * mask clipped to the bounds and "
            "scaled to [0, 1] (float64)",
            "mse": "mean squared difference over mask voxels (torchmetrics MeanSquaredError): float64 sum rounded "
            "to float32, divided in float32",
            "psnr": "torchmetrics PeakSignalNoiseRatio(data_range=1.0) over mask voxels: -ln(MSE) * (10 / ln 10), "
            "all in float32 from the float32 sum",
            "ssim": "5-D (1, 1, X, Y, Z) input: torchmetrics 3D SSIM of the whole zero-filled volumes, "
            + TORCHMETRICS_DEFAULT.describe()
            + " (PyTorch reflect padding of 5), data range max(pred.max() - pred.min(), gt.max() - gt.min()) of "
            "the normalised volumes, variances clamped at 0; mean of the full uncropped map over mask voxels",
            "undefined": "empty mask or no percentile scale: no value (official: NaN); an axis <= 5 voxels: no SSIM "
            "(official: error)",
        },
        reasons,
    )


BRASYN_SOURCE = "github.com/hongweilibran/BraSyn ssim.py (compute_metrics) @ 890804083b446f3d6fa0b17a4ef09b174bcd0209"
_BS_PERCENTILES = (0.5, 99.5)


def _bs_own_scale(a: np.ndarray) -> tuple[np.ndarray | None, str]:
    """The official ``__percentile_clip(x, strictlyPositive=True)`` of ``ssim.py``: the volume's OWN
    0.5/99.5 percentiles (numpy linear interpolation, in the volume's own dtype, over all voxels), a
    negative lower bound raised to 0, ``(clip(x, lo, hi) - lo) / (hi - lo)`` in float64 (the official
    ``np.clip`` of a tensor comes back float64). ``(None, why)`` when the percentiles give no scale."""
    lo, hi = np.percentile(np.asarray(a), _BS_PERCENTILES)
    if lo < 0:
        lo = 0.0
    if not hi > lo:
        return None, f"0.5/99.5 percentiles {float(lo):g} and {float(hi):g} (lower raised to 0): no scale"
    return (np.clip(np.asarray(a, np.float64), lo, hi) - lo) / (hi - lo), ""


def _bs_float32_state(value: float) -> float:
    """The official SSIM object's batch value: the float64 per-sample mean is added into torchmetrics'
    float32 ``similarity`` state (initialised ``torch.tensor(0.0)``) and divided by the float32 count 1,
    so the reported number is the float64 mean rounded to float32."""
    return float(np.float32(value))


def brasyn(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    """BraSyn ``ssim.py`` ``compute_metrics(gt, pred, seg, normalize=True)`` (github.com/hongweilibran/BraSyn),
    re-implemented and checked against the official code to 1e-6 relative (``tests/official``).

    The tumour mask is the case's ``lesion`` mask, else the union of its sub-regions (the official
    ``seg > 0``). Returns ``(SSIM_tumor, SSIM_non_tumor)`` as regions ``lesion`` and ``non_lesion``.
    Quirks of the official code, all reproduced:

    - Each volume is normalised by its OWN statistics (the prediction by the prediction's, hiding global
      intensity errors): bounds = 0.5/99.5 percentiles (numpy linear interpolation, in the volume's own
      dtype) over ALL voxels, background zeros included; a negative lower bound is raised to 0
      (``strictlyPositive=True``), a positive one kept; ``(clip(x, lo, hi) - lo) / (hi - lo)`` in float64
      (the official ``np.clip`` of a torch tensor comes back float64 for every input dtype).
    - Tumour SSIM: ``pred * mask`` vs ``gt * mask``; non-tumour SSIM: ``pred * (1 - mask)`` vs
      ``gt * (1 - mask)`` (every voxel outside the tumour, background included). Both are the mean over
      the WHOLE volume of torchmetrics' 3D SSIM map of the zero-filled 5-D ``(1, 1, X, Y, Z)`` tensors:
      Gaussian sigma 1.5, 11 taps, K1 0.01, K2 0.03, no sample covariance, PyTorch ``reflect`` padding of
      5 voxels, data range = ``max(pred.max() - pred.min(), gt.max() - gt.min())`` of the two masked
      volumes; the map is computed in float64 (the inputs are float64).
    - The module-level ``StructuralSimilarityIndexMeasure`` accumulates into a float32 state, so each
      reported SSIM is the float64 mean rounded to float32 (up to 6e-8 relative).
    - Undefined values: percentiles that give no scale (official: NaN), an empty or a constant pair of
      masked volumes (data range 0; official: NaN), or an axis of 5 voxels or fewer (the official reflection
      padding raises) leave the SSIM without a value.

    The segmentation score of the challenge needs a tumour segmenter and is not computed. cmsbench
    computes the map with its own separable float64 engine; differences are rounding only.
    """
    les = lesion_mask(masks, target.shape, case_id)
    if les is None:
        raise MetricError(
            f"mode 'brasyn' needs a lesion mask or sub-region masks for case {case_id!r}; masks: {sorted(masks)}"
        )
    les = np.asarray(les) > 0
    gt, why_gt = _bs_own_scale(target)
    pr, why_pr = _bs_own_scale(prediction)
    values: dict[str, dict[str, float | None]] = {}
    reasons: dict[str, str] = {}
    for region, m in (("lesion", les), ("non_lesion", ~les)):
        why = ""
        if gt is None or pr is None:
            why = f"ground truth: {why_gt}" if gt is None else f"prediction: {why_pr}"
        elif min(target.shape) <= _BI_PAD:
            why = f"volume {target.shape} has an axis of <= {_BI_PAD} voxels: the official 3D SSIM fails there"
        else:
            a, b = gt * m, pr * m
            L = _tm_range(b, a)  # torchmetrics data_range=None
            if not L > 0:
                why = "both masked volumes are constant (data range 0)"
            else:
                smap = ssim_map(a, b, L, TORCHMETRICS_DEFAULT, device=device, float64=True)
                values[region] = {"ssim": _bs_float32_state(float(np.mean(smap, dtype=np.float64)))}
        if why:
            values[region] = {"ssim": None}
            reasons[f"{region}/ssim"] = why
    return ModeResult(
        values,
        {
            "evaluator": "BraSyn ssim.py compute_metrics",
            "source": BRASYN_SOURCE,
            "mask": "tumour = lesion mask, else union of the sub-regions (official seg > 0)",
            "normalisation": "each volume by its OWN 0.5/99.5 percentiles (numpy linear, own dtype, all voxels), "
            "lower bound raised to 0 if negative; (clip(x, lo, hi) - lo) / (hi - lo) in float64 (prediction by "
            "its own statistics)",
            "ssim": "5-D (1, 1, X, Y, Z) input: torchmetrics 3D SSIM of pred*mask vs gt*mask (lesion) and "
            "pred*(1-mask) vs gt*(1-mask) (non_lesion), "
            + TORCHMETRICS_DEFAULT.describe()
            + " (PyTorch reflect padding of 5), float64 map, mean over the full volume, data range "
            "max(pred.max() - pred.min(), gt.max() - gt.min()) of the masked volumes",
            "precision": "the float64 mean rounded to float32 (torchmetrics' float32 metric state)",
            "regions": {"lesion": "tumour (union of labels)", "non_lesion": "1 - tumour mask (background included)"},
            "undefined": "no percentile scale or data range 0: no value (official: NaN); an axis <= 5 voxels: no "
            "value (official: error)",
            "not_computed": "segmentation Dice/HD95 (needs a tumour segmenter)",
        },
        reasons,
    )


#: No official evaluation code of the challenge has been found: the mode says so in every record.
UDPET_SOURCE = "transcribed from the challenge description, not checked against official code (none found)"

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
            "source": UDPET_SOURCE,
            "nrmse": "RMSE / (max - min of gt), whole volume",
            "psnr": "20 log10(max(gt) / RMSE), whole volume",
            "ssim": "each image divided by its own max; "
            + SKIMAGE_DEFAULT.describe()
            + ", data range 1 (assumed flavour)",
            "vois": "signed % error of SUVmean / SUVmax in " + ", ".join(UDPET_VOIS) + " masks when present",
        },
        reasons,
    )


LDCT_BENCHMARK_SOURCE = (
    "github.com/eeulig/ldct-benchmark ldctbench/evaluate/utils.py (compute_metric) @ "
    "09b1011bc2fb77ef4fc734cec1e961a20c754910"
)
_LDCT_OFFSET = 1024.0  # the package works on stored CT values, HU + 1024
_LDCT_RMSE_MAX = 2924.0  # RMSE clip in HU + 1024: bone maximum 1900 HU + 1024
#: cmsbench window name -> (the package's exam-type letter, centre in HU + 1024, width)
_LDCT_WINDOWS: dict[str, tuple[str, float, float]] = {
    "abdomen": ("L", 1024.0 + 50.0, 400.0),
    "chest": ("C", 1024.0 - 600.0, 1500.0),
    "head": ("N", 1024.0 + 40.0, 80.0),
}
_LDCT_SSIM_WIN = 7  # scikit-image's default uniform window
_LDCT_SLAB = 16  # slices per block (bounds the float32 working set on 512x512 slices)


def _ldct_window(x: np.ndarray, centre: float, width: float) -> np.ndarray:
    """The package's DICOM linear window (``apply_center_width``, output [0, 1]) in the input's float32:
    ``(x - (c - 0.5)) / (w - 1) + 0.5`` for ``c - 0.5 - (w - 1)/2 < x <= c - 0.5 + (w - 1)/2``, 0 at or
    below that interval, 1 above it; each operation rounded to float32 as numpy does for a float32
    array and Python scalars."""
    c, w = float(centre), float(width)
    lower, upper = c - 0.5 - (w - 1.0) / 2.0, c - 0.5 + (w - 1.0) / 2.0
    out = (x - np.float32(c - 0.5)) / np.float32(w - 1.0) + np.float32(0.5)
    out[x <= np.float32(lower)] = 0.0
    out[x > np.float32(upper)] = 1.0
    return out


def _ldct_mse_slices(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-slice (last axis) MSE as scikit-image's ``mean_squared_error`` of float32 slices: squared
    differences in float32, the mean accumulated in float64."""
    d = a - b
    return np.mean(d * d, axis=(0, 1), dtype=np.float64)


def _skimage_ssim_map(x: np.ndarray, y: np.ndarray, size, cov_norm: float, c1: float, c2: float) -> np.ndarray:
    """scikit-image's SSIM map (uniform window of ``size``, sample-covariance factor ``cov_norm``) with every
    operation in scikit-image's order and in the inputs' dtype (float32 inputs stay float32 throughout)."""
    from scipy.ndimage import uniform_filter

    mx, my = uniform_filter(x, size), uniform_filter(y, size)
    vx = cov_norm * (uniform_filter(x * x, size) - mx * mx)
    vy = cov_norm * (uniform_filter(y * y, size) - my * my)
    vxy = cov_norm * (uniform_filter(x * y, size) - mx * my)
    num = (2 * mx * my + c1) * (2 * vxy + c2)
    den = (mx**2 + my**2 + c1) * (vx + vy + c2)
    return num / den


def _ldct_ssim_slices(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Per-slice (last axis) SSIM as scikit-image's ``structural_similarity(t, p, data_range=1.0)`` computes
    it for float32 slices: uniform 7x7 window (scipy ``uniform_filter``, each pass rounded to float32),
    sample covariance 49/48, K1 0.01, K2 0.03, C = (K * 1.0)^2, every product in float32 in the same order,
    and the mean of the map after cropping 3 pixels from every side, accumulated in float64."""

    size = (_LDCT_SSIM_WIN, _LDCT_SSIM_WIN, 1)  # a size-1 axis is skipped: 2D per slice
    n = _LDCT_SSIM_WIN**2
    cov_norm = n / (n - 1)
    c1, c2 = (0.01 * 1.0) ** 2, (0.03 * 1.0) ** 2
    r = (_LDCT_SSIM_WIN - 1) // 2
    out = np.empty(a.shape[2], np.float64)
    for k0 in range(0, a.shape[2], _LDCT_SLAB):
        x = np.ascontiguousarray(a[..., k0 : k0 + _LDCT_SLAB])
        y = np.ascontiguousarray(b[..., k0 : k0 + _LDCT_SLAB])
        smap = _skimage_ssim_map(x, y, size, cov_norm, c1, c2)
        out[k0 : k0 + x.shape[2]] = smap[r:-r, r:-r].mean(axis=(0, 1), dtype=np.float64)
    return out


def ldct_benchmark(target, prediction, masks, task, metadata, case_id, device) -> ModeResult:
    """ldct-benchmark ``compute_metric`` (eeulig/ldct-benchmark ``ldctbench/evaluate/utils.py``), the way its
    test script calls it (float32 slices in HU + 1024), re-implemented and checked against the official
    code to 1e-6 relative (``tests/official``).

    Whole slices, no mask (region ``global``); 2D slices along the LAST axis (the package's images
    ``(n_slices, 1, H, W)``); every metric is computed per slice and the case value is the mean over the
    case's slices (the package's table pools the slices of all patients of an exam type). Quirks of the
    official code, all reproduced:

    - Units: the images are shifted to HU + 1024 (the stored DICOM values the package reads) and held in
      float32, as the package's data pipeline hands them to ``compute_metric``; every step below is
      float32 where the official numpy code is.
    - Windows (``CW``): chest C-600/W1500, abdomen C50/W400, head C40/W80 HU, i.e. centres 424, 1074,
      1064 in HU + 1024. The DICOM linear window (``apply_center_width``): values at or below
      ``c - 0.5 - (w - 1)/2`` map to 0, above ``c - 0.5 + (w - 1)/2`` to 1, in between
      ``(x - (c - 0.5)) / (w - 1) + 0.5``: a scale of ``w - 1`` (79 HU for the head window, not 80) and a
      centre half a unit low, computed in float32.
    - ``ssim_<window>``: scikit-image ``structural_similarity`` defaults on the windowed float32 slices with
      ``data_range=1.0``: uniform 7x7 window, sample covariance, K1 0.01, K2 0.03, float32 arithmetic
      (scikit-image keeps float32 input in float32), mean of the map after cropping 3 pixels per side
      (float64 accumulation). Slices must be at least 7x7.
    - ``psnr_<window>``: ``10 log10(1 / MSE)`` of the windowed float32 slices, MSE = scikit-image
      ``mean_squared_error`` (float32 squared differences, float64 mean); ``inf`` for an identical slice
      (then the case mean is ``inf``).
    - ``rmse``: both slices clipped to [0, 2924] in HU + 1024 (= [-1024, 1900] HU: metal and values below
      air are clipped) before ``sqrt(MSE)`` (float32 differences); in HU, not windowed.
    - Exam type: the package computes SSIM and PSNR in ONE window per scan, chosen by the exam type (the
      first letter of the Mayo patient id: C chest, L abdomen, N head); cmsbench reports all three
      windows, each equal to the official value for that exam type: read the scan's own window.
    """
    gt = np.asarray(target)
    if min(gt.shape[:2]) < _LDCT_SSIM_WIN:
        raise MetricError(
            f"mode 'ldct_benchmark' needs slices of at least 7x7 voxels, got {gt.shape} (case {case_id!r})"
        )
    t32 = (np.asarray(target, np.float64) + _LDCT_OFFSET).astype(np.float32)
    p32 = (np.asarray(prediction, np.float64) + _LDCT_OFFSET).astype(np.float32)
    values: dict[str, float | None] = {}
    hi = np.float32(_LDCT_RMSE_MAX)
    values["rmse"] = float(np.mean(np.sqrt(_ldct_mse_slices(np.clip(t32, 0, hi), np.clip(p32, 0, hi)))))
    for name, (_, centre, width) in _LDCT_WINDOWS.items():
        a, b = _ldct_window(t32, centre, width), _ldct_window(p32, centre, width)
        with np.errstate(divide="ignore"):
            psnr_s = 10 * np.log10(1.0 / _ldct_mse_slices(a, b))
        values[f"psnr_{name}"] = float(np.mean(psnr_s))
        values[f"ssim_{name}"] = float(np.mean(_ldct_ssim_slices(a, b)))
    return ModeResult(
        {"global": values},
        {
            "evaluator": "ldct-benchmark compute_metric",
            "source": LDCT_BENCHMARK_SOURCE,
            "units": "HU + 1024, float32 (as the package's data pipeline passes them)",
            "windows": {
                k: {"exam_type": e, "centre_hu": c - _LDCT_OFFSET, "width": w} for k, (e, c, w) in _LDCT_WINDOWS.items()
            },
            "window_formula": "DICOM linear: 0 at or below c - 0.5 - (w - 1)/2, 1 above c - 0.5 + (w - 1)/2, else "
            "(x - (c - 0.5)) / (w - 1) + 0.5 (float32)",
            "per_slice": "2D slices along the last axis; case value = mean over the case's slices (the package's "
            "table pools slices across patients of an exam type)",
            "ssim": "scikit-image structural_similarity defaults on the windowed float32 slices, data range 1: "
            "uniform 7x7, sample covariance, K1 0.01, K2 0.03, float32 arithmetic, 3-pixel border cropped",
            "psnr": "10 log10(1 / MSE) of the windowed slices (MSE: float32 squared differences, float64 mean; "
            "inf for an identical slice)",
            "rmse": "both clipped to [0, 2924] in HU + 1024 ([-1024, 1900] HU), sqrt of the per-slice MSE, HU",
            "exam_type": "the package uses one window per scan (Mayo id letter: C chest, L abdomen, N head); "
            "all three are reported here",
        },
    )

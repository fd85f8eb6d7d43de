"""The registered scoring modes: ``default`` (the task's own conventions) and the compatibility modes
that reproduce official challenge evaluators (implementations and their quirks: :mod:`.compat`).

Each :class:`~cmsbench.benchmark.metrics.api.Mode` names the official code it reproduces (``source``)
and how that was checked (``verified``); both go into every record scored with it.
"""

from __future__ import annotations

from cmsbench.benchmark import compat
from cmsbench.benchmark.downstream import mode_scores
from cmsbench.benchmark.metrics.api import Mode

_HIGHER = ("psnr", "ssim", "msssim", "ms_ssim")
_SIGNED = ("suvmean_pct_error", "suvmax_pct_error")  # signed errors: not ranked


def _directions(*names: str) -> dict[str, str]:
    out = {}
    for n in names:
        if n in _SIGNED:
            continue
        base = n.split("_")[0]
        out[n] = "higher" if (n in _HIGHER or base in _HIGHER) else "lower"
    return out


DEFAULT = Mode("default", "the task's own conventions (data range, regions, SSIM flavour), stated in the record")
SYNTHRAD2023 = Mode(
    "synthrad2023", "SynthRAD2023 evaluation (MAE, PSNR, SSIM in the body mask, HU)", compat.synthrad2023,
    source="github.com/SynthRAD2023/metrics functions/image_metrics.py @ 3200007e7029282416445719f7aae27e3a87308d",
    verified="equal to the official ImageMetrics mae/psnr/ssim run beside it as score_patient calls them "
    "(tests/official) on 12 phantom MR-to-CT cases, 8x9x12 to 120x110x104 voxels, float32/int16/float64: max "
    "relative difference MAE 0, PSNR 0, SSIM 0 (the earlier float64 SSIM map differed by up to 1.2e-6)",
    directions=_directions("mae", "psnr", "ssim"))
SYNTHRAD2025 = Mode(
    "synthrad2025", "SynthRAD2025 evaluation (MAE, PSNR, MS-SSIM in the body mask, HU)", compat.synthrad2025,
    source=compat.SYNTHRAD2025_SOURCE,
    verified="equal to the official code run beside it (tests/official) on 12 phantom MR->CT cases, 5x7x12 to "
    "120x110x104 voxels, float32/int16/float64: max relative difference MAE 2.5e-16, PSNR 1.3e-9, MS-SSIM 2.7e-9",
    directions=_directions("mae", "psnr", "msssim", "ms_ssim"))
BRASYN = Mode(
    "brasyn", "BraSyn (BraTS missing-MRI synthesis) SSIM in and outside the tumour", compat.brasyn,
    source=compat.BRASYN_SOURCE,
    verified="equal to the official ssim.py compute_metrics run beside it (tests/official): 7 phantom cases (12x10x8 "
    "to 30x26x22, float32/float64/int16, negative and positive lower percentiles) and the real BraTS 2023 case "
    "BraTS-GLI-00000-000 (seeded predictions of all 4 modalities and the shipped outputs; tumour crop 36x36x30 and "
    "whole volume at stride 6x6x5: the official float64 conv3d cannot hold the full volume on CPU): max relative "
    "difference SSIM 0 (tumour and non-tumour)",
    directions=_directions("ssim"))
BRATS_INPAINTING = Mode(
    "brats_inpainting", "BraTS 2023 inpainting evaluation compute_metrics (MSE, PSNR, SSIM in the mask)",
    compat.brats_inpainting, source=compat.BRATS_INPAINTING_SOURCE,
    verified="equal to the official compute_metrics run beside it (tests/official), every region as the mask: 7 "
    "phantom cases (12x10x8 to 30x26x22, float32/float64/int16) and the real BraTS 2023 case BraTS-GLI-00000-000 "
    "(tumour crop 36x36x30 and whole volume at stride 6x6x5; the official float64 conv3d cannot hold the full "
    "volume on CPU): max relative difference MSE 0, PSNR 0, SSIM 1.9e-14",
    directions=_directions("mse", "psnr", "ssim"))
UDPET = Mode(
    "udpet", "UDPET / ULD-PET challenge (NRMSE, PSNR, SSIM, SUV errors)", compat.udpet,
    source=compat.UDPET_SOURCE,
    verified="not checked against official code: no official code has been found", directions=_directions("nrmse", "psnr", "ssim",
                                                                         "suvmean_pct_error", "suvmax_pct_error"))
LDCT_BENCHMARK = Mode(
    "ldct_benchmark", "ldct-benchmark compute_metric (per-slice DICOM-windowed PSNR/SSIM, clipped RMSE)",
    compat.ldct_benchmark, source=compat.LDCT_BENCHMARK_SOURCE,
    verified="equal to the official compute_metric run beside it (tests/official) on 7 low-dose-CT phantom cases "
    "(7x9 to 128x128 slices, 2-6 slices, one with an identical slice: PSNR inf), each window as the exam type: max "
    "relative difference SSIM 0, PSNR 2.5e-16, RMSE 0",
    directions=_directions("rmse", *(f"{k}_{w}" for k in ("psnr", "ssim") for w in ("abdomen", "chest", "head"))))

# ------------------------------------------------------ segmentation modes (need --downstream and a segmenter)
BRASYN2023 = Mode(
    "brasyn2023", "BraSyn 2023/2024: BraSyn SSIM in and outside the tumour, and BraTS 2023 lesion-wise Dice / "
    "HD95 on WT/TC/ET of a segmenter given 3 real + 1 synthetic sequence (--downstream)", compat.brasyn,
    source=compat.BRASYN_SOURCE + "; lesion-wise: github.com/rachitsaluja/BraTS-2023-Metrics metrics.py @ "
    "43c905242b2eecf421d4ab2da7af8ece9777d322",
    verified="image part: as mode 'brasyn'; lesion-wise part equal to the official metrics.py run beside it on "
    "constructed label maps (tests/official, frozen outputs in tests/official/frozen/brats2023_lesionwise.json). The "
    "challenge's segmenters (FeTS consensus 2023, nnU-Net 2024) are not shipped: give yours with --segmenter",
    directions={"ssim": "higher", "lesionwise_dice": "higher", "lesionwise_hd95": "lower", "dice_drop": "lower"},
    downstream=mode_scores.brasyn2023)
BRASYN2025 = Mode(
    "brasyn2025", "BraSyn 2025: BraSyn SSIM, and Dice / HD95 (voxels) per label 1/2/3 of a segmenter given 3 real "
    "+ 1 synthetic sequence (--downstream)", compat.brasyn,
    source=compat.BRASYN_SOURCE + "; segmentation: github.com/hongweilibran/BraSyn_tutorial "
    "get_segmentation_metric.py @ ab4395084eb160a220e352ef7901551745a46bbe",
    verified="segmentation part equal to the tutorial's get_segmentation_metric.py run beside it (tests/official, "
    "frozen outputs in tests/official/frozen/brasyn2025_seg.json) on constructed label maps; image part as mode "
    "'brasyn'",
    directions={"ssim": "higher", "dice": "higher", "hd95": "lower"}, downstream=mode_scores.brasyn2025)
SYNTHRAD2025_SEG = Mode(
    "synthrad2025_seg", "SynthRAD2025: MAE / PSNR / MS-SSIM in the body, and Dice / HD95 of a segmenter's output on "
    "the synthetic CT against its output on the real CT (--downstream, e.g. TotalSegmentator through --segmenter "
    "command)", compat.synthrad2025,
    source=compat.SYNTHRAD2025_SOURCE + "; segmentation_metrics.py @ 17cac47b6288fcb66c5818c9d50eb9534d613fa2",
    verified="image part as mode 'synthrad2025'; segmentation part equal to MONAI's DiceMetric / "
    "HausdorffDistanceMetric called as the official segmentation_metrics.py loop calls them "
    "(tests/test_downstream_conventions.py, constructed label maps); not run beside the official script itself",
    directions={**_directions("mae", "psnr", "msssim", "ms_ssim"), "seg_dice": "higher", "seg_hd95": "lower"},
    downstream=mode_scores.synthrad2025_seg)

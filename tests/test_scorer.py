"""score_case: record format, conventions, region policy, lesions, errors."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np
import pytest
from scipy import ndimage

from cmsbench.benchmark.metrics import pixel
from cmsbench.benchmark.metrics.ssim import SKIMAGE_DEFAULT, SSIMConfig, ssim_map
from cmsbench.benchmark.scorer import CaseScore, available_modes, score_case
from cmsbench.errors import CmsbenchError, MetricError, UnknownNameError
from cmsbench.tasks.builtin import BRATS_FLAIR, IXI_T1_T2, LDCT, LDPET, MR_CT


def ball(shape, centre, radius):
    idx = np.indices(shape)
    return sum((i - c) ** 2 for i, c in zip(idx, centre, strict=False)) <= radius**2


SHAPE = (36, 34, 30)
BRAIN = ball(SHAPE, (18, 17, 15), 14)
LES_A = ball(SHAPE, (12, 17, 15), 4)
LES_B = ball(SHAPE, (26, 17, 15), 2)
MASKS = {
    "brain": BRAIN,
    "necrotic": LES_A & ball(SHAPE, (12, 17, 15), 2),
    "edema": (LES_A & ~ball(SHAPE, (12, 17, 15), 2)) | LES_B,
    "enhancing": np.zeros(SHAPE, bool),
}


def mr_gt(seed=0):
    rng = np.random.default_rng(seed)
    tex = 1 + 0.25 * ndimage.gaussian_filter(rng.normal(0, 1, SHAPE), 1.2)
    return np.where(BRAIN, tex, 0.0).astype(np.float32)


def test_available_modes_and_unknown_mode_suggests():
    modes = available_modes()
    assert modes[0] == "default"
    assert set(modes) >= {"synthrad2023", "synthrad2025", "brasyn", "brats_inpainting", "udpet", "ldct_benchmark"}
    gt = mr_gt()
    with pytest.raises(UnknownNameError, match="did you mean .*'synthrad2023'"):
        score_case(gt, gt, MASKS, BRATS_FLAIR, mode="synthrad2032")


def test_default_brats_values_match_direct_metrics():
    gt = mr_gt()
    rng = np.random.default_rng(1)
    pr = (gt + np.where(BRAIN, 0.05 * rng.standard_normal(SHAPE), 0)).astype(np.float32)
    s = score_case(gt, pr, MASKS, BRATS_FLAIR, case_id="BraTS-1")
    assert set(s.values) == set(BRATS_FLAIR.regions)
    les = LES_A | LES_B
    smap = ssim_map(gt, pr, 4.0)
    for region, m in {"brain": BRAIN, "lesion": les, "healthy": BRAIN & ~les, "edema": MASKS["edema"]}.items():
        assert s.value(region, "mae") == pytest.approx(pixel.mae(gt, pr, m), rel=1e-6)
        assert s.value(region, "psnr") == pytest.approx(pixel.psnr(gt, pr, 4.0, m), rel=1e-6)
        assert s.value(region, "nmse") == pytest.approx(pixel.nmse(gt, pr, m), rel=1e-6)
        assert s.value(region, "ssim") == pytest.approx(smap[m].astype(np.float64).mean(), rel=1e-6)
    assert s.values["enhancing"]["psnr"] is None
    assert s.nan_reasons["enhancing/psnr"] == "empty mask: enhancing"
    assert [les["n_voxels"] for les in s.lesions] == [int(LES_A.sum()), int(LES_B.sum())]
    assert s.convention["data_range"].startswith("fixed 4")
    assert "Gaussian" in s.convention["ssim"]


def test_perfect_outside_lesion_wrong_inside():
    gt = mr_gt()
    les = LES_A | LES_B
    pr = gt.copy()
    pr[les] = 0.3  # wrong inside the lesion only
    s = score_case(gt, pr, MASKS, BRATS_FLAIR)
    assert s.value("healthy", "mae") == 0.0
    assert s.value("healthy", "psnr") == math.inf
    assert s.value("healthy", "nmse") == 0.0
    assert s.value("lesion", "mae") > 0.3
    assert s.value("lesion", "psnr") < 25
    # SSIM windows straddle the lesion border: healthy voxels away from it are exactly 1
    far = BRAIN & ~ndimage.binary_dilation(les, np.ones((3, 3, 3)), iterations=5)  # 11-voxel window
    smap = ssim_map(gt, pr, 4.0)
    assert smap[far].min() == pytest.approx(1.0, abs=1e-6)
    assert s.value("healthy", "ssim") > s.value("lesion", "ssim") + 0.2
    assert s.value("lesion_ring", "mae") == 0.0
    # JSON-safe with infinities
    d = s.to_dict()
    text = json.dumps(d, allow_nan=False)
    assert d["values"]["healthy"]["psnr"] == "inf"
    back = CaseScore.from_dict(json.loads(text))
    assert back.value("healthy", "psnr") == math.inf
    assert back.values == s.values and back.nan_reasons == s.nan_reasons
    assert back.lesions[0]["index"] == s.lesions[0]["index"]


def test_empty_lesion_is_nan_with_reason():
    gt = mr_gt()
    empty = {"brain": BRAIN, "lesion": np.zeros(SHAPE, bool)}
    task = dataclasses.replace(BRATS_FLAIR, regions=("brain", "healthy", "lesion", "lesion_ring"))
    s = score_case(gt, gt, empty, task)
    for metric in task.metrics:
        assert s.values["lesion"][metric] is None
        assert s.nan_reasons[f"lesion/{metric}"] == "empty mask: lesion"
        assert s.values["lesion_ring"][metric] is None
    assert s.value("healthy", "mae") == 0.0
    assert s.lesions == []


def test_bad_inputs_raise_clear_errors():
    gt = mr_gt()
    with pytest.raises(MetricError, match="shape"):
        score_case(gt, gt[:-1], MASKS, BRATS_FLAIR, case_id="c3")
    bad = gt.copy()
    bad[3, 3, 3] = np.nan
    with pytest.raises(MetricError, match=r"case 'c9'.*prediction.*1 NaN"):
        score_case(gt, bad, MASKS, BRATS_FLAIR, case_id="c9")
    bad[3, 3, 3] = np.inf
    with pytest.raises(MetricError, match="Inf"):
        score_case(gt, bad, MASKS, BRATS_FLAIR, case_id="c9")
    with pytest.raises(MetricError, match="data range"):
        score_case(gt, gt, MASKS, dataclasses.replace(BRATS_FLAIR, data_range=None))
    with pytest.raises(MetricError, match="brain"):
        score_case(gt, gt, {}, BRATS_FLAIR, case_id="c4")
    with pytest.raises(UnknownNameError, match="(?i)did you mean 'psnr'"):
        score_case(gt, gt, MASKS, dataclasses.replace(BRATS_FLAIR, metrics=("psnrr", "ssim"), main_metric="ssim"))
    assert issubclass(MetricError, CmsbenchError)


def test_ct_window_and_bone():
    rng = np.random.default_rng(4)
    body = BRAIN
    gt = np.where(body, ndimage.gaussian_filter(rng.normal(0, 1, SHAPE), 1.0) * 1500 + 200, -1000).astype(np.float32)
    pr = (gt + rng.normal(0, 50, SHAPE)).astype(np.float32)
    s = score_case(gt, pr, {"body": body}, MR_CT)
    bone = body & (gt > 300)
    assert s.value("bone", "mae") == pytest.approx(pixel.mae(gt, pr, bone), rel=1e-6)
    gc, pc = np.clip(gt, -1024, 3000), np.clip(pr, -1024, 3000)
    assert s.value("body", "psnr") == pytest.approx(pixel.psnr(gc, pc, 4024, body), rel=1e-6)
    smap = ssim_map(gc, pc, 4024.0)
    assert s.value("body", "ssim") == pytest.approx(smap[body].astype(np.float64).mean(), rel=1e-6)
    # LDCT: research window for PSNR/SSIM, raw HU for MAE, plus display-window metrics
    s2 = score_case(gt, pr, {"body": body}, LDCT)
    assert s2.value("body", "mae") == pytest.approx(pixel.mae(gt, pr, body), rel=1e-6)
    assert s2.value("global", "psnr") == pytest.approx(
        pixel.psnr(np.clip(gt, -160, 240), np.clip(pr, -160, 240), 400), rel=1e-6
    )
    lo, hi = -1350.0, 150.0
    ref = pixel.psnr(np.clip(gt, lo, hi), np.clip(pr, lo, hi), hi - lo, body)
    assert s2.value("body", "psnr_chest") == pytest.approx(ref, rel=1e-6)
    assert set(s2.convention["ct_windows"]) == {"abdomen", "chest", "head"}


def test_pet_gt_range_and_suv():
    rng = np.random.default_rng(5)
    gt = (np.abs(ndimage.gaussian_filter(rng.normal(0, 1, SHAPE), 1.5)) * 30000 + 500).astype(np.float32)
    les = LES_A | LES_B
    gt[les] *= 3
    pr = (gt * (1 + 0.05 * rng.standard_normal(SHAPE))).astype(np.float32)
    md = {"weight_kg": 70.0, "injected_activity_bq": 3.0e8, "acquisition_delay_s": 3600.0, "half_life_s": 6586.2}
    s = score_case(gt, pr, {"body": BRAIN, "lesion": les}, LDPET, metadata=md)
    L = float(gt[les].max() - gt[les].min())
    assert s.value("lesion", "psnr") == pytest.approx(pixel.psnr(gt, pr, L, les), rel=1e-6)
    assert s.value("lesion", "nrmse") == pytest.approx(pixel.nrmse(gt, pr, L, les), rel=1e-6)
    factor = 70e3 / (3.0e8 * 2 ** (-3600 / 6586.2))
    suv_g, suv_p = gt[les].astype(np.float64) * factor, pr[les].astype(np.float64) * factor
    assert s.value("lesion", "suvmean_pct_error") == pytest.approx(
        100 * (suv_p.mean() - suv_g.mean()) / suv_g.mean(), rel=1e-6
    )
    assert s.value("lesion", "suvmax_pct_error") == pytest.approx(
        100 * (suv_p.max() - suv_g.max()) / suv_g.max(), rel=1e-6
    )
    assert f"{factor:.6g}" in s.convention["suv"]
    assert len(s.lesions) == 2 and "suvmax_pct_error" in s.lesions[0]
    s_nomd = score_case(gt, pr, {"body": BRAIN, "lesion": les}, LDPET)
    assert "unavailable" in s_nomd.convention["suv"]


def test_ssim_config_override_and_lpips_unavailable():
    gt = mr_gt()
    rng = np.random.default_rng(2)
    pr = (gt + 0.05 * rng.standard_normal(SHAPE)).astype(np.float32)
    head = {"head": BRAIN}
    task = dataclasses.replace(IXI_T1_T2, metrics=("psnr", "ssim", "lpips"))
    s = score_case(gt, pr, head, task, ssim_config=SKIMAGE_DEFAULT)
    ref = ssim_map(gt, pr, 4.0, SKIMAGE_DEFAULT)
    inner = BRAIN & ~np.isnan(ref)
    assert s.value("head", "ssim") == pytest.approx(ref[inner].astype(np.float64).mean(), rel=1e-6)
    assert s.convention["ssim_config"]["window"] == "uniform"
    assert s.values["head"]["lpips"] is None and "lpips" in s.nan_reasons["head/lpips"].lower()
    s2d = score_case(gt, pr, head, IXI_T1_T2, ssim_config=SSIMConfig(spatial_dims=2))
    assert s2d.convention["ssim_config"]["spatial_dims"] == 2
    assert s2d.value("head", "ssim") != pytest.approx(s.value("head", "ssim"), rel=1e-6)

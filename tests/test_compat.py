"""Each compatibility mode against a direct implementation of the evaluator as documented in
metrics.md (numpy / scikit-image / torchmetrics written straight from the formula)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import ndimage
from skimage.metrics import peak_signal_noise_ratio, structural_similarity
from skimage.util import crop
from torchmetrics.functional import structural_similarity_index_measure as tm_ssim

from cmsbench.benchmark.scorer import score_case
from cmsbench.tasks.builtin import BRATS_FLAIR, LDCT, LDPET, MR_CT

RTOL = 1e-5


def ball(shape, centre, radius):
    idx = np.indices(shape)
    return sum((i - c) ** 2 for i, c in zip(idx, centre, strict=False)) <= radius**2


def ct_case(shape=(32, 30, 28), seed=0):
    rng = np.random.default_rng(seed)
    body = ball(shape, tuple(s // 2 for s in shape), min(shape) // 2 - 2)
    gt = np.where(body, ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.2) * 2500, -1000.0)
    gt = np.clip(gt, -1100, 3200)  # values outside the windows exercise clipping
    pr = gt + rng.normal(0, 80, shape)
    return gt.astype(np.float32), pr.astype(np.float32), body


def mr_case(shape=(32, 30, 28), seed=1, lesion_gain=2.5):
    rng = np.random.default_rng(seed)
    brain = ball(shape, tuple(s // 2 for s in shape), min(shape) // 2 - 2)
    gt = np.where(brain, 1 + 0.3 * ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.0), 0.0)
    les = ball(shape, (12, 15, 14), 4)
    gt = np.where(les, gt * lesion_gain, gt)
    pr = np.where(brain, gt + rng.normal(0, 0.08, shape), 0.0)
    masks = {
        "brain": brain,
        "necrotic": les & ball(shape, (12, 15, 14), 2),
        "edema": les & ~ball(shape, (12, 15, 14), 2),
    }
    return gt.astype(np.float32), pr.astype(np.float32), masks


def test_synthrad2023_direct():
    gt, pr, body = ct_case()
    s = score_case(gt, pr, {"body": body}, MR_CT, mode="synthrad2023", case_id="c")
    g, p = gt.astype(np.float64), pr.astype(np.float64)
    mae = np.sum(np.abs(g * body - p * body)) / body.sum()
    gc, pc = np.clip(g, -1024, 3000), np.clip(p, -1024, 3000)
    psnr = peak_signal_noise_ratio(gc[body], pc[body], data_range=4024)
    gs, ps = np.where(body, gc, -1024) + 1024, np.where(body, pc, -1024) + 1024
    _, smap = structural_similarity(gs, ps, data_range=4024, full=True)
    ssim = crop(smap, 3)[crop(body, 3)].mean(dtype=np.float64)
    assert s.value("body", "mae") == pytest.approx(mae, rel=1e-10)
    assert s.value("body", "psnr") == pytest.approx(psnr, rel=1e-10)
    assert s.value("body", "ssim") == pytest.approx(ssim, rel=RTOL)
    assert s.mode == "synthrad2023" and "4024" in s.convention["psnr"]


def test_synthrad2025_unclipped_mae_and_small_volumes_get_ms_ssim():
    """The official code's quirks are checked against its own outputs in tests/test_compat_frozen.py; here:
    MAE over body voxels is unclipped (HU beyond 3071 count in full), and a volume smaller than 97 voxels
    per axis gets an MS-SSIM (edge-padded to 97), not NaN."""
    gt, pr, body = ct_case()
    pr = pr.copy()
    pr[body] += 4000.0  # far beyond the PSNR/SSIM clip range
    s = score_case(gt, pr, {"body": body}, MR_CT, mode="synthrad2025")
    assert s.value("body", "mae") == pytest.approx(np.abs(gt - pr)[body].mean(), rel=1e-12)
    small = score_case(gt, gt, {"body": body}, MR_CT, mode="synthrad2025")
    assert min(gt.shape) < 97 and small.value("body", "ms_ssim") == pytest.approx(1.0, abs=1e-12)


def test_brasyn_direct():
    gt, pr, masks = mr_case()
    s = score_case(gt, pr, masks, BRATS_FLAIR, mode="brasyn")
    les = masks["necrotic"] | masks["edema"]

    def norm(a):
        lo, hi = np.percentile(a, [0.5, 99.5])
        return (np.clip(a, lo, hi) - lo) / (hi - lo)

    g, p = norm(gt.astype(np.float64)), norm(pr.astype(np.float64))
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731, B023
    ref_les = float(tm_ssim(t(p * les), t(g * les)))  # torchmetrics default: data_range from the images
    ref_non = float(tm_ssim(t(p * ~les), t(g * ~les)))
    assert s.value("lesion", "ssim") == pytest.approx(ref_les, rel=RTOL)
    assert s.value("non_lesion", "ssim") == pytest.approx(ref_non, rel=RTOL)


def test_brats_inpainting_direct_official_formula():
    """The official generate_metrics, transcribed with torchmetrics on a (1, X, Y, Z) tensor (float64)."""
    gt, pr, masks = mr_case(lesion_gain=0.9)  # a bright lesion would be clipped flat by healthy percentiles
    s = score_case(gt, pr, masks, BRATS_FLAIR, mode="brats_inpainting")
    for region in ("lesion", "healthy"):
        m = masks["necrotic"] | masks["edema"]
        if region == "healthy":
            m = masks["brain"] & ~m
        g, p = gt.astype(np.float64), pr.astype(np.float64)
        voided = g * ~m
        lo, hi = np.percentile(voided, [0.5, 99.5])
        lo = max(lo, 0.0)
        nz = lambda a: (np.clip(a, lo, hi) - lo) / (hi - lo)  # noqa: E731, B023
        gi, pi = nz(g * m), nz(p * m)
        tg, tp, tm = (torch.from_numpy(a)[None] for a in (gi, pi, m))
        _, full = tm_ssim(tp, tg, return_full_image=True)
        ssim = float(full[tm].mean())
        mse = float(np.mean((gi[m] - pi[m]) ** 2))
        assert s.value(region, "ssim") == pytest.approx(ssim, rel=RTOL)
        assert s.value(region, "mse") == pytest.approx(mse, rel=1e-10)
        assert s.value(region, "psnr") == pytest.approx(10 * math.log10(1 / mse), rel=1e-10)
        assert s.value(region, "mae") == pytest.approx(np.abs(gi[m] - pi[m]).mean(), rel=1e-10)


def test_udpet_direct():
    rng = np.random.default_rng(3)
    shape = (30, 28, 26)
    gt = (np.abs(ndimage.gaussian_filter(rng.normal(0, 1, shape), 1.5)) * 20000 + 100).astype(np.float32)
    pr = (gt * (1 + 0.05 * rng.standard_normal(shape))).astype(np.float32)
    les = ball(shape, (15, 14, 13), 3)
    s = score_case(gt, pr, {"body": np.ones(shape, bool), "lesion": les}, LDPET, mode="udpet")
    g, p = gt.astype(np.float64), pr.astype(np.float64)
    rmse = np.sqrt(np.mean((g - p) ** 2))
    assert s.value("global", "nrmse") == pytest.approx(rmse / (g.max() - g.min()), rel=1e-10)
    assert s.value("global", "psnr") == pytest.approx(20 * np.log10(g.max() / rmse), rel=1e-10)
    assert s.value("global", "ssim") == pytest.approx(
        structural_similarity(g / g.max(), p / p.max(), data_range=1.0), rel=RTOL
    )
    ref_mean = 100 * (p[les].mean() - g[les].mean()) / g[les].mean()
    ref_max = 100 * (p[les].max() - g[les].max()) / g[les].max()
    assert s.value("lesion", "suvmean_pct_error") == pytest.approx(ref_mean, rel=1e-10)
    assert s.value("lesion", "suvmax_pct_error") == pytest.approx(ref_max, rel=1e-10)


def test_ldct_benchmark_direct():
    gt, pr, _ = ct_case(shape=(30, 28, 6))
    s = score_case(gt, pr, {}, LDCT, mode="ldct_benchmark")
    g, p = gt.astype(np.float64), pr.astype(np.float64)
    windows = {"abdomen": (50, 400), "chest": (-600, 1500), "head": (40, 80)}
    rmse = np.mean([np.sqrt(np.mean((g[..., k] - p[..., k]) ** 2)) for k in range(g.shape[2])])
    assert s.value("global", "rmse") == pytest.approx(rmse, rel=1e-10)
    for name, (c, w) in windows.items():
        lo, hi = c - w / 2, c + w / 2
        a, b = (np.clip(g, lo, hi) - lo) / w, (np.clip(p, lo, hi) - lo) / w
        ss = [structural_similarity(a[..., k], b[..., k], data_range=1.0) for k in range(g.shape[2])]
        ps = [peak_signal_noise_ratio(a[..., k], b[..., k], data_range=1.0) for k in range(g.shape[2])]
        assert s.value("global", f"ssim_{name}") == pytest.approx(np.mean(ss), rel=RTOL)
        assert s.value("global", f"psnr_{name}") == pytest.approx(np.mean(ps), rel=1e-10)


def test_mode_needs_its_mask():
    from cmsbench.errors import MetricError

    gt, pr, _ = ct_case()
    with pytest.raises(MetricError, match="body"):
        score_case(gt, pr, {}, MR_CT, mode="synthrad2023", case_id="case7")

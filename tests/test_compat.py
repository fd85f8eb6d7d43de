"""Each compatibility mode against a direct implementation of the evaluator as documented in
metrics.md (numpy / scikit-image / torchmetrics written straight from the formula)."""

from __future__ import annotations

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
    """The official ssim.py compute_metrics, transcribed with torchmetrics on 5-D float64 tensors: each
    volume by its own 0.5/99.5 percentiles, a negative lower bound raised to 0, the result float32."""
    gt, pr, masks = mr_case()
    pr = pr - 0.3  # a negative 0.5th percentile in the prediction: the official lower bound becomes 0
    s = score_case(gt, pr, masks, BRATS_FLAIR, mode="brasyn")
    les = masks["necrotic"] | masks["edema"]

    def norm(a):
        lo, hi = np.percentile(a, [0.5, 99.5])
        lo = max(lo, 0.0)  # strictlyPositive
        return (np.clip(a.astype(np.float64), lo, hi) - lo) / (hi - lo)

    assert np.percentile(pr, 0.5) < 0
    g, p = norm(gt), norm(pr)
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731, B023
    ref_les = float(np.float32(tm_ssim(t(p * les), t(g * les))))  # data_range from the images
    ref_non = float(np.float32(tm_ssim(t(p * ~les), t(g * ~les))))
    assert s.value("lesion", "ssim") == pytest.approx(ref_les, rel=1e-6)
    assert s.value("non_lesion", "ssim") == pytest.approx(ref_non, rel=1e-6)


def test_brats_inpainting_direct_official_formula():
    """The official compute_metrics (BraSyn evaluation_utils.py), transcribed with torchmetrics on the 5-D
    (1, 1, X, Y, Z) tensors it requires: 3D SSIM, float32 MSE/PSNR states; no RMSE or MAE reported."""
    from torchmetrics.image import PeakSignalNoiseRatio
    from torchmetrics.regression import MeanSquaredError

    gt, pr, masks = mr_case(lesion_gain=0.9)  # a bright lesion would be clipped flat by healthy percentiles
    s = score_case(gt, pr, masks, BRATS_FLAIR, mode="brats_inpainting")
    for region in ("lesion", "healthy"):
        m = masks["necrotic"] | masks["edema"]
        if region == "healthy":
            m = masks["brain"] & ~m
        assert set(s.values[region]) == {"mse", "psnr", "ssim"}
        lo, hi = np.percentile(gt * ~m, [0.5, 99.5])  # gt's own dtype, all voxels, the region zeroed
        lo = max(lo, 0.0)
        nz = lambda a: (np.clip((a * m).astype(np.float64), lo, hi) - lo) / (hi - lo)  # noqa: E731, B023
        gi, pi = nz(gt), nz(pr)
        tg, tp, tm = (torch.from_numpy(a)[None, None] for a in (gi, pi, m))
        _, full = tm_ssim(tp, tg, return_full_image=True)  # 5-D input: 3D SSIM
        ssim = float(full[tm].mean())
        mse = float(MeanSquaredError()(tp[tm], tg[tm]))
        psnr = float(PeakSignalNoiseRatio(data_range=1.0)(tp[tm], tg[tm]))
        assert s.value(region, "ssim") == pytest.approx(ssim, rel=1e-10)
        assert s.value(region, "mse") == pytest.approx(mse, rel=1e-12)
        assert s.value(region, "psnr") == pytest.approx(psnr, rel=1e-12)
        assert s.value(region, "mse") == pytest.approx(np.mean((gi[m] - pi[m]) ** 2), rel=1e-6)  # float32 state


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
    """ldct-benchmark compute_metric as documented: float32 HU + 1024 slices, the DICOM linear window
    (scale w - 1, centre c - 0.5), scikit-image defaults on the float32 windowed slices, RMSE of both
    images clipped to [-1024, 1900] HU; means over slices (the last axis)."""
    from skimage.metrics import mean_squared_error

    gt, pr, _ = ct_case(shape=(30, 28, 6))
    gt[2:6, 2:6], pr[2:6, 2:5] = 2600.0, 2300.0  # metal: clipped at 1900 HU for RMSE
    gt[-3:, -3:], pr[-2:, -4:] = -1040.0, -1100.0  # below -1024 HU: clipped too
    s = score_case(gt, pr, {}, LDCT, mode="ldct_benchmark")
    g, p = ((a.astype(np.float64) + 1024).astype(np.float32) for a in (gt, pr))
    windows = {"abdomen": (50, 400), "chest": (-600, 1500), "head": (40, 80)}
    gc, pc = np.clip(g, 0, 2924), np.clip(p, 0, 2924)  # ct_case has values outside [-1024, 1900] HU
    rmse = np.mean([np.sqrt(mean_squared_error(gc[..., k], pc[..., k])) for k in range(g.shape[2])])
    assert s.value("global", "rmse") == pytest.approx(rmse, rel=1e-12)
    for name, (c, w) in windows.items():
        c += 1024
        lo, hi = c - 0.5 - (w - 1) / 2, c - 0.5 + (w - 1) / 2

        def win(x, c=c, w=w, lo=lo, hi=hi):
            return np.where(x <= lo, 0, np.where(x > hi, 1, (x - (c - 0.5)) / (w - 1.0) + 0.5)).astype(np.float32)

        a, b = win(g), win(p)
        ss = [structural_similarity(a[..., k], b[..., k], data_range=1.0) for k in range(g.shape[2])]
        ps = [10 * np.log10(1 / mean_squared_error(a[..., k], b[..., k])) for k in range(g.shape[2])]
        assert s.value("global", f"ssim_{name}") == pytest.approx(np.mean(ss), rel=1e-9)
        assert s.value("global", f"psnr_{name}") == pytest.approx(np.mean(ps), rel=1e-9)


def test_mode_needs_its_mask():
    from cmsbench.errors import MetricError

    gt, pr, _ = ct_case()
    with pytest.raises(MetricError, match="body"):
        score_case(gt, pr, {}, MR_CT, mode="synthrad2023", case_id="case7")

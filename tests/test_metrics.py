"""Metrics against independent references (numpy, scipy, scikit-image, torchmetrics) on seeded data.

Conventions are spelled out per test; agreement is 1e-5 relative or better where they match.
"""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

from cmsbench.benchmark.metrics import pixel
from cmsbench.benchmark.metrics.fused import region_sums
from cmsbench.benchmark.metrics.msssim import ms_ssim
from cmsbench.benchmark.metrics.regions import build_region, dilate, lesion_components
from cmsbench.benchmark.metrics.ssim import (
    GAUSSIAN,
    SKIMAGE_DEFAULT,
    TORCHMETRICS_DEFAULT,
    SSIMConfig,
    masked_mean,
    ssim,
    ssim_map,
)
from cmsbench.errors import MetricError

RTOL = 1e-5


def pair(shape=(34, 30, 26), offset=0.0, scale=1.0, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    gt = ndimage.gaussian_filter(rng.random(shape), 1.5) * 4 * scale + offset
    pr = gt + noise * scale * rng.standard_normal(shape)
    return gt.astype(np.float32), pr.astype(np.float32)


def ball(shape, centre, radius):
    idx = np.indices(shape)
    return sum((i - c) ** 2 for i, c in zip(idx, centre, strict=False)) <= radius**2


# ----------------------------------------------------------------------------- pixel metrics
def test_pixel_metrics_against_numpy():
    gt, pr = pair()
    m = ball(gt.shape, (17, 15, 13), 8)
    g, p = gt[m].astype(np.float64), pr[m].astype(np.float64)
    assert pixel.mae(gt, pr, m) == pytest.approx(np.mean(np.abs(g - p)), rel=1e-12)
    assert pixel.mse(gt, pr, m) == pytest.approx(np.mean((g - p) ** 2), rel=1e-12)
    assert pixel.nmse(gt, pr, m) == pytest.approx(np.sum((g - p) ** 2) / np.sum(g**2), rel=1e-12)
    assert pixel.nrmse(gt, pr, 4.0, m) == pytest.approx(np.sqrt(np.mean((g - p) ** 2)) / 4.0, rel=1e-12)
    assert pixel.psnr(gt, pr, 4.0, m) == pytest.approx(10 * np.log10(16 / np.mean((g - p) ** 2)), rel=1e-12)


def test_psnr_against_skimage_and_perfect_is_inf():
    from skimage.metrics import peak_signal_noise_ratio

    gt, pr = pair()
    assert pixel.psnr(gt, pr, 4.0) == pytest.approx(
        peak_signal_noise_ratio(gt.astype(np.float64), pr.astype(np.float64), data_range=4.0), rel=1e-10
    )
    assert pixel.psnr(gt, gt, 4.0) == float("inf")
    with pytest.raises(MetricError, match="data range"):
        pixel.psnr(gt, pr, None)  # type: ignore[arg-type]


def test_pixel_shape_mismatch():
    with pytest.raises(MetricError, match="shape"):
        pixel.mae(np.zeros((3, 3, 3)), np.zeros((3, 3, 4)))


# ----------------------------------------------------------------------------- SSIM
@pytest.mark.parametrize("offset,scale,L", [(0.0, 1.0, 4.0), (-200.0, 500.0, 4024.0)])
def test_gaussian_ssim_valid_matches_skimage(offset, scale, L):
    """Gaussian sigma 1.5 (11 taps, truncate 3.5), no sample covariance, border cropped = skimage."""
    from skimage.metrics import structural_similarity

    gt, pr = pair(offset=offset, scale=scale)
    ref = structural_similarity(
        gt.astype(np.float64),
        pr.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=L,
    )
    ours = ssim(gt, pr, L, SSIMConfig(border="valid"))
    assert ours == pytest.approx(ref, rel=RTOL)


def test_uniform7_sample_covariance_matches_skimage_default():
    from skimage.metrics import structural_similarity

    gt, pr = pair()
    ref, full = structural_similarity(gt.astype(np.float64), pr.astype(np.float64), data_range=4.0, full=True)
    ours_map = ssim_map(gt, pr, 4.0, SKIMAGE_DEFAULT)
    assert masked_mean(ours_map) == pytest.approx(ref, rel=RTOL)
    inner = (slice(3, -3),) * 3
    np.testing.assert_allclose(ours_map[inner], full[inner], rtol=1e-4, atol=1e-5)
    assert np.isnan(ours_map[0]).all()


def test_2d_per_slice_matches_torchmetrics():
    """2D SSIM of each slice along the last axis; torchmetrics pads by whole-sample reflection and
    averages the full map: our border='mirror'."""
    import torch
    from torchmetrics.functional import structural_similarity_index_measure as tm_ssim

    gt, pr = pair()
    to = lambda a: torch.from_numpy(np.moveaxis(a.astype(np.float64), -1, 0)[:, None].copy())  # noqa: E731
    ref = float(tm_ssim(to(pr), to(gt), data_range=4.0))
    ours = ssim(gt, pr, 4.0, SSIMConfig(spatial_dims=2, border="mirror"))
    assert ours == pytest.approx(ref, rel=RTOL)


def test_3d_matches_torchmetrics_default():
    import torch
    from torchmetrics.functional import structural_similarity_index_measure as tm_ssim

    gt, pr = pair()
    to = lambda a: torch.from_numpy(a.astype(np.float64))[None, None]  # noqa: E731
    ref = float(tm_ssim(to(pr), to(gt), data_range=4.0))
    assert ssim(gt, pr, 4.0, TORCHMETRICS_DEFAULT) == pytest.approx(ref, rel=RTOL)


def _direct_reflect_map(gt, pr, L, sigma=1.5):
    """Straight from Wang et al. 2004 with scipy (float64), scipy 'reflect' borders."""
    g, p = gt.astype(np.float64), pr.astype(np.float64)
    f = lambda a: ndimage.gaussian_filter(a, sigma, truncate=3.5, mode="reflect")  # noqa: E731
    ux, uy = f(g), f(p)
    vx, vy, vxy = f(g * g) - ux**2, f(p * p) - uy**2, f(g * p) - ux * uy
    c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
    return (2 * ux * uy + c1) * (2 * vxy + c2) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))


def test_default_reflect_map_and_masked_mean_match_direct_formula():
    gt, pr = pair()
    ref = _direct_reflect_map(gt, pr, 4.0)
    ours = ssim_map(gt, pr, 4.0, GAUSSIAN)
    assert ours.dtype == np.float32 and ours.shape == gt.shape
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    m = ball(gt.shape, (3, 15, 13), 6)  # touches the border: reflect completes the map
    assert masked_mean(ours, m) == pytest.approx(ref[m].mean(), rel=RTOL)


def test_float32_ssim_accurate_for_ct_like_offsets():
    """Large common offset (HU-like): centring keeps float32 cancellation small."""
    gt, pr = pair(offset=1000.0, scale=30.0)
    ref = _direct_reflect_map(gt, pr, 4024.0)
    assert ssim(gt, pr, 4024.0) == pytest.approx(ref.mean(), rel=RTOL)


def test_ssim_bad_inputs():
    gt, pr = pair()
    with pytest.raises(MetricError, match="data_range"):
        ssim_map(gt, pr, None)  # type: ignore[arg-type]
    with pytest.raises(MetricError, match="shape"):
        ssim_map(gt, pr[:-1], 4.0)
    with pytest.raises(MetricError):
        SSIMConfig(border="zero")  # type: ignore[arg-type]
    with pytest.raises(MetricError, match="too small"):
        ssim_map(gt[:8], pr[:8], 4.0, SSIMConfig(border="valid"))


def test_identical_images_ssim_is_one():
    gt, _ = pair()
    assert ssim(gt, gt, 4.0) == pytest.approx(1.0, abs=1e-6)


# ----------------------------------------------------------------------------- fused sums
def test_fused_region_sums_match_separate_metrics():
    gt, pr = pair()
    masks = {"global": None, "a": ball(gt.shape, (10, 10, 10), 6), "b": ball(gt.shape, (20, 18, 14), 9)}
    rs = region_sums(gt, pr, masks, ssim_range=4.0, keep_map=True, window=(0.5, 2.5))
    full = ssim_map(np.clip(gt, 0.5, 2.5), np.clip(pr, 0.5, 2.5), 4.0)
    for name, m in masks.items():
        assert rs.mae(name) == pytest.approx(pixel.mae(gt, pr, m), rel=1e-6)
        assert rs.mse(name) == pytest.approx(pixel.mse(gt, pr, m), rel=1e-6)
        assert rs.nmse(name) == pytest.approx(pixel.nmse(gt, pr, m), rel=1e-6)
        clipped = pixel.mse(np.clip(gt, 0.5, 2.5), np.clip(pr, 0.5, 2.5), m)
        assert rs.mse(name, clipped=True) == pytest.approx(clipped, rel=1e-6)
        assert rs.ssim(name) == pytest.approx(masked_mean(full, m), rel=1e-6)
    np.testing.assert_array_equal(rs.ssim_map, full)


def test_fused_valid_border_counts_interior_only():
    from skimage.metrics import structural_similarity

    gt, pr = pair()
    rs = region_sums(gt, pr, {"global": None}, ssim_range=4.0, ssim_config=SSIMConfig(border="valid"))
    ref = structural_similarity(
        gt.astype(np.float64),
        pr.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=4.0,
    )
    assert rs.ssim("global") == pytest.approx(ref, rel=RTOL)


# ----------------------------------------------------------------------------- MS-SSIM
def _direct_msssim(x, y, L, weights, mask=None, every=False):
    """Textbook MS-SSIM with scipy uniform 7 (reflect), sample covariance, 2x box pooling."""
    x, y = x.astype(np.float64), y.astype(np.float64)
    vals = []
    for j, _w in enumerate(weights):
        f = lambda a: ndimage.uniform_filter(a, 7, mode="reflect")  # noqa: E731
        ux, uy = f(x), f(y)
        cn = 343 / 342
        vx, vy, vxy = cn * (f(x * x) - ux**2), cn * (f(y * y) - uy**2), cn * (f(x * y) - ux * uy)
        c1, c2 = (0.01 * L) ** 2, (0.03 * L) ** 2
        lum = (2 * ux * uy + c1) / (ux**2 + uy**2 + c1)
        cs = (2 * vxy + c2) / (vx + vy + c2)
        term = lum * cs if (every or j == len(weights) - 1) else cs
        vals.append(term.mean() if mask is None else term[mask].mean())
        n = [s // 2 for s in x.shape]
        x = x[: 2 * n[0], : 2 * n[1], : 2 * n[2]].reshape(n[0], 2, n[1], 2, n[2], 2).mean(axis=(1, 3, 5))
        y = y[: 2 * n[0], : 2 * n[1], : 2 * n[2]].reshape(n[0], 2, n[1], 2, n[2], 2).mean(axis=(1, 3, 5))
        if mask is not None:
            mask = mask[::2, ::2, ::2][: n[0], : n[1], : n[2]]
    return float(np.prod(np.asarray(vals) ** np.asarray(weights)))


@pytest.mark.parametrize("every", [False, True])
def test_msssim_matches_direct(every):
    gt, pr = pair(shape=(30, 28, 29))
    m = ball(gt.shape, (15, 14, 14), 10)
    cfg = SSIMConfig(window="uniform", size=7, sample_covariance=True)
    w = (0.4, 0.6)
    ours = ms_ssim(gt, pr, 4.0, mask=m, config=cfg, weights=w, luminance_every_scale=every)
    assert ours == pytest.approx(_direct_msssim(gt, pr, 4.0, w, m, every), rel=1e-10)
    with pytest.raises(MetricError, match="too small"):
        ms_ssim(gt, pr, 4.0, config=cfg)


# ----------------------------------------------------------------------------- regions
def test_regions_definitions():
    shape = (30, 30, 30)
    brain = ball(shape, (15, 15, 15), 12)
    nec, ede = ball(shape, (10, 15, 15), 3), ball(shape, (20, 15, 15), 2)
    masks = {"brain": brain, "necrotic": nec, "edema": ede}
    t = np.zeros(shape, np.float32)
    les = build_region("lesion", t, masks)
    np.testing.assert_array_equal(les, nec | ede)
    np.testing.assert_array_equal(build_region("healthy", t, masks), brain & ~les)
    ring = build_region("lesion_ring", t, masks)
    ref_ring = ndimage.binary_dilation(les, ball((7, 7, 7), (3, 3, 3), 3)) & ~les & brain
    np.testing.assert_array_equal(ring, ref_ring)
    assert build_region("global", t, masks) is None
    assert not build_region("enhancing", t, masks).any()  # other sub-regions present: label absent
    with pytest.raises(MetricError, match="enhancing"):
        build_region("enhancing", t, {"brain": brain})
    ct = np.where(brain, 500.0, -1000.0)
    body = {"body": ball(shape, (15, 15, 15), 13)}
    np.testing.assert_array_equal(build_region("bone", ct, body), body["body"] & (ct > 300))


def test_dilate_matches_scipy_and_components():
    shape = (25, 25, 25)
    m = ball(shape, (5, 5, 5), 2) | ball(shape, (18, 18, 18), 4)
    np.testing.assert_array_equal(dilate(m, 3), ndimage.binary_dilation(m, ball((7, 7, 7), (3, 3, 3), 3)))
    comps = lesion_components(m)
    assert [c.n_voxels for c in comps] == sorted(
        [int(ball(shape, (5, 5, 5), 2).sum()), int(ball(shape, (18, 18, 18), 4).sum())], reverse=True
    )
    assert comps[0].centroid == pytest.approx((18.0, 18.0, 18.0))


@pytest.mark.gpu
def test_cuda_map_matches_cpu():
    gt, pr = pair()
    np.testing.assert_allclose(ssim_map(gt, pr, 4.0, device="cuda"), ssim_map(gt, pr, 4.0), rtol=1e-5, atol=1e-6)
    rs = region_sums(gt, pr, {"global": None}, ssim_range=4.0, device="cuda")
    assert rs.ssim("global") == pytest.approx(ssim(gt, pr, 4.0), rel=1e-6)


def test_worker_count_does_not_change_results():
    gt, pr = pair(shape=(40, 30, 26))
    m = {"global": None, "a": ball(gt.shape, (20, 15, 13), 9)}
    one = region_sums(gt, pr, m, ssim_range=4.0, workers=1)
    two = region_sums(gt, pr, m, ssim_range=4.0, workers=2)
    np.testing.assert_allclose(one.sums, two.sums, rtol=1e-12)

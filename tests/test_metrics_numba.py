"""The numba engine (:mod:`cmsbench.benchmark.metrics.ssim_numba`) against the torch engine, scikit-image
and float64 numpy, on seeded data: maps, region sums, every border mode, odd shapes, tiling."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import ndimage

pytest.importorskip("numba")

from cmsbench.benchmark.metrics import ssim_numba  # noqa: E402
from cmsbench.benchmark.metrics.fused import CHANNELS, region_sums  # noqa: E402
from cmsbench.benchmark.metrics.ssim import GAUSSIAN, SKIMAGE_DEFAULT, SSIMConfig, ssim_map  # noqa: E402
from cmsbench.errors import MetricError  # noqa: E402


def pair(shape=(34, 30, 26), offset=0.0, scale=1.0, noise=0.1, seed=0):
    rng = np.random.default_rng(seed)
    gt = ndimage.gaussian_filter(rng.random(shape), 1.5) * 4 * scale + offset
    pr = gt + noise * scale * rng.standard_normal(shape)
    return gt.astype(np.float32), pr.astype(np.float32)


def random_masks(shape, seed=1, n=3):
    rng = np.random.default_rng(seed)
    idx = np.indices(shape)
    out: dict = {"global": None}
    for k in range(n):
        c = [rng.uniform(0, s) for s in shape]
        rad = max(1.0, 0.4 * min(shape))
        out[f"ball{k}"] = sum((i - ci) ** 2 for i, ci in zip(idx, c, strict=False)) <= rad**2
    out["speckle"] = rng.random(shape) < 0.3
    return out


def both(monkeypatch, *args, **kw):
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "torch")
    ref = region_sums(*args, **kw)
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "numba")
    new = region_sums(*args, **kw)
    assert ref.extra["engine"] == "torch" and new.extra["engine"] == "numba"
    return ref, new


def assert_sums_close(new, ref, rtol=1e-6):
    for k, ch in enumerate(CHANNELS):
        np.testing.assert_allclose(new.sums[k], ref.sums[k], rtol=rtol, atol=1e-9, err_msg=ch)


CONFIGS = [
    GAUSSIAN,
    SSIMConfig(border="valid"),
    SSIMConfig(border="mirror"),
    SSIMConfig(border="nearest"),
    SKIMAGE_DEFAULT,
    SSIMConfig(spatial_dims=2),
    SSIMConfig(spatial_dims=2, border="valid"),
]


@pytest.mark.parametrize("config", CONFIGS, ids=lambda c: c.describe())
@pytest.mark.parametrize("window", [None, (0.8, 2.2)])
def test_numba_matches_torch_engine(monkeypatch, config, window):
    gt, pr = pair()
    masks = random_masks(gt.shape)
    ref, new = both(monkeypatch, gt, pr, masks, ssim_range=4.0, ssim_config=config, window=window, keep_map=True)
    assert_sums_close(new, ref)
    np.testing.assert_array_equal(np.isnan(new.ssim_map), np.isnan(ref.ssim_map))
    np.testing.assert_allclose(new.ssim_map, ref.ssim_map, rtol=1e-5, atol=2e-6)
    # counts are exact
    np.testing.assert_array_equal(new.sums[CHANNELS.index("n")], ref.sums[CHANNELS.index("n")])
    np.testing.assert_array_equal(new.sums[CHANNELS.index("ssim_n")], ref.sums[CHANNELS.index("ssim_n")])


@pytest.mark.parametrize("shape", [(7, 13, 5), (1, 12, 3), (5, 1, 9), (11, 11, 11), (23, 4, 40)])
@pytest.mark.parametrize("border", ["reflect", "mirror", "nearest"])
def test_odd_shapes_smaller_than_the_window(monkeypatch, shape, border):
    gt, pr = pair(shape=shape, seed=3)
    masks = random_masks(shape, seed=4, n=2)
    cfg = SSIMConfig(border=border)
    ref, new = both(monkeypatch, gt, pr, masks, ssim_range=4.0, ssim_config=cfg, keep_map=True)
    assert_sums_close(new, ref)
    np.testing.assert_allclose(new.ssim_map, ref.ssim_map, rtol=1e-5, atol=2e-6)


def test_valid_needs_room_for_the_window(monkeypatch):
    gt, pr = pair(shape=(7, 13, 5))
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "numba")
    with pytest.raises(MetricError, match="too small"):
        region_sums(gt, pr, {"global": None}, ssim_range=4.0, ssim_config=SSIMConfig(border="valid"))
    with pytest.raises(MetricError, match="data_range"):
        region_sums(gt, pr, {"global": None}, ssim_range=0.0)


@pytest.mark.parametrize("offset, scale, L", [(0.0, 1.0, 4.0), (1000.0, 30.0, 4024.0)])
def test_valid_matches_skimage(monkeypatch, offset, scale, L):
    from skimage.metrics import structural_similarity

    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "numba")
    gt, pr = pair(shape=(36, 31, 27), offset=offset, scale=scale)
    rs = region_sums(gt, pr, {"global": None}, ssim_range=L, ssim_config=SSIMConfig(border="valid"))
    ref = structural_similarity(
        gt.astype(np.float64),
        pr.astype(np.float64),
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
        data_range=L,
    )
    assert rs.extra["engine"] == "numba"
    assert rs.ssim("global") == pytest.approx(ref, rel=1e-5)


def test_pixel_sums_match_float64_numpy(monkeypatch):
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "numba")
    gt, pr = pair(shape=(30, 41, 37), offset=100.0, scale=50.0)
    masks = random_masks(gt.shape)
    lo, hi = 80.0, 250.0
    rs = region_sums(gt, pr, masks, ssim_range=hi - lo, window=(lo, hi))
    t, p = gt.astype(np.float64), pr.astype(np.float64)
    tc = np.clip(gt, np.float32(lo), np.float32(hi)).astype(np.float64)
    pc = np.clip(pr, np.float32(lo), np.float32(hi)).astype(np.float64)
    for name, m in masks.items():
        m = np.ones(gt.shape, bool) if m is None else m
        d = p[m] - t[m]
        assert rs.get(name, "n") == m.sum()
        assert rs.get(name, "abs") == pytest.approx(np.abs(d).sum(), rel=1e-12)
        assert rs.get(name, "sq") == pytest.approx((d * d).sum(), rel=1e-12)
        assert rs.get(name, "t2") == pytest.approx((t[m] ** 2).sum(), rel=1e-12)
        assert rs.get(name, "sq_clip") == pytest.approx(((pc[m] - tc[m]) ** 2).sum(), rel=1e-12)


def test_without_ssim_and_empty_masks(monkeypatch):
    gt, pr = pair()
    masks = {"global": None, "empty": np.zeros(gt.shape, bool), "a": random_masks(gt.shape)["ball0"]}
    ref, new = both(monkeypatch, gt, pr, masks, ssim_range=None)
    assert_sums_close(new, ref)
    assert new.get("empty", "n") == 0 and new.get("empty", "abs") == 0
    assert new.ssim_map is None


def test_more_regions_than_one_kernel_call_takes(monkeypatch):
    gt, pr = pair(shape=(20, 22, 18))
    rng = np.random.default_rng(5)
    masks = {f"m{k}": rng.random(gt.shape) < 0.5 for k in range(ssim_numba.MAXR + 3)}
    masks["global"] = None
    ref, new = both(monkeypatch, gt, pr, masks, ssim_range=4.0, keep_map=True)
    assert_sums_close(new, ref)


def test_tiling_and_workers_do_not_change_results(monkeypatch):
    """Small tiles (many items, split along axis 0 too) give the same map bit for bit; sums agree to
    summation order."""
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "numba")
    gt, pr = pair(shape=(60, 45, 33))
    masks = random_masks(gt.shape)
    one = region_sums(gt, pr, masks, ssim_range=4.0, keep_map=True, workers=1)
    monkeypatch.setattr(ssim_numba, "RING_BYTES", 60_000)
    items = ssim_numba._tiles(gt.shape, 5, 2, True)
    assert any(z0 > 0 for z0, *_ in items) and any(h0 > 0 for _, _, h0, _ in items)
    two = region_sums(gt, pr, masks, ssim_range=4.0, keep_map=True, workers=2)
    np.testing.assert_array_equal(one.ssim_map, two.ssim_map)
    np.testing.assert_allclose(one.sums, two.sums, rtol=1e-12)


def test_ssim_map_uses_the_selected_engine(monkeypatch):
    gt, pr = pair()
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "torch")
    a = ssim_map(gt, pr, 4.0, SSIMConfig(border="valid"))
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "numba")
    b = ssim_map(gt, pr, 4.0, SSIMConfig(border="valid"))
    np.testing.assert_array_equal(np.isnan(a), np.isnan(b))
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=2e-6)


def test_engine_selection(monkeypatch):
    monkeypatch.delenv("CMSBENCH_SSIM_ENGINE", raising=False)
    assert ssim_numba.select_engine("cpu") == "numba"
    assert ssim_numba.select_engine("cuda") == "torch"
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "torch")
    assert ssim_numba.select_engine("cpu") == "torch"
    monkeypatch.setenv("CMSBENCH_SSIM_ENGINE", "fast")
    with pytest.raises(MetricError):
        ssim_numba.select_engine("cpu")


def test_tiles_without_region_voxels_are_skipped_without_changing_a_sum():
    """A region in one corner: the tiles outside it are skipped (no region voxel), and its sums and map
    equal those computed with every tile (forced by an all-voxel region beside it)."""
    from cmsbench.benchmark.metrics.ssim import GAUSSIAN
    from cmsbench.benchmark.metrics.ssim_numba import _active_items, _tiles, region_sums_numba

    rng = np.random.default_rng(3)
    t = rng.random((48, 64, 20), dtype=np.float32)
    p = (t + 0.2 * rng.random(t.shape, dtype=np.float32)).astype(np.float32)
    corner = np.zeros(t.shape, bool)
    corner[2:10, 3:12, 4:15] = True
    items = _tiles(t.shape, 5, 2, True)
    assert 0 < sum(_active_items(items, [corner])) < len(items)
    skipped, m1 = region_sums_numba(t, p, [corner], ssim_range=1.0, config=GAUSSIAN, window=None, keep_map=True,
                                    workers=2)
    every, m2 = region_sums_numba(t, p, [corner, None], ssim_range=1.0, config=GAUSSIAN, window=None,
                                  keep_map=True, workers=2)
    assert np.array_equal(skipped[:, 0], every[:, 0])
    assert np.array_equal(m1[corner], m2[corner])

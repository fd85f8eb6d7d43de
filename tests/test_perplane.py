"""Per-plane PSNR and SSIM (axial, coronal, sagittal): definitions, registration, direction sensitivity."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from scipy import ndimage

from cmsbench.benchmark.metrics.perplane import PLANES, plane_ssim_map, slice_psnr
from cmsbench.benchmark.metrics.ssim import GAUSSIAN


def _pair(seed: int = 0, shape=(30, 34, 26)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    gt = (ndimage.gaussian_filter(rng.standard_normal(shape), 1.5) * 3 + 1).astype(np.float32)
    return gt, (gt + 0.1 * rng.standard_normal(shape)).astype(np.float32)


def _loop_psnr(t, p, peak, axis, mask, window):
    """Slice by slice, the plain way."""
    vals = []
    for k in range(t.shape[axis]):
        ts, ps = np.take(t, k, axis).astype(np.float64), np.take(p, k, axis).astype(np.float64)
        m = np.ones(ts.shape, bool) if mask is None else np.take(mask, k, axis)
        if not m.any():
            continue
        if window:
            ts, ps = np.clip(ts, *window), np.clip(ps, *window)
        mse = np.mean((ts[m] - ps[m]) ** 2)
        if mse > 0:
            vals.append(10 * math.log10(peak**2 / mse))
    return float(np.mean(vals)) if vals else math.inf


@pytest.mark.parametrize("plane", list(PLANES))
def test_slice_psnr_equals_a_slice_loop(plane: str) -> None:
    t, p = _pair()
    axis = PLANES[plane]
    mask = np.zeros(t.shape, bool)
    mask[5:20, 8:30, 3:21] = True
    p = p.copy()
    np.moveaxis(p, axis, 0)[7] = np.moveaxis(t, axis, 0)[7]  # one exact slice: left out, not infinite
    for m in (None, mask):
        for window in (None, (0.0, 2.0)):
            got = slice_psnr(t, p, 4.0, axis, m, window)
            assert math.isfinite(got)
            assert got == pytest.approx(_loop_psnr(t, p, 4.0, axis, m, window), rel=1e-12)
    assert slice_psnr(t, t, 4.0, axis) == math.inf


def test_plane_ssim_is_2d_ssim_in_that_plane() -> None:
    """Against scikit-image's 2D SSIM of each slice (Gaussian, sigma 1.5, population covariance), interior."""
    from skimage.metrics import structural_similarity

    t, p = _pair(1)
    cfg = dataclasses.replace(GAUSSIAN, border="valid")
    r = cfg.radius
    for plane, axis in PLANES.items():
        smap = plane_ssim_map(t, p, 4.0, axis, cfg)
        assert smap.shape == t.shape
        for k in (0, t.shape[axis] // 2, t.shape[axis] - 1):  # every slice is its own 2D image, even the end ones
            ts, ps = np.take(t, k, axis).astype(np.float64), np.take(p, k, axis).astype(np.float64)
            ref = structural_similarity(ts, ps, data_range=4.0, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False)
            got = np.nanmean(np.take(smap, k, axis)[r:-r, r:-r].astype(np.float64))
            assert got == pytest.approx(ref, abs=2e-6), (plane, k)


def test_per_plane_metrics_are_registered_and_see_direction_dependent_blur() -> None:
    """A prediction blurred along the first axis only: the sagittal slices (that axis fixed) keep their
    in-plane structure, the axial and coronal slices (which contain it) lose it."""
    from cmsbench.benchmark.metrics.registry import get_metric
    from cmsbench.benchmark.scorer import score_case
    from cmsbench.tasks.builtin import BRATS_FLAIR

    t, _ = _pair(2)
    blurred = ndimage.gaussian_filter1d(t, 1.5, axis=0).astype(np.float32)
    names = [f"{m}_{plane}" for m in ("psnr", "ssim") for plane in PLANES]
    for name in names:
        assert get_metric(name).direction == "higher" and get_metric(name).convention
    brain = np.zeros(t.shape, bool)
    brain[3:27, 3:31, 3:23] = True
    task = dataclasses.replace(BRATS_FLAIR, metrics=("psnr", "ssim", *names), regions=("global", "brain"))
    s = score_case(t, blurred, {"brain": brain}, task)
    for r in ("global", "brain"):
        v = s.values[r]
        assert all(v[n] is not None for n in names), s.nan_reasons
        # measured: 1 - SSIM = 0.038 sagittal against 0.060-0.065 axial and coronal
        assert 1 - v["ssim_sagittal"] < 0.75 * min(1 - v["ssim_axial"], 1 - v["ssim_coronal"]), v
    # the control: blurred the same way along every axis, no plane stands out
    iso = score_case(t, ndimage.gaussian_filter(t, 0.8).astype(np.float32), {"brain": brain}, task).values["brain"]
    losses = [1 - iso[f"ssim_{plane}"] for plane in PLANES]
    assert max(losses) < 1.25 * min(losses), iso
    # per-plane PSNR in the brain agrees with the slice loop; axial PSNR is close to the 3D one here
    assert s.values["brain"]["psnr_coronal"] == pytest.approx(_loop_psnr(t, blurred, 4.0, 1, brain, None), rel=1e-9)
    assert abs(s.values["brain"]["psnr_axial"] - s.values["brain"]["psnr"]) < 1.0

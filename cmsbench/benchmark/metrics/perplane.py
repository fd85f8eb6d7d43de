"""PSNR and SSIM in axial, coronal and sagittal slices (slice-wise image metrics of a 3D case).

Planes: ``axial`` = slices along the third array axis, ``coronal`` the second, ``sagittal`` the first
(as in :mod:`.lpips`). Both reveal direction-dependent errors a 3D metric averages away (e.g. the
through-plane blur of a thin-slice reconstruction shows in coronal and sagittal slices only).

- per-plane PSNR: the mean over the plane's slices that hold region voxels of the slice PSNR
  ``10 log10(L^2 / MSE_slice)`` (MSE over the region's voxels of the slice; both images clipped to the
  task's window when it has one; ``L`` the same peak as the 3D PSNR of the region). Slices predicted
  exactly (MSE 0, e.g. acquired slices a method keeps) are left out of the mean, because their PSNR is
  infinite; ``inf`` when every slice is exact.
- per-plane SSIM: the task's SSIM flavour with a 2D window in the plane's slices (the window never
  crosses slices), the map computed once per plane on the whole grid; the region's value is the mean
  of the map over its voxels (the 3D SSIM's region convention).
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np

#: plane -> the array axis its slices are taken along
PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}


def slice_psnr(target: np.ndarray, prediction: np.ndarray, peak: float, axis: int,
               mask: np.ndarray | None = None, window: tuple[float, float] | None = None) -> float:
    """Mean slice PSNR along ``axis`` over the slices holding ``mask`` voxels (see the module doc)."""
    t = np.asarray(target, np.float64)
    p = np.asarray(prediction, np.float64)
    if window is not None:
        t, p = np.clip(t, *window), np.clip(p, *window)
    err = (t - p) ** 2
    others = tuple(a for a in range(err.ndim) if a != axis)
    if mask is None:
        sse = err.sum(axis=others)
        n = np.full(sse.shape, err.size // err.shape[axis], dtype=np.float64)
    else:
        sse = np.where(mask, err, 0.0).sum(axis=others)
        n = mask.sum(axis=others).astype(np.float64)
    used = n > 0
    mse = sse[used] / n[used]
    inexact = mse > 0
    if not inexact.any():
        return math.inf
    return float(np.mean(10.0 * np.log10(peak**2 / mse[inexact])))


def plane_ssim_map(target: np.ndarray, prediction: np.ndarray, data_range: float, axis: int, config,
                   window: tuple[float, float] | None = None, device: str = "cpu") -> np.ndarray:
    """The 2D SSIM map in the slices along ``axis`` (``config`` with ``spatial_dims=2``), in the input's axis order."""
    from cmsbench.benchmark.metrics.ssim import ssim_map

    t, p = target, prediction
    if window is not None:
        t, p = np.clip(t, *window), np.clip(p, *window)
    cfg = dataclasses.replace(config, spatial_dims=2)
    # 2D SSIM works on slices along the LAST axis: move the plane's axis there and back
    smap = ssim_map(np.moveaxis(t, axis, -1), np.moveaxis(p, axis, -1), data_range, cfg, device=device)
    return np.moveaxis(smap, -1, axis)

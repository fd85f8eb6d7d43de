"""Multi-scale SSIM (Wang, Simoncelli & Bovik 2003), masked, 2D or 3D, float64 (scipy).

``ms_ssim`` computes, at scale ``j = 1..M`` (images 2x box-downsampled between scales, odd trailing
voxels dropped; the mask subsampled by stride 2), the luminance map ``l_j`` and the contrast-structure
map ``cs_j`` with the given window, and their means over the scale's mask voxels. Textbook MS-SSIM is
``prod_{j<M} mean(cs_j)^{w_j} * mean(l_M cs_M)^{w_M}``. With ``luminance_every_scale=True`` (the
SynthRAD2025 evaluator's variant) every scale contributes ``mean(l_j cs_j)^{w_j}``. A non-positive
per-scale mean makes the result NaN (a fractional power of a negative number is undefined); an image
too small for the window at the coarsest scale is an error.
"""

from __future__ import annotations

import numpy as np

from cmsbench.benchmark.metrics.ssim import GAUSSIAN, SSIMConfig
from cmsbench.errors import MetricError

MSSSIM_WEIGHTS = (0.0448, 0.2856, 0.3001, 0.2363, 0.1333)


def ssim_components(
    x: np.ndarray, y: np.ndarray, data_range: float, config: SSIMConfig = GAUSSIAN
) -> tuple[np.ndarray, np.ndarray]:
    """Luminance and contrast-structure maps (float64, ``reflect``/``mirror``/``nearest`` borders;
    ``valid`` returns the maps cropped to the interior)."""
    from scipy import ndimage

    w = config.taps()
    mode = "reflect" if config.border == "valid" else config.border
    axes = range(config.spatial_dims)

    def filt(a: np.ndarray) -> np.ndarray:
        for ax in axes:
            a = ndimage.correlate1d(a, w, axis=ax, mode=mode)
        return a

    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    ux, uy = filt(x), filt(y)
    vx = filt(x * x) - ux * ux
    vy = filt(y * y) - uy * uy
    vxy = filt(x * y) - ux * uy
    if config.sample_covariance:
        n = len(w) ** config.spatial_dims
        vx, vy, vxy = (v * (n / (n - 1.0)) for v in (vx, vy, vxy))
    c1 = (config.k1 * data_range) ** 2
    c2 = (config.k2 * data_range) ** 2
    lum = (2 * ux * uy + c1) / (ux * ux + uy * uy + c1)
    cs = (2 * vxy + c2) / (vx + vy + c2)
    if config.border == "valid":
        r = config.radius
        box = tuple(slice(r, n - r) if a < config.spatial_dims else slice(None) for a, n in enumerate(x.shape))
        lum, cs = lum[box], cs[box]
    return lum, cs


def _down2(a: np.ndarray, dims: int) -> np.ndarray:
    """2x box average over the first ``dims`` axes (trailing odd voxels dropped)."""
    sl = tuple(slice(0, (n // 2) * 2) if i < dims else slice(None) for i, n in enumerate(a.shape))
    a = a[sl]
    out = a
    for ax in range(dims):
        n = out.shape[ax]
        out = out.reshape(out.shape[:ax] + (n // 2, 2) + out.shape[ax + 1 :]).mean(axis=ax + 1)
    return out


def ms_ssim(
    x: np.ndarray,
    y: np.ndarray,
    data_range: float,
    *,
    mask: np.ndarray | None = None,
    config: SSIMConfig = GAUSSIAN,
    weights: tuple[float, ...] = MSSSIM_WEIGHTS,
    luminance_every_scale: bool = False,
) -> float:
    """Masked MS-SSIM (see the module docstring)."""
    if data_range is None or not data_range > 0:
        raise MetricError(f"MS-SSIM needs an explicit positive data range, got {data_range!r}")
    x = np.asarray(x, dtype=np.float64)
    y = np.asarray(y, dtype=np.float64)
    if x.shape != y.shape:
        raise MetricError(f"MS-SSIM needs images of one shape, got {x.shape} and {y.shape}")
    dims = config.spatial_dims
    m = None if mask is None else np.asarray(mask, dtype=bool)
    levels = len(weights)
    smallest = min(x.shape[:dims]) / 2 ** (levels - 1)
    if smallest < len(config.taps()):
        raise MetricError(
            f"image {x.shape} is too small for {levels}-scale MS-SSIM with a {len(config.taps())}-voxel window"
        )
    vals = []
    for j in range(levels):
        lum, cs = ssim_components(x, y, data_range, config)
        mm = m
        if mm is not None and config.border == "valid":
            r = config.radius
            mm = mm[tuple(slice(r, n - r) if a < dims else slice(None) for a, n in enumerate(mm.shape))]
        last = j == levels - 1
        term = lum * cs if (last or luminance_every_scale) else cs
        sel = term if mm is None else term[mm]
        vals.append(float(np.mean(sel)) if sel.size else float("nan"))
        if not last:
            x, y = _down2(x, dims), _down2(y, dims)
            if m is not None:
                sub = m[tuple(slice(None, None, 2) if a < dims else slice(None) for a in range(m.ndim))]
                m = sub[tuple(slice(0, n) for n in x.shape)]
    v = np.asarray(vals)
    if np.any(~np.isfinite(v)) or np.any(v <= 0):
        return float("nan")
    return float(np.prod(v ** np.asarray(weights)))

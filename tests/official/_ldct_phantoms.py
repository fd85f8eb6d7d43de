"""Deterministic low-dose-CT-like phantom cases (HU, slices along the last axis), shared by the
official-code comparison (``test_ldct_benchmark_official.py``) and the frozen-reference test
(``tests/test_compat_frozen.py``).

A case is fully described by its generator parameters (the JSON under ``frozen/`` stores only those):
an elliptical body cylinder (soft tissue with smooth texture, a fat rim, a bone ring and a dense bone
core, two lung-like regions, an optional metal insert above 1900 HU) in air around -1000 HU with a few
voxels below -1024 HU, so that the RMSE clip to [-1024, 1900] HU and every display window matter. The
full-dose image is integer-valued like DICOM data. The "prediction" (a low-dose input or a denoiser's
output) adds noise correlated along the slice plane, an optional blur and a small HU offset; it is
non-integer (a network output) unless ``integer_pred``; ``identical_slice`` copies one full-dose slice
into the prediction (its PSNR is infinite).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ldct_case(
    shape: tuple[int, int, int],
    seed: int,
    *,
    noise_hu: float = 25.0,
    blur: float = 0.0,
    offset_hu: float = 3.0,
    metal: bool = True,
    integer_pred: bool = False,
    identical_slice: int | None = None,
) -> tuple[np.ndarray, np.ndarray]:
    """``(full_dose, prediction)``: float32 arrays of ``shape`` in HU."""
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(seed)
    x, y = np.indices(shape[:2], dtype=np.float64)
    cx, cy = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    ax, ay = max(shape[0] / 2 - 1.5, 2.0), max(shape[1] / 2 - 1.5, 2.0)

    def ellipse(scale: float, dx: float = 0.0, dy: float = 0.0) -> np.ndarray:
        r = np.sqrt(((x - cx - dx * ax) / (scale * ax)) ** 2 + ((y - cy - dy * ay) / (scale * ay)) ** 2)
        return np.repeat((r <= 1.0)[..., None], shape[2], axis=2)

    def smooth(sigma: float) -> np.ndarray:  # a smooth random field with unit standard deviation
        f = ndimage.gaussian_filter(rng.normal(0, 1, shape), (sigma, sigma, 0.7))
        return f / f.std()

    body = ellipse(1.0)
    gt = np.where(body, 45 + 18 * smooth(1.5), -1000 + 12 * rng.normal(0, 1, shape))
    gt = np.where(body & ~ellipse(0.85), -95 + 15 * rng.normal(0, 1, shape), gt)  # fat rim
    gt = np.where(ellipse(0.3) & ~ellipse(0.18), 700 + 150 * smooth(1.0), gt)  # bone ring
    gt = np.where(ellipse(0.18), 1300 + 200 * smooth(1.0), gt)  # dense bone
    for d in (-0.45, 0.45):
        gt = np.where(ellipse(0.22, d, 0.1), -820 + 40 * rng.normal(0, 1, shape), gt)  # lungs
    if metal:
        gt = np.where(ellipse(0.09, 0.1, -0.5), 2600 + 200 * rng.normal(0, 1, shape), gt)
    gt = np.where(~body & (rng.random(shape) < 0.05), -1030 - 20 * rng.random(shape), gt)  # below -1024
    gt = np.rint(gt)
    noise = ndimage.gaussian_filter(rng.normal(0, 1, shape), (0.8, 0.8, 0))
    pred = gt + offset_hu + noise_hu * noise / noise.std()
    if blur > 0:
        pred = ndimage.gaussian_filter(pred, (blur, blur, 0))
    if integer_pred:
        pred = np.rint(pred)
    if identical_slice is not None:
        pred[..., identical_slice] = gt[..., identical_slice]
    return gt.astype(np.float32), pred.astype(np.float32)

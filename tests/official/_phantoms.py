"""Deterministic MR->CT-like phantom cases (HU) with a body mask, shared by the official-code comparison
(``test_synthrad2025_official.py``) and the frozen-reference test (``tests/test_compat_frozen.py``).

A case is fully described by its generator parameters (the JSON under ``frozen/`` stores only those):
an ellipsoidal body (optionally cut by the volume's last-axis border, as a cropped CT scan is) with soft
tissue, a fat rim, a bone core, a lung-like air region, a metal insert (above 3071 HU) and an air pocket
(below -1024 HU) so that the clipping quirks matter; outside the body, air around -1000 HU. The
"synthetic CT" adds a smooth bias, noise and a structural error (a blurred copy) inside the body and
arbitrary values outside it (which the evaluator must ignore).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def ct_case(
    shape: tuple[int, int, int],
    seed: int,
    *,
    gt_dtype: str = "float32",
    pred_dtype: str = "float32",
    noise_hu: float = 60.0,
    bias_hu: float = 40.0,
    blur: float = 0.0,
    cut_last_axis: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(ct, synthetic_ct, body_mask)``: arrays of ``shape`` in HU, the mask as uint8 0/1."""
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(seed)
    idx = np.indices(shape, dtype=np.float64)
    centre = [(s - 1) / 2 for s in shape]
    radius = [max(s / 2 - 2, 1.5) for s in shape]
    if cut_last_axis:
        radius[-1] = shape[-1]  # the body runs through both last-axis borders

    def rho(scale: float, shift: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        return np.sqrt(
            sum(((i - c - d * r) / (scale * r)) ** 2 for i, c, r, d in zip(idx, centre, radius, shift, strict=True))
        )

    def smooth(sigma: float) -> np.ndarray:  # a smooth random field with unit standard deviation
        f = ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma)
        return f / f.std()

    r = rho(1.0)
    body = r <= 1.0
    gt = np.where(body, 40 + 30 * smooth(1.5), -1000 + 15 * rng.normal(0, 1, shape))
    gt = np.where(body & (r > 0.8), -100 + 20 * rng.normal(0, 1, shape), gt)
    gt = np.where(rho(0.3) <= 1.0, 1100 + 450 * smooth(1.0), gt)
    gt = np.where(rho(0.25, (0.45, 0.0, 0.0)) <= 1.0, -850 + 60 * rng.normal(0, 1, shape), gt)
    gt = np.where(rho(0.12, (-0.5, 0.2, 0.0)) <= 1.0, 3600 + 150 * rng.normal(0, 1, shape), gt)  # metal
    gt = np.where(rho(0.12, (-0.3, -0.5, 0.0)) <= 1.0, -1050 + 30 * rng.normal(0, 1, shape), gt)  # air pocket
    pred = gt + bias_hu * smooth(3.0) + rng.normal(0, noise_hu, shape)
    if blur > 0:
        pred = ndimage.gaussian_filter(pred, blur)
    pred = np.where(body, pred, rng.uniform(-1300, 600, shape))
    if np.dtype(gt_dtype).kind in "iu":
        gt = np.rint(gt)
    if np.dtype(pred_dtype).kind in "iu":
        pred = np.rint(pred)
    return gt.astype(gt_dtype), pred.astype(pred_dtype), body.astype(np.uint8)

"""Deterministic brain-MR-like phantom cases (T1-like intensities) with BraTS-style masks, shared by the
official-code comparison (``test_brats_inpainting_official.py``) and the frozen-reference test
(``tests/test_compat_frozen.py``).

A case is fully described by its generator parameters (the JSON under ``frozen/`` stores only those): an
ellipsoidal brain (white/grey-matter-like smooth texture, a darker CSF-like ventricle) in a zero
background, optionally with background noise (so that the 0.5th percentile is negative and the
official lower bound is raised to 0) or filling the whole volume (so that the 0.5th percentile is
positive); an off-centre tumour made of a necrotic core inside an enhancing rim inside oedema, whose
intensity is scaled by ``lesion_gain`` (> 1: brighter than the healthy 99.5th percentile, so clipping
matters). The "prediction" is an inpainting-like guess: smooth healthy-looking tissue inside the tumour,
the ground truth elsewhere, plus a smooth bias, noise and an optional blur everywhere.
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage


def mr_case(
    shape: tuple[int, int, int],
    seed: int,
    *,
    dtype: str = "float32",
    lesion_gain: float = 0.7,
    background_noise: float = 0.0,
    fill: bool = False,
    noise: float = 25.0,
    bias: float = 20.0,
    blur: float = 0.0,
) -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    """``(t1, predicted_t1, masks)``: arrays of ``shape``; masks ``brain``, ``lesion``, ``necrotic``,
    ``edema``, ``enhancing`` (boolean)."""
    shape = tuple(int(s) for s in shape)
    rng = np.random.default_rng(seed)
    idx = np.indices(shape, dtype=np.float64)
    centre = [(s - 1) / 2 for s in shape]
    radius = [max(s / 2 - 1.5, 1.5) for s in shape]

    def rho(scale: float, shift: tuple[float, float, float] = (0.0, 0.0, 0.0)) -> np.ndarray:
        return np.sqrt(
            sum(((i - c - d * r) / (scale * r)) ** 2 for i, c, r, d in zip(idx, centre, radius, shift, strict=True))
        )

    def smooth(sigma: float) -> np.ndarray:  # a smooth random field with unit standard deviation
        f = ndimage.gaussian_filter(rng.normal(0, 1, shape), sigma)
        return f / f.std()

    brain = np.ones(shape, bool) if fill else rho(1.0) <= 1.0
    tissue = 650 + 120 * smooth(1.2)
    gt = np.where(brain, tissue, 0.0)
    gt = np.where(brain & (rho(0.22, (0.0, -0.1, 0.0)) <= 1.0), 250 + 30 * rng.normal(0, 1, shape), gt)  # CSF
    shift = (0.35, 0.25, 0.1)
    edema = rho(0.42, shift) <= 1.0
    enhancing = rho(0.27, shift) <= 1.0
    necrotic = rho(0.15, shift) <= 1.0
    lesion = (edema | enhancing | necrotic) & brain
    les_val = np.where(necrotic, 300.0, np.where(enhancing, 900.0, 560.0)) * lesion_gain
    gt = np.where(lesion, les_val + 40 * smooth(0.8), gt)
    if background_noise > 0:
        gt = np.where(brain, gt, background_noise * rng.normal(0, 1, shape))
    infill = ndimage.gaussian_filter(np.where(brain, tissue, 0.0), 2.0)
    pred = np.where(lesion, infill, gt) + bias * smooth(3.0) + rng.normal(0, noise, shape)
    if blur > 0:
        pred = ndimage.gaussian_filter(pred, blur)
    if background_noise <= 0:
        pred = np.where(brain, pred, 0.0)
    if np.dtype(dtype).kind in "iu":
        gt, pred = np.rint(gt), np.rint(pred)
        if np.dtype(dtype).kind == "u":
            gt, pred = np.clip(gt, 0, None), np.clip(pred, 0, None)
    masks = {
        "brain": brain | lesion,
        "lesion": lesion,
        "necrotic": lesion & necrotic,
        "edema": lesion & edema & ~enhancing,
        "enhancing": lesion & enhancing & ~necrotic,
    }
    return gt.astype(dtype), pred.astype(dtype), masks

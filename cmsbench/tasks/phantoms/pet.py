"""FDG PET physics: activity concentration by tissue (SUV x dose / weight), scanner PSF blur, Poisson
counts and dose reduction by binomial thinning.

Activity (Bq/mL) = SUV * A_inj * 2^(-t/T_half) / weight_g: images are decay-corrected to the scan
start, as scanners store them, so SUV = image * weight_g / (A_inj * 2^(-t/T_half)) with the
``metadata.csv`` values. Expected counts per voxel = activity * voxel volume (mL) * scan time (s) *
sensitivity (detected counts per decay, folding in geometry, attenuation and the noise amplification
of reconstruction). Full dose = Poisson(expected counts); a dose-reduction factor drf keeps each count
with probability 1/drf and is rescaled by drf, so its noise std grows ~ sqrt(drf).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np
from scipy import ndimage

from cmsbench.tasks.phantoms.anatomy import Tissues
from cmsbench.tasks.phantoms.geometry import Grid

F18_HALF_LIFE_S = 6586.2
#: Typical FDG SUV by tissue (GM ~4x WM).
SUV_TABLE: dict[str, float] = {
    "air": 0.0,
    "csf": 0.4,
    "gm": 9.0,
    "wm": 2.3,
    "fat": 0.5,
    "skin": 1.0,
    "bone": 0.4,
    "marrow": 1.5,
}


def jitter_suv(rng: np.random.Generator) -> dict[str, float]:
    """Per-subject SUVs: GM 8-10, WM = GM / (3.5..4.5), other tissues +-15 %."""
    out = {k: float(v * rng.uniform(0.85, 1.15)) for k, v in sorted(SUV_TABLE.items())}
    out["gm"] = float(rng.uniform(8.0, 10.0))
    out["wm"] = out["gm"] / float(rng.uniform(3.5, 4.5))
    out["air"] = 0.0
    return out


def decay_factor(delay_s: float, half_life_s: float = F18_HALF_LIFE_S) -> float:
    """Fraction of the injected activity left after ``delay_s`` seconds."""
    return float(2.0 ** (-delay_s / half_life_s))


def activity_image(
    tissues: Tissues, suv: Mapping[str, float], injected_bq: float, weight_kg: float, delay_s: float
) -> np.ndarray:
    """Noise-free activity concentration (Bq/mL) at scan start, by partial-volume mixing of SUVs."""
    scale = injected_bq * decay_factor(delay_s) / (weight_kg * 1000.0)
    out = np.zeros(next(iter(tissues.fractions.values())).shape, dtype=np.float32)
    for name, frac in tissues.fractions.items():
        out += frac * np.float32(suv.get(name, 0.0) * scale)
    return out


def psf_blur(img: np.ndarray, grid: Grid, fwhm_mm: float) -> np.ndarray:
    """Isotropic Gaussian scanner PSF of ``fwhm_mm`` (sigma = FWHM / 2.3548) on an anisotropic grid."""
    sigma = fwhm_mm / (2.0 * np.sqrt(2.0 * np.log(2.0))) / np.asarray(grid.spacing)
    return ndimage.gaussian_filter(img, sigma, mode="constant").astype(np.float32)


def counts_per_bq_ml(grid: Grid, scan_time_s: float, sensitivity: float) -> float:
    """Expected counts per voxel per Bq/mL."""
    voxel_ml = float(np.prod(grid.spacing)) / 1000.0
    return voxel_ml * scan_time_s * sensitivity


def full_and_low_doses(
    activity: np.ndarray,
    scale: float,
    drfs: tuple[int, ...],
    rng: np.random.Generator,
) -> tuple[np.ndarray, dict[int, np.ndarray]]:
    """Noisy full-dose image and one image per dose-reduction factor (Bq/mL, float32).

    ``scale`` is the expected counts per voxel per Bq/mL. Full dose: N ~ Poisson(scale * activity),
    image N / scale. Dose-reduction factor drf: M ~ Binomial(N, 1/drf), image drf * M / scale.
    """
    counts = rng.poisson(np.clip(activity, 0.0, None).astype(np.float64) * scale)
    full = (counts / scale).astype(np.float32)
    low = {}
    for drf in drfs:
        kept = rng.binomial(counts, 1.0 / drf)
        low[drf] = (kept * (drf / scale)).astype(np.float32)
    return full, low

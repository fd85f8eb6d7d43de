"""Lesions: irregular glioma compartments (necrotic core, enhancing rim, oedema) for BraTS-like data and
hot spots for PET. Shapes are ellipsoids whose level sets are perturbed by smooth random noise, so they
are irregular, never spheres. All sizes in mm."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cmsbench.tasks.phantoms import geometry as geo
from cmsbench.tasks.phantoms.anatomy import Tissues

#: BraTS 2021 label values.
LABEL_NECROTIC = 1
LABEL_EDEMA = 2
LABEL_ENHANCING = 4


@dataclass(frozen=True)
class Blob:
    """A blob's normalised-radius field ``f`` over a sub-box of the grid (f < 1 inside the blob)."""

    box: tuple[slice, slice, slice]
    f: np.ndarray
    width: float  # soft-edge width in units of f (about one voxel)

    def membership(self, grid: geo.Grid, level: float = 1.0) -> np.ndarray:
        """Partial-volume membership (0..1) of the region f < level, on the whole grid."""
        out = np.zeros(grid.shape, dtype=np.float32)
        if level > 0:
            out[self.box] = np.clip((level - self.f) / self.width + 0.5, 0.0, 1.0)
        return out


def make_blob(
    grid: geo.Grid,
    rng: np.random.Generator,
    center_mm: np.ndarray,
    radius_mm: float,
    irregularity: float = 0.2,
    elongation: float = 0.25,
    extent: float = 1.8,
) -> Blob:
    """An irregular blob of mean radius ``radius_mm`` around ``center_mm`` (world mm)."""
    radii = radius_mm * rng.uniform(1 - elongation, 1 + elongation, size=3)
    rot = geo.rotation_matrix(rng.uniform(-180, 180, size=3))
    inv = np.linalg.inv(grid.affine)
    reach = extent * radii.max()
    lo = np.floor(geo.apply(inv, center_mm - reach)).astype(int)
    hi = np.ceil(geo.apply(inv, center_mm + reach)).astype(int) + 1
    lo = np.clip(lo, 0, np.asarray(grid.shape))
    hi = np.clip(hi, 0, np.asarray(grid.shape))
    box = tuple(slice(int(a), int(max(a, b))) for a, b in zip(lo, hi, strict=True))
    shape = tuple(s.stop - s.start for s in box)
    if min(shape) == 0:
        return Blob(box, np.full(shape, np.inf, dtype=np.float32), 1.0)
    axes = [np.arange(s.start, s.stop, dtype=np.float64) for s in box]
    ijk = np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1)
    world = geo.apply(grid.affine, ijk)
    rel = (world - center_mm) @ rot / radii
    f = np.linalg.norm(rel, axis=-1)
    # two octaves of smooth noise: lobes (0.4 radius) and finger-like detail (~4 mm)
    for scale_mm, weight in ((0.4 * radius_mm, 1.0), (4.0, 0.5)):
        noise = rng.normal(size=shape)
        sigma = np.maximum(scale_mm / np.asarray(grid.spacing), 0.5)
        noise = ndimage.gaussian_filter(noise, sigma, mode="reflect")
        noise /= max(float(noise.std()), 1e-9)
        f = f + irregularity * weight * noise
    width = float(np.mean(grid.spacing[:2])) / radius_mm
    return Blob(box, f.astype(np.float32), width)


def _pick_center(grid: geo.Grid, rng: np.random.Generator, weight: np.ndarray) -> np.ndarray:
    """World position (mm) of a voxel drawn with probability proportional to ``weight``, jittered."""
    flat = weight.ravel().astype(np.float64)
    flat = np.where(flat > 0, flat, 0.0)
    if flat.sum() <= 0:
        idx = np.array(grid.shape) // 2
    else:
        idx = np.array(np.unravel_index(rng.choice(flat.size, p=flat / flat.sum()), grid.shape))
    jitter = rng.uniform(-0.5, 0.5, size=3)
    return geo.apply(grid.affine, idx + jitter)


@dataclass(frozen=True)
class Tumour:
    """A glioma inserted into a subject: new tissue fractions, BraTS labels and the Gd uptake."""

    tissues: Tissues
    labels: np.ndarray  # uint8, BraTS 2021 values {0, 1, 2, 4}
    gadolinium_mm: dict[str, float]


def insert_tumours(tissues: Tissues, grid: geo.Grid, rng: np.random.Generator) -> Tumour:
    """Insert one glioma (and with probability 0.25 a second, small satellite) into the brain.

    Core radius log-uniform 4-22 mm (a quarter of subjects get a small 3-7 mm lesion); necrosis in
    larger cores (inner 35-70 % of the core radius); enhancing rim = core minus necrosis; oedema
    1.4-2.6x the core radius, spreading into white matter (and 40 % into grey matter), never into CSF.
    Lesions are confined to the brain mask.
    """
    brain = tissues.brain
    wm = tissues["wm"].copy()
    gm = tissues["gm"].copy()
    nec_tot = np.zeros(grid.shape, np.float32)
    core_tot = np.zeros(grid.shape, np.float32)
    ed_tot = np.zeros(grid.shape, np.float32)
    n_tumours = 2 if rng.random() < 0.25 else 1
    # candidate centres: deep white matter (wm fraction > 0.6), away from the brain edge
    deep = ndimage.binary_erosion(brain > 0.5, iterations=2)
    weight = np.where(deep & (wm > 0.6), wm, 0.0)
    for k in range(n_tumours):
        small = k > 0 or rng.random() < 0.25
        rc = rng.uniform(3.0, 7.0) if small else float(np.exp(rng.uniform(np.log(7.0), np.log(22.0))))
        center = _pick_center(grid, rng, weight)
        core = make_blob(grid, rng, center, rc, irregularity=0.2)
        necrosis_ratio = rng.uniform(0.35, 0.7) if rc > 8.0 and rng.random() < 0.85 else 0.0
        core_m = core.membership(grid, 1.0)
        nec_m = core.membership(grid, necrosis_ratio)
        edema = make_blob(grid, rng, center, rc * rng.uniform(1.4, 2.6), irregularity=0.45, elongation=0.3)
        ed_m = np.clip(edema.membership(grid) - core_m, 0.0, 1.0)
        core_tot = np.maximum(core_tot, core_m)
        nec_tot = np.maximum(nec_tot, nec_m)
        ed_tot = np.maximum(ed_tot, ed_m)
    ed_tot = np.clip(ed_tot - core_tot, 0.0, 1.0) * brain
    core_tot *= brain
    nec_tot = np.minimum(nec_tot * brain, core_tot)
    # oedema converts white matter (fully) and grey matter (40 %) in its region
    fr = dict(tissues.fractions)
    ed_from_wm = wm * ed_tot
    ed_from_gm = 0.4 * gm * ed_tot
    fr["wm"] = wm - ed_from_wm
    fr["gm"] = gm - ed_from_gm
    fr["edema"] = (ed_from_wm + ed_from_gm).astype(np.float32)
    new = Tissues(fr, tissues.brain).replace({"necrosis": nec_tot, "enhancing": core_tot - nec_tot})
    labels = brats_labels(new, brain)
    gd = {"enhancing": float(rng.uniform(0.25, 0.5)), "edema": float(rng.uniform(0.0, 0.03))}
    return Tumour(new, labels, gd)


def brats_labels(tissues: Tissues, brain: np.ndarray) -> np.ndarray:
    """BraTS labels from fractions: where tumour compartments fill >= half a voxel, the largest one
    (1 necrotic core, 2 oedema, 4 enhancing); 0 elsewhere and outside the brain mask."""
    nec, ed, enh = tissues["necrosis"], tissues["edema"], tissues["enhancing"]
    total = nec + ed + enh
    stack = np.stack([nec, ed, enh])
    codes = np.array([LABEL_NECROTIC, LABEL_EDEMA, LABEL_ENHANCING], dtype=np.uint8)
    lab = codes[np.argmax(stack, axis=0)]
    lab[(total < 0.5) | (brain < 0.5)] = 0
    return lab.astype(np.uint8)


def insert_pet_lesions(
    activity: np.ndarray,
    tissues: Tissues,
    grid: geo.Grid,
    rng: np.random.Generator,
    n_range: tuple[int, int] = (1, 3),
) -> tuple[np.ndarray, np.ndarray]:
    """Add 1-3 hot lesions (radius 6-13 mm) inside the brain, each with activity 2.5-5x the mean
    activity of the tissue around it. Returns (activity, lesion fraction map)."""
    brain = tissues.brain
    deep = ndimage.binary_erosion(brain > 0.5, iterations=2)
    weight = np.where(deep, tissues["wm"] + 0.3 * tissues["gm"], 0.0)
    lesion = np.zeros(grid.shape, np.float32)
    act = activity.copy()
    for _ in range(int(rng.integers(n_range[0], n_range[1] + 1))):
        r = rng.uniform(6.0, 13.0)
        center = _pick_center(grid, rng, weight)
        blob = make_blob(grid, rng, center, r, irregularity=0.12)
        m = blob.membership(grid) * np.clip(brain, 0.0, 1.0)
        shell = blob.membership(grid, 2.2) - blob.membership(grid, 1.3)
        shell *= brain
        background = float((act * shell).sum() / max(shell.sum(), 1e-6))
        value = rng.uniform(2.5, 5.0) * background
        act = act * (1.0 - m) + value * m
        lesion = np.maximum(lesion, m)
    return act.astype(np.float32), lesion


@dataclass(frozen=True)
class Substructure:
    """Heterogeneous content of a glioma's compartments: the share of oedema that is free fluid and the
    share of necrosis that is debris, each a smooth random texture (0 .. ``*_max``) over the lesion."""

    fluid: np.ndarray  # share of the oedema fraction that is lesion_fluid, per voxel
    debris: np.ndarray  # share of the necrosis fraction that is necrotic_debris, per voxel
    fluid_max: float
    debris_max: float

    def signal_fractions(self, fractions: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Fractions for the signal equations: oedema and necrosis split into their sub-structures.

        The compartment fractions (and so the labels) are unchanged; only what fills them differs.
        """
        out = dict(fractions)
        fluid = fractions["edema"] * self.fluid
        debris = fractions["necrosis"] * self.debris
        out["edema"] = (fractions["edema"] - fluid).astype(np.float32)
        out["necrosis"] = (fractions["necrosis"] - debris).astype(np.float32)
        out["lesion_fluid"], out["necrotic_debris"] = fluid.astype(np.float32), debris.astype(np.float32)
        return out


def _texture(grid: geo.Grid, rng: np.random.Generator, scale_mm: float) -> np.ndarray:
    """A smooth random field on ``grid`` with uniform marginals on [0, 1] (Gaussian noise smoothed at
    ``scale_mm``, standardised, through the normal CDF)."""
    from scipy.special import ndtr

    noise = rng.normal(size=grid.shape)
    sigma = np.maximum(scale_mm / np.asarray(grid.spacing), 0.5)
    field = ndimage.gaussian_filter(noise, sigma, mode="reflect")
    field = (field - field.mean()) / max(float(field.std()), 1e-9)
    return ndtr(field).astype(np.float32)


def draw_substructure(grid: geo.Grid, rng: np.random.Generator, scale_mm: float = 4.0) -> Substructure:
    """Lesion texture of one subject: fluid up to 10-25 % of the oedema and debris up to 30-70 % of the
    necrosis, varying over ``scale_mm``. Fluid is bright on T2 and (nearly) nulled on FLAIR, debris darker on
    T2 and brighter on FLAIR than the necrosis around it, so T2 and FLAIR see the texture differently."""
    fluid_max, debris_max = float(rng.uniform(0.10, 0.25)), float(rng.uniform(0.3, 0.7))
    fluid = fluid_max * _texture(grid, rng, scale_mm)
    debris = debris_max * _texture(grid, rng, scale_mm)
    return Substructure(fluid, debris, fluid_max, debris_max)

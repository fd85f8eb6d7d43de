"""A thin-slice abdominal CT phantom in the Medical Segmentation Decathlon layout (``msd_ct``, for ``ct_thin``).

Each subject is an analytic abdomen evaluated at the voxel centres of a thin-slice grid (default 96 x 96 x
45-53 voxels of 3.0 x 3.0 x 1.0 mm), with edges smoothed over :data:`EDGE_MM` (partial volume): an elliptic
body whose outline changes along z, subcutaneous fat, muscle wall, liver (with hypo- or hyper-dense
lesions and oblique contrast-filled vessels of 1.5-3 mm radius), spleen, kidneys, an aorta that drifts along
z, a vertebral column with intervertebral discs every 25-32 mm, oblique rib cross-sections and bowel gas.
Structures change within a few mm along z (discs, vessel cross-sections that move from slice to slice,
lesion ends), so interpolation along z is not trivial. Noise: i.i.d. Gaussian in HU per voxel with standard
deviation :data:`NOISE_HU` (per subject; thin-slice noise at a routine abdominal dose), slightly correlated
in-plane (Gaussian kernel of 0.6 voxel, as the FBP kernel does) and independent between slices. HU rounded
to int16 and clipped below at -1024. Every :data:`METAL_EVERY`-th subject (index 17 mod 40) carries a metal
implant of :data:`METAL_HU` HU, so that SAINT's HU-range exclusion (range > 9000) has something to exclude.

Written as ``Task90_PhantomAbdomenCT/imagesTr/abdomen_<i>.nii.gz`` (and ``labelsTr``: 1 liver, 2 lesion),
with ``dataset.json`` (``modality`` {"0": "CT"}, ``training``) marked as phantom data.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cmsbench.tasks.phantoms import geometry as geo
from cmsbench.tasks.phantoms.catalog import subject_id
from cmsbench.tasks.phantoms.writers import subject_rng, write_nifti

TASK_FOLDER = "Task90_PhantomAbdomenCT"
#: in-plane voxels, in-plane spacing (mm), slice spacing (mm), slice counts (low, high) per size
GRIDS: dict[str, tuple[int, float, float, tuple[int, int]]] = {
    "default": (96, 3.0, 1.0, (45, 53)),
    "full": (256, 1.2, 1.0, (97, 121)),
}
EDGE_MM = 0.6
NOISE_HU = (8.0, 16.0)
METAL_HU = 8500.0
METAL_EVERY = (40, 17)
HU = {"air": -1000.0, "fat": -100.0, "muscle": 45.0, "liver": 60.0, "spleen": 50.0, "kidney": 150.0,
      "aorta": 200.0, "vessel": 180.0, "bone": 450.0, "cortex": 900.0, "disc": 90.0, "gas": -950.0}


@dataclass
class AbdomenSubject:
    """One phantom subject: its grid, HU image (int16) and labels (uint8)."""

    subject_id: str
    grid: geo.Grid
    hu: np.ndarray
    labels: np.ndarray
    metal: bool


def _inside(d: np.ndarray) -> np.ndarray:
    """Partial-volume occupancy from a signed distance (mm, negative inside)."""
    return (1.0 / (1.0 + np.exp(np.clip(d / (EDGE_MM / 2.0), -40, 40)))).astype(np.float32, copy=False)


def _ellipsoid(x, y, z, c, r) -> np.ndarray:
    """Approximate signed distance (mm) to an axis-aligned ellipsoid centre ``c``, radii ``r``."""
    c, r = [float(v) for v in c], [float(v) for v in r]
    q = np.sqrt(((x - c[0]) / r[0]) ** 2 + ((y - c[1]) / r[1]) ** 2 + ((z - c[2]) / r[2]) ** 2)
    return (q - 1.0) * min(r)


def _tube(x, y, z, p0, direction, radius) -> np.ndarray:
    """Signed distance (mm) to an infinite cylinder through ``p0`` along ``direction``."""
    d = [float(v) for v in np.asarray(direction, float) / np.linalg.norm(direction)]
    p0 = [float(v) for v in p0]
    vx, vy, vz = x - p0[0], y - p0[1], z - p0[2]
    t = vx * d[0] + vy * d[1] + vz * d[2]
    return np.sqrt(np.maximum((vx - t * d[0]) ** 2 + (vy - t * d[1]) ** 2 + (vz - t * d[2]) ** 2, 0.0)) - radius


def _paint(img: np.ndarray, occupancy: np.ndarray, value: float) -> None:
    img += occupancy * (np.float32(value) - img)


def make_abdomen(index: int, seed: int = 0, size: str = "default") -> AbdomenSubject:
    """Subject ``index`` of the ``msd_ct`` phantom (see the module doc)."""
    n_xy, dxy, dz, (z_lo, z_hi) = GRIDS[size]
    rng = subject_rng(seed, "msd_ct", index)
    nz = int(rng.integers(z_lo, z_hi + 1))
    grid = geo.Grid((n_xy, n_xy, nz), (dxy, dxy, dz), (0.0, 0.0, 0.0))
    ax = [(np.arange(s) - (s - 1) / 2.0) * sp for s, sp in zip(grid.shape, grid.spacing, strict=True)]
    x, y, z = np.meshgrid(*[v.astype(np.float32) for v in ax], indexing="ij")
    half_fov = n_xy * dxy / 2.0
    z_phase = rng.uniform(0, 2 * np.pi)
    # body outline: semi-axes change slowly along z
    a = half_fov * rng.uniform(0.78, 0.88) * (1 + 0.04 * np.sin(z / 40.0 + z_phase))
    b = half_fov * rng.uniform(0.55, 0.66) * (1 + 0.03 * np.cos(z / 35.0 + z_phase))
    body_q = np.sqrt((x / a) ** 2 + (y / b) ** 2)
    img = np.full(grid.shape, HU["air"], dtype=np.float32)
    _paint(img, _inside((body_q - 1.0) * np.minimum(a, b)), HU["fat"])
    fat = rng.uniform(8.0, 22.0)
    _paint(img, _inside((body_q - 1.0) * np.minimum(a, b) + fat), HU["muscle"] + rng.normal(0, 5))
    inner = (body_q - 1.0) * np.minimum(a, b) + fat + rng.uniform(8.0, 14.0)
    _paint(img, _inside(inner), HU["fat"] + 30)  # visceral fat
    scale = half_fov / 144.0
    jitter = {k: v + rng.normal(0, 6) for k, v in HU.items()}
    labels = np.zeros(grid.shape, np.uint8)
    # RAS+: +x is the subject's right, +y anterior. Liver on the right, its dome within the volume for some
    lc = (45 * scale + rng.normal(0, 5), 5 * scale + rng.normal(0, 5), rng.uniform(-20, 30))
    lr = (rng.uniform(55, 70) * scale, rng.uniform(55, 70) * scale, rng.uniform(45, 80))
    liver = _inside(_ellipsoid(x, y, z, lc, lr))
    _paint(img, liver, jitter["liver"])
    labels[liver > 0.5] = 1
    # spleen, kidneys
    _paint(img, _inside(_ellipsoid(x, y, z, (-65 * scale, -25 * scale, rng.uniform(-10, 20)),
                                   (22 * scale, 32 * scale, rng.uniform(30, 50)))), jitter["spleen"])
    for side in (-1, 1):
        kc = (side * 50 * scale, -55 * scale, rng.uniform(-25, 10))
        _paint(img, _inside(_ellipsoid(x, y, z, kc, (18 * scale, 25 * scale, rng.uniform(25, 40)))), jitter["kidney"])
    # aorta drifting along z
    drift = rng.normal(0, 0.15, size=2)
    _paint(img, _inside(_tube(x, y, z, (-8 * scale, -35 * scale, 0.0), (drift[0], drift[1], 1.0), 10 * scale)),
           jitter["aorta"])
    # vertebral column: bodies with a cortical shell, discs every 25-32 mm
    sc = (0.0, -75 * scale)  # posterior
    rv = 17 * scale
    r_sp = np.sqrt((x - sc[0]) ** 2 + (y - sc[1]) ** 2)
    _paint(img, _inside(r_sp - rv), jitter["cortex"])
    _paint(img, _inside(r_sp - rv + 2.5), jitter["bone"])
    period, disc = rng.uniform(25, 32), rng.uniform(6, 9)
    zz = np.mod(z + rng.uniform(0, period), period)
    _paint(img, _inside(r_sp - rv) * _inside(np.abs(zz - period / 2) - disc / 2), jitter["disc"])
    # oblique ribs: small bone tubes near the body wall
    for _ in range(int(rng.integers(4, 8))):
        ang = rng.uniform(0, 2 * np.pi)
        p0 = (0.8 * a.mean() * np.cos(ang) * 0.95, 0.8 * b.mean() * np.sin(ang) * 0.95, rng.uniform(-30, 30))
        direction = (-np.sin(ang), np.cos(ang), rng.uniform(0.3, 0.8) * rng.choice([-1, 1]))
        _paint(img, _inside(_tube(x, y, z, p0, direction, rng.uniform(3.5, 5.5))), jitter["cortex"])
    # liver vessels (oblique: their cross-sections move from slice to slice) and lesions
    for _ in range(int(rng.integers(6, 12))):
        p0 = tuple(np.asarray(lc) + rng.normal(0, 1, 3) * np.asarray(lr) * 0.35)
        direction = rng.normal(0, 1, 3)
        occ = _inside(_tube(x, y, z, p0, direction, rng.uniform(1.5, 3.0))) * liver
        _paint(img, occ, jitter["vessel"])
    for _ in range(int(rng.integers(1, 5))):
        p0 = np.asarray(lc) + rng.uniform(-0.5, 0.5, 3) * np.asarray(lr)
        radius = rng.uniform(3.0, 10.0)
        occ = _inside(_ellipsoid(x, y, z, p0, (radius, radius * rng.uniform(0.7, 1.3), radius * rng.uniform(0.6, 1.2))))
        occ = occ * liver
        _paint(img, occ, jitter["liver"] + rng.choice([-1, 1]) * rng.uniform(25, 60))
        labels[occ > 0.5] = 2
    # bowel gas pockets
    for _ in range(int(rng.integers(2, 6))):
        p0 = (rng.uniform(-0.6, 0.4) * a.mean(), rng.uniform(-0.1, 0.6) * b.mean(), rng.uniform(-25, 25))
        radius = rng.uniform(4.0, 12.0)
        _paint(img, _inside(_ellipsoid(x, y, z, p0, (radius, radius * 0.8, radius * rng.uniform(0.5, 1.2)))),
               jitter["gas"])
    metal = index % METAL_EVERY[0] == METAL_EVERY[1]
    if metal:  # a small metal implant (SAINT excludes such volumes by their HU range)
        _paint(img, _inside(_ellipsoid(x, y, z, (sc[0], sc[1] + rv, 0.0), (4.0, 4.0, 6.0))), METAL_HU)
    sigma = rng.uniform(*NOISE_HU)
    noise = rng.standard_normal(grid.shape)
    noise = ndimage.gaussian_filter(noise, sigma=(0.6, 0.6, 0.0))
    noise *= sigma / max(float(noise.std()), 1e-9)
    hu = np.clip(np.rint(img + noise), -1024, 30000).astype(np.int16)
    return AbdomenSubject(subject_id("msd_ct", index), grid, hu, labels, bool(metal))


def _abdomen_subject(out: Path, index: int, seed: int, size: str) -> None:
    sub = make_abdomen(index, seed, size)
    folder = out / TASK_FOLDER
    write_nifti(folder / "imagesTr" / f"{sub.subject_id}.nii.gz", sub.hu, sub.grid.affine, np.int16)
    write_nifti(folder / "labelsTr" / f"{sub.subject_id}.nii.gz", sub.labels, sub.grid.affine, np.uint8)


def write_dataset_json(out: Path, n: int) -> Path:
    """``Task90_PhantomAbdomenCT/dataset.json`` listing subjects 0..n-1 (MSD format, marked as phantom)."""
    ids = [subject_id("msd_ct", i) for i in range(n)]
    info = {
        "name": "PhantomAbdomenCT",
        "description": "cmsbench synthetic thin-slice abdominal CT phantom (not real patients), MSD layout",
        "reference": "cmsbench.tasks.phantoms.abdomen",
        "licence": "CC0 (synthetic)",
        "release": "phantom",
        "phantom": True,
        "tensorImageSize": "3D",
        "modality": {"0": "CT"},
        "labels": {"0": "background", "1": "liver", "2": "lesion"},
        "numTraining": n,
        "numTest": 0,
        "training": [{"image": f"./imagesTr/{i}.nii.gz", "label": f"./labelsTr/{i}.nii.gz"} for i in ids],
        "test": [],
    }
    path = out / TASK_FOLDER / "dataset.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(info, indent=2) + "\n")
    return path

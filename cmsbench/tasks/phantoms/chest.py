"""The chest CT phantom of ``ct_kernel``: one scan reconstructed with a smooth and a sharp FBP kernel.

Anatomy (procedural, per subject, partial volume from 3 x 3 x 2 sub-samples per voxel): an elliptical body
with a subcutaneous fat layer and muscle, two lungs (parenchyma about -860 HU with a smooth texture) holding
branching vessel trees (blood-filled tubes from the hilum outwards, radius 4 mm down to under 1 mm) and
emphysema-like low-density regions (about -985 HU; their number varies per subject from none to many), the
heart and aorta, the spine (cortical rim, cancellous body, spinal canal) and ribs in the chest wall.

Acquisition: the parallel-beam projector of :mod:`.ct` projects each axial slice once; detected counts are
Poisson(I0 exp(-p)) with :data:`CHEST_I0` photons per detector bin and view (the stated dose); the same
noisy sinogram is reconstructed twice by FBP, with the smooth kernel (ramp x Hann window, cutoff
:data:`SMOOTH_CUTOFF` of Nyquist) and the sharp one (the plain ramp, Ram-Lak, up to Nyquist): what a dual-
kernel reconstruction of one acquisition is. The series are written as DICOM with ConvolutionKernel
:data:`SMOOTH_KERNEL` / :data:`SHARP_KERNEL` in one study folder per subject (layout A of ``ct_kernel``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cmsbench.tasks.phantoms import ct
from cmsbench.tasks.phantoms import geometry as geo
from cmsbench.tasks.phantoms.catalog import subject_id
from cmsbench.tasks.phantoms.writers import (
    deterministic_date,
    deterministic_uid,
    stable_int,
    subject_rng,
    write_ct_slice,
)

#: Voxel grids per size: few thin axial slices (the projector is 2D, so cost grows with the slice count).
CHEST_GRIDS: dict[str, geo.Grid] = {
    "default": geo.Grid((128, 128, 4), (2.8, 2.8, 2.5), (0.0, 0.0, 0.0)),
    "full": geo.Grid((256, 256, 16), (1.4, 1.4, 1.25), (0.0, 0.0, 0.0)),
}
#: Incident photons per detector bin and view (the stated dose of both reconstructions).
CHEST_I0 = 1.5e3
#: The smooth kernel: ramp x Hann window with this cutoff (fraction of Nyquist).
SMOOTH_CUTOFF = 0.8
#: ConvolutionKernel tags of the two series (the task's default kernel lists name them).
SMOOTH_KERNEL = "PHANTOM_HANN"
SHARP_KERNEL = "PHANTOM_RAMLAK"
#: Mean HU of the chest tissues (jittered per subject).
CHEST_HU: dict[str, float] = {
    "lung": -860.0,
    "emphysema": -985.0,
    "blood": 40.0,
    "muscle": 45.0,
    "fat": -95.0,
    "cortical": 900.0,
    "cancellous": 300.0,
    "canal": 15.0,
}
_SUB, _ZSUB = 3, 2


@dataclass(frozen=True)
class ChestSubject:
    """One chest CT in memory: noise-free HU, the two reconstructions (HU, float32) and the truth."""

    subject_id: str
    grid: geo.Grid
    hu: np.ndarray  # noise-free, before projection
    smooth: np.ndarray
    sharp: np.ndarray
    lung: np.ndarray  # fraction of lung (parenchyma, emphysema and intrapulmonary vessels) per voxel
    emphysema: np.ndarray  # fraction of emphysema per voxel
    n_emphysema: int


def _ellipse(x: np.ndarray, y: np.ndarray, cx: float, cy: float, ax: float, ay: float, p: float = 2.0) -> np.ndarray:
    """Inside a (super-)ellipse centred at (cx, cy) with semi-axes (ax, ay) and exponent p."""
    return (np.abs((x - cx) / ax) ** p + np.abs((y - cy) / ay) ** p) <= 1.0


def _segment_distance(pts: np.ndarray, a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Distance of points (..., 3) to the segment a-b."""
    ab = b - a
    t = np.clip(((pts - a) @ ab) / max(float(ab @ ab), 1e-9), 0.0, 1.0)
    return np.linalg.norm(pts - (a + t[..., None] * ab), axis=-1)


def _vessel_segments(rng: np.random.Generator, root: np.ndarray, direction: np.ndarray, radius: float,
                     length: float, depth: int) -> list[tuple[np.ndarray, np.ndarray, float]]:
    """A binary vessel tree: (start, end, radius) per segment; children 0.75 x thinner, 0.8 x shorter."""
    out = []
    stack = [(root, direction / np.linalg.norm(direction), radius, length, depth)]
    while stack:
        start, d, r, ell, k = stack.pop()
        end = start + d * ell
        out.append((start, end, r))
        if k == 0:
            continue
        for sign in (-1.0, 1.0):
            angle = np.deg2rad(rng.uniform(22.0, 40.0)) * sign
            c, s = np.cos(angle), np.sin(angle)
            nd = np.array([c * d[0] - s * d[1], s * d[0] + c * d[1], d[2] + rng.normal(0.0, 0.25)])
            stack.append((end, nd / np.linalg.norm(nd), r * 0.75, ell * rng.uniform(0.7, 0.9), k - 1))
    return out


def chest_anatomy(grid: geo.Grid, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """(noise-free HU, lung fraction, emphysema fraction, number of emphysema regions) on ``grid``."""
    nx, ny, nz = grid.shape
    sx, sy, sz = grid.spacing
    origin = grid.affine[:3, 3]
    fx = origin[0] + (np.arange(nx * _SUB) + 0.5) / _SUB * sx - 0.5 * sx
    fy = origin[1] + (np.arange(ny * _SUB) + 0.5) / _SUB * sy - 0.5 * sy
    fz = origin[2] + (np.arange(nz * _ZSUB) + 0.5) / _ZSUB * sz - 0.5 * sz
    x, y = np.meshgrid(fx, fy, indexing="ij")
    hu_t = {k: v + (rng.normal(0.0, 15.0) if k == "lung" else rng.normal(0.0, 3.0)) for k, v in CHEST_HU.items()}
    a, b = rng.uniform(140.0, 160.0), rng.uniform(95.0, 112.0)  # body semi-axes (mm)
    fat = rng.uniform(8.0, 16.0)
    body = _ellipse(x, y, 0.0, 0.0, a, b)
    inner = _ellipse(x, y, 0.0, 0.0, a - fat, b - fat)
    hu2 = np.full(x.shape, -1000.0)
    hu2[body] = hu_t["fat"]
    hu2[inner] = hu_t["muscle"]
    # lungs: rounded-square ellipses either side of the mediastinum; the heart takes part of the left one
    wall = fat + rng.uniform(8.0, 14.0)
    lungs = np.zeros(x.shape, bool)
    for side in (-1.0, 1.0):
        lx = side * rng.uniform(0.42, 0.48) * a
        lax = min(rng.uniform(0.32, 0.38) * a, a - wall - abs(lx))
        lay = rng.uniform(0.68, 0.78) * b
        lungs |= _ellipse(x, y, lx, rng.uniform(-0.12, -0.02) * b, lax, min(lay, b - wall), p=2.4)
    heart = _ellipse(x, y, -0.12 * a, 0.30 * b, rng.uniform(0.22, 0.28) * a, rng.uniform(0.35, 0.42) * b)
    aorta = _ellipse(x, y, -0.08 * a, -0.35 * b, 12.0, 12.0)
    lungs &= ~heart & ~aorta & _ellipse(x, y, 0.0, 0.0, a - wall, b - wall)  # a closed chest wall
    hu2[heart | aorta] = hu_t["blood"]
    # spine: vertebral body (cortical rim, cancellous core) and canal, posterior midline; ribs in the wall
    vy = -b + rng.uniform(38.0, 46.0)
    vert = _ellipse(x, y, 0.0, vy, 18.0, 15.0)
    hu2[vert] = hu_t["cortical"]
    hu2[_ellipse(x, y, 0.0, vy, 15.0, 12.0)] = hu_t["cancellous"]
    hu2[_ellipse(x, y, 0.0, vy - 22.0, 7.0, 6.0)] = hu_t["canal"]
    hu2[_ellipse(x, y, 0.0, vy - 22.0, 10.0, 9.5) & ~_ellipse(x, y, 0.0, vy - 22.0, 7.0, 6.0)] = hu_t["cortical"]
    ra, rb = a - fat - 6.0, b - fat - 6.0
    for deg in (*range(25, 160, 22), *range(205, 340, 22)):  # ribs along the wall, not at sternum or spine
        angle = np.deg2rad(deg + rng.uniform(-4.0, 4.0))
        hu2[_ellipse(x, y, ra * np.cos(angle), rb * np.sin(angle), 5.5, 3.5)] = hu_t["cortical"]
    hu = np.repeat(hu2[:, :, None], len(fz), axis=2)
    lung3 = np.repeat(lungs[:, :, None], len(fz), axis=2)
    # parenchyma texture (smooth, ~15 HU) and emphysema regions
    coarse = ndimage.gaussian_filter(rng.normal(0.0, 1.0, (nx, ny, len(fz))), (3.0 / sx, 3.0 / sy, 1.5))
    texture = np.repeat(np.repeat(coarse, _SUB, axis=0), _SUB, axis=1)  # smooth on the voxel scale already
    texture *= 15.0 / max(float(texture.std()), 1e-9)
    hu[lung3] = hu_t["lung"] + texture[lung3]
    emph = np.zeros(hu.shape, bool)
    severity = rng.uniform(0.0, 1.0) ** 1.5
    n_emph = int(rng.poisson(40.0 * severity))
    inside = np.argwhere(lungs)
    for _ in range(n_emph):
        i, j = inside[rng.integers(len(inside))]
        c = np.array([fx[i], fy[j], rng.uniform(fz[0] - 4.0, fz[-1] + 4.0)])
        r = rng.uniform(3.0, 10.0)
        box = (slice(max(0, i - int(r * _SUB / sx) - 1), i + int(r * _SUB / sx) + 2),
               slice(max(0, j - int(r * _SUB / sy) - 1), j + int(r * _SUB / sy) + 2))
        d2 = ((fx[box[0]] - c[0])[:, None, None] ** 2 + (fy[box[1]] - c[1])[None, :, None] ** 2
              + ((fz - c[2]) * rng.uniform(0.8, 1.2))[None, None, :] ** 2)
        emph[box] |= d2 <= r * r
    emph &= lung3
    hu[emph] = hu_t["emphysema"] + rng.normal(0.0, 3.0, int(emph.sum()))
    # vessel trees from each hilum: one up-going and one down-going tree per lung
    vessels = np.zeros(hu.shape, bool)
    for side in (-1.0, 1.0):
        hilum = np.array([side * rng.uniform(0.22, 0.28) * a, rng.uniform(-0.05, 0.1) * b, rng.uniform(fz[0], fz[-1])])
        for k in range(2):
            direction = np.array([side * rng.uniform(0.6, 1.0), rng.uniform(-0.8, 0.8), (k - 0.5) * rng.uniform(0.2, 0.6)])
            for start, end, r in _vessel_segments(rng, hilum, direction, rng.uniform(3.5, 4.5), rng.uniform(18.0, 26.0), 5):
                lo, hi = np.minimum(start, end) - r, np.maximum(start, end) + r
                ii = np.flatnonzero((fx >= lo[0]) & (fx <= hi[0]))
                jj = np.flatnonzero((fy >= lo[1]) & (fy <= hi[1]))
                kk = np.flatnonzero((fz >= lo[2]) & (fz <= hi[2]))
                if not (ii.size and jj.size and kk.size):
                    continue
                box3 = (slice(ii[0], ii[-1] + 1), slice(jj[0], jj[-1] + 1), slice(kk[0], kk[-1] + 1))
                pts = np.stack(np.meshgrid(fx[box3[0]], fy[box3[1]], fz[box3[2]], indexing="ij"), axis=-1)
                vessels[box3] |= _segment_distance(pts, start, end) <= r
    vessels &= lung3
    hu[vessels] = hu_t["blood"]
    emph &= ~vessels

    def down(arr: np.ndarray) -> np.ndarray:
        return arr.reshape(nx, _SUB, ny, _SUB, nz, _ZSUB).mean(axis=(1, 3, 5)).astype(np.float32)

    return down(hu), down(lung3.astype(np.float32)), down(emph.astype(np.float32)), n_emph


def reconstruct_kernels(hu: np.ndarray, pixel_mm: float, rng: np.random.Generator, i0: float = CHEST_I0,
                        smooth_cutoff: float = SMOOTH_CUTOFF) -> tuple[np.ndarray, np.ndarray]:
    """(smooth, sharp) FBP reconstructions (HU) of one noisy acquisition of ``hu`` (n, n, S)."""
    geom = ct.projector(hu.shape[0])
    mu = ct.hu_to_mu(hu) * geom.inside[:, :, None]
    p = ct.forward(mu, pixel_mm, geom)
    counts = rng.poisson(i0 * np.exp(-p.astype(np.float64)))
    p_hat = -np.log(np.maximum(counts, 0.5) / i0)
    out = []
    for window, cutoff in (("hann", smooth_cutoff), ("ram-lak", 1.0)):
        img = ct.mu_to_hu(ct.fbp(p_hat, pixel_mm, geom, window=window, cutoff=cutoff))
        img[~geom.inside] = -1000.0
        out.append(img)
    return out[0], out[1]


def make_chest(index: int, seed: int = 0, size: str = "default") -> ChestSubject:
    """Subject ``index`` of the chest phantom (smooth- and sharp-kernel reconstructions of one scan)."""
    grid = CHEST_GRIDS[size]
    rng = subject_rng(seed, "chest", index)
    hu, lung, emph, n_emph = chest_anatomy(grid, rng)
    smooth, sharp = reconstruct_kernels(hu, grid.spacing[0], rng)
    return ChestSubject(subject_id("chest", index), grid, hu, smooth, sharp, lung, emph, n_emph)


def chest_folders(seed: int, index: int) -> tuple[str, str, str]:
    """(study folder, smooth series folder, sharp series folder) names of subject ``index``."""
    date = deterministic_date(seed, "chest", index)
    study = f"{date.month:02d}-{date.day:02d}-{date.year}-NA-CHEST-{stable_int(100000, seed, 'chest-study', index):05d}"
    smooth = f"1.000000-{SMOOTH_KERNEL}-{stable_int(100000, seed, 'chest-smooth', index):05d}"
    sharp = f"2.000000-{SHARP_KERNEL}-{stable_int(100000, seed, 'chest-sharp', index):05d}"
    return study, smooth, sharp


def write_chest_subject(out: Path, index: int, seed: int, size: str) -> None:
    """Write subject ``index`` as two DICOM series (one per kernel) in one study folder."""
    sub = make_chest(index, seed, size)
    grid, pid = sub.grid, sub.subject_id
    study, smooth_dir, sharp_dir = chest_folders(seed, index)
    study_uid = deterministic_uid(seed, "chest", pid, "study")
    frame_uid = deterministic_uid(seed, "chest", pid, "frame")
    date = deterministic_date(seed, "chest", index)
    aff = grid.affine
    n = grid.shape[0]
    series = ((smooth_dir, SMOOTH_KERNEL, f"phantom chest FBP Hann {SMOOTH_CUTOFF:g}", sub.smooth),
              (sharp_dir, SHARP_KERNEL, "phantom chest FBP Ram-Lak", sub.sharp))
    for number, (folder, kernel, desc, image) in enumerate(series, start=1):
        vol = np.clip(np.rint(image), -1024, 3071).astype(np.int16)
        series_uid = deterministic_uid(seed, "chest", pid, kernel)
        for k in range(grid.shape[2]):
            pixels = vol[::-1, ::-1, k].T  # DICOM rows run posterior-wards, columns left-wards (LPS)
            corner = geo.apply(aff, np.array([n - 1, grid.shape[1] - 1, k], dtype=float))
            write_ct_slice(
                out / pid / study / folder / f"1-{k + 1:03d}.dcm", pixels,
                position_lps=(-corner[0], -corner[1], corner[2]), pixel_mm=grid.spacing[0], slice_mm=grid.spacing[2],
                instance=k + 1, patient_id=pid, study_uid=study_uid, series_uid=series_uid, frame_uid=frame_uid,
                sop_uid=deterministic_uid(seed, "chest", pid, kernel, k), series_number=number,
                series_description=desc, study_date=date, convolution_kernel=kernel,
                study_description="cmsbench phantom chest CT (dual kernel)", body_part="CHEST",
                window=(-600.0, 1500.0),
            )

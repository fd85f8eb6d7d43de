"""Acquisition geometry of one MR sequence: thick 2D slices resampled onto the volume grid, and the
residual rigid misalignment a multi-sequence co-registration leaves.

Thick 2D slices (how BraTS' FLAIR and T2 are acquired: axial, coronal or sagittal 2D acquisitions with
2-6 mm slices, resampled to 1 mm isotropic; Menze et al., IEEE TMI 34(10), 2015, section III.A, and Bakas
et al., arXiv:1811.02629): the image on the grid is integrated over each slice's profile, a Gaussian of
full width at half maximum ``thickness_mm`` centred on the slice (the usual model of a slice-selective
RF pulse's profile; contiguous slices, spacing = thickness), noise is added to the acquired slices, and
the slice stack is interpolated back onto the grid linearly along the slice axis (the resampling of the
distributed data). Both steps are linear maps along one axis, applied as one small matrix.

Residual misalignment: a small rigid motion (rotation about the grid centre, then translation), drawn
per sequence; the image seen by that sequence is the reference image at the moved positions, resampled
by cubic B-splines.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage

from cmsbench.tasks.phantoms import geometry as geo

#: Full width at half maximum of a Gaussian in units of its standard deviation.
FWHM_PER_SIGMA = 2.0 * float(np.sqrt(2.0 * np.log(2.0)))


@dataclass(frozen=True)
class SliceAcquisition:
    """Thick 2D slices along array axis ``axis`` (0 sagittal, 1 coronal, 2 axial on a RAS+ grid).

    ``thickness_mm`` is the slice profile's FWHM and the slice spacing; ``offset_mm`` places the first
    slice centre relative to voxel 0 (a fraction of the thickness, so slice centres and voxels do not
    coincide in general).
    """

    axis: int
    thickness_mm: float
    offset_mm: float = 0.0

    def slice_centres(self, n: int, spacing_mm: float) -> np.ndarray:
        """Slice centres in voxel units along the axis, one beyond each end of ``n`` voxels."""
        step = self.thickness_mm / spacing_mm
        start = (self.offset_mm / spacing_mm) % step
        first = start - step * np.ceil(start / step + 1e-9)
        return first + step * np.arange(int(np.ceil((n - 1 - first) / step)) + 2)

    def profile_matrix(self, n: int, spacing_mm: float) -> np.ndarray:
        """(K, n): row k = slice k's profile weights over the ``n`` voxels (each row sums to 1)."""
        centres = self.slice_centres(n, spacing_mm)
        sigma = max(self.thickness_mm / FWHM_PER_SIGMA / spacing_mm, 1e-3)
        z = np.arange(n, dtype=np.float64)
        w = np.exp(-0.5 * ((z[None, :] - centres[:, None]) / sigma) ** 2)
        return w / np.maximum(w.sum(axis=1, keepdims=True), 1e-300)

    def interpolation_matrix(self, n: int, spacing_mm: float) -> np.ndarray:
        """(n, K): voxel z = linear interpolation between the two slice centres around it."""
        centres = self.slice_centres(n, spacing_mm)
        out = np.zeros((n, len(centres)))
        for z in range(n):
            k = int(np.searchsorted(centres, z, side="right")) - 1
            k = min(max(k, 0), len(centres) - 2)
            f = (z - centres[k]) / (centres[k + 1] - centres[k])
            out[z, k], out[z, k + 1] = 1.0 - f, f
        return out

    def acquire(self, image: np.ndarray, spacing_mm: tuple[float, float, float]) -> np.ndarray:
        """The acquired slice stack (slice index in place of ``axis``): ``image`` integrated over each profile."""
        w = self.profile_matrix(image.shape[self.axis], float(spacing_mm[self.axis]))
        return _along(image, w, self.axis)

    def resample(self, stack: np.ndarray, n: int, spacing_mm: tuple[float, float, float]) -> np.ndarray:
        """The slice stack interpolated back onto the ``n`` grid positions along ``axis``."""
        r = self.interpolation_matrix(n, float(spacing_mm[self.axis]))
        return _along(stack, r, self.axis)

    def psf_matrix(self, n: int, spacing_mm: float) -> np.ndarray:
        """(n, n): the whole noise-free map along the axis (acquire, then resample)."""
        return self.interpolation_matrix(n, spacing_mm) @ self.profile_matrix(n, spacing_mm)


def _along(arr: np.ndarray, matrix: np.ndarray, axis: int) -> np.ndarray:
    """Apply ``matrix`` (m, n) to ``arr`` along ``axis`` (length n -> m), float32."""
    moved = np.moveaxis(np.asarray(arr, dtype=np.float32), axis, -1)
    out = moved @ matrix.T.astype(np.float32)
    return np.ascontiguousarray(np.moveaxis(out, -1, axis), dtype=np.float32)


@dataclass(frozen=True)
class Misalignment:
    """A rigid residual motion: rotation angles (degrees, about x, y, z through the grid centre) and a
    translation (mm)."""

    rotation_deg: tuple[float, float, float]
    translation_mm: tuple[float, float, float]

    @classmethod
    def draw(cls, rng: np.random.Generator, sd_rotation_deg: float, sd_translation_mm: float) -> Misalignment:
        """Normal angles and shifts of the given standard deviations, each clipped at 2.5 sd."""
        rot = np.clip(rng.normal(0.0, sd_rotation_deg, 3), -2.5 * sd_rotation_deg, 2.5 * sd_rotation_deg)
        shift = np.clip(rng.normal(0.0, sd_translation_mm, 3), -2.5 * sd_translation_mm, 2.5 * sd_translation_mm)
        return cls(tuple(float(v) for v in rot), tuple(float(v) for v in shift))  # type: ignore[arg-type]

    def world_matrix(self, grid: geo.Grid) -> np.ndarray:
        """4x4 world (mm) motion: rotation about the grid's centre, then the translation."""
        centre = geo.apply(grid.affine, (np.asarray(grid.shape, dtype=np.float64) - 1.0) / 2.0)
        return geo.about_point(geo.rotation_matrix(self.rotation_deg), centre, np.asarray(self.translation_mm))

    def max_displacement_mm(self, grid: geo.Grid) -> float:
        """The largest displacement (mm) of any grid corner under the motion."""
        corners = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], dtype=np.float64)
        pts = geo.apply(grid.affine, corners * (np.asarray(grid.shape) - 1.0))
        return float(np.linalg.norm(geo.apply(self.world_matrix(grid), pts) - pts, axis=1).max())

    def apply(self, image: np.ndarray, grid: geo.Grid) -> np.ndarray:
        """The image the moved acquisition records: voxel v shows the object at motion^-1 (world(v))."""
        a = grid.affine
        vox = np.linalg.inv(a) @ np.linalg.inv(self.world_matrix(grid)) @ a
        out = ndimage.affine_transform(np.asarray(image, np.float32), vox[:3, :3], offset=vox[:3, 3], order=3,
                                       mode="nearest")
        return np.maximum(out, 0.0).astype(np.float32)

"""Voxel grids, rigid/affine transforms and smooth random fields (all in RAS+ world millimetres)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from scipy import ndimage


@dataclass(frozen=True)
class Grid:
    """An axis-aligned RAS+ voxel grid.

    Attributes:
        shape: voxels along (x, y, z); array axis 0 runs right-wards, 1 anterior-wards, 2 superior-wards.
        spacing: voxel size in mm along each axis.
        center: world position (mm) of the grid's centre.
    """

    shape: tuple[int, int, int]
    spacing: tuple[float, float, float]
    center: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @property
    def affine(self) -> np.ndarray:
        """4x4 voxel-to-world matrix (RAS+, mm)."""
        aff = np.diag([*self.spacing, 1.0])
        origin = np.asarray(self.center) - (np.asarray(self.shape) - 1) / 2.0 * np.asarray(self.spacing)
        aff[:3, 3] = origin
        return aff

    @property
    def n_voxels(self) -> int:
        """Number of voxels."""
        return int(np.prod(self.shape))

    def world_points(self, offsets: np.ndarray | None = None) -> np.ndarray:
        """World coordinates (mm) of all voxel centres, shape (N, 3), in C order of the grid.

        ``offsets`` (K, 3), in voxel units, gives K sub-voxel sample positions per voxel; the result then
        has shape (K, N, 3).
        """
        aff = self.affine
        axes = [aff[a, 3] + aff[a, a] * np.arange(n, dtype=np.float64) for a, n in enumerate(self.shape)]
        pts = np.empty((*self.shape, 3), dtype=np.float64)
        for a in range(3):
            shape = [1, 1, 1]
            shape[a] = self.shape[a]
            pts[..., a] = axes[a].reshape(shape)
        pts = pts.reshape(-1, 3)
        if offsets is not None:
            step = np.asarray(offsets, dtype=np.float64) * np.asarray(self.spacing)
            pts = pts[None, :, :] + step[:, None, :]
        return pts

    def subsample_offsets(self, resolution_mm: float) -> np.ndarray:
        """Sub-voxel offsets (K, 3) so that samples are at most about ``resolution_mm`` apart."""
        per_axis = []
        for sp in self.spacing:
            n = max(1, math.ceil(sp / resolution_mm - 0.25))
            per_axis.append((np.arange(n) + 0.5) / n - 0.5)
        grids = np.meshgrid(*per_axis, indexing="ij")
        return np.stack([g.ravel() for g in grids], axis=-1)


def rotation_matrix(angles_deg: np.ndarray | tuple[float, float, float]) -> np.ndarray:
    """3x3 rotation: about x, then y, then z, angles in degrees."""
    ax, ay, az = np.deg2rad(np.asarray(angles_deg, dtype=np.float64))
    rx = np.array([[1, 0, 0], [0, math.cos(ax), -math.sin(ax)], [0, math.sin(ax), math.cos(ax)]])
    ry = np.array([[math.cos(ay), 0, math.sin(ay)], [0, 1, 0], [-math.sin(ay), 0, math.cos(ay)]])
    rz = np.array([[math.cos(az), -math.sin(az), 0], [math.sin(az), math.cos(az), 0], [0, 0, 1]])
    return rz @ ry @ rx


def axis_angle_matrix(axis: np.ndarray, angle_deg: float) -> np.ndarray:
    """3x3 rotation by ``angle_deg`` degrees about the unit vector ``axis`` (Rodrigues)."""
    axis = np.asarray(axis, dtype=np.float64)
    axis = axis / np.linalg.norm(axis)
    a = math.radians(angle_deg)
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(a) * k + (1 - math.cos(a)) * (k @ k)


def homogeneous(linear: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 matrix from a 3x3 linear part and a translation (mm)."""
    out = np.eye(4)
    out[:3, :3] = linear
    out[:3, 3] = translation
    return out


def about_point(linear: np.ndarray, point: np.ndarray, translation: np.ndarray) -> np.ndarray:
    """4x4 matrix x -> linear (x - point) + point + translation (all mm)."""
    point = np.asarray(point, dtype=np.float64)
    return homogeneous(linear, point + np.asarray(translation) - linear @ point)


def apply(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a 4x4 matrix to points (..., 3)."""
    pts = np.asarray(points, dtype=np.float64)
    x, y, z = pts[..., 0], pts[..., 1], pts[..., 2]
    m = matrix
    return np.stack([m[r, 0] * x + m[r, 1] * y + m[r, 2] * z + m[r, 3] for r in range(3)], axis=-1)


def trilinear(values: np.ndarray, coords: np.ndarray) -> np.ndarray:
    """Trilinear interpolation of a channels-last array (X, Y, Z, C) at voxel coordinates (N, 3);
    coordinates outside the array take the nearest edge value. Returns (N, C) float32."""
    shape = np.asarray(values.shape[:3])
    n_ch = values.shape[3]
    p = np.clip(coords, 0.0, shape - 1.0).astype(np.float32)
    i0 = np.minimum(p.astype(np.intp), shape - 2)  # floor (coordinates are >= 0), last cell at the edge
    f = p - i0
    g = 1.0 - f
    flat = values.reshape(-1, n_ch)
    sx, sy = int(shape[1] * shape[2]), int(shape[2])
    base = i0[:, 0] * sx
    base += i0[:, 1] * sy
    base += i0[:, 2]
    out = np.zeros((len(coords), n_ch), dtype=np.float32)
    for dx in (0, 1):
        wx = f[:, 0] if dx else g[:, 0]
        for dy in (0, 1):
            wxy = wx * (f[:, 1] if dy else g[:, 1])
            for dz in (0, 1):
                w = wxy * (f[:, 2] if dz else g[:, 2])
                corner = np.take(flat, base + (dx * sx + dy * sy + dz), axis=0)
                corner *= w[:, None]
                out += corner
    return out


@dataclass(frozen=True)
class SmoothField:
    """A smooth random vector field sampled on a regular world grid, interpolated linearly.

    Attributes:
        values: (X, Y, Z, C) field values (e.g. displacement in mm), channels last.
        origin: world position (mm) of sample (0, 0, 0).
        step: sample spacing in mm.
    """

    values: np.ndarray
    origin: np.ndarray
    step: float

    def __call__(self, points: np.ndarray) -> np.ndarray:
        """Field values at world points (..., 3) -> (..., C)."""
        shp = points.shape[:-1]
        coords = (points.reshape(-1, 3) - self.origin) / self.step
        return trilinear(self.values, coords).reshape(*shp, self.values.shape[3])


def smooth_random_field(
    rng: np.random.Generator,
    lo: np.ndarray,
    hi: np.ndarray,
    channels: int,
    control_mm: float,
    amplitude: float,
    step_mm: float = 8.0,
) -> SmoothField:
    """Random smooth field over the world box [lo, hi] (mm).

    Gaussian random values (std ``amplitude``) at control points ``control_mm`` apart are interpolated
    by cubic splines onto a ``step_mm`` grid; evaluation between those samples is linear.
    """
    lo = np.asarray(lo, dtype=np.float64)
    hi = np.asarray(hi, dtype=np.float64)
    n_ctrl = np.maximum(np.ceil((hi - lo) / control_mm).astype(int) + 1, 2)
    ctrl = rng.normal(0.0, amplitude, size=(channels, *n_ctrl))
    n_fine = np.ceil((hi - lo) / step_mm).astype(int) + 1
    fine = np.stack(
        [
            ndimage.map_coordinates(
                ch,
                np.meshgrid(*[np.linspace(0, n_ctrl[a] - 1, n_fine[a]) for a in range(3)], indexing="ij"),
                order=3,
                mode="nearest",
            )
            for ch in ctrl
        ]
    )
    return SmoothField(np.ascontiguousarray(np.moveaxis(fine, 0, -1), dtype=np.float32), lo, float(step_mm))


def polynomial_field(grid: Grid, rng: np.random.Generator, degree: int = 2) -> np.ndarray:
    """A random smooth scalar field on ``grid``: a random polynomial of the normalised coordinates,
    scaled to unit standard deviation (used for MR bias fields)."""
    axes = [np.linspace(-1.0, 1.0, n) for n in grid.shape]
    x, y, z = np.meshgrid(*axes, indexing="ij", sparse=True)
    terms = [x, y, z]
    if degree >= 2:
        terms += [x * x, y * y, z * z, x * y, x * z, y * z]
    coef = rng.normal(size=len(terms))
    field = np.zeros(grid.shape, dtype=np.float64)
    for c, t in zip(coef, terms, strict=True):
        field = field + c * t
    field -= field.mean()
    return (field / max(float(field.std()), 1e-9)).astype(np.float32)

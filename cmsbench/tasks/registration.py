"""Rigid registration (6 parameters) by normalised mutual information, and world-space resampling.

Used by the IXI adapter: IXI's T1 is a separate acquisition that is not aligned with the T2/PD dual
echo. The moving image is first resampled onto the fixed grid through both headers' world coordinates,
then a rigid transform (rotations about the fixed grid's centre, translations in mm) is refined by
maximising the normalised mutual information (Studholme et al. 1999) with Powell's method, coarse to fine.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage, optimize

from cmsbench.tasks.volume import Volume


@dataclass(frozen=True)
class RigidTransform:
    """Rotation angles (degrees, about x, y, z) and translation (mm) in world (RAS) coordinates."""

    rotation_deg: tuple[float, float, float] = (0.0, 0.0, 0.0)
    translation_mm: tuple[float, float, float] = (0.0, 0.0, 0.0)

    @classmethod
    def from_vector(cls, p: np.ndarray) -> RigidTransform:
        return cls(tuple(float(v) for v in p[:3]), tuple(float(v) for v in p[3:6]))  # type: ignore[arg-type]

    def matrix(self, centre: np.ndarray) -> np.ndarray:
        """4x4 world->world matrix: x -> R (x - c) + c + t."""
        ax, ay, az = np.deg2rad(self.rotation_deg)
        rx = np.array([[1, 0, 0], [0, np.cos(ax), -np.sin(ax)], [0, np.sin(ax), np.cos(ax)]])
        ry = np.array([[np.cos(ay), 0, np.sin(ay)], [0, 1, 0], [-np.sin(ay), 0, np.cos(ay)]])
        rz = np.array([[np.cos(az), -np.sin(az), 0], [np.sin(az), np.cos(az), 0], [0, 0, 1]])
        rot = rz @ ry @ rx
        out = np.eye(4)
        out[:3, :3] = rot
        out[:3, 3] = centre - rot @ centre + np.asarray(self.translation_mm)
        return out


def grid_centre(shape: tuple[int, ...], affine: np.ndarray) -> np.ndarray:
    """World coordinates (mm) of the centre of a voxel grid."""
    return (affine @ np.append((np.asarray(shape[:3]) - 1) / 2.0, 1.0))[:3]


def resample_to_grid(
    moving: np.ndarray,
    moving_affine: np.ndarray,
    fixed_shape: tuple[int, int, int],
    fixed_affine: np.ndarray,
    world_transform: np.ndarray | None = None,
    order: int = 1,
) -> np.ndarray:
    """Sample ``moving`` at the world positions of the fixed grid's voxels (mapped by ``world_transform``)."""
    transform = np.eye(4) if world_transform is None else world_transform
    mapping = np.linalg.inv(moving_affine) @ transform @ fixed_affine
    return ndimage.affine_transform(
        moving.astype(np.float32, copy=False), mapping[:3, :3], offset=mapping[:3, 3],
        output_shape=tuple(fixed_shape), order=order, mode="constant", cval=0.0,
    )


def normalised_mutual_information(a: np.ndarray, b: np.ndarray, bins: int = 32) -> float:
    """(H(A) + H(B)) / H(A, B) of two equally shaped samples (1 for independent, 2 for identical)."""
    hist, _, _ = np.histogram2d(a.ravel(), b.ravel(), bins=bins)
    p = hist / max(hist.sum(), 1.0)
    px, py = p.sum(axis=1), p.sum(axis=0)

    def entropy(q: np.ndarray) -> float:
        q = q[q > 0]
        return float(-(q * np.log(q)).sum())

    joint = entropy(p)
    return (entropy(px) + entropy(py)) / joint if joint > 0 else 1.0


def register_rigid(moving: Volume, fixed: Volume, levels: tuple[int, ...] = (4, 2)) -> RigidTransform:
    """Find the rigid world transform that best aligns ``moving`` to ``fixed`` (maximum NMI).

    Each level subsamples the fixed grid by the given stride (after Gaussian smoothing of both images).
    """
    centre = grid_centre(fixed.shape, fixed.affine)
    params = np.zeros(6)
    for stride in levels:
        sigma = max(stride / 2.0, 0.5)
        fixed_small = ndimage.gaussian_filter(fixed.data.astype(np.float32), sigma)[::stride, ::stride, ::stride]
        moving_smooth = ndimage.gaussian_filter(moving.data.astype(np.float32), sigma)
        small_affine = fixed.affine @ np.diag([stride, stride, stride, 1.0])
        lo = float(np.percentile(fixed_small, 1))
        foreground = fixed_small > lo + 0.1 * (float(np.percentile(fixed_small, 99)) - lo)
        fixed_values = fixed_small[foreground]

        def cost(p: np.ndarray, moving_smooth: np.ndarray = moving_smooth, shape: tuple = fixed_small.shape,
                 small_affine: np.ndarray = small_affine, fixed_values: np.ndarray = fixed_values,
                 foreground: np.ndarray = foreground) -> float:
            world = RigidTransform.from_vector(p).matrix(centre)
            warped = resample_to_grid(moving_smooth, moving.affine, shape, small_affine, world)
            return -normalised_mutual_information(fixed_values, warped[foreground])

        result = optimize.minimize(cost, params, method="Powell",
                                   options={"xtol": 0.05, "ftol": 1e-5, "maxfev": 600})
        params = np.asarray(result.x)
    return RigidTransform.from_vector(params)


def align_to(moving: Volume, fixed: Volume, register: bool = True) -> tuple[Volume, RigidTransform]:
    """``moving`` resampled onto ``fixed``'s grid, after rigid registration when ``register``."""
    transform = register_rigid(moving, fixed) if register else RigidTransform()
    world = transform.matrix(grid_centre(fixed.shape, fixed.affine))
    data = resample_to_grid(moving.data, moving.affine, fixed.shape, fixed.affine, world)
    aligned = Volume(data.astype(np.float32), fixed.affine.copy(), moving.modality, moving.units, moving.source)
    return aligned, transform

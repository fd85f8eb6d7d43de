"""Input checks shared by the downstream scores: two 3-D arrays of one grid, a voxel spacing, label maps."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cmsbench.errors import MetricError

Spacing = Sequence[float]


def check_pair(a: np.ndarray, b: np.ndarray, spacing: Spacing | None, what: str = "masks") -> tuple[float, ...]:
    """Validate two 3-D arrays of one shape and a spacing of three positive numbers (None: 1 mm); return
    the spacing as floats."""
    if a.ndim != 3 or b.ndim != 3:
        raise MetricError(f"{what} must be 3-D, got shapes {a.shape} and {b.shape}")
    if a.shape != b.shape:
        raise MetricError(f"{what} differ in shape: {a.shape} (ground truth) vs {b.shape} (prediction); "
                          f"resample the prediction onto the ground-truth grid")
    sp = (1.0, 1.0, 1.0) if spacing is None else tuple(float(s) for s in spacing)
    if len(sp) != 3 or not all(np.isfinite(s) and s > 0 for s in sp):
        raise MetricError(f"voxel spacing must be three positive numbers (mm), got {spacing!r}")
    return sp


def as_label_map(array: np.ndarray, what: str) -> np.ndarray:
    """``array`` as integer labels; a float array must hold whole, finite values."""
    a = np.asarray(array)
    if a.dtype.kind == "f":
        if not np.all(np.isfinite(a)) or np.any(a != np.round(a)):
            raise MetricError(f"the {what} label map has non-integer or non-finite values; a segmentation "
                              f"must hold whole labels (e.g. 0 background, 1 NCR, 2 ED, 3 ET)")
        a = a.astype(np.int64)
    elif a.dtype.kind not in "iub":
        raise MetricError(f"the {what} label map has dtype {a.dtype}; expected integer labels")
    return a


def bounding_box(mask: np.ndarray, pad: int = 0) -> tuple[slice, ...] | None:
    """The bounding box of ``mask`` grown by ``pad`` voxels (clipped to the grid), or None when empty."""
    if not mask.any():
        return None
    out = []
    for axis in range(mask.ndim):
        other = tuple(a for a in range(mask.ndim) if a != axis)
        idx = np.flatnonzero(mask.any(axis=other))
        out.append(slice(max(int(idx[0]) - pad, 0), min(int(idx[-1]) + 1 + pad, mask.shape[axis])))
    return tuple(out)

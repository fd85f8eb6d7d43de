"""Shared helpers of the classical baselines: foreground, voxel sampling, background value, PSNR.

Conventions used by every classical method:

* **foreground** = voxels where any input is non-zero (skull-stripped MR and masked PET are zero
  outside the head/body; CT inputs are rarely exactly zero, so for CT nearly every voxel counts);
* **background value** = the median of the training targets over background voxels (0 for MR,
  about -1000 HU for CT, about 0 Bq/mL for PET), used where all inputs are zero;
* sampling is deterministic: a ``numpy.random.default_rng(seed)`` draw of at most
  ``max_voxels // len(train)`` foreground voxels per training case.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case


def foreground(stack: np.ndarray) -> np.ndarray:
    """Boolean (X, Y, Z) mask of voxels where any channel of a (C, X, Y, Z) stack is non-zero."""
    return np.any(stack != 0, axis=0)


def case_arrays(case: Case, inputs: Sequence[str], method: str) -> tuple[np.ndarray, np.ndarray]:
    """(C, X, Y, Z) float64 input stack in ``inputs`` order and the (X, Y, Z) float64 target of a case."""
    missing = [m for m in inputs if m not in case.inputs]
    if missing:
        raise MethodError(
            f"method {method!r}: case {case.case_id!r} lacks input(s) {missing}; it has {sorted(case.inputs)}"
        )
    if case.target is None:
        raise MethodError(f"method {method!r}: case {case.case_id!r} has no target to fit on")
    stack = np.stack([np.asarray(case.inputs[m].data, dtype=np.float64) for m in inputs])
    target = np.asarray(case.target.data, dtype=np.float64)
    if target.shape != stack.shape[1:]:
        raise MethodError(
            f"method {method!r}: case {case.case_id!r} has target shape {target.shape} but input shape "
            f"{stack.shape[1:]}; inputs and target must share one grid"
        )
    return stack, target


@dataclass
class VoxelSample:
    """Foreground voxels drawn from the training cases (float64)."""

    x: np.ndarray  # (N, C) inputs
    y: np.ndarray  # (N,) target
    background: float | None  # median target over background voxels; None when no case has background


def sample_voxels(
    cases: Sequence[Case], inputs: Sequence[str], *, max_voxels: int, seed: int, method: str
) -> VoxelSample:
    """A deterministic subsample of at most ``max_voxels`` foreground voxels over ``cases``."""
    if max_voxels < 1:
        raise MethodError(f"method {method!r}: max_voxels must be positive, got {max_voxels}")
    rng = np.random.default_rng(seed)
    quota = max(1, int(max_voxels) // max(1, len(cases)))
    xs, ys, bgs = [], [], []
    for case in cases:
        stack, target = case_arrays(case, inputs, method)
        fg = foreground(stack)
        idx = np.flatnonzero(fg)
        if idx.size > quota:
            idx = np.sort(rng.choice(idx, size=quota, replace=False))
        flat = stack.reshape(stack.shape[0], -1)
        xs.append(flat[:, idx].T)
        ys.append(target.reshape(-1)[idx])
        bg_idx = np.flatnonzero(~fg)
        if bg_idx.size > quota:
            bg_idx = np.sort(rng.choice(bg_idx, size=quota, replace=False))
        bgs.append(target.reshape(-1)[bg_idx])
    x = np.concatenate(xs, axis=0)
    y = np.concatenate(ys)
    if x.shape[0] == 0:
        raise MethodError(
            f"method {method!r}: the training cases have no foreground voxels (every input is zero everywhere)"
        )
    bg = np.concatenate(bgs)
    return VoxelSample(x, y, float(np.median(bg)) if bg.size else None)


def correlations(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """Pearson correlation of each column of ``x`` (N, C) with ``y`` (N,); 0 for constant columns."""
    xc = x - x.mean(axis=0)
    yc = y - y.mean()
    denom = np.sqrt((xc**2).sum(axis=0) * (yc**2).sum())
    with np.errstate(invalid="ignore", divide="ignore"):
        r = (xc * yc[:, None]).sum(axis=0) / denom
    return np.nan_to_num(r, nan=0.0)


def match_by_name(inputs: Sequence[str], target: str) -> str | None:
    """The input that names the target modality (``pet_low`` -> ``pet``, ``ct`` -> ``ct``), if any."""
    if not target:
        return None
    for name in inputs:
        if name == target:
            return name
    for name in inputs:
        base = name
        for suffix in ("_low", "_ld", "_lowdose", "_noisy", "_quarter"):
            if base.endswith(suffix):
                base = base[: -len(suffix)]
        if base == target or name.startswith(target + "_"):
            return name
    return None


def check_source(source: str, inputs: Sequence[str], method: str) -> str:
    """Validate a user-chosen input name."""
    if inputs and source not in inputs:
        raise MethodError(f"method {method!r}: option source={source!r} is not an input; inputs are {list(inputs)}")
    return source


def psnr(prediction: np.ndarray, target: np.ndarray, mask: np.ndarray, data_range: float) -> float:
    """PSNR in dB over ``mask`` with peak ``data_range`` (used for hyper-parameter tuning only)."""
    diff = prediction[mask].astype(np.float64) - target[mask].astype(np.float64)
    mse = float(np.mean(diff**2)) if diff.size else 0.0
    if data_range <= 0:
        data_range = 1.0
    if mse <= 0:
        return float("inf")
    return float(10.0 * np.log10(data_range**2 / mse))


def noise_sigma(image: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Gaussian noise standard deviation of a volume, estimated slice by slice (axis 2).

    Robust Immerkaer (1996) estimator: the response of the 3x3 Laplacian-difference kernel
    [[1,-2,1],[-2,4,-2],[1,-2,1]] cancels smooth structure; for white noise its standard deviation is
    6 sigma. The median absolute response over in-plane interior voxels (where ``mask`` holds in the
    whole 3x3 neighbourhood) / 0.6745 / 6 estimates sigma. Used instead of
    ``skimage.restoration.estimate_sigma``, which needs the optional PyWavelets package.
    """
    from scipy import ndimage

    img = np.asarray(image, dtype=np.float64)
    kernel = np.array([[1, -2, 1], [-2, 4, -2], [1, -2, 1]], dtype=np.float64)[:, :, None]
    response = ndimage.convolve(img, kernel, mode="nearest")
    valid = np.zeros(img.shape, dtype=bool)
    valid[1:-1, 1:-1, :] = True
    if mask is not None:
        inner = ndimage.binary_erosion(mask, structure=np.ones((3, 3, 1), dtype=bool), border_value=0)
        if inner.any():
            valid &= inner
    values = np.abs(response[valid]) if valid.any() else np.abs(response.reshape(-1))
    if values.size == 0:
        return 0.0
    sigma = float(np.median(values) / 0.6745 / 6.0)
    if sigma == 0.0:  # quantised or mostly flat images: fall back to the mean-based formula
        sigma = float(np.sqrt(np.pi / 2.0) * np.mean(values) / 6.0)
    return sigma


def state_float(meta: Mapping[str, object], key: str) -> float | None:
    """A float (or None) from JSON metadata."""
    value = meta.get(key)
    return None if value is None else float(value)  # type: ignore[arg-type]

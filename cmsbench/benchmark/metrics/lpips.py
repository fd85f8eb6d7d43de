"""LPIPS (Zhang et al. 2018, v0.1) of a 3D case, on 2D slices, with offline weights.

Conventions (recorded in the metric's convention text):

- slices: ``axial`` = along the third array axis, ``coronal`` = the second, ``sagittal`` = the first
  (the voxel axes as stored; the scorer's inputs are RAS-like volumes);
- inside a region: the region's 3D bounding box; in-plane the box is widened (centred, clamped to the
  grid) to at least :data:`MIN_CROP` voxels per side so the backbone sees some context; for ``global``
  the whole grid. Every slice of the box along the plane's axis counts once;
- intensities: both images clipped to the display range ``(lo, hi)`` (from the ground truth / the task,
  never from the prediction) and mapped linearly to [-1, 1]; grey repeated to 3 channels;
- value: the mean over those slices of the per-slice LPIPS (float64 mean of float32 slice values).

Batched: on CUDA large batches, on CPU chunks of a few slices (bounded memory). Deterministic: no
random slice choice, no dropout. Missing weights raise :class:`~.lpips_weights.WeightsMissing` (the
metric records NaN with the install command).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

#: plane -> the array axis the slices are taken along
PLANES = {"axial": 2, "coronal": 1, "sagittal": 0}
#: the smallest in-plane crop around a region (the lpips project's example patches are 64 x 64)
MIN_CROP = 64
#: pixels per CPU chunk (16 slices of 240 x 240: a few tens of MB of activations)
_CPU_CHUNK_PIXELS = 16 * 240 * 240
_GPU_CHUNK_PIXELS = 256 * 240 * 240

_NETS: dict[tuple[str, str], tuple[object, object]] = {}  # (net, device) -> (its weights, the module)


def get_network(net: str = "alex", device: str = "cpu"):
    """The :class:`~.lpips_net.LPIPSNet` for ``net`` on ``device`` from the cached weights (kept per process)."""
    from cmsbench.benchmark.metrics.lpips_net import LPIPSNet
    from cmsbench.benchmark.metrics.lpips_weights import load_weights

    weights = load_weights(net)  # raises WeightsMissing; the same object while the file is unchanged
    key = (net, str(device))
    cached = _NETS.get(key)
    if cached is None or cached[0] is not weights:
        _NETS[key] = cached = (weights, LPIPSNet(net, weights).to(device).eval())
    return cached[1]


def to_model_range(a: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """``a`` clipped to ``[lo, hi]`` and mapped linearly to [-1, 1] (float32)."""
    if not hi > lo:
        raise ValueError(f"display range must have hi > lo, got ({lo}, {hi})")
    out = np.clip(np.asarray(a, dtype=np.float32), np.float32(lo), np.float32(hi))
    out -= np.float32(lo)
    out *= np.float32(2.0 / (hi - lo))
    out -= np.float32(1.0)
    return out


def region_box(mask: np.ndarray | None, shape: tuple[int, ...], axis: int, min_crop: int = MIN_CROP) -> tuple[slice, ...]:
    """The bounding box of ``mask`` (whole grid for None), widened in-plane to ``min_crop`` voxels."""
    if mask is None:
        return tuple(slice(0, n) for n in shape)
    box = []
    for a, n in enumerate(shape):
        other = tuple(b for b in range(len(shape)) if b != a)
        hit = np.flatnonzero(mask.any(axis=other))
        lo, hi = int(hit[0]), int(hit[-1]) + 1
        if a != axis and hi - lo < min_crop:
            want = min(min_crop, n)
            lo = max(0, min(lo - (want - (hi - lo)) // 2, n - want))
            hi = lo + want
        box.append(slice(lo, hi))
    return tuple(box)


def slice_distances(target: np.ndarray, prediction: np.ndarray, network, *, device: str = "cpu",
                    chunk_pixels: int | None = None) -> np.ndarray:
    """Per-slice LPIPS of two stacks of grey 2D slices ((S, H, W) in [-1, 1]): (S,) float64.

    A slice whose two images are equal is 0 without a forward pass (LPIPS of equal images is 0 exactly)."""
    import torch

    s, h, w = target.shape
    if chunk_pixels is None:
        chunk_pixels = _GPU_CHUNK_PIXELS if str(device).startswith("cuda") else _CPU_CHUNK_PIXELS
    out = np.zeros(s, dtype=np.float64)
    todo = np.flatnonzero(np.any((target != prediction).reshape(s, -1), axis=1))
    step = max(1, chunk_pixels // (h * w))
    with torch.inference_mode():
        for i in range(0, todo.size, step):
            idx = todo[i:i + step]
            t = torch.from_numpy(target[idx][:, None]).to(device)
            p = torch.from_numpy(prediction[idx][:, None]).to(device)
            out[idx] = network(t, p).double().cpu().numpy()
    return out


def lpips_volume(
    target: np.ndarray,
    prediction: np.ndarray,
    display_range: tuple[float, float],
    *,
    net: str = "alex",
    planes: Sequence[str] = ("axial",),
    mask: np.ndarray | None = None,
    device: str = "cpu",
    cache: dict | None = None,
) -> float:
    """Mean slice LPIPS of a 3D pair in ``planes`` (the mean of the per-plane means), see the module doc.

    ``cache``: a dict kept for one case (one pair, one display range): per-plane values are reused by
    regions with the same bounding box and by metrics sharing a plane.

    Raises:
        WeightsMissing: the ``net`` weights are not installed.
        ValueError: unknown plane, empty mask, a crop smaller than the backbone accepts.
    """
    from cmsbench.benchmark.metrics.lpips_net import MIN_SIDE

    network = get_network(net, device)
    if target.ndim != 3 or target.shape != prediction.shape:
        raise ValueError(f"LPIPS needs two 3D arrays of one shape, got {target.shape} and {prediction.shape}")
    if mask is not None and not mask.any():
        raise ValueError("the region is empty")
    lo, hi = display_range
    values = []
    for plane in planes:
        if plane not in PLANES:
            raise ValueError(f"unknown plane {plane!r}; choose from {sorted(PLANES)}")
        axis = PLANES[plane]
        box = region_box(mask, target.shape, axis)
        key = ("lpips", net, plane, tuple((b.start, b.stop) for b in box), float(lo), float(hi))
        if cache is not None and key in cache:
            values.append(cache[key])
            continue
        t = np.moveaxis(to_model_range(target[box], lo, hi), axis, 0)
        p = np.moveaxis(to_model_range(prediction[box], lo, hi), axis, 0)
        if min(t.shape[1:]) < MIN_SIDE[net]:
            raise ValueError(f"{plane} slices of {t.shape[1]} x {t.shape[2]} voxels are smaller than the {net} "
                             f"backbone accepts ({MIN_SIDE[net]} per side)")
        values.append(float(np.mean(slice_distances(t, p, network, device=device))))
        if cache is not None:
            cache[key] = values[-1]
    return float(np.mean(values))

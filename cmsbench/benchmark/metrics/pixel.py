"""Voxel-wise error metrics: MAE, MSE, NMSE, NRMSE, PSNR (float64, optionally inside a mask).

Definitions (``t`` = ground truth, ``p`` = prediction, sums over the mask's voxels):

- ``mae = mean |t - p|``, ``mse = mean (t - p)^2`` (task units, no clipping);
- ``nmse = sum (t - p)^2 / sum t^2``;
- ``nrmse = sqrt(mse) / L`` with ``L`` the data range (for ``gt_range`` tasks: max - min of the ground
  truth in the region, which is the UDPET definition);
- ``psnr = 10 log10(L^2 / mse)`` in dB, computed on the images clipped to the window when the data
  range is a window. PSNR of a perfect prediction (mse = 0) is ``+inf``; :class:`CaseScore` stores it
  in JSON as the string ``"inf"`` (JSON has no infinity) and reads it back as ``float("inf")``.

These are the straightforward reference implementations (used by the compatibility modes and as
the readable definition). The scorer computes the same sums in one fused pass
(:mod:`cmsbench.benchmark.metrics.fused`).
"""

from __future__ import annotations

import math

import numpy as np

from cmsbench.errors import MetricError


def _pair(target: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(target)
    p = np.asarray(prediction)
    if t.shape != p.shape:
        raise MetricError(f"target {t.shape} and prediction {p.shape} differ in shape")
    if mask is not None:
        m = np.asarray(mask, dtype=bool)
        if m.shape != t.shape:
            raise MetricError(f"mask {m.shape} does not match the images {t.shape}")
        t, p = t[m], p[m]
    return t.astype(np.float64, copy=False).ravel(), p.astype(np.float64, copy=False).ravel()


def mae(target: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean absolute error (NaN for an empty mask)."""
    t, p = _pair(target, prediction, mask)
    return float(np.mean(np.abs(t - p))) if t.size else float("nan")


def mse(target: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean squared error (NaN for an empty mask)."""
    t, p = _pair(target, prediction, mask)
    return float(np.mean((t - p) ** 2)) if t.size else float("nan")


def nmse(target: np.ndarray, prediction: np.ndarray, mask: np.ndarray | None = None) -> float:
    """``||t - p||^2 / ||t||^2`` (NaN for an empty mask or an all-zero ground truth)."""
    t, p = _pair(target, prediction, mask)
    den = float(np.sum(t * t))
    return float(np.sum((t - p) ** 2)) / den if t.size and den > 0 else float("nan")


def psnr_from_mse(mse_value: float, data_range: float) -> float:
    """``10 log10(L^2 / mse)``; ``inf`` when mse is 0, NaN when mse is NaN."""
    if data_range is None or not data_range > 0:
        raise MetricError(f"PSNR needs an explicit positive data range, got {data_range!r}")
    if math.isnan(mse_value):
        return float("nan")
    if mse_value == 0:
        return float("inf")
    return 10.0 * math.log10(data_range * data_range / mse_value)


def psnr(
    target: np.ndarray,
    prediction: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
) -> float:
    """PSNR in dB with an explicit data range (no clipping here: clip before calling for a window)."""
    return psnr_from_mse(mse(target, prediction, mask), data_range)


def nrmse(
    target: np.ndarray,
    prediction: np.ndarray,
    data_range: float,
    mask: np.ndarray | None = None,
) -> float:
    """``sqrt(mse) / data_range``."""
    if data_range is None or not data_range > 0:
        raise MetricError(f"NRMSE needs an explicit positive data range, got {data_range!r}")
    return math.sqrt(mse(target, prediction, mask)) / data_range

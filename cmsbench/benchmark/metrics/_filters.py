"""Separable 1D windows and border index maps shared by the SSIM family.

Windows are normalised to sum 1. Border modes follow scipy.ndimage names:

- ``reflect``: half-sample symmetric, ``d c b a | a b c d | d c b a`` (scipy's default, the mode
  scikit-image's filters use);
- ``mirror``: whole-sample symmetric, ``d c b | a b c d | c b a`` (``torch.nn.functional.pad``'s
  ``"reflect"``, hence torchmetrics' padding);
- ``nearest``: edge replicated, ``a a a | a b c d | d d d``.
"""

from __future__ import annotations

import numpy as np

from cmsbench.errors import MetricError

BORDER_MODES = ("reflect", "mirror", "nearest")


def gaussian_window(sigma: float, truncate: float = 3.5) -> np.ndarray:
    """A normalised 1D Gaussian of radius ``int(truncate * sigma + 0.5)`` (11 taps for sigma 1.5).

    The radius rule is scipy's (``gaussian_filter``) and torchmetrics' (``int(3.5 * sigma + 0.5)``).
    """
    if sigma <= 0:
        raise MetricError(f"Gaussian window sigma must be positive, got {sigma}")
    radius = int(truncate * sigma + 0.5)
    x = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def uniform_window(size: int) -> np.ndarray:
    """A normalised 1D box of ``size`` taps (odd)."""
    if size < 1 or size % 2 == 0:
        raise MetricError(f"uniform window size must be odd and positive, got {size}")
    return np.full(size, 1.0 / size)


def border_index(lo: int, hi: int, n: int, mode: str) -> np.ndarray:
    """Source indices in ``[0, n)`` for the virtual positions ``lo .. hi-1`` of a padded axis."""
    i = np.arange(lo, hi)
    if mode == "nearest":
        return np.clip(i, 0, n - 1)
    if mode == "reflect":
        period = 2 * n
        i = np.mod(i, period)
        return np.where(i >= n, period - 1 - i, i)
    if mode == "mirror":
        if n == 1:
            return np.zeros_like(i)
        period = 2 * n - 2
        i = np.mod(i, period)
        return np.where(i >= n, period - i, i)
    raise MetricError(f"unknown border mode {mode!r}; known: {BORDER_MODES}")

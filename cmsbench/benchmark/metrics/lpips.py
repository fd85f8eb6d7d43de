"""LPIPS (Zhang et al. 2018), optional.

LPIPS needs ImageNet-pretrained backbone weights (the ``lpips`` package with torchvision), which the
base install does not depend on. When the package or its weights are not installed, the metric is
reported as NaN with :data:`UNAVAILABLE_REASON`, never as a number.
"""

from __future__ import annotations

import importlib.util

import numpy as np

UNAVAILABLE_REASON = "LPIPS weights not installed: pip install lpips torchvision (and its AlexNet weights)"


def lpips_available() -> bool:
    """True when the ``lpips`` package and torchvision can be imported (weights are checked on use)."""
    return importlib.util.find_spec("lpips") is not None and importlib.util.find_spec("torchvision") is not None


def lpips_slices(
    target: np.ndarray, prediction: np.ndarray, data_range: tuple[float, float], device: str = "cpu"
) -> float:
    """Mean 2D LPIPS (AlexNet) over slices along the last axis, images mapped from ``data_range`` to [-1, 1].

    Raises ``RuntimeError`` when the weights cannot be loaded (the scorer turns it into NaN + reason).
    """
    import lpips  # type: ignore[import-not-found]
    import torch

    lo, hi = data_range
    net = lpips.LPIPS(net="alex", verbose=False).to(device).eval()

    def prep(a: np.ndarray):
        a = (np.clip(a, lo, hi) - lo) / (hi - lo) * 2.0 - 1.0
        t = torch.as_tensor(np.moveaxis(a, -1, 0)[:, None], dtype=torch.float32, device=device)
        return t.expand(-1, 3, -1, -1)

    with torch.no_grad():
        d = net(prep(target), prep(prediction))
    return float(d.double().mean())

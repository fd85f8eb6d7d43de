"""Deterministic BraTS-style label maps (0 background, 1 NCR, 2 ED, 3 ET) for the lesion-wise comparisons
(``frozen/brats2023_lesionwise.json``, ``test_brats2023_lesionwise_official.py``, the BraSyn 2025 per-label
and brats-evaluation references). numpy only, so the official evaluators' own environments can build them.

A case is its generator parameters: the grid ``shape`` and two lists of lesions, ``gt`` and ``pred``. A
lesion is ``{"c": [x, y, z], "r": [rx, ry, rz]}`` (voxels) with optional ``"core"`` and ``"et"``: the
ellipsoid scaled by ``core`` is NCR (label 1), the shell out to ``et`` is ET (3), the rest ED (2); ``"label"``
instead paints the whole ellipsoid one label. Later lesions overwrite earlier ones. ``speckle``
(probability) with ``seed`` adds isolated voxels of label ``speckle_label`` (default 3) to the prediction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def paint(shape: Sequence[int], lesions: Sequence[Mapping[str, Any]]) -> np.ndarray:
    """A uint8 label map of ``shape`` with the lesions painted in order."""
    out = np.zeros(tuple(int(s) for s in shape), np.uint8)
    idx = np.indices(out.shape, dtype=np.float64)
    for les in lesions:
        c, r = np.asarray(les["c"], float), np.asarray(les["r"], float)
        rho = np.sqrt(sum(((idx[a] - c[a]) / r[a]) ** 2 for a in range(3)))
        if "label" in les:
            out[rho <= 1.0] = int(les["label"])
            continue
        core, et = float(les.get("core", 0.35)), float(les.get("et", 0.6))
        out[rho <= 1.0] = 2
        out[rho <= et] = 3
        out[rho <= core] = 1
    return out


def lesion_case(shape: Sequence[int], gt: Sequence[Mapping[str, Any]], pred: Sequence[Mapping[str, Any]],
                speckle: float = 0.0, seed: int = 0, speckle_label: int = 3) -> tuple[np.ndarray, np.ndarray]:
    """``(gt_labels, pred_labels)``, uint8 arrays of ``shape``."""
    g, p = paint(shape, gt), paint(shape, pred)
    if speckle > 0:
        rng = np.random.default_rng(seed)
        p[(rng.random(p.shape) < speckle) & (p == 0)] = speckle_label
    return g, p

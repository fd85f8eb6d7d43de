"""Task-specific metrics: PET SUV errors and CT display windows.

PET: ``SUV = activity [Bq/mL] * body weight [g] / decay-corrected injected activity [Bq]``, with the
injected activity decayed to the acquisition: ``A0 * 2^(-delay / half_life)``. Case metadata keys:
``weight_kg``, ``injected_activity_bq``, ``acquisition_delay_s``, ``half_life_s`` (defaults to 6586.2 s,
F-18, only when absent). The % errors ``100 (pred - gt) / gt`` of SUVmean and SUVmax are signed; the
SUV factor cancels in them, so they are computed even without metadata (the absolute SUVs are not).

CT display windows (centre C / width W, clipped to ``[C - W/2, C + W/2]``): abdomen C50/W400,
chest C-600/W1500, head C40/W80.
"""

from __future__ import annotations

import math

import numpy as np

from cmsbench.errors import MetricError

F18_HALF_LIFE_S = 6586.2

#: name -> (centre, width) in HU
CT_WINDOWS: dict[str, tuple[float, float]] = {
    "abdomen": (50.0, 400.0),
    "chest": (-600.0, 1500.0),
    "head": (40.0, 80.0),
}


def window_bounds(name: str) -> tuple[float, float]:
    """``(low, high)`` HU of a named display window."""
    if name not in CT_WINDOWS:
        raise MetricError(f"unknown CT window {name!r}; known: {sorted(CT_WINDOWS)}")
    c, w = CT_WINDOWS[name]
    return c - w / 2.0, c + w / 2.0


def suv_factor(metadata: dict | None) -> float:
    """``weight[g] / decay-corrected dose[Bq]``: multiply Bq/mL by it to get SUV (g/mL)."""
    md = metadata or {}
    missing = [k for k in ("weight_kg", "injected_activity_bq") if md.get(k) is None]
    if missing:
        raise MetricError(f"SUV needs case metadata {missing}; got keys {sorted(md)}")
    weight_g = float(md["weight_kg"]) * 1000.0
    dose = float(md["injected_activity_bq"])
    delay = float(md.get("acquisition_delay_s") or 0.0)
    half_life = float(md.get("half_life_s") or F18_HALF_LIFE_S)
    decayed = dose * math.pow(2.0, -delay / half_life)
    if weight_g <= 0 or decayed <= 0:
        raise MetricError(f"SUV needs positive weight and dose, got weight {weight_g} g, dose {decayed} Bq")
    return weight_g / decayed


def suv_errors(gt_values: np.ndarray, pred_values: np.ndarray) -> dict[str, float]:
    """Signed % errors of the mean and max activity of a VOI (= of SUVmean / SUVmax)."""
    gt = np.asarray(gt_values, dtype=np.float64)
    pr = np.asarray(pred_values, dtype=np.float64)
    if gt.size == 0:
        return {"suvmean_pct_error": float("nan"), "suvmax_pct_error": float("nan")}
    gm, gx = float(gt.mean()), float(gt.max())
    pm, px = float(pr.mean()), float(pr.max())
    return {
        "suvmean_pct_error": 100.0 * (pm - gm) / gm if gm != 0 else float("nan"),
        "suvmax_pct_error": 100.0 * (px - gx) / gx if gx != 0 else float("nan"),
    }

"""Bland-Altman agreement of quantities measured on the prediction and on the ground truth (lung densitometry
of ``ct_kernel``: RA950, Perc15, MLD).

A signed per-case error metric (``q(prediction) - q(ground truth)``, e.g. ``ra950_error``) is the
Bland-Altman difference of that case. Over a method's test cases: bias = mean difference, SD = its sample
standard deviation (ddof 1), 95 % limits of agreement = bias +- 1.96 SD (Bland & Altman, Lancet 1986).
Recomputed from the per-case values of the records, like every other leaderboard statistic.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

#: Signed error metrics shown as Bland-Altman agreement: metric -> the quantity's label with its unit.
AGREEMENT_METRICS: dict[str, str] = {"ra950_error": "RA950 (pp)", "perc15_error": "Perc15 (HU)",
                                     "mld_error": "MLD (HU)"}
#: The normal quantile of the 95 % limits of agreement.
Z95 = 1.96


@dataclass(frozen=True)
class Agreement:
    """Bland-Altman statistics of one quantity for one method (differences prediction - ground truth)."""

    metric: str
    region: str
    label: str
    n: int
    bias: float
    sd: float
    lower: float
    upper: float

    def text(self, decimals: int = 2) -> str:
        """``bias [lower, upper]`` (the limits of agreement), or ``n/a`` without two cases."""
        if not math.isfinite(self.bias):
            return "n/a"
        if not math.isfinite(self.sd):
            return f"{self.bias:.{decimals}f} [n/a]"
        return f"{self.bias:.{decimals}f} [{self.lower:.{decimals}f}, {self.upper:.{decimals}f}]"


def bland_altman(differences: Sequence[float]) -> tuple[int, float, float, float, float]:
    """(n, bias, SD, lower, upper) of finite differences: mean, sample SD (ddof 1), bias -+ 1.96 SD.

    With no difference the bias is NaN; with one, the SD and the limits are NaN.
    """
    d = np.asarray([x for x in differences if x is not None and math.isfinite(float(x))], dtype=np.float64)
    if d.size == 0:
        return 0, math.nan, math.nan, math.nan, math.nan
    bias = float(d.mean())
    if d.size < 2:
        return 1, bias, math.nan, math.nan, math.nan
    sd = float(d.std(ddof=1))
    return int(d.size), bias, sd, bias - Z95 * sd, bias + Z95 * sd


def agreement_metrics(board: Any) -> list[tuple[str, str]]:
    """The (region, metric) pairs of ``board`` that have Bland-Altman agreement (signed densitometry errors)."""
    return [(r, m) for r, m in board.regions_metrics() if m in AGREEMENT_METRICS]


def board_agreements(board: Any) -> list[tuple[Any, list[Agreement]]]:
    """Per entry of the board (in its main metric's order): the agreement of each densitometry quantity."""
    pairs = agreement_metrics(board)
    if not pairs:
        return []
    mb = board.metric(board.main_region, board.main_metric)
    out = []
    for key in mb.order:
        entry = board.entry(key)
        stats = []
        for region, metric in pairs:
            n, bias, sd, lo, hi = bland_altman(list(entry.values(region, metric).values()))
            stats.append(Agreement(metric, region, AGREEMENT_METRICS[metric], n, bias, sd, lo, hi))
        out.append((entry, stats))
    return out

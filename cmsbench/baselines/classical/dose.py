"""Linear contrast-dose scaling, the model-inverting floor of the low-dose gadolinium task (``gbca_lowdose``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.baselines.classical._common import check_source, match_by_name, sample_voxels
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume

DOSE_OPERATOR = "contrast_dose"


def _degradation(cases: Sequence[Case]) -> Mapping | None:
    if not len(cases):
        return None
    info = cases[0].metadata.get("degradation") if isinstance(cases[0].metadata, dict) else None
    return info if isinstance(info, Mapping) else None


def dose_from_cases(cases: Sequence[Case], method: str) -> float | None:
    """The dose the first training case records in ``metadata["degradation"]`` (None if it has none)."""
    info = _degradation(cases)
    if info is None:
        return None
    if info.get("name") != DOSE_OPERATOR:
        raise MethodError(f"method {method!r} inverts {DOSE_OPERATOR!r}, but the task's inputs were degraded by "
                          f"{info.get('name')!r}")
    return float(dict(info.get("params") or {})["dose"])


def recorded_dose(cases: Sequence[Case]) -> float | None:
    """The dose when the first case's inputs were made by :data:`DOSE_OPERATOR`, else None (any other task)."""
    info = _degradation(cases)
    if info is None or info.get("name") != DOSE_OPERATOR:
        return None
    return float(dict(info.get("params") or {})["dose"])


def dose_roles(available: Sequence[str], target: str) -> tuple[str, str]:
    """``(pre, low)``: the low-dose input is the one named like the target (``t1ce_low``), else the last;
    the pre-contrast input is the first other one."""
    low = match_by_name(available, target) or available[-1]
    return next(m for m in available if m != low), low


def dose_scaled(pre: np.ndarray, low: np.ndarray, dose: float) -> np.ndarray:
    """The linear enhancement model inverted: ``pre + (low - pre) / dose``."""
    return pre + (low - pre) / dose


class DoseScalingMethod(Method):
    """``pre + (low - pre) / dose``: the enhancement of the low-dose image scaled up to the full dose."""

    card = MethodCard(
        name="dose_scaling",
        version="1.0",
        summary=(
            "Inverts the linear enhancement model voxel by voxel: prediction = pre + (low - pre) / dose, with "
            "low the input named like the target (t1ce_low) and pre the other input (the pre-contrast T1), both "
            "in task units (each divided by its own healthy-brain median). The dose comes from the dose option, "
            "else the training cases' degradation metadata (the task's dose parameter), else a least-squares "
            "fit of (low - pre) = dose (target - pre) on a seeded subsample of foreground train voxels. No other "
            "training: it amplifies the low dose's noise by about 1 / dose wherever low and pre do not share it."
        ),
        needs_training=True,
        tasks=("gbca_lowdose",),
    )
    defaults = {"pre": None, "low": None, "dose": None, "max_voxels": 200_000}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.pre: str | None = None
        self.low: str | None = None
        self.dose: float | None = None
        self.dose_source = ""

    def _roles(self, available: Sequence[str]) -> tuple[str, str]:
        if len(available) < 2:
            raise MethodError(f"method {self.card.name!r} needs a pre-contrast and a low-dose input, got {list(available)}")
        low = (check_source(str(self.options["low"]), available, self.card.name) if self.options["low"] is not None
               else self.low if self.low in available else dose_roles(available, self.target)[1])
        pre = (check_source(str(self.options["pre"]), available, self.card.name) if self.options["pre"] is not None
               else self.pre if self.pre in available and self.pre != low
               else next(m for m in available if m != low))
        if pre == low:
            raise MethodError(f"method {self.card.name!r}: the pre-contrast and low-dose inputs are both {low!r}")
        return pre, low

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        self.pre, self.low = self._roles(self.inputs)
        if self.options["dose"] is not None:
            self.dose, self.dose_source = float(self.options["dose"]), "option"
        elif (dose := dose_from_cases(train, self.card.name)) is not None:
            self.dose, self.dose_source = dose, "degradation metadata"
        else:
            sample = sample_voxels(train, (self.pre, self.low), max_voxels=int(self.options["max_voxels"]),
                                   seed=ctx.seed, method=self.card.name)
            enhancement = sample.y - sample.x[:, 0]
            denom = float(np.sum(enhancement**2))
            if not denom > 0:
                raise MethodError(f"method {self.card.name!r}: the training targets equal the pre-contrast input; "
                                  "the dose cannot be estimated (give dose=...)")
            self.dose = float(np.sum((sample.x[:, 1] - sample.x[:, 0]) * enhancement) / denom)
            self.dose_source = "least squares on the train split"
        if not (self.dose is not None and np.isfinite(self.dose) and self.dose > 0):
            raise MethodError(f"method {self.card.name!r}: the dose must be positive, got {self.dose!r} "
                              f"({self.dose_source})")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        _, ref = self.stack_inputs(inputs)
        pre_name, low_name = self._roles(list(self.inputs or inputs))
        pre = np.asarray(inputs[pre_name].data, dtype=np.float64)
        low = np.asarray(inputs[low_name].data, dtype=np.float64)
        assert self.dose is not None
        return self.output(dose_scaled(pre, low, self.dose), ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"pre": self.pre, "low": self.low, "dose": self.dose, "dose_source": self.dose_source}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.pre, self.low = meta.get("pre"), meta.get("low")
        self.dose = None if meta.get("dose") is None else float(meta["dose"])
        self.dose_source = str(meta.get("dose_source") or "")

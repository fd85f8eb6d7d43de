"""Histogram matching: map one input onto the target's intensity distribution by quantile mapping."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.baselines.classical._common import (
    check_source,
    correlations,
    foreground,
    sample_voxels,
    state_float,
)
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume


def quantile_map(values: np.ndarray, source_q: np.ndarray, target_q: np.ndarray) -> np.ndarray:
    """Piecewise-linear monotone map sending ``source_q`` to ``target_q`` (clamped outside the range).

    Runs of equal source quantiles (plateaus such as many voxels of one value) are merged and map to
    the mean of their target quantiles, so the map stays a function.
    """
    xs, inverse = np.unique(source_q, return_inverse=True)
    ys = np.bincount(inverse, weights=target_q) / np.bincount(inverse)
    if xs.size == 1:
        return np.full(values.shape, ys[0], dtype=np.float64)
    return np.interp(values, xs, ys)


class HistogramMatchingMethod(Method):
    """Quantile mapping of one input to the target modality, learned on the pooled train split.

    ``n_quantiles`` quantiles of the chosen input and of the target are computed over the same seeded
    subsample of foreground voxels (any input non-zero) pooled over the train cases; a voxel is mapped by
    linear interpolation between them (clamped at the extremes). The input is the ``source`` option, or
    the one whose correlation with the target has the largest magnitude; when that correlation is
    negative (e.g. T1 -> FLAIR CSF contrast) the map is decreasing. Background voxels (all inputs zero)
    get the median training target over background.
    """

    card = MethodCard(
        name="histogram",
        version="1.0",
        varying_target="per_target",
        summary=(
            "Histogram matching of one input to the target: quantile mapping (n_quantiles pooled quantiles "
            "of the input and of the target over a seeded foreground subsample of the train split, linear "
            "interpolation, decreasing when the input is anti-correlated with the target). Input: the most "
            "(absolutely) correlated one, or the source option. Background gets the train background median."
        ),
        needs_training=True,
    )
    defaults = {"source": None, "n_quantiles": 1024, "max_voxels": 200_000}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.source: str | None = None
        self.direction = 1
        self.source_quantiles = np.zeros(0)
        self.target_quantiles = np.zeros(0)
        self.background: float | None = None

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        sample = sample_voxels(train, self.inputs, max_voxels=int(self.options["max_voxels"]), seed=ctx.seed,
                               method=self.card.name)
        r = correlations(sample.x, sample.y)
        if self.options["source"] is not None:
            self.source = check_source(str(self.options["source"]), self.inputs, self.card.name)
            k = self.inputs.index(self.source)
        else:
            k = int(np.argmax(np.abs(r)))
            self.source = self.inputs[k]
        self.direction = -1 if r[k] < 0 else 1
        levels = np.linspace(0.0, 1.0, max(2, int(self.options["n_quantiles"])))
        self.source_quantiles = np.quantile(sample.x[:, k], levels)
        target_q = np.quantile(sample.y, levels)
        self.target_quantiles = target_q[::-1].copy() if self.direction < 0 else target_q
        self.background = sample.background

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        stack, ref = self.stack_inputs(inputs)
        fg = foreground(stack)
        if self.source not in self.inputs:
            raise MethodError(f"method {self.card.name!r}: fitted state names input {self.source!r}, not among "
                              f"the fitted inputs {list(self.inputs)}; refit or load a matching state")
        k = self.inputs.index(self.source)
        out = np.empty(stack.shape[1:], dtype=np.float64)
        if self.background is None:
            fg[...] = True
        else:
            out[~fg] = self.background
        out[fg] = quantile_map(stack[k][fg].astype(np.float64), self.source_quantiles, self.target_quantiles)
        return self.output(out, ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        arrays = {"source_quantiles": self.source_quantiles, "target_quantiles": self.target_quantiles}
        return arrays, {"source": self.source, "direction": self.direction, "background": self.background}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.source_quantiles = np.asarray(arrays["source_quantiles"], dtype=np.float64)
        self.target_quantiles = np.asarray(arrays["target_quantiles"], dtype=np.float64)
        self.source = meta.get("source")
        self.direction = int(meta.get("direction", 1))
        self.background = state_float(meta, "background")

"""Interpolation along z for thick-to-thin CT (``ct_thin``): ``nearest_z``, ``linear_z``, ``cubic_z``.

The task hands the thick slices on the thin grid (every thin slice showing its nearest thick slice,
:mod:`cmsbench.tasks.degradations.slices`); the thick slices are centred on thin slices ``0, k, 2k, ...``.
Each baseline takes those thin slices as samples at their positions and interpolates along the slice axis
onto every thin slice: ``nearest_z`` (the input itself), ``linear_z`` (piecewise linear), ``cubic_z``
(a not-a-knot cubic spline, ``scipy.interpolate.make_interp_spline``, k = 3). The factor k comes from the
option ``factor``, else the training cases' metadata (``slice_factor`` / ``degradation``), else the input
itself (the period of its runs of equal slices); an input with no such structure is returned unchanged.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume

ORDERS = {"nearest": 0, "linear": 1, "cubic": 3}


def factor_from_cases(cases: Sequence[Case]) -> int | None:
    """The slice factor the first case records (``slice_factor``, else ``degradation.params.factor``)."""
    if not len(cases) or not isinstance(cases[0].metadata, dict):
        return None
    meta = cases[0].metadata
    if meta.get("slice_factor") is not None:
        return int(meta["slice_factor"])
    info = meta.get("degradation")
    if isinstance(info, Mapping) and info.get("name") in ("decimate", "slab"):
        return int(dict(info.get("params") or {}).get("factor", 0)) or None
    return None


def estimate_factor(data: np.ndarray, axis: int = 2) -> int | None:
    """The factor k of a nearest-neighbour thick-on-thin image: the spacing of the slices where its value
    changes (every k slices); None when it has no such regular runs."""
    x = np.moveaxis(np.asarray(data), axis, 0)
    if x.shape[0] < 3:
        return None
    changed = np.flatnonzero([not np.array_equal(x[i], x[i - 1]) for i in range(1, x.shape[0])]) + 1
    if changed.size < 1:
        return None
    steps = np.diff(changed)
    if steps.size and (steps != steps[0]).any():
        return None
    k = int(steps[0]) if steps.size else None
    if k is None or k < 2:
        return None
    return k


def interpolate_z(data: np.ndarray, factor: int, order: int, axis: int = 2) -> np.ndarray:
    """``data`` re-made from its slices ``0, k, 2k, ...`` along ``axis`` by interpolation of ``order``
    (0 nearest as the task's grid input, 1 linear, 3 not-a-knot cubic spline), float32."""
    from scipy.interpolate import make_interp_spline

    x = np.moveaxis(np.asarray(data, dtype=np.float64), axis, 0)
    n = x.shape[0]
    pos = np.arange(0, n, int(factor))
    samples = x[pos]
    z = np.arange(n, dtype=np.float64)
    if order == 0 or len(pos) < 2:
        index = np.minimum((np.arange(n) + (int(factor) - 1) // 2) // int(factor), len(pos) - 1)
        out = samples[index]
    elif order == 1 or len(pos) < 4:
        hi = np.clip(np.searchsorted(pos, z, side="right"), 1, len(pos) - 1)
        lo = hi - 1
        w = ((z - pos[lo]) / (pos[hi] - pos[lo])).reshape(-1, *([1] * (x.ndim - 1)))
        out = samples[lo] + np.clip(w, 0.0, 1.0) * (samples[hi] - samples[lo])  # constant beyond the last
    else:
        spline = make_interp_spline(pos.astype(np.float64), samples, k=order, axis=0)
        out = spline(np.minimum(z, pos[-1]))
        out[pos] = samples
    return np.moveaxis(out, 0, axis).astype(np.float32)


class _ZInterpolation(Method):
    kind = "nearest"

    defaults = {"factor": None, "axis": 2}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.factor: int | None = None

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        given = self.options["factor"]
        self.factor = int(given) if given is not None else factor_from_cases(train)
        if self.factor is not None and self.factor < 1:
            raise MethodError(f"method {self.card.name!r}: factor must be >= 1, got {self.factor}")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        stack, ref = self.stack_inputs(inputs)
        axis = int(self.options["axis"])
        data = stack[0]
        factor = self.factor or estimate_factor(data, axis)
        if factor is None or factor < 2:
            return self.output(np.array(data, dtype=np.float32, copy=True), ref)
        return self.output(interpolate_z(data, factor, ORDERS[self.kind], axis), ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"factor": self.factor}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.factor = None if meta.get("factor") is None else int(meta["factor"])


_DIFF = ("Interpolates the thick slices as point samples at their centres (thin slices 0, k, 2k, ...); under "
         "the slab operator they are slab averages, which no interpolation undoes.")


class NearestZ(_ZInterpolation):
    """Every thin slice copies its nearest thick slice (the task's input itself)."""

    kind = "nearest"
    card = MethodCard(
        name="nearest_z", version="1.0", needs_training=False,
        summary="nearest-neighbour interpolation along z of the thick slices (ct_thin: the input as given)",
        paper="the nearest-neighbour baseline of SAINT (Peng et al., CVPR 2020)", differences_from_paper=_DIFF,
    )


class LinearZ(_ZInterpolation):
    """Piecewise-linear interpolation along z between consecutive thick slices."""

    kind = "linear"
    card = MethodCard(
        name="linear_z", version="1.0", needs_training=False,
        summary="linear interpolation along z between the thick slices (constant beyond the last one)",
        paper="the linear baseline of SAINT (Peng et al., CVPR 2020)", differences_from_paper=_DIFF,
    )


class CubicZ(_ZInterpolation):
    """Not-a-knot cubic spline along z through the thick slices."""

    kind = "cubic"
    card = MethodCard(
        name="cubic_z", version="1.0", needs_training=False,
        summary="cubic-spline interpolation along z through the thick slices (scipy make_interp_spline, "
                "not-a-knot)",
        paper="the cubic baseline of SAINT (Peng et al., CVPR 2020)", differences_from_paper=_DIFF,
    )

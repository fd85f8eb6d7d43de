"""The metric and region API: what a metric, a region and a scoring mode are, and what a metric sees.

Every metric is a :class:`Metric` object registered under the ``cmsbench.metrics`` entry-point group
(built-ins and plugins alike); every region a :class:`Region` under ``cmsbench.regions``. The scorer
resolves the task's metric and region names through the registries (:mod:`.registry`) and calls
``metric.compute(ctx, region)`` with a :class:`CaseContext`, which holds the case's images and masks and
shares expensive work between metrics (one fused pass computes every region's error sums and the SSIM
map once).

A plugin metric in full::

    from cmsbench.benchmark.metrics.api import Metric

    def _max_abs_error(ctx, region):
        target, prediction = ctx.voxels(region)
        return float(abs(target - prediction).max())

    MAX_ABS_ERROR = Metric(name="max_abs_error", direction="lower", compute=_max_abs_error,
                           summary="largest absolute voxel error", convention="task units, region voxels")

and in the plugin's ``pyproject.toml``::

    [project.entry-points."cmsbench.metrics"]
    max_abs_error = "my_pkg.metrics:MAX_ABS_ERROR"

Set-level metrics (a distribution distance over the whole test set) set ``level="set"`` and give
``features`` (per case and region: anything, e.g. a feature vector) and ``aggregate`` (the list of every
case's features and a seed -> :class:`SetValue`). The runner collects the features case by case and
records the value with its interval in ``RunRecord.set_scores``; set-level values are never fed into
per-case paired tests.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from cmsbench.errors import MetricError

Direction = Literal["higher", "lower"]


class MetricUndefined(Exception):
    """Raised by a metric when its value is undefined for this case/region; the reason is recorded."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


@dataclass(frozen=True)
class Needs:
    """What a metric needs to be computed.

    Attributes:
        data_range: the task's data range (PSNR peak, SSIM range); an error when the task has none.
        mask: whether it is computed inside a region (False: only the whole grid, region ``global``).
        dims: ``"3d"`` (volumes) or ``"2d"`` (slices).
        device: whether it runs on the torch device given to the scorer (GPU when available).
        lesion_regions_only: computed only in lesion regions (``lesion`` and its sub-regions).
        segmentation: a downstream metric: it reads the case's segmentations (``ctx.segmentation``, a
            :class:`~cmsbench.benchmark.downstream.scoring.SegmentationResult`), is computed only when
            downstream scoring is on (``--downstream``) and only in the segmentation regions ``wt``,
            ``tc``, ``et``.
        regions: computed only in these regions (empty: in every region of the task), e.g. the lung
            densitometry metrics in ``lung``.
    """

    data_range: bool = False
    mask: bool = True
    dims: Literal["3d", "2d"] = "3d"
    device: bool = False
    lesion_regions_only: bool = False
    segmentation: bool = False
    regions: tuple[str, ...] = ()

    def describe(self) -> str:
        parts = [self.dims]
        if self.data_range:
            parts.append("data range")
        parts.append("region mask" if self.mask else "whole grid only")
        if self.device:
            parts.append("device")
        if self.lesion_regions_only:
            parts.append("lesion regions only")
        if self.segmentation:
            parts.append("segmentations (--downstream), regions wt/tc/et")
        if self.regions:
            parts.append(f"region{'s' if len(self.regions) > 1 else ''} {'/'.join(self.regions)} only")
        return ", ".join(parts)


@dataclass(frozen=True)
class SetValue:
    """A set-level metric's value over the test set with its interval."""

    value: float
    ci_low: float = float("nan")
    ci_high: float = float("nan")
    n: int = 0
    reason: str | None = None


@dataclass(frozen=True)
class Metric:
    """A metric: its name, direction, needs, the function, and an independent reference for tests.

    ``compute(ctx, region) -> float`` for case-level metrics (raise :class:`MetricUndefined` for an
    undefined value). ``per_lesion(ctx, component) -> float`` (optional) scores one connected lesion.
    ``reference(target_values, prediction_values, data_range) -> float`` (optional) is a plain numpy
    computation of the same number on a region's voxels, used by tests to check ``compute``.
    """

    name: str
    direction: Direction | None
    summary: str
    convention: str = ""
    compute: Callable[[CaseContext, str], float] | None = None
    needs: Needs = field(default_factory=Needs)
    level: Literal["case", "set"] = "case"
    per_lesion: Callable[[CaseContext, Any], float] | None = None
    reference: Callable[..., float] | None = None
    features: Callable[[CaseContext, str], Any] | None = None
    aggregate: Callable[[Sequence[Any], int], SetValue] | None = None
    version: str = "1"

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise MetricError(f"metric name {self.name!r} must be alphanumeric with _ or -")
        if self.direction not in ("higher", "lower", None):
            raise MetricError(f"metric {self.name!r}: direction must be 'higher', 'lower' or None, got {self.direction!r}")
        if self.level == "case" and self.compute is None:
            raise MetricError(f"case-level metric {self.name!r} needs a compute function")
        if self.level == "set" and (self.features is None or self.aggregate is None):
            raise MetricError(f"set-level metric {self.name!r} needs features and aggregate functions")
        if self.level not in ("case", "set"):
            raise MetricError(f"metric {self.name!r}: level must be 'case' or 'set', got {self.level!r}")

    @property
    def higher_is_better(self) -> bool | None:
        return None if self.direction is None else self.direction == "higher"

    def info(self, source: str = "") -> dict[str, Any]:
        """What a result record stores about the metric (:class:`~cmsbench.results.MetricInfo`)."""
        return {"direction": self.direction, "level": self.level, "version": self.version, "source": source,
                "convention": self.convention or self.summary}


@dataclass(frozen=True)
class Region:
    """An evaluation region: ``build(target, masks, case_id=..., cache=...)`` -> boolean array (None = all voxels).

    ``lesion``: a lesion region (lesion-only metrics apply, per-lesion scores come from it).
    """

    name: str
    summary: str
    build: Callable[..., np.ndarray | None]
    lesion: bool = False


@dataclass(frozen=True)
class Mode:
    """A scoring mode: the task's own conventions (``default``) or an official evaluator's.

    ``score(target, prediction, masks, task, metadata, case_id, device) -> ModeResult``; ``source`` names
    the official code it reproduces (repository, path, commit) and ``verified`` says how it was checked.
    ``downstream(segmentation) -> ModeResult`` (optional): the mode's convention for segmentations
    (``--downstream``), given a :class:`~cmsbench.benchmark.downstream.scoring.SegmentationResult`;
    ``score`` None: the task's own image scoring with that downstream convention.
    """

    name: str
    summary: str
    score: Callable[..., Any] | None = None
    source: str = ""
    verified: str = ""
    directions: dict[str, Direction] = field(default_factory=dict)
    downstream: Callable[[Any], Any] | None = None


class CaseContext:
    """One case as the metrics see it, with shared intermediate results.

    Attributes: ``target``, ``prediction`` (3D arrays in task units), ``masks`` (the case's masks),
    ``task`` (the TaskSpec), ``case_id``, ``metadata``, ``device``, ``ssim_config``, ``window`` (the
    task's intensity window or None) and ``ssim_range`` (the SSIM data range of the whole grid).
    """

    def __init__(self, target: np.ndarray, prediction: np.ndarray, masks: dict[str, Any], task: Any, *,
                 case_id: str = "", metadata: dict[str, Any] | None = None, device: str = "cpu",
                 ssim_config: Any = None, region_masks: dict[str, np.ndarray | None] | None = None,
                 want_ssim: bool = True) -> None:
        from cmsbench.benchmark.metrics.ssim import GAUSSIAN

        self.target = target
        self.prediction = prediction
        self.masks = masks
        self.task = task
        self.case_id = case_id
        self.metadata = metadata or {}
        self.device = device
        self.ssim_config = ssim_config or GAUSSIAN
        self.region_masks: dict[str, np.ndarray | None] = dict(region_masks or {})
        self.want_ssim = want_ssim
        self.cache: dict[Any, Any] = {}
        self.segmentation: Any = None  # a SegmentationResult when downstream scoring is on
        dr = task.data_range
        self.data_range = dr
        self.window: tuple[float, float] | None = None
        self.ssim_range = float("nan")
        if dr is not None:
            if dr.kind == "window":
                self.window = (float(dr.low), float(dr.high))
                self.ssim_range = self.window[1] - self.window[0]
            elif dr.kind == "fixed":
                self.ssim_range = float(dr.value)
            elif dr.kind == "gt_range":
                self.ssim_range = float(target.max() - target.min())

    # ------------------------------------------------------------------------------ regions and voxels
    def mask(self, region: str) -> np.ndarray | None:
        """The region's boolean mask (None: every voxel)."""
        return self.region_masks[region]

    def voxels(self, region: str, *, clipped: bool = False) -> tuple[np.ndarray, np.ndarray]:
        """(target, prediction) float64 voxel values inside ``region`` (clipped to the window if asked)."""
        key = ("voxels", region, clipped)
        if key not in self.cache:
            m = self.mask(region)
            t = self.target if m is None else self.target[m]
            p = self.prediction if m is None else self.prediction[m]
            t, p = np.asarray(t, np.float64).ravel(), np.asarray(p, np.float64).ravel()
            if clipped and self.window:
                t, p = np.clip(t, *self.window), np.clip(p, *self.window)
            self.cache[key] = (t, p)
        return self.cache[key]

    def peak(self, region: str) -> float:
        """The PSNR peak / NRMSE range in ``region``: fixed value, window width, or the GT's max - min there."""
        if self.data_range is None:
            raise MetricError(f"task {self.task.name!r} has no data range: PSNR/SSIM need an explicit one")
        if self.data_range.kind != "gt_range":
            return self.ssim_range
        t, _ = self.voxels(region)
        return float(t.max() - t.min()) if t.size else float("nan")

    # ------------------------------------------------------------------------------------ fused sums
    def sums(self, window: tuple[float, float] | None | str = "task", *, ssim_range: float | None = None):
        """Every non-empty region's error sums and SSIM sums in one fused pass (cached per window).

        ``window="task"``: the task's window (None without one); a ``(low, high)`` tuple: that window with
        SSIM range ``high - low``.
        """
        from cmsbench.benchmark.metrics.fused import region_sums

        win = self.window if window == "task" else window
        if window == "task":
            rng = self.ssim_range if (self.want_ssim and self.ssim_range > 0) else None
        else:
            rng = ssim_range if ssim_range is not None else (win[1] - win[0])
        keep_map = bool(self.cache.get("keep_map")) and window == "task"
        key = ("sums", win, rng, keep_map)  # equal windows with other SSIM settings are other sums
        if key not in self.cache:
            self.cache[key] = region_sums(self.target, self.prediction, self.region_masks, ssim_range=rng,
                                          ssim_config=self.ssim_config, window=win, keep_map=keep_map,
                                          device=self.device)
        return self.cache[key]


def finite_or_undefined(value: float, reason: str) -> float:
    """``value`` if it is not NaN, else raise :class:`MetricUndefined` with ``reason``."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        raise MetricUndefined(reason)
    return float(value)

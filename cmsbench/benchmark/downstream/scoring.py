"""Downstream scoring of one case: segment the real images and the images with the synthetic target
substituted, then hand both label maps (and the ground truth) to the downstream metrics.

:class:`DownstreamScorer` is what the runner and ``cmsbench score`` hold when ``--downstream`` is given:

- :meth:`~DownstreamScorer.prepare` makes the segmenter ready (a learned one trains on the task's TRAIN
  split with the real images, or loads its cached fit);
- :meth:`~DownstreamScorer.segment` returns a :class:`SegmentationResult`. The segmentation of the REAL
  images does not depend on the method, so it is cached on disk, keyed by the segmenter's digest and the
  case's content digest (a changed segmenter script, model or fit, or a rewritten case file, segments
  again). A segmenter that fails on a case leaves the result without that label map and with the reason;
  the metrics then record NaN with the reason, and the image metrics are untouched.

Reference labels: the case's own label map (BraTS 2023 convention, ET = 3) when the task has one; else the
segmentation of the real images (consistency, as SynthRAD2025 scores a synthetic CT against TotalSegmentator
on the real CT).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.benchmark.downstream.segmenters import (
    Segmenter,
    SegmenterError,
    brats_labels,
    real_images,
    synthetic_images,
)
from cmsbench.errors import CmsbenchError
from cmsbench.paths import cache_home
from cmsbench.tasks.volume import Case, Volume

log = logging.getLogger(__name__)

#: The segmentation regions downstream metrics are scored in (BraTS 2023: labels that form each region).
SEGMENTATION_REGIONS: dict[str, tuple[int, ...]] = {"wt": (1, 2, 3), "tc": (1, 3), "et": (3,)}

#: The downstream metrics ``--downstream`` adds in the default mode (lesion-wise BraTS 2023 and legacy).
DEFAULT_METRICS: tuple[str, ...] = (
    "seg_dice", "seg_dice_real", "seg_dice_drop", "seg_hd95", "seg_hd95_real", "seg_hd95_increase",
    "seg_legacy_dice", "seg_legacy_dice_real", "seg_legacy_dice_drop", "seg_legacy_hd95", "seg_legacy_hd95_real",
)

#: The built-in segmenter ``--downstream`` uses when no ``--segmenter`` is given.
DEFAULT_SEGMENTER = "segresnet"


@dataclass
class SegmentationResult:
    """One case's label maps: reference, of the real images, of the images with the synthetic target.

    ``real`` / ``synthetic`` are None when that segmentation failed (``errors`` says why). ``seconds``:
    segmentation time of each (0 for a cached real segmentation); ``reference`` says where ``truth``
    comes from (``"labels"``: the case's label map, ``"real"``: the real images' segmentation).
    """

    case_id: str
    truth: np.ndarray | None
    real: np.ndarray | None
    synthetic: np.ndarray | None
    spacing: tuple[float, float, float]
    reference: str = "labels"
    errors: dict[str, str] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)
    real_cached: bool = False

    def labels(self, which: str) -> np.ndarray:
        """``"real"`` or ``"synthetic"``'s label map; :class:`SegmenterError` with the reason when absent."""
        out = self.real if which == "real" else self.synthetic
        if out is None:
            raise SegmenterError(self.errors.get(which, f"no {which}-image segmentation for case {self.case_id!r}"))
        return out

    def reference_labels(self) -> np.ndarray:
        """The labels the segmentations are scored against."""
        if self.truth is None:
            raise SegmenterError(self.errors.get("real", f"case {self.case_id!r} has no reference segmentation"))
        return self.truth


class DownstreamScorer:
    """A segmenter bound to a task run, with the on-disk cache of real-image segmentations."""

    def __init__(self, segmenter: Segmenter, *, cache_root: Path | None = None) -> None:
        self.segmenter = segmenter
        self.cache_root = Path(cache_root) if cache_root is not None else cache_home() / "downstream"
        self.prepared = not segmenter.needs_training

    def prepare(self, train: Sequence[Case], *, seed: int, device: str, data_fingerprint: str,
                progress: Callable[[str, int, int], None] | None = None) -> None:
        """Train (or load the cached fit of) a learned segmenter on ``train``; nothing for a fixed one."""
        if self.segmenter.needs_training:
            if len(train) == 0:
                raise SegmenterError(f"segmenter {self.segmenter.name!r} learns from the train split, which is empty")
            self.segmenter.prepare(train, seed=seed, device=device, data_fingerprint=data_fingerprint,
                                   progress=progress)
        self.prepared = True

    def identity(self) -> dict[str, Any]:
        """The segmenter's identity (what the record stores) with its digest."""
        return {**self.segmenter.identity(), "digest": self.segmenter.digest()}

    def label(self) -> str:
        """``name:digest16``: the downstream part of a run identity."""
        return f"{self.segmenter.name}:{self.segmenter.digest()[:16]}"

    # --------------------------------------------------------------------------------- segmenting
    def _cache_path(self, case_digest: str | None) -> Path | None:
        if not case_digest:
            return None
        return self.cache_root / self.segmenter.digest()[:32] / f"{case_digest}.npz"

    def _segment(self, case_id: str, images: dict[str, Volume], affine: np.ndarray) -> tuple[np.ndarray | None, str | None, float]:
        out = self.segmenter.segment_cases({case_id: images}, affines={case_id: affine})[case_id]
        return out.labels, out.error, out.seconds

    def _real(self, case: Case, case_digest: str | None, result: SegmentationResult) -> None:
        path = self._cache_path(case_digest)
        if path is not None and path.is_file():
            try:
                with np.load(path) as data:
                    result.real = np.asarray(data["labels"])
                result.real_cached, result.seconds["real"] = True, 0.0
                return
            except (OSError, ValueError, KeyError) as exc:
                log.warning("ignoring unreadable cached segmentation %s (%s); segmenting again", path, exc)
        labels, error, seconds = self._segment(case.case_id, real_images(case), case.grid.affine)
        result.seconds["real"] = seconds
        if labels is None:
            result.errors["real"] = error or "segmentation failed"
            return
        result.real = labels
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
            np.savez_compressed(tmp, labels=np.asarray(labels, dtype=np.int16))
            tmp.replace(path)

    def segment(self, case: Case, prediction: Volume | np.ndarray, *, case_digest: str | None = None) -> SegmentationResult:
        """Segment the case's real images (cached) and the images with ``prediction`` as the target."""
        if not self.prepared:
            raise SegmenterError(f"segmenter {self.segmenter.name!r} is not prepared: call prepare() with the "
                                 f"task's train split first")
        if case.target is None:
            raise SegmenterError(f"case {case.case_id!r} has no target: nothing to substitute")
        truth = brats_labels(case.labels.data) if case.labels is not None else None
        result = SegmentationResult(case.case_id, truth, None, None, tuple(float(s) for s in case.target.spacing),
                                    reference="labels" if truth is not None else "real")
        self._real(case, case_digest, result)
        try:
            images = synthetic_images(case, prediction)
        except CmsbenchError as exc:
            result.errors["synthetic"] = str(exc)
            return result
        start = time.perf_counter()
        labels, error, seconds = self._segment(case.case_id, images, case.grid.affine)
        result.seconds["synthetic"] = seconds or (time.perf_counter() - start)
        if labels is None:
            result.errors["synthetic"] = error or "segmentation failed"
        else:
            result.synthetic = labels
        if truth is None and result.real is not None:
            result.truth = result.real
        return result

"""Per-case scoring: :func:`score_case` and the :class:`CaseScore` record.

Default mode (``mode="default"``): the task's own conventions, all explicit in the record.

- Images are in the task's units (MR: divided by the ground truth's healthy-tissue median by the
  data layer; CT: HU; PET: Bq/mL). Nothing is inferred from the prediction.
- Data range (``task.data_range``; missing = error): ``fixed`` L = value; ``window`` both images
  clipped to ``[low, high]`` for PSNR and SSIM (L = high - low) while MAE/MSE/NMSE/NRMSE use the raw
  images; ``gt_range`` L = max - min of the ground truth inside each region for PSNR/NRMSE and over the
  whole grid for the SSIM map (one map per case).
- SSIM: :data:`~cmsbench.benchmark.metrics.ssim.GAUSSIAN` unless ``ssim_config`` is given; the map is
  computed ONCE on the full images and each region's SSIM is its mean over the region's voxels.
- Regions: :mod:`cmsbench.benchmark.metrics.regions` (``healthy``, ``lesion_ring``, ``bone`` ...).
  An empty region scores NaN with the reason ``"empty mask: <region>"``.
- Metrics: exactly ``task.metrics``, each resolved through the metric registry
  (:mod:`cmsbench.benchmark.metrics.registry`; built-ins in :mod:`~cmsbench.benchmark.metrics.builtin`,
  plugins through the ``cmsbench.metrics`` entry points). Task-specific metrics (PET SUV errors, CT
  window metrics) are declared in the task spec like any other; a metric that applies to lesion regions
  only is skipped elsewhere. Set-level metrics are not computed here: their per-case features are
  returned in ``CaseScore.features`` for the runner to aggregate over the test set.
- Per-lesion: connected components (26-connectivity) of the lesion mask, largest first, with PSNR,
  MAE, SSIM (mean of the case's map) and, for PET, the SUV errors.

Values: NaN is stored as ``None`` with an entry in ``nan_reasons``; a perfect PSNR is ``inf`` in
memory and the string ``"inf"`` in JSON (``to_dict``), read back as ``float("inf")``.
"""

from __future__ import annotations

import difflib
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmsbench.errors import MetricError, UnknownNameError
from cmsbench.results.codec import decode_float, encode_float

SCHEMA_VERSION = 1


_enc = encode_float
_dec = decode_float


@dataclass
class CaseScore:
    """Scores of one case under one mode.

    Attributes:
        case_id: the case.
        mode: ``"default"`` or a compatibility mode name.
        task: task name; ``task_version`` its version.
        convention: how the numbers were computed (data range, SSIM flavour, 2D/3D, normalisation,
            region definitions, evaluator quirks).
        values: ``{region: {metric: float | None}}``; None = NaN, explained in ``nan_reasons``.
        nan_reasons: ``{"region/metric": reason}``.
        lesions: one dict per connected lesion: ``index``, ``n_voxels``, ``centroid`` and metrics.
    """

    case_id: str
    mode: str
    task: str
    task_version: str
    convention: dict[str, Any]
    values: dict[str, dict[str, float | None]]
    nan_reasons: dict[str, str] = field(default_factory=dict)
    lesions: list[dict[str, Any]] = field(default_factory=list)
    schema_version: int = SCHEMA_VERSION
    features: dict[str, dict[str, Any]] = field(default_factory=dict)

    def value(self, region: str, metric: str) -> float:
        """A value as a float (NaN where None); KeyError naming what exists if absent."""
        if region not in self.values:
            raise KeyError(f"no region {region!r}; regions: {sorted(self.values)}")
        if metric not in self.values[region]:
            raise KeyError(f"no metric {metric!r} in {region!r}; metrics: {sorted(self.values[region])}")
        v = self.values[region][metric]
        return float("nan") if v is None else float(v)

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (``json.dumps(..., allow_nan=False)`` works)."""
        return {
            "schema_version": self.schema_version,
            "case_id": self.case_id,
            "mode": self.mode,
            "task": self.task,
            "task_version": self.task_version,
            "convention": self.convention,
            "values": {r: {m: _enc(v) for m, v in ms.items()} for r, ms in self.values.items()},
            "nan_reasons": dict(self.nan_reasons),
            "lesions": [
                {k: (_enc(v) if isinstance(v, float) or v is None else v) for k, v in les.items()}
                for les in self.lesions
            ],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> CaseScore:
        """Inverse of :meth:`to_dict`."""
        lesions = []
        for les in d.get("lesions", []):
            out = {}
            for k, v in les.items():
                out[k] = (
                    _dec(v) if (v is None or isinstance(v, (float, int, str))) and k not in ("index", "n_voxels") else v
                )
            out["index"], out["n_voxels"] = int(les["index"]), int(les["n_voxels"])
            lesions.append(out)
        return cls(
            case_id=d["case_id"],
            mode=d["mode"],
            task=d.get("task", ""),
            task_version=d.get("task_version", ""),
            convention=d.get("convention", {}),
            values={r: {m: _dec(v) for m, v in ms.items()} for r, ms in d["values"].items()},
            nan_reasons=dict(d.get("nan_reasons", {})),
            lesions=lesions,
            schema_version=int(d.get("schema_version", SCHEMA_VERSION)),
        )


def available_modes() -> list[str]:
    """``["default", <other registered modes, sorted>]``."""
    from cmsbench.benchmark.metrics.registry import MODES

    return ["default", *sorted(n for n in MODES.names() if n != "default")]


def _unknown(kind: str, name: str, known: list[str]) -> UnknownNameError:
    close = difflib.get_close_matches(name, known, n=3)
    hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return UnknownNameError(f"unknown {kind} {name!r}{hint} (available: {', '.join(known)})")


def _check_inputs(
    target: np.ndarray, prediction: np.ndarray, masks: dict, case_id: str
) -> tuple[np.ndarray, np.ndarray]:
    t = np.asarray(target)
    p = np.asarray(prediction)
    if t.shape != p.shape:
        raise MetricError(f"case {case_id!r}: prediction shape {p.shape} differs from the target's {t.shape}")
    if t.ndim != 3:
        raise MetricError(f"case {case_id!r}: expected 3D volumes (X, Y, Z), got shape {t.shape}")
    for name, arr in (("prediction", p), ("target", t)):
        if not np.issubdtype(arr.dtype, np.number):
            raise MetricError(f"case {case_id!r}: {name} has non-numeric dtype {arr.dtype}")
        finite = np.isfinite(arr)
        if not finite.all():
            bad = arr.size - int(finite.sum())
            n_nan = int(np.isnan(arr).sum())
            raise MetricError(
                f"case {case_id!r}: {name} contains {bad} non-finite voxel(s) ({n_nan} NaN, {bad - n_nan} Inf); "
                "scores are undefined: fix the method (or the data) so it outputs finite values"
            )
    for name, m in masks.items():
        if m is not None and np.shape(m) != t.shape:
            raise MetricError(f"case {case_id!r}: mask {name!r} has shape {np.shape(m)}, the images {t.shape}")
    return t, p


def score_case(
    target: np.ndarray,
    prediction: np.ndarray,
    masks: dict[str, np.ndarray],
    task,
    *,
    mode: str = "default",
    case_id: str = "",
    metadata: dict | None = None,
    device: str = "cpu",
    ssim_config=None,
    segmentation=None,
    downstream_metrics=None,
    extra_metrics=(),
) -> CaseScore:
    """Score one case. See the module docstring for the default conventions.

    Args:
        target, prediction: 3D arrays of one shape, in the task's units.
        masks: case masks (``brain``, ``head``, ``body``, ``lesion``, BraTS sub-regions, ...).
        task: the :class:`~cmsbench.tasks.spec.TaskSpec`.
        mode: ``"default"`` or a compatibility mode (:func:`available_modes`).
        case_id: for error messages and the record.
        metadata: case metadata (PET: ``weight_kg``, ``injected_activity_bq``, ``acquisition_delay_s``,
            ``half_life_s``).
        device: torch device for the SSIM map (``"cpu"``, ``"cuda"``).
        ssim_config: an :class:`~cmsbench.benchmark.metrics.ssim.SSIMConfig` overriding the default
            Gaussian 3D flavour (e.g. ``SKIMAGE_DEFAULT`` or ``spatial_dims=2``).
        segmentation: downstream scoring: the case's
            :class:`~cmsbench.benchmark.downstream.scoring.SegmentationResult`; the segmentation metrics
            (``downstream_metrics``, default the mode's downstream convention or
            :data:`~cmsbench.benchmark.downstream.scoring.DEFAULT_METRICS`) are added in regions wt/tc/et.
        extra_metrics: registered metrics scored besides the task's in its regions (default mode; the
            task's ``downstream_metrics`` with ``--downstream``).
    Raises:
        MetricError: shape mismatch, non-finite values, missing data range or required mask.
        UnknownNameError: unknown mode or metric (with "did you mean").
    """
    modes = available_modes()
    if mode not in modes:
        raise _unknown("scoring mode", mode, modes)
    masks = dict(masks or {})
    t, p = _check_inputs(target, prediction, masks, case_id)
    restored = _restore_acquired(t, p, masks, task)
    if restored is not None:
        p = restored
    from cmsbench.benchmark.metrics.registry import get_mode

    if mode != "default" and get_mode(mode).score is not None:
        res = get_mode(mode).score(t, p, masks, task, metadata or {}, case_id, device)
        values, reasons = {}, dict(res.nan_reasons)
        for region, ms in res.values.items():
            values[region] = {}
            for metric, v in ms.items():
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    values[region][metric] = None
                    reasons.setdefault(f"{region}/{metric}", "undefined")
                else:
                    values[region][metric] = float(v)
        out = CaseScore(
            case_id, mode, task.name, task.version, {"mode": mode, **res.convention}, values, reasons, res.lesions
        )
    else:
        out = _score_default(t, p, masks, task, case_id, metadata or {}, device, ssim_config, tuple(extra_metrics))
    if segmentation is not None:
        _add_segmentation(out, t, p, masks, task, mode, segmentation, downstream_metrics, case_id, device)
    if restored is not None:
        out.convention["acquired_slices"] = ACQUIRED_CONVENTION
    return out


#: the ``adapter_options`` key and value of tasks whose copied input voxels are set to the ground truth
RESTORE_OPTION, RESTORE_VALUE = "score_acquired", "ground_truth"
ACQUIRED_CONVENTION = ("the prediction's voxels in the case's 'acquired' mask (the input slices a method "
                       "copies) are replaced by the ground truth before any metric, so that copied slices can "
                       "neither help nor hurt (3D and per-plane SSIM windows that reach into them see the "
                       "ground truth); region metrics count the synthesised slices only")


def _restore_acquired(t: np.ndarray, p: np.ndarray, masks: dict, task) -> np.ndarray | None:
    """The prediction with the acquired voxels set to the ground truth, for tasks that ask for it
    (``adapter_options["score_acquired"] == "ground_truth"``) and cases with an ``acquired`` mask; else None."""
    options = getattr(task, "adapter_options", None) or {}
    if options.get(RESTORE_OPTION) != RESTORE_VALUE or masks.get("acquired") is None:
        return None
    acquired = np.asarray(masks["acquired"], dtype=bool)
    return np.where(acquired, t, p).astype(p.dtype, copy=False)


def _add_segmentation(score: CaseScore, t, p, masks, task, mode, segmentation, names, case_id, device) -> None:
    """Add the downstream values of ``segmentation`` to ``score`` (a mode's own convention when it has one)."""
    from cmsbench.benchmark.downstream.scoring import DEFAULT_METRICS, SEGMENTATION_REGIONS
    from cmsbench.benchmark.metrics.api import CaseContext, MetricUndefined
    from cmsbench.benchmark.metrics.registry import get_metric, get_mode

    mode_obj = get_mode(mode)
    if mode_obj.downstream is not None and not names:
        res = mode_obj.downstream(segmentation)
        for region, ms in res.values.items():
            for metric, v in ms.items():
                ok = v is not None and not (isinstance(v, float) and math.isnan(v))
                score.values.setdefault(region, {})[metric] = float(v) if ok else None
                if not ok:
                    score.nan_reasons.setdefault(f"{region}/{metric}", res.nan_reasons.get(f"{region}/{metric}",
                                                                                          "undefined"))
        score.convention["downstream"] = res.convention
        return
    metrics = [get_metric(n) for n in (names or DEFAULT_METRICS)]
    ctx = CaseContext(t, p, masks, task, case_id=case_id, device=device, want_ssim=False)
    ctx.segmentation = segmentation
    for region in SEGMENTATION_REGIONS:
        out = score.values.setdefault(region, {})
        for metric in metrics:
            try:
                v = float(metric.compute(ctx, region))
                reason = None if not math.isnan(v) else "undefined"
            except MetricUndefined as exc:
                v, reason = float("nan"), exc.reason
            except MetricError:
                raise
            except Exception as exc:  # noqa: BLE001 - a plugin metric that raises: NaN with the reason
                v, reason = float("nan"), f"metric {metric.name!r} raised {type(exc).__name__}: {exc}"
            out[metric.name] = None if reason else v
            if reason:
                score.nan_reasons[f"{region}/{metric.name}"] = reason
    score.convention["downstream"] = {"metrics": [m.name for m in metrics], "regions": list(SEGMENTATION_REGIONS),
                                      "reference": segmentation.reference, "convention": metrics[0].convention}



def _score_default(t, p, masks, task, case_id, metadata, device, ssim_config, extra_metrics=()) -> CaseScore:
    from cmsbench.benchmark.metrics import clinical
    from cmsbench.benchmark.metrics import regions as reg
    from cmsbench.benchmark.metrics.api import CaseContext, MetricUndefined
    from cmsbench.benchmark.metrics.registry import REGIONS, get_metric, get_region
    from cmsbench.benchmark.metrics.ssim import GAUSSIAN

    cfg = ssim_config or GAUSSIAN
    dr = task.data_range
    if dr is None:
        raise MetricError(f"task {task.name!r} has no data range: PSNR/SSIM need an explicit one")
    if dr.kind == "fixed" and (dr.value is None or not dr.value > 0):
        raise MetricError(f"task {task.name!r}: fixed data range needs a positive value, got {dr.value!r}")
    if dr.kind not in ("fixed", "window", "gt_range"):
        raise MetricError(f"task {task.name!r}: unknown data range kind {dr.kind!r}")

    metrics = [get_metric(name) for name in dict.fromkeys((*task.metrics, *extra_metrics))]
    case_metrics = [m for m in metrics if m.level == "case"]
    set_metrics = [m for m in metrics if m.level == "set"]
    registered = REGIONS.entries()
    regions = {r: (get_region(r) if r in registered else None) for r in task.regions}
    cache: dict = {}
    region_masks = {}
    for r, region in regions.items():
        if region is None:  # a mask the task's own files provide (user tasks)
            region_masks[r] = reg.build_region(r, t, masks, case_id=case_id, cache=cache)
        else:
            region_masks[r] = region.build(t, masks, case_id=case_id, cache=cache)
    is_lesion = {r: bool(region is not None and region.lesion) for r, region in regions.items()}

    def applies(metric, r: str) -> bool:
        if metric.needs.lesion_regions_only and not is_lesion[r]:
            return False
        if metric.needs.regions and r not in metric.needs.regions:
            return False
        return metric.needs.mask or r == "global"  # a whole-grid metric is scored in region 'global' only

    reasons: dict[str, str] = {}
    values: dict[str, dict[str, float | None]] = {}
    nonempty: dict[str, Any] = {}
    for r, m in region_masks.items():
        names = [k.name for k in case_metrics if applies(k, r)]
        if m is not None and not m.any():
            values[r] = {k: None for k in names}
            reasons.update({f"{r}/{k}": f"empty mask: {r}" for k in names})
        else:
            values[r] = {}
            nonempty[r] = m
    wants_lesions = any(r in ("lesion", "lesion_ring") or is_lesion[r] for r in task.regions)
    lesion = reg.lesion_mask(masks, t.shape, case_id) if wants_lesions else None
    components = reg.lesion_components(lesion) if lesion is not None and lesion.any() else []
    want_ssim = "ssim" in task.metrics or bool(components)
    ctx = CaseContext(t, p, masks, task, case_id=case_id, metadata=metadata, device=device, ssim_config=cfg,
                      region_masks=nonempty, want_ssim=want_ssim)
    ctx.cache["keep_map"] = bool(components)

    for r in nonempty:
        out = values[r]
        for metric in case_metrics:
            if not applies(metric, r):
                continue
            try:
                v = metric.compute(ctx, r)
                v = float("nan") if v is None else float(v)
            except MetricUndefined as exc:
                v = float("nan")
                reasons[f"{r}/{metric.name}"] = exc.reason
            except MetricError:
                raise
            except Exception as exc:  # a plugin metric that raises: NaN with the reason, never a traceback
                v = float("nan")
                reasons[f"{r}/{metric.name}"] = f"metric {metric.name!r} raised {type(exc).__name__}: {exc}"
            out[metric.name] = v

    lesions = []
    per_lesion = [m for m in case_metrics if m.per_lesion is not None]
    for c in components:
        entry: dict[str, Any] = {"index": c.index, "n_voxels": c.n_voxels,
                                 "centroid": [round(x, 3) for x in c.centroid]}
        for metric in per_lesion:
            try:
                v = metric.per_lesion(ctx, c)
                entry[metric.name] = None if v is None or math.isnan(float(v)) else float(v)
            except MetricError:
                raise
            except Exception:  # noqa: BLE001 - MetricUndefined or a plugin that raises: no value for this lesion
                entry[metric.name] = None
        lesions.append(entry)

    features: dict[str, dict[str, Any]] = {}
    for metric in set_metrics:
        for r in nonempty:
            if applies(metric, r):
                try:
                    features.setdefault(r, {})[metric.name] = np.asarray(metric.features(ctx, r), dtype=np.float64)
                except Exception as exc:  # noqa: BLE001 - a plugin that raises: this case adds no features
                    reasons[f"{r}/{metric.name}"] = f"set-level metric {metric.name!r} raised {type(exc).__name__}: {exc}"

    suv_note = None
    if any(m.name in ("suvmean_pct_error", "suvmax_pct_error") for m in metrics):
        try:
            suv_note = f"SUV factor {clinical.suv_factor(metadata):.6g} g/Bq (weight / decay-corrected dose)"
        except MetricError as exc:
            suv_note = f"absolute SUV unavailable ({exc}); % errors do not depend on it"
    for r, ms in values.items():
        for k, v in list(ms.items()):
            if v is not None and math.isnan(v):
                ms[k] = None
                reasons.setdefault(f"{r}/{k}", "undefined")
    window = ctx.window
    convention = {
        "mode": "default",
        "units": task.units,
        "normalisation": task.normalisation.describe(),
        "data_range": dr.describe()
        + (" (PSNR/NRMSE: per region; SSIM map: whole grid)" if dr.kind == "gt_range" else "")
        + ("; window applied to PSNR/SSIM only, MAE/MSE/NMSE/NRMSE on raw values" if window else ""),
        "ssim": cfg.describe() + "; map computed once, region SSIM = mean of the map over the region's voxels",
        "ssim_config": cfg.to_dict(),
        "psnr_perfect": "inf (JSON string 'inf')",
        "regions": {r: (region.summary if region is not None else "case mask of that name")
                    for r, region in regions.items()},
        "per_lesion": "connected components (26-connectivity) of the lesion mask, largest first",
    }
    windows = {name.split("_", 1)[1] for name in task.metrics
               if name.startswith(("psnr_", "ssim_")) and name.split("_", 1)[1] in clinical.CT_WINDOWS}
    if windows:
        convention["ct_windows"] = {w: clinical.CT_WINDOWS[w] for w in clinical.CT_WINDOWS if w in windows}
    if suv_note:
        convention["suv"] = suv_note
    return CaseScore(case_id, "default", task.name, task.version, convention, values, reasons, lesions,
                     features=features)


def metric_infos(task, mode: str = "default", names=None) -> dict[str, dict[str, Any]]:
    """What a record stores about each metric it holds: direction, level, convention, version, source."""
    from cmsbench.benchmark.metrics.registry import direction_of, get_metric, is_registered, metric_source

    out: dict[str, dict[str, Any]] = {}
    if mode == "default" and task is not None:
        for name in task.metrics:
            out[name] = get_metric(name).info(metric_source(name))
    for name in names or ():
        if name not in out and mode == "default" and is_registered(name):
            out[name] = get_metric(name).info(metric_source(name))  # a downstream metric added to the task's
        if name not in out:
            out[name] = {"direction": direction_of(name, mode), "level": "case", "version": "1",
                         "source": f"mode {mode}", "convention": f"as computed by mode {mode!r}"}
    return out

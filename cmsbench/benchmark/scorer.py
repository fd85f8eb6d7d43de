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
- Metrics: ``task.metrics`` plus task-specific ones: PET (Bq/mL) ``suvmean_pct_error`` and
  ``suvmax_pct_error`` in lesion regions (and per lesion); LDCT (adapter ``ldct``) ``psnr_<window>``
  and ``ssim_<window>`` for the abdomen, chest and head display windows. CT MAE in the body and in
  bone comes from the task's regions (``body``, ``bone``).
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

SCHEMA_VERSION = 1
BASE_METRICS = ("psnr", "ssim", "mae", "mse", "nmse", "nrmse", "msssim", "lpips")
PET_METRICS = ("suvmean_pct_error", "suvmax_pct_error")
LESION_REGIONS = ("lesion", "necrotic", "edema", "enhancing")


def _enc(v: Any) -> Any:
    if v is None:
        return None
    v = float(v)
    if math.isnan(v):
        return None
    if math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return v


def _dec(v: Any) -> float | None:
    if v is None:
        return None
    if isinstance(v, str):
        return float(v)  # "inf" / "-inf"
    return float(v)


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
    """``["default", <compatibility modes, sorted>]``."""
    from cmsbench.benchmark.compat import COMPAT_MODES

    return ["default", *sorted(COMPAT_MODES)]


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


def _task_metrics(task) -> tuple[list[str], list[str], list[str]]:
    """(region metrics, PET lesion metrics, LDCT window names)."""
    base = [m for m in task.metrics]
    pet = list(PET_METRICS) if task.units == "Bq/mL" else []
    windows = []
    is_ldct = task.adapter == "ldct" or task.name.startswith("ldct")
    for m in list(base):
        if m in PET_METRICS:
            base.remove(m)
            if m not in pet:
                pet.append(m)
        elif m.startswith(("psnr_", "ssim_")) and m.split("_", 1)[1] in _windows():
            base.remove(m)
            windows.append(m.split("_", 1)[1])
    if is_ldct:
        windows = list(dict.fromkeys([*windows, *_windows()]))
    known = list(BASE_METRICS) + list(PET_METRICS)
    for m in base:
        if m not in BASE_METRICS:
            raise _unknown("metric", m, known)
    return base, pet, windows


def _windows() -> list[str]:
    from cmsbench.benchmark.metrics.clinical import CT_WINDOWS

    return list(CT_WINDOWS)


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
    Raises:
        MetricError: shape mismatch, non-finite values, missing data range or required mask.
        UnknownNameError: unknown mode or metric (with "did you mean").
    """
    modes = available_modes()
    if mode not in modes:
        raise _unknown("scoring mode", mode, modes)
    masks = dict(masks or {})
    t, p = _check_inputs(target, prediction, masks, case_id)
    if mode != "default":
        from cmsbench.benchmark.compat import COMPAT_MODES

        res = COMPAT_MODES[mode](t, p, masks, task, metadata or {}, case_id, device)
        values, reasons = {}, dict(res.nan_reasons)
        for region, ms in res.values.items():
            values[region] = {}
            for metric, v in ms.items():
                if v is None or (isinstance(v, float) and math.isnan(v)):
                    values[region][metric] = None
                    reasons.setdefault(f"{region}/{metric}", "undefined")
                else:
                    values[region][metric] = float(v)
        return CaseScore(
            case_id, mode, task.name, task.version, {"mode": mode, **res.convention}, values, reasons, res.lesions
        )
    return _score_default(t, p, masks, task, case_id, metadata or {}, device, ssim_config)


def _score_default(t, p, masks, task, case_id, metadata, device, ssim_config) -> CaseScore:
    from cmsbench.benchmark.metrics import clinical
    from cmsbench.benchmark.metrics import regions as reg
    from cmsbench.benchmark.metrics.fused import region_sums
    from cmsbench.benchmark.metrics.lpips import UNAVAILABLE_REASON, lpips_available, lpips_slices
    from cmsbench.benchmark.metrics.msssim import ms_ssim
    from cmsbench.benchmark.metrics.ssim import GAUSSIAN

    cfg = ssim_config or GAUSSIAN
    dr = task.data_range
    if dr is None:
        raise MetricError(f"task {task.name!r} has no data range: PSNR/SSIM need an explicit one")
    window = (float(dr.low), float(dr.high)) if dr.kind == "window" else None
    if dr.kind == "fixed":
        if dr.value is None or not dr.value > 0:
            raise MetricError(f"task {task.name!r}: fixed data range needs a positive value, got {dr.value!r}")
        L_ssim = float(dr.value)
    elif dr.kind == "window":
        L_ssim = window[1] - window[0]
    elif dr.kind == "gt_range":
        L_ssim = float(t.max() - t.min())
    else:
        raise MetricError(f"task {task.name!r}: unknown data range kind {dr.kind!r}")

    metrics, pet_metrics, windows = _task_metrics(task)
    cache: dict = {}
    region_masks = {r: reg.build_region(r, t, masks, case_id=case_id, cache=cache) for r in task.regions}
    reasons: dict[str, str] = {}
    values: dict[str, dict[str, float | None]] = {}
    nonempty = {}
    for r, m in region_masks.items():
        names = metrics + (pet_metrics if r in LESION_REGIONS else [])
        names += [f"{k}_{w}" for w in windows for k in ("psnr", "ssim")]
        if m is not None and not m.any():
            values[r] = {k: None for k in names}
            reasons.update({f"{r}/{k}": f"empty mask: {r}" for k in names})
        else:
            values[r] = {}
            nonempty[r] = m
    lesion = (
        reg.lesion_mask(masks, t.shape, case_id)
        if any(r in LESION_REGIONS or r == "lesion_ring" for r in task.regions)
        else None
    )
    components = reg.lesion_components(lesion) if lesion is not None and lesion.any() else []
    want_ssim = "ssim" in metrics or bool(components)
    L_ssim_ok = L_ssim > 0
    if want_ssim and not L_ssim_ok:
        reasons.update({f"{r}/ssim": "ground truth is constant (data range 0)" for r in nonempty})
    sums = region_sums(
        t,
        p,
        nonempty,
        ssim_range=L_ssim if (want_ssim and L_ssim_ok) else None,
        ssim_config=cfg,
        window=window,
        keep_map=bool(components),
        device=device,
    )

    def region_range(m) -> float:
        if dr.kind != "gt_range":
            return L_ssim
        v = t if m is None else t[m]
        return float(v.max() - v.min())

    for r, m in nonempty.items():
        out = values[r]
        L = region_range(m)
        for k in metrics:
            v: float
            if k == "mae":
                v = sums.mae(r)
            elif k == "mse":
                v = sums.mse(r)
            elif k == "nmse":
                v = sums.nmse(r)
                if math.isnan(v):
                    reasons[f"{r}/nmse"] = "ground truth is zero in the region"
            elif k in ("psnr", "nrmse"):
                if L > 0:
                    v = (
                        (math.sqrt(sums.mse(r)) / L)
                        if k == "nrmse"
                        else _psnr(sums.mse(r, clipped=window is not None), L)
                    )
                else:
                    v = float("nan")
                    reasons[f"{r}/{k}"] = "ground truth is constant in the region (data range 0)"
            elif k == "ssim":
                v = sums.ssim(r) if L_ssim_ok else float("nan")
                if math.isnan(v) and f"{r}/ssim" not in reasons:
                    reasons[f"{r}/ssim"] = "no voxel of the region inside the SSIM map's valid interior"
            elif k == "msssim":
                try:
                    tt, pp = (np.clip(t, *window), np.clip(p, *window)) if window else (t, p)
                    v = ms_ssim(tt, pp, L_ssim, mask=m, config=cfg)
                    if math.isnan(v):
                        reasons[f"{r}/msssim"] = "a per-scale masked mean was not positive"
                except MetricError as exc:
                    v = float("nan")
                    reasons[f"{r}/msssim"] = str(exc)
            elif k == "lpips":
                v = float("nan")
                if not lpips_available():
                    reasons[f"{r}/lpips"] = UNAVAILABLE_REASON
                elif r != "global":
                    reasons[f"{r}/lpips"] = "LPIPS is only defined on whole slices (region 'global')"
                else:
                    lo, hi = window if window else (float(t.min()), float(t.min()) + L_ssim)
                    try:
                        v = lpips_slices(t, p, (lo, hi), device=device)
                    except Exception as exc:  # weights missing / download refused
                        reasons[f"{r}/lpips"] = f"{UNAVAILABLE_REASON} ({type(exc).__name__}: {exc})"
            out[k] = v
        if r in LESION_REGIONS:
            for k, v in clinical.suv_errors(t[m] if m is not None else t, p[m] if m is not None else p).items():
                if k in pet_metrics:
                    out[k] = v
        for w in windows:
            lo, hi = clinical.window_bounds(w)
            ws = _window_sums(t, p, nonempty, lo, hi, cfg, device, cache)
            out[f"psnr_{w}"] = _psnr(ws.mse(r, clipped=True), hi - lo)
            out[f"ssim_{w}"] = ws.ssim(r)

    lesions = []
    for c in components:
        gt_v, pr_v = c.values(t).astype(np.float64), c.values(p).astype(np.float64)
        mse = float(np.mean((gt_v - pr_v) ** 2))
        if window:
            mse_c = float(np.mean((np.clip(gt_v, *window) - np.clip(pr_v, *window)) ** 2))
        else:
            mse_c = mse
        L = float(gt_v.max() - gt_v.min()) if dr.kind == "gt_range" else L_ssim
        entry: dict[str, Any] = {
            "index": c.index,
            "n_voxels": c.n_voxels,
            "centroid": [round(x, 3) for x in c.centroid],
            "psnr": _psnr(mse_c, L) if L > 0 else None,
            "mae": float(np.mean(np.abs(gt_v - pr_v))),
        }
        if sums.ssim_map is not None:
            sm = c.values(sums.ssim_map)
            sm = sm[~np.isnan(sm)]
            entry["ssim"] = float(np.sum(sm, dtype=np.float64) / sm.size) if sm.size else None
        if pet_metrics:
            entry.update({k: v for k, v in clinical.suv_errors(gt_v, pr_v).items() if k in pet_metrics})
        lesions.append(entry)

    # absolute SUV needs metadata: recorded in the convention
    suv_note = None
    if pet_metrics:
        try:
            suv_note = f"SUV factor {clinical.suv_factor(metadata):.6g} g/Bq (weight / decay-corrected dose)"
        except MetricError as exc:
            suv_note = f"absolute SUV unavailable ({exc}); % errors do not depend on it"
    for r, ms in values.items():
        for k, v in list(ms.items()):
            if v is not None and math.isnan(v):
                ms[k] = None
                reasons.setdefault(f"{r}/{k}", "undefined")
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
        "regions": {r: _REGION_TEXT.get(r, "case mask of that name") for r in task.regions},
        "per_lesion": "connected components (26-connectivity) of the lesion mask, largest first",
    }
    if windows:
        convention["ct_windows"] = {w: clinical.CT_WINDOWS[w] for w in windows}
    if suv_note:
        convention["suv"] = suv_note
    return CaseScore(case_id, "default", task.name, task.version, convention, values, reasons, lesions)


def _window_sums(t, p, nonempty, lo, hi, cfg, device, cache):
    from cmsbench.benchmark.metrics.fused import region_sums

    key = ("_window_sums", lo, hi)
    if key not in cache:
        cache[key] = region_sums(t, p, nonempty, ssim_range=hi - lo, ssim_config=cfg, window=(lo, hi), device=device)
    return cache[key]


def _psnr(mse: float, L: float) -> float:
    from cmsbench.benchmark.metrics.pixel import psnr_from_mse

    return psnr_from_mse(mse, L)


_REGION_TEXT = {
    "global": "every voxel",
    "brain": "case 'brain' mask",
    "head": "case 'head' mask",
    "body": "case 'body' mask",
    "lesion": "case 'lesion' mask, else union of necrotic/edema/enhancing",
    "necrotic": "case 'necrotic' mask",
    "edema": "case 'edema' mask",
    "enhancing": "case 'enhancing' mask",
    "healthy": "first of brain/head/body minus the lesion",
    "lesion_ring": "lesion dilated by a radius-3 ball, minus the lesion, inside brain/head/body",
    "bone": "ground truth > 300 HU inside 'body'",
}

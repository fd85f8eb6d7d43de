"""Synthetic result records, for tests, demos and plugin authors.

``make_record`` builds a typed :class:`~cmsbench.results.RunRecord` (the runner's format, through the
same classes); ``write_record`` stores it where the runner would (``<results>/<task>/<method>/<run_id>.json``);
``draw_scores`` draws per-case scores with known means.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.results import RunRecord
from cmsbench.results.identity import method_label

DEFAULT_CONVENTION = {"data_range": "fixed 1.0", "ssim": "gaussian sigma 1.5, 11x11", "mask": "region voxels"}


def _spec(task: str, regions: Sequence[str], metrics: Sequence[str]) -> dict[str, Any]:
    return {
        "name": task,
        "version": "1.0",
        "regions": list(regions),
        "metrics": list(metrics),
        "main_metric": metrics[0],
        "main_region": regions[0],
        "units": "a.u.",
    }


def draw_scores(
    case_ids: Sequence[str],
    means: Mapping[str, Mapping[str, float]],
    sd: float | Mapping[str, float] = 1.0,
    seed: int = 0,
) -> dict[str, dict[str, dict[str, float]]]:
    """case_id -> region -> metric -> value, normal around ``means[region][metric]`` (sd per metric or one)."""
    rng = np.random.default_rng(seed)
    out: dict[str, dict[str, dict[str, float]]] = {cid: {} for cid in case_ids}
    for region, per_metric in means.items():
        for metric, mu in per_metric.items():
            s = sd[metric] if isinstance(sd, Mapping) else sd
            draws = rng.normal(mu, s, size=len(case_ids))
            for cid, v in zip(case_ids, draws, strict=True):
                out[cid].setdefault(region, {})[metric] = float(v)
    return out


def make_record(
    scores: Mapping[str, Mapping[str, Mapping[str, Any]]],
    *,
    task: str = "brats_flair",
    method: str = "method",
    version: str = "1",
    options: Mapping[str, Any] | None = None,
    card: Mapping[str, Any] | None = None,
    seed: int = 0,
    task_version: str = "1.0",
    parameters: Mapping[str, Any] | None = None,
    test_hash: str = "0123456789abcdef",
    data_kind: str = "phantom",
    data_path: str | None = None,
    mode: str = "default",
    convention: Any = None,
    created: str = "2024-01-01T00:00:00+00:00",
    status: str = "complete",
    failed: Mapping[str, str] | None = None,
    predictions: Mapping[str, str] | None = None,
    spec: Mapping[str, Any] | None = None,
    predict_s: float = 0.5,
    fit_s: float = 10.0,
    memory: Mapping[str, Any] | None = None,
) -> RunRecord:
    """A result record in the runner's format with the given per-case ``scores`` (case -> region -> metric).

    ``failed`` adds failed cases (case -> error); ``predictions`` adds ``case["prediction"]`` paths.
    """
    case_ids = list(scores) + [c for c in (failed or {}) if c not in scores]
    regions = list(dict.fromkeys(r for s in scores.values() for r in s)) or ["global"]
    metrics = list(dict.fromkeys(m for s in scores.values() for r in s.values() for m in r)) or ["psnr"]
    task_spec = dict(spec) if spec is not None else _spec(task, regions, metrics)
    task_spec["version"] = task_version
    run_id = hashlib.sha256(
        json.dumps(
            [task, method, version, dict(options or {}), seed, test_hash, data_kind, mode, task_version, created],
            sort_keys=True,
            default=str,
        ).encode()
    ).hexdigest()[:16]
    cases: dict[str, Any] = {}
    for cid in case_ids:
        if cid in (failed or {}):
            cases[cid] = {"status": "failed", "stage": "predict", "error": failed[cid], "timing": {"load_s": 0.01}}
            continue
        entry: dict[str, Any] = {
            "status": "ok",
            "timing": {"load_s": 0.01, "predict_s": predict_s, "score_s": 0.02},
            "scores": {r: dict(v) for r, v in scores[cid].items()},
        }
        if predictions and cid in predictions:
            entry["prediction"] = str(predictions[cid])
        cases[cid] = entry
    return RunRecord.model_validate({
        "run_id": run_id,
        "status": status,
        "created": created,
        "task": {
            "name": task,
            "version": task_version,
            "fingerprint": "f" * 16,
            "parameters": dict(parameters or {}),
            "split_variant": "default",
            "spec": task_spec,
        },
        "method": {
            "name": method,
            "version": version,
            "options": dict(options or {}),
            "card": dict(card)
            if card is not None
            else {"name": method, "version": version, "summary": f"synthetic {method}"},
        },
        "seed": seed,
        "samples": 1,
        "split": {
            "test_hash": test_hash,
            "counts": {"train": 0, "val": 0, "test": len(case_ids)},
            "test_ids": case_ids,
        },
        "data": {
            "kind": data_kind,
            "path": data_path or "/nonexistent",
            "fingerprint": "d" * 16,
            "phantom": {"dataset": task} if data_kind == "phantom" else None,
            "n_cases": len(case_ids),
        },
        "environment": {"cmsbench": "synthetic", "device": "cpu"},
        "scoring": {"mode": mode, "convention": convention if convention is not None else dict(DEFAULT_CONVENTION)},
        "timing": {"load_s": 0.1, "fit_s": fit_s, "fit_cached": False, "total_s": fit_s + predict_s * len(case_ids)},
        "memory": dict(memory)
        if memory is not None
        else {"cpu_peak_rss": 512 * 2**20, "cpu_rss": 400 * 2**20, "gpu_peak_allocated": None},
        "cases": cases,
    })


def write_record(results: str | Path, record: RunRecord | Mapping[str, Any]) -> Path:
    """Write ``record`` where the runner would put it; returns the path."""
    if not isinstance(record, RunRecord):
        from cmsbench.results import record_from_dict

        record = record_from_dict(dict(record))
    path = Path(results) / record.task.name / method_label(record.method.name) / f"{record.run_id}.json"
    return record.write(path)


#: The three methods of :func:`demo_results`: name -> (PSNR, SSIM, MAE) true means in the brain.
DEMO_METHODS = {"unet": (28.0, 0.85, 0.050), "pix2pix": (27.7, 0.84, 0.052), "linear": (25.0, 0.78, 0.070)}


def demo_results(
    results: str | Path,
    n_cases: int = 25,
    seed: int = 0,
    task: str = "brats_flair",
    methods: Mapping[str, tuple[float, float, float]] | None = None,
    **record_kwargs: Any,
) -> list[Path]:
    """Write one record per method with per-case PSNR/SSIM/MAE in ``brain`` and ``lesion`` drawn around known means.

    The case effect (some cases are harder for every method) is shared, as in real benchmarks.
    """
    rng = np.random.default_rng(seed)
    ids = [f"case{i:03d}" for i in range(n_cases)]
    hardness = rng.normal(0.0, 1.0, n_cases)
    paths = []
    for name, (psnr, ssim, mae) in (methods or DEMO_METHODS).items():
        scores: dict[str, dict[str, dict[str, float]]] = {}
        for i, cid in enumerate(ids):
            e = rng.normal(0.0, 1.0, 3)
            brain = {
                "psnr": psnr - 1.5 * hardness[i] + 0.6 * e[0],
                "ssim": ssim - 0.03 * hardness[i] + 0.01 * e[1],
                "mae": mae + 0.01 * hardness[i] + 0.004 * e[2],
            }
            lesion = {
                "psnr": brain["psnr"] - 3.0 + 0.8 * rng.normal(),
                "ssim": brain["ssim"] - 0.1,
                "mae": brain["mae"] * 1.6,
            }
            scores[cid] = {"brain": brain, "lesion": lesion}
        rec = make_record(scores, task=task, method=name, **record_kwargs)
        paths.append(write_record(results, rec))
    return paths


def demo_with_images(
    results: str | Path, data_root: str | Path, n_subjects: int = 12, noise: Mapping[str, float] | None = None
) -> list[Path]:
    """A tiny BraTS-layout dataset, noisy predictions saved as NIfTI, and records that point at both.

    Scores are simple numpy PSNR (data range = target max) and MAE in the brain mask, not the scorer's.
    """
    from cmsbench.tasks.dataset import open_dataset
    from cmsbench.tasks.io.nifti import write_nifti
    from cmsbench.tasks.registry import get_task
    from cmsbench.testing import layouts

    data_root = Path(data_root)
    layouts.write_brats(data_root, n=n_subjects)
    task = get_task("brats_flair")
    dataset = open_dataset(task, data_root)
    info = dataset.describe_source()
    test_ids = list(dataset.case_ids("test"))
    paths = []
    for k, (name, sigma) in enumerate((noise or {"unet": 0.05, "linear": 0.15}).items()):
        rng = np.random.default_rng(k)
        scores, preds = {}, {}
        for cid in test_ids:
            case = dataset.load_case(cid)
            assert case.target is not None
            target = np.asarray(case.target.data, dtype=np.float32)
            scale = float(np.abs(target).max()) or 1.0
            pred = (target + rng.normal(0.0, sigma * scale, target.shape)).astype(np.float32)
            pred_path = write_nifti(Path(results) / "predictions" / name / f"{cid}.nii.gz", pred, case.target.affine)
            preds[cid] = str(pred_path)
            brain = np.asarray(case.masks["brain"], dtype=bool)
            err = pred[brain] - target[brain]
            mse = float(np.mean(err**2))
            scores[cid] = {"brain": {"psnr": float(10 * np.log10(scale**2 / mse)), "mae": float(np.mean(np.abs(err)))}}
        rec = make_record(
            scores,
            task="brats_flair",
            method=name,
            test_hash=dataset.split.test_hash,
            data_kind=info["kind"],
            data_path=str(data_root),
            predictions=preds,
            spec=task.to_dict(),
            task_version=task.version,
        )
        paths.append(write_record(results, rec))
    return paths

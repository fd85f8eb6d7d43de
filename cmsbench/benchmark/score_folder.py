"""``cmsbench score``: score a folder of predictions made by any pipeline under the standard protocol.

Predictions are ``<case_id>.nii.gz`` (or ``.nii``) on the target's grid. Missing, extra, misnamed and
misshapen files are reported by name; every good file is still scored. The output is a result record
(method ``external:<folder name>``) that the leaderboard reads like any other.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.benchmark.environment import environment
from cmsbench.benchmark.records import SCHEMA, write_json_atomic
from cmsbench.errors import CmsbenchError, DataError
from cmsbench.tasks.dataset import open_dataset
from cmsbench.tasks.datasource import resolve_data_root
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.registry import get_task


@dataclass
class ScoreFolderResult:
    """The record written (or that would be), where, and the problems found."""

    record: dict[str, Any]
    out: Path | None
    problems: list[str] = field(default_factory=list)


def _case_id_of(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def score_folder(task_name: str, predictions: Path, *, data_root: str | None = None, mode: str = "default",
                 out: Path | None = None, prediction_units: str = "task", split: str = "default") -> ScoreFolderResult:
    """Score ``predictions`` against ``task``'s test split; see the module docstring."""
    from cmsbench.benchmark.scorer import score_case

    task = get_task(task_name).with_split(split)
    if not predictions.is_dir():
        raise DataError(f"predictions folder {predictions} does not exist")
    root, _ = resolve_data_root(task, data_root)
    dataset = open_dataset(task, root)
    test_ids = list(dataset.split.test)
    files = {_case_id_of(p): p for p in sorted(predictions.iterdir())
             if p.is_file() and p.name.endswith((".nii.gz", ".nii"))}
    others = [p.name for p in sorted(predictions.iterdir()) if p.is_file() and not p.name.endswith((".nii.gz", ".nii"))]
    problems: list[str] = [f"{name}: not a NIfTI file (expected <case_id>.nii.gz); ignored" for name in others]
    all_ids = set(dataset.refs)
    for cid in sorted(set(files) - set(test_ids)):
        if cid in all_ids:
            problems.append(f"{files[cid].name}: case {cid!r} is not in the test split (it is a train/val case); ignored")
        else:
            close = difflib.get_close_matches(cid, test_ids, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            problems.append(f"{files[cid].name}: no test case named {cid!r}; ignored.{hint}")
    record: dict[str, Any] = {
        "schema": SCHEMA, "run_id": f"external-{predictions.name}", "status": "running",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": {"name": task.name, "version": task.version, "fingerprint": task.fingerprint(),
                 "parameters": dict(task.parameters), "split_variant": split, "spec": task.to_dict()},
        "method": {"name": f"external:{predictions.name}", "version": "", "options": {},
                   "card": {"summary": f"predictions from {predictions}"}},
        "seed": None, "samples": 1,
        "split": {"test_hash": dataset.split.test_hash, "counts": dataset.split.counts(), "test_ids": test_ids},
        "data": dataset.describe_source(), "environment": environment("cpu"),
        "scoring": {"mode": mode, "prediction_units": prediction_units}, "timing": {}, "memory": {}, "cases": {},
    }
    for cid in test_ids:
        if cid not in files:
            problems.append(f"missing prediction for test case {cid!r} (expected {cid}.nii.gz)")
            record["cases"][cid] = {"status": "failed", "stage": "predict", "error": "missing prediction file"}
            continue
        try:
            case = dataset.load_case(cid)
            assert case.target is not None
            pred = read_nifti(files[cid], modality=task.target, units=task.units, subject=cid)
            if pred.shape != case.target.shape:
                raise DataError(f"{files[cid].name}: shape {pred.shape} but the target of {cid!r} has shape "
                                f"{case.target.shape}; predictions must be on the target's grid")
            if not np.allclose(pred.affine, case.target.affine, atol=1e-3):
                raise DataError(f"{files[cid].name}: affine differs from the target's; predictions must be on the "
                                "target's grid (same affine)")
            data = np.asarray(pred.data, dtype=np.float32)
            if prediction_units == "raw" and task.normalisation.kind != "none":
                data = data / np.float32(case.metadata["normalisation"]["divisors"]["target"])
            t = time.perf_counter()
            score = score_case(np.asarray(case.target.data), data, case.masks, task, mode=mode, case_id=cid,
                               metadata=case.metadata).to_dict()
            convention = dict(score.get("convention") or {})
            entry = {"status": "ok", "scores": score.get("values", {}), "nan_reasons": score.get("nan_reasons", {}),
                     "timing": {"score_s": time.perf_counter() - t}}
            if "suv" in convention:  # case-specific: kept with the case
                entry["suv"] = convention.pop("suv")
            record["scoring"]["convention"] = convention
            record["cases"][cid] = entry
        except CmsbenchError as exc:
            problems.append(str(exc))
            record["cases"][cid] = {"status": "failed", "stage": "score", "error": str(exc)}
    record["status"] = "complete" if not problems else "complete_with_failures"
    record["problems"] = problems
    if out is not None:
        write_json_atomic(out, record)
    return ScoreFolderResult(record, out, problems)

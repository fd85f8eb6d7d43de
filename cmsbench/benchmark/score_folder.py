"""``cmsbench score``: score a folder of predictions made by any pipeline under the standard protocol.

Predictions are ``<case_id>.nii.gz`` (or ``.nii``) on the target's grid.

- Units (``prediction_units``): ``"dataset"`` (default) means the intensity scale of the dataset's own
  files, which is what every external pipeline writes; MR predictions are then divided by the ground
  truth's normalisation divisor, exactly as the target is. ``"task"``: already in the task's units.
- Files for cases outside the test split (train/val cases, unknown names, non-NIfTI files) are
  warnings: they are listed and ignored (exit 0).
- A missing, unreadable, misshapen or non-finite test prediction is an error for that case (exit 1);
  every good case is still scored.
- A prediction whose median in the task's main region differs from the target's by more than a factor
  :data:`SCALE_WARNING_FACTOR` gets a warning naming the case and the likely cause.

With ``downstream`` the segmenter (default: the built-in ``segresnet``, trained on the task's train split
or loaded from its cache) segments each test case's real images and the images with the prediction
substituted, and the segmentation metrics are added (:mod:`cmsbench.benchmark.downstream`).

Cases that a run already stored in the case cache are read from it; a score stores none (a one-off pass:
storing a BraTS-size case writes ~100 MB, which cost more than reading its files). The next case is read
while the current one is scored (two ahead, two threads).

The result is a record (method ``external:<folder name>``) that the leaderboard reads like any other.
"""

from __future__ import annotations

import difflib
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from cmsbench.benchmark.contract import check_prediction
from cmsbench.errors import CmsbenchError, DataError
from cmsbench.results import CaseRecord, RunIdentity, RunRecord
from cmsbench.tasks.dataset import open_dataset
from cmsbench.tasks.datasource import resolve_data_root
from cmsbench.tasks.io.nifti import read_nifti
from cmsbench.tasks.registry import get_task

PREDICTION_UNITS = ("dataset", "task")
SCALE_WARNING_FACTOR = 10.0


@dataclass
class ScoreFolderResult:
    """The record, where it was written, the errors (exit 1) and the warnings (exit 0)."""

    record: RunRecord
    out: Path | None
    problems: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _case_id_of(path: Path) -> str:
    name = path.name
    for suffix in (".nii.gz", ".nii"):
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


def _scale_warning(case_id: str, target: np.ndarray, prediction: np.ndarray, mask, units: str) -> str | None:
    # medians of every 8th voxel of the region: exact enough for a factor-10 check, and cheap
    idx = np.flatnonzero(mask)[::8] if mask is not None else np.arange(0, target.size, 8)
    if idx.size == 0:
        return None
    t, p = target.reshape(-1)[idx], prediction.reshape(-1)[idx]
    mt, mp = float(np.median(t)), float(np.median(p))
    if mt == 0 or mp == 0 or not (np.isfinite(mt) and np.isfinite(mp)):
        return None
    ratio = mp / mt
    if 1 / SCALE_WARNING_FACTOR <= abs(ratio) <= SCALE_WARNING_FACTOR:
        return None
    other = "task" if units == "dataset" else "dataset"
    return (f"case {case_id!r}: the prediction's median in the main region is {ratio:.3g} x the target's; "
            f"likely the wrong intensity scale (predictions read as '{units}' units; if they are in {other} "
            f"units pass --prediction-units {other}, or check the pipeline's output scaling)")


def score_folder(task_name: str, predictions: Path, *, data_root: str | None = None, mode: str = "default",
                 out: Path | None = None, prediction_units: str = "dataset",
                 split: str = "default", downstream: bool = False, segmenter: str | None = None,
                 segmenter_options: dict | None = None, seed: int = 0, device: str = "cpu",
                 stage_progress=None) -> ScoreFolderResult:
    """Score ``predictions`` against ``task``'s test split; see the module docstring."""
    from cmsbench.benchmark.metrics.regions import build_region
    from cmsbench.benchmark.metrics.registry import validate_names
    from cmsbench.benchmark.runner import (
        Prefetcher,
        case_entry,
        downstream_segmentation,
        new_record,
        prepare_downstream,
        resolve_downstream,
    )
    from cmsbench.benchmark.scorer import score_case

    if prediction_units == "raw":  # the 0.1 spelling
        prediction_units = "dataset"
    if prediction_units not in PREDICTION_UNITS:
        raise CmsbenchError(f"unknown prediction units {prediction_units!r}; use one of {PREDICTION_UNITS}")
    task = get_task(task_name).with_split(split)
    validate_names(task, mode)
    plan = resolve_downstream(downstream, segmenter, segmenter_options, mode, task)
    if not predictions.is_dir():
        raise DataError(f"predictions folder {predictions} does not exist")
    root, _ = resolve_data_root(task, data_root)
    dataset = open_dataset(task, root, cache_writes=False)  # a one-off pass: read cached cases, store none
    test_ids = list(dataset.split.test)
    entries = sorted(predictions.iterdir())
    nifti = [p for p in entries if p.is_file() and p.name.endswith((".nii.gz", ".nii"))]
    files = {_case_id_of(p): p for p in nifti}
    ambiguous = {cid for cid in files if sum(_case_id_of(p) == cid for p in nifti) > 1}
    warnings = [f"{p.name}: not a NIfTI file (expected <case_id>.nii.gz); ignored"
                for p in entries if p.is_file() and not p.name.endswith((".nii.gz", ".nii"))]
    all_ids = set(dataset.refs)
    for cid in sorted(set(files) - set(test_ids)):
        if cid in all_ids:
            warnings.append(f"{files[cid].name}: case {cid!r} is not in the test split (a train/val case); ignored")
        else:
            close = difflib.get_close_matches(cid, test_ids, n=1, cutoff=0.6)
            hint = f" Did you mean {close[0]!r}?" if close else ""
            warnings.append(f"{files[cid].name}: no test case named {cid!r}; ignored.{hint}")
    label = f"external:{predictions.name}"
    identity = RunIdentity(task=task.name, task_fingerprint=task.fingerprint(), method=label, method_version="",
                           options={"predictions": str(predictions.resolve()), "prediction_units": prediction_units},
                           seed=None, split_hash=dataset.split.test_hash, data_fingerprint=dataset.fingerprint(),
                           mode=mode, downstream=plan.label() if plan is not None else None)
    record = new_record(task, dataset, identity,
                        {"name": label, "version": "", "options": {}, "card": {"summary": f"predictions from {predictions}"},
                         "entry": str(predictions)}, split_variant=split, device="cpu",
                        prediction_units=prediction_units)
    problems: list[str] = []
    if plan is not None:
        t = time.perf_counter()
        record.scoring.downstream = prepare_downstream(plan, dataset, seed=seed, device=device,
                                                       progress=stage_progress)
        record.timing["segmenter_prepare_s"] = time.perf_counter() - t
    present = [cid for cid in test_ids if cid in files and cid not in ambiguous]
    for cid in test_ids:
        if cid in ambiguous:
            problems.append(f"both {cid}.nii and {cid}.nii.gz are in {predictions}: keep one (the case is not scored)")
            record.cases[cid] = CaseRecord(status="failed", stage="predict", error="two prediction files for the case")
            continue
        if cid not in files:
            problems.append(f"missing prediction for test case {cid!r} (expected {cid}.nii.gz)")
            record.cases[cid] = CaseRecord(status="failed", stage="predict", error="missing prediction file")

    def load(cid: str):
        """Read and check one case and its prediction (in the prefetch thread, beside scoring)."""
        case = dataset.load_case(cid)
        assert case.target is not None
        pred = read_nifti(files[cid], modality=task.target, units=task.units, subject=cid)
        data = check_prediction(pred.data, case.target.shape, case_id=cid, source=f"file {files[cid]}",
                                affine=pred.affine, target_affine=case.target.affine)
        data = np.asarray(data, dtype=np.float32)
        if prediction_units == "dataset" and task.normalisation.kind != "none":
            divisor = np.float32(case.metadata["normalisation"]["divisors"]["target"])
            if data is pred.data and data.flags.writeable:  # our own fresh array: divide in place
                data /= divisor
            else:
                data = data / divisor
        target = np.asarray(case.target.data)
        main = build_region(task.main_region, target, case.masks, case_id=cid)
        return case, target, data, _scale_warning(cid, target, data, main, prediction_units)

    # two cases read ahead, in two threads: reading (gzip, checks, normalisation, the case cache) costs
    # more than scoring, and most of it releases the GIL
    prefetch = Prefetcher(load, present, ahead=2)
    try:
        for index, cid in enumerate(present):
            timing: dict[str, float] = {}
            try:
                t0 = time.perf_counter()
                case, target, data, warn = prefetch.get(index)
                timing["load_s"] = time.perf_counter() - t0
                segmentation = downstream_segmentation(plan, case, case.target.with_data(data),
                                                       dataset.case_digest(cid), timing)
                t1 = time.perf_counter()
                score = score_case(target, data, case.masks, task, mode=mode, case_id=cid, metadata=case.metadata,
                                   segmentation=segmentation, extra_metrics=plan.metrics if plan else ())
                timing["score_s"] = time.perf_counter() - t1
                entry = case_entry(score, timing, record)
                if warn:
                    warnings.append(warn)
                    entry.warnings.append(warn)
                entry.prediction = str(files[cid])
                entry.data_digest = dataset.case_digest(cid)
                record.cases[cid] = entry
            except CmsbenchError as exc:
                problems.append(str(exc))
                record.cases[cid] = CaseRecord(status="failed", stage="score", error=str(exc), timing=timing)
    finally:
        prefetch.close()
    record.cases = {cid: record.cases[cid] for cid in test_ids if cid in record.cases}
    record.status = "complete" if not problems else "complete_with_failures"
    record.problems = problems
    record.warnings = warnings
    if out is not None:
        record.write(out)
    return ScoreFolderResult(record, out, problems, warnings)

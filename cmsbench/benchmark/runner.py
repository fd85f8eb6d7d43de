"""The runner behind ``cmsbench run``: data -> fit (or cached fitted state) -> predict -> score -> record.

Guarantees: a failure in one case (the method raises, returns the wrong shape/dtype, NaN or Inf, or
the case's files are broken) is recorded with its reason and the other cases still run; the record is
rewritten atomically after every case, so re-running the same command after an interruption (Ctrl-C,
kill -9) skips the cases already done and finishes the rest, each case exactly once.
"""

from __future__ import annotations

import hashlib
import json
import logging
import random
import re
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.baselines.base import Method
from cmsbench.baselines.registry import get_method_class
from cmsbench.benchmark.environment import environment, resolve_device
from cmsbench.benchmark.records import SCHEMA, load_record, write_json_atomic
from cmsbench.errors import CmsbenchError, DataError, MethodError
from cmsbench.paths import cache_home
from cmsbench.tasks.dataset import Dataset, open_dataset
from cmsbench.tasks.datasource import resolve_data_root
from cmsbench.tasks.registry import get_task
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case, Volume

log = logging.getLogger(__name__)


@dataclass
class RunConfig:
    """Everything ``cmsbench run`` takes."""

    task: str
    method: str
    data_root: str | None = None
    seed: int = 0
    device: str = "auto"
    results: Path = Path("results")
    save_predictions: bool = False
    options: dict[str, Any] = field(default_factory=dict)
    task_parameters: dict[str, Any] = field(default_factory=dict)
    split_variant: str = "default"
    mode: str = "default"
    samples: int = 1
    max_cases: int | None = None
    refit: bool = False


@dataclass
class RunOutcome:
    """Where the record is, the record itself, and the cases that failed."""

    path: Path
    record: dict[str, Any]

    @property
    def failed(self) -> dict[str, str]:
        return {cid: c.get("error", "") for cid, c in self.record["cases"].items() if c.get("status") != "ok"}


class LazyCases(Sequence[Case]):
    """The cases of a split, loaded (through the dataset cache) when indexed."""

    def __init__(self, dataset: Dataset, ids: Sequence[str]) -> None:
        self.dataset = dataset
        self.ids = list(ids)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> Case:  # type: ignore[override]
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(len(self)))]  # type: ignore[return-value]
        return self.dataset.load_case(self.ids[index])

    def __iter__(self) -> Iterator[Case]:
        for i in range(len(self)):
            yield self[i]


def _digest(obj: Any) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()[:16]


def method_label(name: str) -> str:
    """A file-system-safe folder name for a method given by name, ``module:Class`` or ``file.py:Class``."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name.split("/")[-1]).strip("_") or "method"


def seed_everything(seed: int) -> None:
    """Seed Python, numpy and torch (if imported)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    import sys

    if "torch" in sys.modules:
        import torch

        torch.manual_seed(seed)


def case_seed(seed: int, case_id: str) -> int:
    """A per-case seed derived from the run seed and the case ID."""
    return int(hashlib.sha256(f"{seed}:{case_id}".encode()).hexdigest()[:8], 16)


def validate_prediction(prediction: Any, target: Volume, case_id: str, method: str) -> Volume:
    """Check a method's output against the target grid; a :class:`MethodError` says what is wrong."""
    if not isinstance(prediction, Volume):
        raise MethodError(f"{method} returned {type(prediction).__name__} for case {case_id!r}, not a Volume")
    data = np.asarray(prediction.data)
    if data.shape != target.shape:
        raise MethodError(f"{method} returned shape {data.shape} for case {case_id!r}; the target has shape {target.shape}")
    if not np.issubdtype(data.dtype, np.floating):
        raise MethodError(f"{method} returned dtype {data.dtype} for case {case_id!r}; a floating-point volume is expected")
    bad = int(np.size(data) - np.count_nonzero(np.isfinite(data)))
    if bad:
        raise MethodError(f"{method} returned {bad} NaN/Inf voxel(s) for case {case_id!r}")
    if not np.allclose(prediction.affine, target.affine, atol=1e-3):
        raise MethodError(f"{method} returned a volume whose affine differs from the target's for case {case_id!r}; "
                          "predict on the inputs' grid")
    return prediction


def fitted_state_dir(task: TaskSpec, method_name: str, method_cls: type[Method], options: Mapping[str, Any],
                     seed: int, split_hash: str, data_fingerprint: str) -> Path:
    """Cache folder of a fitted state, keyed by task, method, options, seed, split and data."""
    key = _digest({"task": task.fingerprint(), "method": method_name, "version": method_cls.card.version,
                   "options": dict(options), "seed": seed, "split": split_hash, "data": data_fingerprint})
    return cache_home() / "fitted" / method_label(method_name) / key


def _prepare(config: RunConfig) -> tuple[TaskSpec, type[Method], Dataset]:
    task = get_task(config.task)
    if config.task_parameters:
        task = task.with_parameters(**config.task_parameters)
    task = task.with_split(config.split_variant)
    method_cls = get_method_class(config.method)
    method_cls(**config.options)  # validate options before touching data
    root, is_phantom = resolve_data_root(task, config.data_root)
    if is_phantom:
        log.warning("no --data-root given: task %r runs on the embedded phantom dataset at %s "
                    "(numbers are phantom numbers, not %s numbers)", task.name, root, task.dataset.name)
    return task, method_cls, open_dataset(task, root)


def _fit(method_cls: type[Method], config: RunConfig, task: TaskSpec, dataset: Dataset, device: str) -> tuple[Method, dict[str, Any]]:
    folder = fitted_state_dir(task, config.method, method_cls, config.options, config.seed,
                              dataset.split.test_hash, dataset.fingerprint())
    info: dict[str, Any] = {"state_dir": str(folder)}
    if not config.refit and (folder / "meta.json").exists():
        method = method_cls.load(folder)
        method.device = device
        info.update(cached=True, fit_s=0.0)
        return method, info
    method = method_cls(**config.options)
    seed_everything(config.seed)
    start = time.perf_counter()
    train = LazyCases(dataset, dataset.case_ids("train"))
    val = LazyCases(dataset, dataset.case_ids("val"))
    returned = method.fit(train, val, device=device, seed=config.seed)
    if returned is not method:
        raise MethodError(f"{config.method}.fit must return the method itself (got {type(returned).__name__})")
    info.update(cached=False, fit_s=time.perf_counter() - start)
    method.save(folder)
    return method, info


def _base_record(config: RunConfig, task: TaskSpec, method: Method, method_cls: type[Method], dataset: Dataset,
                 device: str, run_id: str) -> dict[str, Any]:
    return {
        "schema": SCHEMA,
        "run_id": run_id,
        "status": "running",
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "task": {"name": task.name, "version": task.version, "fingerprint": task.fingerprint(),
                 "parameters": dict(task.parameters), "split_variant": config.split_variant, "spec": task.to_dict()},
        "method": {"name": config.method, "version": method_cls.card.version, "options": dict(method.options),
                   "card": method_cls.card.to_dict()},
        "seed": config.seed,
        "samples": config.samples,
        "split": {"test_hash": dataset.split.test_hash, "counts": dataset.split.counts(),
                  "test_ids": list(dataset.split.test)},
        "data": dataset.describe_source(),
        "environment": environment(device),
        "scoring": {"mode": config.mode},
        "timing": {},
        "memory": {},
        "cases": {},
    }


def run(config: RunConfig, progress: Callable[[int, int, str], None] | None = None) -> RunOutcome:
    """Run one (task, method, seed) and return the record; resumes an interrupted run of the same config."""
    from cmsbench.benchmark.scorer import score_case
    from cmsbench.benchmark.timing import peak_memory

    device = resolve_device(config.device)
    t0 = time.perf_counter()
    task, method_cls, dataset = _prepare(config)
    load_s = time.perf_counter() - t0
    run_id = _digest({"task": task.fingerprint(), "method": config.method, "version": method_cls.card.version,
                      "options": config.options, "seed": config.seed, "split": dataset.split.test_hash,
                      "data": dataset.fingerprint(), "mode": config.mode, "samples": config.samples})
    path = Path(config.results) / task.name / method_label(config.method) / f"{run_id}.json"
    test_ids = list(dataset.case_ids("test"))
    if config.max_cases is not None:
        test_ids = test_ids[: config.max_cases]

    record: dict[str, Any] | None = None
    if path.exists():
        try:
            record = load_record(path)
        except DataError as exc:
            log.warning("ignoring unreadable record %s (%s); starting again", path, exc)
    done = {cid for cid, c in (record or {}).get("cases", {}).items() if c.get("status") == "ok"}
    if record is not None and all(cid in done for cid in test_ids):
        log.info("run %s is already complete: %s", run_id, path)
        return RunOutcome(path, record)

    method, fit_info = _fit(method_cls, config, task, dataset, device)
    if record is None:
        record = _base_record(config, task, method, method_cls, dataset, device, run_id)
    elif done:
        log.warning("resuming %s: %d of %d cases already done", path, len(done), len(test_ids))
    record["status"] = "running"
    record["timing"].update({"load_s": load_s, "fit_s": fit_info["fit_s"], "fit_cached": fit_info["cached"]})
    record["fitted_state"] = fit_info["state_dir"]
    write_json_atomic(path, record)

    pred_dir = path.with_suffix("").with_name(f"{run_id}_predictions")
    todo = [cid for cid in test_ids if cid not in done]
    for index, case_id in enumerate(todo):
        if progress:
            progress(index, len(todo), case_id)
        entry = _run_case(case_id, dataset, method, config, task, pred_dir, score_case, record)
        record["cases"][case_id] = entry
        record["memory"] = peak_memory(device)
        write_json_atomic(path, record)
    if progress:
        progress(len(todo), len(todo), "")
    failed = [cid for cid in test_ids if record["cases"].get(cid, {}).get("status") != "ok"]
    record["status"] = "complete" if not failed else "complete_with_failures"
    record["timing"]["total_s"] = record["timing"].get("total_s", 0.0) + (time.perf_counter() - t0)
    write_json_atomic(path, record)
    return RunOutcome(path, record)


def _run_case(case_id: str, dataset: Dataset, method: Method, config: RunConfig, task: TaskSpec, pred_dir: Path,
              score_case: Callable[..., Any], record: dict[str, Any]) -> dict[str, Any]:
    timing: dict[str, float] = {}
    try:
        t = time.perf_counter()
        case = dataset.load_case(case_id)
        timing["load_s"] = time.perf_counter() - t
    except CmsbenchError as exc:
        return {"status": "failed", "stage": "load", "error": str(exc), "timing": timing}
    assert case.target is not None
    predictions = []
    try:
        for sample in range(max(1, config.samples)):
            seed_everything(case_seed(config.seed + sample, case_id))
            t = time.perf_counter()
            out = method.predict(case.inputs)
            timing.setdefault("predict_s", 0.0)
            timing["predict_s"] += time.perf_counter() - t
            predictions.append(validate_prediction(out, case.target, case_id, config.method))
            nfe = getattr(method, "last_nfe", None)
            if nfe is not None:  # denoiser evaluations of a diffusion sampler
                timing["nfe"] = timing.get("nfe", 0) + int(nfe)
    except MethodError as exc:
        return {"status": "failed", "stage": "predict", "error": str(exc), "timing": timing}
    except Exception as exc:  # a plugin may raise anything: record it, keep going
        tail = "".join(traceback.format_exception(exc)[-3:]).strip()
        return {"status": "failed", "stage": "predict",
                "error": f"{config.method} raised {type(exc).__name__} on case {case_id!r}: {exc}", "traceback": tail,
                "timing": timing}
    prediction = predictions[0]
    entry: dict[str, Any] = {"status": "ok", "timing": timing}
    if len(predictions) > 1:
        stack = np.stack([np.asarray(p.data, dtype=np.float32) for p in predictions])
        prediction = prediction.with_data(stack.mean(axis=0))
        entry["sample_spread"] = float(np.mean(stack.std(axis=0)))
    try:
        t = time.perf_counter()
        score = score_case(np.asarray(case.target.data), np.asarray(prediction.data), case.masks, task,
                           mode=config.mode, case_id=case_id, metadata=case.metadata)
        timing["score_s"] = time.perf_counter() - t
    except CmsbenchError as exc:
        return {"status": "failed", "stage": "score", "error": str(exc), "timing": timing}
    scored = score.to_dict()
    convention = dict(scored.get("convention") or {})
    if "suv" in convention:  # case-specific (body weight, dose): kept with the case, not the run's convention
        entry["suv"] = convention.pop("suv")
    record["scoring"]["convention"] = convention
    entry["scores"] = scored.get("values", {})
    if scored.get("nan_reasons"):
        entry["nan_reasons"] = scored["nan_reasons"]
    if scored.get("lesions"):
        entry["lesions"] = scored["lesions"]
    if config.save_predictions:
        from cmsbench.tasks.io.nifti import write_volume

        t = time.perf_counter()
        out_path = write_volume(pred_dir / f"{case_id}.nii.gz", prediction)
        timing["write_s"] = time.perf_counter() - t
        entry["prediction"] = str(out_path)
    return entry

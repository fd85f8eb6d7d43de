"""The runner behind ``cmsbench run``: data -> fit (or cached fitted state) -> predict -> score -> record.

Guarantees: a failure in one case (the method raises, returns the wrong shape/dtype, NaN or Inf, or
the case's files are broken) is recorded with its reason and the other cases still run; the record is
rewritten atomically after every case, so re-running the same command after an interruption (Ctrl-C,
kill -9) skips the cases already done and finishes the rest, each case exactly once.

A run is identified by its :class:`~cmsbench.results.RunIdentity` (:func:`resolve_run`, shared with sweep
planning): the method is recorded by its card name and version, never by the string that found it.
While one case is predicted and scored, the next one is read in a background thread (a bounded
prefetch of one case), so scoring costs little more than reading the files.
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
import traceback
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.baselines.base import Method
from cmsbench.baselines.per_target import PerTargetMethod, check_varying_target
from cmsbench.baselines.registry import get_method_class
from cmsbench.benchmark.contract import check_prediction
from cmsbench.benchmark.environment import environment, resolve_device
from cmsbench.errors import CmsbenchError, DataError, MethodError
from cmsbench.paths import cache_home
from cmsbench.results import CaseRecord, RunIdentity, RunRecord, load_record
from cmsbench.results.identity import digest, method_label
from cmsbench.tasks.dataset import Dataset, open_dataset
from cmsbench.tasks.datasource import resolve_data_root
from cmsbench.tasks.registry import get_task
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case, Volume

log = logging.getLogger(__name__)

#: Default per-case limit on ``predict`` (seconds): generous for every built-in on CPU (the slowest,
#: a diffusion model in its paper configuration, needs minutes per case), it stops a plugin that hangs.
DEFAULT_CASE_TIMEOUT_S = 3600.0


class CaseTimeout(MethodError):
    """``predict`` ran longer than the per-case limit."""


@contextmanager
def time_limit(seconds: float | None, what: str) -> Iterator[None]:
    """Raise :class:`CaseTimeout` in the block after ``seconds`` (SIGALRM; main thread on POSIX only).

    Python code is interrupted at once; a long call into C code is interrupted when it returns.
    """
    import signal
    import threading

    usable = (seconds is not None and seconds > 0 and hasattr(signal, "setitimer")
              and threading.current_thread() is threading.main_thread())
    if not usable:
        yield
        return

    def expired(signum: int, frame: Any) -> None:
        raise CaseTimeout(f"{what} exceeded the per-case time limit of {seconds:g} s "
                          "(raise it with --case-timeout SECONDS, 0 for none)")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.setitimer(signal.ITIMER_REAL, float(seconds))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


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
    metrics: tuple[str, ...] = ()  # extra metrics scored besides the task's
    regions: tuple[str, ...] = ()  # extra regions scored besides the task's
    prefetch: bool = True
    case_timeout_s: float | None = DEFAULT_CASE_TIMEOUT_S  # per-case limit on predict (None: no limit)
    thumbnails: int = 3  # test cases (first in sorted order) drawn as small PNGs beside the record (0: none)
    downstream: bool = False  # also segment real and synthetic images and score the segmentations
    segmenter: str | None = None  # the segmenter for --downstream (default: the built-in segresnet)
    segmenter_options: dict[str, Any] = field(default_factory=dict)


@dataclass
class RunOutcome:
    """Where the record is, the record itself, and the cases that failed."""

    path: Path
    record: RunRecord

    @property
    def failed(self) -> dict[str, str]:
        return self.record.failed_cases()


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
    """A method's output checked against the prediction contract (:mod:`cmsbench.benchmark.contract`)."""
    if not isinstance(prediction, Volume):
        raise MethodError(f"method {method!r} returned {type(prediction).__name__} for case {case_id!r}, not a Volume")
    check_prediction(prediction.data, target.shape, case_id=case_id, source=f"method {method!r}",
                     affine=prediction.affine, target_affine=target.affine)
    return prediction


def fitted_state_dir(task: TaskSpec, method_name: str, method_cls: type[Method], options: Mapping[str, Any],
                     seed: int, split_hash: str, data_fingerprint: str) -> Path:
    """Cache folder of a fitted state, keyed by task, method card, options, seed, split and data."""
    key = digest({"task": task.fingerprint(), "method": method_cls.card.name, "version": method_cls.card.version,
                  "options": dict(options), "seed": seed, "split": split_hash, "data": data_fingerprint})
    return cache_home() / "fitted" / method_label(method_cls.card.name) / key


@dataclass
class ResolvedRun:
    """A configuration resolved to its task, method class, dataset, identity and record path."""

    config: RunConfig
    task: TaskSpec
    method_cls: type[Method]
    options: dict[str, Any]
    dataset: Dataset
    identity: RunIdentity
    downstream: DownstreamPlan | None = None  # what --downstream adds

    @property
    def path(self) -> Path:
        return (Path(self.config.results) / self.task.name / method_label(self.method_cls.card.name)
                / f"{self.identity.run_id()}.json")


def resolve_task(config: RunConfig) -> TaskSpec:
    """The task of a configuration, with its parameters, split variant and extra metrics/regions."""
    task = get_task(config.task)
    if config.task_parameters:
        task = task.with_parameters(**config.task_parameters)
    task = task.with_split(config.split_variant)
    return task.with_scoring(tuple(config.metrics), tuple(config.regions))


def resolve_run(config: RunConfig, *, dataset: Dataset | None = None) -> ResolvedRun:
    """Validate names (task, method, options, mode, metrics, regions) and build the run identity.

    Nothing is fitted. The identity holds the content fingerprint of the train and val cases (what a fit
    depends on) and the test split's hash; each test case's own content digest is recorded with it and
    re-checked when a record is resumed, so a rewritten test file is scored again and a rewritten
    training file makes a new run (and a new fit).
    """
    from cmsbench.benchmark.metrics.registry import validate_names

    task = resolve_task(config)
    validate_names(task, config.mode)
    downstream = resolve_downstream(config.downstream, config.segmenter, config.segmenter_options, config.mode,
                                    task)
    method_cls = get_method_class(config.method)
    check_varying_target(method_cls.card, task)  # a varying-target task needs a method that says how it serves it
    # validates options; full options incl. defaults (late options at their default left out: older identities)
    options = method_cls(**config.options).identity_options()
    if dataset is None:
        root, is_phantom = resolve_data_root(task, config.data_root)
        if is_phantom:
            log.warning("no --data-root given: task %r runs on the embedded phantom dataset at %s "
                        "(numbers are phantom numbers, not %s numbers)", task.name, root, task.dataset.name)
        dataset = open_dataset(task, root)
    if task.superseded_by:
        log.warning("task %r is superseded by %r; its numbers stay valid but new work should use the newer task",
                    task.name, task.superseded_by)
    identity = RunIdentity(
        task=task.name, task_fingerprint=task.fingerprint(), method=method_cls.card.name,
        method_version=method_cls.card.version, options=options, seed=config.seed,
        split_hash=dataset.split.test_hash, data_fingerprint=dataset.fingerprint(("train", "val")),
        samples=config.samples,
        mode=config.mode, max_cases=config.max_cases,
        downstream=downstream.label() if downstream is not None else None,
    )
    return ResolvedRun(config, task, method_cls, options, dataset, identity, downstream)


_TUMOUR_REGIONS = {"necrotic", "edema", "enhancing"}


@dataclass
class DownstreamPlan:
    """What ``--downstream`` adds to a run: a segmenter (scorer) and/or the task's segmenter-free metrics."""

    scorer: Any = None  # a DownstreamScorer, or None (no segmentation)
    metrics: tuple[str, ...] = ()  # the task's downstream_metrics (e.g. tissue consistency of a synthetic CT)

    def label(self) -> str:
        """The downstream part of the run identity."""
        parts = [self.scorer.label()] if self.scorer is not None else []
        return ";".join([*parts, *(["metrics:" + ",".join(self.metrics)] if self.metrics else [])])


def resolve_downstream(enabled: bool, segmenter: str | None, segmenter_options: Mapping[str, Any] | None,
                       mode: str, task: TaskSpec) -> DownstreamPlan | None:
    """What ``--downstream`` means for ``task`` (None without it), checked before any work.

    A tumour task (BraTS labels) gets a segmenter (default: the built-in ``segresnet``) and the
    segmentation metrics; a task that lists ``downstream_metrics`` (synthetic CT) gets those, and a
    segmenter only when one is named (scored with a segmentation mode such as ``synthrad2025_seg``, against
    the segmenter's output on the real image). A mode that scores segmentations (``brasyn2023`` ...)
    without ``--downstream`` is an error, and so is ``--segmenter`` without it.
    """
    from cmsbench.benchmark.metrics.registry import get_metric, get_mode

    mode_obj = get_mode(mode)
    if not enabled:
        if segmenter or segmenter_options:
            raise CmsbenchError("--segmenter / --segmenter-option need --downstream (they choose the segmenter "
                                "of the downstream metrics)")
        if mode_obj.downstream is not None:
            raise CmsbenchError(f"scoring mode {mode!r} scores what a segmenter does with the synthetic "
                                f"image: add --downstream (and --segmenter NAME for a model of your own)")
        return None
    from cmsbench.benchmark.downstream.scoring import DEFAULT_SEGMENTER, DownstreamScorer
    from cmsbench.benchmark.downstream.segmenters import get_segmenter

    tumour = _TUMOUR_REGIONS <= set(task.regions)
    for name in task.downstream_metrics:
        get_metric(name)
    if not tumour and segmenter is None and mode_obj.downstream is None:
        if not task.downstream_metrics:
            raise CmsbenchError(f"task {task.name!r} has no tumour labels and no downstream metrics of its own: give "
                                f"--segmenter NAME with a segmentation mode (e.g. --mode synthrad2025_seg)")
        return DownstreamPlan(None, task.downstream_metrics)
    if not tumour and mode_obj.downstream is None:
        raise CmsbenchError(f"task {task.name!r} has no tumour labels to score a segmentation against: with "
                            f"--segmenter use a mode that compares it with the real image's segmentation "
                            f"(--mode synthrad2025_seg)")
    name = segmenter or DEFAULT_SEGMENTER
    return DownstreamPlan(DownstreamScorer(get_segmenter(name, **dict(segmenter_options or {}))),
                          task.downstream_metrics)


def prepare_downstream(plan: DownstreamPlan, dataset: Dataset, *, seed: int, device: str,
                       progress: Callable[[str, int, int], None] | None = None) -> dict[str, Any]:
    """Train (or load) the downstream segmenter on the TRAIN split's real images; what the record stores."""
    out: dict[str, Any] = {"metrics": list(plan.metrics)}
    if plan.scorer is not None:
        plan.scorer.prepare(LazyCases(dataset, dataset.case_ids("train")), seed=seed, device=device,
                            data_fingerprint=dataset.fingerprint(("train",)), progress=progress)
        out.update(plan.scorer.identity())
    return out


def _fit(resolved: ResolvedRun, device: str) -> tuple[Method, dict[str, Any]]:
    config, method_cls, dataset = resolved.config, resolved.method_cls, resolved.dataset
    folder = fitted_state_dir(resolved.task, config.method, method_cls, resolved.options, config.seed,
                              dataset.split.test_hash, dataset.fingerprint(("train", "val")))
    info: dict[str, Any] = {"state_dir": str(folder)}
    per_target = resolved.task.varies_target and method_cls.card.varying_target == "per_target"
    if not config.refit and (folder / "meta.json").exists():
        method = PerTargetMethod.load(folder, method_cls) if per_target else method_cls.load(folder)
        method.device = device
        info.update(cached=True, fit_s=0.0)
        return method, info
    from cmsbench.benchmark.timing import Timer

    method = (PerTargetMethod.for_task(method_cls, resolved.task, **config.options) if per_target
              else method_cls(**config.options))
    seed_everything(config.seed)
    train = LazyCases(dataset, dataset.case_ids("train"))
    val = LazyCases(dataset, dataset.case_ids("val"))
    name = method_cls.card.name
    with Timer(device) as timer:
        try:
            returned = method.fit(train, val, device=device, seed=config.seed)
        except CmsbenchError:
            raise
        except (Exception, SystemExit) as exc:  # a plugin may raise anything (even sys.exit): name it
            tail = "".join(traceback.format_exception(exc)[-3:]).strip()
            raise MethodError(f"method {name!r} raised {type(exc).__name__} in fit: {exc}\n{tail}") from exc
    if returned is not method:
        raise MethodError(f"{name}.fit must return the method itself (got {type(returned).__name__})")
    info.update(cached=False, fit_s=timer.seconds)
    method.save(folder)
    return method, info


def new_record(task: TaskSpec, dataset: Dataset, identity: RunIdentity, method: Mapping[str, Any], *,
               split_variant: str, device: str, partial: bool = False, prediction_units: str | None = None) -> RunRecord:
    """A fresh ``running`` record for ``identity`` (used by :func:`run` and ``cmsbench score``)."""
    from cmsbench.benchmark.scorer import metric_infos

    return RunRecord(
        run_id=identity.run_id(),
        status="running",
        created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
        identity=identity,
        task={"name": task.name, "version": task.version, "fingerprint": task.fingerprint(),
              "parameters": dict(task.parameters), "split_variant": split_variant, "spec": task.to_dict()},
        method=dict(method),
        seed=identity.seed,
        samples=identity.samples,
        split={"test_hash": dataset.split.test_hash, "counts": dataset.split.counts(),
               "test_ids": list(dataset.split.test)},
        data=dataset.describe_source(),
        environment=environment(device),
        scoring={"mode": identity.mode, "metrics": metric_infos(task, identity.mode),
                 "prediction_units": prediction_units},
        partial=partial,
    )


def _new_record(resolved: ResolvedRun, method: Method, device: str) -> RunRecord:
    config, cls = resolved.config, resolved.method_cls
    return new_record(resolved.task, resolved.dataset, resolved.identity,
                      {"name": cls.card.name, "version": cls.card.version, "options": method.identity_options(),
                       "card": cls.card.to_dict(), "entry": config.method},
                      split_variant=config.split_variant, device=device,
                      partial=config.max_cases is not None and config.max_cases < len(resolved.dataset.split.test))


class Prefetcher:
    """Load cases ``ids[i+1 .. i+ahead]`` in background threads while case ``ids[i]`` is processed (bounded:
    ``ahead`` cases, one thread each; ``cmsbench score`` reads two ahead, the runner one).

    The scorer keeps all its worker threads meanwhile: measured on 2 cores (BraTS-size cases, warm cache),
    leaving one core to the reader made ``cmsbench score`` slower (0.25 s/case against 0.21 s/case), since
    the reader, once normalisation divisors are cached, is idle part of each case.
    """

    def __init__(self, load: Callable[[str], Any], ids: Sequence[str], enabled: bool = True, ahead: int = 1) -> None:
        self.load, self.ids, self.ahead = load, list(ids), max(1, int(ahead))
        self.pool = (ThreadPoolExecutor(max_workers=self.ahead, thread_name_prefix="cmsbench-prefetch")
                     if enabled else None)
        self.pending: dict[str, Future] = {}

    def _submit(self, index: int) -> None:
        if self.pool is not None and index < len(self.ids) and self.ids[index] not in self.pending:
            self.pending[self.ids[index]] = self.pool.submit(self.load, self.ids[index])

    def get(self, index: int) -> Case:
        """The case at ``index`` (raises what loading raised); starts reading the next one."""
        cid = self.ids[index]
        for k in range(self.ahead + 1):
            self._submit(index + k)
        if self.pool is None:
            return self.load(cid)
        return self.pending.pop(cid).result()

    def close(self) -> None:
        if self.pool is not None:
            for fut in self.pending.values():
                fut.cancel()
            self.pool.shutdown(wait=True)
            self.pool = None


def run(config: RunConfig, progress: Callable[[int, int, str], None] | None = None,
        stage_progress: Callable[[str, int, int], None] | None = None) -> RunOutcome:
    """Run one (task, method, seed) and return the record; resumes an interrupted run of the same config.

    One process writes a record at a time (:class:`~cmsbench.results.lock.RecordLock`): a second run of the
    same configuration waits, then finishes only what is missing. ``progress(done, total, case)`` follows
    the test cases, ``stage_progress(stage, done, total)`` longer stages (training the downstream segmenter).
    """
    device = resolve_device(config.device)
    t0 = time.perf_counter()
    resolved = resolve_run(config)
    load_s = time.perf_counter() - t0
    path = resolved.path
    dataset = resolved.dataset
    test_ids = list(dataset.case_ids("test"))
    if config.max_cases is not None:
        test_ids = test_ids[: config.max_cases]

    from cmsbench.results.lock import RecordLock

    with RecordLock(path) as lock:
        if lock.waited_s:
            log.warning("the other run of %s finished after %.0f s; continuing from its record", path, lock.waited_s)
        return _run_locked(resolved, path, test_ids, device, t0, load_s, progress, stage_progress)


def _run_locked(resolved: ResolvedRun, path: Path, test_ids: list[str], device: str, t0: float, load_s: float,
                progress: Callable[[int, int, str], None] | None,
                stage_progress: Callable[[str, int, int], None] | None = None) -> RunOutcome:
    from cmsbench.benchmark.setmetrics import SetMetricCollector
    from cmsbench.benchmark.timing import peak_memory

    config, dataset = resolved.config, resolved.dataset
    record: RunRecord | None = None
    if path.exists():
        try:
            record = load_record(path)
        except DataError as exc:
            log.warning("ignoring unreadable record %s (%s); starting again", path, exc)
    done: set[str] = set()
    if record is not None:
        stale = set(stale_cases(record, dataset))
        for cid in sorted(stale):
            log.warning("case %s changed on disk since it was scored: scoring it again", cid)
        done = set(record.ok_cases()) - stale
    collector = SetMetricCollector(resolved.task, path)
    if record is not None and all(cid in done for cid in test_ids) and record.status != "running":
        log.info("run %s is already complete: %s", record.run_id, path)
        return RunOutcome(path, record)

    try:
        method, fit_info = _fit(resolved, device)
    except CmsbenchError as exc:  # recorded with the run, then reported
        if record is None:
            record = _new_record(resolved, resolved.method_cls(**config.options), device)
        record.status = "failed"
        record.problems = [*record.problems, f"fit failed: {exc}"]
        record.write(path)
        raise
    if record is None:
        record = _new_record(resolved, method, device)
    elif done:
        log.warning("resuming %s: %d of %d cases already done", path, len(done), len(test_ids))
    record.status = "running"
    record.timing.update({"load_s": load_s, "fit_s": fit_info["fit_s"], "fit_cached": fit_info["cached"]})
    record.fitted_state = fit_info["state_dir"]
    if resolved.downstream is not None:
        _prepare_downstream(resolved, record, device, stage_progress)
    record.write(path)

    pred_dir = path.with_suffix("").with_name(f"{record.run_id}_predictions")
    todo = [cid for cid in test_ids if cid not in done]
    prefetch = Prefetcher(dataset.load_case, todo, enabled=config.prefetch and len(todo) > 1)
    try:
        for index, case_id in enumerate(todo):
            if progress:
                progress(index, len(todo), case_id)
            entry = _run_case(index, case_id, prefetch, method, resolved, pred_dir, record, device, collector)
            record.cases[case_id] = entry
            record.memory = peak_memory(device)
            record.write(path)
    finally:
        prefetch.close()
    if progress:
        progress(len(todo), len(todo), "")
    record.set_scores = collector.finalize([c for c in test_ids if c in record.cases and record.cases[c].ok],
                                           seed=config.seed)
    record.data = dataset.describe_source()
    failed = [cid for cid in test_ids if cid not in record.cases or not record.cases[cid].ok]
    record.status = "complete" if not failed else "complete_with_failures"
    record.timing["total_s"] = float(record.timing.get("total_s", 0.0)) + (time.perf_counter() - t0)
    record.write(path)
    return RunOutcome(path, record)


def _prepare_downstream(resolved: ResolvedRun, record: RunRecord, device: str,
                        stage_progress: Callable[[str, int, int], None] | None) -> None:
    """Ready the downstream segmenter; when that fails the run goes on with image metrics only (recorded)."""
    t = time.perf_counter()
    try:
        record.scoring.downstream = prepare_downstream(resolved.downstream, resolved.dataset, seed=resolved.config.seed,
                                                       device=device, progress=stage_progress)
    except CmsbenchError as exc:
        log.error("segmentation metrics are off for this run: %s", exc)
        record.problems = [*record.problems, f"downstream segmenter unavailable, no segmentation metrics: {exc}"]
        resolved.downstream.scorer = None
        return
    record.timing["segmenter_prepare_s"] = time.perf_counter() - t


def downstream_segmentation(plan: DownstreamPlan | None, case: Case, prediction: Volume, case_digest: str | None,
                            timing: dict[str, float]) -> Any:
    """Segment a case for the downstream metrics (None without a segmenter); the times go into ``timing``."""
    if plan is None or plan.scorer is None:
        return None
    seg = plan.scorer.segment(case, prediction, case_digest=case_digest)
    timing["segment_s"] = float(seg.seconds.get("synthetic", 0.0))
    timing["segment_real_s"] = float(seg.seconds.get("real", 0.0))
    return seg


def stale_cases(record: RunRecord, dataset: Dataset) -> list[str]:
    """Scored cases whose files changed on disk since (their content digest differs)."""
    return [cid for cid, case in record.ok_cases().items()
            if case.data_digest is not None and cid in dataset.refs and case.data_digest != dataset.case_digest(cid)]


def _run_case(index: int, case_id: str, prefetch: Prefetcher, method: Method, resolved: ResolvedRun,
              pred_dir: Path, record: RunRecord, device: str, collector: Any) -> CaseRecord:
    from cmsbench.benchmark.scorer import score_case
    from cmsbench.benchmark.timing import Timer

    config, task = resolved.config, resolved.task
    name = resolved.method_cls.card.name
    timing: dict[str, float] = {}
    try:
        t = time.perf_counter()
        case = prefetch.get(index)
        timing["load_s"] = time.perf_counter() - t  # time waited for the (prefetched) case
    except CmsbenchError as exc:
        return CaseRecord(status="failed", stage="load", error=str(exc), timing=timing)
    assert case.target is not None
    predictions = []
    try:
        for sample in range(max(1, config.samples)):
            seed_everything(case_seed(config.seed + sample, case_id))
            with Timer(device) as timer, time_limit(config.case_timeout_s, f"{name}.predict on case {case_id!r}"):
                out = method.predict(case.inputs)
            timing["predict_s"] = timing.get("predict_s", 0.0) + timer.seconds
            predictions.append(validate_prediction(out, case.target, case_id, name))
            nfe = getattr(method, "last_nfe", None)
            if nfe is not None:  # denoiser evaluations of a diffusion sampler
                timing["nfe"] = timing.get("nfe", 0) + int(nfe)
    except CmsbenchError as exc:
        return CaseRecord(status="failed", stage="predict", error=str(exc), timing=timing)
    except (Exception, SystemExit) as exc:  # a plugin may raise anything, even sys.exit: record it, keep going
        tail = "".join(traceback.format_exception(exc)[-3:]).strip()
        return CaseRecord(status="failed", stage="predict", traceback=tail, timing=timing,
                          error=f"{name} raised {type(exc).__name__} on case {case_id!r}: {exc}")
    prediction = predictions[0]
    extra: dict[str, Any] = {}
    if len(predictions) > 1:
        stack = np.stack([np.asarray(p.data, dtype=np.float32) for p in predictions])
        prediction = prediction.with_data(stack.mean(axis=0))
        extra["sample_spread"] = float(np.mean(stack.std(axis=0)))
    segmentation = downstream_segmentation(resolved.downstream, case, prediction,
                                           resolved.dataset.case_digest(case_id), timing)
    try:
        t = time.perf_counter()
        score = score_case(np.asarray(case.target.data), np.asarray(prediction.data), case.masks, task,
                           mode=config.mode, case_id=case_id, metadata=case.metadata, device=device,
                           segmentation=segmentation, extra_metrics=resolved.downstream.metrics if resolved.downstream
                           else ())
        timing["score_s"] = time.perf_counter() - t
    except CmsbenchError as exc:
        return CaseRecord(status="failed", stage="score", error=str(exc), timing=timing)
    try:
        entry = case_entry(score, timing, record)
    except ValueError as exc:  # a plugin metric returned something that is not a number (pydantic says what)
        return CaseRecord(status="failed", stage="score", timing=timing,
                          error=f"case {case_id!r}: a metric returned a value that is not a number: {exc}")
    entry.data_digest = resolved.dataset.case_digest(case_id)
    entry.target = case.target.modality if task.varies_target else None
    collector.add(case_id, score.features)
    for key, value in extra.items():
        setattr(entry, key, value)
    if config.save_predictions:
        from cmsbench.tasks.io.nifti import write_volume

        t = time.perf_counter()
        out_path = write_volume(pred_dir / f"{case_id}.nii.gz", prediction)
        entry.timing["write_s"] = time.perf_counter() - t
        entry.prediction = str(out_path)
    if config.thumbnails > 0:
        from cmsbench.benchmark import thumbnails

        ids = list(resolved.dataset.case_ids("test"))[: config.max_cases]
        thumbnails.attach(entry, case_id=case_id, case=case, prediction=prediction, task=task,
                          record_path=resolved.path, test_ids=ids, n=config.thumbnails)
    return entry


def case_entry(score: Any, timing: dict[str, float], record: RunRecord) -> CaseRecord:
    """A successful case's record from its :class:`~cmsbench.benchmark.scorer.CaseScore`.

    The run's convention is set from the first scored case; a case-specific part (the SUV factor) stays
    with the case; metric descriptions of a mode's own outputs are added to ``record.scoring.metrics``.
    """
    from cmsbench.benchmark.scorer import metric_infos
    from cmsbench.results import MetricInfo

    convention = dict(score.convention or {})
    suv = convention.pop("suv", None)
    if record.scoring.convention is None:
        record.scoring.convention = convention
    names = {m for ms in score.values.values() for m in ms}
    missing = sorted(n for n in names if n not in record.scoring.metrics)
    if missing:
        for name, info in metric_infos(None, score.mode, missing).items():
            record.scoring.metrics[name] = MetricInfo(**info)
    return CaseRecord(status="ok", timing=timing, scores=score.values, nan_reasons=score.nan_reasons,
                      lesions=score.lesions, suv=suv)

"""Sweeps: task x method x seed grids, run locally one after another or as Ray tasks on a cluster.

A sweep is a plan first: each job is one ``cmsbench run`` configuration; a job whose complete result
record already exists in the results folder is done and is not run again. Jobs write their own records
(atomically, through the runner) into the shared results folder, so a job retried after a failure or a
dead worker resumes from the cases already recorded: nothing is lost and nothing is counted twice.
Phantom datasets are generated once, by the driver, before any job starts; fitted states are cached per
(task, method, options, seed) in the shared cache.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmsbench.benchmark.runner import RunConfig, resolve_run, run, stale_cases
from cmsbench.errors import CmsbenchError
from cmsbench.results import load_record

log = logging.getLogger(__name__)


@dataclass
class Job:
    """One (task, method, seed) run and what the plan knows about it."""

    config: RunConfig
    state: str = "todo"  # todo | done | running | ok | failed
    record: str | None = None
    error: str | None = None
    attempts: int = 0
    seconds: float = 0.0

    @property
    def key(self) -> str:
        return f"{self.config.task}/{self.config.method}/seed{self.config.seed}"


@dataclass
class SweepPlan:
    """The jobs of a sweep, in order."""

    jobs: list[Job] = field(default_factory=list)

    @property
    def todo(self) -> list[Job]:
        return [j for j in self.jobs if j.state == "todo"]

    def describe(self) -> str:
        """One line per job: state and key."""
        lines = [f"{j.state:>5}  {j.key}" + (f"  ({j.record})" if j.record else "") for j in self.jobs]
        lines.append(f"{len(self.jobs)} job(s): {len(self.jobs) - len(self.todo)} done, {len(self.todo)} to run")
        return "\n".join(lines)


def _data_available(config: RunConfig) -> bool:
    """Whether the run's data exists without generating anything (a phantom not yet written: no)."""
    from cmsbench.tasks.dataset import PHANTOM_MARKER
    from cmsbench.tasks.datasource import phantom_root
    from cmsbench.tasks.registry import get_task

    if config.data_root is not None:
        return Path(config.data_root).expanduser().exists()
    task = get_task(config.task)
    return bool(task.phantom) and (phantom_root(task.phantom) / PHANTOM_MARKER).exists()


def find_complete_record(config: RunConfig) -> Path | None:
    """The complete record this configuration would produce, if it exists (same run identity).

    The identity comes from :func:`~cmsbench.benchmark.runner.resolve_run`, as in the runner itself, so
    a plan and a run never disagree about what is done.
    """
    if not _data_available(config):
        return None
    resolved = resolve_run(config)
    path = resolved.path
    if not path.is_file():
        return None
    try:
        record = load_record(path)
    except CmsbenchError:
        return None
    if record.status != "complete" or stale_cases(record, resolved.dataset):
        return None  # unfinished, or a test case was rewritten since: the run has work to do
    return path


def plan_sweep(tasks: Sequence[str], methods: Sequence[str], seeds: Sequence[int], *, results: Path,
               data_roots: Mapping[str, str] | None = None, options: Mapping[str, Any] | None = None,
               device: str = "auto", max_cases: int | None = None) -> SweepPlan:
    """The job list for the grid; jobs whose complete record exists in ``results`` are marked done.

    Names, options and modes are validated here, before any job runs.
    """
    data_roots = dict(data_roots or {})
    plan = SweepPlan()
    for task in tasks:
        for method in methods:
            for seed in seeds:
                config = RunConfig(task=task, method=method, seed=int(seed), data_root=data_roots.get(task),
                                   device=device, results=Path(results), options=dict(options or {}),
                                   max_cases=max_cases)
                job = Job(config)
                found = find_complete_record(config)
                if found is not None:
                    job.state, job.record = "done", str(found)
                plan.jobs.append(job)
    return plan


def _prepare_data(plan: SweepPlan) -> None:
    """Generate each needed phantom dataset once, before jobs start (so jobs never race to write it)."""
    from cmsbench.tasks.datasource import ensure_phantom
    from cmsbench.tasks.registry import get_task

    for job in plan.todo:
        if job.config.data_root is None:
            task = get_task(job.config.task)
            if task.phantom:
                ensure_phantom(task.phantom)


def run_job(config: RunConfig) -> dict[str, Any]:
    """Run one job; returns a small summary (also the body of a Ray task)."""
    start = time.perf_counter()
    outcome = run(config)
    return {"record": str(outcome.path), "failed_cases": outcome.failed, "seconds": time.perf_counter() - start,
            "status": outcome.record.status}


class Progress:
    """Counts and an ETA, logged as jobs finish."""

    def __init__(self, total: int, report: Callable[[str], None]) -> None:
        self.total, self.report, self.start = total, report, time.perf_counter()
        self.ok = self.failed = 0

    def update(self, running: int) -> None:
        finished = self.ok + self.failed
        elapsed = time.perf_counter() - self.start
        eta = elapsed / finished * (self.total - finished) if finished else float("nan")
        self.report(f"jobs: {self.ok} done, {running} running, {self.failed} failed, "
                    f"{self.total - finished - running} waiting; ETA {eta:.0f} s")


def _finish(job: Job, summary: dict[str, Any] | None, error: str | None) -> None:
    if summary is not None:
        job.record, job.seconds = summary["record"], summary["seconds"]
        job.state = "ok" if summary["status"] == "complete" else "failed"
        if summary["failed_cases"]:
            job.error = f"{len(summary['failed_cases'])} case(s) failed"
    else:
        job.state, job.error = "failed", error


def run_local(plan: SweepPlan, *, retries: int = 1, report: Callable[[str], None] = log.info) -> SweepPlan:
    """Run the plan's jobs one after another in this process, retrying each failed job ``retries`` times."""
    _prepare_data(plan)
    progress = Progress(len(plan.todo), report)
    for job in plan.todo:
        job.state = "running"
        progress.update(1)
        error = None
        summary = None
        for _ in range(retries + 1):
            job.attempts += 1
            try:
                summary = run_job(job.config)
                break
            except CmsbenchError as exc:
                error = str(exc)
                break  # a user error does not improve on retry
            except Exception as exc:  # noqa: BLE001 - recorded with the job
                error = f"{type(exc).__name__}: {exc}"
        _finish(job, summary, error)
        if job.state == "ok":
            progress.ok += 1
        else:
            progress.failed += 1
    progress.update(0)
    return plan


def run_ray(plan: SweepPlan, *, address: str | None = None, gpus_per_job: float = 0.0, cpus_per_job: float = 1.0,
            retries: int = 2, num_cpus: int | None = None, report: Callable[[str], None] = log.info) -> SweepPlan:
    """Submit one Ray task per job (resources declared), to ``address`` or to a local Ray started here.

    Ray re-runs a task whose worker died (``max_retries``) and one that raised (``retry_exceptions``); the
    runner's resume makes a re-run finish only the cases not yet recorded.
    """
    try:
        import ray
    except ImportError as exc:
        raise CmsbenchError("the ray executor needs Ray: pip install 'cmsbench[ray]'") from exc
    _prepare_data(plan)
    started_here = not ray.is_initialized()
    if started_here:
        import os

        kwargs: dict[str, Any] = {"include_dashboard": False, "log_to_driver": False}
        env = {k: os.environ[k] for k in ("CMSBENCH_HOME", "XDG_CACHE_HOME") if k in os.environ}
        if env:
            kwargs["runtime_env"] = {"env_vars": env}
        if address:
            kwargs["address"] = address
        elif num_cpus is not None:
            kwargs["num_cpus"] = num_cpus
        ray.init(**kwargs)
    try:
        remote = ray.remote(num_cpus=cpus_per_job, num_gpus=gpus_per_job, max_retries=retries,
                            retry_exceptions=True)(run_job)
        pending = {}
        for job in plan.todo:
            job.state = "running"
            pending[remote.remote(job.config)] = job
        progress = Progress(len(pending), report)
        while pending:
            ready, _ = ray.wait(list(pending), num_returns=1)
            job = pending.pop(ready[0])
            try:
                _finish(job, ray.get(ready[0]), None)
            except Exception as exc:  # noqa: BLE001 - the job's error after Ray's retries
                cause = getattr(exc, "cause", None) or exc
                _finish(job, None, f"{type(cause).__name__}: {cause}")
            if job.state == "ok":
                progress.ok += 1
            else:
                progress.failed += 1
            progress.update(len(pending))
    finally:
        if started_here:
            ray.shutdown()
    return plan

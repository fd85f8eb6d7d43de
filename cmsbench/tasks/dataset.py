"""A task's dataset on disk: its cases, its split, and cached, normalised loading of one case."""

from __future__ import annotations

import hashlib
import json
import logging
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from cmsbench.errors import CmsbenchError, DataError
from cmsbench.paths import cache_home
from cmsbench.tasks.adapters import CaseRef, Problem, get_adapter
from cmsbench.tasks.io.cache import CaseCache, cache_key
from cmsbench.tasks.normalise import case_divisors, normalise_case
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.splits import SPLIT_NAMES, Split, make_split
from cmsbench.tasks.volume import Case

log = logging.getLogger(__name__)
PHANTOM_MARKER = ".cmsbench_phantom.json"


def _source_files(ref: CaseRef) -> list[Path]:
    files = [Path(p) for p in ref.files.values() if Path(p).is_file()]
    for listed in dict(ref.metadata.get("files", {})).values():
        files.extend(Path(p) for p in listed)
    return files


def root_fingerprint(refs: list[CaseRef]) -> str:
    """Hash of the cases' files by CONTENT (case ID, file name, SHA-256 of the bytes): identifies the data.

    Digests are remembered under path + size + mtime_ns (:mod:`cmsbench.tasks.io.digests`), so only new or
    rewritten files are read again; a file rewritten with the same size still changes the fingerprint.
    """
    entries = [f"{ref.case_id}:{case_digest(ref)}" for ref in refs]
    return hashlib.sha256("\n".join(sorted(entries)).encode()).hexdigest()[:16]


def case_digest(ref: CaseRef) -> str:
    """SHA-256 (16 hex digits) over one case's files: names and content digests."""
    from cmsbench.tasks.io.digests import file_digest

    parts = []
    for path in sorted(_source_files(ref)):
        try:
            parts.append(f"{path.name}:{file_digest(path)}")
        except OSError:
            parts.append(f"{path.name}:?")
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def _cached_raw_case(ref: CaseRef, task: TaskSpec, cache: CaseCache | None) -> tuple[Case, str | None]:
    """One case as the adapter reads it and its cache key (None without a cache)."""
    adapter = get_adapter(task.adapter)
    if cache is None:
        return adapter.load(ref, task), None
    key = cache_key(adapter.name, adapter.version, [*task.inputs, task.target], dict(task.adapter_options),
                    _source_files(ref))
    case = cache.get(key)
    if case is None:
        case = adapter.load(ref, task)
        cache.put(key, case)
    return case, key


def load_raw_case(ref: CaseRef, task: TaskSpec, cache: CaseCache | None) -> Case:
    """One case as the adapter reads it (physical units), through ``cache`` when given."""
    return _cached_raw_case(ref, task, cache)[0]


def load_normalised_case(ref: CaseRef, task: TaskSpec, cache: CaseCache | None) -> Case:
    """One case in task units; the divisors (medians over the normalisation region) are remembered in
    the cache beside the case, so a cached case costs only the division."""
    case, key = _cached_raw_case(ref, task, cache)
    if task.normalisation.kind != "healthy_median" or cache is None or key is None:
        return normalise_case(case, task)
    note = "divisors_" + hashlib.sha256(json.dumps(
        [task.normalisation.kind, task.normalisation.region], sort_keys=True).encode()).hexdigest()[:16]
    stored = cache.get_note(key, note)
    roles = [*case.inputs, *(["target"] if case.target is not None else [])]
    if stored is None or sorted(stored) != sorted(roles) or not all(
            isinstance(v, float) and v > 0 for v in stored.values()):
        stored = case_divisors(case, task)
        cache.put_note(key, note, stored)
    return normalise_case(case, task, divisors=stored)


@dataclass
class Dataset:
    """The cases of ``task`` found under ``root`` and their split."""

    task: TaskSpec
    root: Path
    refs: dict[str, CaseRef]
    problems: list[Problem]
    split: Split
    phantom: dict | None = None
    cache: CaseCache | None = field(default=None, repr=False)
    #: cases the protocol leaves out (with the reason), as the adapter reported them
    excluded: list[Problem] = field(default_factory=list)

    @property
    def is_phantom(self) -> bool:
        """True when the data is an embedded phantom dataset."""
        return self.phantom is not None

    def case_ids(self, split: str) -> tuple[str, ...]:
        """Case IDs of one split."""
        return self.split[split]

    def load_case(self, case_id: str, normalise: bool = True) -> Case:
        """Read one case (through the cache), normalised by the task's policy unless ``normalise=False``."""
        if case_id not in self.refs:
            raise DataError(f"case {case_id!r} is not in the dataset at {self.root}")
        if normalise:
            return load_normalised_case(self.refs[case_id], self.task, self.cache)
        return load_raw_case(self.refs[case_id], self.task, self.cache)

    def iter_cases(self, split: str, normalise: bool = True) -> Iterator[Case]:
        """Load the cases of a split one at a time."""
        for case_id in self.case_ids(split):
            yield self.load_case(case_id, normalise=normalise)

    def fingerprint(self, splits: tuple[str, ...] | None = None) -> str:
        """Content hash of the dataset's files (or only of the given splits' cases, e.g. ``("train", "val")``)."""
        if splits is None:
            refs = list(self.refs.values())
        else:
            refs = [self.refs[cid] for name in splits for cid in self.split[name]]
        return root_fingerprint(refs)

    def case_digest(self, case_id: str) -> str:
        """Content hash of one case's files (recorded with the case; a resumed run re-checks it)."""
        return case_digest(self.refs[case_id])

    def describe_source(self) -> dict:
        """What data a result came from: phantom or real, the path and its fingerprint."""
        source = {
            "kind": "phantom" if self.is_phantom else "real",
            "path": str(self.root),
            "fingerprint": self.fingerprint(),
            "phantom": self.phantom,
            "n_cases": len(self.refs),
        }
        if self.excluded:  # only where a protocol excludes cases, so other records keep their form
            source["excluded"] = [{"case": e.subject, "path": e.path, "reason": e.message} for e in self.excluded]
        return source


def read_phantom_marker(root: Path) -> dict | None:
    """The phantom generator's marker (dataset, seed, size) if ``root`` is a phantom dataset."""
    for candidate in (root, *root.parents[:3]):
        marker = candidate / PHANTOM_MARKER
        if marker.is_file():
            try:
                return json.loads(marker.read_text())
            except (OSError, ValueError):
                return {"dataset": "unknown"}
    return None


def open_dataset(task: TaskSpec, root: str | Path, *, use_cache: bool = True, strict: bool = False,
                 cache_writes: bool = True) -> Dataset:
    """Discover ``task``'s cases under ``root`` and split them.

    Problems (missing files, unexpected names) are collected; with ``strict`` any problem raises.
    A dataset with no complete case always raises, listing the problems. ``cache_writes=False``: cases
    already in the case cache are read from it, others from the files without being stored (a one-off
    pass such as ``cmsbench score``: storing a BraTS case writes ~100 MB, which cost more than reading it).
    """
    root = Path(root).expanduser()
    adapter = get_adapter(task.adapter)
    found = adapter.discover(root, task)
    if not found.cases or (strict and found.problems):
        details = "\n  ".join(str(p) for p in found.problems) or "no cases"
        raise DataError(f"task {task.name!r}: cannot use the dataset at {root}:\n  {details}")
    for problem in found.problems:
        log.warning("%s", problem)
    refs = {ref.case_id: ref for ref in found.cases}
    sites = {ref.case_id: ref.site for ref in found.cases if ref.site}
    try:
        split = make_split(refs, task.split, sites=sites)
    except CmsbenchError as exc:
        raise DataError(f"task {task.name!r}, dataset {root}: {exc}") from exc
    cache = CaseCache(cache_home() / "cases", writes=cache_writes) if use_cache else None
    return Dataset(task, root, refs, list(found.problems), split, read_phantom_marker(root), cache,
                   list(found.excluded))


@dataclass
class CheckReport:
    """What ``cmsbench data check`` found."""

    task: str
    root: str
    counts: dict[str, int]
    problems: list[Problem]
    n_cases: int
    excluded: list[Problem] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.problems


def check_dataset(task: TaskSpec, root: str | Path, *, load: bool = True, use_cache: bool = True) -> CheckReport:
    """Validate a dataset folder: discover every case and (with ``load``) read each one, collecting every
    problem instead of stopping at the first. Cases read successfully are kept in the cache, so the run
    that follows a check does not read (or register) them again."""
    root = Path(root).expanduser()
    adapter = get_adapter(task.adapter)
    try:
        found = adapter.discover(root, task)
    except CmsbenchError as exc:
        return CheckReport(task.name, str(root), {}, [Problem(str(exc), path=str(root))], 0)
    problems = list(found.problems)
    cache = CaseCache(cache_home() / "cases") if use_cache else None
    good = []
    for ref in found.cases:
        if not load:
            good.append(ref)
            continue
        try:
            load_normalised_case(ref, task, cache)
            good.append(ref)
        except CmsbenchError as exc:
            problems.append(Problem(str(exc), subject=ref.case_id))
    counts = {name: 0 for name in SPLIT_NAMES}
    if good:
        try:
            split = make_split([r.case_id for r in good], task.split, sites={r.case_id: r.site for r in good if r.site})
            counts = split.counts()
        except CmsbenchError as exc:
            problems.append(Problem(str(exc)))
    return CheckReport(task.name, str(root), counts, problems, len(good), list(found.excluded))

"""BraTS with one sequence missing per case (the BraSyn task): which one, and the case without it.

Every case of the BraTS 2021 or 2023 GLI layout (read by :class:`~cmsbench.tasks.adapters.brats.BratsAdapter`,
all four sequences and the segmentation required) has one of the task's ``targets`` chosen as missing by
:func:`missing_sequence`: SHA-256 of ``"{seed}:{case_id}"``, its first 8 bytes as a big-endian integer, modulo
the number of targets, indexing the targets in the task's canonical order. The choice depends on the case ID
and the seed only (not on the folder listing or on the other cases). The case's inputs are the other
sequences and its target the missing one, so train and val cases still hold all four images (three inputs
and the target); ``case.metadata["missing"]`` names it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path

from cmsbench.errors import TaskSpecError
from cmsbench.tasks.adapters.base import CaseRef, Discovery
from cmsbench.tasks.adapters.brats import BratsAdapter
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case

#: the adapter option (and task parameter) holding the seed of the choice
SEED_OPTION = "missing_seed"


def missing_sequence(case_id: str, seed: int, candidates: Sequence[str]) -> str:
    """The sequence removed from ``case_id``: ``candidates[int(sha256(f"{seed}:{case_id}")[:8]) % n]``."""
    if not candidates:
        raise TaskSpecError("missing_sequence needs at least one candidate sequence")
    digest = hashlib.sha256(f"{int(seed)}:{case_id}".encode()).digest()
    return candidates[int.from_bytes(digest[:8], "big") % len(candidates)]


def _seed(task: TaskSpec) -> int:
    if not task.targets:
        raise TaskSpecError(f"task {task.name!r} uses the brats_missing adapter but sets no targets")
    return int(task.adapter_options.get(SEED_OPTION, 0))


class BratsMissingAdapter(BratsAdapter):
    """BraTS folders (2021 or 2023 GLI) as cases with one sequence missing, chosen per case ID and seed."""

    name = "brats_missing"

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        seed = _seed(task)
        found = super().discover(root, task.for_target(task.targets[-1]))  # any view: every sequence + seg
        found.cases = [replace(ref, metadata={**ref.metadata, "missing": missing_sequence(ref.case_id, seed,
                                                                                             task.targets)})
                       for ref in found.cases]
        return found

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        seed = _seed(task)
        missing = missing_sequence(ref.case_id, seed, task.targets)
        case = super().load(ref, task.for_target(missing))
        case.metadata.update(missing=missing, missing_rule={
            "rule": "sha256(f'{seed}:{case_id}')[:8] as big-endian int mod len(targets)",
            "seed": seed, "targets": list(task.targets)})
        return case

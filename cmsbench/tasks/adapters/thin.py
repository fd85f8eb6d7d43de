"""Thick-to-thin CT slices (``ct_thin``) on the Medical Segmentation Decathlon CT layout.

Each thin-slice CT volume (:mod:`.msd`) is cropped along z to its first ``1 + m k`` slices (k = the task
parameter ``factor``; the largest such m), so that the first and the last thin slice are thick-slice
centres (acquired, for ``decimate``) and no synthesised slice lies beyond the last acquired one. The thick
input ``ct_thick`` is the task's degradation operator (``decimate`` or ``slab``, :mod:`cmsbench.tasks.
degradations.slices`) with ``output="grid"``: the thick slices on the thin grid, every thin slice showing
its nearest thick slice (so a method's output lands on the target's grid, as every cmsbench method
expects). Case masks: ``body`` (the ground truth above -500 HU, largest component, holes filled) and
``acquired`` (True on thin slices ``0, k, 2k, ...`` under ``decimate``, whose values the input holds
exactly; all False under ``slab``, where no thin slice is acquired). Metadata: ``degradation`` (operator,
version, parameters), ``acquired_slices``, ``slice_factor``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.errors import DataError, TaskSpecError
from cmsbench.tasks.adapters.base import CaseRef, DatasetAdapter, Discovery, foreground_mask
from cmsbench.tasks.adapters.msd import HU_RANGE_LIMIT, discover_msd, read_ct
from cmsbench.tasks.degradations import OperatorCall, OperatorError, from_options
from cmsbench.tasks.degradations.slices import cropped_length, thick_positions
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case

#: the body mask's threshold (HU)
BODY_HU = -500.0
#: operators that keep their thick-slice centres exactly (those slices are acquired, not synthesised)
EXACT_OPERATORS = ("decimate",)


def thin_call(task: TaskSpec) -> OperatorCall:
    """The task's thick-slice operator with ``factor`` (the task parameter) in its parameters."""
    options = dict(task.adapter_options)
    if "factor" not in options:
        raise TaskSpecError(f"task {task.name!r}: adapter option 'factor' is missing")
    fixed = dict(options.get("operator_params") or {})
    call_options = {k: v for k, v in options.items() if str(k).startswith("operator")}
    call_options["operator_params"] = {**fixed, "factor": options["factor"]}
    try:
        call = from_options(call_options)
    except OperatorError as exc:
        raise OperatorError(f"task {task.name!r} (factor={options['factor']!r}, operator="
                            f"{options.get('operator')!r}): {exc}") from None
    if call is None or call.operator.name not in ("decimate", "slab"):
        raise TaskSpecError(f"task {task.name!r}: the thin-slice adapter needs the operator 'decimate' or 'slab', "
                            f"got {options.get('operator')!r}")
    return call


def acquired_mask(shape: tuple[int, int, int], factor: int, operator: str) -> np.ndarray:
    """True on the thin slices the thick input holds exactly (decimate: 0, k, 2k, ...; slab: none)."""
    mask = np.zeros(shape, dtype=bool)
    if operator in EXACT_OPERATORS:
        mask[:, :, thick_positions(shape[2], factor)] = True
    return mask


class ThinSliceAdapter(DatasetAdapter):
    """MSD CT volumes as thin targets, their thick-slice version as the input ``ct_thick``."""

    name = "msd_thin"
    version = "1"

    def _roles(self, task: TaskSpec) -> tuple[str, str]:
        if len(task.inputs) != 1:
            raise TaskSpecError(f"task {task.name!r}: the thin-slice adapter takes one input (the thick CT), "
                                f"got {task.inputs}")
        return task.inputs[0], task.target

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        self._roles(task)
        thin_call(task)  # an invalid factor or operator is an error before any file is read
        limit = task.adapter_options.get("hu_range_limit", HU_RANGE_LIMIT)
        return discover_msd(Path(root), hu_range_limit=None if limit is None else float(limit))

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        thick_name, target_name = self._roles(task)
        call = thin_call(task)
        k = int(call.params["factor"])
        ct = read_ct(ref)
        n = cropped_length(ct.shape[2], k)
        if n == 0:
            raise DataError(f"subject {ref.case_id!r}: {ct.source} has {ct.shape[2]} slices, fewer than "
                            f"1 + factor = {1 + k}: too few for thick slices of factor {k}")
        thin = ct.with_data(np.ascontiguousarray(ct.data[:, :, :n], dtype=np.float32), modality=target_name)
        thick = call.apply(thin, seed=0, case_id=ref.case_id)
        thick = thick.with_data(np.asarray(thick.data, dtype=np.float32), modality=thick_name)
        acquired = acquired_mask(thin.shape, k, call.operator.name)
        body = foreground_mask(np.asarray(thin.data), BODY_HU)
        meta: dict[str, Any] = {
            "degradation": {**call.describe(), "seed": 0},
            "degraded_from": target_name,
            "slice_factor": k,
            "acquired_slices": [int(z) for z in np.flatnonzero(acquired[0, 0])],
            "thick_centres": [int(z) for z in thick_positions(n, k)],
            "cropped_slices": [0, int(n)],
            "original_slices": int(ct.shape[2]),
            **dict(ref.metadata),
        }
        return Case(case_id=ref.case_id, inputs={thick_name: thick}, target=thin,
                    masks={"body": body, "acquired": acquired}, metadata=meta)

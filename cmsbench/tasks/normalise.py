"""Intensity normalisation from a task spec, computed from each image's own ground-truth statistics.

For ``healthy_median`` every image of a case (inputs and target) is divided by the median of its voxels
in the task's normalisation region minus the lesion. The target's divisor comes from the ground truth
only; a prediction is never rescaled by its own statistics: methods predict in these normalised units,
and ``cmsbench score --prediction-units raw`` divides a raw prediction by the ground truth's divisor.
The divisors are recorded in ``case.metadata["normalisation"]``.
"""

from __future__ import annotations

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case, Volume


def healthy_region(case: Case, region: str) -> np.ndarray:
    """The normalisation region (e.g. ``brain``) minus the lesion, as a boolean array."""
    mask = np.asarray(case.mask(region), dtype=bool)
    if "lesion" in case.masks:
        mask = mask & ~np.asarray(case.masks["lesion"], dtype=bool)
    return mask


def divisor_for(volume: Volume, region: np.ndarray, case_id: str) -> float:
    """Median of ``volume`` inside ``region``; a clear error when it is empty or not positive."""
    values = np.asarray(volume.data)[region]
    if values.size == 0:
        raise DataError(f"case {case_id!r}: the normalisation region is empty; check the case's masks")
    median = float(np.median(values, overwrite_input=True))  # ``values`` is our own copy
    if not np.isfinite(median) or median <= 0:
        raise DataError(
            f"case {case_id!r}: the median of {volume.modality} ({volume.source}) in the normalisation "
            f"region is {median:g}; the image may be empty or wrongly scaled"
        )
    return median


def case_divisors(case: Case, task: TaskSpec) -> dict[str, float]:
    """The divisor of every image of ``case`` (inputs by role, and ``"target"``) under the task's policy."""
    policy = task.normalisation
    if policy.kind == "none":
        return {}
    if policy.kind == "fixed_scale":
        return {name: float(policy.scale) for name in [*case.inputs, "target"]}
    region = healthy_region(case, policy.region)
    divisors = {name: divisor_for(vol, region, case.case_id) for name, vol in case.inputs.items()}
    if case.target is not None:
        divisors["target"] = divisor_for(case.target, region, case.case_id)
    return divisors


def normalise_case(case: Case, task: TaskSpec, divisors: dict[str, float] | None = None) -> Case:
    """A new case with the task's normalisation applied (the original is not modified).

    ``divisors``: the case's divisors when already known (:func:`case_divisors`, e.g. from the case
    cache); computed from the images otherwise.
    """
    policy = task.normalisation
    if policy.kind == "none":
        return case
    if divisors is None:
        divisors = case_divisors(case, task)
    units = task.units

    def scaled(vol: Volume, key: str) -> Volume:
        # one pass, float32 arithmetic (the same values as converting first, then dividing)
        return vol.with_data(np.divide(vol.data, np.float32(divisors[key]), dtype=np.float32), units=units)

    return Case(
        case_id=case.case_id,
        inputs={name: scaled(vol, name) for name, vol in case.inputs.items()},
        target=scaled(case.target, "target") if case.target is not None else None,
        masks=case.masks,
        labels=case.labels,
        metadata={**case.metadata, "normalisation": {"policy": policy.describe(), "divisors": divisors}},
    )

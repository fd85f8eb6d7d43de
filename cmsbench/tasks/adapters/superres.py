"""IXI multi-contrast super-resolution (``ixi_sr_t2``): the low-resolution T2 simulated on read.

The IXI layout is read by :class:`~cmsbench.tasks.adapters.ixi.IxiAdapter` as for ``ixi_t1_t2`` (T1
resampled onto the T2 grid and rigidly registered, or taken from ``IXI-T1-registered/``; the same cache
entry), then the task's operator, ``kspace_truncation`` with ``factor`` = the task parameter ``scale``,
turns the high-resolution T2 (the target) into the input ``t2_lr``: the zero-filled reconstruction on
the T2 grid (the central 1/scale of in-plane k-space kept, every other coefficient zero). The exact
low-resolution samples are recoverable from it without loss (:func:`low_res_samples`).
"""

from __future__ import annotations

import numpy as np

from cmsbench.tasks.adapters.base import CaseRef
from cmsbench.tasks.adapters.degraded import DegradedAdapter, copy_case, degradation_seed, describe, load_clean
from cmsbench.tasks.adapters.ixi import IxiAdapter
from cmsbench.tasks.degradations import degradation
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case, Volume

#: the task parameter and the operator parameter it sets
PARAMETER, OPERATOR_PARAMETER = "scale", "factor"


def low_res_samples(volume: Volume, params: dict) -> Volume:
    """The genuinely low-resolution image behind a zero-filled ``kspace_truncation`` input: the operator
    with ``output="low_res"`` (its grid: size // factor in-plane, same field of view, voxel 0 in place).

    The zero-filled input is the band-limited projection of the target, so truncating it again keeps
    exactly the same coefficients: the result equals the operator's ``low_res`` output of the target.
    """
    call = degradation("kspace_truncation", {**params, "output": "low_res"})
    return call.apply(volume, seed=0, case_id="low_res_samples")


class IxiSuperResAdapter(DegradedAdapter):
    """IXI T1 + T2 read as for ``ixi_t1_t2``; the input ``t2_lr`` is the k-space-truncated T2."""

    name = "ixi_sr"
    version = "1"
    parameter, operator_param, what = PARAMETER, OPERATOR_PARAMETER, "IXI super-resolution"

    def __init__(self) -> None:
        self.inner = IxiAdapter()

    def load(self, ref: CaseRef, task: TaskSpec, *, cached: bool = True) -> Case:
        lr_name, guide, _ = self.roles(task)
        clean = load_clean(self.inner, ref, self.proxy(task), cached=cached)
        call = self.call(task)
        seed = degradation_seed(task)
        hr = clean.target
        assert hr is not None
        lr = call.apply(hr, seed=seed, case_id=ref.case_id)
        lr = lr.with_data(np.asarray(lr.data, dtype=np.float32), modality=lr_name)
        inputs = {lr_name: lr, guide: clean.inputs[guide]}
        return copy_case(clean, {m: inputs[m] for m in task.inputs},
                         {"degradation": describe(call, seed), "degraded_from": hr.modality})

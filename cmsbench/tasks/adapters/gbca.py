"""Low-dose gadolinium MRI (``gbca_lowdose``): the low-dose T1ce simulated on read from BraTS.

The BraTS 2021 (``t1``, ``t1ce``) and 2023 GLI (``t1n``, ``t1c``) layouts are read by
:class:`~cmsbench.tasks.adapters.brats.BratsAdapter` (pre-contrast T1, full-dose T1ce and the
segmentation), then the task's operator, ``contrast_dose`` with ``dose`` = the task parameter, makes the
input ``t1ce_low`` from the full-dose T1ce (the target) and the pre-contrast T1.

The operator's model ``pre + dose * (full - pre)`` needs both images on one intensity scale, which
BraTS' separately acquired and rescaled T1 and T1ce are not: the pre-contrast image entering the
operator is first multiplied by ``median(T1ce) / median(T1)`` over the healthy brain (brain minus
tumour, where gadolinium does not enhance). The ``t1`` input itself is the file as stored (the task's
normalisation divides every image by its own healthy-brain median anyway). Case metadata records the
factor (``pre_scale``), the degradation, and the pre-contrast image's mean over each mask
(``pre_contrast``), which the ``enhancement_ratio_error`` metric needs.
"""

from __future__ import annotations

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.adapters.base import CaseRef
from cmsbench.tasks.adapters.brats import BratsAdapter
from cmsbench.tasks.adapters.degraded import DegradedAdapter, copy_case, degradation_seed, describe
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case

PARAMETER, OPERATOR_PARAMETER = "dose", "dose"
#: the masks over which the pre-contrast mean is recorded (the lesion regions of the ER metric, and brain)
PRE_MEAN_MASKS = ("brain", "lesion", "necrotic", "edema", "enhancing")


def healthy_scale(pre: np.ndarray, post: np.ndarray, healthy: np.ndarray) -> float:
    """``median(post) / median(pre)`` over ``healthy`` voxels: brings ``pre`` onto ``post``'s scale."""
    if not healthy.any():
        raise DataError("the healthy brain (brain minus tumour) is empty")
    a, b = float(np.median(pre[healthy])), float(np.median(post[healthy]))
    if not (a > 0 and b > 0 and np.isfinite(a) and np.isfinite(b)):
        raise DataError(f"the healthy-brain medians of the pre-contrast ({a:g}) and post-contrast ({b:g}) "
                        "images must be positive")
    return b / a


class BratsGbcaAdapter(DegradedAdapter):
    """BraTS pre-contrast T1 + full-dose T1ce; the input ``t1ce_low`` is the simulated low dose."""

    name = "brats_gbca"
    version = "1"
    parameter, operator_param, what = PARAMETER, OPERATOR_PARAMETER, "BraTS low-dose"

    def __init__(self) -> None:
        self.inner = BratsAdapter()

    def load(self, ref: CaseRef, task: TaskSpec) -> Case:
        low_name, pre_name, _ = self.roles(task)
        clean = self.inner.load(ref, self.proxy(task))
        post, pre = clean.target, clean.inputs[pre_name]
        assert post is not None
        pre_data = np.asarray(pre.data, dtype=np.float64)
        healthy = np.asarray(clean.masks["brain"], bool) & ~np.asarray(clean.masks["lesion"], bool)
        try:
            scale = healthy_scale(pre_data, np.asarray(post.data, dtype=np.float64), healthy)
        except DataError as exc:
            raise DataError(f"subject {ref.case_id!r}: cannot match {pre.source} to {post.source}: {exc}") from None
        pre_matched = pre.with_data((pre_data * scale).astype(np.float32))
        call = self.call(task)
        seed = degradation_seed(task)
        low = call.apply(post, seed=seed, case_id=ref.case_id, others={"pre": pre_matched})
        low = low.with_data(np.asarray(low.data, dtype=np.float32), modality=low_name)
        means = {}
        for name in PRE_MEAN_MASKS:
            mask = np.asarray(clean.masks[name], bool)
            means[name] = float(pre_data[mask].mean()) if mask.any() else None
        inputs = {pre_name: pre, low_name: low}
        return copy_case(clean, {m: inputs[m] for m in task.inputs}, {
            "degradation": describe(call, seed), "degraded_from": post.modality, "pre_scale": scale,
            "pre_contrast": {"input": pre_name, "means": means},
        })

"""Held-out scoring on phantom tasks, shared by the degraded-input task tests: a task's train cases,
its held-out (val + test) cases scored per case, and a one-sided paired Wilcoxon test."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from cmsbench.tasks.dataset import open_dataset
from cmsbench.tasks.registry import get_task


class Held:
    """A phantom task's train cases and its held-out (val + test) cases, with per-case scores."""

    def __init__(self, task_name: str, root: Path) -> None:
        self.task = get_task(task_name)
        ds = open_dataset(self.task, root)
        self.train = [ds.load_case(c) for c in ds.case_ids("train")]
        self.held = [ds.load_case(c) for c in ds.case_ids("val") + ds.case_ids("test")]

    def scores(self, method, region: str, metric: str = "psnr") -> np.ndarray:
        from cmsbench.benchmark.scorer import score_case

        out = []
        for case in self.held:
            pred = method.predict(case.inputs)
            s = score_case(np.asarray(case.target.data), np.asarray(pred.data), case.masks, self.task,
                           case_id=case.case_id, metadata=case.metadata)
            value = s.value(region, metric)
            out.append(np.nan if value is None else value)
        return np.asarray(out, dtype=np.float64)


def paired_p(better: np.ndarray, worse: np.ndarray) -> tuple[float, float]:
    """(mean difference, one-sided Wilcoxon signed-rank p) over the cases where both are defined."""
    from scipy.stats import wilcoxon

    d = better - worse
    d = d[np.isfinite(d)]
    return float(d.mean()), float(wilcoxon(d, alternative="greater").pvalue)

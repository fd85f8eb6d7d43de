"""Set-level metrics over a run's test set: per-case features kept beside the record, one value at the end.

A set-level metric (``Metric(level="set")``) returns features per case and region
(``metric.features(ctx, region)``, a numeric array); the runner stores them in
``<run_id>_setfeatures/<case_id>.npz`` next to the record, so a resumed run still aggregates over every
case, and calls ``metric.aggregate(features, seed)`` once all cases are done. The result
(:class:`~cmsbench.results.SetScore`: value, interval, n) goes into ``RunRecord.set_scores``.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

log = logging.getLogger(__name__)


class SetMetricCollector:
    """Collects per-case features of the task's set-level metrics and aggregates them."""

    def __init__(self, task: Any, record_path: Path) -> None:
        from cmsbench.benchmark.metrics.registry import get_metric

        self.metrics = [m for m in (get_metric(n) for n in task.metrics) if m.level == "set"]
        self.folder = record_path.with_suffix("").with_name(record_path.stem + "_setfeatures")

    def add(self, case_id: str, features: Mapping[str, Mapping[str, Any]]) -> None:
        """Store one case's features (``{region: {metric: array}}``)."""
        if not self.metrics or not features:
            return
        arrays = {f"{r}/{m}": np.asarray(v, dtype=np.float64) for r, ms in features.items() for m, v in ms.items()}
        self.folder.mkdir(parents=True, exist_ok=True)
        tmp = self.folder / f".{case_id}.tmp.npz"
        np.savez(tmp, **arrays)
        tmp.replace(self.folder / f"{case_id}.npz")

    def finalize(self, case_ids: Sequence[str], seed: int = 0) -> dict[str, dict[str, dict[str, Any]]]:
        """``{region: {metric: SetScore fields}}`` over the cases whose features were stored."""
        if not self.metrics:
            return {}
        per_key: dict[str, list[np.ndarray]] = {}
        for cid in case_ids:
            path = self.folder / f"{cid}.npz"
            if not path.is_file():
                continue
            with np.load(path) as data:
                for key in data.files:
                    per_key.setdefault(key, []).append(np.array(data[key]))
        out: dict[str, dict[str, dict[str, Any]]] = {}
        for metric in self.metrics:
            keys = sorted(k for k in per_key if k.endswith(f"/{metric.name}"))
            for key in keys:
                region = key.rsplit("/", 1)[0]
                try:
                    value = metric.aggregate(per_key[key], seed)
                    out.setdefault(region, {})[metric.name] = {
                        "value": value.value, "ci_low": value.ci_low, "ci_high": value.ci_high,
                        "n": value.n or len(per_key[key]), "reason": value.reason}
                except Exception as exc:  # noqa: BLE001 - a plugin's aggregate that raises: NaN + reason
                    out.setdefault(region, {})[metric.name] = {
                        "value": None, "n": len(per_key[key]),
                        "reason": f"metric {metric.name!r} raised {type(exc).__name__}: {exc}"}
        return out

"""Scoring, metrics, compatibility modes and timing.

Import-light: importing ``cmsbench.benchmark`` loads neither torch nor scipy; the public names are
resolved on first use.

- :func:`score_case`, :class:`CaseScore`, :func:`available_modes` (``cmsbench.benchmark.scorer``)
- metrics: ``cmsbench.benchmark.metrics`` (``ssim``, ``pixel``, ``msssim``, ``regions``, ``clinical``,
  ``fused``, ``lpips``)
- the metric, region and mode registries: ``cmsbench.benchmark.metrics.registry`` (API in
  ``cmsbench.benchmark.metrics.api``, built-ins in ``cmsbench.benchmark.metrics.builtin``)
- compatibility modes: ``cmsbench.benchmark.modes`` (registered objects), ``cmsbench.benchmark.compat``
- the prediction contract: ``cmsbench.benchmark.contract``
- timing: :class:`Timer`, :func:`time_call`, :func:`peak_memory`
  (``cmsbench.benchmark.timing``)
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "score_case": "cmsbench.benchmark.scorer",
    "CaseScore": "cmsbench.benchmark.scorer",
    "available_modes": "cmsbench.benchmark.scorer",
    "Timer": "cmsbench.benchmark.timing",
    "time_call": "cmsbench.benchmark.timing",
    "peak_memory": "cmsbench.benchmark.timing",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'cmsbench.benchmark' has no attribute {name!r}")

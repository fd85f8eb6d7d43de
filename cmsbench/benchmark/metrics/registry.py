"""The registries of metrics (``cmsbench.metrics``), regions (``cmsbench.regions``) and scoring modes
(``cmsbench.modes``): one mechanism (:class:`cmsbench.registry.Registry`) for built-ins and plugins.
"""

from __future__ import annotations

from typing import Any

from cmsbench.benchmark.metrics.api import Metric, Mode, Region
from cmsbench.benchmark.metrics.builtin import BUILTIN_METRICS, BUILTIN_REGIONS
from cmsbench.errors import MetricError, UnknownNameError
from cmsbench.registry import Registry, did_you_mean

BUILTIN_MODES = {
    name: f"cmsbench.benchmark.modes:{name.upper()}"
    for name in ("default", "synthrad2023", "synthrad2025", "brasyn", "brats_inpainting", "udpet", "ldct_benchmark",
                 "brasyn2023", "brasyn2025", "synthrad2025_seg")
}

METRICS: Registry[Metric] = Registry("cmsbench.metrics", "metric", BUILTIN_METRICS)
REGIONS: Registry[Region] = Registry("cmsbench.regions", "region", BUILTIN_REGIONS)
MODES: Registry[Mode] = Registry("cmsbench.modes", "scoring mode", BUILTIN_MODES)


def _typed(registry: Registry[Any], name: str, cls: type) -> Any:
    obj = registry.load(name)
    if not isinstance(obj, cls):
        entry = registry.entries()[name]
        raise MetricError(f"{registry.kind} {name!r} registered by {entry.distribution} ({entry.target}) is a "
                          f"{type(obj).__name__}, not a cmsbench {cls.__name__}; fix the plugin's entry point")
    if obj.name != name:
        entry = registry.entries()[name]
        raise MetricError(f"{registry.kind} registered as {name!r} by {entry.distribution} calls itself "
                          f"{obj.name!r}; the entry-point name and the object's name must agree")
    return obj


def get_metric(name: str) -> Metric:
    """The metric registered under ``name`` ("did you mean" when unknown)."""
    return _typed(METRICS, name, Metric)


def get_region(name: str) -> Region:
    """The region registered under ``name``."""
    return _typed(REGIONS, name, Region)


def get_mode(name: str) -> Mode:
    """The scoring mode registered under ``name``."""
    return _typed(MODES, name, Mode)


def metric_source(name: str) -> str:
    """The distribution that registered metric ``name``."""
    entry = METRICS.entries().get(name)
    return entry.distribution if entry else ""


def is_registered(metric: str) -> bool:
    """Whether a metric of that name is registered (its direction may still be None: not ranked)."""
    return metric in METRICS.entries()


def direction_of(metric: str, mode: str = "default") -> str | None:
    """``"higher"`` / ``"lower"`` for a registered metric or a mode's own output; None when unknown or when
    the metric is not ranked (:func:`is_registered` tells the two apart)."""
    if metric in METRICS.entries():
        try:
            return get_metric(metric).direction
        except Exception:  # noqa: BLE001 - a broken plugin: unknown direction, reported where it is used
            return None
    if mode in MODES.entries():
        try:
            return get_mode(mode).directions.get(metric)
        except Exception:  # noqa: BLE001
            return None
    return None


def validate_names(task: Any, mode: str = "default") -> None:
    """Check the task's metrics and regions and the mode before any work; errors name what is unknown."""
    if mode not in MODES.entries():
        raise UnknownNameError(f"unknown scoring mode {mode!r}.{did_you_mean(mode, MODES.names())} "
                               f"Known: {', '.join(MODES.names())}")
    get_mode(mode)
    for name in task.metrics:
        if name not in METRICS.entries():
            raise UnknownNameError(f"task {task.name!r}: unknown metric {name!r}."
                                   f"{did_you_mean(name, METRICS.names())} Known: {', '.join(METRICS.names())}")
        get_metric(name)
    case_masks = set((getattr(task, "adapter_options", {}) or {}).get("masks", {}) or {})
    for name in task.regions:
        if name in REGIONS.entries():
            get_region(name)
        elif name not in case_masks:
            raise UnknownNameError(f"task {task.name!r}: unknown region {name!r}."
                                   f"{did_you_mean(name, REGIONS.names())} Known: {', '.join(REGIONS.names())}")

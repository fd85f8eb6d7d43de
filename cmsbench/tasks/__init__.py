"""Tasks: the volume/case data model, task specs and registry, dataset adapters, phantom generators."""

from __future__ import annotations

from cmsbench.tasks.spec import DataRange, DatasetInfo, Normalisation, SplitPolicy, TaskSpec
from cmsbench.tasks.volume import Case, Volume

__all__ = ["Case", "DataRange", "DatasetInfo", "Normalisation", "SplitPolicy", "TaskSpec", "Volume"]

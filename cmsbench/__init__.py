"""cmsbench: a benchmark for cross-modality medical image synthesis.

Importing the package is cheap: no torch, no dataset access. Subpackages:

- ``cmsbench.tasks``: volume/case data model, task specs, registry, dataset adapters, phantoms
- ``cmsbench.baselines``: implementations of the method API
- ``cmsbench.benchmark``: scorer and metrics, runner, timing, result records
- ``cmsbench.leaderboard``: aggregation, statistics and rendering
"""

from __future__ import annotations

__version__ = "0.1.0"

from cmsbench.errors import CmsbenchError

__all__ = ["CmsbenchError", "__version__"]

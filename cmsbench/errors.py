"""The package's exception hierarchy.

Every error a user can cause derives from :class:`CmsbenchError`; messages name the task, case,
file, shapes or units involved and say what to do.
"""

from __future__ import annotations


class CmsbenchError(Exception):
    """Base class of every error cmsbench raises on purpose."""


class UnknownNameError(CmsbenchError, KeyError):
    """An unknown task, method, metric or mode name."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


class DuplicateNameError(CmsbenchError):
    """Two registrations under one name."""


class TaskSpecError(CmsbenchError):
    """A task specification is invalid."""


class DataError(CmsbenchError):
    """A dataset folder, file or case is missing, corrupt or inconsistent."""


class GeometryError(DataError):
    """Volumes of one case disagree in shape, affine or orientation."""


class MetricError(CmsbenchError):
    """A metric was asked for something it cannot compute (bad shapes, NaN input, unknown mode)."""


class MethodError(CmsbenchError):
    """A method broke its contract (wrong shape, NaN output, predict before fit, ...)."""

"""Result records: typed records, their one JSON codec, loading folders, and DataFrames.

- :mod:`.records`: :class:`RunRecord`, :class:`CaseRecord` and what they hold; schema versions.
- :mod:`.codec`: the NaN / inf convention and atomic writes.
- :mod:`.identity`: the run identity digest and method folder names.
- :mod:`.load`: :func:`load` (folder -> :class:`ResultSet`), ``ResultSet.to_frame()``, :func:`export`.

This layer imports nothing of cmsbench but errors: the runner (benchmark) writes through it and the
leaderboard reads through it.
"""

from cmsbench.results.load import FRAME_COLUMNS, ResultSet, Skipped, export, load, records_frame
from cmsbench.results.records import (
    SCHEMA,
    SUPPORTED_SCHEMAS,
    CaseRecord,
    DataInfo,
    MethodInfo,
    MetricInfo,
    RunIdentity,
    RunRecord,
    Scoring,
    SetScore,
    SplitInfo,
    TaskInfo,
    load_record,
    record_from_dict,
)

__all__ = [
    "FRAME_COLUMNS", "SCHEMA", "SUPPORTED_SCHEMAS", "CaseRecord", "DataInfo", "MethodInfo", "MetricInfo",
    "ResultSet", "RunIdentity", "RunRecord", "Scoring", "SetScore", "Skipped", "SplitInfo", "TaskInfo",
    "export", "load", "load_record", "record_from_dict", "records_frame",
]

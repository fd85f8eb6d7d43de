"""Typed result records: :class:`RunRecord` (one per run) holding :class:`CaseRecord` (one per test case).

Why pydantic (v2): a record is a public file format read back from disk, often written by another
version or edited by hand, so reading must *validate* (a string where a score belongs, ``"cases": []``,
a missing field) and say where the problem is, not crash later inside the leaderboard. pydantic does that
with precise error locations, fills defaults for fields older versions did not write, and keeps fields
it does not know (``extra="allow"``) so a record written by a newer version round-trips. Plain
dataclasses would need all that validation written by hand.

Schema versions (the ``schema`` field):

- ``cmsbench.result/1``: written by cmsbench 0.1 (before typed records). Loaded with
  :func:`upgrade`: the method is named by its card (``method.entry`` keeps the string that found it),
  a record holding fewer cases than its test split is marked ``partial``.
- ``cmsbench.result/2`` (:data:`SCHEMA`): adds ``identity`` (the run identity the ``run_id`` hashes),
  ``method.entry``, ``scoring.metrics`` (direction and convention of every metric), ``set_scores``
  (set-level metrics), ``partial`` and ``warnings``.

Numbers follow :mod:`cmsbench.results.codec` (NaN -> ``null``, inf -> ``"inf"``); in memory a score is a
float or ``None`` (NaN; the reason is in ``nan_reasons``).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from cmsbench.errors import DataError
from cmsbench.results import codec

SCHEMA = "cmsbench.result/2"
SCHEMA_V1 = "cmsbench.result/1"
SUPPORTED_SCHEMAS = (SCHEMA_V1, SCHEMA)

#: A stored score: a float (+-inf allowed) or None for NaN.
Score = Annotated[float | None, BeforeValidator(codec.decode_float)]

_OPEN = ConfigDict(extra="allow", protected_namespaces=(), validate_assignment=True)


class TaskInfo(BaseModel):
    """The task a run was scored on: name, version, fingerprint (of the whole spec), parameters, spec."""

    model_config = _OPEN
    name: str
    version: str = ""
    fingerprint: str = ""
    parameters: dict[str, Any] = Field(default_factory=dict)
    split_variant: str = "default"
    spec: dict[str, Any] = Field(default_factory=dict)


class MethodInfo(BaseModel):
    """The method, by its card name and version; ``entry`` is the string the user gave to find it."""

    model_config = _OPEN
    name: str
    version: str = ""
    options: dict[str, Any] = Field(default_factory=dict)
    card: dict[str, Any] = Field(default_factory=dict)
    entry: str | None = None


class SplitInfo(BaseModel):
    """The test split: its hash, per-split counts and the test case IDs."""

    model_config = _OPEN
    test_hash: str = ""
    counts: dict[str, int] = Field(default_factory=dict)
    test_ids: list[str] = Field(default_factory=list)


class DataInfo(BaseModel):
    """Where the data came from: ``phantom`` or ``real``, path, fingerprint."""

    model_config = _OPEN
    kind: str = "unknown"
    path: str | None = None
    fingerprint: str = ""
    phantom: dict[str, Any] | None = None
    n_cases: int | None = None


class MetricInfo(BaseModel):
    """What a metric is, as recorded with the numbers (so a table can rank without the plugin installed)."""

    model_config = _OPEN
    direction: str | None = None  # "higher" | "lower" | None (not ranked)
    level: str = "case"  # "case" | "set"
    convention: str = ""
    version: str = "1"
    source: str = ""  # the distribution that registered it


class Scoring(BaseModel):
    """How the numbers were computed: the mode, the metric convention and the metrics' descriptions."""

    model_config = _OPEN
    mode: str = "default"
    convention: Any = None
    metrics: dict[str, MetricInfo] = Field(default_factory=dict)
    prediction_units: str | None = None
    #: the segmenter behind the downstream metrics (``--downstream``): its identity with the SHA-256 of
    #: its files (command segmenters), its fit key (learned ones) and its digest; None without downstream
    downstream: dict[str, Any] | None = None


class RunIdentity(BaseModel):
    """Everything that makes two runs the same run; ``run_id`` is its digest (see :mod:`.identity`)."""

    model_config = ConfigDict(extra="allow", frozen=True)
    task: str
    task_fingerprint: str
    method: str
    method_version: str
    options: dict[str, Any] = Field(default_factory=dict)
    seed: int | None = None
    split_hash: str = ""
    data_fingerprint: str = ""
    samples: int = 1
    mode: str = "default"
    max_cases: int | None = None
    downstream: str | None = None  # "segmenter name:config digest" when downstream metrics are scored

    def run_id(self) -> str:
        """The 16-hex-digit digest naming the record file."""
        from cmsbench.results.identity import digest

        # fields at their defaults are left out: a field added later (with a default) keeps every run_id
        return digest(self.model_dump(exclude_defaults=True))


class SetScore(BaseModel):
    """A set-level metric (computed over the whole test set) with its interval."""

    model_config = _OPEN
    value: Score = None
    ci_low: Score = None
    ci_high: Score = None
    n: int = 0
    reason: str | None = None


def _lesions(value: Any) -> list[dict[str, Any]]:
    if value is None:
        return []
    if not isinstance(value, list):
        raise ValueError("lesions must be a list")
    out = []
    for les in value:
        if not isinstance(les, dict):
            raise ValueError("each lesion must be an object")
        entry: dict[str, Any] = {}
        for k, v in les.items():
            if k in ("index", "n_voxels"):
                entry[k] = int(v)
            elif k == "centroid":
                entry[k] = [float(x) for x in v]
            else:
                entry[k] = codec.decode_float(v)
        out.append(entry)
    return out


class CaseRecord(BaseModel):
    """One test case: ``ok`` with its scores, or ``failed`` at a ``stage`` with the ``error``."""

    model_config = _OPEN
    status: str
    stage: str | None = None
    error: str | None = None
    traceback: str | None = None
    timing: dict[str, float] = Field(default_factory=dict)
    scores: dict[str, dict[str, Score]] = Field(default_factory=dict)
    nan_reasons: dict[str, str] = Field(default_factory=dict)
    lesions: Annotated[list[dict[str, Any]], BeforeValidator(_lesions)] = Field(default_factory=list)
    suv: str | None = None
    prediction: str | None = None
    thumbnail: str | None = None  # small PNG of the case, relative to the record's folder
    sample_spread: float | None = None
    warnings: list[str] = Field(default_factory=list)
    data_digest: str | None = None  # content hash of the case's files when it was scored
    target: str | None = None  # the case's own target where the task's varies per case (brats_missing: the missing one)

    @property
    def ok(self) -> bool:
        return self.status == "ok"

    def value(self, region: str, metric: str) -> float:
        """A score as a float (NaN when absent or undefined)."""
        v = self.scores.get(region, {}).get(metric)
        return float("nan") if v is None else float(v)


class RunRecord(BaseModel):
    """One run of one method on one task with one seed (see the module docstring for the format)."""

    model_config = _OPEN
    schema_: str = Field(SCHEMA, alias="schema")
    run_id: str
    status: str = "running"
    created: str = ""
    identity: RunIdentity | None = None
    task: TaskInfo
    method: MethodInfo
    seed: int | None = None
    samples: int = 1
    split: SplitInfo = Field(default_factory=SplitInfo)
    data: DataInfo = Field(default_factory=DataInfo)
    environment: dict[str, Any] = Field(default_factory=dict)
    scoring: Scoring = Field(default_factory=Scoring)
    timing: dict[str, Any] = Field(default_factory=dict)
    memory: dict[str, Any] = Field(default_factory=dict)
    cases: dict[str, CaseRecord] = Field(default_factory=dict)
    set_scores: dict[str, dict[str, SetScore]] = Field(default_factory=dict)
    fitted_state: str | None = None
    partial: bool = False
    problems: list[str] = Field(default_factory=list)
    warnings: list[str] = Field(default_factory=list)

    @field_validator("timing", "memory", "environment", mode="before")
    @classmethod
    def _mapping(cls, v: Any) -> Any:
        return {} if v is None else v

    # ----------------------------------------------------------------------------------------- views
    @property
    def schema_version(self) -> str:
        return self.schema_

    def ok_cases(self) -> dict[str, CaseRecord]:
        """The cases predicted and scored successfully."""
        return {cid: c for cid, c in self.cases.items() if c.status == "ok"}

    def failed_cases(self) -> dict[str, str]:
        """case ID -> error of every case that did not succeed."""
        return {cid: c.error or "" for cid, c in self.cases.items() if c.status != "ok"}

    def case_values(self, region: str, metric: str) -> dict[str, float]:
        """case ID -> finite value of ``metric`` in ``region`` over the successful cases."""
        out = {}
        for cid, case in self.cases.items():
            if case.status != "ok":
                continue
            v = case.scores.get(region, {}).get(metric)
            if v is not None and math.isfinite(v):
                out[cid] = float(v)
        return out

    def direction(self, metric: str) -> str | None:
        """``"higher"``/``"lower"`` as recorded for ``metric`` (None when the record does not say)."""
        info = self.scoring.metrics.get(metric)
        return info.direction if info is not None else None

    # ------------------------------------------------------------------------------------------ codec
    def to_dict(self) -> dict[str, Any]:
        """Strict-JSON-compatible dict (:mod:`~cmsbench.results.codec` conventions)."""
        return codec.to_jsonable(self.model_dump(by_alias=True, exclude_none=False))

    def to_json(self) -> str:
        return codec.dumps(self.model_dump(by_alias=True))

    def write(self, path: str | Path) -> Path:
        """Write atomically to ``path`` (see :func:`~cmsbench.results.codec.write_text_atomic`)."""
        return codec.write_text_atomic(path, self.to_json())


def upgrade(data: dict[str, Any]) -> dict[str, Any]:
    """A record dict of any supported schema, in the current schema's shape (the input is not modified)."""
    schema = data.get("schema")
    if schema == SCHEMA:
        return data
    if schema != SCHEMA_V1:
        raise ValueError(f"unsupported schema {schema!r} (supported: {', '.join(SUPPORTED_SCHEMAS)})")
    out = dict(data)
    method = dict(out.get("method") or {})
    card = method.get("card") if isinstance(method.get("card"), dict) else {}
    given = method.get("name")
    if card.get("name") and given != card["name"]:
        method["entry"] = given
        method["name"] = card["name"]
    else:
        method.setdefault("entry", given)
    out["method"] = method
    cases = out.get("cases")
    test_ids = (out.get("split") or {}).get("test_ids")
    if isinstance(cases, dict) and isinstance(test_ids, list) and len(cases) < len(test_ids):
        out["partial"] = True  # 0.1 wrote --max-cases runs as complete
    out["schema"] = SCHEMA
    out["upgraded_from"] = SCHEMA_V1
    return out


def record_from_dict(data: Any, source: str | Path = "<memory>") -> RunRecord:
    """Validate a record dict (any supported schema); a :class:`DataError` naming ``source`` and the field."""
    if not isinstance(data, dict):
        raise DataError(f"{source} is not a cmsbench result record (a JSON object is expected)")
    if data.get("schema") not in SUPPORTED_SCHEMAS:
        raise DataError(f"{source} is not a cmsbench result record (schema {data.get('schema')!r}; "
                        f"supported: {', '.join(SUPPORTED_SCHEMAS)})")
    try:
        return RunRecord.model_validate(upgrade(data))
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first.get("loc", ()))
        raise DataError(f"{source}: malformed result record: {where or 'record'}: {first.get('msg')} "
                        f"({exc.error_count()} problem(s)); re-run or delete it") from exc
    except (ValueError, TypeError) as exc:
        raise DataError(f"{source}: malformed result record: {exc}") from exc


def load_record(path: str | Path) -> RunRecord:
    """Read and validate one record file."""
    return record_from_dict(codec.read_json(path), path)

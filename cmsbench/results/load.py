"""Loading record folders and the long DataFrame every table is computed from.

``load(folder)`` reads every ``*.json`` below the folders, keeps what validates as a record and lists
every other file with the reason it was skipped (never silently). ``ResultSet.to_frame()`` is the long
table: one row per (run, case, region, metric) of the successful cases.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cmsbench.errors import DataError
from cmsbench.results.identity import canonical, digest
from cmsbench.results.records import RunRecord, load_record

#: Columns of :meth:`ResultSet.to_frame`, in order.
FRAME_COLUMNS = (
    "task", "task_version", "data_kind", "split_hash", "parameters", "mode", "method", "method_version",
    "options_digest", "seed", "run_id", "case", "region", "metric", "value",
)


@dataclass
class Skipped:
    """A file below a results folder that is not a usable record, and why."""

    path: Path
    reason: str


@dataclass
class ResultSet:
    """Records (with the file each came from) and the files that were skipped."""

    records: list[tuple[Path | None, RunRecord]] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)

    def __iter__(self) -> Iterator[tuple[Path | None, RunRecord]]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def to_frame(self):
        """The long DataFrame (:data:`FRAME_COLUMNS`) of every successful case's scores."""
        return records_frame(rec for _, rec in self.records)

    def set_frame(self):
        """Set-level metrics: one row per (run, region, metric) with value and interval."""
        import pandas as pd

        rows = []
        for _, rec in self.records:
            base = _run_columns(rec)
            for region, metrics in rec.set_scores.items():
                for metric, s in metrics.items():
                    rows.append({**base, "region": region, "metric": metric, "value": s.value,
                                 "ci_low": s.ci_low, "ci_high": s.ci_high, "n": s.n})
        return pd.DataFrame(rows)


def _run_columns(rec: RunRecord) -> dict[str, Any]:
    return {
        "task": rec.task.name,
        "task_version": rec.task.version,
        "data_kind": rec.data.kind,
        "split_hash": rec.split.test_hash,
        "parameters": canonical(rec.task.parameters),
        "mode": rec.scoring.mode,
        "method": rec.method.name,
        "method_version": rec.method.version,
        "options_digest": digest(rec.method.options, 12),
        "seed": rec.seed,
        "run_id": rec.run_id,
    }


def records_frame(records: Iterable[RunRecord]):
    """The long DataFrame of ``records`` (see :data:`FRAME_COLUMNS`); NaN where a score is undefined."""
    import pandas as pd

    columns: dict[str, list[Any]] = {c: [] for c in FRAME_COLUMNS}
    for rec in records:
        base = _run_columns(rec)
        n0 = len(columns["case"])
        for cid, case in rec.cases.items():
            if case.status != "ok":
                continue
            for region, metrics in case.scores.items():
                for metric, value in metrics.items():
                    columns["case"].append(cid)
                    columns["region"].append(region)
                    columns["metric"].append(metric)
                    columns["value"].append(float("nan") if value is None else value)
        n = len(columns["case"]) - n0
        for key, value in base.items():
            columns[key].extend([value] * n)
    frame = pd.DataFrame(columns)
    frame["value"] = frame["value"].astype("float64")
    return frame


def iter_record_files(*folders: str | Path) -> Iterator[Path]:
    """Every ``*.json`` below the folders (hidden temporary files excluded), sorted."""
    for folder in folders:
        folder = Path(folder)
        if folder.is_file():
            yield folder
            continue
        for path in sorted(folder.rglob("*.json")):
            if not path.name.startswith("."):
                yield path


def load(*folders: str | Path) -> ResultSet:
    """Every record below ``folders``; files that are not records are in ``skipped`` with the reason."""
    out = ResultSet()
    for path in iter_record_files(*folders):
        try:
            out.records.append((path, load_record(path)))
        except DataError as exc:
            out.skipped.append(Skipped(path, str(exc)))
    return out


def export(result_set: ResultSet, out: str | Path) -> Path:
    """Write the long frame as CSV or Parquet (by the suffix of ``out``)."""
    from cmsbench.results.codec import write_text_atomic

    out = Path(out)
    frame = result_set.to_frame()
    if out.suffix.lower() == ".csv":
        return write_text_atomic(out, frame.to_csv(index=False))
    if out.suffix.lower() in (".parquet", ".pq"):
        try:
            import pyarrow  # noqa: F401
        except ImportError as exc:
            raise DataError("Parquet export needs pyarrow: pip install pyarrow (or export to .csv)") from exc
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(f".{out.name}.tmp")
        frame.to_parquet(tmp, index=False)
        tmp.replace(out)
        return out
    raise DataError(f"cannot export to {out}: use a .csv or .parquet file name")

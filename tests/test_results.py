"""Typed result records: the codec, schema upgrade, validation, the long frame, export, historic records."""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from cmsbench.errors import DataError
from cmsbench.results import FRAME_COLUMNS, RunRecord, export, load, load_record, record_from_dict
from cmsbench.results.codec import decode_float, dumps, encode_float, write_json_atomic

HISTORIC = Path(__file__).parent / "historic_records"


def _record(**cases) -> RunRecord:
    return RunRecord(run_id="r1", task={"name": "t", "version": "1"}, method={"name": "m", "version": "2"},
                     seed=3, cases=cases)


def test_codec_nan_and_inf_convention_round_trips() -> None:
    assert encode_float(float("nan")) is None and encode_float(None) is None
    assert encode_float(float("inf")) == "inf" and encode_float(-math.inf) == "-inf"
    assert encode_float(np.float32(0.5)) == 0.5 and isinstance(encode_float(np.float32(0.5)), float)
    assert decode_float("inf") == math.inf and decode_float("-inf") == -math.inf and decode_float(None) is None
    with pytest.raises(ValueError):
        decode_float("abc")
    with pytest.raises(ValueError):
        decode_float(True)
    text = dumps({"a": [float("nan"), float("inf"), np.float64(1.5)], "b": (1, 2)})
    assert json.loads(text) == {"a": [None, "inf", 1.5], "b": [1, 2]}  # strict JSON: no NaN literal
    rec = _record(c1={"status": "ok", "scores": {"brain": {"psnr": float("inf"), "ssim": float("nan"), "mae": 0.1}}})
    back = record_from_dict(json.loads(rec.to_json()))
    assert back.cases["c1"].scores["brain"] == {"psnr": math.inf, "ssim": None, "mae": 0.1}
    assert back.case_values("brain", "psnr") == {} and back.case_values("brain", "mae") == {"c1": 0.1}


def test_records_written_world_readable_and_through_symlinks(tmp_path: Path) -> None:
    import os
    import stat

    old = os.umask(0o022)
    try:
        path = write_json_atomic(tmp_path / "a" / "r.json", {"x": 1})
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
        target = tmp_path / "target.json"
        target.write_text("{}")
        link = tmp_path / "link.json"
        link.symlink_to(target)
        write_json_atomic(link, {"y": 2})
        assert link.is_symlink() and json.loads(target.read_text()) == {"y": 2}
        with pytest.raises(DataError, match="directory"):
            write_json_atomic(tmp_path / "a", {"z": 3})
    finally:
        os.umask(old)


@pytest.mark.parametrize("mutate, where", [
    (lambda d: d.update(cases=[]), "cases"),
    (lambda d: d["cases"]["c1"]["scores"]["brain"].update(psnr="abc"), "cases.c1.scores.brain.psnr"),
    (lambda d: d["cases"]["c1"].pop("status"), "cases.c1.status"),
    (lambda d: d.update(task="brats"), "task"),
    (lambda d: d.update(schema="someone.else/1"), "schema"),
])
def test_malformed_records_raise_data_errors_naming_the_field(tmp_path: Path, mutate, where: str) -> None:
    data = json.loads(_record(c1={"status": "ok", "scores": {"brain": {"psnr": 30.0}}}).to_json())
    mutate(data)
    path = tmp_path / "bad.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"bad\.json") as info:
        load_record(path)
    assert where.split(".")[0] in str(info.value)
    result = load(tmp_path)
    assert not result.records and result.skipped[0].path == path and where.split(".")[0] in result.skipped[0].reason


def test_unknown_fields_are_kept_and_written_back() -> None:
    data = json.loads(_record().to_json())
    data["from_the_future"] = {"a": 1}
    data["method"]["new_field"] = "x"
    rec = record_from_dict(data)
    again = json.loads(rec.to_json())
    assert again["from_the_future"] == {"a": 1} and again["method"]["new_field"] == "x"


def test_frame_and_export(tmp_path: Path) -> None:
    rec = _record(c1={"status": "ok", "scores": {"brain": {"psnr": 30.0, "mae": None}}},
                  c2={"status": "failed", "error": "boom"},
                  c3={"status": "ok", "scores": {"brain": {"psnr": "inf", "mae": 0.2}}})
    rec.write(tmp_path / "t" / "m" / "r1.json")
    result = load(tmp_path)
    frame = result.to_frame()
    assert tuple(frame.columns) == FRAME_COLUMNS
    assert len(frame) == 4 and set(frame["case"]) == {"c1", "c3"}  # failed cases have no scores
    row = frame[(frame["case"] == "c1") & (frame["metric"] == "mae")].iloc[0]
    assert math.isnan(row["value"]) and row["method"] == "m" and row["method_version"] == "2" and row["seed"] == 3
    assert frame[(frame["case"] == "c3") & (frame["metric"] == "psnr")]["value"].iloc[0] == math.inf
    csv_path = export(result, tmp_path / "out.csv")
    import pandas as pd

    back = pd.read_csv(csv_path)
    assert len(back) == 4 and list(back.columns) == list(FRAME_COLUMNS)
    pq = export(result, tmp_path / "out.parquet")
    assert pd.read_parquet(pq).shape == frame.shape
    with pytest.raises(DataError, match=r"\.csv or \.parquet"):
        export(result, tmp_path / "out.xlsx")


def test_export_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cmsbench.cli import main

    _record(c1={"status": "ok", "scores": {"brain": {"psnr": 30.0}}}).write(tmp_path / "res" / "t" / "m" / "r.json")
    (tmp_path / "res" / "junk.json").write_text("{not json")
    assert main(["export", "--results", str(tmp_path / "res"), "--out", str(tmp_path / "x.csv")]) == 0
    captured = capsys.readouterr()
    assert "1 rows from 1 record(s)" in captured.out and "junk.json" in captured.err
    assert (tmp_path / "x.csv").read_text().splitlines()[0].startswith("task,task_version,data_kind")


# ---------------------------------------------------------------------------------------- historic records
def test_historic_records_load_with_the_method_named_by_its_card() -> None:
    result = load(HISTORIC)
    names = {p.relative_to(HISTORIC).as_posix() for p, _ in result.records}
    assert len(names) == 9
    skipped = {s.path.name for s in result.skipped}
    assert skipped == {"expected.json", "expected_by_card_name.json"}  # frozen numbers, not records
    by_path = {p.relative_to(HISTORIC).as_posix(): r for p, r in result.records}
    old_name = by_path["brats_flair/cmsbench.baselines.classical_LinearRegressionMethod/8c3990f365d24a6a.json"]
    assert old_name.method.name == "linear"
    assert old_name.method.entry == "cmsbench.baselines.classical:LinearRegressionMethod"
    assert old_name.partial  # written by --max-cases 4 as "complete" in 0.1
    full = by_path["brats_flair/linear/553dec251f87e9b5.json"]
    assert not full.partial and full.upgraded_from == "cmsbench.result/1"
    assert all(r.schema_version == "cmsbench.result/2" for r in by_path.values())


def _close(a, b) -> bool:
    if a is None or b is None:
        return a is None and b is None
    if isinstance(a, str) or isinstance(b, str):
        if {str(a), str(b)} <= {"inf", "-inf"} or isinstance(a, float) or isinstance(b, float):
            return float(a) == float(b)
        return a == b
    if isinstance(a, bool) or isinstance(b, bool):
        return a == b
    return a == pytest.approx(b, rel=1e-12, abs=1e-12)


def test_historic_records_aggregate_to_the_same_leaderboard_numbers() -> None:
    """The new code on every historic record equals what 0.1 computed (``expected_by_card_name.json``: the
    same folder without the record 0.1 misnamed after its ``module:Class`` string, which now merges into
    ``linear`` and, being partial, never replaces the full run)."""
    from cmsbench.leaderboard.aggregate import load_boards

    expected = json.loads((HISTORIC / "expected_by_card_name.json").read_text())["boards"]
    boards = load_boards(HISTORIC)
    assert [b.slug for b in boards] == [b["slug"] for b in expected]
    n_checked = 0
    for board, want in zip(boards, expected, strict=True):
        assert board.key.__dict__ == want["key"] and board.main == want["main"]
        assert board.main_region == want["main_region"] and board.main_metric == want["main_metric"]
        assert [list(rm) for rm in board.regions_metrics()] == want["regions_metrics"]
        assert [(e.key, e.name, e.version, e.seeds) for e in board.entries] == [
            (e["key"], e["name"], e["version"], e["seeds"]) for e in want["entries"]]
        for wm in want["metrics"]:
            mb = board.metric(wm["region"], wm["metric"])
            assert mb.higher_is_better == wm["higher_is_better"] and mb.order == wm["order"]
            assert mb.groups == {k: int(v) for k, v in wm["groups"].items()} and mb.n_union == wm["n_union"]
            for key, ws in wm["stats"].items():
                got = mb.stats[key]
                for field in ("n", "mean", "std", "median", "ci_low", "ci_high", "ci_method"):
                    assert _close(getattr(got, field), ws[field]), (board.slug, wm["metric"], key, field)
            for key, wr in wm["ranks"].items():
                for field, value in wr.items():
                    assert _close(getattr(mb.ranks[key], field), value), (board.slug, key, field)
            assert len(mb.comparisons) == len(wm["comparisons"])
            for got, wc in zip(mb.comparisons, wm["comparisons"], strict=True):
                for field, value in wc.items():
                    assert _close(getattr(got, field), value), (board.slug, wm["metric"], field)
            n_checked += 1
    assert n_checked == sum(len(b["metrics"]) for b in expected) > 50


def test_historic_records_resume_is_not_fooled_by_partial_v1_records(tmp_path: Path) -> None:
    """A partial 0.1 record is never taken as the complete run by the leaderboard's duplicate rule."""
    from cmsbench.leaderboard.aggregate import load_boards

    folder = tmp_path / "h"
    shutil.copytree(HISTORIC / "brats_flair", folder / "brats_flair")
    board = next(b for b in load_boards(folder) if b.task == "brats_flair")
    linear = next(e for e in board.entries if e.name == "linear")
    assert len(linear.records) == 1 and len(linear.records[0][1].cases) == 22
    assert any("kept the newest complete record of 2" in n for n in board.notes)

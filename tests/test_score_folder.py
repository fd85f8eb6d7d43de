"""``cmsbench score``: external predictions scored under the standard protocol, bad files named."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from cmsbench.benchmark.score_folder import score_folder
from cmsbench.cli import main
from cmsbench.results import load_record
from cmsbench.tasks.dataset import open_dataset
from cmsbench.tasks.io.nifti import write_nifti
from cmsbench.tasks.registry import get_task
from cmsbench.testing import layouts


@pytest.fixture()
def brats(tmp_path: Path) -> tuple[Path, list[str]]:
    root = tmp_path / "brats"
    layouts.write_brats(root, n=24)
    ds = open_dataset(get_task("brats_flair"), root, use_cache=False)
    return root, list(ds.split.test)


def test_perfect_predictions_score_perfectly_and_raw_units_are_normalised(brats, tmp_path: Path) -> None:
    root, test_ids = brats
    ds = open_dataset(get_task("brats_flair"), root, use_cache=False)
    task_units = tmp_path / "pred_task"
    raw_units = tmp_path / "pred_raw"
    for cid in test_ids:
        norm = ds.load_case(cid)
        raw = ds.load_case(cid, normalise=False)
        write_nifti(task_units / f"{cid}.nii.gz", np.asarray(norm.target.data), norm.target.affine)
        write_nifti(raw_units / f"{cid}.nii.gz", np.asarray(raw.target.data), raw.target.affine)
    for folder, units in ((task_units, "task"), (raw_units, "dataset"), (raw_units, "raw")):
        result = score_folder("brats_flair", folder, data_root=str(root), prediction_units=units,
                              out=tmp_path / f"{units}.json")
        assert not result.problems
        record = load_record(tmp_path / f"{units}.json")
        for case in record.cases.values():
            assert case.scores["brain"]["mae"] == pytest.approx(0.0, abs=1e-6)
            assert case.scores["brain"]["ssim"] == pytest.approx(1.0, abs=1e-6)


def test_missing_extra_misnamed_and_misshapen_files_are_reported_by_name(brats, tmp_path: Path,
                                                                         capsys: pytest.CaptureFixture[str]) -> None:
    root, test_ids = brats
    ds = open_dataset(get_task("brats_flair"), root, use_cache=False)
    preds = tmp_path / "preds"
    for cid in test_ids:
        case = ds.load_case(cid)
        write_nifti(preds / f"{cid}.nii.gz", np.asarray(case.target.data) * 0.9, case.target.affine)
    missing, misshapen, misnamed = test_ids[0], test_ids[1], test_ids[2]
    (preds / f"{missing}.nii.gz").unlink()
    write_nifti(preds / f"{misshapen}.nii.gz", np.zeros((5, 5, 5), np.float32), layouts.AFFINE)
    (preds / f"{misnamed}.nii.gz").rename(preds / f"{misnamed.lower()}.nii.gz")
    train_id = ds.split.train[0]
    write_nifti(preds / f"{train_id}.nii.gz", np.zeros(layouts.SHAPE, np.float32), layouts.AFFINE)
    (preds / "notes.txt").write_text("hello")
    rc = main(["score", "--task", "brats_flair", "--predictions", str(preds), "--data-root", str(root),
               "--prediction-units", "task", "--out", str(tmp_path / "scores.json")])
    out = capsys.readouterr().out
    assert rc == 1
    assert f"missing prediction for test case {missing!r}" in out
    assert f"{misshapen}.nii.gz for case {misshapen!r}: shape (5, 5, 5)" in out
    assert f"no test case named {misnamed.lower()!r}" in out and f"Did you mean {misnamed!r}" in out
    assert f"case {train_id!r} is not in the test split" in out
    assert "notes.txt: not a NIfTI file" in out
    record = load_record(tmp_path / "scores.json")
    ok = [cid for cid, c in record.cases.items() if c.status == "ok"]
    assert sorted(ok) == sorted(set(test_ids) - {missing, misshapen, misnamed})


def _write_dataset_scale(ds, ids, folder: Path, factor: float = 1.0) -> None:
    for cid in ids:
        raw = ds.load_case(cid, normalise=False)
        write_nifti(folder / f"{cid}.nii.gz", np.asarray(raw.target.data) * np.float32(factor), raw.target.affine)


def test_all_subjects_in_dataset_scale_exit_0_with_extras_as_warnings(brats, tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    """What every external pipeline writes: one file per subject (train/val too), in the files' own scale."""
    root, test_ids = brats
    ds = open_dataset(get_task("brats_flair"), root, use_cache=False)
    preds = tmp_path / "all"
    _write_dataset_scale(ds, list(ds.refs), preds)
    rc = main(["score", "--task", "brats_flair", "--predictions", str(preds), "--data-root", str(root),
               "--out", str(tmp_path / "all.json")])
    out = capsys.readouterr().out
    assert rc == 0, out
    extras = sorted(set(ds.refs) - set(test_ids))
    assert extras and "warning(s)" in out
    for cid in extras:
        assert f"case {cid!r} is not in the test split" in out
    record = load_record(tmp_path / "all.json")
    assert sorted(record.cases) == sorted(test_ids) and record.scoring.prediction_units == "dataset"
    for case in record.cases.values():
        assert case.status == "ok"
        assert case.scores["brain"]["mae"] == pytest.approx(0.0, abs=1e-6)
        assert case.scores["brain"]["psnr"] == float("inf")
    assert not any("intensity scale" in w for w in record.warnings)

    # the same predictions scaled by 1000: scored, but every case gets the scale warning by name
    scaled = tmp_path / "scaled"
    _write_dataset_scale(ds, test_ids, scaled, factor=1000.0)
    result = score_folder("brats_flair", scaled, data_root=str(root))
    assert not result.problems
    scale_warnings = [w for w in result.warnings if "wrong intensity scale" in w]
    assert len(scale_warnings) == len(test_ids)
    assert f"case {test_ids[0]!r}" in " ".join(scale_warnings) and "1e+03 x the target" in scale_warnings[0]


def test_non_finite_prediction_is_an_error_for_that_case_only(brats, tmp_path: Path) -> None:
    root, test_ids = brats
    ds = open_dataset(get_task("brats_flair"), root, use_cache=False)
    preds = tmp_path / "nan"
    _write_dataset_scale(ds, test_ids, preds)
    raw = ds.load_case(test_ids[0], normalise=False)
    bad = np.asarray(raw.target.data).copy()
    bad[0, 0, 0] = np.nan
    write_nifti(preds / f"{test_ids[0]}.nii.gz", bad, raw.target.affine)
    result = score_folder("brats_flair", preds, data_root=str(root))
    assert len(result.problems) == 1 and "non-finite" in result.problems[0] and test_ids[0] in result.problems[0]
    assert result.record.cases[test_ids[0]].status == "failed"
    assert all(result.record.cases[c].status == "ok" for c in test_ids[1:])


def test_score_reads_cached_cases_but_stores_none(brats, tmp_path: Path, monkeypatch) -> None:
    """A one-off `cmsbench score` stores nothing in the case cache (storing cost more than reading), and
    scores cases a run cached from the cache with the same numbers."""
    from cmsbench.paths import cache_home

    root, test_ids = brats
    monkeypatch.setenv("CMSBENCH_HOME", str(tmp_path / "home"))
    ds = open_dataset(get_task("brats_flair"), root, use_cache=False)
    preds = tmp_path / "preds"
    for cid in test_ids:
        raw = ds.load_case(cid, normalise=False)
        write_nifti(preds / f"{cid}.nii.gz", np.asarray(raw.inputs["t2"].data), raw.inputs["t2"].affine)
    cases = cache_home() / "cases"
    first = score_folder("brats_flair", preds, data_root=str(root))
    assert not any(p.name == "meta.json" for p in cases.rglob("*")) if cases.exists() else True
    cached = open_dataset(get_task("brats_flair"), root)  # as a run reads: stores each case
    for cid in test_ids:
        cached.load_case(cid)
    assert sum(p.name == "meta.json" for p in cases.rglob("*")) == len(test_ids)
    second = score_folder("brats_flair", preds, data_root=str(root))
    assert {c: r.scores for c, r in first.record.cases.items()} == {c: r.scores for c, r in second.record.cases.items()}

"""Every task loads through its reader from a small dataset in its official layout; bad input is explained."""

from __future__ import annotations

import gzip
import os
from pathlib import Path

import numpy as np
import pytest

from cmsbench.cli import main
from cmsbench.errors import DataError, GeometryError
from cmsbench.tasks.dataset import check_dataset, open_dataset
from cmsbench.tasks.io.nifti import write_nifti
from cmsbench.tasks.registry import get_task
from cmsbench.testing import layouts


def _load_all(task_name: str, root: Path, **params: object):
    task = get_task(task_name)
    if params:
        task = task.with_parameters(**params)
    ds = open_dataset(task, root, strict=True)
    cases = [ds.load_case(cid) for cid in sorted(ds.refs)]
    return task, ds, cases


@pytest.mark.parametrize("layout", ["brats2021", "brats2023"])
def test_brats_layouts_load_with_tumour_subregions(tmp_path: Path, layout: str) -> None:
    ids = layouts.write_brats(tmp_path, n=3, layout=layout)
    task, ds, cases = _load_all("brats_flair", tmp_path)
    assert sorted(ds.refs) == sorted(ids)
    case = cases[0]
    assert set(case.inputs) == {"t1", "t2"} and case.target.modality == "flair"
    assert {"brain", "lesion", "necrotic", "edema", "enhancing"} <= set(case.masks)
    assert case.masks["enhancing"].sum() > 0 and case.masks["necrotic"].sum() > 0
    assert not (case.masks["enhancing"] & case.masks["edema"]).any()
    # normalised by the ground truth's healthy-brain median
    healthy = case.masks["brain"] & ~case.masks["lesion"]
    assert np.median(case.target.data[healthy]) == pytest.approx(1.0, rel=1e-5)
    assert case.metadata["normalisation"]["divisors"]["target"] > 1.0
    assert case.target.units == task.units


def test_ixi_registers_t1_to_the_t2_grid(tmp_path: Path) -> None:
    layouts.write_ixi(tmp_path, n=3, shift_t1_mm=3.0)
    task, ds, cases = _load_all("ixi_t1_t2", tmp_path)
    for case in cases:
        assert case.inputs["t1"].same_grid(case.target)
        shift = case.metadata["t1_registration"]["translation_mm"]
        assert shift[0] == pytest.approx(3.0, abs=0.6), shift  # T1 content sits 3 mm further along +x
    _, _, pd_cases = _load_all("ixi_t2_pd", tmp_path)
    assert pd_cases[0].target.modality == "pd" and "t1_registration" not in pd_cases[0].metadata


def test_ixi_cross_site_split_tests_on_iop_only(tmp_path: Path) -> None:
    ids = layouts.write_ixi(tmp_path, n=9)
    ds = open_dataset(get_task("ixi_t1_t2_xsite"), tmp_path)
    assert set(ds.split.test) == {i for i in ids if "-IOP-" in i}
    assert not any("-IOP-" in i for i in ds.split.train + ds.split.val)


def test_udpet_reads_the_dose_reduction_factor_and_suv_metadata(tmp_path: Path) -> None:
    layouts.write_udpet(tmp_path, n=3, drfs=(4, 10))
    _, _, cases4 = _load_all("ldpet", tmp_path)
    _, _, cases10 = _load_all("ldpet", tmp_path, drf=10)
    c4, c10 = cases4[0], cases10[0]
    assert c4.target.units == "Bq/mL" and c4.metadata["weight_kg"] == 70
    assert c4.metadata["injected_activity_bq"] == pytest.approx(2.5e8)
    assert "lesion" in c4.masks and c4.masks["body"].sum() > 0
    noise4 = np.std(c4.inputs["pet_low"].data - c4.target.data)
    noise10 = np.std(c10.inputs["pet_low"].data - c10.target.data)
    assert noise10 > noise4
    with pytest.raises(DataError, match="1-20 dose"):
        open_dataset(get_task("ldpet").with_parameters(drf=20), tmp_path)


@pytest.mark.parametrize("fmt", ["dicom", "nifti"])
def test_ldct_dicom_and_nifti(tmp_path: Path, fmt: str) -> None:
    layouts.write_ldct(tmp_path, n=3, fmt=fmt)
    _, _, cases = _load_all("ldct", tmp_path)
    case = cases[0]
    assert case.target.units == "HU"
    assert case.target.data.min() == pytest.approx(-1000, abs=1)
    assert np.allclose(np.diag(case.target.affine)[:3], [1.5, 1.5, 3.0])
    assert case.masks["body"].any() and not case.masks["body"].all()


def test_ldct_mayo_protocol_variant_tests_on_l506(tmp_path: Path) -> None:
    layouts.write_ldct(tmp_path, n=2, fmt="nifti")
    (tmp_path / "L101").rename(tmp_path / "L506")
    ds = open_dataset(get_task("ldct").with_split("mayo2016"), tmp_path)
    assert ds.split.test == ("L506",)


def test_synthrad_layout(tmp_path: Path) -> None:
    ids = layouts.write_synthrad(tmp_path, n=3)
    for root in (tmp_path, tmp_path / "Task1", tmp_path / "Task1" / "brain"):
        _, ds, cases = _load_all("mr_ct", root)
        assert sorted(ds.refs) == ids
    assert cases[0].target.units == "HU" and cases[0].masks["body"].any()


def test_user_defined_task_loads_through_patterns(tmp_path: Path) -> None:
    data = tmp_path / "data"
    layouts.write_pattern(data, n=3)
    toml = tmp_path / "lab.toml"
    toml.write_text(layouts.PATTERN_TASK_TOML)
    _, ds, cases = _load_all(str(toml), data)
    assert len(cases) == 3 and cases[0].masks["lesion"].any()


# ------------------------------------------------------------------------------------------ splits
def test_hash_split_is_stable_when_subjects_are_added_or_missing() -> None:
    from cmsbench.tasks.splits import make_split

    policy = get_task("brats_flair").split
    ids = [f"BraTS2021_{i:05d}" for i in range(200)]
    full = make_split(ids, policy)
    part = make_split(ids[::2], policy)
    for name in ("train", "val", "test"):
        assert set(part[name]) == set(full[name]) & set(ids[::2])
    assert make_split(reversed(ids), policy).test_hash == full.test_hash
    counts = full.counts()
    assert 35 <= counts["test"] <= 65 and sum(counts.values()) == 200


def test_icon_protocol_takes_the_first_40_subjects() -> None:
    from cmsbench.tasks.splits import make_split

    ids = [f"IXI{i:03d}-Guys-{i:04d}" for i in range(2, 80)]
    split = make_split(ids, get_task("ixi_t1_t2").with_split("icon").split)
    assert split.counts() == {"train": 25, "val": 5, "test": 10}
    assert split.test == tuple(sorted(ids)[30:40])
    with pytest.raises(DataError, match="needs 40 subjects"):
        make_split(ids[:20], get_task("ixi_t1_t2").with_split("icon").split)


# ------------------------------------------------------------------------------------------- cache
def test_cache_serves_memory_mapped_arrays_and_is_never_stale(tmp_path: Path) -> None:
    data = tmp_path / "data"
    layouts.write_synthrad(data, n=3)
    task = get_task("mr_ct")
    ds = open_dataset(task, data)
    first = ds.load_case("1BA001")
    second = ds.load_case("1BA001")
    assert isinstance(second.target.data, np.memmap)
    np.testing.assert_array_equal(first.target.data, second.target.data)
    ct_path = data / "Task1" / "brain" / "1BA001" / "ct.nii.gz"
    write_nifti(ct_path, np.full(first.target.shape, 123, np.int16), first.target.affine)
    os.utime(ct_path, ns=(10**18, 10**18))
    third = open_dataset(task, data).load_case("1BA001")
    assert np.all(np.asarray(third.target.data) == 123)


# -------------------------------------------------------------------------------------- bad input
def test_missing_modality_file_names_subject_and_file(tmp_path: Path) -> None:
    layouts.write_brats(tmp_path, n=2)
    (tmp_path / "BraTS2021_00001" / "BraTS2021_00001_t2.nii.gz").unlink()
    with pytest.raises(DataError, match=r"BraTS2021_00001.*missing modality file BraTS2021_00001_t2\.nii\.gz"):
        open_dataset(get_task("brats_flair"), tmp_path, strict=True)
    ds = open_dataset(get_task("brats_flair"), tmp_path)  # lenient: the complete subject is usable
    assert list(ds.refs) == ["BraTS2021_00000"]


def test_corrupt_nifti_is_reported_with_its_path(tmp_path: Path) -> None:
    layouts.write_brats(tmp_path, n=2)
    bad = tmp_path / "BraTS2021_00000" / "BraTS2021_00000_flair.nii.gz"
    bad.write_bytes(bad.read_bytes()[:200])  # truncated download
    ds = open_dataset(get_task("brats_flair"), tmp_path, use_cache=False)
    with pytest.raises(DataError, match=r"BraTS2021_00000_flair\.nii\.gz.*corrupt or truncated"):
        ds.load_case("BraTS2021_00000")
    bad.write_bytes(gzip.compress(b"this is not a nifti file at all" * 20))
    with pytest.raises(DataError, match=r"BraTS2021_00000_flair\.nii\.gz"):
        ds.load_case("BraTS2021_00000")


def test_mismatched_shapes_and_affines_are_geometry_errors(tmp_path: Path) -> None:
    layouts.write_synthrad(tmp_path, n=2)
    case_dir = tmp_path / "Task1" / "brain" / "1BA001"
    write_nifti(case_dir / "mr.nii.gz", np.ones((10, 10, 4), np.int16), layouts.AFFINE)
    ds = open_dataset(get_task("mr_ct"), tmp_path, use_cache=False)
    with pytest.raises(GeometryError, match=r"1BA001.*mr\.nii\.gz.*shape \(10, 10, 4\).*resample"):
        ds.load_case("1BA001")
    shifted = layouts.AFFINE.copy()
    shifted[1, 3] += 2.0
    write_nifti(case_dir / "mr.nii.gz", np.ones(layouts.SHAPE, np.int16), shifted)
    with pytest.raises(GeometryError, match=r"1BA001.*affine.*differs.*by up to 2 mm"):
        ds.load_case("1BA001")
    flipped = layouts.AFFINE.copy()
    flipped[0, 0] *= -1
    write_nifti(case_dir / "mr.nii.gz", np.ones(layouts.SHAPE, np.int16), flipped)
    with pytest.raises(GeometryError, match="oriented LAS.*RAS"):
        ds.load_case("1BA001")


def test_empty_missing_or_wrong_folder(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="does not exist"):
        open_dataset(get_task("brats_flair"), tmp_path / "nope")
    with pytest.raises(DataError, match="no BraTS subject folders found"):
        open_dataset(get_task("brats_flair"), tmp_path)
    layouts.write_synthrad(tmp_path / "synthrad", n=2)
    with pytest.raises(DataError, match="no BraTS subject folders"):
        open_dataset(get_task("brats_flair"), tmp_path / "synthrad")
    with pytest.raises(DataError, match="missing folder IXI-T1"):
        open_dataset(get_task("ixi_t1_t2"), tmp_path / "synthrad")


def test_data_check_reports_every_problem(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    layouts.write_brats(tmp_path, n=5)
    (tmp_path / "BraTS2021_00001" / "BraTS2021_00001_t1.nii.gz").unlink()  # 1: missing file
    corrupt = tmp_path / "BraTS2021_00002" / "BraTS2021_00002_t2.nii.gz"
    corrupt.write_bytes(corrupt.read_bytes()[:100])  # 2: truncated file
    write_nifti(tmp_path / "BraTS2021_00003" / "BraTS2021_00003_flair.nii.gz",
                np.ones((8, 8, 8), np.int16), layouts.AFFINE)  # 3: wrong shape
    report = check_dataset(get_task("brats_flair"), tmp_path)
    assert len(report.problems) == 3 and report.n_cases == 2
    rc = main(["data", "check", "--task", "brats_flair", "--data-root", str(tmp_path)])
    out = capsys.readouterr().out
    assert rc == 1
    assert "3 problem(s)" in out
    assert "BraTS2021_00001_t1.nii.gz" in out and "corrupt or truncated" in out and "shape (8, 8, 8)" in out
    assert "subjects per split" in out

"""``ct_kernel``: sharp-kernel CT from the smooth-kernel reconstruction of the same scan (issue 16): the chest
phantom, the dual-kernel adapter (DICOM series told apart by ConvolutionKernel, NIfTI pairs), lung
densitometry, the kernel_filter baseline and Bland-Altman agreement on the leaderboard.

The quick tests share one 14-subject chest phantom (7 train, 7 held-out cases). Measured there (held-out
cases, lung region): RA950 error identity -10.0 pp, kernel_filter -7.3 pp (|error| paired one-sided Wilcoxon
p = 0.008, every case better); PSNR (lung window) identity 25.0 dB, kernel_filter 28.2 dB (the 84-subject
default phantom, 23 test cases: see the README).
"""

from __future__ import annotations

import math
import shutil
from pathlib import Path

import numpy as np
import pytest
from heldout import Held, paired_p

from cmsbench.baselines.classical.identity import IdentityMethod
from cmsbench.baselines.classical.kernel import KernelFilterMethod
from cmsbench.benchmark.metrics.densitometry import RA950_HU, lung_mask, quantities
from cmsbench.benchmark.scorer import score_case
from cmsbench.cli import main
from cmsbench.errors import DataError, GeometryError
from cmsbench.leaderboard.agreement import bland_altman
from cmsbench.tasks.dataset import check_dataset, open_dataset
from cmsbench.tasks.phantoms import chest, ct, synthesize
from cmsbench.tasks.phantoms.writers import write_nifti
from cmsbench.tasks.registry import get_task

TASK = "ct_kernel"
N_SUBJECTS = 14


@pytest.fixture(scope="module")
def phantom(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return synthesize("chest", tmp_path_factory.mktemp("chest") / "chest", subjects=N_SUBJECTS, seed=0)


@pytest.fixture(scope="module")
def held(phantom: Path) -> Held:
    return Held(TASK, phantom)


def _copy_cases(phantom: Path, dest: Path, n: int) -> list[Path]:
    cases = sorted(d for d in phantom.iterdir() if d.is_dir())[:n]
    for c in cases:
        shutil.copytree(c, dest / c.name)
    return [dest / c.name for c in cases]


def _series_dirs(case: Path) -> dict[str, Path]:
    return {("smooth" if chest.SMOOTH_KERNEL in d.name else "sharp"): d
            for d in case.glob("*/*") if d.is_dir()}


# ---------------------------------------------------------------------------------------------- the task
def test_spec_states_roles_window_regions_and_densitometry() -> None:
    task = get_task(TASK)
    assert task.inputs == ("ct_smooth",) and task.target == "ct_sharp" and task.units == "HU"
    assert (task.data_range.kind, task.data_range.low, task.data_range.high) == ("window", -1350.0, 150.0)
    assert task.regions == ("body", "lung") and task.phantom == "chest"
    assert {"ra950_error", "ra950_abs_error", "perc15_error", "mld_error"} <= set(task.metrics)
    assert "B30f" in task.parameters["smooth_kernels"] and "B70f" in task.parameters["sharp_kernels"]
    assert task.with_parameters(sharp_kernels="B50f").fingerprint() != task.fingerprint()


def test_fbp_default_filter_is_unchanged_and_windows_differ() -> None:
    size, default = ct._ramp_filter(67)
    _, explicit = ct._ramp_filter(67, "shepp-logan", 1.0)
    np.testing.assert_array_equal(default, explicit)
    _, ramlak = ct._ramp_filter(67, "ram-lak")
    _, hann = ct._ramp_filter(67, "hann", 0.8)
    f = np.abs(np.fft.fftfreq(size)) / 0.5
    assert np.all(ramlak >= default - 1e-12) and np.all(hann[f > 0.8] == 0) and np.all(hann <= ramlak + 1e-12)


# --------------------------------------------------------------------------------------------- phantom
def test_phantom_sharp_kernel_has_the_higher_ra950(held: Held) -> None:
    """As in real scans (5.4 % with B30f, 15.3 % with B50f in one study): the sharp kernel's noise puts more
    lung voxels below -950 HU than the smooth kernel's, in every case."""
    for case in held.train + held.held:
        target = np.asarray(case.target.data)
        lung = lung_mask(target, case.masks["body"])
        smooth = quantities(np.asarray(case.inputs["ct_smooth"].data)[lung])
        sharp = quantities(target[lung])
        assert sharp["ra950"] > smooth["ra950"] + 3.0, case.case_id
        assert sharp["perc15"] < smooth["perc15"]
        assert 0.2 < lung.sum() / case.masks["body"].sum() < 0.7  # two lungs inside the body, not the outside air


def test_data_check_reads_the_phantom_without_problems(phantom: Path, capsys: pytest.CaptureFixture[str]) -> None:
    report = check_dataset(get_task(TASK), phantom, use_cache=False)
    assert not report.problems and report.n_cases == N_SUBJECTS
    assert main(["data", "check", "--task", TASK, "--data-root", str(phantom)]) == 0
    assert "no problems found" in capsys.readouterr().out


def test_data_check_names_a_missing_series_and_a_slice_gap_by_file(phantom: Path, tmp_path: Path,
                                                                    capsys: pytest.CaptureFixture[str]) -> None:
    a, b, _ = _copy_cases(phantom, tmp_path, 3)
    shutil.rmtree(_series_dirs(a)["sharp"])  # a missing series
    gap = _series_dirs(b)["smooth"]
    (gap / "1-002.dcm").unlink()  # a slice-spacing gap
    assert main(["data", "check", "--task", TASK, "--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "no sharp-kernel series" in out and a.name in out
    assert "first file 1-001.dcm" in out and _series_dirs(a)["smooth"].name in out  # what is there, by file
    assert "1-001.dcm" in out and "1-003.dcm" in out and "unevenly spaced" in out and gap.name in out
    assert "1 usable case" in out


def test_reader_refuses_series_of_different_geometry_naming_both(phantom: Path, tmp_path: Path) -> None:
    import pydicom

    (case,) = _copy_cases(phantom, tmp_path, 1)
    series = _series_dirs(case)
    for f in sorted(series["sharp"].glob("*.dcm")):
        ds = pydicom.dcmread(f)
        ds.PixelSpacing = [3.0, 3.0]
        ds.save_as(f)
    task = get_task(TASK)
    ds = open_dataset(task, tmp_path, use_cache=False)
    with pytest.raises(GeometryError) as err:
        ds.load_case(case.name)
    text = str(err.value)
    uids = {k: pydicom.dcmread(next(d.glob("*.dcm")), stop_before_pixels=True).SeriesInstanceUID
            for k, d in series.items()}
    assert uids["smooth"] in text and uids["sharp"] in text
    assert chest.SMOOTH_KERNEL in text and chest.SHARP_KERNEL in text and "spacing" in text
    assert str(series["smooth"]) in text and str(series["sharp"]) in text


def test_nifti_pair_layout_and_kernel_names_from_the_parameters(phantom: Path, tmp_path: Path) -> None:
    task = get_task(TASK)
    ds = open_dataset(task, phantom, use_cache=False)
    cid = sorted(ds.refs)[0]
    case = ds.load_case(cid, normalise=False)
    folder = tmp_path / "nifti" / cid
    aff = case.target.affine
    write_nifti(folder / "smooth.nii.gz", np.asarray(case.inputs["ct_smooth"].data), aff, np.int16)
    write_nifti(folder / "sharp.nii.gz", np.asarray(case.target.data), aff, np.int16)
    again = open_dataset(task, tmp_path / "nifti", use_cache=False).load_case(cid, normalise=False)
    np.testing.assert_array_equal(again.target.data, case.target.data)
    np.testing.assert_array_equal(again.inputs["ct_smooth"].data, case.inputs["ct_smooth"].data)
    shifted = aff.copy()
    shifted[0, 3] += 5.0
    write_nifti(folder / "sharp.nii.gz", np.asarray(case.target.data), shifted, np.int16)
    with pytest.raises(GeometryError, match="smooth.nii.gz.*sharp.nii.gz"):
        open_dataset(task, tmp_path / "nifti", use_cache=False).load_case(cid)
    # another kernel pair stated by the parameters: the phantom's sharp series is no longer recognised
    with pytest.raises(DataError, match="no sharp-kernel series"):
        open_dataset(task.with_parameters(sharp_kernels="B70f,LUNG"), phantom, use_cache=False)
    report = check_dataset(task.with_parameters(sharp_kernels="B70f,LUNG"), phantom, use_cache=False)
    assert report.n_cases == 0 and all("no sharp-kernel series" in p.message for p in report.problems)


# ------------------------------------------------------------------------------------------ densitometry
def _body_and_lungs(rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    x, y, z = np.meshgrid(np.arange(48), np.arange(40), np.arange(5), indexing="ij")
    body = ((x - 23.5) / 22) ** 2 + ((y - 19.5) / 17) ** 2 <= 1
    lungs = (((x - 13) / 7) ** 2 + ((y - 19.5) / 10) ** 2 <= 1) | (((x - 34) / 7) ** 2 + ((y - 19.5) / 10) ** 2 <= 1)
    img = np.where(body, 40.0, -1000.0) + rng.normal(0, 10, body.shape)
    img[lungs] = rng.normal(-880.0, 60.0, int(lungs.sum()))
    return img.astype(np.float32), body, lungs


def test_lung_mask_takes_the_lungs_not_the_outside_air() -> None:
    img, body, lungs = _body_and_lungs(np.random.default_rng(0))
    vessel = np.zeros_like(lungs)
    vessel[12:14, 19:21, :] = True
    img[vessel] = 40.0
    mask = lung_mask(img, body)
    assert mask[vessel].all()  # a vessel inside the lung is lung (holes filled)
    assert not mask[~body].any() and (mask & lungs).sum() / lungs.sum() > 0.97
    assert (mask & ~lungs).sum() < 0.05 * lungs.sum()


def test_densitometry_metrics_match_numpy() -> None:
    rng = np.random.default_rng(1)
    target, body, _ = _body_and_lungs(rng)
    pred = (target + rng.normal(20.0, 30.0, target.shape)).astype(np.float32)
    task = get_task(TASK)
    s = score_case(target, pred, {"body": body}, task, case_id="x")
    lung = lung_mask(target, body)
    t, p = target[lung].astype(np.float64), pred[lung].astype(np.float64)
    ra = 100 * (np.mean(p < RA950_HU) - np.mean(t < RA950_HU))
    p15 = np.percentile(p, 15) - np.percentile(t, 15)
    mld = p.mean() - t.mean()
    assert s.value("lung", "ra950_error") == pytest.approx(ra, abs=1e-9)
    assert s.value("lung", "ra950_abs_error") == pytest.approx(abs(ra), abs=1e-9)
    assert s.value("lung", "perc15_error") == pytest.approx(p15, abs=1e-6)
    assert s.value("lung", "perc15_abs_error") == pytest.approx(abs(p15), abs=1e-6)
    assert s.value("lung", "mld_error") == pytest.approx(mld, rel=1e-9)
    assert s.value("lung", "mld_abs_error") == pytest.approx(abs(mld), rel=1e-9)
    assert "ra950_error" not in s.values["body"]  # densitometry is scored in the lung only
    clipped = np.clip(t, -1350, 150), np.clip(p, -1350, 150)
    assert s.value("lung", "psnr") == pytest.approx(10 * np.log10(1500**2 / np.mean((clipped[0] - clipped[1]) ** 2)))


# ---------------------------------------------------------------------------------------------- baselines
def test_kernel_filter_reduces_the_ra950_error_of_identity(held: Held) -> None:
    identity = IdentityMethod().fit(held.train)
    kernel = KernelFilterMethod().fit(held.train)
    err_id = np.abs(held.scores(identity, "lung", "ra950_error"))
    err_kf = np.abs(held.scores(kernel, "lung", "ra950_error"))
    diff, p = paired_p(err_id, err_kf)
    assert diff > 1.0 and p < 0.05, (err_id, err_kf)
    gain, p_psnr = paired_p(held.scores(kernel, "lung", "psnr"), held.scores(identity, "lung", "psnr"))
    assert gain > 1.5 and p_psnr < 0.05
    # the fitted state round-trips
    assert kernel.gain[0] == pytest.approx(1.0, abs=0.05) and kernel.gain.max() > 3.0


def test_kernel_filter_passes_conformance() -> None:
    from cmsbench.testing.conformance import check_method

    check_method(KernelFilterMethod).raise_if_failed()


def test_kernel_filter_state_round_trips(held: Held, tmp_path: Path) -> None:
    kernel = KernelFilterMethod().fit(held.train[:2])
    again = KernelFilterMethod.load(kernel.save(tmp_path / "kf"))
    case = held.held[0]
    np.testing.assert_array_equal(again.predict(case.inputs).data, kernel.predict(case.inputs).data)


@pytest.mark.slow
def test_unet_runs_on_the_task(phantom: Path, tmp_path: Path) -> None:
    """The U-Net takes the smooth reconstruction in HU (a tiny configuration; not a quality test)."""
    pytest.importorskip("torch")
    pytest.importorskip("monai")
    from cmsbench.benchmark.runner import RunConfig, run

    outcome = run(RunConfig(task=TASK, method="unet", data_root=str(phantom), device="cpu",
                            results=tmp_path / "results", max_cases=1, thumbnails=0,
                            options={"config": "small", "features": [4, 4, 4, 4, 4, 4], "steps": 2, "batch_size": 2}))
    assert not outcome.failed and len(outcome.record.cases) == 1
    (case,) = outcome.record.cases.values()
    assert case.scores["lung"]["ra950_error"] is not None


# ------------------------------------------------------------------------------------------- leaderboard
def test_bland_altman_matches_numpy_and_is_on_the_site(tmp_path: Path) -> None:
    from cmsbench.leaderboard.aggregate import load_boards
    from cmsbench.leaderboard.site import build_site
    from cmsbench.testing.synthetic import make_record, write_record

    rng = np.random.default_rng(3)
    cases = [f"RIDER-{i:010d}" for i in range(12)]
    spec = {**get_task(TASK).to_dict(), "main_metric": "psnr", "main_region": "lung"}
    truth = {}
    for method, (bias, sd) in {"identity": (-12.0, 3.0), "kernel_filter": (-9.0, 2.0)}.items():
        d = rng.normal(bias, sd, len(cases))
        truth[method] = d
        scores = {c: {"lung": {"psnr": float(rng.normal(25, 1)), "ra950_error": float(v), "mld_error": float(v * 3)}}
                  for c, v in zip(cases, d, strict=True)}
        write_record(tmp_path / "results", make_record(scores, task=TASK, method=method, spec=spec))
    n, b, s, lo, hi = bland_altman(truth["identity"])
    assert (n, b, s) == (12, pytest.approx(truth["identity"].mean()), pytest.approx(truth["identity"].std(ddof=1)))
    assert lo == pytest.approx(b - 1.96 * s) and hi == pytest.approx(b + 1.96 * s)
    assert math.isnan(bland_altman([1.0])[2]) and bland_altman([])[0] == 0  # no SD with one case
    boards = load_boards(tmp_path / "results")
    build_site(boards, tmp_path / "site", images=False)
    html = next((tmp_path / "site" / "tasks").glob("*.html")).read_text()
    assert "Agreement of lung densitometry (Bland-Altman)" in html
    for d in truth.values():
        _, b, s, lo, hi = bland_altman(d)
        assert f"{b:.2f}" in html and f"[{lo:.2f}, {hi:.2f}]" in html
        _, b3, _, lo3, hi3 = bland_altman(d * 3)
        assert f"[{lo3:.2f}, {hi3:.2f}]" in html
    csv_text = next((tmp_path / "site" / "csv").glob("*/agreement.csv")).read_text()
    assert "ra950_error (lung) bias" in csv_text and "mld_error (lung) loa_high" in csv_text
    from cmsbench.leaderboard.tables import publication_table, to_markdown  # the Markdown table carries them too

    md = to_markdown(publication_table(boards[0]))
    assert "Bland-Altman RA950 (pp)" in md and f"{bland_altman(truth['identity'])[1]:.2f}" in md

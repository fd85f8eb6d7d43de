"""``ct_thin``: thick-to-thin CT slices (issue 16): the slice operators, the MSD CT reader, the scoring
convention (synthesised slices only), the z-interpolation baselines and the unet options.

Quick tests build tiny MSD folders in ``tmp_path``; the phantom comparison uses a 40-subject ``msd_ct``
phantom (generated once per module), paired over its held-out (val + test) subjects.
"""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from heldout import Held, paired_p

from cmsbench.baselines.classical.slices import CubicZ, LinearZ, NearestZ, estimate_factor, interpolate_z
from cmsbench.benchmark.scorer import score_case
from cmsbench.cli import main
from cmsbench.tasks import Volume
from cmsbench.tasks.dataset import check_dataset, open_dataset
from cmsbench.tasks.degradations import degradation
from cmsbench.tasks.degradations.slices import cropped_length, nearest_thick, slab_weights
from cmsbench.tasks.registry import get_task
from cmsbench.testing.conformance import check_method

TASK = "ct_thin"


# -------------------------------------------------------------------------------------- operators
def _volume(shape=(5, 4, 17), seed=0) -> Volume:
    rng = np.random.default_rng(seed)
    return Volume(rng.normal(0.0, 100.0, shape).astype(np.float32), np.diag([2.0, 2.0, 1.0, 1.0]))


@pytest.mark.parametrize("factor", [2, 3, 4, 6])
def test_decimate_keeps_every_kth_slice(factor: int) -> None:
    vol = _volume()
    thick = degradation("decimate", factor=factor, output="thick").apply(vol, seed=0, case_id="a")
    np.testing.assert_array_equal(thick.data, vol.data[..., ::factor])
    assert thick.spacing[2] == pytest.approx(factor * vol.spacing[2])
    np.testing.assert_array_equal(thick.affine[:3, 3], vol.affine[:3, 3])  # voxel 0 in place
    grid = degradation("decimate", factor=factor).apply(vol, seed=0, case_id="a")
    z = np.arange(vol.shape[2])
    ref = vol.data[..., ::factor][..., np.minimum(np.rint(z / factor - 1e-9).astype(int), thick.shape[2] - 1)]
    np.testing.assert_array_equal(grid.data, ref)
    np.testing.assert_array_equal(grid.data[..., ::factor], vol.data[..., ::factor])


@pytest.mark.parametrize("factor", [3, 4])
def test_slab_averages_a_boxcar_of_factor_slices(factor: int) -> None:
    vol = _volume()
    x = vol.data.astype(np.float64)
    n = x.shape[2]
    ref = []
    for c in range(0, n, factor):  # explicit boxcar of width factor centred on slice c
        w = np.array([1.0 if abs(z - c) < factor / 2 else 0.5 if abs(z - c) == factor / 2 else 0.0 for z in range(n)])
        ref.append((x * w).sum(axis=2) / w.sum())
    thick = degradation("slab", factor=factor, output="thick").apply(vol, seed=0, case_id="a")
    np.testing.assert_allclose(thick.data, np.stack(ref, axis=2), rtol=1e-5, atol=1e-3)
    assert slab_weights(n, factor).sum(axis=1) == pytest.approx(1.0)
    if factor == 3:  # odd: exactly the 3 slices c-1, c, c+1
        np.testing.assert_allclose(thick.data[..., 1], x[..., 2:5].mean(axis=2), rtol=1e-5, atol=1e-3)


def test_crop_and_nearest_helpers() -> None:
    assert cropped_length(47, 4) == 45 and cropped_length(49, 6) == 49 and cropped_length(4, 4) == 0
    np.testing.assert_array_equal(nearest_thick(9, 4), [0, 0, 0, 1, 1, 1, 1, 2, 2])


def test_spec_parameters_change_the_fingerprint() -> None:
    task = get_task(TASK)
    assert task.inputs == ("ct_thick",) and task.target == "ct" and task.parameters == {"factor": 4, "operator": "decimate"}
    assert task.data_range.low == -1024 and task.data_range.high == 3071
    # the fixed operator options are the operator's own resolved options, less the parameterised factor
    expected = degradation("decimate", factor=4).options()
    expected["operator_params"].pop("factor")
    assert {k: task.adapter_options[k] for k in expected} == expected
    slab = degradation("slab", factor=4).options()["operator_params"]
    assert {k: v for k, v in slab.items() if k != "factor"} == expected["operator_params"]
    fps = {task.fingerprint(), task.with_parameters(factor=6).fingerprint(),
           task.with_parameters(operator="slab").fingerprint()}
    assert len(fps) == 3


# ------------------------------------------------------------------------------------- MSD layout
def _write(path: Path, data: np.ndarray, spacing=(2.0, 2.0, 1.0), pixdim_z: float | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    img = nib.Nifti1Image(data.astype(np.int16), np.diag([*spacing, 1.0]))
    img.set_sform(img.affine, code=1)
    img.set_qform(img.affine, code=1)
    if pixdim_z is not None:  # a header whose pixdim disagrees with its sform (a wrong slice spacing)
        img.header["pixdim"][3] = pixdim_z
        img.header.set_qform(None, code=0)
        img.header.set_sform(np.diag([*spacing, 1.0]), code=1)
    nib.save(img, str(path))


def _body(shape=(24, 20, 21), seed=0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    x, y, z = np.meshgrid(*[np.linspace(-1, 1, s) for s in shape], indexing="ij")
    vol = np.where(x**2 + y**2 < 0.7, 40.0 + 30 * np.sin(4 * z + 2 * x), -1000.0)
    return vol + rng.normal(0, 5, shape)


def _msd(root: Path, names=("case_0", "case_1", "case_2", "case_3")) -> Path:
    folder = root / "Task03_Liver"
    for i, name in enumerate(names):
        _write(folder / "imagesTr" / f"{name}.nii.gz", _body(seed=i))
    info = {"name": "Liver", "modality": {"0": "CT"}, "numTraining": len(names),
            "training": [{"image": f"./imagesTr/{n}.nii.gz", "label": f"./labelsTr/{n}.nii.gz"} for n in names]}
    (folder / "dataset.json").write_text(json.dumps(info))
    return folder


def test_msd_reader_crops_and_degrades(tmp_path: Path) -> None:
    _msd(tmp_path)
    ds = open_dataset(get_task(TASK), tmp_path, strict=True, use_cache=False)
    assert sorted(ds.refs) == ["case_0", "case_1", "case_2", "case_3"] and not ds.excluded
    case = ds.load_case("case_0")
    assert case.target.shape == (24, 20, 21) and case.inputs["ct_thick"].shape == (24, 20, 21)
    assert case.metadata["acquired_slices"] == [0, 4, 8, 12, 16, 20]
    np.testing.assert_array_equal(case.inputs["ct_thick"].data[..., ::4], case.target.data[..., ::4])
    six = open_dataset(get_task(TASK).with_parameters(factor=6), tmp_path, use_cache=False).load_case("case_0")
    assert six.target.shape[2] == 19 and six.metadata["acquired_slices"] == [0, 6, 12, 18]  # 1 + 3 * 6
    slab = open_dataset(get_task(TASK).with_parameters(operator="slab"), tmp_path, use_cache=False).load_case("case_0")
    assert not slab.masks["acquired"].any() and slab.metadata["degradation"]["name"] == "slab"


def test_msd_reader_excludes_metal_and_names_planted_problems(tmp_path: Path,
                                                              capsys: pytest.CaptureFixture[str]) -> None:
    folder = _msd(tmp_path, names=("case_0", "case_1", "case_2", "metal_3", "gap_4", "gone_5"))
    metal = _body(seed=3)
    metal[5, 5, 5] = 8200.0  # range > 9000 HU
    _write(folder / "imagesTr" / "metal_3.nii.gz", metal)
    _write(folder / "imagesTr" / "gap_4.nii.gz", _body(seed=4), pixdim_z=3.0)
    (folder / "imagesTr" / "gone_5.nii.gz").unlink()
    report = check_dataset(get_task(TASK), tmp_path, use_cache=False)
    assert report.n_cases == 3
    assert [e.subject for e in report.excluded] == ["metal_3"] and "9000" in report.excluded[0].message
    text = "\n".join(str(p) for p in report.problems)
    assert "gone_5.nii.gz" in text and "gap_4.nii.gz" in text and "pixdim" in text
    source = open_dataset(get_task(TASK), tmp_path, use_cache=False).describe_source()  # what records keep
    assert [e["case"] for e in source["excluded"]] == ["metal_3"] and source["n_cases"] == 3
    assert main(["data", "check", "--task", TASK, "--data-root", str(tmp_path)]) == 1
    out = capsys.readouterr().out
    assert "excluded" in out and "metal_3" in out and "gone_5.nii.gz" in out


def test_dataset_json_without_ct_or_training_is_a_problem(tmp_path: Path) -> None:
    folder = _msd(tmp_path)
    (folder / "dataset.json").write_text(json.dumps({"modality": {"0": "MRI"}, "training": []}))
    report = check_dataset(get_task(TASK), tmp_path, use_cache=False)
    assert report.n_cases == 0 and any("dataset.json" in str(p) for p in report.problems)


# ------------------------------------------------------------------------------------ scoring
def _scored(pred: np.ndarray, case) -> dict:
    task = get_task(TASK)
    s = score_case(np.asarray(case.target.data), pred, case.masks, task, case_id=case.case_id)
    return s.values


def test_only_synthesised_slices_count(tmp_path: Path) -> None:
    _msd(tmp_path)
    case = open_dataset(get_task(TASK), tmp_path, use_cache=False).load_case("case_1")
    t = np.asarray(case.target.data)
    acquired = case.masks["acquired"]
    garbage = t + np.random.default_rng(0).normal(0, 800, t.shape).astype(np.float32)
    good = np.where(acquired, garbage, t)  # exact where synthesised, garbage on the copied slices
    values = _scored(good, case)
    for region in ("synthesised", "synthesised_body"):
        assert values[region]["psnr"] == float("inf") and values[region]["mae"] == 0.0
        for metric in ("ssim", "ssim_axial", "ssim_coronal", "ssim_sagittal"):
            assert values[region][metric] == pytest.approx(1.0, abs=1e-6)
    bad = np.where(acquired, t, garbage)  # the reverse
    values = _scored(bad, case)
    assert values["synthesised_body"]["psnr"] < 20 and values["synthesised_body"]["ssim_coronal"] < 0.5


# ---------------------------------------------------------------------------------- baselines
def test_interpolation_baselines_are_exact_on_their_own_models() -> None:
    z = np.arange(21, dtype=np.float64)
    lin = np.broadcast_to(3.0 * z - 7.0, (4, 3, 21)).astype(np.float32)
    cub = np.broadcast_to(0.01 * z**3 - 0.2 * z**2 + z, (4, 3, 21)).astype(np.float32)
    nearest = lambda a: a[..., nearest_thick(21, 4) * 4]  # noqa: E731 - the task's thick-on-thin input
    np.testing.assert_allclose(interpolate_z(nearest(lin), 4, 1), lin, atol=1e-4)
    np.testing.assert_allclose(interpolate_z(nearest(cub), 4, 3), cub, atol=1e-3)
    np.testing.assert_array_equal(interpolate_z(nearest(cub), 4, 0), nearest(cub))
    assert estimate_factor(nearest(cub)) == 4 and estimate_factor(lin) is None


@pytest.mark.parametrize("cls", [NearestZ, LinearZ, CubicZ])
def test_conformance(cls) -> None:
    check_method(cls).raise_if_failed()


def test_runs_end_to_end_through_the_command_line(tmp_path: Path) -> None:
    _msd(tmp_path / "data", names=tuple(f"case_{i}" for i in range(8)))
    args = ["run", "--task", TASK, "--method", "cubic_z", "--data-root", str(tmp_path / "data"),
            "--results", str(tmp_path / "results"), "--quiet"]
    assert main(args) == 0
    record = json.loads(next((tmp_path / "results" / TASK / "cubic_z").glob("*.json")).read_text())
    assert "acquired_slices" in json.dumps(record["scoring"])
    assert "excluded" not in record["data"]


@pytest.fixture(scope="module")
def thin(tmp_path_factory: pytest.TempPathFactory) -> Held:
    from cmsbench.tasks.phantoms import synthesize

    root = synthesize("msd_ct", tmp_path_factory.mktemp("msd_ct"), subjects=40)
    held = Held(TASK, root)
    held.root = root  # type: ignore[attr-defined]
    return held


def _fitted(cls, held: Held, **options):
    method = cls(**options)
    method.fit(held.train, [], seed=0)
    return method


def test_cubic_beats_nearest_on_the_phantom(thin: Held) -> None:
    task = replace(thin.task, metrics=("psnr",))
    thin.task = task
    scores = {cls.card.name: thin.scores(_fitted(cls, thin), "synthesised_body") for cls in (NearestZ, LinearZ, CubicZ)}
    diff, p = paired_p(scores["cubic_z"], scores["nearest_z"])
    assert diff > 1.0 and p < 0.05, (scores, p)
    diff, p = paired_p(scores["linear_z"], scores["nearest_z"])
    assert diff > 1.0 and p < 0.05


def test_phantom_is_labelled_and_checks_clean(thin: Held, capsys: pytest.CaptureFixture[str]) -> None:
    root = thin.root
    info = json.loads((root / "Task90_PhantomAbdomenCT" / "dataset.json").read_text())
    assert info["phantom"] is True and info["modality"] == {"0": "CT"} and len(info["training"]) == 40
    report = check_dataset(get_task(TASK), root, load=False, use_cache=False)
    assert report.ok and [e.subject for e in report.excluded] == ["abdomen_17"]  # its metal implant
    assert main(["data", "card", "msd_ct"]) == 0
    assert "Gaussian noise" in capsys.readouterr().out


@pytest.mark.slow
def test_unet_residual_coronal_beats_cubic(thin: Held) -> None:
    from cmsbench.baselines.learned.supervised import UNet

    # 100 steps of a narrow U-Net on coronal slices (about 40 s on 2 busy CPU cores), scored on 12 held-out
    # cases (inference costs about 2 s a case there); the zero-initialised correction starts at cubic_z
    thin.task = replace(get_task(TASK), metrics=("psnr",))
    held = thin.held
    thin.held = held[:12]
    try:
        cubic = thin.scores(_fitted(CubicZ, thin), "synthesised_body")
        unet = _fitted(UNet, thin, config="small", residual=True, plane="coronal", features=[8, 8, 16, 32, 64, 8],
                       steps=100, lr=1e-3, loss="mse")
        scores = thin.scores(unet, "synthesised_body")
    finally:
        thin.held = held
    diff, p = paired_p(scores, cubic)
    assert diff > 0.1 and p < 0.05, (diff, p)


def test_unet_options_at_their_defaults_keep_the_run_identity() -> None:
    from cmsbench.baselines.learned.supervised import UNet

    plain = UNet().identity_options()
    assert "plane" not in plain and "residual" not in plain
    assert UNet(plane="coronal", residual=True).identity_options()["plane"] == "coronal"
    assert UNet(plane="axial").identity_options() == plain

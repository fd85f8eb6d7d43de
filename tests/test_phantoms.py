"""Tests of the phantom generator: layouts, determinism, split sizes and the physics of each modality.

Physics tests use the in-memory subjects (``make_*``) together with their tissue fractions, so they can
select pure tissue voxels; layout tests read the files ``synthesize`` writes for a few subjects.
"""

from __future__ import annotations

import csv
from pathlib import Path

import nibabel as nib
import numpy as np
import pytest
from scipy import ndimage

from cmsbench.errors import CmsbenchError, UnknownNameError
from cmsbench.tasks.builtin import BUILTIN_TASKS
from cmsbench.tasks.phantoms import (
    PHANTOM_DATASETS,
    UDPET_DRFS,
    anatomy,
    ct,
    datasets,
    pet,
    read_marker,
    subject_ids,
    subject_sites,
    synthesize,
    write_montage,
)
from cmsbench.tasks.splits import make_split

N_SMALL = 2


@pytest.fixture(scope="module")
def generated(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """Each phantom dataset with a few subjects (IXI: one per site), default grids, seed 0."""
    root = tmp_path_factory.mktemp("phantoms")
    return {
        name: synthesize(name, root / name, subjects=3 if name == "ixi" else N_SMALL, seed=0)
        for name in PHANTOM_DATASETS
    }


def _load(path: Path) -> nib.Nifti1Image:
    assert path.is_file(), f"missing {path}"
    return nib.load(str(path))


# --------------------------------------------------------------------------------------- API, names
def test_unknown_dataset_suggests_a_name(tmp_path: Path) -> None:
    with pytest.raises(CmsbenchError, match="did you mean 'brats'"):
        synthesize("brat", tmp_path)
    with pytest.raises(UnknownNameError):
        synthesize("ixi", tmp_path, size="huge")


def test_subject_ids_do_not_depend_on_the_count() -> None:
    for name in PHANTOM_DATASETS:
        assert subject_ids(name, 5) == subject_ids(name)[:5]
    assert subject_ids("brats", 2) == ["BraTS2021_00000", "BraTS2021_00001"]
    assert subject_ids("udpet", 1) == ["UDPET_0001"]
    assert subject_ids("ldct", 1) == ["N001"]
    assert subject_ids("synthrad", 1) == ["1BA001"]
    sites = subject_sites()
    assert set(sites.values()) == {"Guys", "HH", "IOP"}
    assert all(f"-{site}-" in sid for sid, site in sites.items())


@pytest.mark.parametrize("task", BUILTIN_TASKS, ids=lambda t: t.name)
def test_default_dataset_has_at_least_20_test_subjects(task) -> None:
    ids = subject_ids(task.phantom)
    sites = subject_sites() if task.phantom == "ixi" else None
    split = make_split(ids, task.split, sites=sites)
    assert len(split.test) >= 20, f"{task.name}: {split.counts()}"


def test_template_is_found_by_path() -> None:
    folder = anatomy.template_dir()
    for name in anatomy.TEMPLATE_FILES.values():
        assert (folder / name).is_file()


# ---------------------------------------------------------------------------------------- layouts
def test_marker_file(generated: dict[str, Path]) -> None:
    for name, root in generated.items():
        marker = read_marker(root)
        assert marker is not None and marker["phantom"] is True
        assert marker["dataset"] == name and marker["seed"] == 0 and marker["size"] == "default"
        assert marker["subjects"] == (3 if name == "ixi" else N_SMALL)
        assert marker["generator_version"]


def test_brats_layout(generated: dict[str, Path]) -> None:
    root = generated["brats"]
    for sid in subject_ids("brats", N_SMALL):
        imgs = {m: _load(root / sid / f"{sid}_{m}.nii.gz") for m in ("t1", "t1ce", "t2", "flair", "seg")}
        seg = np.asarray(imgs["seg"].dataobj)
        assert seg.dtype == np.uint8 and set(np.unique(seg)) <= {0, 1, 2, 4}
        flair = np.asarray(imgs["flair"].dataobj)
        assert flair.dtype == np.int16
        for img in imgs.values():
            assert np.allclose(img.affine, imgs["t1"].affine) and img.shape == imgs["t1"].shape
            assert nib.aff2axcodes(img.affine) == ("R", "A", "S")
        # skull-stripped: zero outside the brain, and the tumour lies inside the brain
        assert (flair == 0).mean() > 0.3
        assert np.all(flair[seg > 0] > 0)


def test_ixi_layout_and_geometry(generated: dict[str, Path]) -> None:
    root = generated["ixi"]
    for sid in subject_ids("ixi", 3):
        t1, t2, pd = (_load(root / f"IXI-{m}" / f"{sid}-{m}.nii.gz") for m in ("T1", "T2", "PD"))
        assert np.asarray(t2.dataobj).dtype == np.int16
        assert t2.shape == pd.shape and np.allclose(t2.affine, pd.affine)  # dual echo: one grid
        assert t1.shape != t2.shape and not np.allclose(t1.affine, t2.affine)  # T1: its own grid


def test_udpet_layout(generated: dict[str, Path]) -> None:
    root = generated["udpet"]
    with open(root / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert list(rows[0]) == [
        "subject_id",
        "weight_kg",
        "injected_activity_bq",
        "acquisition_delay_s",
        "half_life_s",
        "scanner",
    ]
    assert [r["subject_id"] for r in rows] == subject_ids("udpet", N_SMALL)
    assert float(rows[0]["half_life_s"]) == pytest.approx(6586.2)
    for sid in subject_ids("udpet", N_SMALL):
        full = _load(root / sid / "Full_dose.nii.gz")
        assert np.asarray(full.dataobj).dtype == np.float32
        for drf in UDPET_DRFS:
            low = _load(root / sid / f"1-{drf} dose.nii.gz")
            assert low.shape == full.shape and np.allclose(low.affine, full.affine)
        mask = np.asarray(_load(root / sid / "lesion_mask.nii.gz").dataobj)
        assert mask.dtype == np.uint8 and set(np.unique(mask)) <= {0, 1} and mask.sum() > 0


def test_ldct_dicom_layout(generated: dict[str, Path]) -> None:
    import pydicom

    root = generated["ldct"]
    for pid in subject_ids("ldct", N_SMALL):
        studies = list((root / pid).iterdir())
        assert len(studies) == 1
        full_dirs = list(studies[0].glob("1.000000-Full Dose Images-*"))
        low_dirs = list(studies[0].glob("2.000000-Low Dose Images-*"))
        assert len(full_dirs) == 1 and len(low_dirs) == 1
        uids = set()
        for folder, desc in ((full_dirs[0], "Full Dose Images"), (low_dirs[0], "Low Dose Images")):
            files = sorted(folder.glob("1-*.dcm"))
            assert files[0].name == "1-001.dcm"
            ds = pydicom.dcmread(files[len(files) // 2])
            assert ds.Modality == "CT" and ds.SeriesDescription == desc and ds.PatientID == pid
            assert ds.PixelRepresentation == 1 and ds.BitsAllocated == 16 and ds.BitsStored == 16
            assert ds.HighBit == 15 and ds.PhotometricInterpretation == "MONOCHROME2"
            assert float(ds.RescaleSlope) == 1.0 and float(ds.RescaleIntercept) == 0.0
            assert [float(v) for v in ds.ImageOrientationPatient] == [1, 0, 0, 0, 1, 0]
            arr = ds.pixel_array
            assert arr.dtype == np.int16 and arr.shape == (ds.Rows, ds.Columns)
            assert arr.min() < -900 and arr.max() > 700  # air and bone in HU
            uids.add(ds.SeriesInstanceUID)
            z = [float(pydicom.dcmread(f, stop_before_pixels=True).ImagePositionPatient[2]) for f in files]
            assert np.all(np.diff(z) > 0)
        assert len(uids) == 2


def test_chest_dual_kernel_layout(generated: dict[str, Path]) -> None:
    """ct_kernel's phantom: one study per subject holding two series told apart by ConvolutionKernel."""
    import pydicom

    from cmsbench.tasks.phantoms import chest

    root = generated["chest"]
    for pid in subject_ids("chest", N_SMALL):
        (study,) = list((root / pid).iterdir())
        series = sorted(d for d in study.iterdir() if d.is_dir())
        assert len(series) == 2
        heads = [pydicom.dcmread(next(d.glob("1-*.dcm")), stop_before_pixels=True) for d in series]
        assert [h.ConvolutionKernel for h in heads] == [chest.SMOOTH_KERNEL, chest.SHARP_KERNEL]
        assert heads[0].StudyInstanceUID == heads[1].StudyInstanceUID and heads[0].PatientID == pid
        assert heads[0].SeriesInstanceUID != heads[1].SeriesInstanceUID and heads[0].BodyPartExamined == "CHEST"
        assert len(list(series[0].glob("*.dcm"))) == chest.CHEST_GRIDS["default"].shape[2]


def test_chest_kernels_share_one_acquisition() -> None:
    """Both kernels reconstruct one noisy sinogram: the sharp one is noisier in the lung, the noise-free HU is
    the same, and the anatomy holds lung, emphysema, vessels and bone."""
    sub = datasets_chest().make_chest(0)
    lung = sub.lung > 0.99
    assert lung.sum() > 5000 and (sub.emphysema > 0.5).sum() > 0 and (sub.hu > 700).any()
    hf = lambda img: np.diff(img, axis=0)[lung[1:]].std()  # noqa: E731 - high-pass proxy of the noise
    assert hf(sub.sharp) > 1.5 * hf(sub.smooth)
    assert abs(float(np.median(sub.sharp[lung] - sub.smooth[lung]))) < 40  # one acquisition, one mean


def datasets_chest():
    from cmsbench.tasks.phantoms import chest

    return chest


def test_synthrad_layout(generated: dict[str, Path]) -> None:
    root = generated["synthrad"]
    for sid in subject_ids("synthrad", N_SMALL):
        folder = root / "Task1" / "brain" / sid
        mr, ctv, mask = (_load(folder / f"{m}.nii.gz") for m in ("mr", "ct", "mask"))
        assert np.allclose(mr.affine, ctv.affine) and np.allclose(mask.affine, ctv.affine)
        c = np.asarray(ctv.dataobj)
        m = np.asarray(mask.dataobj)
        assert c.dtype == np.int16 and np.asarray(mr.dataobj).dtype == np.int16 and m.dtype == np.uint8
        assert set(np.unique(m)) == {0, 1}
        assert np.median(c[m == 0]) < -900  # outside the dilated body mask: air
        assert (c[m == 1] > 700).any()  # bone inside


def test_montage_is_a_png(generated: dict[str, Path], tmp_path: Path) -> None:
    for name in ("brats", "ldct"):
        out = write_montage(generated[name], tmp_path / f"{name}.png")
        assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 5000


# ---------------------------------------------------------------------------------- determinism
def _tree_bytes(root: Path) -> dict[str, bytes]:
    return {str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes(tmp_path: Path, generated: dict[str, Path]) -> None:
    for name in ("brats", "ldct", "chest"):
        again = _tree_bytes(synthesize(name, tmp_path / f"{name}-a", subjects=1, seed=0))
        first = _tree_bytes(generated[name])
        assert again, name
        for rel, blob in again.items():
            if rel == ".cmsbench_phantom.json":
                continue  # records the subject count, which differs here
            # subject 0 is byte-identical whatever the number of subjects generated
            assert first[rel] == blob, f"{name}: {rel} differs between runs with the same seed"


def test_different_seeds_give_different_subjects() -> None:
    a = datasets.make_synthrad(0, seed=1)
    b = datasets.make_synthrad(0, seed=2)
    assert a.subject_id == b.subject_id
    assert not np.array_equal(a.ct, b.ct) and not np.array_equal(a.mr, b.mr)
    # and different subjects of one seed differ too
    assert not np.array_equal(datasets.make_synthrad(1, seed=1).mr, a.mr)


# ----------------------------------------------------------------------------------- MR physics
def _median(img: np.ndarray, mask: np.ndarray) -> float:
    assert mask.sum() >= 10, "too few voxels for a robust statistic"
    return float(np.median(img[mask]))


def _pure(tissues: anatomy.Tissues, name: str, level: float = 0.9) -> np.ndarray:
    return tissues[name] >= level


@pytest.fixture(scope="module")
def brats_subjects() -> list[datasets.BratsSubject]:
    return [datasets.make_brats(i, seed=0) for i in range(5)]


def test_brats_tissue_contrast(brats_subjects: list[datasets.BratsSubject]) -> None:
    nulled = 0
    for sub in brats_subjects:
        t, im = sub.tissues, sub.images
        wm, gm, csf = _pure(t, "wm"), _pure(t, "gm", 0.8), _pure(t, "csf") & (t.brain >= 0.9)
        assert _median(im["t1"], wm) > 1.1 * _median(im["t1"], gm)  # T1w: WM brighter than GM
        assert _median(im["t2"], wm) < 0.9 * _median(im["t2"], gm)  # T2w: WM darker than GM
        assert _median(im["t2"], csf) > _median(im["t2"], gm)  # T2w: CSF bright
        # FLAIR: CSF nulled where a FLAIR voxel sees mostly CSF through its thick slice's profile
        acq = sub.flair_acquisition
        seen = acq.resample(acq.acquire(t["csf"], sub.grid.spacing), t["csf"].shape[acq.axis], sub.grid.spacing)
        csf_seen = (seen >= 0.8) & (t.brain >= 0.9)
        if csf_seen.sum() >= 10:
            assert _median(im["flair"], csf_seen) < 0.5 * _median(im["flair"], wm)
            nulled += 1
    assert nulled >= 3, f"deep CSF found in {nulled} of {len(brats_subjects)} subjects only"


def test_brats_tumour_contrast(brats_subjects: list[datasets.BratsSubject]) -> None:
    checked_edema = checked_enh = 0
    for sub in brats_subjects:
        t, im = sub.tissues, sub.images
        healthy = max(_median(im["flair"], _pure(t, "wm")), _median(im["flair"], _pure(t, "gm", 0.8)))
        edema = t["edema"] >= 0.6
        if edema.sum() >= 10:
            assert _median(im["flair"], edema) > 1.2 * healthy  # oedema bright on FLAIR
            assert _median(im["t2"], edema) > 1.2 * _median(im["t2"], _pure(t, "gm", 0.8))
            checked_edema += 1
        enh = t["enhancing"] >= 0.6
        if enh.sum() >= 10:
            wm = _pure(t, "wm")
            assert _median(im["t1ce"], enh) > 1.1 * _median(im["t1ce"], wm)  # enhances on T1ce
            assert _median(im["t1"], enh) < _median(im["t1"], wm)  # but not on T1
            checked_enh += 1
        # labels follow the compartments
        assert np.all(sub.labels[t["necrosis"] >= 0.9] == 1)
        assert np.all(sub.labels[t["enhancing"] >= 0.9] == 4)
        assert np.all(sub.labels[(t["edema"] >= 0.9)] == 2)
        assert not np.any(sub.labels[t.brain < 0.5])
    assert checked_edema >= 1 and checked_enh >= 1


def test_brats_tumours_vary_in_size(brats_subjects: list[datasets.BratsSubject]) -> None:
    volumes = [int((sub.labels > 0).sum()) for sub in brats_subjects]
    assert min(volumes) > 0 and max(volumes) > 3 * min(volumes)


def test_ixi_sites_contrast_and_t1_motion() -> None:
    sites = set()
    for i in range(3):
        sub = datasets.make_ixi(i)
        sites.add(sub.site)
        t2t, t1t = sub.tissues["t2"], sub.tissues["t1"]
        # contrast physics, with the (known) smooth coil bias divided out
        t1 = sub.images["T1"] / sub.bias["t1"]
        t2, pd = sub.images["T2"] / sub.bias["t2"], sub.images["PD"] / sub.bias["t2"]
        assert sub.bias["t2"].max() / sub.bias["t2"].min() > 1.2  # the bias field is there
        assert _median(t1, _pure(t1t, "wm")) > 1.05 * _median(t1, _pure(t1t, "gm", 0.8))
        assert _median(t2, _pure(t2t, "wm")) < 0.85 * _median(t2, _pure(t2t, "gm", 0.8))
        assert _median(t2, _pure(t2t, "csf")) > _median(t2, _pure(t2t, "gm", 0.8))
        # PD-weighted: grey matter (PD 0.86) brighter than white matter (PD 0.77)
        assert _median(pd, _pure(t2t, "gm", 0.8)) > 1.03 * _median(pd, _pure(t2t, "wm"))
        # the head moved 1-3 mm / 1-3 degrees between T2/PD and T1
        rot = sub.motion[:3, :3]
        angle = np.degrees(np.arccos(np.clip((np.trace(rot) - 1) / 2, -1, 1)))
        assert 0.99 <= angle <= 3.01

        # the T1 header describes its own grid truthfully: brain centroids in world mm differ by
        # about the head movement, while T2 and PD share one grid
        def centroid(tis: anatomy.Tissues, grid) -> np.ndarray:
            ijk = np.array(ndimage.center_of_mass(tis.brain))
            return grid.affine[:3, :3] @ ijk + grid.affine[:3, 3]

        shift = np.linalg.norm(centroid(t1t, sub.grids["t1"]) - centroid(t2t, sub.grids["t2"]))
        assert 0.7 < shift < 4.0, shift
    assert sites == {"Guys", "HH", "IOP"}


# ----------------------------------------------------------------------------------- CT physics
def test_ct_hounsfield_units() -> None:
    sub = datasets.make_ldct(0)
    t = sub.tissues
    assert _median(sub.full, t["bone"] >= 0.8) > 700
    air = (t["air"] >= 0.99) & ct.projector(sub.grid.shape[0]).inside[:, :, None]
    assert abs(_median(sub.full, air) + 1000) < 30
    assert 15 < _median(sub.full, _pure(t, "wm")) < 35 and 30 < _median(sub.full, _pure(t, "gm", 0.8)) < 50


def test_ct_noise_grows_as_one_over_sqrt_dose() -> None:
    sub = datasets.make_ldct(1)
    ref = ct.reconstruct_noiseless(sub.hu, sub.grid.spacing[0])
    region = ndimage.binary_erosion(sub.tissues.brain >= 0.5, iterations=3)
    rng = np.random.default_rng(0)
    doses = ct.simulate_doses(sub.hu, sub.grid.spacing[0], rng, (1.0, 0.25, 0.1))
    sd = {d: float(np.std((img - ref)[region])) for d, img in doses.items()}
    assert 5 < sd[1.0] < 25  # full-dose noise of a head CT, HU
    assert sd[0.25] / sd[1.0] == pytest.approx(2.0, rel=0.12)
    assert sd[0.1] / sd[1.0] == pytest.approx(np.sqrt(10), rel=0.12)
    # the files' quarter dose is noisier than their full dose by about the same factor
    assert np.std((sub.low - ref)[region]) / np.std((sub.full - ref)[region]) == pytest.approx(2.0, rel=0.15)


# ---------------------------------------------------------------------------------- PET physics
def test_pet_uptake_lesions_and_noise() -> None:
    sub = datasets.make_udpet(0)
    t, m = sub.tissues, sub.meta
    suv = sub.activity * m.weight_kg * 1000.0 / (m.injected_activity_bq * pet.decay_factor(m.acquisition_delay_s))
    gm, wm = _median(suv, _pure(t, "gm", 0.8)), _median(suv, _pure(t, "wm"))
    assert 7.0 < gm < 11.0 and 3.0 < gm / wm < 5.0
    # hot lesions: lesion-to-background ratio > 2 after the PSF (background: a shell around the lesion)
    lesion = sub.lesion >= 0.5
    labels, n = ndimage.label(lesion)
    for k in range(1, n + 1):
        les = labels == k
        shell = ndimage.binary_dilation(les, iterations=3) & ~ndimage.binary_dilation(les, iterations=1)
        shell &= t.brain >= 0.5
        assert sub.blurred[les].mean() / sub.blurred[shell].mean() > 2.0
    # Poisson noise: low dose = thinned counts x drf, so E[low] = full and std(low - full) ~ sqrt(drf - 1)
    brain = t.brain >= 0.5
    sd = {drf: float(np.std((img - sub.full)[brain])) for drf, img in sub.low.items()}
    assert sd[100] / sd[4] == pytest.approx(np.sqrt(99 / 3), rel=0.15)
    assert sd[20] / sd[2] == pytest.approx(np.sqrt(19), rel=0.15)
    assert sub.low[10][brain].mean() == pytest.approx(sub.full[brain].mean(), rel=0.03)
    noise_full = float(np.std((sub.full - sub.blurred)[brain]))
    noise_4 = float(np.std((sub.low[4] - sub.blurred)[brain]))
    assert noise_4 / noise_full == pytest.approx(2.0, rel=0.15)

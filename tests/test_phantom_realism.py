"""Acquisition realism of the BraTS phantom (generator 2.0): thick-slice FLAIR, independent bias fields,
residual misalignment, partial-volume signal mixing, lesion texture, and oedema hyperintense on FLAIR."""

from __future__ import annotations

import numpy as np
import pytest

from cmsbench.tasks.phantoms import datasets, mri
from cmsbench.tasks.phantoms import geometry as geo
from cmsbench.tasks.phantoms.acquisition import Misalignment, SliceAcquisition
from cmsbench.tasks.phantoms.catalog import generator_version


def _fwhm(profile: np.ndarray) -> float:
    """Full width at half maximum (in samples) of a single-peaked profile, crossings interpolated."""
    p = np.asarray(profile, dtype=np.float64)
    i, half = int(p.argmax()), p.max() / 2.0
    left, right = i, i
    while left > 0 and p[left - 1] > half:
        left -= 1
    while right < len(p) - 1 and p[right + 1] > half:
        right += 1
    lo = left - 1 + (half - p[left - 1]) / (p[left] - p[left - 1]) if left > 0 else float(left)
    hi = right + (p[right] - half) / (p[right] - p[right + 1]) if right < len(p) - 1 else float(right)
    return float(hi - lo)


def _sharpness(img: np.ndarray, mask: np.ndarray, spacing: tuple[float, ...], axis: int) -> float:
    """RMS intensity gradient (per mm) along ``axis`` between neighbouring voxels both inside ``mask``."""
    d = np.diff(img.astype(np.float64), axis=axis) / spacing[axis]
    n = mask.shape[axis]
    keep = np.take(mask, range(1, n), axis=axis) & np.take(mask, range(n - 1), axis=axis)
    return float(np.sqrt(np.mean(d[keep] ** 2)))


def _centred_log(sub: datasets.BratsSubject, name: str, mask: np.ndarray) -> np.ndarray:
    """log(image / bias) in ``mask``, minus its mean."""
    values = np.log(np.maximum(sub.images[name][mask], 1) / sub.bias[name][mask])
    return values - values.mean()


@pytest.fixture(scope="module")
def subjects() -> list[datasets.BratsSubject]:
    return [datasets.make_brats(i, seed=0) for i in range(6)]


def test_generator_version_of_the_brats_phantom_is_recorded() -> None:
    assert generator_version("brats") == "2.0" and generator_version("ldct") == "1.0"


# ------------------------------------------------------------------------------------ thick-slice FLAIR
@pytest.mark.parametrize("factor", [2.5, 3.7, 5.0])
@pytest.mark.parametrize("offset", [0.0, 0.4])
def test_flair_through_plane_psf_is_wider_than_in_plane_by_the_factor(factor: float, offset: float) -> None:
    """On a 1 mm grid, a point imaged by slices of thickness ``factor`` mm (resampled to 1 mm) spreads over
    at least ``factor`` voxels through-plane at every position, while in-plane it stays one voxel wide."""
    acq = SliceAcquisition(axis=2, thickness_mm=factor, offset_mm=offset * factor)
    n = 48
    widths = []
    for z in range(12, 36):
        delta = np.zeros((9, 9, n), np.float32)
        delta[4, 4, z] = 1.0
        image = acq.resample(acq.acquire(delta, (1.0, 1.0, 1.0)), n, (1.0, 1.0, 1.0))
        assert np.all(image[[3, 5], 4, :] == 0) and np.all(image[4, [3, 5], :] == 0)  # in-plane untouched
        widths.append(_fwhm(image[4, 4, :]) / _fwhm(image[:, 4, int(np.argmax(image[4, 4]))]))
    np.testing.assert_allclose(acq.psf_matrix(n, 1.0).sum(axis=1), 1.0, rtol=1e-6)  # a flat image stays flat
    assert min(widths) >= factor and np.median(widths) <= 2.0 * factor, widths


def test_subjects_flair_is_blurred_through_its_slices_and_t2_is_not(subjects) -> None:
    lo, hi = datasets.BRATS_FLAIR_THICKNESS
    for sub in subjects:
        acq = sub.flair_acquisition
        factor = acq.thickness_mm / min(sub.grid.spacing[:2])
        assert lo <= factor <= hi and acq.axis in (0, 1, 2)
        brain = sub.tissues.brain >= 0.9
        other = [a for a in (0, 1, 2) if a != acq.axis]

        def ratio(img: np.ndarray, sub=sub, brain=brain, acq=acq, other=other) -> float:
            """Gradients across the FLAIR slices over gradients within them."""
            return _sharpness(img, brain, sub.grid.spacing, acq.axis) / np.mean(
                [_sharpness(img, brain, sub.grid.spacing, a) for a in other])

        assert ratio(sub.images["flair"]) < 0.85 * ratio(sub.images["t2"]), sub.subject_id


# --------------------------------------------------------------------------------------------- bias
def test_every_sequence_has_its_own_bias_field(subjects) -> None:
    for sub in subjects:
        logs = {k: np.log(v[sub.tissues.brain >= 0.5]) for k, v in sub.bias.items()}
        assert set(logs) == {"t1", "t1ce", "t2", "flair"}
        for a in logs:
            for b in logs:
                if a < b:
                    assert abs(np.corrcoef(logs[a], logs[b])[0, 1]) < 0.99, (sub.subject_id, a, b)
        # and the images carry them: t1 and t1ce share TR/TE, so in healthy white matter their ratio is the
        # ratio of their bias fields (times noise and the scanners' gains)
        wm = (sub.tissues["wm"] >= 0.95) & (sub.labels == 0)
        measured = np.log(sub.images["t1ce"][wm].astype(float) / np.maximum(sub.images["t1"][wm], 1))
        expected = np.log(sub.bias["t1ce"][wm] / sub.bias["t1"][wm])
        assert np.corrcoef(measured, expected)[0, 1] > 0.5, sub.subject_id


# ---------------------------------------------------------------------------------------- alignment
def test_misalignment_moves_the_image_by_its_translation() -> None:
    grid = geo.Grid((40, 40, 20), (1.0, 1.0, 2.0), (0.0, 0.0, 0.0))
    ijk = np.stack(np.meshgrid(*[np.arange(n) for n in grid.shape], indexing="ij"), axis=-1)
    world = geo.apply(grid.affine, ijk)
    blob = np.exp(-np.sum((world / np.array([6.0, 5.0, 8.0])) ** 2, axis=-1)).astype(np.float32)
    moved = Misalignment((0.0, 0.0, 0.0), (0.6, -0.3, 0.5)).apply(blob, grid)

    def centroid(img: np.ndarray) -> np.ndarray:
        return (world * img[..., None]).sum(axis=(0, 1, 2)) / img.sum()

    np.testing.assert_allclose(centroid(moved) - centroid(blob), [0.6, -0.3, 0.5], atol=0.03)
    turned = Misalignment((0.0, 0.0, 10.0), (0.0, 0.0, 0.0))
    assert turned.max_displacement_mm(grid) > 3.0  # a rotation about the centre moves the corners


def test_sequences_are_misaligned_by_sub_voxel_amounts(subjects) -> None:
    sd_rot, sd_shift = datasets.BRATS_MISALIGNMENT_SD
    shifts = []
    for sub in subjects:
        assert set(sub.misalignment) == {"t1", "t2", "flair"}  # t1ce is the labels' frame
        for m in sub.misalignment.values():
            assert np.all(np.abs(m.rotation_deg) <= 2.5 * sd_rot) and np.all(np.abs(m.translation_mm) <= 2.5 * sd_shift)
            shifts.append(np.linalg.norm(m.translation_mm))
    assert 0.1 < float(np.mean(shifts)) < 1.0  # present, and below one voxel at BraTS's 1 mm


# ---------------------------------------------------------------------------------- partial volume
def test_tissue_fractions_not_labels_drive_the_signal(subjects) -> None:
    seq = mri.Sequence("t2", "se", 5000.0, 100.0)
    table = mri.relaxation_table(1.5)
    f = np.linspace(0.0, 1.0, 11, dtype=np.float32)
    mixed = mri.mr_image({"wm": f, "gm": 1.0 - f}, table, seq)
    np.testing.assert_allclose(mixed, f * seq.signal(table["wm"]) + (1 - f) * seq.signal(table["gm"]), rtol=1e-5)
    sub = subjects[0]
    boundary = (sub.tissues["wm"] > 0.2) & (sub.tissues["wm"] < 0.8) & (sub.tissues["gm"] > 0.2)
    assert boundary.sum() > 500  # a large share of brain voxels hold two tissues


# ------------------------------------------------------------------------------------ lesion texture
def test_lesion_texture_affects_t2_and_flair_differently(subjects) -> None:
    table = {**mri.relaxation_table(1.5), **mri.LESION_SUBSTRUCTURE_1P5T}
    t2 = mri.Sequence("t2", "se", 5000.0, 100.0)
    flair = mri.Sequence("flair", "ir", 9000.0, 125.0, mri.flair_null_ti(table["csf"].t1_ms, 9000.0))
    for seq, sign in ((t2, 1), (flair, -1)):  # fluid in oedema: brighter on T2, darker on FLAIR
        assert sign * (seq.signal(table["lesion_fluid"]) - seq.signal(table["edema"])) > 0
    for seq, sign in ((t2, -1), (flair, 1)):  # debris in necrosis: darker on T2, brighter on FLAIR
        assert sign * (seq.signal(table["necrotic_debris"]) - seq.signal(table["necrosis"])) > 0
    fluid, t2_img, flair_img = [], [], []
    for sub in subjects:
        edema = sub.tissues["edema"] >= 0.9
        assert sub.substructure.fluid[edema].std() > 0.01  # heterogeneous, not a constant share
        share = sub.substructure.fluid[edema]
        fluid.append(share - share.mean())  # within-subject variation only: centred, intensities in log

        t2_img.append(_centred_log(sub, "t2", edema))
        flair_img.append(_centred_log(sub, "flair", edema))
    fluid_all = np.concatenate(fluid)
    r_flair = np.corrcoef(fluid_all, np.concatenate(flair_img))[0, 1]
    r_t2 = np.corrcoef(fluid_all, np.concatenate(t2_img))[0, 1]
    assert r_flair < -0.15 and r_t2 > r_flair + 0.15, (r_flair, r_t2)


# --------------------------------------------------------------------------- oedema bright on FLAIR
@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_edema_is_brighter_than_healthy_flair_in_every_subject(seed: int) -> None:
    """In every subject the oedema's mean FLAIR exceeds the healthy-brain median as stored, and by more than
    20 % with the (known) bias field divided out: a strong bias can darken a lesion's site by 25 %."""
    raw, unbiased = [], []
    for i in range(20):
        sub = datasets.make_brats(i, seed=seed)
        brain, edema, healthy = sub.tissues.brain >= 0.5, sub.labels == 2, (sub.tissues.brain >= 0.5) & (sub.labels == 0)
        if not edema.any():
            continue
        for out, flair in ((raw, sub.images["flair"].astype(np.float64)), (unbiased, sub.images["flair"] / sub.bias["flair"])):
            out.append(flair[edema].mean() / np.median(flair[healthy & brain]))
    assert len(raw) >= 15
    assert min(raw) > 1.0, sorted(raw)[:3]
    assert min(unbiased) > 1.2, sorted(unbiased)[:3]


# --------------------------------------------------------------------------------- cached phantoms
def test_a_cached_phantom_of_another_generator_version_is_generated_again(tmp_path, monkeypatch) -> None:
    import json

    import cmsbench.tasks.phantoms as phantoms
    from cmsbench.tasks.datasource import ensure_phantom
    from cmsbench.tasks.phantoms.writers import MARKER_NAME, write_marker

    monkeypatch.setenv("CMSBENCH_HOME", str(tmp_path))
    calls = []

    def fake_synthesize(dataset, out, *, subjects=None, seed=0, size="default"):
        calls.append(dataset)
        (out / "subject.txt").write_text(f"generation {len(calls)}")
        write_marker(out, dataset, seed, size, 1)
        return out

    monkeypatch.setattr(phantoms, "synthesize", fake_synthesize)
    root = ensure_phantom("brats")
    assert ensure_phantom("brats") == root and len(calls) == 1  # cached
    marker = json.loads((root / MARKER_NAME).read_text())
    assert marker["generator_version"] == generator_version("brats")
    marker["generator_version"] = "1.0"  # as written by the previous generator
    (root / MARKER_NAME).write_text(json.dumps(marker))
    assert ensure_phantom("brats") == root and len(calls) == 2
    assert (root / "subject.txt").read_text() == "generation 2"
    assert json.loads((root / MARKER_NAME).read_text())["generator_version"] == "2.0"
    assert sorted(p.name for p in root.parent.iterdir()) == [root.name]  # nothing stale left beside it


def test_the_card_lists_each_feature_with_its_parameter_and_source(capsys) -> None:
    from cmsbench.cli import main

    assert main(["data", "card", "brats"]) == 0
    out = capsys.readouterr().out
    assert "generator version 2.0" in out
    assert out.count("parameter:") == out.count("source:") >= 6
    assert "Menze" in out and str(datasets.BRATS_EDEMA_FLAIR_OVER_GM) in out

"""The phantom datasets, each written in its publisher's layout.

Every subject is drawn from its own generator seeded by (seed, dataset, subject index), so subject k is
identical whatever the number of subjects. Grids are RAS+ (mm); the ``default`` size is small enough to
generate a dataset in about a minute on two cores, ``full`` uses the real datasets' resolutions.
"""

from __future__ import annotations

import csv
import io
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import ndimage

from cmsbench.tasks.phantoms import anatomy, ct, lesions, mri, pet
from cmsbench.tasks.phantoms import geometry as geo
from cmsbench.tasks.phantoms.acquisition import Misalignment, SliceAcquisition
from cmsbench.tasks.phantoms.catalog import UDPET_DRFS, ixi_site, subject_id
from cmsbench.tasks.phantoms.writers import (
    deterministic_date,
    deterministic_uid,
    stable_int,
    subject_rng,
    write_ct_slice,
    write_nifti,
)

logger = logging.getLogger(__name__)

_MR_CENTER = (0.0, -17.0, 15.0)

#: Voxel grids per dataset and size. IXI has a T2/PD grid and its own T1 grid.
GRIDS: dict[str, dict[str, dict[str, geo.Grid]]] = {
    "default": {
        "brats": {"mr": geo.Grid((96, 96, 24), (2.4, 2.4, 5.0), _MR_CENTER)},
        "ixi": {
            "t2": geo.Grid((96, 96, 24), (2.4, 2.4, 5.0), _MR_CENTER),
            "t1": geo.Grid((100, 100, 30), (2.3, 2.3, 4.4), (0.0, -15.0, 16.0)),
        },
        "udpet": {"pet": geo.Grid((64, 64, 24), (3.6, 3.6, 5.0), _MR_CENTER)},
        "ldct": {"ct": geo.Grid((128, 128, 12), (1.9, 1.9, 5.0), (0.0, -17.0, 20.0))},
        "synthrad": {"mr": geo.Grid((96, 96, 24), (2.4, 2.4, 5.0), _MR_CENTER)},
    },
    "full": {
        "brats": {"mr": geo.Grid((240, 240, 155), (1.0, 1.0, 1.0), (0.0, -17.0, 5.0))},
        "ixi": {
            "t2": geo.Grid((256, 256, 130), (0.9375, 0.9375, 1.2), (0.0, -17.0, 10.0)),
            "t1": geo.Grid((256, 256, 150), (0.9375, 0.9375, 1.2), (0.0, -15.0, 12.0)),
        },
        "udpet": {"pet": geo.Grid((128, 128, 96), (1.8, 1.8, 1.8), (0.0, -17.0, 12.0))},
        "ldct": {"ct": geo.Grid((256, 256, 40), (0.95, 0.95, 2.5), (0.0, -17.0, 20.0))},
        "synthrad": {"mr": geo.Grid((240, 240, 155), (1.0, 1.0, 1.0), (0.0, -17.0, 5.0))},
    },
}


def _resolution(grid: geo.Grid) -> int:
    """Template resolution (mm) to sample a grid from: 1 mm for fine grids, else 2 mm."""
    return 1 if min(grid.spacing) < 1.5 else 2


def _tissues(anat: anatomy.SubjectAnatomy, grid: geo.Grid, sample_mm: float = 2.5, **kw: object) -> anatomy.Tissues:
    """Tissue fractions on ``grid`` with sub-voxel samples about ``sample_mm`` apart (at least the
    template resolution): 5 mm slices get two samples each, which models the slice profile."""
    return anatomy.tissue_fractions(anat, grid, sample_mm=max(sample_mm, anat.resolution_mm), **kw)  # type: ignore[arg-type]


def _mr_volume(
    fractions: dict[str, np.ndarray],
    table: dict[str, mri.Relaxation],
    seq: mri.Sequence,
    grid: geo.Grid,
    rng: np.random.Generator,
    *,
    bias: float,
    noise: float,
    wm_level: float,
    gadolinium: dict[str, float] | None = None,
    bias_field: np.ndarray | None = None,
) -> np.ndarray:
    """One int16 MR magnitude image: physics signal x bias field, Rician noise of std ``noise`` x the WM
    signal, scaled so that white matter is about ``wm_level``."""
    signal = mri.mr_image(fractions, table, seq, gadolinium)
    field = bias_field if bias_field is not None else mri.bias_field(grid, rng, bias)
    ref = max(seq.signal(table["wm"]), 1e-6)
    noisy = mri.rician(signal * field, noise * ref, rng)
    return mri.to_int16(noisy, wm_level / ref)


# --------------------------------------------------------------------------------------------- BraTS
#: FLAIR slice thickness in units of the grid's in-plane voxel (BraTS FLAIR: 2D, 2-6 mm slices on ~1 mm
#: in-plane voxels; Menze et al. 2015). The draw is uniform over this range, per subject.
BRATS_FLAIR_THICKNESS = (2.5, 5.0)
#: FLAIR slice orientation (array axis of a RAS+ grid), drawn uniformly from this tuple: axial in 3 of 5
#: subjects, coronal and sagittal in 1 of 5 each (BraTS: "axial, coronal or sagittal 2D acquisitions").
BRATS_FLAIR_AXES = (2, 2, 2, 1, 0)
#: Residual misalignment of t1, t2 and flair against t1ce (the frame of the labels): rotation sd (degrees
#: per axis) and translation sd (mm per axis), each clipped at 2.5 sd; sub-voxel at BraTS's 1 mm.
BRATS_MISALIGNMENT_SD = (0.3, 0.3)
#: Oedema's FLAIR signal is kept at least this many times grey matter's (before the lesion texture).
BRATS_EDEMA_FLAIR_OVER_GM = 1.6


@dataclass(frozen=True)
class BratsSubject:
    """One BraTS-like subject in memory: int16 images (skull-stripped), labels and tissue fractions, and
    the acquisition facts behind the images (for tests and the phantom card)."""

    subject_id: str
    grid: geo.Grid
    images: dict[str, np.ndarray]  # t1, t1ce, t2, flair
    labels: np.ndarray  # uint8 {0, 1, 2, 4}
    tissues: anatomy.Tissues
    bias: dict[str, np.ndarray]  # multiplicative coil bias per sequence (independent draws)
    flair_acquisition: SliceAcquisition
    misalignment: dict[str, Misalignment]  # per sequence except t1ce
    substructure: lesions.Substructure


def make_brats(index: int, seed: int = 0, size: str = "default") -> BratsSubject:
    """Subject ``index`` of the BraTS phantom (1.5 T spin-echo T1/T1ce/T2 and FLAIR, one glioma).

    Acquisition realism (phantom generator 2.0): every sequence has its own bias field; t1, t2 and flair
    are residually misaligned against t1ce; FLAIR is acquired as thick 2D slices and resampled onto the
    grid; oedema and necrosis carry a fluid / debris texture. Partial-volume tissue fractions (not labels)
    drive the signal equations.
    """
    grid = GRIDS[size]["brats"]["mr"]
    rng = subject_rng(seed, "brats", index)
    anat = anatomy.draw_anatomy(rng, _resolution(grid))
    tumour = lesions.insert_tumours(_tissues(anat, grid), grid, rng)
    fr = tumour.tissues.fractions
    table = mri.jitter_table(mri.relaxation_table(1.5), rng)
    tr1, te1 = rng.uniform(450, 650), rng.uniform(8, 15)
    tr_f = rng.uniform(8000, 10000)
    seqs = {
        "t1": mri.Sequence("t1", "se", tr1, te1),
        "t1ce": mri.Sequence("t1ce", "se", tr1, te1),
        "t2": mri.Sequence("t2", "se", rng.uniform(4000, 6000), rng.uniform(90, 110)),
        "flair": mri.Sequence(
            "flair", "ir", tr_f, rng.uniform(110, 140),
            mri.flair_null_ti(table["csf"].t1_ms, tr_f) * rng.uniform(0.97, 1.03),
        ),
    }  # fmt: skip
    table.update(mri.jitter_table(mri.LESION_SUBSTRUCTURE_1P5T, rng))
    table = mri.ensure_hyperintense(table, seqs["flair"], "edema", "gm", BRATS_EDEMA_FLAIR_OVER_GM)
    texture = lesions.draw_substructure(grid, rng)
    signal_fractions = texture.signal_fractions(fr)
    thickness = float(rng.uniform(*BRATS_FLAIR_THICKNESS) * min(grid.spacing[:2]))
    flair_acq = SliceAcquisition(int(rng.choice(BRATS_FLAIR_AXES)), thickness, float(rng.uniform(0.0, thickness)))
    misalign = {name: Misalignment.draw(rng, *BRATS_MISALIGNMENT_SD) for name in ("t1", "t2", "flair")}
    brain = tumour.tissues.brain >= 0.5
    images, biases = {}, {}
    for name, seq in seqs.items():
        strength, noise, wm_level = rng.uniform(0.05, 0.2), rng.uniform(0.015, 0.04), rng.uniform(400, 1200)
        biases[name] = mri.bias_field(grid, rng, strength)
        gd = tumour.gadolinium_mm if name == "t1ce" else None
        signal = mri.mr_image(signal_fractions, table, seq, gd) * biases[name]
        if name in misalign:
            signal = misalign[name].apply(signal, grid)
        ref = max(seq.signal(table["wm"]), 1e-6)
        if name == "flair":
            stack = mri.rician(flair_acq.acquire(signal, grid.spacing), noise * ref, rng)
            noisy = flair_acq.resample(stack, grid.shape[flair_acq.axis], grid.spacing)
        else:
            noisy = mri.rician(signal, noise * ref, rng)
        img = mri.to_int16(noisy, wm_level / ref)
        img[~brain] = 0  # skull-stripped, as distributed
        images[name] = img
    return BratsSubject(subject_id("brats", index), grid, images, tumour.labels, tumour.tissues, biases, flair_acq,
                        misalign, texture)


def _brats_subject(out: Path, index: int, seed: int, size: str) -> None:
    sub = make_brats(index, seed, size)
    sid = sub.subject_id
    for name, img in sub.images.items():
        write_nifti(out / sid / f"{sid}_{name}.nii.gz", img, sub.grid.affine, np.int16)
    write_nifti(out / sid / f"{sid}_seg.nii.gz", sub.labels, sub.grid.affine, np.uint8)


# ----------------------------------------------------------------------------------------------- IXI
@dataclass(frozen=True)
class IxiSite:
    """Scanner and protocol of one IXI site (times in ms; noise as a fraction of the WM signal)."""

    field_t: float
    t1: tuple[float, float]  # TR, TE of the T1-weighted spin echo
    t2: tuple[float, float]  # TR, TE of the dual echo (T2 echo)
    pd_te: float  # TE of the PD echo (same TR as T2)
    noise: float
    bias: float
    gain: float


IXI_SITE_PARAMS: dict[str, IxiSite] = {
    "Guys": IxiSite(1.5, (600.0, 10.0), (8178.0, 100.0), 8.0, 0.020, 0.12, 1.0),  # Philips 1.5 T
    "HH": IxiSite(3.0, (750.0, 8.0), (5725.0, 100.0), 8.0, 0.015, 0.22, 1.6),  # Philips 3 T
    "IOP": IxiSite(1.5, (500.0, 15.0), (3000.0, 90.0), 15.0, 0.035, 0.16, 0.6),  # GE 1.5 T
}


def ixi_t1_motion(anat: anatomy.SubjectAnatomy, rng: np.random.Generator) -> np.ndarray:
    """Head movement between the T2/PD and the T1 acquisitions: rotation 1-3 deg about a random axis
    through the brain centre and translation 1-3 mm in a random direction (4x4, world mm)."""
    axis = rng.normal(size=3)
    angle = rng.uniform(1.0, 3.0) * rng.choice([-1.0, 1.0])
    direction = rng.normal(size=3)
    shift = direction / np.linalg.norm(direction) * rng.uniform(1.0, 3.0)
    center = geo.apply(anat.head_to_world, anatomy.BRAIN_CENTER_MM)
    return geo.about_point(geo.axis_angle_matrix(axis, angle), center, shift)


@dataclass(frozen=True)
class IxiSubject:
    """One IXI-like subject in memory. ``motion`` maps the head's T2/PD-session position to its T1
    position (4x4, world mm); ``tissues`` are on each image's own grid."""

    subject_id: str
    site: str
    grids: dict[str, geo.Grid]  # "t1", "t2" (PD shares the T2 grid)
    images: dict[str, np.ndarray]  # T1, T2, PD (int16)
    tissues: dict[str, anatomy.Tissues]  # "t1", "t2"
    motion: np.ndarray
    bias: dict[str, np.ndarray]  # multiplicative coil bias per grid ("t1", "t2")


def make_ixi(index: int, seed: int = 0, size: str = "default") -> IxiSubject:
    """Subject ``index`` of the IXI phantom: T2/PD dual echo plus a separately acquired T1."""
    grids = GRIDS[size]["ixi"]
    site_name = ixi_site(index)
    site = IXI_SITE_PARAMS[site_name]
    rng = subject_rng(seed, "ixi", index)
    anat = anatomy.draw_anatomy(rng, _resolution(grids["t2"]))
    motion = ixi_t1_motion(anat, rng)
    table = mri.jitter_table(mri.relaxation_table(site.field_t), rng)
    jit = rng.uniform(0.97, 1.03, size=4)
    tr2, te2 = site.t2[0] * jit[0], site.t2[1] * jit[1]
    seq_t1 = mri.Sequence("t1", "se", site.t1[0] * jit[2], site.t1[1] * jit[3])
    seq_t2 = mri.Sequence("t2", "se", tr2, te2)
    seq_pd = mri.Sequence("pd", "se", tr2, site.pd_te)
    gain = site.gain * rng.uniform(0.8, 1.25)
    images = {}
    # T2 and PD: one dual-echo acquisition (same grid, same head position, same coil bias)
    tis = _tissues(anat, grids["t2"])
    dual_bias = mri.bias_field(grids["t2"], rng, site.bias)
    for name, seq, level in (("T2", seq_t2, 500.0), ("PD", seq_pd, 900.0)):
        images[name] = _mr_volume(
            tis.fractions, table, seq, grids["t2"], rng,
            bias=site.bias, noise=site.noise, wm_level=level * gain, bias_field=dual_bias,
        )  # fmt: skip
    # T1: a separate acquisition on its own grid, after the head moved a little
    tis1 = _tissues(anat, grids["t1"], motion=motion)
    t1_bias = mri.bias_field(grids["t1"], rng, site.bias)
    images["T1"] = _mr_volume(
        tis1.fractions, table, seq_t1, grids["t1"], rng,
        bias=site.bias, noise=site.noise, wm_level=800.0 * gain, bias_field=t1_bias,
    )  # fmt: skip
    return IxiSubject(
        subject_id("ixi", index), site_name, dict(grids), images, {"t1": tis1, "t2": tis}, motion,
        {"t1": t1_bias, "t2": dual_bias},
    )  # fmt: skip


def _ixi_subject(out: Path, index: int, seed: int, size: str) -> None:
    sub = make_ixi(index, seed, size)
    for name in ("T1", "T2", "PD"):
        grid = sub.grids["t1" if name == "T1" else "t2"]
        write_nifti(out / f"IXI-{name}" / f"{sub.subject_id}-{name}.nii.gz", sub.images[name], grid.affine, np.int16)


# --------------------------------------------------------------------------------------------- UDPET
UDPET_SCANNERS = ("Siemens Biograph Vision Quadra", "United Imaging uEXPLORER")
UDPET_SCAN_TIME_S = 600.0


@dataclass(frozen=True)
class PetMeta:
    """Per-subject acquisition metadata as written to ``metadata.csv``."""

    subject_id: str
    weight_kg: float
    injected_activity_bq: float
    acquisition_delay_s: float
    half_life_s: float
    scanner: str


@dataclass(frozen=True)
class PetSubject:
    """One UDPET-like subject in memory (activity in Bq/mL at scan start)."""

    meta: PetMeta
    grid: geo.Grid
    activity: np.ndarray  # noise-free, before the PSF
    blurred: np.ndarray  # noise-free, after the PSF (the expectation of every dose level)
    full: np.ndarray
    low: dict[int, np.ndarray]  # drf -> image
    lesion: np.ndarray  # lesion fraction (0..1)
    tissues: anatomy.Tissues


def make_udpet(index: int, seed: int = 0, size: str = "default") -> PetSubject:
    """Subject ``index`` of the UDPET phantom (FDG brain PET, full dose and 6 reduced doses)."""
    grid = GRIDS[size]["udpet"]["pet"]
    rng = subject_rng(seed, "udpet", index)
    sid = subject_id("udpet", index)
    weight = round(float(rng.uniform(50.0, 100.0)), 1)
    injected = float(round(weight * rng.uniform(3.0, 4.0) * 1e6, -3))  # ~3.7 MBq/kg
    delay = float(round(rng.uniform(3000.0, 4200.0)))
    scanner_i = int(rng.integers(0, 2))
    sensitivity = rng.uniform(4e-4, 6e-4) * (1.0 if scanner_i == 0 else 1.5)
    meta = PetMeta(sid, weight, injected, delay, pet.F18_HALF_LIFE_S, UDPET_SCANNERS[scanner_i])
    anat = anatomy.draw_anatomy(rng, _resolution(grid))
    tis = _tissues(anat, grid, sample_mm=3.0)  # the 4-5 mm PSF blurs more than coarser sampling
    act = pet.activity_image(tis, pet.jitter_suv(rng), injected, weight, delay)
    act, lesion = lesions.insert_pet_lesions(act, tis, grid, rng)
    blurred = pet.psf_blur(act, grid, rng.uniform(4.0, 5.0))
    scale = pet.counts_per_bq_ml(grid, UDPET_SCAN_TIME_S, sensitivity)
    full, low = pet.full_and_low_doses(blurred, scale, UDPET_DRFS, rng)
    return PetSubject(meta, grid, act, blurred, full, low, lesion, tis)


def _udpet_subject(out: Path, index: int, seed: int, size: str) -> PetMeta:
    sub = make_udpet(index, seed, size)
    folder = out / sub.meta.subject_id
    aff = sub.grid.affine
    write_nifti(folder / "Full_dose.nii.gz", sub.full, aff, np.float32)
    for drf, img in sub.low.items():
        write_nifti(folder / f"1-{drf} dose.nii.gz", img, aff, np.float32)
    write_nifti(folder / "lesion_mask.nii.gz", (sub.lesion >= 0.5).astype(np.uint8), aff, np.uint8)
    return sub.meta


def _write_udpet_metadata(out: Path, metas: list[PetMeta]) -> None:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(["subject_id", "weight_kg", "injected_activity_bq", "acquisition_delay_s", "half_life_s", "scanner"])
    for m in metas:
        w.writerow(
            [
                m.subject_id,
                f"{m.weight_kg:.1f}",
                f"{m.injected_activity_bq:.0f}",
                f"{m.acquisition_delay_s:.0f}",
                f"{m.half_life_s}",
                m.scanner,
            ]
        )
    (out / "metadata.csv").write_text(buf.getvalue())


# ---------------------------------------------------------------------------------------------- LDCT
LDCT_DOSE_FRACTION = 0.25


def ldct_folders(seed: int, index: int) -> tuple[str, str, str]:
    """(study folder, full-dose series folder, low-dose series folder) names of subject ``index``."""
    date = deterministic_date(seed, "ldct", index)
    study = f"{date.month:02d}-{date.day:02d}-{date.year}-NA-NA-{stable_int(100000, seed, 'ldct-study', index):05d}"
    full = f"1.000000-Full Dose Images-{stable_int(100000, seed, 'ldct-full', index):05d}"
    low = f"2.000000-Low Dose Images-{stable_int(100000, seed, 'ldct-low', index):05d}"
    return study, full, low


@dataclass(frozen=True)
class LdctSubject:
    """One head CT in memory: noise-free HU and FBP reconstructions at full and reduced dose."""

    subject_id: str
    grid: geo.Grid
    hu: np.ndarray  # noise-free, before projection
    full: np.ndarray  # HU, float32
    low: np.ndarray  # HU, float32 (dose fraction LDCT_DOSE_FRACTION)
    tissues: anatomy.Tissues


def make_ldct(index: int, seed: int = 0, size: str = "default") -> LdctSubject:
    """Subject ``index`` of the low-dose CT phantom (head, quarter dose)."""
    grid = GRIDS[size]["ldct"]["ct"]
    rng = subject_rng(seed, "ldct", index)
    anat = anatomy.draw_anatomy(rng, _resolution(grid))
    tis = _tissues(anat, grid)
    hu = ct.hu_image(tis, ct.jitter_hu(rng))
    doses = ct.simulate_doses(hu, grid.spacing[0], rng, (1.0, LDCT_DOSE_FRACTION))
    return LdctSubject(subject_id("ldct", index), grid, hu, doses[1.0], doses[LDCT_DOSE_FRACTION], tis)


def _ldct_subject(out: Path, index: int, seed: int, size: str) -> None:
    sub = make_ldct(index, seed, size)
    grid = sub.grid
    doses = {1.0: sub.full, LDCT_DOSE_FRACTION: sub.low}
    pid = subject_id("ldct", index)
    study, full_dir, low_dir = ldct_folders(seed, index)
    study_uid = deterministic_uid(seed, "ldct", pid, "study")
    frame_uid = deterministic_uid(seed, "ldct", pid, "frame")
    date = deterministic_date(seed, "ldct", index)
    aff = grid.affine
    n = grid.shape[0]
    for number, (folder, desc, dose) in enumerate(
        ((full_dir, "Full Dose Images", 1.0), (low_dir, "Low Dose Images", LDCT_DOSE_FRACTION)), start=1
    ):
        vol = np.clip(np.rint(doses[dose]), -1024, 3071).astype(np.int16)
        series_uid = deterministic_uid(seed, "ldct", pid, desc)
        for k in range(grid.shape[2]):
            # DICOM rows run posterior-wards (+y LPS), columns left-wards (+x LPS): flip both RAS axes.
            pixels = vol[::-1, ::-1, k].T
            corner = geo.apply(aff, np.array([n - 1, grid.shape[1] - 1, k], dtype=float))
            position = (-corner[0], -corner[1], corner[2])
            write_ct_slice(
                out / pid / study / folder / f"1-{k + 1:03d}.dcm",
                pixels,
                position_lps=position,
                pixel_mm=grid.spacing[0],
                slice_mm=grid.spacing[2],
                instance=k + 1,
                patient_id=pid,
                study_uid=study_uid,
                series_uid=series_uid,
                frame_uid=frame_uid,
                sop_uid=deterministic_uid(seed, "ldct", pid, desc, k),
                series_number=number,
                series_description=desc,
                study_date=date,
            )


# ------------------------------------------------------------------------------------------ SynthRAD
@dataclass(frozen=True)
class SynthradSubject:
    """One SynthRAD-like head in memory: T1w MR (int16), CT (int16 HU) and the dilated body mask."""

    subject_id: str
    grid: geo.Grid
    mr: np.ndarray
    ct: np.ndarray
    mask: np.ndarray  # uint8 {0, 1}
    tissues: anatomy.Tissues


def make_synthrad(index: int, seed: int = 0, size: str = "default") -> SynthradSubject:
    """Subject ``index`` of the SynthRAD phantom (1.5 T T1w spin echo and CT of the same head)."""
    grid = GRIDS[size]["synthrad"]["mr"]
    rng = subject_rng(seed, "synthrad", index)
    anat = anatomy.draw_anatomy(rng, _resolution(grid))
    tis = _tissues(anat, grid)
    table = mri.jitter_table(mri.relaxation_table(1.5), rng)
    seq = mri.Sequence("t1", "se", rng.uniform(450, 650), rng.uniform(8, 15))
    mr = _mr_volume(
        tis.fractions, table, seq, grid, rng,
        bias=rng.uniform(0.1, 0.25), noise=rng.uniform(0.015, 0.03), wm_level=rng.uniform(300, 900),
    )  # fmt: skip
    hu = ct.hu_image(tis, ct.jitter_hu(rng))
    ct_img = ct.simulate_doses(hu, grid.spacing[0], rng, (1.0,), i0=ct.I0_FULL * 2)[1.0]
    ct_int = np.clip(np.rint(ct_img), -1024, 3071).astype(np.int16)
    body = ndimage.binary_fill_holes((1.0 - tis["air"]) >= 0.5)
    mask = ndimage.distance_transform_edt(~body, sampling=grid.spacing) <= 10.0  # dilated by 10 mm
    return SynthradSubject(subject_id("synthrad", index), grid, mr, ct_int, mask.astype(np.uint8), tis)


def _synthrad_subject(out: Path, index: int, seed: int, size: str) -> None:
    sub = make_synthrad(index, seed, size)
    folder = out / "Task1" / "brain" / sub.subject_id
    write_nifti(folder / "mr.nii.gz", sub.mr, sub.grid.affine, np.int16)
    write_nifti(folder / "ct.nii.gz", sub.ct, sub.grid.affine, np.int16)
    write_nifti(folder / "mask.nii.gz", sub.mask, sub.grid.affine, np.uint8)


def _chest_subject(out: Path, index: int, seed: int, size: str) -> None:
    from cmsbench.tasks.phantoms.chest import write_chest_subject

    write_chest_subject(out, index, seed, size)
def _msd_ct_subject(out: Path, index: int, seed: int, size: str) -> None:
    from cmsbench.tasks.phantoms.abdomen import _abdomen_subject

    _abdomen_subject(out, index, seed, size)


_WRITERS: dict[str, Callable[[Path, int, int, str], object]] = {
    "brats": _brats_subject,
    "ixi": _ixi_subject,
    "udpet": _udpet_subject,
    "ldct": _ldct_subject,
    "synthrad": _synthrad_subject,
    "chest": _chest_subject,
    "msd_ct": _msd_ct_subject,
}


def _write_one(job: tuple[str, Path, int, int, str]) -> object:
    dataset, out, index, seed, size = job
    return _WRITERS[dataset](out, index, seed, size)


def generation_workers(n: int) -> int:
    """Worker processes for generation: ``$CMSBENCH_WORKERS`` or the CPU count (at most 8, at most n)."""
    import os

    env = os.environ.get("CMSBENCH_WORKERS")
    wanted = int(env) if env and env.isdigit() else (os.cpu_count() or 1)
    return max(1, min(wanted, 8, n))


def generate(dataset: str, out: Path, n: int, seed: int, size: str) -> None:
    """Write subjects 0..n-1 of ``dataset`` into ``out`` (layout of the real dataset).

    Subjects are independent (each has its own random stream), so they are written by a pool of
    processes; the files do not depend on the number of workers or on the order they finish in.
    """
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    jobs = [(dataset, out, i, seed, size) for i in range(n)]
    workers = generation_workers(n)
    results = []
    import multiprocessing

    # "fork" only: "spawn"/"forkserver" re-import the caller's __main__, which breaks scripts that call
    # synthesize() without an ``if __name__ == "__main__"`` guard. The children use numpy/scipy only.
    if workers == 1 or "fork" not in multiprocessing.get_all_start_methods():
        iterator = map(_write_one, jobs)
        pool = None
    else:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("fork"))
        iterator = pool.map(_write_one, jobs, chunksize=max(1, n // (4 * workers)))
    try:
        for i, result in enumerate(iterator):
            results.append(result)
            if (i + 1) % 10 == 0 or i + 1 == n:
                logger.info("phantom %s: %d/%d subjects (%.1f s)", dataset, i + 1, n, time.perf_counter() - t0)
    finally:
        if pool is not None:
            pool.shutdown()
    if dataset == "udpet":
        _write_udpet_metadata(out, [r for r in results if isinstance(r, PetMeta)])
    if dataset == "msd_ct":
        from cmsbench.tasks.phantoms.abdomen import write_dataset_json

        write_dataset_json(out, n)

"""The phantom datasets' catalogue: names, sizes, default subject counts and subject IDs.

Pure Python (no numpy): listing names and IDs is cheap. Subject IDs depend only on the dataset and the
subject index, never on the seed or on how many subjects are generated, so subject ``k`` keeps its ID
(and its split) whatever ``subjects`` is.
"""

from __future__ import annotations

import difflib
import hashlib

from cmsbench.errors import UnknownNameError

#: The generator's base version (also in the phantom DICOM files' implementation UID).
GENERATOR_VERSION = "1.0"
#: Per dataset, bumped whenever that dataset's output changes for a given (seed, size, subject); a cached
#: phantom folder of another version is generated again. brats 2.0: acquisition realism (thick-slice FLAIR,
#: residual misalignment, lesion texture; issue 17).
DATASET_GENERATOR_VERSIONS: dict[str, str] = {"brats": "2.0", "chest": "1.0"}

PHANTOM_DATASETS: tuple[str, ...] = ("brats", "ixi", "udpet", "ldct", "synthrad", "chest", "msd_ct")
SIZES: tuple[str, ...] = ("default", "full")

#: Default number of subjects per dataset (the same for both sizes, so every task's default split
#: has at least 20 test subjects; checked in tests/test_phantoms.py).
DEFAULT_SUBJECTS: dict[str, int] = {
    "brats": 100,
    "ixi": 96,
    "udpet": 108,
    "ldct": 84,
    "synthrad": 84,
    "chest": 84,
    "msd_ct": 100,
}

IXI_SITES: tuple[str, ...] = ("Guys", "HH", "IOP")
# Repeating site pattern over the subject index: 3 Guys, 3 HH, 2 IOP per 8 subjects (IOP >= 20 of 96).
_IXI_SITE_PATTERN = ("Guys", "HH", "IOP", "Guys", "HH", "IOP", "Guys", "HH")

#: PET dose-reduction factors written for every UDPET subject (``1-{drf} dose.nii.gz``).
UDPET_DRFS: tuple[int, ...] = (2, 4, 10, 20, 50, 100)


def generator_version(dataset: str) -> str:
    """The generator version of ``dataset``'s phantom (recorded in its marker file and in every record)."""
    return DATASET_GENERATOR_VERSIONS.get(dataset, GENERATOR_VERSION)


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` if it is a phantom dataset name; raise UnknownNameError (with a suggestion)."""
    if dataset in PHANTOM_DATASETS:
        return dataset
    close = difflib.get_close_matches(str(dataset).lower(), PHANTOM_DATASETS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownNameError(f"unknown phantom dataset {dataset!r}{hint} Available: {', '.join(PHANTOM_DATASETS)}")


def check_size(size: str) -> str:
    """Return ``size`` if it is a known phantom size; raise UnknownNameError otherwise."""
    if size in SIZES:
        return size
    close = difflib.get_close_matches(str(size).lower(), SIZES, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownNameError(f"unknown phantom size {size!r}{hint} Available: {', '.join(SIZES)}")


def n_subjects(dataset: str, subjects: int | None = None) -> int:
    """The number of subjects to generate (``subjects`` or the dataset's default)."""
    check_dataset(dataset)
    if subjects is None:
        return DEFAULT_SUBJECTS[dataset]
    if int(subjects) < 1:
        raise ValueError(f"subjects must be >= 1, got {subjects}")
    return int(subjects)


def ixi_site(index: int) -> str:
    """The IXI site (``Guys``, ``HH`` or ``IOP``) of the subject with this 0-based index."""
    return _IXI_SITE_PATTERN[index % len(_IXI_SITE_PATTERN)]


def _scan_number(tag: str, index: int, modulo: int = 10000) -> int:
    digest = hashlib.sha256(f"{tag}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % modulo


def subject_id(dataset: str, index: int) -> str:
    """The subject ID of the 0-based ``index``-th subject, in the dataset's official style."""
    check_dataset(dataset)
    if dataset == "brats":
        return f"BraTS2021_{index:05d}"
    if dataset == "ixi":
        return f"IXI{index + 2:03d}-{ixi_site(index)}-{_scan_number('ixi', index):04d}"
    if dataset == "udpet":
        return f"UDPET_{index + 1:04d}"
    if dataset == "ldct":
        return f"N{index + 1:03d}"
    if dataset == "chest":  # RIDER Lung CT style (RIDER-1129164940); the number derives from the index
        return f"RIDER-{1_000_000_000 + _scan_number('chest', index, 9_000_000_000):010d}"
    if dataset == "msd_ct":
        return f"abdomen_{index}"  # MSD style (liver_0, hepaticvessel_1, ...)
    return f"1BA{index + 1:03d}"  # synthrad


def subject_ids(dataset: str, subjects: int | None = None) -> list[str]:
    """IDs of the subjects ``synthesize(dataset, subjects=subjects)`` writes, in index order."""
    return [subject_id(dataset, i) for i in range(n_subjects(dataset, subjects))]


def subject_sites(subjects: int | None = None) -> dict[str, str]:
    """IXI subject ID -> site for the phantom IXI dataset."""
    return {subject_id("ixi", i): ixi_site(i) for i in range(n_subjects("ixi", subjects))}


# ----------------------------------------------------------------------------------------- phantom cards
#: What each phantom models beyond its anatomy, with the parameter that sets it and its source:
#: ``(feature, parameter, source)``. Shown by ``cmsbench data card DATASET`` and in the README.
PHANTOM_CARDS: dict[str, tuple[tuple[str, str, str], ...]] = {
    "brats": (
        ("partial-volume tissue mixing: tissue fractions from sub-voxel samples (not labels) drive the signal "
         "equations; labels are the largest tumour compartment where compartments fill half a voxel",
         "sub-samples about 2.5 mm apart (two per 5 mm slice on the default grid)",
         "signal equations: spin echo / inversion recovery with BrainWeb relaxation times (Kwan et al., IEEE "
         "TMI 18(11), 1999)"),
        ("FLAIR acquired as thick 2D slices with a Gaussian slice profile (FWHM = thickness, contiguous), "
         "noise added per acquired slice, resampled linearly onto the grid",
         "thickness 2.5-5 x the in-plane voxel (BRATS_FLAIR_THICKNESS), per subject; orientation axial 3/5, "
         "coronal 1/5, sagittal 1/5 (BRATS_FLAIR_AXES)",
         "BraTS FLAIR: 'axial, coronal or sagittal 2D acquisitions, 2-6 mm slice thickness', resampled to 1 mm "
         "(Menze et al., IEEE TMI 34(10), 2015; Bakas et al., arXiv:1811.02629)"),
        ("an independent smooth multiplicative bias field per sequence (no bias correction, as distributed)",
         "exp(s g), g a random unit-std quadratic field, s uniform 0.05-0.2 per sequence",
         "BraTS distributes co-registered, skull-stripped images without bias-field correction (Bakas et al., "
         "arXiv:1811.02629)"),
        ("residual rigid misalignment of t1, t2 and flair against t1ce (the labels' frame), cubic B-spline "
         "resampling",
         "rotation sd 0.3 degrees and translation sd 0.3 mm per axis, clipped at 2.5 sd (BRATS_MISALIGNMENT_SD): "
         "sub-voxel at 1 mm",
         "assumption: below the about one-voxel residual of BraTS' rigid co-registration to the SRI24 atlas "
         "(Bakas et al., arXiv:1811.02629)"),
        ("lesion sub-structure: smooth (4 mm) texture of free fluid in oedema (up to 10-25 %) and debris in "
         "necrosis (up to 30-70 %); fluid is bright on T2 and nulled on FLAIR, debris darker on T2 and "
         "brighter on FLAIR",
         "LESION_SUBSTRUCTURE_1P5T relaxation (fluid 3000/400 ms, PD 1.0; debris 1300/90 ms, PD 0.85), "
         "draw_substructure",
         "assumed values; heterogeneous fluid content of peritumoural oedema and necrosis as seen on T2/FLAIR"),
        ("oedema hyperintense on FLAIR in every subject: its T2 is lengthened where the per-subject jitter "
         "would make its FLAIR signal less than 1.6 x grey matter's",
         "BRATS_EDEMA_FLAIR_OVER_GM = 1.6",
         "oedema is defined by FLAIR hyperintensity in the BraTS annotation protocol (Menze et al., 2015)"),
    ),
    "ixi": (
        ("T1 acquired separately from the T2/PD dual echo: its own grid, field of view and a rigid head "
         "movement of 1-3 mm / 1-3 degrees; T2 and PD share one acquisition (grid, position, coil bias)",
         "ixi_t1_motion",
         "IXI acquisition protocol (https://brain-development.org/ixi-dataset/): separate T1 and dual-echo "
         "T2/PD scans"),
        ("site-specific field strength, TR/TE, noise and bias (Guys Philips 1.5 T, HH Philips 3 T, IOP GE 1.5 T)",
         "IxiSite",
         "IXI scanner list per site"),
    ),
    "msd_ct": (
        ("thin-slice abdominal CT evaluated analytically at the voxel centres (3.0 x 3.0 x 1.0 mm, 96 x 96 x "
         "45-53 voxels), edges smoothed over 0.6 mm: body outline, fat, muscle wall, liver, spleen, kidneys, "
         "aorta, spine",
         "cmsbench.tasks.phantoms.abdomen.GRIDS, HU, EDGE_MM",
         "HU per tissue: typical portal-venous values (assumed); MSD CT layout (Antonelli et al., Nat. Commun. "
         "13, 4128, 2022)"),
        ("structures that change along z within a few mm: intervertebral discs (6-9 mm every 25-32 mm), oblique "
         "liver vessels (radius 1.5-3 mm) and ribs whose cross-sections move from slice to slice, liver lesions "
         "(radius 3-10 mm, +-25-60 HU) with ends inside the volume",
         "make_abdomen",
         "assumed; what makes slice interpolation non-trivial (SAINT, Peng et al., CVPR 2020)"),
        ("i.i.d. Gaussian noise in HU, sd 8-16 HU per subject, slightly correlated in-plane (Gaussian 0.6 voxel), "
         "independent between slices; int16 HU clipped below at -1024",
         "NOISE_HU",
         "assumed thin-slice noise at a routine abdominal dose"),
        ("a metal implant of 8500 HU in subjects 17 mod 40 (HU range > 9000), which SAINT's rule excludes",
         "METAL_HU, METAL_EVERY",
         "SAINT's exclusion of volumes whose HU range exceeds 9000 (Peng et al., CVPR 2020)"),
    ),
}


PHANTOM_CARDS["chest"] = (
    ("one acquisition reconstructed twice by filtered back projection: smooth kernel = ramp x Hann window "
     "(cutoff 0.8 of Nyquist), sharp kernel = the plain ramp (Ram-Lak) up to Nyquist; the same noisy sinogram "
     "for both, as a dual-kernel reconstruction of one scan",
     "chest.SMOOTH_CUTOFF = 0.8; ConvolutionKernel PHANTOM_HANN / PHANTOM_RAMLAK",
     "FBP filters: Kak & Slaney, Principles of Computerized Tomographic Imaging (1988), ch. 3; dual-kernel "
     "series of one acquisition as in TCIA RIDER Lung CT"),
    ("Poisson noise on the detected counts of a 2D parallel-beam projector (pixel-driven, 1.5 n views over "
     "180 degrees)",
     "chest.CHEST_I0 = 1500 photons per detector bin and view (bins 2.8 mm wide, 192 views: fewer, larger "
     "measurements than a clinical scanner's, so the count per measurement is not a clinical one)",
     "assumption: a dose at which the sharp kernel's lung noise moves RA950 by several percentage points, as "
     "in real scans (5.4 % B30f vs 15.3 % B50f in one emphysema study)"),
    ("lung parenchyma about -860 HU (jitter sd 15 HU per subject, smooth 15 HU texture) with branching vessel "
     "trees (binary, radius 3.5-4.5 mm at the hilum, x 0.75 per generation, 5 generations) and emphysema-like "
     "regions at about -985 HU (spheres of radius 3-10 mm, count Poisson(40 s), s = U(0, 1)^1.5 per subject)",
     "chest.CHEST_HU, chest_anatomy",
     "assumed values; the -950 HU emphysema threshold of RA950 (Gevenois et al., AJRCCM 154, 1996)"),
    ("chest anatomy: elliptical body, subcutaneous fat, muscle, heart and aorta, vertebra with canal, ribs; "
     "partial volume from 3 x 3 x 2 sub-samples per voxel",
     "chest.CHEST_GRIDS (default 128 x 128 x 4 at 2.8 x 2.8 x 2.5 mm)",
     "procedural; not from an atlas"),
)


def phantom_card(dataset: str) -> tuple[tuple[str, str, str], ...]:
    """The features of ``dataset``'s phantom with their parameter and source (empty if none are listed)."""
    return PHANTOM_CARDS.get(check_dataset(dataset), ())

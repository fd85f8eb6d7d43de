"""The built-in task specs. Pure metadata: importing this module reads no data and imports no torch.

Each spec is exposed through the ``cmsbench.tasks`` entry-point group (see ``pyproject.toml``), the
same path third-party task packages use.
"""

from __future__ import annotations

from cmsbench.tasks.spec import DataRange, DatasetInfo, Normalisation, SplitPolicy, TaskSpec
from cmsbench.tasks.volume import UNITS_BQML, UNITS_HU, UNITS_MR_NORMALISED

_MR_NORMALISATION = Normalisation("healthy_median", region="brain")
# MR images divided by the healthy-tissue median have healthy tissue near 1 and lesions up to ~3;
# a fixed peak of 4 healthy medians makes PSNR comparable across subjects whatever the lesion size.
_MR_RANGE = DataRange("fixed", value=4.0)
_MR_METRICS = ("psnr", "ssim", "mae", "nmse")

BRATS_CITATION = (
    "Baid U. et al., The RSNA-ASNR-MICCAI BraTS 2021 Benchmark on Brain Tumor Segmentation and "
    "Radiogenomic Classification, arXiv:2107.02314; Menze B. et al., IEEE TMI 34(10), 2015."
)
IXI_CITATION = "IXI Dataset, Imperial College London, https://brain-development.org/ixi-dataset/"
UDPET_CITATION = "Ultra-low Dose PET Imaging Challenge (UDPET), MICCAI 2022-2025, https://udpet-challenge.github.io/"
LDCT_CITATION = (
    "McCollough C. et al., Low-dose CT for the detection and classification of metastatic liver "
    "lesions: results of the 2016 Low Dose CT Grand Challenge, Med. Phys. 44(10), 2017; "
    "TCIA LDCT-and-Projection-data, doi:10.7937/9npb-2637."
)
SYNTHRAD_CITATION = (
    "Thummerer A. et al., SynthRAD2023 Grand Challenge dataset: generating synthetic CT for "
    "radiotherapy, Med. Phys. 50(7), 2023."
)

BRATS_FLAIR = TaskSpec(
    name="brats_flair",
    version="1.0",
    description=(
        "Synthesise FLAIR from T1 and T2 in glioma patients (BraTS). MR volumes are divided by the "
        "median of healthy brain voxels (brain minus tumour) of the same volume; the target's divisor "
        "comes from the ground truth only. Metrics in the brain, the tumour and its sub-regions."
    ),
    dataset=DatasetInfo(
        "BraTS 2021 / BraTS 2023 GLI",
        "BraTS2021_00000/BraTS2021_00000_{t1,t1ce,t2,flair,seg}.nii.gz or "
        "BraTS-GLI-00000-000/BraTS-GLI-00000-000-{t1n,t1c,t2w,t2f,seg}.nii.gz",
        citation=BRATS_CITATION,
        licence="CC BY 4.0 (BraTS 2021 via Synapse data use terms)",
        url="https://www.synapse.org/brats",
    ),
    adapter="brats",
    inputs=("t1", "t2"),
    target="flair",
    units=UNITS_MR_NORMALISED,
    normalisation=_MR_NORMALISATION,
    regions=("brain", "healthy", "lesion", "necrotic", "edema", "enhancing", "lesion_ring"),
    metrics=_MR_METRICS,
    main_metric="psnr",
    data_range=_MR_RANGE,
    split=SplitPolicy("hash", salt="brats"),
    phantom="brats",
)

_IXI_DATASET = DatasetInfo(
    "IXI",
    "IXI-T1/IXI002-Guys-0828-T1.nii.gz, IXI-T2/IXI002-Guys-0828-T2.nii.gz, IXI-PD/IXI002-Guys-0828-PD.nii.gz",
    citation=IXI_CITATION,
    licence="CC BY-SA 3.0",
    url="https://brain-development.org/ixi-dataset/",
)
_IXI_ICON = SplitPolicy("first_n", counts=(25, 5, 10))
_IXI_NOTE = (
    " IXI's T1 is acquired separately from the T2/PD dual echo and is not aligned with it: the adapter "
    "resamples T1 onto the T2 grid through the headers' world coordinates and refines the alignment by "
    "a rigid (6-parameter) registration maximising normalised mutual information; the result is cached."
)

IXI_T1_T2 = TaskSpec(
    name="ixi_t1_t2",
    version="1.0",
    description="Synthesise T2 from T1 in healthy subjects (IXI, three sites)." + _IXI_NOTE,
    dataset=_IXI_DATASET,
    adapter="ixi",
    inputs=("t1",),
    target="t2",
    units=UNITS_MR_NORMALISED,
    normalisation=Normalisation("healthy_median", region="head"),
    regions=("head",),
    metrics=_MR_METRICS,
    data_range=_MR_RANGE,
    split=SplitPolicy("hash", salt="ixi"),
    split_variants={"icon": _IXI_ICON},
    phantom="ixi",
)

IXI_T2_PD = TaskSpec(
    name="ixi_t2_pd",
    version="1.0",
    description=(
        "Synthesise PD from T2 in healthy subjects (IXI). T2 and PD are the two echoes of one "
        "acquisition and are aligned by construction; no registration is needed."
    ),
    dataset=_IXI_DATASET,
    adapter="ixi",
    inputs=("t2",),
    target="pd",
    units=UNITS_MR_NORMALISED,
    normalisation=Normalisation("healthy_median", region="head"),
    regions=("head",),
    metrics=_MR_METRICS,
    data_range=_MR_RANGE,
    split=SplitPolicy("hash", salt="ixi"),
    split_variants={"icon": _IXI_ICON},
    phantom="ixi",
)

IXI_T1_T2_XSITE = TaskSpec(
    name="ixi_t1_t2_xsite",
    version="1.0",
    description=(
        "T1 -> T2 across scanners: train and validate on Guys and HH, test on IOP, an unseen site "
        "with its own sequence parameters, noise and bias." + _IXI_NOTE
    ),
    dataset=_IXI_DATASET,
    adapter="ixi",
    inputs=("t1",),
    target="t2",
    units=UNITS_MR_NORMALISED,
    normalisation=Normalisation("healthy_median", region="head"),
    regions=("head",),
    metrics=_MR_METRICS,
    data_range=_MR_RANGE,
    split=SplitPolicy("site", fractions=(0.85, 0.15, 0.0), test_sites=("IOP",), salt="ixi"),
    phantom="ixi",
)

LDPET = TaskSpec(
    name="ldpet",
    version="1.0",
    description=(
        "Restore full-dose FDG PET from a low-dose acquisition (UDPET layout). The dose-reduction "
        "factor is the task parameter ``drf`` (2, 4, 10, 20, 50 or 100). Activity in Bq/mL, no "
        "rescaling; PSNR peak = max - min of the ground truth; SUV errors in lesions when labelled."
    ),
    dataset=DatasetInfo(
        "UDPET (Ultra-low Dose PET challenge)",
        "SUBJECT/Full_dose.nii.gz, SUBJECT/1-DRF dose.nii.gz, metadata.csv (weight, injected activity)",
        citation=UDPET_CITATION,
        licence="challenge data use agreement",
        url="https://udpet-challenge.github.io/",
    ),
    adapter="udpet",
    inputs=("pet_low",),
    target="pet",
    units=UNITS_BQML,
    normalisation=Normalisation("none"),
    regions=("body", "lesion"),
    metrics=("psnr", "ssim", "nrmse", "mae", "suvmean_pct_error", "suvmax_pct_error"),
    data_range=DataRange("gt_range"),
    split=SplitPolicy("hash", salt="udpet"),
    phantom="udpet",
    adapter_options={"drf": 4},
    parameters={"drf": 4},
)

LDCT = TaskSpec(
    name="ldct",
    version="1.0",
    description=(
        "Denoise quarter-dose CT to full dose (TCIA LDCT-and-Projection-data, DICOM series; NIfTI "
        "accepted). HU throughout; PSNR and SSIM in the abdominal research window [-160, 240] HU "
        "(range 400), MAE in HU inside the body."
    ),
    dataset=DatasetInfo(
        "TCIA LDCT-and-Projection-data (Mayo)",
        "PATIENT/<study>/<n>-Full Dose Images-<k>/*.dcm and PATIENT/<study>/<n>-Low Dose Images-<k>/*.dcm",
        citation=LDCT_CITATION,
        licence="TCIA Restricted / CC BY 4.0 per collection",
        url="https://www.cancerimagingarchive.net/collection/ldct-and-projection-data/",
    ),
    adapter="ldct",
    inputs=("ct_low",),
    target="ct",
    units=UNITS_HU,
    normalisation=Normalisation("none"),
    regions=("body", "global"),
    metrics=("psnr", "ssim", "mae", "nmse", "psnr_abdomen", "ssim_abdomen", "psnr_chest", "ssim_chest", "psnr_head",
             "ssim_head"),
    data_range=DataRange("window", low=-160.0, high=240.0),
    split=SplitPolicy("hash", salt="ldct"),
    split_variants={"mayo2016": SplitPolicy("fixed_ids", test_ids=("L506",))},
    phantom="ldct",
)

MR_CT = TaskSpec(
    name="mr_ct",
    version="1.0",
    description=(
        "Synthesise CT (HU) from T1w MRI of the head (SynthRAD2023 task 1, brain). Metrics inside the "
        "dilated body mask shipped with the data; PSNR/SSIM on HU clipped to [-1024, 3000] (range 4024); "
        "MAE in HU in the body and in bone."
    ),
    dataset=DatasetInfo(
        "SynthRAD2023 task 1 (brain)",
        "Task1/brain/1BA001/{mr,ct,mask}.nii.gz",
        citation=SYNTHRAD_CITATION,
        licence="CC BY-NC 4.0",
        url="https://synthrad2023.grand-challenge.org/",
    ),
    adapter="synthrad2023",
    inputs=("mr",),
    target="ct",
    units=UNITS_HU,
    normalisation=Normalisation("none"),
    regions=("body", "bone"),
    metrics=("mae", "psnr", "ssim"),
    main_metric="mae",
    data_range=DataRange("window", low=-1024.0, high=3000.0),
    split=SplitPolicy("hash", salt="synthrad"),
    phantom="synthrad",
)

BUILTIN_TASKS: tuple[TaskSpec, ...] = (
    BRATS_FLAIR,
    IXI_T1_T2,
    IXI_T2_PD,
    IXI_T1_T2_XSITE,
    LDPET,
    LDCT,
    MR_CT,
)

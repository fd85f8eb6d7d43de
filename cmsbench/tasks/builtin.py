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

def _brats_dataset(files_2021: str, files_2023: str) -> DatasetInfo:
    """The BraTS 2021 / 2023 GLI dataset, with the files a task reads from each layout."""
    return DatasetInfo(
        "BraTS 2021 / BraTS 2023 GLI",
        f"BraTS2021_00000/BraTS2021_00000_{{{files_2021}}}.nii.gz or "
        f"BraTS-GLI-00000-000/BraTS-GLI-00000-000-{{{files_2023}}}.nii.gz",
        citation=BRATS_CITATION,
        licence="CC BY 4.0 (BraTS 2021 via Synapse data use terms)",
        url="https://www.synapse.org/brats",
    )


BRATS_FLAIR = TaskSpec(
    name="brats_flair",
    version="1.0",
    description=(
        "Synthesise FLAIR from T1 and T2 in glioma patients (BraTS). MR volumes are divided by the "
        "median of healthy brain voxels (brain minus tumour) of the same volume; the target's divisor "
        "comes from the ground truth only. Metrics in the brain, the tumour and its sub-regions."
    ),
    dataset=_brats_dataset("t1,t1ce,t2,flair,seg", "t1n,t1c,t2w,t2f,seg"),
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
    downstream_metrics=("tissue_dice_air", "tissue_dice_lung", "tissue_dice_fat", "tissue_dice_soft_tissue",
                        "tissue_dice_bone", "tissue_dice_mean", "bone_mae"),
)

# ------------------------------------------------------------------------- degraded-input tasks (issue 15)
# The degradation operator of each is fixed here (name, version, every parameter but the task parameter,
# which the adapter copies in: scale -> factor, dose -> dose), so the fingerprint changes with any of them.
# Written out (not built with cmsbench.tasks.degradations) to keep this module free of numpy; a test checks
# they equal the operators' own resolved options.
_SR_OPERATOR = {
    "operator": "kspace_truncation",
    "operator_version": "1",
    "operator_params": {"output": "grid", "axes": [0, 1], "convention": "symmetric"},
}

IXI_SR_T2 = TaskSpec(
    name="ixi_sr_t2",
    version="1.0",
    description=(
        "Multi-contrast MRI super-resolution (IXI; the DisC-Diff protocol, MICCAI 2023): recover the "
        "high-resolution T2 from a low-resolution T2, guided by the high-resolution T1. The low resolution is "
        "simulated on read by the degradation operator kspace_truncation (version 1) with factor = the task "
        "parameter ``scale`` (2 or 4 published; default 4): per axial slice (array axes 0 and 1) the central "
        "band of each in-plane k-space axis is kept (|k| <= (n - 1) // 2 with n = N // scale voxels), every "
        "other coefficient is zeroed, and the real part is taken; k-space truncation, not bicubic "
        "down-sampling. The input ``t2_lr`` is this zero-filled reconstruction on the T2 grid, which is what "
        "the identity (zero-filled) baseline scores; the genuinely low-resolution samples (N // scale "
        "voxels in-plane, same field of view, voxel 0 in place) follow from it without loss "
        "(operator output='low_res', cmsbench.tasks.adapters.superres.low_res_samples), and case metadata "
        "'degradation' records the operator and its parameters. The guide ``t1`` is resampled onto the T2 "
        "grid and rigidly registered as in ixi_t1_t2 (same cache entry). Scored on the high-resolution grid "
        "inside the head (the ground truth's foreground), every image divided by its own head median (t2_lr "
        "too: its median differs from the target's by the blur, 2 % rms and up to 6 % on the phantoms, an "
        "intensity error that zero filling, bicubic and guided_sr all inherit). "
        "Differences from DisC-Diff: whole volumes instead of 224 x 224 x 96 centre crops, healthy-median "
        "instead of min-max normalisation, the real, idempotent band-limiting projection instead of "
        "getLR's magnitude (convention 'disc_diff' of the operator), and the hash split of the IXI tasks "
        "(DisC-Diff's folder-order 500/6/70 split is --split disc_diff)." + _IXI_NOTE
    ),
    dataset=_IXI_DATASET,
    adapter="ixi_sr",
    inputs=("t2_lr", "t1"),
    target="t2",
    units=UNITS_MR_NORMALISED,
    normalisation=Normalisation("healthy_median", region="head"),
    regions=("head",),
    metrics=_MR_METRICS,
    data_range=_MR_RANGE,
    split=SplitPolicy("hash", salt="ixi"),
    split_variants={"icon": _IXI_ICON, "disc_diff": SplitPolicy("first_n", counts=(500, 6, 70))},
    phantom="ixi",
    adapter_options={"scale": 4, **_SR_OPERATOR},
    parameters={"scale": 4},
)

_GBCA_OPERATOR = {
    "operator": "contrast_dose",
    "operator_version": "2",
    "operator_params": {"noise": "acquisition", "sigma": None, "keep_zero_background": True},
}

GBCA_LOWDOSE = TaskSpec(
    name="gbca_lowdose",
    version="2.0",
    description=(
        "Low-dose gadolinium MRI: synthesise the full-dose contrast-enhanced T1 (t1ce) from the pre-contrast "
        "T1 and a low-dose T1ce, in glioma patients (BraTS 2021 t1/t1ce, BraTS 2023 GLI t1n/t1c). No public "
        "paired low-dose data exist, so the low dose is simulated on read by the degradation operator "
        "contrast_dose (version 2) with dose = the task parameter ``dose``, the fraction of the standard "
        "0.1 mmol/kg (default 0.1; 0.2 and 0.33 are the other published levels): t1ce_low = pre + dose x "
        "(full - pre) + n, enhancement linear in dose (the stated model; real enhancement is not), n i.i.d. "
        "Gaussian at the full-dose image's own noise level (estimated from it), independent of both scans and "
        "always added: the low dose is an acquisition of its own, as the noise-preserving protocol (MICCAI "
        "2023) requires; drawn per case from seed 0 (the adapter option degradation_seed). "
        "Beforehand the pre-contrast image is brought onto the T1ce's intensity scale by the ratio of their "
        "healthy-brain medians (BraTS' T1 and T1ce are separately scaled); the t1 input is the file as "
        "stored. What this model means for the baselines: the low dose also carries the shared residual "
        "(1 - dose) n_pre + dose n_full of the two scans' own noises, so linear dose scaling pre + (low - pre) "
        "/ dose returns full + n / dose, its error the independent noise amplified by 1 / dose (about 10x the "
        "acquisition noise at dose 0.1), the error a learned method can reduce. Task version 1.0 used "
        "contrast_dose version 1, whose low dose shared all its noise with pre and full (dose scaling exact "
        "where pre was the noisier scan); its records stay in their own leaderboard tables. Every "
        "image divided by its own healthy-brain median. Metrics in the brain, the healthy brain, the tumour "
        "and the enhancing tumour; enhancement_ratio_error = |ER(prediction) - ER(ground truth)| with "
        "ER = mean_R(image) / mean_R(pre) - 1 over a lesion region R (ratio of means, task units)."
    ),
    dataset=_brats_dataset("t1,t1ce,seg", "t1n,t1c,seg"),
    adapter="brats_gbca",
    inputs=("t1", "t1ce_low"),
    target="t1ce",
    units=UNITS_MR_NORMALISED,
    normalisation=_MR_NORMALISATION,
    regions=("brain", "healthy", "lesion", "enhancing"),
    metrics=(*_MR_METRICS, "enhancement_ratio_error"),
    main_metric="psnr",
    data_range=_MR_RANGE,
    split=SplitPolicy("hash", salt="brats"),
    phantom="brats",
    adapter_options={"dose": 0.1, "degradation_seed": 0, **_GBCA_OPERATOR},
    parameters={"dose": 0.1},
)

# ------------------------------------------------------------------ BraSyn: a missing sequence per case (issue 19)
BRATS_MISSING_SEED = 123456

BRATS_MISSING = TaskSpec(
    name="brats_missing",
    version="1.0",
    description=(
        "BraSyn (BraTS 2023 missing-MRI synthesis, github.com/hongweilibran/BraSyn): each case has one of its four "
        "sequences removed and the method synthesises it from the other three, in glioma patients (BraTS 2023 GLI "
        "t1n / t1c / t2w / t2f, BraTS 2021 t1 / t1ce / t2 / flair; cmsbench roles t1, t1ce, t2, flair). The "
        "organisers drop one sequence per test case at random (dropout_modality.py: numpy seed 123456 over the "
        "folder listing). cmsbench chooses it deterministically from the case ID alone: the missing sequence is "
        "(t1, t1ce, t2, flair)[int(SHA-256(f'{seed}:{case_id}')[:8 bytes], big-endian) mod 4] with seed = the "
        "task parameter ``missing_seed`` (default 123456, BraSyn's seed; the assignment is not BraSyn's, whose "
        "draw depends on the listing order). The same rule names a missing sequence in every split: a test "
        "case's inputs are the other three and its target the missing one; train and val cases hold all four "
        "(three inputs and the target), on which methods are fitted (a fixed-target method once per possible "
        "target). The missing sequence is recorded in each case's metadata ('missing') and in the result record "
        "per case ('target'). Each volume is divided by the median of its own healthy brain voxels (brain minus "
        "tumour), the target's from the ground truth only. Metrics in the brain, the tumour and its sub-regions."
    ),
    dataset=_brats_dataset("t1,t1ce,t2,flair,seg", "t1n,t1c,t2w,t2f,seg"),
    adapter="brats_missing",
    inputs=("t1", "t1ce", "t2", "flair"),
    target="missing",
    targets=("t1", "t1ce", "t2", "flair"),
    units=UNITS_MR_NORMALISED,
    normalisation=_MR_NORMALISATION,
    regions=("brain", "healthy", "lesion", "necrotic", "edema", "enhancing", "lesion_ring"),
    metrics=_MR_METRICS,
    main_metric="psnr",
    data_range=_MR_RANGE,
    split=SplitPolicy("hash", salt="brats"),
    phantom="brats",
    adapter_options={"missing_seed": BRATS_MISSING_SEED},
    parameters={"missing_seed": BRATS_MISSING_SEED},
)

# ------------------------------------------------------------- CT reconstruction-kernel conversion (issue 16)
#: Kernel names (ConvolutionKernel, first value, case-insensitive) of the two classes: Siemens, GE, Toshiba/Canon
#: and the chest phantom's; task parameters, so ``--parameter sharp_kernels=B50f`` states another pair.
CT_KERNEL_SMOOTH = "B30f,B31f,B30s,B35f,I30f,Br36,STANDARD,SOFT,FC02,FC08,FC18,PHANTOM_HANN"
CT_KERNEL_SHARP = "B70f,B60f,B50f,B70s,I70f,Br64,LUNG,BONE,BONEPLUS,FC51,FC52,FC86,PHANTOM_RAMLAK"
CT_KERNEL_CITATION = (
    "Protocol: multi-domain CT kernel conversion (multi-domain image-to-image translation with generator-guided "
    "contrastive learning, MICCAI 2023; the seed survey's system); kernel effect on densitometry: an emphysema "
    "index of 5.4 % (B30f) vs 15.3 % (B50f) from one acquisition in one study (cmsbench protocol notes, "
    "issue 16); data: TCIA RIDER Lung CT (https://www.cancerimagingarchive.net/collection/rider-lung-ct/) and "
    "AAPM / Mayo dual-kernel scans; RA950 threshold: Gevenois P. A. et al., Am. J. Respir. Crit. Care Med. "
    "154, 1996."
)


CT_KERNEL = TaskSpec(
    name="ct_kernel",
    version="1.0",
    description=(
        "CT reconstruction-kernel conversion: synthesise the sharp-kernel reconstruction (e.g. Siemens B70f, GE "
        "LUNG / BONE) from the smooth-kernel one (B30f, STANDARD) of the same acquisition. Layout: one folder "
        "per case holding two DICOM series told apart by ConvolutionKernel (0018,1210) (RIDER / AAPM "
        "dual-kernel form), the kernel classes named by the task parameters smooth_kernels / sharp_kernels; or "
        "the NIfTI pair CASE/smooth.nii.gz, CASE/sharp.nii.gz. Both series must share one grid (refused "
        "otherwise, naming both series). HU throughout, no rescaling. PSNR and SSIM with both images clipped "
        "to the lung window [-1350, 150] HU (centre -600, width 1500: data range 1500); MAE in HU unclipped. "
        "Regions: body (the sharp image's foreground above -500 HU) and lung (the ground truth below -400 HU "
        "inside the body, large connected components, closed in-plane by a radius-2 disk, holes such as "
        "vessels filled per slice; from the ground truth only). Lung densitometry in the lung region: RA950 "
        "(% of lung voxels below -950 HU) error in percentage points, the 15th percentile of lung HU (Perc15) "
        "error and the mean lung density (MLD) error, each signed (prediction minus ground truth; Bland-Altman "
        "bias and 95 % limits of agreement on the leaderboard) and absolute (ranked)."
    ),
    dataset=DatasetInfo(
        "dual-kernel chest CT (RIDER Lung CT, AAPM / Mayo)",
        "CASE/<study>/<series>/*.dcm (two series, ConvolutionKernel smooth / sharp), or CASE/{smooth,sharp}.nii.gz",
        citation=CT_KERNEL_CITATION,
        licence="TCIA data usage policy (CC BY 3.0 / 4.0 per collection)",
        url="https://www.cancerimagingarchive.net/collection/rider-lung-ct/",
    ),
    adapter="ct_kernel",
    inputs=("ct_smooth",),
    target="ct_sharp",
    units=UNITS_HU,
    normalisation=Normalisation("none"),
    regions=("body", "lung"),
    metrics=("psnr", "ssim", "mae", "nmse", "ra950_error", "ra950_abs_error", "perc15_error", "perc15_abs_error",
             "mld_error", "mld_abs_error"),
    main_metric="psnr",
    data_range=DataRange("window", low=-1350.0, high=150.0),
    split=SplitPolicy("hash", salt="ct_kernel"),
    phantom="chest",
    adapter_options={"smooth_kernels": CT_KERNEL_SMOOTH, "sharp_kernels": CT_KERNEL_SHARP},
    parameters={"smooth_kernels": CT_KERNEL_SMOOTH, "sharp_kernels": CT_KERNEL_SHARP},
)

# ------------------------------------------------------------------ thick-to-thin CT slices (issue 16)
MSD_CITATION = (
    "Antonelli M. et al., The Medical Segmentation Decathlon, Nat. Commun. 13, 4128 (2022); protocol: Peng C. et "
    "al., SAINT: Spatially Aware Interpolation NeTwork for Medical Slice Synthesis, CVPR 2020; Song et al., I3Net, "
    "IEEE TMI 2024; Fang C. et al., Incremental Cross-view Mutual Distillation for Self-supervised Medical CT "
    "Synthesis, CVPR 2022."
)
# decimate and slab share their fixed parameters; the operator is the task parameter ``operator``
_THIN_OPERATOR = {"operator": "decimate", "operator_version": "1", "operator_params": {"output": "grid", "axis": 2}}

CT_THIN = TaskSpec(
    name="ct_thin",
    version="1.0",
    description=(
        "Thick-to-thin CT slice synthesis (seed: cross-view mutual distillation, CVPR 2022; de facto protocol "
        "SAINT, Peng et al. CVPR 2020, reused by I3Net): recover the thin-slice CT from its thick-slice version "
        "on the Medical Segmentation Decathlon CT layout (Task03_Liver, Task08_HepaticVessel, Task10_Colon: "
        "TaskXX_Name/dataset.json + imagesTr/*.nii.gz; every task folder under the data root is read). As in "
        "SAINT, volumes whose HU range (max - min) exceeds 9000 (metal) are excluded and listed as such by "
        "'cmsbench data check'. Each volume is cropped along z to its first 1 + m k slices (k = the task "
        "parameter ``factor``, 4 or 6 published, default 4), so that its first and last thin slices are "
        "thick-slice centres. The thick input ``ct_thick`` is made on read by the degradation operator named "
        "by the task parameter ``operator``: 'decimate' (version 1, default; thick = thin[..., ::k], SAINT / "
        "I3Net) or 'slab' (version 1; a boxcar average of k thin spacings centred on every k-th slice, the "
        "physically closer model, which keeps no thin slice exactly); it is handed to methods on the thin grid, "
        "every thin slice showing its nearest thick slice (ties to the lower one), and case metadata "
        "'degradation' / 'acquired_slices' say which thin slices are acquired. Scoring convention: ONLY the "
        "synthesised slices count. Under decimate the acquired slices 0, k, 2k, ... (copied from the input) "
        "are excluded from every region, and before any metric the prediction's acquired voxels are replaced "
        "by the ground truth, so that copied slices can neither help nor hurt (also where 3D and coronal / "
        "sagittal SSIM windows reach into them); under slab every slice is synthesised. Regions: "
        "synthesised_body (the synthesised slices inside the body, ground truth > -500 HU, largest component, "
        "holes filled; the main region) and synthesised (whole synthesised slices, air included). HU "
        "throughout; PSNR and SSIM with both images clipped to [-1024, 3071] HU (data range 4095; SAINT shifts "
        "by +1024 and clips to [0, 4000]); SSIM per plane (axial, coronal, sagittal: 2D windows within each "
        "plane's slices; through-plane artefacts show in coronal and sagittal) and 3D; MAE in HU (unclipped). "
        "Differences from SAINT: its fixed test list is not used (hash split), and SAINT's volume PSNR includes "
        "the copied slices, which inflates it."
    ),
    dataset=DatasetInfo(
        "Medical Segmentation Decathlon CT (Task03 Liver, Task08 HepaticVessel, Task10 Colon)",
        "Task03_Liver/dataset.json, Task03_Liver/imagesTr/liver_0.nii.gz",
        citation=MSD_CITATION,
        licence="CC BY-SA 4.0",
        url="http://medicaldecathlon.com/",
    ),
    adapter="msd_thin",
    inputs=("ct_thick",),
    target="ct",
    units=UNITS_HU,
    normalisation=Normalisation("none"),
    regions=("synthesised_body", "synthesised"),
    metrics=("psnr", "ssim", "ssim_axial", "ssim_coronal", "ssim_sagittal", "psnr_axial", "mae"),
    data_range=DataRange("window", low=-1024.0, high=3071.0),
    split=SplitPolicy("hash", salt="msd"),
    phantom="msd_ct",
    adapter_options={"factor": 4, **_THIN_OPERATOR, "hu_range_limit": 9000.0, "score_acquired": "ground_truth"},
    parameters={"factor": 4, "operator": "decimate"},
)

BUILTIN_TASKS: tuple[TaskSpec, ...] = (
    BRATS_FLAIR,
    IXI_T1_T2,
    IXI_T2_PD,
    IXI_T1_T2_XSITE,
    LDPET,
    LDCT,
    MR_CT,
    IXI_SR_T2,
    GBCA_LOWDOSE,
    BRATS_MISSING,
    CT_KERNEL,
    CT_THIN,
)

"""The built-in degradation operators: k-space centre truncation, image-domain down-sampling, and a
simulated low contrast dose with noise matched to the image's own noise level.

All three work on any 3D :class:`~cmsbench.tasks.volume.Volume` (real data or phantoms); "in-plane" means
array axes 0 and 1 (the first two voxel axes as stored, the axial plane of the IXI and BraTS volumes as
cmsbench reads them) unless the ``axes`` parameter names two others. Computation is in float64; the
output is float32 (float64 when the input is float64), on the input's grid unless ``output="low_res"``.
"""

from __future__ import annotations

import logging
import math
from typing import Any

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.degradations.api import (
    Operator,
    Parameter,
    axes_pair,
    boolean,
    choice,
    integer,
    optional,
    real,
)
from cmsbench.tasks.volume import Volume

log = logging.getLogger(__name__)

#: Phi^-1(3/4): the median of |N(0, 1)|, turning a median absolute value into a standard deviation.
MAD_TO_SIGMA = 0.6744897501960817


def _out_dtype(data: np.ndarray) -> type:
    return np.float64 if np.asarray(data).dtype == np.float64 else np.float32


def _along(axis: int, values: np.ndarray, ndim: int = 3) -> np.ndarray:
    """``values`` shaped to broadcast along ``axis``."""
    shape = [1] * ndim
    shape[axis] = -1
    return values.reshape(shape)


# ------------------------------------------------------------------------------- k-space truncation
def kept_frequencies(size: int, factor: int, convention: str = "symmetric") -> tuple[np.ndarray, np.ndarray]:
    """The in-plane truncation of one axis of ``size`` voxels by ``factor``.

    Returns ``(freqs, keep)``: the integer frequencies of the low-resolution grid in ``numpy.fft`` order
    (its length is the low-resolution size) and which of them are kept (the others are zero).

    ``"symmetric"``: low-resolution size ``n = size // factor``; kept ``|k| <= (n - 1) // 2``, every
    frequency a real image on the ``n`` grid holds unambiguously. For even ``n`` the low-resolution
    Nyquist bin ``-n/2`` is dropped: it has no ``+n/2`` partner, so keeping it would make the result
    complex (or, by taking the real part, halve that bin, and re-applying would halve it again).

    ``"disc_diff"``: DisC-Diff's ``getLR`` (dataset/data_processing.py): ``d = size // (2 * factor)``,
    kept ``-d <= k < d`` (``n = 2d``, the unpaired ``-d`` bin included), followed by the magnitude.
    """
    if convention == "symmetric":
        n = size // factor
        freqs = np.rint(np.fft.fftfreq(n, 1.0 / n)).astype(np.int64) if n else np.zeros(0, np.int64)
        return freqs, np.abs(freqs) <= (n - 1) // 2
    d = size // (2 * factor)
    n = 2 * d
    freqs = np.rint(np.fft.fftfreq(n, 1.0 / n)).astype(np.int64) if n else np.zeros(0, np.int64)
    return freqs, np.ones(n, dtype=bool)


def _kspace_truncation(volume: Volume, params: dict[str, Any], *, rng: np.random.Generator,
                       others: dict[str, Volume]) -> Volume:
    factor, output, convention = params["factor"], params["output"], params["convention"]
    x: np.ndarray = np.asarray(volume.data, dtype=np.float64).astype(np.complex128)
    scale = np.eye(4)
    for axis in params["axes"]:
        size = x.shape[axis]
        freqs, keep = kept_frequencies(size, factor, convention)
        if not keep.any():
            raise DataError(f"kspace_truncation: axis {axis} has {size} voxels, too few for factor {factor} "
                            f"({'size // factor' if convention == 'symmetric' else 'size // (2 * factor)'} is 0)"
                            f" ({volume.source or '-'})")
        spectrum = np.fft.fft(x, axis=axis)
        if output == "grid":  # zero-filled: the kept band in place, every other bin zero
            mask = np.zeros(size)
            mask[freqs[keep] % size] = 1.0
            x = np.fft.ifft(spectrum * _along(axis, mask), axis=axis)
        else:  # the kept band on the n-point grid, scaled so that intensities are preserved
            n = freqs.size
            low = np.zeros(x.shape[:axis] + (n,) + x.shape[axis + 1:], dtype=np.complex128)
            index_out = [slice(None)] * 3
            index_in = [slice(None)] * 3
            index_out[axis] = np.flatnonzero(keep)
            index_in[axis] = freqs[keep] % size
            low[tuple(index_out)] = spectrum[tuple(index_in)]
            x = np.fft.ifft(low, axis=axis) * (n / size)
            scale[axis, axis] = size / n  # the field of view is kept: voxel j sits at input voxel j * size / n
    data = x.real if convention == "symmetric" else np.abs(x)
    out = data.astype(_out_dtype(volume.data))
    if output == "grid":
        return volume.with_data(out)
    return volume.with_data(out, affine=volume.affine @ scale)


def zero_filled_upsample(data: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    """Fourier (sinc) interpolation of a real 3D array onto a larger grid of the same field of view:
    the spectrum zero-padded (an even size's Nyquist bin split between +-n/2), intensities preserved.

    Up-sampling a ``kspace_truncation`` ``output="low_res"`` image (symmetric convention) to the input's
    shape gives its ``output="grid"`` image: the zero-filled reconstruction, the identity baseline of
    super-resolution tasks. Voxel 0 stays in place (the ``low_res`` affine's convention).
    """
    x: np.ndarray = np.asarray(data, dtype=np.float64).astype(np.complex128)
    if len(shape) != x.ndim or any(t < s for s, t in zip(x.shape, shape, strict=True)):
        raise ValueError(f"zero_filled_upsample: target shape {tuple(shape)} must be >= {x.shape} on every axis")
    for axis, (n, size) in enumerate(zip(x.shape, shape, strict=True)):
        if n == size:
            continue
        spectrum = np.fft.fft(x, axis=axis)
        freqs = np.rint(np.fft.fftfreq(n, 1.0 / n)).astype(np.int64)
        big = np.zeros(x.shape[:axis] + (size,) + x.shape[axis + 1:], dtype=np.complex128)
        index_out = [slice(None)] * x.ndim
        index_in = [slice(None)] * x.ndim
        index_out[axis] = freqs % size
        index_in[axis] = np.arange(n)
        big[tuple(index_out)] = spectrum[tuple(index_in)]
        if n % 2 == 0:  # -n/2 was copied whole; give half to -n/2 and half to +n/2 (a real signal's Nyquist term)
            nyq = [slice(None)] * x.ndim
            nyq[axis] = n // 2
            half = spectrum[tuple(nyq)] / 2
            nyq[axis] = (-n // 2) % size
            big[tuple(nyq)] = half
            nyq[axis] = n // 2
            big[tuple(nyq)] = half
        x = np.fft.ifft(big, axis=axis) * (size / n)
    return x.real


KSPACE_TRUNCATION = Operator(
    name="kspace_truncation",
    version="1",
    summary="in-plane k-space centre truncation by an integer factor (MR low resolution, as DisC-Diff)",
    function=_kspace_truncation,
    parameters=(
        Parameter("factor", 4, "in-plane resolution reduction: keep the central 1/factor of each in-plane "
                  "frequency axis (2 or 4 typical)", integer(low=2)),
        Parameter("output", "grid", "'grid': zero-filled reconstruction on the input grid (the LR image in HR "
                  "grid terms); 'low_res': the low-resolution grid (size // factor voxels, voxel size x size/n)",
                  choice("grid", "low_res")),
        Parameter("axes", [0, 1], "the two in-plane array axes", axes_pair),
        Parameter("convention", "symmetric", "'symmetric': a real, idempotent band-limiting projection (the LR "
                  "Nyquist bin dropped, real part); 'disc_diff': DisC-Diff's getLR (bins -d..d-1, magnitude)",
                  choice("symmetric", "disc_diff")),
    ),
    convention=(
        "Per in-plane axis (array axes 0 and 1 by default) of N voxels: DFT (numpy.fft), keep the centred band "
        "of the low-resolution grid of n = N // factor voxels, |k| <= (n - 1) // 2 (an even n's Nyquist bin "
        "-n/2 dropped), zero every other bin, inverse DFT, real part. For a real image this is an orthogonal "
        "projection onto a Hermitian-symmetric band, so the result is real (the imaginary part is rounding) "
        "and re-applying the operator changes nothing. Not the magnitude: |x| of a band-limited image with "
        "negative Gibbs lobes is no longer band-limited, so a magnitude image is not a fixed point. "
        "output='grid' keeps the N grid (zero-filled reconstruction); output='low_res' returns the n grid with "
        "the same field of view (voxel size x N/n, voxel 0 in place) and the same intensities (a constant "
        "stays that constant). convention='disc_diff' reproduces DisC-Diff's getLR: kept bins -d..d-1 with "
        "d = N // (2 factor), magnitude (not idempotent), intensities preserved where getLR scales by the "
        "grid-size ratio (removed by its min-max normalisation). Deterministic: no randomness."
    ),
)


# ------------------------------------------------------------------------------ image down-sampling
def _block_means(x: np.ndarray, axis: int, factor: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    size = x.shape[axis]
    starts = np.arange(0, size, factor)
    counts = np.minimum(factor, size - starts)
    return np.add.reduceat(x, starts, axis=axis) / _along(axis, counts.astype(np.float64), x.ndim), starts, counts


def _linear_back(means: np.ndarray, axis: int, starts: np.ndarray, counts: np.ndarray, size: int) -> np.ndarray:
    """Linear interpolation between block centroids onto voxels 0..size-1, constant beyond the end centroids."""
    centres = starts + (counts - 1) / 2.0
    pos = np.arange(size, dtype=np.float64)
    hi = np.clip(np.searchsorted(centres, pos, side="right"), 0, centres.size - 1)
    lo = np.clip(hi - 1, 0, centres.size - 1)
    span = centres[hi] - centres[lo]
    w = np.where(span > 0, (pos - centres[lo]) / np.where(span > 0, span, 1.0), 0.0)
    w = np.clip(w, 0.0, 1.0)
    a0, a1 = np.take(means, lo, axis=axis), np.take(means, hi, axis=axis)
    return a0 + _along(axis, w, means.ndim) * (a1 - a0)


def _downsample(volume: Volume, params: dict[str, Any], *, rng: np.random.Generator,
                others: dict[str, Volume]) -> Volume:
    factor = params["factor"]
    x = np.asarray(volume.data, dtype=np.float64)
    scale = np.eye(4)
    for axis in params["axes"]:
        means, starts, counts = _block_means(x, axis, factor)
        if params["output"] == "low_res":
            x = means
            scale[axis, axis] = factor
            scale[axis, 3] = (factor - 1) / 2.0  # low-res voxel j = centroid of input voxels j*f .. j*f+f-1
        elif params["interpolation"] == "nearest":
            x = np.repeat(means, counts, axis=axis)
        else:
            x = _linear_back(means, axis, starts, counts, x.shape[axis])
    out = x.astype(_out_dtype(volume.data))
    if params["output"] == "grid":
        return volume.with_data(out)
    return volume.with_data(out, affine=volume.affine @ scale)


DOWNSAMPLE = Operator(
    name="downsample",
    version="1",
    summary="image-domain in-plane block averaging by an integer factor (for comparison with k-space truncation)",
    function=_downsample,
    parameters=(
        Parameter("factor", 4, "in-plane block size", integer(low=2)),
        Parameter("output", "grid", "'grid': back on the input grid; 'low_res': the block-mean grid",
                  choice("grid", "low_res")),
        Parameter("interpolation", "nearest", "back to the input grid by 'nearest' (each voxel its block's "
                  "mean) or 'linear' (between block centroids)", choice("nearest", "linear")),
        Parameter("axes", [0, 1], "the two in-plane array axes", axes_pair),
    ),
    convention=(
        "Per in-plane axis (array axes 0 and 1 by default): means of consecutive blocks of factor voxels from "
        "voxel 0 (a last, partial block averages the voxels it has). output='grid' puts them back on the input "
        "grid by 'nearest' (block replication: a projection, re-applying changes nothing) or 'linear' "
        "(interpolation between block centroids, constant beyond the first and last); output='low_res' returns "
        "ceil(N / factor) block means, affine voxel size x factor and origin at the first block's centroid "
        "(a partial last block's centroid is off that regular grid by under half a low-resolution voxel). "
        "Deterministic: no randomness."
    ),
)


# ---------------------------------------------------------------------------------- contrast dose
def estimate_noise_sigma(data: np.ndarray, *, min_blocks: int = 16) -> float:
    """The noise standard deviation of an image: robust MAD of its finest Haar wavelet detail.

    Donoho's estimator in 3D: over non-overlapping 2x2x2 blocks, the all-high-pass Haar coefficient
    ``sum(+-x) / sqrt(8)`` (sign (-1)^(i+j+k); axes of size 1 are skipped) has standard deviation sigma
    for white noise and cancels the image where it is locally linear in each axis; sigma =
    ``median(|coefficient|) / 0.6745``, the median making edges and texture matter little. Only blocks
    whose voxels are all non-zero count (skull-stripped backgrounds are exact zeros, which would pull
    the median to 0). Raises :class:`DataError` with fewer than ``min_blocks`` such blocks.
    """
    x = np.asarray(data, dtype=np.float64)
    axes = [a for a in range(x.ndim) if x.shape[a] >= 2]
    if not axes:
        raise DataError(f"cannot estimate the noise level of an image of shape {x.shape}")
    x = x[tuple(slice(0, s - s % 2) if a in axes else slice(None) for a, s in enumerate(x.shape))]
    detail, support = x, x != 0
    for a in axes:
        even = [slice(None)] * x.ndim
        odd = [slice(None)] * x.ndim
        even[a], odd[a] = slice(0, None, 2), slice(1, None, 2)
        detail = (detail[tuple(even)] - detail[tuple(odd)]) / math.sqrt(2.0)
        support = support[tuple(even)] & support[tuple(odd)]
    coeffs = detail[support]
    if coeffs.size < min_blocks:
        raise DataError(f"cannot estimate the noise level: only {coeffs.size} blocks of non-zero voxels "
                        f"(need {min_blocks}); give the operator's sigma parameter instead")
    return float(np.median(np.abs(coeffs)) / MAD_TO_SIGMA)


def _linear_dose(volume: Volume, others: dict[str, Volume], dose: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(full, pre, pre + dose * (full - pre)) in float64; the last is exactly ``full`` at dose 1."""
    full = np.asarray(volume.data, dtype=np.float64)
    pre = np.asarray(others["pre"].data, dtype=np.float64)
    return full, pre, (1.0 - dose) * pre + dose * full


def _contrast_dose_v1(volume: Volume, params: dict[str, Any], *, rng: np.random.Generator,
                   others: dict[str, Volume]) -> Volume:
    dose = params["dose"]
    full, pre, low = _linear_dose(volume, others, dose)
    if params["noise"] == "matched":
        if params["sigma"] is None:
            sigma_full, sigma_pre = estimate_noise_sigma(full), estimate_noise_sigma(pre)
        else:
            sigma_full = sigma_pre = params["sigma"]
        variance = sigma_full**2 - ((1.0 - dose) ** 2 * sigma_pre**2 + dose**2 * sigma_full**2)
        if variance > 0:
            noise = rng.standard_normal(full.shape) * math.sqrt(variance)
            if params["keep_zero_background"]:
                noise[(full == 0) & (pre == 0)] = 0.0
            low = low + noise
        elif variance < 0:
            log.info("contrast_dose v1: the dose combination already carries noise sigma %.4g above the full-dose "
                     "level %.4g (a noisier pre-contrast image); no noise added", math.sqrt(sigma_full**2 - variance),
                     sigma_full)
    return volume.with_data(low.astype(_out_dtype(volume.data)))


#: the parameters both versions of contrast_dose share
_DOSE = Parameter("dose", 0.1, "fraction of the standard dose, in (0, 1] (0.1, 0.2 or 0.33 typical)",
                  real(low=0.0, high=1.0, low_open=True))
_KEEP_ZERO_BACKGROUND = Parameter("keep_zero_background", True, "voxels zero in both images (skull-stripped "
                                  "background) stay zero", boolean)

#: Version 1, kept reachable (``operator_version: "1"``) so specs naming it degrade as they did. Its noise
#: only tops the linear combination up to the full-dose level, so the low dose shares the noise
#: realisations of both scans (dose scaling then cancels the pre-contrast noise and reproduces the
#: target's own); version 2 gives the low dose an acquisition's independent noise.
CONTRAST_DOSE_V1 = Operator(
    name="contrast_dose",
    version="1",
    summary="low-dose contrast-enhanced MR from pre-contrast and full-dose images, noise matched to the acquisition",
    function=_contrast_dose_v1,
    parameters=(
        _DOSE,
        Parameter("noise", "matched", "'matched': add noise so the result has the full-dose image's noise level; "
                  "'none': the noiseless linear model", choice("matched", "none")),
        Parameter("sigma", None, "the acquisition noise level in image units (both images); None: estimated "
                  "from each image (robust MAD of the finest 3D Haar detail)", optional(real(low=0.0))),
        _KEEP_ZERO_BACKGROUND,
    ),
    requires=("pre",),
    stochastic=True,
    convention=(
        "apply(full_dose, others={'pre': pre_contrast}): low = pre + dose * (full - pre) + n, enhancement linear "
        "in dose (real enhancement is not; the stated model). The linear combination (1 - dose) pre + dose full "
        "carries noise of variance (1 - dose)^2 s_pre^2 + dose^2 s_full^2, less than an acquisition's at equal "
        "levels; n is i.i.d. Gaussian with variance s_full^2 - that (s_full sqrt(2 dose (1 - dose)) when "
        "s_pre = s_full), so the low-dose image has the full-dose image's own noise level s_full, as a real "
        "low-dose acquisition would (noise does not depend on dose). When the combination already carries more "
        "(a pre-contrast image noisier than s_full sqrt((1 + dose) / (1 - dose))), nothing is added and the "
        "result is that much noisier. s_full, s_pre: the sigma parameter, else estimated from each image "
        "(median |finest 3D Haar detail| / 0.6745 over blocks of non-zero voxels). Gaussian, not Rician: the "
        "tissue regime. Voxels zero in both images stay zero unless keep_zero_background is false. Noise from "
        "the case's generator, seeded from (seed, case id, 'contrast_dose') by SHA-256."
    ),
)


def _contrast_dose(volume: Volume, params: dict[str, Any], *, rng: np.random.Generator,
                   others: dict[str, Volume]) -> Volume:
    dose = params["dose"]
    full, pre, low = _linear_dose(volume, others, dose)
    if params["noise"] == "acquisition":
        sigma = estimate_noise_sigma(full) if params["sigma"] is None else params["sigma"]
        noise = rng.standard_normal(full.shape) * sigma
        if params["keep_zero_background"]:
            noise[(full == 0) & (pre == 0)] = 0.0
        low = low + noise
    return volume.with_data(low.astype(_out_dtype(volume.data)))


CONTRAST_DOSE = Operator(
    name="contrast_dose",
    version="2",
    summary="low-dose contrast-enhanced MR from pre-contrast and full-dose images, plus its own acquisition noise",
    function=_contrast_dose,
    parameters=(
        _DOSE,
        Parameter("noise", "acquisition", "'acquisition': add independent Gaussian noise at the full-dose "
                  "acquisition's level (the low dose is a scan of its own); 'none': the linear model alone",
                  choice("acquisition", "none")),
        Parameter("sigma", None, "the low-dose acquisition's noise level in image units; None: the full-dose "
                  "image's, estimated (robust MAD of the finest 3D Haar detail)", optional(real(low=0.0))),
        _KEEP_ZERO_BACKGROUND,
    ),
    requires=("pre",),
    stochastic=True,
    previous=(CONTRAST_DOSE_V1,),
    convention=(
        "apply(full_dose, others={'pre': pre_contrast}): low = pre + dose * (full - pre) + n, enhancement linear "
        "in dose (real enhancement is not; the stated model). n is i.i.d. Gaussian with standard deviation "
        "s_full, the full-dose acquisition's noise level (the sigma parameter, else estimated from the full-dose "
        "image: median |finest 3D Haar detail| / 0.6745 over blocks of non-zero voxels), drawn independently of "
        "both images and always added: a low-dose scan is an acquisition of its own, whose noise does not depend "
        "on the dose and is shared with neither the pre-contrast nor the full-dose scan. The low dose therefore "
        "carries two noises: the shared residual of the linear combination, (1 - dose) n_pre + dose n_full, "
        "where n_pre and n_full are the noises already in the two scans (the first part is in the pre-contrast "
        "input too, the second is the target's own noise; neither can be told apart from anatomy without clean "
        "images, so the ground truth keeps it), and its own n, of level s_full (in all ~ s_full sqrt(1 + "
        "(1 - dose)^2 + dose^2) when s_pre = s_full). Linear dose scaling "
        "pre + (low - pre) / dose returns full + n / dose: the pre-contrast noise cancels, the target's noise "
        "is reproduced, and the independent noise is amplified by 1 / dose (at dose 0.1 an error of standard "
        "deviation ~ 10 s_full), which is why learned methods that denoise the enhancement beat it in the "
        "literature. Gaussian, not Rician: the tissue regime. Voxels zero in both images stay zero unless "
        "keep_zero_background is false. Noise from the case's generator, seeded from (seed, case id, "
        "'contrast_dose') by SHA-256. Version 1 (operator_version '1', still available) added only the noise "
        "topping the combination up to s_full, so the low dose shared its noise with pre and full (none added "
        "where pre was the noisier: dose scaling exact); its 'matched' noise parameter value is v1's."
    ),
)

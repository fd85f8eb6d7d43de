"""The Frechet Radiomic Distance (FRD, Konz et al., Medical Image Analysis 2026) as a set-level metric.

Per case and region (:func:`case_features`), the radiomic features of the prediction and of the target
are extracted with ``frd-score``'s own FRDv1 3D extractor (``frd_score.frd.get_feature_extractor``:
pyradiomics on the original image, LoG sigma 2/3/4/5 and the 8 wavelet sub-bands; first order, GLCM
(22 features), GLRLM, GLSZM, NGTDM; B-spline resampling to 2 mm, bin width 5, voxel array shift 300;
plus the numeric diagnostics frd-score keeps: 1,014 values in 3D). Over the test set
(:func:`aggregate_frd`) both sets are z-scored with the statistics of the reference (target) set, cast
to float32 and cleaned as frd-score v1 does (cases with a NaN feature dropped per set, features that
are NaN/inf after z-scoring dropped); the Frechet distance ``d^2`` between the two Gaussians is reported
as ``log(d^2)``, frd-score's default. Identical sets give ``d^2 = 0``, so the floor is ``-inf``.

Two choices differ from frd-score's image-folder pipeline, for the reasons given:

- intensities: pyradiomics' own normalisation (each image by its own mean and SD) is switched off;
  both images are z-scored with the TARGET's mean and SD in the region, times 100 (pyradiomics'
  ``normalizeScale``), so a prediction is never rescaled by its own statistics (a global intensity
  error is seen, not normalised away);
- extent: both images are cropped to the region's bounding box plus a margin wider than pyradiomics'
  pad (``padDistance`` 10 resampled voxels plus the B-spline support), the crop's start on a multiple of
  the resampling step (pyradiomics anchors its grid at the input's first voxel), so filters and features
  equal those on the whole grid (1e-6 relative, tested); the image diagnostics (mean/min/max of the
  input) refer to the crop.

The Frechet distance is computed from the data matrices, ``Tr sqrt(S1 S2) = ||Xc Yc^T||_* /
sqrt((n1-1)(n2-1))`` (nuclear norm of an n1 x n2 matrix): frd-score's ``scipy.linalg.sqrtm`` of the 1,014 x 1,014 product gives
the same number (tested), this form stays stable for rank-deficient covariances (fewer cases than
features) and is fast enough for a bootstrap.
The interval is a percentile bootstrap over cases (paired: a resample draws cases, with the prediction
and target of each), :data:`N_BOOT` resamples from ``default_rng(seed)``; each resample is z-scored with
its own reference statistics, as the metric is defined.

Feature vectors are cached in memory and under ``$CMSBENCH_HOME/radiomics/`` by the digest of the image,
mask, geometry, extractor configuration and versions: a case's target is extracted once for all methods.

The voxel grid is taken as 1 mm isotropic (metrics see arrays, not affines) unless the case context
carries a ``spacing``. The features need the optional extra ``cmsbench[frd]`` (``pyradiomics-bhklab``,
``frd-score``); without it the set-level value is NaN with the reason and the install command.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.benchmark.metrics.api import CaseContext, Metric, MetricUndefined, SetValue

#: Regions FRD is computed in: the anatomy (the distribution of whole brains/heads/bodies) and the lesion
#: (tumour radiomics); sub-regions, rings, bone and the whole grid with its air are left out.
REGIONS = ("brain", "head", "body", "lesion")
INSTALL_COMMAND = 'pip install "cmsbench[frd]"  (or: pip install pyradiomics-bhklab frd-score)'
UNAVAILABLE_REASON = f"FRD needs pyradiomics and frd-score, which are not installed: {INSTALL_COMMAND}"
#: Bootstrap resamples of the interval.
N_BOOT = 1000
CI_LEVEL = 0.95
#: pyradiomics' intensity scale (frd-score's ``normalizeScale``): z-scores times this.
NORMALIZE_SCALE = 100.0
#: A squared distance below this fraction of ``tr S1 + tr S2`` is rounding error: the distance is 0.
ZERO_TOLERANCE = 1e-9
CONVENTION = (
    "frd-score v1 3D radiomic features (pyradiomics: original, LoG 2-5, wavelet; firstorder, GLCM, GLRLM, GLSZM, "
    "NGTDM; 2 mm B-spline resampling, bin width 5) of prediction and target in the region's bounding box, both "
    "z-scored x100 with the target's mean/SD in the region (pyradiomics' per-image normalisation off); set "
    "features z-scored with the target set's statistics; log of the squared Frechet distance (frd-score's "
    "default), -inf for identical sets; percentile bootstrap over cases (1,000 resamples, the run's seed); "
    "regions brain/head/body/lesion; voxel grid taken as 1 mm isotropic"
)


# ------------------------------------------------------------------------------------ availability
def unavailable_reason() -> str | None:
    """None when pyradiomics and frd-score import, else why not (with the install command)."""
    try:
        _extractor()
    except ImportError as exc:
        return f"{UNAVAILABLE_REASON} ({type(exc).__name__}: {exc})".replace("\n", " ")
    return None


@lru_cache(maxsize=1)
def _extractor() -> Any:
    """frd-score's FRDv1 3D extractor with pyradiomics' per-image normalisation off (one per process)."""
    import radiomics  # noqa: F401 - ImportError here means the extra is missing
    from frd_score.frd import FRD_VERSION_V1, get_feature_extractor

    logging.getLogger("radiomics").setLevel(logging.ERROR)
    extractor = get_feature_extractor(frd_version=FRD_VERSION_V1, image_dim=3)
    extractor.settings["normalize"] = False
    return extractor


def extractor_settings() -> dict[str, Any]:
    """The pyradiomics settings the features are extracted with (for tests and the convention)."""
    return dict(_extractor().settings)


# -------------------------------------------------------------------------------- per-case features
def _margin(settings: dict[str, Any], spacing: Sequence[float]) -> np.ndarray:
    """Voxels to keep around the region so that resampling, filters and features equal the whole grid's:
    pyradiomics' pad (``padDistance`` resampled voxels) plus the B-spline's support."""
    new = _new_spacing(settings, spacing)
    pad = float(settings.get("padDistance", 5))
    return np.ceil(pad * new / np.asarray(spacing, dtype=np.float64)).astype(int) + 6


def _new_spacing(settings: dict[str, Any], spacing: Sequence[float]) -> np.ndarray:
    old = np.asarray(spacing, dtype=np.float64)
    new = np.asarray(settings.get("resampledPixelSpacing") or old, dtype=np.float64)
    return np.where(new == 0, old, new)


def _alignment(settings: dict[str, Any], spacing: Sequence[float]) -> list[int | None]:
    """Per axis, the step (voxels) a crop's start must be a multiple of for pyradiomics' resampling grid
    (anchored at the input's first voxel) to fall on the same points as on the whole grid; None when no
    step up to 64 voxels does (that axis is not cropped)."""
    out: list[int | None] = []
    for old, new in zip(np.asarray(spacing, dtype=np.float64), _new_spacing(settings, spacing), strict=True):
        step = next((m for m in range(1, 65) if abs(m * old / new - round(m * old / new)) < 1e-6), None)
        out.append(step)
    return out


def bounding_box(mask: np.ndarray, margin: Sequence[int], align: Sequence[int | None] | None = None
                 ) -> tuple[slice, ...]:
    """The slices of ``mask``'s bounding box grown by ``margin`` voxels per axis (clipped to the grid), each
    start rounded down to a multiple of ``align`` (an axis with ``None`` is kept whole)."""
    align = align if align is not None else [1] * mask.ndim
    out = []
    for axis in range(mask.ndim):
        (idx,) = np.nonzero(np.any(mask, axis=tuple(a for a in range(mask.ndim) if a != axis)))
        step = align[axis]
        if step is None:
            out.append(slice(0, mask.shape[axis]))
            continue
        lo = max(0, (int(idx[0]) - int(margin[axis])) // step * step)
        hi = min(mask.shape[axis], int(idx[-1]) + 1 + int(margin[axis]))
        out.append(slice(lo, hi))
    return tuple(out)


def crop_box(mask: np.ndarray, settings: dict[str, Any], spacing: Sequence[float]) -> tuple[slice, ...]:
    """The region's box :func:`radiomic_features` extracts in (margin and alignment for ``settings``)."""
    return bounding_box(mask, _margin(settings, spacing), _alignment(settings, spacing))


def _sitk(array: np.ndarray, spacing: Sequence[float], origin: Sequence[float]) -> Any:
    import SimpleITK as sitk

    image = sitk.GetImageFromArray(np.ascontiguousarray(np.transpose(array)))  # numpy (x, y, z) -> ITK (x, y, z)
    image.SetSpacing(tuple(float(s) for s in spacing))
    image.SetOrigin(tuple(float(o) for o in origin))
    return image


def feature_vector(output: dict[str, Any]) -> tuple[list[str], np.ndarray]:
    """Names and values of a pyradiomics result as frd-score v1 keeps them: every feature and every
    numeric diagnostic (string/tuple diagnostics dropped), in the extractor's order."""
    names, values = [], []
    for key, value in output.items():
        if "diagnostics" not in key:
            names.append(key.replace("original_", ""))
            values.append(float(value))
        else:
            try:
                v = float(value)
            except (TypeError, ValueError):
                continue
            names.append(key)
            values.append(v)
    return names, np.asarray(values, dtype=np.float64)


def radiomic_features(image: np.ndarray, mask: np.ndarray, *, spacing: Sequence[float] = (1.0, 1.0, 1.0),
                      crop: bool = True, extractor: Any = None, cache: bool = True) -> np.ndarray:
    """frd-score v1 3D features of ``image`` (already in the intensity scale to use) inside ``mask``.

    ``crop``: extract inside the mask's bounding box plus a margin (equal features, less work).
    ``extractor``: a pyradiomics extractor to use instead of frd-score's v1 3D one (tests, ablations).
    Results of the default extractor are cached (memory and ``$CMSBENCH_HOME/radiomics``) under the digest
    of the image, mask, spacing, extractor configuration and versions, so a case's target is extracted
    once for every method scored on it (``cache=False``: extract anyway, store nothing).
    """
    mask = np.asarray(mask, dtype=bool)
    if mask.ndim != 3:
        raise MetricUndefined(f"FRD needs 3D volumes, got {mask.ndim}D")
    if int(mask.sum()) <= 1:
        raise MetricUndefined("FRD needs a region of more than one voxel")
    ex = extractor if extractor is not None else _extractor()
    spacing = tuple(float(s) for s in spacing)
    origin = (0.0, 0.0, 0.0)
    if crop:
        box = crop_box(mask, ex.settings, spacing)
        origin = tuple(s.start * sp for s, sp in zip(box, spacing, strict=True))
        image, mask = image[box], mask[box]
    image = np.asarray(image, dtype=np.float32)
    key = _digest(image, mask, spacing, origin) if extractor is None and cache else None
    cached = _cached(key)
    if cached is not None:
        return cached
    values = feature_vector(ex.execute(_sitk(image, spacing, origin), _sitk(mask.astype(np.uint8), spacing, origin)))[1]
    if key is not None:
        _store(key, values)
    return values.copy()


#: Feature vectors kept in memory (about 8 KB each); every vector is also kept on disk under
#: ``$CMSBENCH_HOME/radiomics/`` (the target of a case is extracted once for every method and run).
CACHE_SIZE = 512
_CACHE: OrderedDict[str, np.ndarray] = OrderedDict()


@lru_cache(maxsize=1)
def _fingerprint() -> str:
    """What the features depend on besides the image: the extractor's configuration and the versions."""
    import json

    import frd_score
    import radiomics

    ex = _extractor()
    config = {"settings": ex.settings, "image_types": ex.enabledImagetypes, "features": ex.enabledFeatures,
              "pyradiomics": radiomics.__version__, "frd_score": frd_score.__version__, "format": 1}
    return json.dumps(config, sort_keys=True, default=str)


def _digest(image: np.ndarray, mask: np.ndarray, spacing: Sequence[float], origin: Sequence[float]) -> str:
    h = hashlib.sha256(_fingerprint().encode())
    for part in (np.ascontiguousarray(image), np.ascontiguousarray(mask)):
        h.update(str((part.dtype.str, part.shape)).encode())
        h.update(part.tobytes())
    h.update(repr((tuple(spacing), tuple(origin))).encode())
    return h.hexdigest()


def _cache_file(key: str) -> Path:
    from cmsbench.paths import cache_home

    return cache_home() / "radiomics" / key[:2] / f"{key}.npy"


def _cached(key: str | None) -> np.ndarray | None:
    if key is None:
        return None
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key].copy()
    path = _cache_file(key)
    try:
        values = np.load(path, allow_pickle=False)
    except (OSError, ValueError):  # not cached yet, or a damaged file: extracted again
        return None
    if values.dtype != np.float64 or values.ndim != 1:
        return None
    _remember(key, values)
    return values.copy()


def _remember(key: str, values: np.ndarray) -> None:
    _CACHE[key] = values
    while len(_CACHE) > CACHE_SIZE:
        _CACHE.popitem(last=False)


def _store(key: str, values: np.ndarray) -> None:
    _remember(key, values)
    path = _cache_file(key)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npy")
        np.save(tmp, values, allow_pickle=False)
        os.replace(tmp, path)
    except OSError:  # a read-only cache: the features are simply not kept
        pass


def target_scaled(target: np.ndarray, prediction: np.ndarray, mask: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Both images z-scored with the target's mean and SD inside ``mask``, times :data:`NORMALIZE_SCALE`."""
    t = np.asarray(target, dtype=np.float64)
    values = t[mask]
    mean, sd = float(values.mean()), float(values.std())
    if not sd > 0:
        raise MetricUndefined("the ground truth is constant in the region (no radiomic texture)")
    scale = NORMALIZE_SCALE / sd
    return (t - mean) * scale, (np.asarray(prediction, dtype=np.float64) - mean) * scale


def case_features(ctx: CaseContext, region: str) -> np.ndarray:
    """``[prediction features, target features]`` (2 x 1,014) of one case in ``region``; shared by the
    FRD and KID metrics through the case's cache. Empty when the extra is not installed (the set-level
    value is then NaN with the reason)."""
    key = ("radiomic_features", region)
    if key in ctx.cache:
        return ctx.cache[key]
    if region not in REGIONS:
        raise MetricUndefined(f"radiomic distances are computed in the regions {', '.join(REGIONS)} only")
    if unavailable_reason() is not None:
        ctx.cache[key] = np.empty((0,), dtype=np.float64)
        return ctx.cache[key]
    mask = ctx.mask(region)
    if mask is None:
        raise MetricUndefined("radiomic distances need a region mask")
    spacing = getattr(ctx, "spacing", None) or (1.0, 1.0, 1.0)
    t, p = target_scaled(ctx.target, ctx.prediction, mask)
    features = np.stack([radiomic_features(p, mask, spacing=spacing), radiomic_features(t, mask, spacing=spacing)])
    ctx.cache[key] = features
    return features


# ------------------------------------------------------------------------------------ over the set
def split_features(features: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    """(prediction, target) feature matrices (cases x features) from the per-case ``[pred, target]`` arrays;
    cases without features (the extra missing on that machine) are left out."""
    kept = [np.asarray(f, dtype=np.float64) for f in features if np.asarray(f).size]
    if not kept:
        return np.empty((0, 0)), np.empty((0, 0))
    sizes = {f.shape for f in kept}
    if len(sizes) != 1 or next(iter(sizes))[0] != 2:
        raise ValueError(f"radiomic features of different shapes across cases: {sorted(sizes)}; "
                         "were the cases scored with different pyradiomics or frd-score versions?")
    stack = np.stack(kept)
    return stack[:, 0, :], stack[:, 1, :]


def normalise_sets(prediction: np.ndarray, target: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """frd-score v1's set preprocessing: cases with a NaN feature dropped (per set), float32, z-scored with the
    target (reference) set's mean and SD (ddof 0), features that are NaN/inf in either set dropped."""
    x = prediction[~np.isnan(prediction).any(axis=1)].astype(np.float32).astype(np.float64)
    y = target[~np.isnan(target).any(axis=1)].astype(np.float32).astype(np.float64)
    if len(y) == 0 or len(x) == 0:
        return x[:, :0], y[:, :0]
    mean, sd = y.mean(axis=0), y.std(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        x, y = (x - mean) / sd, (y - mean) / sd
    keep = np.isfinite(x).all(axis=0) & np.isfinite(y).all(axis=0)
    return x[:, keep], y[:, keep]


def frechet_distance_sq(x: np.ndarray, y: np.ndarray) -> float:
    """Squared Frechet distance between Gaussians fitted to the rows of ``x`` and ``y`` (sample covariances,
    ddof 1): ``|mu_x - mu_y|^2 + tr Sx + tr Sy - 2 tr sqrt(Sx Sy)``, clamped at 0 within rounding error."""
    n1, n2 = len(x), len(y)
    if n1 < 2 or n2 < 2:
        raise ValueError(f"a Frechet distance needs at least 2 cases per set (got {n1} and {n2})")
    xc, yc = x - x.mean(axis=0), y - y.mean(axis=0)
    diff = x.mean(axis=0) - y.mean(axis=0)
    tr_x, tr_y = float(np.sum(xc * xc)) / (n1 - 1), float(np.sum(yc * yc)) / (n2 - 1)
    cross = float(np.linalg.svd(xc @ yc.T, compute_uv=False).sum()) / math.sqrt((n1 - 1) * (n2 - 1))
    d2 = float(diff @ diff) + tr_x + tr_y - 2.0 * cross
    return 0.0 if d2 <= ZERO_TOLERANCE * (tr_x + tr_y + float(diff @ diff)) else d2


def log_distance(d2: float) -> float:
    """frd-score's reported value: ``log(d^2)``; ``-inf`` at 0."""
    return math.log(d2) if d2 > 0 else float("-inf")


def frd_sq(prediction: np.ndarray, target: np.ndarray) -> float:
    """Squared Frechet distance of the prediction set from the target set after :func:`normalise_sets`."""
    x, y = normalise_sets(prediction, target)
    if x.shape[1] == 0:
        raise ValueError("no radiomic feature is finite in both sets after z-scoring")
    return frechet_distance_sq(x, y)


def bootstrap(statistic: Callable[[np.ndarray, np.ndarray], float], prediction: np.ndarray, target: np.ndarray,
              seed: int, n_boot: int = N_BOOT, confidence: float = CI_LEVEL) -> tuple[float, float]:
    """Percentile interval of ``statistic(prediction, target)`` over case resamples (paired, with replacement)."""
    n = len(target)
    rng = np.random.default_rng(seed)
    draws = []
    for idx in rng.integers(0, n, size=(n_boot, n)):
        try:
            draws.append(statistic(prediction[idx], target[idx]))
        except ValueError:  # a resample with fewer than 2 usable cases or no finite feature: skipped
            continue
    if not draws:
        return float("nan"), float("nan")
    alpha = (1 - confidence) / 2
    lo, hi = np.quantile(np.asarray(draws, dtype=np.float64), [alpha, 1 - alpha])
    return float(lo), float(hi)


def set_value(features: Sequence[np.ndarray], seed: int, statistic: Callable[[np.ndarray, np.ndarray], float],
              transform: Callable[[float], float] = float) -> SetValue:
    """The set-level value of ``statistic`` over the cases' features with its bootstrap interval; NaN with the
    reason when the extra is missing or too few cases have features."""
    prediction, target = split_features(features)
    n = len(target)
    if n == 0:
        return SetValue(float("nan"), n=0, reason=unavailable_reason() or "no case has radiomic features")
    if n < 2:
        return SetValue(float("nan"), n=n, reason=f"a distribution distance needs at least 2 cases (got {n})")
    try:
        value = statistic(prediction, target)
    except ValueError as exc:
        return SetValue(float("nan"), n=n, reason=str(exc))
    lo, hi = bootstrap(statistic, prediction, target, seed)
    return SetValue(transform(value), transform(lo), transform(hi), n=n)


def aggregate_frd(features: Sequence[np.ndarray], seed: int = 0) -> SetValue:
    """FRD (``log d^2``) over the test set with its bootstrap interval (computed on ``d^2``, then logged)."""
    return set_value(features, seed, frd_sq, log_distance)


FRD = Metric("frd", "lower", "Frechet radiomic distance of the prediction set from the target set", CONVENTION,
             level="set", features=case_features, aggregate=aggregate_frd)

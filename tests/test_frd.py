"""The Frechet radiomic distance and the radiomic KID: estimators against numpy references, frd-score
itself on the same inputs, the acceptance properties on the BraTS phantom, and the run without the extra."""

from __future__ import annotations

import dataclasses
import math
import os
from itertools import product
from pathlib import Path

import numpy as np
import pytest
from scipy import linalg, ndimage

from cmsbench.benchmark.metrics import frd, kid

SIGMAS = (0.0, 0.5, 1.0, 2.0)  # Gaussian blur of the prediction, voxels
N_CASES = 3


def _needs_extra() -> None:
    reason = frd.unavailable_reason()
    if reason is not None:
        pytest.skip(f"the frd extra is not installed ({reason})")


# ------------------------------------------------------------------------- estimators (no extra needed)
def _frechet_reference(x: np.ndarray, y: np.ndarray) -> float:
    """The textbook formula with scipy's matrix square root (as frd-score computes it)."""
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    covmean = linalg.sqrtm(s1 @ s2).real
    diff = x.mean(axis=0) - y.mean(axis=0)
    return float(diff @ diff + np.trace(s1) + np.trace(s2) - 2 * np.trace(covmean))


@pytest.mark.parametrize(("n1", "n2", "d"), [(40, 30, 6), (12, 9, 30)])
def test_frechet_distance_equals_the_sqrtm_formula(n1: int, n2: int, d: int) -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(n1, d)) @ rng.normal(size=(d, d))
    y = rng.normal(0.3, 1.5, size=(n2, d))
    ours, ref = frd.frechet_distance_sq(x, y), _frechet_reference(x, y)
    assert ours == pytest.approx(ref, rel=1e-6)  # n < d too: rank-deficient covariances
    assert frd.frechet_distance_sq(x, x) == 0.0 and frd.log_distance(0.0) == -math.inf


def test_kid_equals_a_numpy_loop_over_pairs() -> None:
    rng = np.random.default_rng(1)
    x, y = rng.normal(size=(7, 5)), rng.normal(2.0, 1.0, size=(6, 5))
    k = lambda a, b: (a @ b / a.size + 1.0) ** 3  # noqa: E731
    xx = sum(k(x[i], x[j]) for i, j in product(range(7), range(7)) if i != j) / (7 * 6)
    yy = sum(k(y[i], y[j]) for i, j in product(range(6), range(6)) if i != j) / (6 * 5)
    xy = sum(k(a, b) for a in x for b in y) / (7 * 6)
    assert kid.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)
    same = kid.mmd2_unbiased(y, y)  # unbiased for independent samples: the set against itself is below 0
    assert same < 0 < kid.mmd2_unbiased(x, y)


def test_set_normalisation_follows_frd_score_v1() -> None:
    rng = np.random.default_rng(2)
    target = rng.normal(5.0, 2.0, size=(6, 4))
    target[:, 3] = 7.0  # constant in the reference set: dropped (inf/NaN after z-scoring)
    pred = rng.normal(size=(5, 4))
    pred[1, 0] = np.nan  # a case with a NaN feature: dropped from its set
    x, y = frd.normalise_sets(pred, target)
    assert x.shape == (4, 3) and y.shape == (6, 3)
    np.testing.assert_allclose(y.mean(axis=0), 0.0, atol=1e-6)
    np.testing.assert_allclose(y.std(axis=0), 1.0, rtol=1e-6)
    t32 = target.astype(np.float32).astype(np.float64)
    np.testing.assert_allclose(x[0], (pred[0, :3].astype(np.float32) - t32[:, :3].mean(0)) / t32[:, :3].std(0),
                               rtol=1e-6)


def test_without_the_extra_the_run_records_nan_with_the_install_command(brats_tiny: Path, tmp_path: Path,
                                                                        monkeypatch: pytest.MonkeyPatch) -> None:
    def missing():
        raise ImportError("No module named 'radiomics'")

    monkeypatch.setattr(frd, "_extractor", missing)
    from cmsbench.benchmark.runner import RunConfig, run

    rec = run(RunConfig(task="brats_flair", method="identity", data_root=str(brats_tiny), results=str(tmp_path),
                        device="cpu", metrics=("frd", "kid_radiomic"), max_cases=3)).record
    assert rec.status == "complete" and len(rec.ok_cases()) == 3
    for region, metric in product(("brain", "lesion"), ("frd", "kid_radiomic")):
        score = rec.set_scores[region][metric]
        assert score.value is None and "pip install" in score.reason and "cmsbench[frd]" in score.reason
    assert "healthy" not in rec.set_scores  # computed in the anatomy and the lesion only, the reason per case
    assert "brain, head, body, lesion" in next(iter(rec.ok_cases().values())).nan_reasons["healthy/frd"]
    assert rec.scoring.metrics["frd"].level == "set" and rec.scoring.metrics["frd"].direction == "lower"


# -------------------------------------------------------------------------------- on the BraTS phantom
@pytest.fixture(scope="module")
def phantom():
    """FLAIR targets, brain and lesion masks of the first BraTS phantom subjects, and the scorer's FRD
    features of each blurred prediction (sigma 0 = the target itself)."""
    _needs_extra()
    from cmsbench.benchmark.scorer import score_case
    from cmsbench.tasks.builtin import BRATS_FLAIR
    from cmsbench.tasks.phantoms.datasets import make_brats

    task = dataclasses.replace(BRATS_FLAIR, regions=("brain", "healthy"), metrics=("mae", "frd", "kid_radiomic"),
                               main_metric="mae")
    cases, features, scores = [], {s: [] for s in SIGMAS}, []
    for i in range(N_CASES):
        sub = make_brats(i)
        target = sub.images["flair"].astype(np.float32)
        masks = {"brain": sub.tissues.brain >= 0.5, "lesion": sub.labels > 0}
        cases.append((target, masks))
        for sigma in SIGMAS:
            pred = ndimage.gaussian_filter(target, sigma) if sigma else target.copy()
            score = score_case(target, pred, masks, task, case_id=sub.subject_id)
            features[sigma].append(score.features["brain"]["frd"])
            scores.append(score)
    return cases, features, scores


def test_features_are_extracted_once_for_both_metrics_in_the_anatomy_region(phantom) -> None:
    _, features, scores = phantom
    score = scores[1]
    assert set(score.features) == {"brain"}
    assert score.features["brain"]["frd"] is score.features["brain"]["kid_radiomic"]
    assert score.features["brain"]["frd"].shape == (2, 1014)
    assert "regions brain, head, body, lesion only" in score.nan_reasons["healthy/frd"]
    assert score.values["brain"]["mae"] > 0  # case-level metrics are scored beside them


@pytest.fixture(scope="module")
def set_values(phantom):
    """sigma -> (FRD, KID) over the phantom cases, seed 0."""
    _, features, _ = phantom
    return {s: (frd.aggregate_frd(features[s], seed=0), kid.aggregate_kid(features[s], seed=0)) for s in SIGMAS}


def test_frd_of_the_test_set_against_itself_is_the_floor(phantom, set_values) -> None:
    value = set_values[0.0][0]
    assert value.value == -math.inf and value.ci_low == -math.inf and value.ci_high == -math.inf
    assert value.n == N_CASES
    assert all(set_values[s][0].value > -math.inf for s in SIGMAS[1:])
    _, features, _ = phantom
    pred, target = frd.split_features(features[0.0])
    assert frd.frd_sq(pred, target) == 0.0


def test_frd_grows_monotonically_with_blur_strength(set_values) -> None:
    values = [set_values[s][0].value for s in SIGMAS]
    assert all(a < b for a, b in zip(values, values[1:], strict=False)), values
    kids = [set_values[s][1].value for s in SIGMAS]
    assert kids[0] < 0 < kids[1] < kids[2] < kids[3], kids  # identical sets: the unbiased estimate is below 0


def test_frd_interval_is_reproducible_for_a_seed(phantom, set_values) -> None:
    _, features, _ = phantom
    first = set_values[1.0][0]
    assert frd.aggregate_frd(features[1.0], seed=0) == first
    assert first.ci_low <= first.ci_high and math.isfinite(first.ci_low) and math.isfinite(first.ci_high)
    pred, target = frd.split_features(features[1.0])
    short = [frd.bootstrap(frd.frd_sq, pred, target, seed, n_boot=25) for seed in (3, 3)]
    assert short[0] == short[1]

    def order_sensitive(p: np.ndarray, t: np.ndarray) -> float:  # a value per resample sequence, not per multiset
        return float(np.dot(t[:, 0], np.arange(1.0, len(t) + 1.0)))

    # the seed decides the resamples (with 3 cases, FRD itself takes few distinct values: its quantiles
    # can coincide for two seeds)
    assert frd.bootstrap(order_sensitive, pred, target, 3, n_boot=25) != frd.bootstrap(order_sensitive, pred, target, 4,
                                                                                        n_boot=25)


def test_cropping_to_the_region_gives_the_whole_grid_features(phantom, monkeypatch: pytest.MonkeyPatch) -> None:
    cases, _, _ = phantom
    target, masks = cases[0]
    lesion = masks["lesion"]
    scaled, _ = frd.target_scaled(target, target, lesion)
    cropped = frd.radiomic_features(scaled, lesion, crop=True)
    frd._CACHE.clear()  # the second time from the disk cache, without pyradiomics
    with monkeypatch.context() as m:
        m.setattr(frd._extractor(), "execute", lambda *a: pytest.fail("extracted again despite the cache"))
        np.testing.assert_array_equal(frd.radiomic_features(scaled, lesion, crop=True), cropped)
    whole = frd.radiomic_features(scaled, lesion, crop=False)
    box = frd.crop_box(lesion, frd.extractor_settings(), (1.0, 1.0, 1.0))
    assert np.prod([s.stop - s.start for s in box]) < 0.75 * lesion.size  # the crop is smaller than the grid
    names = _feature_names()
    same = np.array([not n.startswith("diagnostics_Image-original") for n in names])  # the input's own stats
    np.testing.assert_allclose(cropped[same], whole[same], rtol=1e-5, atol=1e-8)


def _feature_names() -> list[str]:
    img = np.zeros((12, 12, 12), np.float32)
    img[3:9, 3:9, 3:9] = np.arange(216, dtype=np.float32).reshape(6, 6, 6)
    mask = img > 0
    out = frd._extractor().execute(frd._sitk(img, (1, 1, 1), (0, 0, 0)), frd._sitk(mask.astype(np.uint8), (1, 1, 1),
                                                                                  (0, 0, 0)))
    return frd.feature_vector(out)[0]


def _compare_with_compute_frd(cases, tmp_path: Path, extractor, **frd_kwargs) -> tuple[float, float]:
    import SimpleITK as sitk
    from frd_score import compute_frd

    for d in ("target", "pred", "mask"):
        (tmp_path / d).mkdir()
    features = []
    for i, (target, masks) in enumerate(cases):
        brain = masks["brain"]
        t, p = frd.target_scaled(target, ndimage.gaussian_filter(target, 1.0), brain)
        box = frd.crop_box(brain, extractor.settings, (1.0, 1.0, 1.0))
        origin = tuple(float(s.start) for s in box)
        for arr, folder in ((t, "target"), (p, "pred"), (brain, "mask")):
            img = frd._sitk(arr[box].astype(np.uint8 if arr.dtype == bool else np.float32), (1, 1, 1), origin)
            sitk.WriteImage(img, str(tmp_path / folder / f"case{i}.nii.gz"))
        features.append(np.stack([frd.radiomic_features(p, brain, extractor=extractor),
                                  frd.radiomic_features(t, brain, extractor=extractor)]))
    ours = frd.aggregate_frd(features, seed=0).value
    masks_dir = str(tmp_path / "mask")
    # frd-score extracts in a multiprocessing pool; a forked child of this process (torch, and jax when the
    # LPIPS tests ran first, hold threads) can deadlock, so its pool is started by spawning instead
    import multiprocessing

    import frd_score.frd as frd_module

    original = frd_module.mp
    frd_module.mp = multiprocessing.get_context("spawn")
    try:
        theirs = compute_frd([str(tmp_path / "target"), str(tmp_path / "pred")], paths_masks=[masks_dir, masks_dir],
                             settings_dict={"normalize": False}, num_workers=1, **frd_kwargs)
    finally:
        frd_module.mp = original
    return ours, float(theirs)


def test_frd_equals_frd_score_compute_frd_on_the_same_inputs(phantom, tmp_path: Path) -> None:
    """frd-score's own pipeline (NIfTI folders, its extractor, z-scoring, sqrtm, log) on the images frd.py
    extracts from (target-scaled, cropped), with the original image type only to keep the test short;
    ``CMSBENCH_FRD_FULL_CHECK=1`` runs the full v1 extractor (measured: 1.7e-7 apart on 4 cases)."""
    from frd_score.frd import FRD_VERSION_V1, get_feature_extractor

    cases, _, _ = phantom
    full = os.environ.get("CMSBENCH_FRD_FULL_CHECK") == "1"
    kwargs = {} if full else {"image_types": ["Original"]}
    extractor = get_feature_extractor(frd_version=FRD_VERSION_V1, image_dim=3, **kwargs)
    extractor.settings["normalize"] = False
    ours, theirs = _compare_with_compute_frd(cases, tmp_path, extractor, **kwargs)
    assert math.isfinite(ours) and ours == pytest.approx(theirs, abs=1e-5)

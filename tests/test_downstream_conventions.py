"""BraSyn 2025 per-label and SynthRAD2025 segmentation scores against MONAI (as SynthRAD2025 calls it) and
numpy references; the BraSyn tutorial's frozen output is checked in ``test_downstream_lesionwise.py``."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest
import torch
from scipy import ndimage

from cmsbench.benchmark.downstream.conventions import brasyn2025_scores, synthrad2025_seg_scores
from cmsbench.benchmark.downstream.surface import directed_max_hd95, pooled_hd95
from cmsbench.errors import MetricError


def _label_maps(seed: int, shape=(20, 24, 18), drop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    f = ndimage.gaussian_filter(rng.random(shape), 2.0)
    cuts = np.quantile(f, [0.4, 0.6, 0.8])
    gt = np.digitize(f, cuts).astype(np.int16)
    pred = np.digitize(f + ndimage.gaussian_filter(rng.normal(0, 0.02, shape), 1.5), cuts).astype(np.int16)
    if drop is not None:
        pred[pred == drop] = 0
    return gt, pred


def _monai_as_synthrad2025(gt: np.ndarray, pred: np.ndarray, spacing, classes) -> tuple[float, float]:
    """SynthRAD2025 ``segmentation_metrics.py``'s loop, with MONAI's metric objects."""
    from monai.metrics import DiceMetric, HausdorffDistanceMetric

    dice = DiceMetric(include_background=True, reduction="mean", get_not_nans=False)
    hd = HausdorffDistanceMetric(include_background=True, reduction="mean", percentile=95, get_not_nans=False)
    g_all, p_all = torch.from_numpy(gt), torch.from_numpy(pred)
    for c in classes:
        g = (g_all == c).view(1, 1, *gt.shape)
        if g.sum() == 0:
            continue
        p = (p_all == c).view(1, 1, *pred.shape)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            dice(p, g)
            hd(p, g, spacing=spacing)
    return dice.aggregate().item(), hd.aggregate().item()


@pytest.mark.parametrize(("seed", "drop", "spacing"), [(0, None, (1.0, 1.0, 1.0)), (1, None, (0.7, 1.3, 2.5)),
                                                      (2, 2, (1.5, 1.0, 3.0))])
def test_synthrad2025_seg_equals_monai_as_the_official_code_calls_it(seed, drop, spacing):
    gt, pred = _label_maps(seed, drop=drop)
    classes = [1, 2, 3, 7]  # 7 is absent from the ground truth: not scored
    want_dice, want_hd = _monai_as_synthrad2025(gt, pred, list(spacing), classes)
    got = synthrad2025_seg_scores(gt, pred, spacing, classes)
    assert got.labels == (1, 2, 3)
    assert got.dice == pytest.approx(want_dice, rel=1e-6) and got.hd95 == pytest.approx(want_hd, rel=1e-6)
    if drop is not None:  # the missing label: Dice 0 in the mean, HD95 left out of it (MONAI's NaN)
        assert got.per_label_dice[drop - 1] == 0.0 and math.isnan(got.per_label_hd95[drop - 1])


def test_synthrad2025_seg_edge_cases_follow_the_official_code():
    gt, pred = _label_maps(3)
    none = synthrad2025_seg_scores(gt, np.zeros_like(pred), (1.0, 1.0, 1.0), [1, 2, 3])
    assert (none.dice, none.hd95) == (0.0, 0.0) == _monai_as_synthrad2025(gt, np.zeros_like(pred), [1, 1, 1], [1, 2, 3])
    absent = synthrad2025_seg_scores(gt, pred, (1.0, 1.0, 1.0), [9])  # no listed label in the ground truth
    assert (absent.dice, absent.hd95, absent.labels) == (0.0, 0.0, ())
    default = synthrad2025_seg_scores(gt, pred, (1.0, 1.0, 1.0))  # default labels: the non-zero ones present
    assert default.labels == (1, 2, 3)


def _boundary(m: np.ndarray) -> np.ndarray:
    """Voxels of m with a 6-neighbour outside m (outside the grid counts as outside), by explicit shifts."""
    p = np.pad(m, 1)
    inner = p[1:-1, 1:-1, 1:-1].copy()
    for axis in range(3):
        for step in (-1, 1):
            inner &= np.roll(p, step, axis=axis)[1:-1, 1:-1, 1:-1]
    return m & ~inner


def _brute_distances(a: np.ndarray, b: np.ndarray, spacing) -> np.ndarray:
    pa, pb = np.argwhere(_boundary(a)) * spacing, np.argwhere(_boundary(b)) * spacing
    return np.sqrt(((pa[:, None, :] - pb[None, :, :]) ** 2).sum(-1)).min(1)


@pytest.mark.parametrize("spacing", [(1.0, 1.0, 1.0), (0.8, 1.5, 2.0)])
def test_boundary_voxel_hd95_equals_a_brute_force_reference(spacing):
    gt, pred = _label_maps(4, shape=(12, 14, 10))
    sp = np.asarray(spacing)
    for label in (1, 2, 3):
        g, p = gt == label, pred == label
        d_pg, d_gp = _brute_distances(p, g, sp), _brute_distances(g, p, sp)
        assert pooled_hd95(p, g, spacing) == pytest.approx(np.percentile(np.concatenate([d_pg, d_gp]), 95))
        assert directed_max_hd95(p, g, spacing) == pytest.approx(max(np.percentile(d_pg, 95),
                                                                     np.percentile(d_gp, 95)))


def test_brasyn2025_scores_per_label_in_voxels():
    gt, pred = _label_maps(5)
    s = brasyn2025_scores(gt, pred)
    assert set(s) == {f"{m}_label{i}" for m in ("dice", "hd95") for i in (1, 2, 3)}
    for label in (1, 2, 3):
        g, p = gt == label, pred == label
        assert s[f"dice_label{label}"] == pytest.approx(2 * (g & p).sum() / (g.sum() + p.sum()))
        assert s[f"hd95_label{label}"] == pooled_hd95(p, g, None)
    missing = brasyn2025_scores(gt, np.where(pred == 3, 0, pred))  # label 3 missing from the prediction
    assert missing["dice_label3"] == 0.0 and math.isnan(missing["hd95_label3"])
    empty = brasyn2025_scores(np.zeros_like(gt), np.zeros_like(pred))
    assert all(empty[f"dice_label{i}"] == 1.0 and empty[f"hd95_label{i}"] == 0.0 for i in (1, 2, 3))
    with pytest.raises(MetricError, match="differ in shape"):
        brasyn2025_scores(gt, pred[:-1])

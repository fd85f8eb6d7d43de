"""HU-band tissue consistency of synthetic CT: the classes, Dice per class, bone MAE, and the registered
metrics scored through the metric registry on an ``mr_ct`` case."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest

from cmsbench.benchmark.downstream import tissue
from cmsbench.benchmark.downstream.metrics import ENTRY_POINTS
from cmsbench.errors import MetricError


def test_bands_partition_hu_at_the_stated_edges():
    hu = np.array([-1024, -951, -950, -500, -191, -190, -30, -29, 0, 150, 299, 300, 1500])
    names = [tissue.DEFAULT_BANDS.names[i] for i in tissue.tissue_classes(hu)]
    assert names == ["air", "air", "lung", "lung", "lung", "fat", "fat", "soft_tissue", "soft_tissue",
                     "soft_tissue", "soft_tissue", "bone", "bone"]
    from cmsbench.benchmark.metrics.regions import BONE_HU

    assert tissue.DEFAULT_BANDS.edges[-1] == BONE_HU  # the bone class is cmsbench's bone region threshold
    with pytest.raises(MetricError, match="must increase"):
        tissue.TissueBands(("a", "b", "c"), (10.0, -10.0))
    with pytest.raises(MetricError, match="NaN"):
        tissue.tissue_classes(np.array([0.0, np.nan]))


def _ct(seed: int = 0, shape=(24, 24, 20)) -> tuple[np.ndarray, np.ndarray]:
    """A head-like CT: air outside, fat shell, soft tissue, a bone ring, an air pocket; body mask."""
    idx = np.indices(shape, dtype=float)
    r = np.sqrt(sum((i - (s - 1) / 2) ** 2 for i, s in zip(idx, shape, strict=True)))
    ct = np.full(shape, -1000.0)
    ct[r < 9.5] = -100.0  # fat
    ct[r < 8.5] = 1200.0  # bone
    ct[r < 7.0] = 40.0  # soft tissue
    ct[(r < 2.0)] = -980.0  # an air pocket
    rng = np.random.default_rng(seed)
    ct += rng.normal(0, 5, shape)
    return ct, r < 10.5


def test_identical_ct_has_dice_1_and_bone_mae_0():
    ct, body = _ct()
    d = tissue.tissue_dice(ct, ct, body)
    assert d["air"] == d["fat"] == d["soft_tissue"] == d["bone"] == 1.0 and math.isnan(d["lung"])
    assert tissue.bone_mae(ct, ct, body) == 0.0


def test_dice_and_bone_mae_against_explicit_counts():
    ct, body = _ct()
    synth = ct.copy()
    synth[ct > 300] -= 1000.0  # all bone becomes soft tissue (~200 HU)
    d = tissue.tissue_dice(ct, synth, body)
    assert d["bone"] == 0.0 and d["air"] == 1.0 and d["fat"] == 1.0
    soft_r, soft_s = ((ct >= -29) & (ct < 300))[body], ((synth >= -29) & (synth < 300))[body]
    assert d["soft_tissue"] == pytest.approx(2 * (soft_r & soft_s).sum() / (soft_r.sum() + soft_s.sum()))
    assert tissue.bone_mae(ct, synth, body) == pytest.approx(1000.0)
    # bone the synthetic CT invents counts too: MAE over the union of both CTs' bone
    invented = ct.copy()
    pocket = np.abs(ct + 980) < 50
    invented[pocket] = 520.0
    union = ((ct >= 300) | (invented >= 300)) & body
    assert tissue.bone_mae(ct, invented, body) == pytest.approx(np.abs(ct - invented)[union].mean())
    assert tissue.bone_mae(ct, invented, body) > 0 == tissue.bone_mae(ct, ct, body)
    with pytest.raises(MetricError, match="differ in shape"):
        tissue.tissue_dice(ct, ct[:-1], body)


def test_registered_metrics_score_an_mr_ct_case_and_match_the_reference():
    from cmsbench.benchmark.metrics.registry import METRICS, get_metric
    from cmsbench.benchmark.scorer import score_case
    from cmsbench.tasks.builtin import MR_CT

    assert set(ENTRY_POINTS) <= set(METRICS.entries())  # installed entry points
    assert METRICS.entries()["bone_mae"].distribution == "cmsbench"
    ct, body = _ct(1)
    synth = ct + np.random.default_rng(2).normal(0, 60, ct.shape)
    task = dataclasses.replace(MR_CT, metrics=("mae", *ENTRY_POINTS))
    s = score_case(ct.astype(np.float32), synth.astype(np.float32), {"body": body}, task, case_id="c1")
    v = s.values["body"]
    want = tissue.tissue_dice(ct.astype(np.float32), synth.astype(np.float32), body)
    for name in ("air", "fat", "soft_tissue", "bone"):
        assert v[f"tissue_dice_{name}"] == pytest.approx(want[name])
        ref = get_metric(f"tissue_dice_{name}").reference
        t, p = ct.astype(np.float32)[body].astype(float), synth.astype(np.float32)[body].astype(float)
        assert v[f"tissue_dice_{name}"] == pytest.approx(ref(t, p))
    assert v["tissue_dice_lung"] == 0.0  # the noise pushes air voxels into the lung band of the synthetic CT only
    assert v["tissue_dice_mean"] == pytest.approx(np.mean([want[n] for n in tissue.DEFAULT_BANDS.names]))
    assert 0 < v["bone_mae"] < 200 and 0.5 < v["tissue_dice_mean"] < 1.0
    near = score_case(ct.astype(np.float32), (ct + 1).astype(np.float32), {"body": body}, task, case_id="c2")
    assert near.values["body"]["tissue_dice_lung"] is None and "no lung voxel" in str(near.nan_reasons)
    assert get_metric("bone_mae").direction == "lower" and get_metric("tissue_dice_bone").direction == "higher"


def test_tissue_metrics_refuse_a_task_not_in_hu():
    from cmsbench.benchmark.metrics.api import CaseContext
    from cmsbench.benchmark.metrics.registry import get_metric
    from cmsbench.tasks.builtin import BRATS_FLAIR

    x = np.zeros((6, 6, 6), np.float32)
    ctx = CaseContext(x, x, {}, BRATS_FLAIR, region_masks={"global": None}, want_ssim=False)
    with pytest.raises(MetricError, match="need CT in HU"):
        get_metric("tissue_dice_bone").compute(ctx, "global")

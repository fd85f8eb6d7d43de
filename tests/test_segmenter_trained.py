"""The built-in ``segresnet`` segmenter: it learns on the train split, is deterministic, cached, and its identity
follows its fit. Tiny configuration on the tiny BraTS layout (20 x 22 x 8 voxels)."""

from __future__ import annotations

import numpy as np
import pytest

from cmsbench.benchmark.downstream.segmenters import SegmenterError, brats_labels, get_segmenter, real_images
from cmsbench.benchmark.runner import LazyCases
from cmsbench.tasks.dataset import open_dataset
from cmsbench.tasks.registry import get_task

#: the CPU preset shrunk to the tiny layout; no component removal (the preset's 250 mm^3 is most of a tiny tumour)
TINY = {"preset": "cpu", "epochs": 25, "init_filters": 8, "patch": [24, 24, 8], "batch": 4, "lr": 0.003,
        "min_component_mm3": 0.0}


@pytest.fixture()
def data(brats_tiny, tmp_path, monkeypatch):
    monkeypatch.setenv("CMSBENCH_HOME", str(tmp_path / "home"))
    ds = open_dataset(get_task("brats_flair"), brats_tiny)
    return ds, LazyCases(ds, ds.case_ids("train")), [ds.load_case(c) for c in ds.case_ids("test")]


def _wt_dice(seg, cases) -> float:
    out = []
    for case in cases:
        pred = seg.segment(real_images(case), case_id=case.case_id) > 0
        gt = brats_labels(case.labels.data) > 0
        out.append(2 * np.sum(pred & gt) / (pred.sum() + gt.sum()))
    return float(np.mean(out))


def test_segresnet_learns_is_deterministic_and_cached(data):
    ds, train, test = data
    calls = []
    seg = get_segmenter("segresnet", **TINY)
    with pytest.raises(SegmenterError, match="not prepared"):
        seg.segment(real_images(test[0]), case_id=test[0].case_id)
    seg.prepare(train, seed=0, device="cpu", data_fingerprint=ds.fingerprint(("train",)),
                progress=lambda stage, done, total: calls.append(done))
    assert seg.trained_now and calls[-1] == TINY["epochs"]
    assert _wt_dice(seg, test) >= 0.5  # an untrained network or an all-background map scores about 0
    label_map = seg.segment(real_images(test[0]), case_id=test[0].case_id)
    assert label_map.shape == test[0].target.shape and set(np.unique(label_map)) <= {0, 1, 2, 3}

    again = get_segmenter("segresnet", **TINY)  # same data, options, seed: loaded, not trained
    calls.clear()
    again.prepare(train, seed=0, device="cpu", data_fingerprint=ds.fingerprint(("train",)),
                  progress=lambda stage, done, total: calls.append(done))
    assert not again.trained_now and not calls
    assert again.weights_digest() == seg.weights_digest() and again.digest() == seg.digest()

    import shutil

    from cmsbench.paths import cache_home

    shutil.rmtree(cache_home() / "segmenters")  # trained again from scratch: the same weights
    retrained = get_segmenter("segresnet", **TINY)
    retrained.prepare(train, seed=0, device="cpu", data_fingerprint=ds.fingerprint(("train",)))
    assert retrained.trained_now and retrained.weights_digest() == seg.weights_digest()

    other_seed = get_segmenter("segresnet", **TINY)
    other_seed.prepare(train, seed=1, device="cpu", data_fingerprint=ds.fingerprint(("train",)))
    assert other_seed.digest() != seg.digest()
    assert get_segmenter("segresnet", **{**TINY, "epochs": 5}).digest() != get_segmenter("segresnet", **TINY).digest()


def test_segresnet_refuses_bad_options_and_missing_channels(data):
    ds, train, test = data
    with pytest.raises(SegmenterError, match="no option"):
        get_segmenter("segresnet", depth=3)
    with pytest.raises(SegmenterError, match="unknown preset"):
        get_segmenter("segresnet", preset="tpu")
    seg = get_segmenter("segresnet", **{**TINY, "epochs": 1})
    seg.prepare(train[:2], seed=0, device="cpu", data_fingerprint="x")
    images = real_images(test[0])
    images.pop("flair")
    with pytest.raises(SegmenterError, match="lacks"):
        seg.segment(images, case_id=test[0].case_id)


def test_small_components_are_dropped_by_volume_but_the_largest_stays():
    from cmsbench.benchmark.downstream.segresnet import _drop_small_components

    labels = np.zeros((20, 20, 10), np.int16)
    labels[2:8, 2:8, 2:6] = 2  # 144 voxels
    labels[4:6, 4:6, 3:5] = 3  # enhancing inside the big one: part of the same tumour component
    labels[15, 15, 8] = 1  # one voxel: 8 mm^3 at 2 mm spacing
    labels[12:14, 15:17, 1:3] = 2  # 8 voxels: 64 mm^3
    out = _drop_small_components(labels, 10.0, (2.0, 2.0, 2.0))
    assert out[15, 15, 8] == 0 and (out[12:14, 15:17, 1:3] == 2).all()
    assert (out[2:8, 2:8, 2:6] == labels[2:8, 2:8, 2:6]).all()
    out = _drop_small_components(labels, 100.0, (2.0, 2.0, 2.0))
    assert (out[12:14, 15:17, 1:3] == 0).all() and out.sum() == labels[2:8, 2:8, 2:6].sum()
    only = np.zeros_like(labels)
    only[0, 0, 0] = 2  # a lone tiny component is the largest: kept
    assert _drop_small_components(only, 1e6, (1.0, 1.0, 1.0))[0, 0, 0] == 2


def test_test_time_options_reuse_the_fit_and_training_options_do_not(data):
    ds, train, test = data
    fp = ds.fingerprint(("train",))
    tiny = {**TINY, "epochs": 2}
    plain = get_segmenter("segresnet", **tiny)
    plain.prepare(train, seed=0, device="cpu", data_fingerprint=fp)
    tta = get_segmenter("segresnet", **{**tiny, "tta": True, "min_component_mm3": 50.0})
    tta.prepare(train, seed=0, device="cpu", data_fingerprint=fp)
    assert not tta.trained_now and tta.weights_digest() == plain.weights_digest()
    assert tta.digest() != plain.digest()  # the records tell the two apart
    # neutral values are left out of the identity: records made before these options keep their digests
    assert "tta" not in plain.identity()["settings"] and tta.identity()["settings"]["tta"] is True
    flipped = get_segmenter("segresnet", **tiny, flip=True)
    flipped.prepare(train, seed=0, device="cpu", data_fingerprint=fp)
    assert flipped.trained_now and flipped.weights_digest() != plain.weights_digest()
    labels = tta.segment(real_images(test[0]), case_id=test[0].case_id)
    assert labels.shape == test[0].target.shape and set(np.unique(labels)) <= {0, 1, 2, 3}
    with pytest.raises(SegmenterError, match="true or false"):
        get_segmenter("segresnet", tta="yes").prepare(train, seed=0, device="cpu", data_fingerprint=fp)
    with pytest.raises(SegmenterError, match="min_component_mm3"):
        get_segmenter("segresnet", min_component_mm3=-1).prepare(train, seed=0, device="cpu", data_fingerprint=fp)
    # a lower probability threshold reuses the fit and can only grow every region
    low = get_segmenter("segresnet", **tiny, threshold=0.2)
    low.prepare(train, seed=0, device="cpu", data_fingerprint=fp)
    assert not low.trained_now and low.digest() != plain.digest() and "threshold" not in plain.identity()["settings"]
    loose = low.segment(real_images(test[0]), case_id=test[0].case_id)
    strict = plain.segment(real_images(test[0]), case_id=test[0].case_id)
    assert np.all((loose > 0) >= (strict > 0)) and np.all(np.isin(loose[strict == 3], [3]))
    with pytest.raises(SegmenterError, match="threshold"):
        get_segmenter("segresnet", threshold=1.5).prepare(train, seed=0, device="cpu", data_fingerprint=fp)

"""Downstream scoring speed on one BraTS-size case (pytest-benchmark; not part of the unit tests).

Run: ``python -m pytest benchmarks/bench_downstream.py --benchmark-only``.

One 240 x 240 x 155 label map pair (three ground-truth lesions, two found, one false positive, ~20
scattered single-voxel false positives, so the bounding boxes span the grid): BraTS 2023 lesion-wise and
legacy scores on WT/TC/ET, the BraSyn 2025 per-label scores, and the HU tissue classes of a CT pair of
the same size. When this was written (2 shared CPU cores, loaded): lesion-wise 1.6-4.3 s, per-label 0.4-0.6 s,
tissue classes 0.8-1.2 s;
the official BraTS 2023 ``metrics.py`` took about 50 s on the same case (same values).
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SHAPE = (240, 240, 155)
GT = [{"c": [120, 110, 80], "r": [30, 25, 22]}, {"c": [80, 160, 60], "r": [10, 12, 9]},
      {"c": [170, 90, 100], "r": [3, 3, 3], "label": 3}]
PRED = [{"c": [122, 112, 79], "r": [28, 26, 21]}, {"c": [82, 158, 61], "r": [9, 11, 10]},
        {"c": [60, 60, 40], "r": [4, 4, 4]}]


@pytest.fixture(scope="module")
def labels():
    path = Path(__file__).parents[1] / "tests" / "official" / "_lesion_phantoms.py"
    spec = importlib.util.spec_from_file_location("bench_lesion_phantoms", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.lesion_case(SHAPE, GT, PRED, speckle=2e-6, seed=1)


def test_lesionwise_brats2023(benchmark, labels):
    from cmsbench.benchmark.downstream.lesionwise import lesionwise_scores

    out = benchmark.pedantic(lesionwise_scores, args=labels, rounds=3, iterations=1)
    assert out["WT"].n_fp == 19 and out["WT"].n_tp == 2


def test_per_label_brasyn2025(benchmark, labels):
    from cmsbench.benchmark.downstream.conventions import brasyn2025_scores

    out = benchmark.pedantic(brasyn2025_scores, args=labels, rounds=3, iterations=1)
    assert 0 < out["dice_label2"] < 1


def test_tissue_dice_ct(benchmark):
    from cmsbench.benchmark.downstream.tissue import tissue_dice

    rng = np.random.default_rng(0)
    real = rng.normal(0, 400, SHAPE).astype(np.float32)
    synth = real + rng.normal(0, 50, SHAPE).astype(np.float32)
    body = np.ones(SHAPE, bool)
    out = benchmark.pedantic(tissue_dice, args=(real, synth, body), rounds=3, iterations=1)
    assert 0.5 < out["soft_tissue"] < 1


def test_segresnet_segmentation_time_per_brats_case(benchmark):
    """Inference of the built-in segresnet (CPU preset network, 3 channels) on one 240 x 240 x 155 case:
    sliding window of 128^3 (the time does not depend on the weights, so the network is not trained here),
    next to the scoring functions above."""
    import torch

    from cmsbench.benchmark.downstream.segresnet import SegResNetSegmenter

    seg = SegResNetSegmenter(preset="cpu")
    seg.settings, seg.channels = seg._resolve("cpu"), ["flair", "t1", "t2"]
    torch.manual_seed(0)
    seg.model = seg._network().eval()
    rng = np.random.default_rng(0)
    images = {c: rng.random(SHAPE, dtype=np.float32) for c in seg.channels}
    out = benchmark.pedantic(seg.segment, args=(images,), kwargs={"case_id": "bench"}, rounds=2, iterations=1)
    assert out.shape == SHAPE

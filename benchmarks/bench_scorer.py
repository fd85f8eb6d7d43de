"""Scorer speed against scikit-image and torchmetrics (pytest-benchmark; not part of the unit tests).

Run: ``python -m pytest benchmarks/bench_scorer.py --benchmark-only`` (add ``-s`` to see the ratio).

One 240 x 240 x 155 case (BraTS grid). The cmsbench default suite = PSNR, MAE, NMSE and 3D Gaussian
SSIM, each in ``global`` and inside three masks (``brain``, ``lesion``, ``healthy``), plus the
per-lesion list. Acceptance (issue): the suite takes at most 1/5 of scikit-image's 3D Gaussian SSIM
alone (``gaussian_weights=True, sigma=1.5, use_sample_covariance=False``) on the same pair, measured
in the same run: ``test_ratio_to_skimage`` times both interleaved (medians) and asserts it.
On CPU the scorer uses the numba engine when numba is installed; ``CMSBENCH_SSIM_ENGINE=torch`` times
the torch engine instead.
"""

from __future__ import annotations

import dataclasses
import os

import numpy as np
import pytest

SHAPE = (240, 240, 155)
MAX_RATIO = float(os.environ.get("CMSBENCH_MAX_RATIO", "0.2"))


@pytest.fixture(scope="module")
def case():
    from scipy import ndimage

    rng = np.random.default_rng(0)
    idx = np.ogrid[: SHAPE[0], : SHAPE[1], : SHAPE[2]]
    brain = ((idx[0] - 120) / 100.0) ** 2 + ((idx[1] - 120) / 90.0) ** 2 + ((idx[2] - 77) / 65.0) ** 2 < 1
    lesion = (idx[0] - 100) ** 2 + (idx[1] - 130) ** 2 + (idx[2] - 80) ** 2 < 20**2
    tex = ndimage.gaussian_filter(rng.standard_normal(SHAPE, dtype=np.float32), 2.0) * 3
    gt = np.where(brain, 1.0 + tex, 0.0).astype(np.float32)
    gt[lesion] *= 2.0
    pr = np.where(brain, gt + 0.05 * rng.standard_normal(SHAPE, dtype=np.float32), 0.0).astype(np.float32)
    masks = {"brain": brain, "lesion": lesion}
    from cmsbench.tasks.builtin import BRATS_FLAIR

    task = dataclasses.replace(
        BRATS_FLAIR, regions=("global", "brain", "lesion", "healthy"), metrics=("psnr", "mae", "nmse", "ssim")
    )
    return gt, pr, masks, task


def run_suite(case):
    from cmsbench.benchmark.scorer import score_case

    gt, pr, masks, task = case
    return score_case(gt, pr, masks, task, case_id="bench")


def run_skimage(case):
    from skimage.metrics import structural_similarity

    gt, pr, _, task = case
    return structural_similarity(
        gt, pr, gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=task.data_range.value
    )


def run_torchmetrics(case):
    import torch
    from torchmetrics.functional import structural_similarity_index_measure

    gt, pr, _, task = case
    t = lambda a: torch.from_numpy(a)[None, None]  # noqa: E731
    return float(structural_similarity_index_measure(t(pr), t(gt), data_range=task.data_range.value))


def test_cmsbench_default_suite(benchmark, case):
    score = benchmark.pedantic(run_suite, args=(case,), rounds=7, warmup_rounds=1)
    assert score.values["brain"]["ssim"] is not None


def test_skimage_ssim_3d(benchmark, case):
    benchmark.pedantic(run_skimage, args=(case,), rounds=3, warmup_rounds=0)


def test_torchmetrics_ssim_3d(benchmark, case):
    benchmark.pedantic(run_torchmetrics, args=(case,), rounds=1, warmup_rounds=0)


def test_ratio_to_skimage(benchmark, case):
    """Both timed in this process, interleaved, medians; the ratio goes to ``extra_info``."""
    import statistics
    import time

    ours, ref, ours_cpu, ref_cpu = [], [], [], []
    run_suite(case)
    for _ in range(3):
        t0, c0 = time.perf_counter(), time.process_time()
        run_skimage(case)
        ref.append(time.perf_counter() - t0)
        ref_cpu.append(time.process_time() - c0)
        for _ in range(2):
            t0, c0 = time.perf_counter(), time.process_time()
            score = run_suite(case)
            ours.append(time.perf_counter() - t0)
            ours_cpu.append(time.process_time() - c0)
    ratio = statistics.median(ours) / statistics.median(ref)
    # CPU time (all threads): insensitive to other processes sharing the cores
    cpu_ratio = statistics.median(ours_cpu) / statistics.median(ref_cpu)
    sk = run_skimage(case)
    # same convention as skimage except the border: compare on the interior-only flavour
    from cmsbench.benchmark.metrics.ssim import SSIMConfig, ssim

    gt, pr, _, task = case
    ours_valid = ssim(gt, pr, task.data_range.value, SSIMConfig(border="valid"))
    from cmsbench.benchmark.metrics.ssim_numba import select_engine

    engine = select_engine("cpu")  # CMSBENCH_SSIM_ENGINE=torch|numba
    benchmark.extra_info.update(
        {
            "engine": engine,
            "cmsbench_suite_ms": 1e3 * statistics.median(ours),
            "skimage_ssim_ms": 1e3 * statistics.median(ref),
            "ratio": ratio,
            "cmsbench_suite_cpu_ms": 1e3 * statistics.median(ours_cpu),
            "skimage_ssim_cpu_ms": 1e3 * statistics.median(ref_cpu),
            "cpu_time_ratio": cpu_ratio,
            "ssim_rel_diff_vs_skimage": abs(ours_valid - sk) / abs(sk),
        }
    )
    print(
        f"\n[{engine}] cmsbench suite {1e3 * statistics.median(ours):.0f} ms, skimage SSIM {1e3 * statistics.median(ref):.0f} ms,"
        f" ratio {ratio:.3f} (CPU time {1e3 * statistics.median(ours_cpu):.0f} vs"
        f" {1e3 * statistics.median(ref_cpu):.0f} ms, ratio {cpu_ratio:.3f}),"
        f" SSIM rel. diff {abs(ours_valid - sk) / abs(sk):.1e}"
    )
    benchmark.pedantic(lambda: None, rounds=1)
    assert score.values["global"]["psnr"] is not None
    assert abs(ours_valid - sk) / abs(sk) < 1e-5
    assert ratio <= MAX_RATIO, f"suite/skimage = {ratio:.3f} > {MAX_RATIO}"

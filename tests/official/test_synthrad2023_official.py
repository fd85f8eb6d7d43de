"""cmsbench's ``synthrad2023`` mode run beside the OFFICIAL SynthRAD2023 evaluator.

Set ``CMSBENCH_OFFICIAL_SYNTHRAD2023`` to a checkout of https://github.com/SynthRAD2023/metrics (see
``README.md`` here); its ``functions/image_metrics.py`` is imported from there (never copied into this
repository) and ``ImageMetrics``'s ``mae``, ``psnr`` and ``ssim`` are called as ``score_patient`` calls them
(float32 arrays, PSNR with the population range) on deterministic MR->CT-like phantoms. ``score_patient``
itself only reads three image files with SimpleITK/evalutils first, so it is not called. Skipped, with the
reason, when the variable is unset or the checkout cannot be imported.
"""

from __future__ import annotations

import importlib.util
import math
import os
import types
from pathlib import Path

import numpy as np
import pytest
from _standins import stand_ins

from cmsbench.benchmark.scorer import score_case
from cmsbench.tasks.builtin import MR_CT

ENV = "CMSBENCH_OFFICIAL_SYNTHRAD2023"
RTOL = 1e-6
HERE = Path(__file__).parent


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def official():
    root = os.environ.get(ENV)
    if not root:
        pytest.skip(f"{ENV} is not set (point it at a checkout of github.com/SynthRAD2023/metrics)")
    path = Path(root) / "functions" / "image_metrics.py"
    if not path.is_file():
        pytest.skip(f"{ENV}={root!r} has no functions/image_metrics.py")
    pytest.importorskip("skimage", reason="the official image_metrics.py needs scikit-image")
    # image_metrics.py imports SimpleITK and evalutils.io.SimpleITKLoader at module level; only
    # score_patient (file reading) uses them, so absent packages get empty stand-ins for the import only
    evalutils_io = types.SimpleNamespace(SimpleITKLoader=None)
    try:
        with stand_ins({"SimpleITK": {}, "evalutils": {"io": evalutils_io},
                        "evalutils.io": {"SimpleITKLoader": None}}):
            mod = _load(path, "synthrad2023_official_image_metrics")
    except Exception as exc:  # pragma: no cover - depends on the checkout
        pytest.skip(f"cannot import {path}: {exc!r}")
    return mod.ImageMetrics()


def official_scores(metrics, gt, pred, body) -> dict:
    """What ``score_patient`` computes once its images are read: all three cast to float32 (SimpleITK's
    ``CastImageFilter``), MAE and PSNR (population range) on the arrays, SSIM with the mask."""
    gt, pred, mask = (np.asarray(a).astype(np.float32) for a in (gt, pred, body))
    return {
        "mae": metrics.mae(gt, pred, mask),
        "psnr": metrics.psnr(gt, pred, mask, use_population_range=True),
        "ssim": float(metrics.ssim(gt, pred, mask)),
    }


PHANTOMS = _load(HERE / "_phantoms.py", "cmsbench_official_phantoms")

CASES = {
    "all_axes_small": dict(shape=(40, 36, 30), seed=1),
    "int16_ct_noisy_blurred": dict(shape=(64, 60, 50), seed=2, gt_dtype="int16", noise_hu=150, bias_hu=80, blur=1.0),
    "float64_body_cut": dict(shape=(20, 97, 9), seed=3, gt_dtype="float64", pred_dtype="float64", cut_last_axis=True),
    "tiny_8x9x12": dict(shape=(8, 9, 12), seed=6, noise_hu=90),
    "body_cut_blurred": dict(shape=(100, 96, 98), seed=4, noise_hu=250, blur=1.5, cut_last_axis=True),
    "int16_both": dict(shape=(120, 110, 104), seed=5, gt_dtype="int16", pred_dtype="int16", noise_hu=100),
    "poor_prediction": dict(shape=(48, 40, 36), seed=7, noise_hu=600, bias_hu=200),
    "long_thin": dict(shape=(130, 24, 20), seed=8, gt_dtype="int16", noise_hu=120, blur=0.8),
}


@pytest.mark.parametrize("name", list(CASES))
def test_synthrad2023_equals_official(official, name):
    params = dict(CASES[name])
    gt, pred, body = PHANTOMS.ct_case(params.pop("shape"), params.pop("seed"), **params)
    want = official_scores(official, gt, pred, body)
    got = score_case(gt, pred, {"body": body}, MR_CT, mode="synthrad2023", case_id=name)
    assert set(got.values["body"]) == set(want)
    for metric, ref in want.items():
        value = got.values["body"][metric]
        assert math.isfinite(ref), f"official {metric} is {ref!r}: choose another phantom"
        assert value is not None, f"{metric}: cmsbench gave no value ({got.nan_reasons})"
        assert value == pytest.approx(ref, rel=RTOL), (
            f"{name} {metric}: cmsbench {value!r}, official {ref!r}, relative {abs(value - ref) / abs(ref):.3g}"
        )

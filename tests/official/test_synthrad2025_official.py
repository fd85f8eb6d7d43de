"""cmsbench's ``synthrad2025`` mode run beside the OFFICIAL SynthRAD2025 evaluator.

Set ``CMSBENCH_OFFICIAL_SYNTHRAD2025`` to a checkout of https://github.com/SynthRAD2025/evaluation
(see ``README.md`` here); its ``image_metrics.py`` is imported from there (never copied into this
repository) and ``ImageMetrics().score_patient`` is compared with cmsbench on deterministic MR->CT-like
phantoms. Skipped, with the reason, when the variable is unset or the checkout cannot be imported.
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import pytest
from _standins import stand_ins

from cmsbench.benchmark.scorer import score_case
from cmsbench.tasks.builtin import MR_CT

ENV = "CMSBENCH_OFFICIAL_SYNTHRAD2025"
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
        pytest.skip(f"{ENV} is not set (point it at a checkout of github.com/SynthRAD2025/evaluation)")
    path = Path(root) / "image_metrics.py"
    if not path.is_file():
        pytest.skip(f"{ENV}={root!r} has no image_metrics.py")
    pytest.importorskip("skimage", reason="the official image_metrics.py needs scikit-image")
    try:  # image_metrics.py imports SimpleITK at module level but ImageMetrics never uses it
        with stand_ins({"SimpleITK": {}}):
            mod = _load(path, "synthrad2025_official_image_metrics")
    except Exception as exc:  # pragma: no cover - depends on the checkout
        pytest.skip(f"cannot import {path}: {exc!r}")
    return mod.ImageMetrics()


PHANTOMS = _load(HERE / "_phantoms.py", "cmsbench_official_phantoms")

CASES = {
    "all_axes_below_97": dict(shape=(40, 36, 30), seed=1),
    "int16_ct_noisy_blurred": dict(shape=(64, 60, 50), seed=2, gt_dtype="int16", noise_hu=150, bias_hu=80, blur=1.0),
    "float64_one_axis_exactly_97_body_cut": dict(
        shape=(20, 97, 5), seed=3, gt_dtype="float64", pred_dtype="float64", cut_last_axis=True
    ),
    "tiny_5x7x12": dict(shape=(5, 7, 12), seed=6, noise_hu=90),
    "mixed_97_boundary": dict(shape=(100, 96, 98), seed=4, noise_hu=250, blur=1.5, cut_last_axis=True),
    "larger_than_97_int16": dict(shape=(120, 110, 104), seed=5, gt_dtype="int16", pred_dtype="int16", noise_hu=100),
    "poor_prediction": dict(shape=(48, 40, 36), seed=7, noise_hu=600, bias_hu=200),
    "one_axis_above_97": dict(shape=(130, 24, 20), seed=8, gt_dtype="int16", noise_hu=120, blur=0.8),
}


@pytest.mark.parametrize("name", list(CASES))
def test_synthrad2025_equals_official(official, name):
    params = dict(CASES[name])
    gt, pred, body = PHANTOMS.ct_case(params.pop("shape"), params.pop("seed"), **params)
    want = official.score_patient(gt, pred, body)
    got = score_case(gt, pred, {"body": body}, MR_CT, mode="synthrad2025", case_id=name)
    assert set(got.values["body"]) == set(want)
    for metric, ref in want.items():
        value = got.values["body"][metric]
        assert math.isfinite(ref), f"official {metric} is {ref!r}: choose another phantom"
        assert value is not None, f"{metric}: cmsbench gave no value ({got.nan_reasons})"
        assert value == pytest.approx(ref, rel=RTOL), (
            f"{name} {metric}: cmsbench {value!r}, official {ref!r}, relative {abs(value - ref) / abs(ref):.3g}"
        )

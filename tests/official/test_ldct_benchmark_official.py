"""cmsbench's ``ldct_benchmark`` mode run beside the OFFICIAL ldct-benchmark ``compute_metric``.

Set ``CMSBENCH_OFFICIAL_LDCT_BENCHMARK`` to a checkout of https://github.com/eeulig/ldct-benchmark (see
``README.md`` here); its ``ldctbench/evaluate/utils.py`` is imported from there (never copied into this
repository) and ``compute_metric`` is compared with cmsbench on deterministic low-dose-CT-like phantoms,
called the way the package's test script calls it: float32 slices ``(n_slices, 1, H, W)`` in HU + 1024,
once per exam type (``C`` chest, ``L`` abdomen, ``N`` head), the case value being the mean over slices.
Skipped, with the reason, when the variable is unset or the checkout cannot be imported.

``utils.py`` imports, for functions other than ``compute_metric``, modules with heavy dependencies
(``ldctbench.evaluate.ldct_iqa`` needs torchvision and a downloaded checkpoint; ``ldctbench.utils``
pulls in wandb and torchvision through its training helpers). The loader below gives it, for the time
of the import only, a stand-in ``ldct_iqa`` module and an ``ldctbench.utils`` module exposing the
checkout's own ``ldctbench/utils/auxiliaries.py`` functions (``apply_center_width``, ``load_json``,
``load_yaml``), which is all ``compute_metric`` uses; everything else is the checkout's code.
"""

from __future__ import annotations

import importlib.util
import math
import os
import sys
import types
import warnings
from pathlib import Path

import numpy as np
import pytest

from cmsbench.benchmark.scorer import score_case
from cmsbench.tasks.builtin import LDCT

ENV = "CMSBENCH_OFFICIAL_LDCT_BENCHMARK"
RTOL = 1e-6
HERE = Path(__file__).parent
EXAM_TYPES = {"C": "chest", "L": "abdomen", "N": "head"}  # the package's CW keys -> cmsbench window names
_STANDINS = (
    "ldctbench",
    "ldctbench.utils",
    "ldctbench.utils.auxiliaries",
    "ldctbench.evaluate",
    "ldctbench.evaluate.ldct_iqa",
    "ldctbench.hub",
    "ldctbench.hub.methods",
    "ldctbench.evaluate.utils",
)


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    sys.modules[name] = mod
    spec.loader.exec_module(mod)
    return mod


def load_official(root: Path):
    """``ldctbench.evaluate.utils`` of the checkout at ``root`` (see the module docstring); ``sys.modules``
    is restored afterwards."""
    pkg = root / "ldctbench"
    saved = {k: sys.modules.get(k) for k in _STANDINS}
    try:
        top = types.ModuleType("ldctbench")
        top.__file__ = str(pkg / "__init__.py")  # utils.py finds hub/checkpoints.json and data/info.yml from it
        top.__path__ = [str(pkg)]
        sys.modules["ldctbench"] = top
        aux = _load(pkg / "utils" / "auxiliaries.py", "ldctbench.utils.auxiliaries")
        utils = types.ModuleType("ldctbench.utils")
        utils.apply_center_width, utils.load_json, utils.load_yaml = (
            aux.apply_center_width,
            aux.load_json,
            aux.load_yaml,
        )
        sys.modules["ldctbench.utils"] = utils
        for name, sub in (("ldctbench.evaluate", "evaluate"), ("ldctbench.hub", "hub")):
            m = types.ModuleType(name)
            m.__path__ = [str(pkg / sub)]
            sys.modules[name] = m
        iqa = types.ModuleType("ldctbench.evaluate.ldct_iqa")
        iqa.LDCTIQA = type("LDCTIQA", (), {})  # only a type annotation in compute_metric
        sys.modules["ldctbench.evaluate.ldct_iqa"] = iqa
        _load(pkg / "hub" / "methods.py", "ldctbench.hub.methods")
        return _load(pkg / "evaluate" / "utils.py", "ldctbench.evaluate.utils")
    finally:
        for k, v in saved.items():
            if v is None:
                sys.modules.pop(k, None)
            else:
                sys.modules[k] = v


@pytest.fixture(scope="module")
def official():
    root = os.environ.get(ENV)
    if not root:
        pytest.skip(f"{ENV} is not set (point it at a checkout of github.com/eeulig/ldct-benchmark)")
    path = Path(root) / "ldctbench" / "evaluate" / "utils.py"
    if not path.is_file():
        pytest.skip(f"{ENV}={root!r} has no ldctbench/evaluate/utils.py")
    for dep in ("skimage", "yaml", "torchmetrics"):
        pytest.importorskip(dep, reason=f"the official ldctbench/evaluate/utils.py needs {dep}")
    try:
        return load_official(Path(root))
    except Exception as exc:  # pragma: no cover - depends on the checkout
        pytest.skip(f"cannot import {path}: {exc!r}")


def run_official(mod, gt_hu: np.ndarray, pred_hu: np.ndarray) -> dict[str, float]:
    """The package's metrics for one case, named as cmsbench names them: ``compute_metric`` on float32
    HU + 1024 slices, once per exam type, each metric the mean over slices."""

    def slices(a):  # (X, Y, Z) HU -> (Z, 1, X, Y) HU + 1024, float32 as the package's data pipeline gives
        return np.moveaxis((np.asarray(a, np.float64) + 1024.0).astype(np.float32), -1, 0)[:, None]

    out = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # 1 / 0 for an identical slice: PSNR inf
        for exam, window in EXAM_TYPES.items():
            res = mod.compute_metric(slices(gt_hu), slices(pred_hu), ["SSIM", "PSNR", "RMSE"], exam_type=exam)
            out[f"ssim_{window}"] = float(np.mean(res["SSIM"]))
            out[f"psnr_{window}"] = float(np.mean(res["PSNR"]))
            out["rmse"] = float(np.mean(res["RMSE"]))  # the same for every exam type
    return out


PHANTOMS = _load(HERE / "_ldct_phantoms.py", "cmsbench_official_ldct_phantoms")

CASES = {
    "default_noise": dict(shape=(64, 60, 6), seed=1),
    "strong_noise_blurred": dict(shape=(48, 40, 5), seed=2, noise_hu=80, blur=1.0),
    "integer_prediction": dict(shape=(40, 44, 4), seed=3, noise_hu=10, integer_pred=True),
    "smallest_7x9_slices": dict(shape=(7, 9, 3), seed=4, noise_hu=5),
    "near_identical_no_metal": dict(shape=(96, 80, 3), seed=5, noise_hu=4, offset_hu=0.5, blur=0.6, metal=False),
    "one_identical_slice_psnr_inf": dict(shape=(30, 32, 4), seed=6, identical_slice=2),
    "slices_128x128": dict(shape=(128, 128, 2), seed=7, noise_hu=40),
}


@pytest.mark.parametrize("name", list(CASES))
def test_ldct_benchmark_equals_official(official, name):
    params = dict(CASES[name])
    gt, pred = PHANTOMS.ldct_case(params.pop("shape"), params.pop("seed"), **params)
    want = run_official(official, gt, pred)
    got = score_case(gt, pred, {}, LDCT, mode="ldct_benchmark", case_id=name)
    assert set(got.values["global"]) == set(want)
    for metric, ref in want.items():
        value = got.values["global"][metric]
        label = f"{name} {metric}: cmsbench {value!r}, official {ref!r}"
        assert not math.isnan(ref), f"official {metric} is NaN: choose another phantom"
        if math.isinf(ref):
            assert value == ref, label
            continue
        assert value is not None, f"{label} ({got.nan_reasons})"
        assert value == pytest.approx(ref, rel=RTOL), f"{label}, relative {abs(value - ref) / abs(ref):.3g}"

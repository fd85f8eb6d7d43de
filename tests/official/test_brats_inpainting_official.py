"""cmsbench's ``brats_inpainting`` mode run beside the OFFICIAL BraTS 2023 inpainting ``compute_metrics``.

Set ``CMSBENCH_OFFICIAL_BRASYN`` to a checkout of https://github.com/hongweilibran/BraSyn (see
``README.md`` here); its ``evaluation_utils.py`` (the copy of the BraTS 2023 inpainting metrics) is
imported from there, never copied into this repository, and ``compute_metrics(gt, pred, mask)`` is
compared with cmsbench, every task region playing the inpainting mask, on deterministic brain-MR-like
phantoms and on the real BraTS 2023 case the checkout ships (``data/reference/BraTS-GLI-00000-000``,
tumour and sub-regions as masks). Skipped, with the reason, when the variable is unset or the checkout
cannot be imported.

The official function runs torchmetrics' 3D SSIM in float64, whose CPU convolution unfolds ~53 kB per
voxel (475 GB for a whole 240x240x155 BraTS volume), so the real case is compared on a contiguous crop
around the tumour and on the whole volume subsampled by a stride (about 40k voxels, 2-3 GB each).
"""

from __future__ import annotations

import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest

from cmsbench.benchmark.metrics.regions import build_region
from cmsbench.benchmark.scorer import score_case
from cmsbench.tasks.builtin import BRATS_FLAIR

# the official np.clip of a torch tensor goes through numpy's __array_wrap__ fallback, which warns
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")

ENV = "CMSBENCH_OFFICIAL_BRASYN"
RTOL = 1e-6
HERE = Path(__file__).parent
METRICS = ("mse", "psnr", "ssim")  # the order compute_metrics returns them in
REAL = "data/reference/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{}.nii.gz"
SHIPPED_OUTPUT = "data/output/BraTS-GLI-00000-000/BraTS-GLI-00000-000-t1n.nii.gz"


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _root() -> Path:
    root = os.environ.get(ENV)
    if not root:
        pytest.skip(f"{ENV} is not set (point it at a checkout of github.com/hongweilibran/BraSyn)")
    return Path(root)


@pytest.fixture(scope="module")
def official():
    path = _root() / "evaluation_utils.py"
    if not path.is_file():
        pytest.skip(f"{ENV}={str(path.parent)!r} has no evaluation_utils.py")
    pytest.importorskip("torchmetrics", reason="the official evaluation_utils.py needs torchmetrics")
    try:
        mod = _load(path, "brasyn_official_evaluation_utils")
    except Exception as exc:  # pragma: no cover - depends on the checkout
        pytest.skip(f"cannot import {path}: {exc!r}")
    return mod.compute_metrics


def _run_official(compute_metrics, gt, pred, mask) -> dict[str, float]:
    import torch

    def t(a):  # the 5-D (1, 1, X, Y, Z) tensors the official function requires; the mask boolean
        return torch.from_numpy(np.ascontiguousarray(a))[None, None]

    return dict(zip(METRICS, compute_metrics(t(gt), t(pred), t(np.asarray(mask) > 0)), strict=True))


def _compare(compute_metrics, gt, pred, masks, where: str, regions=BRATS_FLAIR.regions) -> int:
    """Asserts cmsbench == official for every region (as the mask) and metric; returns the number of
    finite values compared."""
    got = score_case(gt, pred, masks, BRATS_FLAIR, mode="brats_inpainting", case_id=where)
    n = 0
    for region in regions:
        if region == "global":
            continue
        assert set(got.values[region]) == set(METRICS)
        want = _run_official(compute_metrics, gt, pred, build_region(region, gt, masks))
        for metric, ref in want.items():
            value = got.values[region][metric]
            label = f"{where} {region}/{metric}: cmsbench {value!r}, official {ref!r}"
            if math.isnan(ref):
                assert value is None, label
                assert f"{region}/{metric}" in got.nan_reasons, label
            elif math.isinf(ref):
                assert value == ref, label
            else:
                assert value is not None, f"{label} ({got.nan_reasons})"
                assert value == pytest.approx(ref, rel=RTOL), f"{label}, relative {abs(value - ref) / abs(ref):.3g}"
                n += 1
    return n


PHANTOMS = _load(HERE / "_mr_phantoms.py", "cmsbench_official_mr_phantoms")

CASES = {
    "float32": dict(shape=(24, 22, 20), seed=1),
    "int16_bright_lesion_clipped": dict(shape=(30, 26, 22), seed=2, dtype="int16", lesion_gain=2.0, noise=60, blur=0.8),
    "float64_negative_background": dict(shape=(20, 24, 18), seed=3, dtype="float64", background_noise=15.0),
    "filled_positive_lower_bound": dict(shape=(22, 20, 18), seed=4, fill=True, lesion_gain=1.4),
    "tiny_12x10x8": dict(shape=(12, 10, 8), seed=5, noise=80),
    "thin_axis_6_int16": dict(shape=(28, 24, 6), seed=6, dtype="int16", blur=1.0),
    "poor_prediction": dict(shape=(26, 24, 20), seed=7, noise=200, bias=120, blur=1.5),
}


@pytest.mark.parametrize("name", list(CASES))
def test_brats_inpainting_equals_official_on_phantoms(official, name):
    params = dict(CASES[name])
    gt, pred, masks = PHANTOMS.mr_case(params.pop("shape"), params.pop("seed"), **params)
    assert _compare(official, gt, pred, masks, name) > 0


def _real_case(root: Path):
    nib = pytest.importorskip("nibabel", reason="reading the shipped BraTS case needs nibabel")
    files = {k: root / REAL.format(k) for k in ("t1n", "seg")}
    missing = [str(f) for f in files.values() if not f.is_file()]
    if missing:
        pytest.skip(f"the checkout lacks the real BraTS 2023 case: {missing}")
    gt = np.asanyarray(nib.load(files["t1n"]).dataobj)
    seg = np.asanyarray(nib.load(files["seg"]).dataobj)
    masks = {"brain": gt > 0, "lesion": seg > 0, "necrotic": seg == 1, "edema": seg == 2, "enhancing": seg == 3}
    return nib, gt, masks


def _predictions(nib, root: Path, gt: np.ndarray) -> dict[str, np.ndarray]:
    """A seeded inpainting-like t1n (blurred, rescaled, noisy, int16 like the reference) and, when the
    checkout has it, the t1n the repository ships as a synthesis output."""
    from scipy import ndimage

    rng = np.random.default_rng(2023)
    smooth = ndimage.gaussian_filter(gt.astype(np.float64), 1.0) * 0.97 + rng.normal(0, 30, gt.shape)
    preds = {"seeded_t1n": np.where(gt > 0, np.rint(smooth), 0).astype(np.int16)}
    shipped = root / SHIPPED_OUTPUT
    if shipped.is_file():
        preds["shipped_output_t1n"] = np.asanyarray(nib.load(shipped).dataobj)
    return preds


BOXES = {
    "tumour_crop_36x36x30": np.s_[122:158, 64:100, 57:87],
    "whole_volume_stride_6x6x5": np.s_[::6, ::6, ::5],
}


@pytest.mark.parametrize("box", list(BOXES))
def test_brats_inpainting_equals_official_on_the_real_brats_case(official, box):
    root = _root()
    nib, gt, masks = _real_case(root)
    sl = BOXES[box]
    for pname, pred in _predictions(nib, root, gt).items():
        sub_masks = {k: v[sl] for k, v in masks.items()}
        regions = ("lesion", "necrotic", "edema", "enhancing", "healthy", "lesion_ring")
        assert sub_masks["lesion"].any()
        _compare(official, gt[sl], pred[sl], sub_masks, f"BraTS-GLI-00000-000 {box} {pname}", regions)

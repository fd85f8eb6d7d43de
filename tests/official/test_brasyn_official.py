"""cmsbench's ``brasyn`` mode run beside the OFFICIAL BraSyn ``ssim.py`` ``compute_metrics``.

Set ``CMSBENCH_OFFICIAL_BRASYN`` to a checkout of https://github.com/hongweilibran/BraSyn (see ``README.md``
here). ``ssim.py`` is a script: at import it would read a case with SimpleITK, so only its imports, the
module-level ``StructuralSimilarityIndexMeasure`` and its functions (everything before ``real_path = ...``)
are executed from the checkout, never copied into this repository; SimpleITK, imported but unused by
``compute_metrics``, gets an empty stand-in when not installed. ``compute_metrics(gt, pred, seg)`` is
compared with cmsbench on deterministic brain-MR-like phantoms and on the real BraTS 2023 case the checkout
ships (``data/reference/BraTS-GLI-00000-000``). Skipped, with the reason, when the variable is unset or
the checkout cannot be loaded.

The official SSIM runs torchmetrics' float64 ``conv3d`` (~53 kB per voxel on CPU), so the real case is
compared on a crop around the tumour and on the whole volume subsampled by a stride.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import os
from pathlib import Path

import numpy as np
import pytest
from _standins import stand_ins

from cmsbench.benchmark.scorer import score_case
from cmsbench.tasks.builtin import BRATS_FLAIR

# the official np.clip of a torch tensor goes through numpy's __array_wrap__ fallback, which warns
pytestmark = pytest.mark.filterwarnings("ignore:__array_wrap__ must accept context:DeprecationWarning")

ENV = "CMSBENCH_OFFICIAL_BRASYN"
RTOL = 1e-6
HERE = Path(__file__).parent
REGIONS = ("lesion", "non_lesion")  # the order compute_metrics returns them in: (SSIM_tumor, SSIM_non_tumor)
REAL = "data/reference/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{}.nii.gz"
OUTPUT = "data/output/BraTS-GLI-00000-000/BraTS-GLI-00000-000-{}.nii.gz"


def _root() -> Path:
    root = os.environ.get(ENV)
    if not root:
        pytest.skip(f"{ENV} is not set (point it at a checkout of github.com/hongweilibran/BraSyn)")
    return Path(root)


def load_official_ssim_py(path: Path):
    """``compute_metrics`` of the checkout's ``ssim.py``, executing only the statements before the
    script part (``real_path = ...``)."""
    tree = ast.parse(path.read_text(), str(path))
    body = []
    for node in tree.body:
        if isinstance(node, ast.Assign) and any(getattr(t, "id", None) == "real_path" for t in node.targets):
            break
        body.append(node)
    ns: dict = {"__name__": "brasyn_official_ssim"}
    with stand_ins({"SimpleITK": {}}):  # imported, unused by compute_metrics
        exec(compile(ast.Module(body=body, type_ignores=[]), str(path), "exec"), ns)  # noqa: S102
    return ns["compute_metrics"]


@pytest.fixture(scope="module")
def official():
    path = _root() / "ssim.py"
    if not path.is_file():
        pytest.skip(f"{ENV}={str(path.parent)!r} has no ssim.py")
    pytest.importorskip("torchmetrics", reason="the official ssim.py needs torchmetrics")
    try:
        return load_official_ssim_py(path)
    except Exception as exc:  # pragma: no cover - depends on the checkout
        pytest.skip(f"cannot load {path}: {exc!r}")


def run_official(compute_metrics, gt, pred, seg) -> dict[str, float]:
    import torch

    def t(a):  # the 5-D (1, 1, X, Y, Z) tensors the official function requires
        return torch.from_numpy(np.ascontiguousarray(a))[None, None]

    # compute_metrics sets mask[mask > 0] = 1 in place: pass a copy (uint8, like a seg.nii.gz)
    out = compute_metrics(t(gt), t(pred), t(np.asarray(seg).astype(np.uint8)), normalize=True)
    return dict(zip(REGIONS, out, strict=True))


def _compare(compute_metrics, gt, pred, masks, where: str) -> float:
    """Asserts cmsbench == official for both regions; returns the max relative difference."""
    got = score_case(gt, pred, masks, BRATS_FLAIR, mode="brasyn", case_id=where)
    seg = masks["lesion"] if "lesion" in masks else np.logical_or.reduce([masks[k] for k in ("necrotic", "edema")])
    worst = 0.0
    for region, ref in run_official(compute_metrics, gt, pred, seg).items():
        value = got.values[region]["ssim"]
        label = f"{where} {region}/ssim: cmsbench {value!r}, official {ref!r}"
        if math.isnan(ref):
            assert value is None and f"{region}/ssim" in got.nan_reasons, label
            continue
        assert value is not None, f"{label} ({got.nan_reasons})"
        rel = abs(value - ref) / abs(ref)
        assert value == pytest.approx(ref, rel=RTOL), f"{label}, relative {rel:.3g}"
        worst = max(worst, rel)
    return worst


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


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
def test_brasyn_equals_official_on_phantoms(official, name):
    params = dict(CASES[name])
    gt, pred, masks = PHANTOMS.mr_case(params.pop("shape"), params.pop("seed"), **params)
    _compare(official, gt, pred, masks, name)


def _real_case(root: Path):
    """The shipped segmentation and, per modality the checkout has, (reference, prediction) pairs: a seeded
    synthesis-like prediction (blurred, rescaled, noisy, int16 like the reference), for t1n also one with
    float32 noise in the background too (a negative 0.5th percentile: the official lower bound is raised
    to 0), and the repository's ``data/output`` image where shipped (at 8908040 these are byte-identical
    copies of the references, so their SSIM is 1)."""
    nib = pytest.importorskip("nibabel", reason="reading the shipped BraTS case needs nibabel")
    from scipy import ndimage

    seg_file = root / REAL.format("seg")
    if not seg_file.is_file():
        pytest.skip(f"the checkout lacks the real BraTS 2023 case: {seg_file}")
    seg = np.asanyarray(nib.load(seg_file).dataobj)
    pairs = {}
    for k, mod in enumerate(("t1n", "t1c", "t2w", "t2f")):
        ref, out = root / REAL.format(mod), root / OUTPUT.format(mod)
        if not ref.is_file():
            continue
        gt = np.asanyarray(nib.load(ref).dataobj)
        rng = np.random.default_rng(2023 + k)
        smooth = ndimage.gaussian_filter(gt.astype(np.float64), 1.0) * 0.97 + rng.normal(0, 0.02 * gt.max(), gt.shape)
        pairs[f"seeded_{mod}"] = (gt, np.where(gt > 0, np.rint(smooth), 0).astype(np.int16))
        if mod == "t1n":
            pairs["seeded_t1n_noisy_background"] = (gt, (smooth + rng.normal(0, 20, gt.shape)).astype(np.float32))
        if out.is_file():
            pairs[f"shipped_output_{mod}"] = (gt, np.asanyarray(nib.load(out).dataobj))
    if not pairs:
        pytest.skip(f"the checkout lacks the real BraTS 2023 images under {root / 'data'}")
    return seg, pairs


BOXES = {
    "tumour_crop_36x36x30": np.s_[122:158, 64:100, 57:87],
    "whole_volume_stride_6x6x5": np.s_[::6, ::6, ::5],
}


@pytest.mark.parametrize("box", list(BOXES))
def test_brasyn_equals_official_on_the_real_brats_case(official, box):
    seg, pairs = _real_case(_root())
    sl = BOXES[box]
    masks = {"lesion": seg[sl] > 0}
    assert masks["lesion"].any() and not masks["lesion"].all()
    for name, (gt, pred) in pairs.items():
        _compare(official, gt[sl], pred[sl], masks, f"BraTS-GLI-00000-000 {box} {name}")

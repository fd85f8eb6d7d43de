"""Compatibility modes against frozen outputs of the OFFICIAL evaluators (runs offline, in CI).

``tests/official/frozen/<mode>.json`` holds, for a few small deterministic inputs, the generator
parameters (the inputs are rebuilt here by ``tests/official/_phantoms.py``) and the values the official
code printed for them, with the official repository, path and commit they came from. The official code
is not in this repository; ``tests/official/`` runs it live when a checkout is available.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

from cmsbench.benchmark.metrics.registry import get_mode
from cmsbench.benchmark.scorer import score_case
from cmsbench.tasks.builtin import MR_CT

OFFICIAL = Path(__file__).parent / "official"


def _phantoms():
    spec = importlib.util.spec_from_file_location("cmsbench_official_phantoms", OFFICIAL / "_phantoms.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _frozen(mode: str) -> dict:
    return json.loads((OFFICIAL / "frozen" / f"{mode}.json").read_text())


SYNTHRAD2025 = _frozen("synthrad2025")


def test_synthrad2025_frozen_reference_names_its_source():
    off = SYNTHRAD2025["official"]
    assert off["repository"] == "https://github.com/SynthRAD2025/evaluation" and off["path"] == "image_metrics.py"
    source = get_mode("synthrad2025").source
    assert off["path"] in source and off["commit"] in source and "github.com/SynthRAD2025/evaluation" in source
    # the inputs must exercise the edge padding: some case below 97 voxels on an axis, some above
    shapes = [c["shape"] for c in SYNTHRAD2025["cases"]]
    assert any(min(s) < 97 for s in shapes) and any(max(s) > 97 for s in shapes)


@pytest.mark.parametrize("case", SYNTHRAD2025["cases"], ids=lambda c: c["name"])
def test_synthrad2025_equals_frozen_official_output(case):
    params = {k: v for k, v in case.items() if k not in ("name", "official", "shape", "seed")}
    gt, pred, body = _phantoms().ct_case(tuple(case["shape"]), case["seed"], **params)
    s = score_case(gt, pred, {"body": body}, MR_CT, mode="synthrad2025", case_id=case["name"])
    rtol = SYNTHRAD2025["rtol"]
    assert set(s.values["body"]) == set(case["official"])
    for metric, want in case["official"].items():
        got = s.values["body"][metric]
        assert got is not None and math.isfinite(got), f"{metric}: {got!r} ({s.nan_reasons})"
        assert got == pytest.approx(want, rel=rtol), (
            f"{case['name']} {metric}: cmsbench {got!r}, official {want!r} "
            f"(relative difference {abs(got - want) / abs(want):.3g} > {rtol})"
        )


# brats_inpainting: tests/official/frozen/brats_inpainting.json (official compute_metrics, every region as the mask)

BRATS_INPAINTING = _frozen("brats_inpainting")


def _load_helper(name: str):
    spec = importlib.util.spec_from_file_location(f"cmsbench_official_{name.strip('_')}", OFFICIAL / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _decode(v):
    """The frozen files' encoding: null = the official value is NaN (cmsbench gives no value), "inf"."""
    return float(v) if isinstance(v, str) else v


def _check_frozen(got_values: dict, reasons: dict, official: dict, rtol: float, where: str) -> None:
    assert set(got_values) == set(official), where
    for metric, raw in official.items():
        want, got = _decode(raw), got_values[metric]
        label = f"{where}/{metric}: cmsbench {got!r}, official {want!r}"
        if want is None:
            assert got is None, label
        elif math.isinf(want):
            assert got == want, label
        else:
            assert got is not None and math.isfinite(got), f"{label} ({reasons})"
            rel = abs(got - want) / abs(want) if want else abs(got)
            assert got == pytest.approx(want, rel=rtol), f"{label} (relative {rel:.3g} > {rtol})"


def test_brats_inpainting_frozen_reference_names_its_source():
    off = BRATS_INPAINTING["official"]
    assert off["repository"] == "https://github.com/hongweilibran/BraSyn" and off["path"] == "evaluation_utils.py"
    source = get_mode("brats_inpainting").source
    assert off["path"] in source and off["commit"] in source and "github.com/hongweilibran/BraSyn" in source
    # the inputs exercise the dtypes and both sides of the strictly-positive lower bound
    cases = BRATS_INPAINTING["cases"]
    assert {c.get("dtype", "float32") for c in cases} >= {"float32", "float64", "int16"}
    assert any(c.get("background_noise", 0) > 0 for c in cases) and any(c.get("fill") for c in cases)


@pytest.mark.parametrize("case", BRATS_INPAINTING["cases"], ids=lambda c: c["name"])
def test_brats_inpainting_equals_frozen_official_output(case):
    from cmsbench.tasks.builtin import BRATS_FLAIR

    params = {k: v for k, v in case.items() if k not in ("name", "official", "shape", "seed")}
    gt, pred, masks = _load_helper("_mr_phantoms").mr_case(tuple(case["shape"]), case["seed"], **params)
    s = score_case(gt, pred, masks, BRATS_FLAIR, mode="brats_inpainting", case_id=case["name"])
    assert set(s.values) == set(case["official"])
    for region, official in case["official"].items():
        _check_frozen(s.values[region], s.nan_reasons, official, BRATS_INPAINTING["rtol"], f"{case['name']} {region}")


# ldct_benchmark: tests/official/frozen/ldct_benchmark.json (official compute_metric, one call per exam type)

LDCT_BENCHMARK = _frozen("ldct_benchmark")


def test_ldct_benchmark_frozen_reference_names_its_source():
    off = LDCT_BENCHMARK["official"]
    assert off["repository"] == "https://github.com/eeulig/ldct-benchmark"
    assert off["path"] == "ldctbench/evaluate/utils.py"
    source = get_mode("ldct_benchmark").source
    assert off["path"] in source and off["commit"] in source and "github.com/eeulig/ldct-benchmark" in source
    # the inputs exercise the RMSE clip (metal above 1900 HU) and the smallest slices SSIM accepts
    cases = LDCT_BENCHMARK["cases"]
    assert any(c.get("metal", True) for c in cases) and any(min(c["shape"][:2]) == 7 for c in cases)


@pytest.mark.parametrize("case", LDCT_BENCHMARK["cases"], ids=lambda c: c["name"])
def test_ldct_benchmark_equals_frozen_official_output(case):
    from cmsbench.tasks.builtin import LDCT

    params = {k: v for k, v in case.items() if k not in ("name", "official", "shape", "seed")}
    gt, pred = _load_helper("_ldct_phantoms").ldct_case(tuple(case["shape"]), case["seed"], **params)
    s = score_case(gt, pred, {}, LDCT, mode="ldct_benchmark", case_id=case["name"])
    assert set(s.values) == {"global"}
    _check_frozen(s.values["global"], s.nan_reasons, case["official"], LDCT_BENCHMARK["rtol"], case["name"])


# brasyn: tests/official/frozen/brasyn.json (official ssim.py compute_metrics: SSIM in and outside the tumour)

BRASYN = _frozen("brasyn")


def test_brasyn_frozen_reference_names_its_source():
    off = BRASYN["official"]
    assert off["repository"] == "https://github.com/hongweilibran/BraSyn" and off["path"] == "ssim.py"
    source = get_mode("brasyn").source
    assert off["path"] in source and off["commit"] in source and "github.com/hongweilibran/BraSyn" in source
    # the inputs exercise the dtypes and both sides of the strictly-positive lower bound
    cases = BRASYN["cases"]
    assert {c.get("dtype", "float32") for c in cases} >= {"float32", "float64", "int16"}
    assert any(c.get("background_noise", 0) > 0 for c in cases) and any(c.get("fill") for c in cases)


@pytest.mark.parametrize("case", BRASYN["cases"], ids=lambda c: c["name"])
def test_brasyn_equals_frozen_official_output(case):
    from cmsbench.tasks.builtin import BRATS_FLAIR

    params = {k: v for k, v in case.items() if k not in ("name", "official", "shape", "seed")}
    gt, pred, masks = _load_helper("_mr_phantoms").mr_case(tuple(case["shape"]), case["seed"], **params)
    s = score_case(gt, pred, masks, BRATS_FLAIR, mode="brasyn", case_id=case["name"])
    assert set(s.values) == set(case["official"])
    for region, official in case["official"].items():
        _check_frozen(s.values[region], s.nan_reasons, official, BRASYN["rtol"], f"{case['name']} {region}")


# synthrad2023: tests/official/frozen/synthrad2023.json (official ImageMetrics mae/psnr/ssim on float32 arrays)

SYNTHRAD2023 = _frozen("synthrad2023")


def test_synthrad2023_frozen_reference_names_its_source():
    off = SYNTHRAD2023["official"]
    assert off["repository"] == "https://github.com/SynthRAD2023/metrics"
    assert off["path"] == "functions/image_metrics.py"
    source = get_mode("synthrad2023").source
    assert off["path"] in source and off["commit"] in source and "github.com/SynthRAD2023/metrics" in source


@pytest.mark.parametrize("case", SYNTHRAD2023["cases"], ids=lambda c: c["name"])
def test_synthrad2023_equals_frozen_official_output(case):
    params = {k: v for k, v in case.items() if k not in ("name", "official", "shape", "seed")}
    gt, pred, body = _phantoms().ct_case(tuple(case["shape"]), case["seed"], **params)
    s = score_case(gt, pred, {"body": body}, MR_CT, mode="synthrad2023", case_id=case["name"])
    assert set(s.values) == {"body"}
    _check_frozen(s.values["body"], s.nan_reasons, case["official"], SYNTHRAD2023["rtol"], case["name"])

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

"""cmsbench's BraTS 2023 lesion-wise scores (and the BraSyn 2025 per-label ones) run beside the OFFICIAL code.

Set ``CMSBENCH_OFFICIAL_BRATS2023`` to a checkout of https://github.com/rachitsaluja/BraTS-2023-Metrics and,
for the BraSyn 2025 tutorial, ``CMSBENCH_OFFICIAL_BRASYN_TUTORIAL`` to one of
https://github.com/hongweilibran/BraSyn_tutorial. The official code needs its own environment (numpy < 2,
pandas < 2, connected-components-3d, medpy; see ``README.md`` here): ``CMSBENCH_OFFICIAL_PYTHON`` names that
interpreter (default: this one). The drivers beside this file run the official code on the phantom cases
of ``frozen/brats2023_lesionwise.json`` plus seeded speckle variants; each value is compared with cmsbench.
Skipped, with the reason, when a variable is unset.
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from cmsbench.benchmark.downstream.conventions import brasyn2025_scores
from cmsbench.benchmark.downstream.lesionwise import lesionwise_scores

HERE = Path(__file__).parent
COLUMNS = {"LesionWise_Score_Dice": "lesionwise_dice", "LesionWise_Score_HD95": "lesionwise_hd95",
           "Legacy_Dice": "legacy_dice", "Legacy_HD95": "legacy_hd95", "Num_TP": "n_tp", "Num_FP": "n_fp",
           "Num_FN": "n_fn"}
RULES = {"BraTS-GLI": "gli", "BraTS-MEN": "men", "BraTS-MET": "met", "BraTS-SSA": "ssa", "BraTS-PED": "ped"}


def _cases(tmp_path: Path) -> Path:
    cases = json.loads((HERE / "frozen" / "brats2023_lesionwise.json").read_text())["cases"]
    base = next(c for c in cases if c["name"] == "irregular")
    extra = [{**base, "name": f"irregular_seed{s}", "seed": s, "speckle": 3e-4} for s in (11, 12, 13)]
    extra += [{**base, "name": f"irregular_{ch}", "challenge": ch} for ch in ("BraTS-MET", "BraTS-PED")]
    path = tmp_path / "cases.json"
    path.write_text(json.dumps({"cases": [{k: v for k, v in c.items() if k != "official"} for c in cases + extra]}))
    return path


def _run(driver: str, checkout: str, tmp_path: Path) -> list[dict]:
    python = os.environ.get("CMSBENCH_OFFICIAL_PYTHON", sys.executable)
    out = tmp_path / f"{driver}.json"
    done = subprocess.run([python, "-W", "ignore", str(HERE / f"{driver}.py"), checkout, str(_cases(tmp_path)),
                           str(out)], capture_output=True, text=True, check=False)
    if done.returncode != 0:
        pytest.fail(f"the official code did not run ({python}): {done.stderr[-2000:]}")
    return json.loads(out.read_text())["cases"]


def _build(case: dict):
    spec = importlib.util.spec_from_file_location("cmsbench_lesion_phantoms", HERE / "_lesion_phantoms.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.lesion_case(case["shape"], case["gt"], case["pred"], case.get("speckle", 0.0), case.get("seed", 0))


def test_lesionwise_equals_the_official_brats2023_metrics(tmp_path):
    checkout = os.environ.get("CMSBENCH_OFFICIAL_BRATS2023")
    if not checkout:
        pytest.skip("CMSBENCH_OFFICIAL_BRATS2023 is not set (a checkout of github.com/rachitsaluja/BraTS-2023-Metrics)")
    for case in _run("brats2023_lesionwise_driver", checkout, tmp_path):
        gt, pred = _build(case)
        got = lesionwise_scores(gt, pred, np.asarray(case["spacing"], np.float32).astype(float), RULES[case["challenge"]])
        for region, official in case["official"].items():
            for column, want in official.items():
                value = getattr(got[region], COLUMNS[column])
                assert value == pytest.approx(want, rel=1e-9, abs=1e-12), f"{case['name']} {region} {column}"


def test_per_label_equals_the_brasyn2025_tutorial(tmp_path):
    checkout = os.environ.get("CMSBENCH_OFFICIAL_BRASYN_TUTORIAL")
    if not checkout:
        pytest.skip("CMSBENCH_OFFICIAL_BRASYN_TUTORIAL is not set (a checkout of github.com/hongweilibran/BraSyn_tutorial)")
    for case in _run("brasyn2025_seg_driver", checkout, tmp_path):
        got = brasyn2025_scores(*_build(case))
        for key, want in case["official"].items():
            if want is None:
                assert math.isnan(got[key]), f"{case['name']} {key}"
            else:
                assert got[key] == pytest.approx(want, rel=1e-12), f"{case['name']} {key}"

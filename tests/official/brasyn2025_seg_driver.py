"""Run the BraSyn 2025 tutorial's per-label segmentation metrics on the phantom cases of a JSON file (our
driver; the tutorial's code is imported from a checkout given on the command line, never copied here).

    python tests/official/brasyn2025_seg_driver.py CHECKOUT CASES.json OUT.json

CHECKOUT: a clone of https://github.com/hongweilibran/BraSyn_tutorial (``get_segmentation_metric.py``,
``compute_metrics(gt, pred, label)``); the interpreter needs numpy, nibabel, pandas and medpy. Each case is
built by ``_lesion_phantoms.lesion_case`` and scored for labels 1, 2, 3 as the script's
``evaluate_segmentations`` does (before its rounding to 4 decimals); OUT.json is CASES.json with an
``official`` table per case (``dice_label1``, ``hd95_label1``, ...; NaN written as null).
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import numpy as np


def _load(path: Path, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def main(checkout: str, cases_path: str, out_path: str) -> None:
    official = _load(Path(checkout) / "get_segmentation_metric.py", "brasyn2025_seg")
    build = _load(Path(__file__).with_name("_lesion_phantoms.py"), "lesion_phantoms").lesion_case
    data = json.loads(Path(cases_path).read_text())
    for case in data["cases"]:
        gt, pred = build(case["shape"], case["gt"], case["pred"], case.get("speckle", 0.0), case.get("seed", 0))
        values = {}
        for label in (1, 2, 3):
            d, h = official.compute_metrics(gt, pred, label)
            values[f"dice_label{label}"] = float(d)
            values[f"hd95_label{label}"] = None if math.isnan(h) else float(h)
        case["official"] = values
    data["generated_with"] = {"python": sys.version.split()[0], "numpy": np.__version__,
                              "medpy": __import__("importlib.metadata").metadata.version("medpy")}
    Path(out_path).write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])

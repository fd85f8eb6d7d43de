"""Run the PyPI package ``brats-evaluation`` (the panoptica-based BraTS 2024/2025 evaluator) with its
bundled ``gli`` config on the phantom cases of a JSON file (our driver, the package is only called).

    python tests/official/brats_evaluation_driver.py CASES.json OUT.json

The interpreter needs ``brats-evaluation`` (0.0.10 when the frozen values were made) and nibabel. Each case
is built by ``_lesion_phantoms.lesion_case``, written as NIfTI (uint8, affine = diag(spacing)) and scored by
``evaluate_single_exam``; OUT.json is CASES.json with an ``official`` table per case: for the groups
``wt``, ``tc``, ``et`` the package's ``global_bin_dsc``, ``global_bin_hd95``, ``sq_dsc``, ``sq_hd95``,
``tp``, ``fp``, ``fn`` (NaN and infinity written as null and "inf").
"""

from __future__ import annotations

import importlib.util
import json
import math
import sys
import tempfile
from importlib import metadata
from pathlib import Path

import nibabel as nib
import numpy as np

KEYS = ("global_bin_dsc", "global_bin_hd95", "sq_dsc", "sq_hd95", "tp", "fp", "fn")


def _encode(v):
    v = float(v) if v is not None else float("nan")
    return None if math.isnan(v) else ("inf" if math.isinf(v) else v)


def main(cases_path: str, out_path: str) -> None:
    from brats_evaluation import config_path, evaluate_single_exam
    from panoptica import Panoptica_Evaluator

    spec = importlib.util.spec_from_file_location("lesion_phantoms", Path(__file__).with_name("_lesion_phantoms.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    evaluator = Panoptica_Evaluator.load_from_config(str(config_path("gli")))
    data = json.loads(Path(cases_path).read_text())
    with tempfile.TemporaryDirectory() as tmp:
        for case in data["cases"]:
            gt, pred = mod.lesion_case(case["shape"], case["gt"], case["pred"], case.get("speckle", 0.0),
                                       case.get("seed", 0))
            affine = np.diag([*case["spacing"], 1.0])
            paths = {}
            for name, arr in (("gt", gt), ("pred", pred)):
                paths[name] = str(Path(tmp) / f"{case['name']}_{name}.nii.gz")
                nib.save(nib.Nifti1Image(arr, affine), paths[name])
            res = evaluate_single_exam(paths["pred"], paths["gt"], case["name"], evaluator)
            if "error" in res:
                case["official_error"] = res["error"]
                continue
            case["official"] = {g: {k: _encode(res[g].get(k)) for k in KEYS} for g in ("wt", "tc", "et")}
    data["generated_with"] = {"python": sys.version.split()[0], "brats-evaluation": metadata.version("brats-evaluation"),
                              "panoptica": metadata.version("panoptica"), "numpy": np.__version__}
    Path(out_path).write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:3])

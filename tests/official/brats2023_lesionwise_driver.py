"""Run the OFFICIAL BraTS 2023 lesion-wise evaluator on the phantom cases of a JSON file (our driver; the
official code is imported from a checkout given on the command line, never copied here).

    python tests/official/brats2023_lesionwise_driver.py CHECKOUT CASES.json OUT.json

CHECKOUT: a clone of https://github.com/rachitsaluja/BraTS-2023-Metrics (``metrics.py`` and its
``surface_distance`` package). The interpreter needs what ``metrics.py`` imports and the 2023 APIs it uses
(``DataFrame.append``, ``np.Inf``): numpy < 2, pandas < 2, scipy, nibabel, connected-components-3d (the
official image pins numpy 1.24.3, pandas 1.3.4, scipy 1.10.1, connected-components-3d 3.12.1, nibabel 5.1.0;
pandas 1.3.4 has no wheel for Python 3.11, so the frozen values were made with pandas 1.5.3 and the one
behaviour of 1.3.4 the code relies on, see :func:`_pandas_13_replace`).
Each case is built by ``_lesion_phantoms.lesion_case``, written as NIfTI (uint8, affine = diag(spacing))
and scored with ``get_LesionWiseResults(pred, gt, challenge)``; OUT.json is CASES.json with an
``official`` table per case (region -> the official columns).
"""

from __future__ import annotations

import importlib.util
import json
import sys
import tempfile
from pathlib import Path

import nibabel as nib
import numpy as np

COLUMNS = ("LesionWise_Score_Dice", "LesionWise_Score_HD95", "Legacy_Dice", "Legacy_HD95", "Num_TP", "Num_FP",
           "Num_FN")


def _phantoms():
    spec = importlib.util.spec_from_file_location("lesion_phantoms", Path(__file__).with_name("_lesion_phantoms.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _pandas_13_replace() -> None:
    """``DataFrame.replace(np.inf, 374)`` as pandas 1.3.4 (the official image's) does it.

    The official frame has an object column of numpy arrays (the matched components per lesion). pandas
    1.3.4 with numpy 1.24 compares it with the number, gets no match and replaces only in the numeric
    columns; pandas >= 1.5 raises instead whenever a lesion was matched by two or more components. Only on
    that error, this does what 1.3.4 did: the replacement in the columns that are not of object dtype.
    """
    import pandas as pd

    original = pd.DataFrame.replace

    def replace(self, to_replace=None, value=None, *args, **kwargs):
        try:
            return original(self, to_replace, value, *args, **kwargs)
        except (ValueError, AttributeError):
            inplace = kwargs.get("inplace", False)
            out = self if inplace else self.copy()
            for col in out.columns:
                if out[col].dtype != object:
                    out[col] = original(out[col].to_frame(), to_replace, value)[col]
            return None if inplace else out

    pd.DataFrame.replace = replace


def main(checkout: str, cases_path: str, out_path: str) -> None:
    sys.path.insert(0, checkout)
    _pandas_13_replace()
    import metrics  # the official module

    data = json.loads(Path(cases_path).read_text())
    build = _phantoms().lesion_case
    with tempfile.TemporaryDirectory() as tmp:
        for case in data["cases"]:
            gt, pred = build(case["shape"], case["gt"], case["pred"], case.get("speckle", 0.0), case.get("seed", 0))
            affine = np.diag([*case["spacing"], 1.0])
            paths = []
            for name, arr in (("gt", gt), ("pred", pred)):
                path = str(Path(tmp) / f"{case['name']}_{name}.nii.gz")
                nib.save(nib.Nifti1Image(arr, affine), path)
                paths.append(path)
            df = metrics.get_LesionWiseResults(paths[1], paths[0], case["challenge"])
            case["official"] = {row["Labels"]: {c: float(row[c]) for c in COLUMNS} for _, row in df.iterrows()}
    data["generated_with"] = {"python": sys.version.split()[0], "numpy": np.__version__,
                              "pandas": __import__("pandas").__version__, "scipy": __import__("scipy").__version__,
                              "cc3d": __import__("importlib.metadata").metadata.version("connected-components-3d"), "nibabel": nib.__version__}
    Path(out_path).write_text(json.dumps(data, indent=1) + "\n")


if __name__ == "__main__":
    main(*sys.argv[1:4])

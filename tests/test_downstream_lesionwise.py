"""BraTS 2023 lesion-wise scores: one constructed case per rule, and the official evaluator's frozen output.

The frozen files (``tests/official/frozen/brats2023_lesionwise.json``, ``brasyn2025_seg.json``,
``brats_evaluation_gli.json``) hold the phantom parameters and what the official code printed for them;
``tests/official/*_driver.py`` regenerate them from a checkout / an install of the official code.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import numpy as np
import pytest

from cmsbench.benchmark.downstream.conventions import brasyn2025_scores
from cmsbench.benchmark.downstream.lesionwise import (
    MISS_HD95,
    REGIONS,
    LesionwiseRules,
    lesionwise_region,
    lesionwise_scores,
)
from cmsbench.benchmark.downstream.surface import pooled_hd95, surfel_area_table, surfel_hd95
from cmsbench.errors import MetricError

OFFICIAL = Path(__file__).parent / "official"


def _phantoms():
    spec = importlib.util.spec_from_file_location("cmsbench_lesion_phantoms", OFFICIAL / "_lesion_phantoms.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _frozen(name: str) -> dict:
    return json.loads((OFFICIAL / "frozen" / f"{name}.json").read_text())


def _cube(shape, corner, size) -> np.ndarray:
    m = np.zeros(shape, bool)
    m[tuple(slice(c, c + s) for c, s in zip(corner, size, strict=True))] = True
    return m


SHAPE = (40, 30, 30)
GLI = LesionwiseRules(dilation=3, min_volume=50)


# ------------------------------------------------------------------------------- one rule per case
def test_touching_components_are_merged_into_one_lesion():
    # two 6^3 cubes 3 voxels apart: separate components, one lesion after the 3-voxel dilation
    a, b = _cube(SHAPE, (5, 10, 10), (6, 6, 6)), _cube(SHAPE, (14, 10, 10), (6, 6, 6))
    s = lesionwise_region(a | b, a, rules=GLI)
    assert len(s.lesions) == 1 and s.n_tp == 1 and s.n_fn == 0
    assert s.lesionwise_dice == pytest.approx(2 * 216 / (432 + 216))  # one lesion of 432 voxels, half found
    # 8 voxels apart: two lesions, one of them missed
    c = _cube(SHAPE, (19, 10, 10), (6, 6, 6))
    s2 = lesionwise_region(a | c, a, rules=GLI)
    assert len(s2.lesions) == 2 and s2.n_fn == 1
    assert s2.lesionwise_dice == pytest.approx(0.5) and s2.lesionwise_hd95 == pytest.approx(MISS_HD95 / 2)
    # with the metastases dilation (1) the 3-voxel gap no longer merges
    assert len(lesionwise_region(a | b, a, rules=LesionwiseRules(1, 2)).lesions) == 2


def test_lesion_of_40_voxels_is_dropped_and_its_match_is_no_false_positive():
    big, small = _cube(SHAPE, (4, 4, 4), (6, 6, 6)), _cube(SHAPE, (28, 20, 20), (2, 4, 5))  # 216 and 40 voxels
    s = lesionwise_region(big | small, big, rules=GLI)  # the small lesion missed: no penalty
    assert [les.volume for les in s.lesions] == [216.0, 40.0] and [les.kept for les in s.lesions] == [True, False]
    assert s.lesionwise_dice == 1.0 and s.lesionwise_hd95 == 0.0 and s.n_fn == 0
    assert s.legacy_dice < 1.0  # the legacy Dice still sees it
    touched = lesionwise_region(big | small, big | _cube(SHAPE, (28, 20, 20), (1, 1, 1)), rules=GLI)
    assert touched.n_fp == 0 and touched.lesionwise_dice == 1.0
    # the threshold is a volume in mm^3: at 2 mm^3 voxels the 40-voxel lesion (80 mm^3) is kept
    kept = lesionwise_region(big | small, big, spacing=(2.0, 1.0, 1.0), rules=GLI)
    assert kept.n_fn == 1 and kept.lesionwise_dice == pytest.approx(0.5)


def test_false_positive_counts_in_the_denominator():
    gt = _cube(SHAPE, (4, 4, 4), (8, 8, 8))
    fp = _cube(SHAPE, (30, 20, 20), (4, 4, 4))
    clean, noisy = lesionwise_region(gt, gt, rules=GLI), lesionwise_region(gt, gt | fp, rules=GLI)
    assert clean.lesionwise_dice == 1.0 and clean.lesionwise_hd95 == 0.0
    assert noisy.n_fp == 1 and noisy.lesionwise_dice == pytest.approx(0.5)
    assert noisy.lesionwise_hd95 == pytest.approx(MISS_HD95 / 2)
    # a component within the dilation of the lesion (2 voxels off) is matched, not a false positive
    near = lesionwise_region(gt, gt | _cube(SHAPE, (14, 4, 4), (2, 2, 2)), rules=GLI)
    assert near.n_fp == 0 and near.lesions[0].matched and near.lesionwise_dice < 1.0


def test_missed_lesion_scores_dice_0_and_hd95_374():
    gt = _cube(SHAPE, (4, 4, 4), (8, 8, 8))
    s = lesionwise_region(gt, np.zeros(SHAPE, bool), rules=GLI)
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.n_fn) == (0.0, 374.0, 1)
    assert (s.legacy_dice, s.legacy_hd95) == (0.0, 374.0)
    assert s.lesions[0].hd95 == 374.0 and s.lesions[0].matched == ()


def test_both_empty_scores_1_and_0():
    empty = np.zeros(SHAPE, bool)
    s = lesionwise_region(empty, empty, rules=GLI)
    assert (s.lesionwise_dice, s.lesionwise_hd95, s.legacy_dice, s.legacy_hd95) == (1.0, 0.0, 1.0, 0.0)
    only_fp = lesionwise_region(empty, _cube(SHAPE, (4, 4, 4), (3, 3, 3)), rules=GLI)
    assert (only_fp.lesionwise_dice, only_fp.lesionwise_hd95, only_fp.n_fp) == (0.0, 374.0, 1)


def test_regions_are_wt_tc_et_of_the_brats_labels():
    gt = np.zeros(SHAPE, np.uint8)
    gt[4:16, 4:16, 4:16] = 2
    gt[6:14, 6:14, 6:14] = 3
    gt[8:12, 8:12, 8:12] = 1
    pred = gt.copy()
    pred[pred == 1] = 3  # necrosis called enhancing: WT and TC unchanged, ET too large
    s = lesionwise_scores(gt, pred)
    assert set(s) == set(REGIONS) == {"WT", "TC", "ET"}
    assert s["WT"].lesionwise_dice == 1.0 and s["TC"].lesionwise_dice == 1.0
    assert s["ET"].lesionwise_dice == pytest.approx(2 * 448 / (448 + 512))
    assert set(s["ET"].values()) == {"lesionwise_dice_ET", "lesionwise_hd95_ET", "legacy_dice_ET", "legacy_hd95_ET"}


def test_bad_inputs_give_clear_errors():
    gt = np.zeros(SHAPE, np.uint8)
    with pytest.raises(MetricError, match="differ in shape"):
        lesionwise_scores(gt, np.zeros((4, 4, 4), np.uint8))
    with pytest.raises(MetricError, match="non-integer"):
        lesionwise_scores(gt, np.full(SHAPE, 0.5))
    with pytest.raises(MetricError, match="spacing"):
        lesionwise_scores(gt, gt, spacing=(1.0, 0.0, 1.0))
    with pytest.raises(MetricError, match="unknown lesion-wise rule set"):
        lesionwise_scores(gt, gt, rules="glioma")


# ---------------------------------------------------------------------------- surface distances
def test_surfel_areas_are_the_marching_cubes_surface():
    table = surfel_area_table((1.0, 1.0, 1.0))
    assert table[0] == table[255] == 0.0
    assert table[1] == pytest.approx(math.sqrt(3) / 8)  # one corner: a triangle through three edge midpoints
    assert table[0b11110000] == pytest.approx(1.0)  # a face of four corners: a unit square
    assert np.allclose(table, table[255 - np.arange(256)])  # a configuration and its complement
    # a 10^3 cube: the surface area approaches 6 * 100 (bevelled edges and corners make it a little less)
    cube = _cube((14, 14, 14), (2, 2, 2), (10, 10, 10))
    from cmsbench.benchmark.downstream.surface import surfel_distances

    sd = surfel_distances(cube, cube, (1.0, 1.0, 1.0))
    assert 560 < sd.gt_areas.sum() < 600 and np.all(sd.gt_to_pred == 0)
    # spacing scales the areas as the geometry: (2, 1, 1) doubles the faces normal to axes 1 and 2
    sd2 = surfel_distances(cube, cube, (2.0, 1.0, 1.0))
    assert sd2.gt_areas.sum() == pytest.approx(sd.gt_areas.sum() * 5 / 3, rel=0.02)


def test_hd95_of_a_shift_is_the_shift():
    a = _cube((30, 30, 30), (5, 5, 5), (10, 10, 10))
    b = np.roll(a, 3, axis=0)
    assert surfel_hd95(a, b, (1.0, 1.0, 1.0)) == pytest.approx(3.0)
    assert surfel_hd95(a, b, (2.0, 1.0, 1.0)) == pytest.approx(6.0)
    assert pooled_hd95(b, a) == pytest.approx(3.0)
    assert math.isinf(surfel_hd95(a, np.zeros_like(a))) and math.isinf(pooled_hd95(a, np.zeros_like(a)))


# -------------------------------------------------------------------------- official, frozen
LESIONWISE = _frozen("brats2023_lesionwise")
_COLUMNS = {"LesionWise_Score_Dice": "lesionwise_dice", "LesionWise_Score_HD95": "lesionwise_hd95",
            "Legacy_Dice": "legacy_dice", "Legacy_HD95": "legacy_hd95", "Num_TP": "n_tp", "Num_FP": "n_fp",
            "Num_FN": "n_fn"}
_RULES = {"BraTS-GLI": "gli", "BraTS-MEN": "men", "BraTS-MET": "met"}


def test_lesionwise_frozen_reference_names_its_source_and_covers_the_rules():
    off = LESIONWISE["official"]
    assert off["repository"] == "https://github.com/rachitsaluja/BraTS-2023-Metrics" and off["path"] == "metrics.py"
    from cmsbench.benchmark.downstream import lesionwise

    assert off["commit"] in lesionwise.__doc__ and "BraTS-2023-Metrics" in lesionwise.__doc__
    values = [v for c in LESIONWISE["cases"] for v in c["official"].values()]
    assert any(v["Num_FP"] > 0 for v in values) and any(v["Num_FN"] > 0 for v in values)
    assert any(v["LesionWise_Score_HD95"] == 374.0 for v in values)
    assert any(c["spacing"] != [1.0, 1.0, 1.0] for c in LESIONWISE["cases"])
    assert {c["challenge"] for c in LESIONWISE["cases"]} == set(_RULES)


@pytest.mark.parametrize("case", LESIONWISE["cases"], ids=lambda c: c["name"])
def test_lesionwise_equals_frozen_official_output(case):
    gt, pred = _phantoms().lesion_case(case["shape"], case["gt"], case["pred"], case.get("speckle", 0.0),
                                       case.get("seed", 0))
    spacing = np.asarray(case["spacing"], np.float32).astype(float)  # as the official code reads the header
    got = lesionwise_scores(gt, pred, spacing, _RULES[case["challenge"]])
    for region, official in case["official"].items():
        for column, want in official.items():
            value = getattr(got[region], _COLUMNS[column])
            assert value == pytest.approx(want, rel=LESIONWISE["rtol"], abs=1e-12), (
                f"{case['name']} {region} {column}: cmsbench {value!r}, official {want!r}")


BRASYN2025 = _frozen("brasyn2025_seg")


@pytest.mark.parametrize("case", BRASYN2025["cases"], ids=lambda c: c["name"])
def test_brasyn2025_per_label_equals_frozen_tutorial_output(case):
    spec = next(c for c in LESIONWISE["cases"] if c["name"] == case["name"])
    gt, pred = _phantoms().lesion_case(spec["shape"], spec["gt"], spec["pred"], spec.get("speckle", 0.0),
                                       spec.get("seed", 0))
    got = brasyn2025_scores(gt, pred)
    assert set(got) == set(case["official"])
    for key, want in case["official"].items():
        if want is None:
            assert math.isnan(got[key]), f"{case['name']} {key}: {got[key]!r}, official NaN"
        else:
            assert got[key] == pytest.approx(want, rel=BRASYN2025["rtol"]), f"{case['name']} {key}"


# ------------------------------------------------------------- brats-evaluation (2024/2025, panoptica)
BRATS_EVAL = _frozen("brats_evaluation_gli")


def _decode(v):
    return float("nan") if v is None else float(v)


def _check_against_brats_evaluation(name: str, official: dict) -> None:
    """What the two rule sets share: the global Dice (= our legacy Dice where some mask is non-empty), the
    global HD95 (boundary voxels pooled, in voxels: panoptica gets no spacing from file paths), and, for a
    case of one lesion matched by one component, the lesion's Dice. The lesion-wise scores themselves differ:
    no merge by dilation, no volume threshold, the mean over matched pairs only (no 0 for a miss or a false
    positive), NaN when both are empty."""
    spec = next(c for c in LESIONWISE["cases"] if c["name"] == name)
    gt, pred = _phantoms().lesion_case(spec["shape"], spec["gt"], spec["pred"], spec.get("speckle", 0.0),
                                       spec.get("seed", 0))
    ours = lesionwise_scores(gt, pred, spec["spacing"])
    for group, values in official.items():
        region = group.upper()
        g, p = np.isin(gt, REGIONS[region]), np.isin(pred, REGIONS[region])
        if not g.any() and not p.any():
            assert math.isnan(_decode(values["global_bin_dsc"]))
            continue
        assert ours[region].legacy_dice == pytest.approx(_decode(values["global_bin_dsc"]), rel=1e-12)
        assert pooled_hd95(p, g) == pytest.approx(_decode(values["global_bin_hd95"]), rel=1e-12)
        if len(ours[region].lesions) == 1 and values["tp"] == 1 and values["fp"] == 0 and values["fn"] == 0:
            assert ours[region].lesions[0].dice == pytest.approx(_decode(values["sq_dsc"]), rel=1e-12)


@pytest.mark.parametrize("case", BRATS_EVAL["cases"], ids=lambda c: c["name"])
def test_shared_rules_equal_frozen_brats_evaluation_output(case):
    _check_against_brats_evaluation(case["name"], case["official"])


def test_shared_rules_equal_installed_brats_evaluation(tmp_path):
    pytest.importorskip("brats_evaluation", reason="brats-evaluation is not installed (pip install "
                        "brats-evaluation==0.0.10; it pins numpy<2.3, so use a separate environment)")
    import nibabel as nib
    from brats_evaluation import config_path, evaluate_single_exam
    from panoptica import Panoptica_Evaluator

    evaluator = Panoptica_Evaluator.load_from_config(str(config_path("gli")))
    for spec in LESIONWISE["cases"][:6]:
        gt, pred = _phantoms().lesion_case(spec["shape"], spec["gt"], spec["pred"], spec.get("speckle", 0.0),
                                           spec.get("seed", 0))
        paths = {}
        for name, arr in (("gt", gt), ("pred", pred)):
            paths[name] = str(tmp_path / f"{spec['name']}_{name}.nii.gz")
            nib.save(nib.Nifti1Image(arr, np.diag([*spec["spacing"], 1.0])), paths[name])
        res = evaluate_single_exam(paths["pred"], paths["gt"], spec["name"], evaluator)
        _check_against_brats_evaluation(spec["name"], {g: {k: res[g].get(k) for k in
                                                           ("global_bin_dsc", "global_bin_hd95", "sq_dsc", "tp",
                                                            "fp", "fn")} for g in ("wt", "tc", "et")})

"""Downstream scoring through the runner and ``cmsbench score`` with a ``command`` segmenter (a small script).

The script thresholds the FLAIR channel (the last of the sorted channel names) into an oedema label, so
it segments something real on the tiny BraTS layout; it exits non-zero on the case named in CRASH_CASE.
"""

from __future__ import annotations

import hashlib
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cmsbench.benchmark.downstream.scoring import DEFAULT_METRICS, SegmentationResult
from cmsbench.benchmark.runner import RunConfig, run
from cmsbench.benchmark.scorer import score_case
from cmsbench.errors import CmsbenchError
from cmsbench.tasks.registry import get_task

SCRIPT = textwrap.dedent('''
    import os, sys
    from pathlib import Path
    import nibabel as nib
    import numpy as np
    inp, out = Path(sys.argv[1]), Path(sys.argv[2])
    for first in sorted(inp.glob("*_0000.nii.gz")):
        case = first.name[: -len("_0000.nii.gz")]
        if case == os.environ.get("CRASH_CASE"):
            sys.exit("segmenter crashed on " + case)
        last = sorted(inp.glob(case + "_*.nii.gz"))[-1]
        img = nib.load(last)
        labels = np.where(np.asarray(img.dataobj) > THRESHOLD, 2, 0).astype(np.int16)
        labels[np.asarray(img.dataobj) > 3 * THRESHOLD] = 1
        nib.save(nib.Nifti1Image(labels, img.affine), out / (case + ".nii.gz"))
''')


def _script(folder: Path, threshold: float = 1.4) -> Path:
    path = folder / "seg.py"
    path.write_text(SCRIPT.replace("THRESHOLD", repr(threshold)))
    return path


def _config(brats: Path, results: Path, script: Path, **kw) -> RunConfig:
    options = {"command": f"{{python}} {script} {{input_dir}} {{output_dir}}", "files": str(script)}
    return RunConfig(task="brats_flair", method=kw.pop("method", "identity"), data_root=str(brats),
                     results=results, thumbnails=0, max_cases=kw.pop("max_cases", 3), downstream=True,
                     segmenter="command", segmenter_options=options, **kw)


def test_command_segmenter_is_pinned_in_the_record_and_a_changed_script_segments_again(brats_tiny, tmp_path):
    script = _script(tmp_path)
    first = run(_config(brats_tiny, tmp_path / "res", script)).record
    assert first.scoring.downstream["files"]["seg.py"] == hashlib.sha256(script.read_bytes()).hexdigest()
    assert first.identity.downstream.startswith("command:")
    case = next(iter(first.cases.values()))
    assert case.ok and case.timing["segment_real_s"] > 0 and case.timing["segment_s"] > 0
    assert {"seg_dice", "seg_dice_drop", "seg_hd95"} <= set(case.scores["wt"])
    assert first.scoring.metrics["seg_dice_drop"].direction == "lower"

    # another method, same segmenter: the real images' segmentations come from the cache
    second = run(_config(brats_tiny, tmp_path / "res", script, method="linear")).record
    assert all(c.timing["segment_real_s"] == 0.0 for c in second.cases.values())
    assert [c.scores["wt"]["seg_dice_real"] for c in second.cases.values()] == \
        [c.scores["wt"]["seg_dice_real"] for c in first.cases.values()]

    # the tables rank by a downstream metric on request
    from cmsbench.leaderboard.aggregate import load_boards
    from cmsbench.leaderboard.tables import publication_table

    (board,) = load_boards(tmp_path / "res")
    assert board.main_metric == "psnr"
    board.set_rank_by("seg_dice_drop")
    assert (board.main_region, board.main_metric) == ("wt", "seg_dice_drop")
    assert publication_table(board).header[1].startswith("SEG_DICE_DROP (wt)")
    board.set_rank_by("no_such_metric")
    assert board.main_metric == "psnr" and "not scored" in board.notes[-1]

    # changed bytes (another threshold): another digest, another run, segmented again
    _script(tmp_path, threshold=1.2)
    third = run(_config(brats_tiny, tmp_path / "res", script)).record
    assert third.scoring.downstream["digest"] != first.scoring.downstream["digest"]
    assert third.run_id != first.run_id
    assert all(c.timing["segment_real_s"] > 0 for c in third.cases.values())


def test_a_segmenter_crash_fails_that_case_downstream_only(brats_tiny, tmp_path, monkeypatch):
    test_ids = sorted(run(_config(brats_tiny, tmp_path / "probe", _script(tmp_path), max_cases=1)).record.split.test_ids)
    monkeypatch.setenv("CRASH_CASE", test_ids[1])
    rec = run(_config(brats_tiny, tmp_path / "res", _script(tmp_path))).record
    crashed = rec.cases[test_ids[1]]
    assert crashed.ok and crashed.scores["brain"]["psnr"] is not None  # image metrics kept
    assert all(v is None for v in crashed.scores["wt"].values())
    assert "segmenter crashed on" in crashed.nan_reasons["wt/seg_dice"]
    other = rec.cases[test_ids[0]]
    assert other.scores["wt"]["seg_dice"] is not None


def test_a_perfect_prediction_drops_nothing(brats_tiny, tmp_path):
    """`cmsbench score --downstream` on predictions equal to the targets: every drop exactly 0."""
    import shutil

    from cmsbench.benchmark.score_folder import score_folder

    preds = tmp_path / "preds"
    preds.mkdir()
    for folder in brats_tiny.iterdir():
        if folder.is_dir():
            shutil.copy(folder / f"{folder.name}_flair.nii.gz", preds / f"{folder.name}.nii.gz")
    script = _script(tmp_path)
    result = score_folder("brats_flair", preds, data_root=str(brats_tiny), downstream=True, segmenter="command",
                          segmenter_options={"command": f"{{python}} {script} {{input_dir}} {{output_dir}}",
                                             "files": str(script)})
    assert not result.problems
    drops = [c.scores[r][m] for c in result.record.cases.values() for r in ("wt", "tc", "et")
             for m in ("seg_dice_drop", "seg_hd95_increase", "seg_legacy_dice_drop")]
    assert drops and all(d == 0.0 for d in drops)
    assert any(c.scores["wt"]["seg_dice"] > 0 for c in result.record.cases.values())  # it did segment tumour


def test_a_segmentation_mode_without_downstream_is_refused_before_any_work(brats_tiny, tmp_path):
    with pytest.raises(CmsbenchError, match="add --downstream"):
        run(RunConfig(task="brats_flair", method="identity", data_root=str(brats_tiny), results=tmp_path,
                      mode="brasyn2023"))
    with pytest.raises(CmsbenchError, match="need --downstream"):
        run(RunConfig(task="brats_flair", method="identity", data_root=str(brats_tiny), results=tmp_path,
                      segmenter="command"))


def test_brasyn2025_mode_scores_per_label_in_voxels(brats_tiny, tmp_path):
    rec = run(_config(brats_tiny, tmp_path / "res", _script(tmp_path), mode="brasyn2025", max_cases=2)).record
    case = next(iter(rec.cases.values()))
    assert set(case.scores) >= {"label1", "label2", "label3"}
    assert set(case.scores["label2"]) == {"dice", "hd95"}
    assert "ssim" in next(iter(v for k, v in case.scores.items() if not k.startswith("label")))


# ------------------------------------------------------------------------- metrics on constructed maps
def _blob(shape, centre, radius, label):
    z = np.indices(shape)
    d = sum((z[i] - centre[i]) ** 2 for i in range(3))
    return np.where(d <= radius**2, label, 0).astype(np.int16)


def test_segmentation_metrics_are_the_paired_differences_of_real_and_synthetic():
    shape = (40, 40, 30)
    truth = np.maximum(_blob(shape, (20, 20, 15), 8, 2), _blob(shape, (20, 20, 15), 4, 3))
    real = truth.copy()
    synthetic = _blob(shape, (22, 20, 15), 7, 2)  # shifted, smaller, no ET
    seg = SegmentationResult("c", truth, real, synthetic, (1.0, 1.0, 1.0))
    task = get_task("brats_flair")
    t = np.ones(shape, np.float32)
    masks = {"brain": np.ones(shape, bool), "lesion": truth > 0, "necrotic": truth == 1, "edema": truth == 2,
             "enhancing": truth == 3}
    score = score_case(t, t, masks, task, segmentation=seg)
    wt, et = score.values["wt"], score.values["et"]
    assert wt["seg_dice_real"] == 1.0 and 0 < wt["seg_dice"] < 1
    assert wt["seg_dice_drop"] == pytest.approx(1.0 - wt["seg_dice"])
    assert wt["seg_hd95_increase"] == pytest.approx(wt["seg_hd95"] - wt["seg_hd95_real"])
    assert et["seg_dice"] == 0.0 and et["seg_hd95"] == 374.0 and et["seg_dice_drop"] == 1.0
    assert set(DEFAULT_METRICS) <= set(wt)
    # without segmentation the task's image metrics only
    assert "wt" not in score_case(t, t, masks, task).values


# ------------------------------------------------------------------------------- synthetic CT (mr_ct)
CT_SCRIPT = textwrap.dedent('''
    import sys
    from pathlib import Path
    import nibabel as nib
    import numpy as np
    inp, out = Path(sys.argv[1]), Path(sys.argv[2])
    for ct in sorted(inp.glob("*_0000.nii.gz")):  # channels sorted: ct, mr -> ct is _0000
        case = ct.name[: -len("_0000.nii.gz")]
        img = nib.load(ct)
        hu = np.asarray(img.dataobj)
        labels = np.where(hu > 300, 2, np.where(hu > -200, 1, 0)).astype(np.int16)  # bone 2, soft tissue 1
        nib.save(nib.Nifti1Image(labels, img.affine), out / (case + ".nii.gz"))
''')


@pytest.fixture()
def synthrad_tiny(tmp_path: Path) -> Path:
    from cmsbench.testing import layouts

    root = tmp_path / "synthrad"
    layouts.write_synthrad(root, n=12)
    return root


def test_synthetic_ct_downstream_is_tissue_consistency_and_segmenter_consistency(synthrad_tiny, tmp_path):
    rec = run(RunConfig(task="mr_ct", method="linear", data_root=str(synthrad_tiny), results=tmp_path / "a",
                        thumbnails=0, max_cases=2, downstream=True)).record
    case = next(iter(rec.cases.values()))
    assert {"tissue_dice_mean", "bone_mae", "tissue_dice_bone"} <= set(case.scores["body"])
    assert rec.scoring.metrics["bone_mae"].direction == "lower"
    assert rec.identity.downstream.startswith("metrics:")
    assert get_task("mr_ct").fingerprint() == rec.task.fingerprint  # downstream metrics leave it unchanged

    script = tmp_path / "ct_seg.py"
    script.write_text(CT_SCRIPT)
    options = {"command": f"{{python}} {script} {{input_dir}} {{output_dir}}", "files": str(script)}
    with pytest.raises(CmsbenchError, match="synthrad2025_seg"):
        run(RunConfig(task="mr_ct", method="linear", data_root=str(synthrad_tiny), results=tmp_path / "b",
                      downstream=True, segmenter="command", segmenter_options=options))
    rec = run(RunConfig(task="mr_ct", method="linear", data_root=str(synthrad_tiny), results=tmp_path / "c",
                        thumbnails=0, max_cases=2, downstream=True, segmenter="command", segmenter_options=options,
                        mode="synthrad2025_seg")).record
    case = next(iter(rec.cases.values()))
    assert 0.0 <= case.scores["global"]["seg_dice"] <= 1.0 and case.scores["global"]["seg_hd95"] >= 0.0
    assert "ms_ssim" in case.scores["body"] and rec.scoring.downstream["files"]["ct_seg.py"]

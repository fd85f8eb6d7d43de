"""Downstream fidelity on the embedded phantom: does the Dice drop order methods as their synthesis does?

Run: ``python -m pytest benchmarks/bench_downstream_fidelity.py -s`` (not part of the unit tests; trains
the built-in ``segresnet`` segmenter once on the train split, CPU preset, and unet's small preset).

For each of identity, poly2, unet (and the target itself, through ``cmsbench score``) on ``brats_flair``
(default phantom), it runs with ``--downstream`` and reports per method the brain PSNR and the
lesion-wise WT Dice with real and synthetic FLAIR and the drop, with paired Wilcoxon tests of the drops
(identity vs poly2, poly2 vs unet) over the test cases. The issue's acceptance: identity's drop larger than
poly2's (p < 0.05) and a perfect prediction's drop exactly 0.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

import numpy as np
import pytest

TASK = os.environ.get("CMSBENCH_FIDELITY_TASK", "brats_flair")
METHODS = [m for m in os.environ.get("CMSBENCH_FIDELITY_METHODS", "identity,poly2,unet").split(",") if m]


def _values(record, region: str, metric: str) -> dict[str, float]:
    return {cid: c.scores[region][metric] for cid, c in record.ok_cases().items()
            if c.scores.get(region, {}).get(metric) is not None}


@pytest.mark.benchmark
def test_dice_drop_orders_methods(tmp_path: Path) -> None:
    from scipy.stats import wilcoxon

    from cmsbench.benchmark.runner import RunConfig, run
    from cmsbench.benchmark.score_folder import score_folder
    from cmsbench.tasks.dataset import open_dataset
    from cmsbench.tasks.datasource import resolve_data_root
    from cmsbench.tasks.registry import get_task

    records = {}
    for method in METHODS:
        start = time.perf_counter()
        records[method] = run(RunConfig(task=TASK, method=method, device="cpu", results=tmp_path / "res",
                                        thumbnails=0, downstream=True)).record
        rec = records[method]
        print(f"\n{method}: {time.perf_counter() - start:.0f} s (fit {rec.timing.get('fit_s', 0):.0f} s, segmenter "
              f"prepare {rec.timing.get('segmenter_prepare_s', 0):.0f} s)")

    # the target itself as a prediction: the drop must be exactly 0
    task = get_task(TASK)
    root, _ = resolve_data_root(task, None)
    dataset = open_dataset(task, root)
    preds = tmp_path / "perfect"
    preds.mkdir()
    for cid in dataset.case_ids("test"):
        shutil.copy(dataset.refs[cid].files[task.target], preds / f"{cid}.nii.gz")
    perfect = score_folder(TASK, preds, downstream=True).record
    records["target itself"] = perfect

    rows = []
    for name, rec in records.items():
        psnr = _values(rec, task.main_region, "psnr")
        real, syn, drop, whole = (_values(rec, "wt", m) for m in ("seg_dice_real", "seg_dice", "seg_dice_drop",
                                                                   "seg_legacy_dice_real"))
        seg_s = np.median([c.timing.get("segment_s", np.nan) for c in rec.ok_cases().values()])
        rows.append((name, np.mean(list(psnr.values())), np.mean(list(real.values())), np.mean(list(syn.values())),
                     np.mean(list(drop.values())), len(drop), seg_s, np.mean(list(whole.values()))))
    print("\nlesion-wise WT Dice (whole-volume WT Dice of the real images in the last column)")
    print("method          PSNR(brain)  WT Dice real  WT Dice synthetic  drop   n   segment s/case  whole-volume real")
    for r in rows:
        print(f"{r[0]:<15} {r[1]:10.2f}  {r[2]:12.3f}  {r[3]:17.3f}  {r[4]:6.3f} {r[5]:3d}  {r[6]:14.2f}  {r[7]:.3f}")

    def paired(a: str, b: str) -> tuple[float, float]:
        da, db = _values(records[a], "wt", "seg_dice_drop"), _values(records[b], "wt", "seg_dice_drop")
        common = sorted(set(da) & set(db))
        x, y = np.array([da[c] for c in common]), np.array([db[c] for c in common])
        p = float(wilcoxon(x, y).pvalue) if np.any(x != y) else 1.0
        return float(np.mean(x - y)), p

    for a, b in (("identity", "poly2"), ("poly2", "unet"), ("identity", "unet")):
        if a in records and b in records:
            diff, p = paired(a, b)
            print(f"drop({a}) - drop({b}) = {diff:+.4f} (paired Wilcoxon p = {p:.3g})")
    assert all(v == 0.0 for v in _values(perfect, "wt", "seg_dice_drop").values())

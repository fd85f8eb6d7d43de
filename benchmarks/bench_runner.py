"""Harness overhead per case (load, score, write) beside the method's own predict time.

Run with ``python -m pytest benchmarks/bench_runner.py`` (not part of the unit tests). For ``identity``
and ``linear`` on the embedded BraTS phantom dataset, each benchmark runs a full ``cmsbench run``
(fit cached after the first round) and reports, from the result record, the median per-case times and the
ratio overhead / predict, so that harness cost stays visible next to the method's.
"""

from __future__ import annotations

import statistics
from pathlib import Path

import pytest

from cmsbench.benchmark.runner import RunConfig, run


def _per_case(record, key: str) -> float:
    values = [c.timing.get(key, 0.0) for c in record.ok_cases().values()]
    return statistics.median(values) if values else float("nan")


@pytest.mark.parametrize("method", ["identity", "linear"])
def test_runner_overhead(benchmark, method: str, tmp_path: Path) -> None:
    rounds = iter(range(1000))

    def one_run():
        results = tmp_path / f"r{next(rounds)}"
        return run(RunConfig(task="brats_flair", method=method, device="cpu", results=results,
                             save_predictions=True)).record

    record = benchmark.pedantic(one_run, rounds=3, iterations=1, warmup_rounds=1)
    load, predict = _per_case(record, "load_s"), _per_case(record, "predict_s")
    score, write = _per_case(record, "score_s"), _per_case(record, "write_s")
    overhead = load + score + write
    benchmark.extra_info.update({
        "cases": len(record.cases), "median_load_s": load, "median_predict_s": predict,
        "median_score_s": score, "median_write_s": write, "overhead_over_predict": overhead / predict,
    })
    print(f"\n{method}: per case load {load * 1e3:.1f} ms, predict {predict * 1e3:.1f} ms, "
          f"score {score * 1e3:.1f} ms, write {write * 1e3:.1f} ms; overhead/predict = {overhead / predict:.2f}")


# ------------------------------------------------------------------------------ throughput vs reading only
BRATS_SHAPE = (240, 240, 155)


def _write_brats_size(root: Path, n: int) -> None:
    """``n`` BraTS 2021-layout subjects on the real 240x240x155 grid (smooth head, a tumour), int16 like BraTS."""
    import numpy as np
    from scipy import ndimage

    from cmsbench.tasks.io.nifti import write_nifti

    affine = np.diag([-1.0, -1.0, 1.0, 1.0])
    zz, yy, xx = np.meshgrid(*(np.linspace(-1, 1, s) for s in BRATS_SHAPE), indexing="ij")
    head = ((zz / 0.8) ** 2 + (yy / 0.9) ** 2 + (xx / 0.7) ** 2) < 1
    for i in range(n):
        rng = np.random.default_rng(i)
        sid = f"BraTS2021_{i:05d}"
        texture = ndimage.gaussian_filter(rng.normal(0, 1, BRATS_SHAPE).astype(np.float32), 3)
        c = rng.uniform(-0.3, 0.3, 3)
        tumour = ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < 0.02
        core = ((zz - c[0]) ** 2 + (yy - c[1]) ** 2 + (xx - c[2]) ** 2) < 0.005
        seg = np.where(core, 1, np.where(tumour, 2, 0)).astype(np.uint8) * head
        for k, name in enumerate(("t1", "t1ce", "t2", "flair")):
            img = head * (400 * (1 + 0.2 * k) + 40 * texture * (k + 1)) + tumour * 150 * (k - 1.5)
            write_nifti(root / sid / f"{sid}_{name}.nii.gz", np.clip(img, 0, None).astype(np.int16), affine)
        write_nifti(root / sid / f"{sid}_seg.nii.gz", seg, affine)


def test_score_and_run_throughput_against_reading_only(benchmark, tmp_path: Path) -> None:
    """Per-case wall time of ``cmsbench score`` and ``run`` (identity) against only reading the same files.

    Reference measured in the same run: for ``score``, reading each test case through the dataset (as
    scoring does) plus the prediction NIfTI; for ``run``, reading each test case. Target: score within
    1.3x of its reading floor on CPU (the next case is read while the current one is scored).
    """
    import time

    import numpy as np

    from cmsbench.benchmark.metrics.ssim_numba import warmup
    from cmsbench.benchmark.score_folder import score_folder
    from cmsbench.tasks.dataset import open_dataset
    from cmsbench.tasks.io.nifti import read_nifti, write_nifti
    from cmsbench.tasks.registry import get_task

    root = tmp_path / "brats"
    _write_brats_size(root, 36)
    task = get_task("brats_flair")
    dataset = open_dataset(task, root)
    test_ids = list(dataset.case_ids("test"))
    preds = tmp_path / "preds"
    for cid in test_ids:  # predictions in the dataset's own scale: the T2 of the case (a plausible FLAIR guess)
        raw = dataset.load_case(cid, normalise=False)
        write_nifti(preds / f"{cid}.nii.gz", np.asarray(raw.inputs["t2"].data), raw.inputs["t2"].affine)
    warmup()

    def read_only() -> float:
        start = time.perf_counter()
        ds = open_dataset(task, root)
        for cid in test_ids:
            ds.load_case(cid)
            read_nifti(preds / f"{cid}.nii.gz", modality="flair", units="", subject=cid)
        return time.perf_counter() - start

    def read_cases_only() -> float:
        start = time.perf_counter()
        ds = open_dataset(task, root)
        for cid in test_ids:
            ds.load_case(cid)
        return time.perf_counter() - start

    read_only()  # fills the case cache, as a first run or score does
    floors, walls = [], []
    run_floors, run_walls = [], []
    rounds = iter(range(1000))

    def one_round() -> None:
        floors.append(read_only())
        start = time.perf_counter()
        result = score_folder("brats_flair", preds, data_root=str(root))
        walls.append(time.perf_counter() - start)
        assert not result.problems
        run_floors.append(read_cases_only())
        start = time.perf_counter()
        run(RunConfig(task="brats_flair", method="identity", data_root=str(root), device="cpu",
                      results=tmp_path / f"run{next(rounds)}"))
        run_walls.append(time.perf_counter() - start)

    benchmark.pedantic(one_round, rounds=3, iterations=1, warmup_rounds=1)
    n = len(test_ids)
    floor, wall = statistics.median(floors) / n, statistics.median(walls) / n
    run_floor, run_wall = statistics.median(run_floors) / n, statistics.median(run_walls) / n
    benchmark.extra_info.update({
        "cases": n, "shape": BRATS_SHAPE, "score_s_per_case": wall, "read_only_s_per_case": floor,
        "score_over_read_only": wall / floor, "run_s_per_case": run_wall, "run_read_only_s_per_case": run_floor,
        "run_over_read_only": run_wall / run_floor,
    })
    print(f"\nBraTS-size ({n} test cases): score {wall:.3f} s/case vs reading only {floor:.3f} s/case "
          f"-> ratio {wall / floor:.2f} (target <= 1.3); run(identity) {run_wall:.3f} s/case vs reading the "
          f"cases {run_floor:.3f} s/case -> ratio {run_wall / run_floor:.2f}")


def test_score_throughput_cold_cache_against_reading_the_files(benchmark, tmp_path: Path, monkeypatch) -> None:
    """A first ``cmsbench score`` (empty case cache: every dataset file is read, checked, normalised and
    cached) against only reading the same files (each case's NIfTI files and its prediction), same run.

    This is the floor the issue names ("the time to only read the same files"); the warm-cache test
    above compares a repeated score with reading through the cache instead.
    """
    import time

    import numpy as np

    from cmsbench.benchmark.metrics.ssim_numba import warmup
    from cmsbench.benchmark.score_folder import score_folder
    from cmsbench.tasks.dataset import open_dataset
    from cmsbench.tasks.io.nifti import read_nifti, write_nifti
    from cmsbench.tasks.registry import get_task

    root = tmp_path / "brats"
    _write_brats_size(root, 36)
    task = get_task("brats_flair")
    monkeypatch.setenv("CMSBENCH_HOME", str(tmp_path / "home0"))
    dataset = open_dataset(task, root)
    test_ids = list(dataset.case_ids("test"))
    files = {cid: sorted(str(p) for p in dataset.refs[cid].files.values()) for cid in test_ids}
    preds = tmp_path / "preds"
    for cid in test_ids:
        raw = dataset.load_case(cid, normalise=False)
        write_nifti(preds / f"{cid}.nii.gz", np.asarray(raw.inputs["t2"].data), raw.inputs["t2"].affine)
    warmup()
    floors, walls = [], []
    homes = iter(range(1, 1000))

    def one_round() -> None:
        start = time.perf_counter()
        for cid in test_ids:
            for path in files[cid]:
                read_nifti(path, subject=cid)
            read_nifti(preds / f"{cid}.nii.gz", subject=cid)
        floors.append(time.perf_counter() - start)
        monkeypatch.setenv("CMSBENCH_HOME", str(tmp_path / f"home{next(homes)}"))  # an empty cache
        start = time.perf_counter()
        result = score_folder("brats_flair", preds, data_root=str(root))
        walls.append(time.perf_counter() - start)
        assert not result.problems

    benchmark.pedantic(one_round, rounds=3, iterations=1, warmup_rounds=0)
    n = len(test_ids)
    floor, wall = statistics.median(floors) / n, statistics.median(walls) / n
    benchmark.extra_info.update({"cases": n, "shape": BRATS_SHAPE, "cold_score_s_per_case": wall,
                                 "read_files_s_per_case": floor, "cold_score_over_read_files": wall / floor})
    print(f"\nBraTS-size ({n} test cases), empty cache: score {wall:.3f} s/case vs reading the files "
          f"{floor:.3f} s/case -> ratio {wall / floor:.2f} (target <= 1.3)")

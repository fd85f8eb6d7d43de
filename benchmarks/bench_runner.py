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


def _per_case(record: dict, key: str) -> float:
    values = [c["timing"].get(key, 0.0) for c in record["cases"].values() if c.get("status") == "ok"]
    return statistics.median(values) if values else float("nan")


@pytest.mark.parametrize("method", ["identity", "linear"])
def test_runner_overhead(benchmark, method: str, tmp_path: Path) -> None:
    rounds = iter(range(1000))

    def one_run() -> dict:
        results = tmp_path / f"r{next(rounds)}"
        return run(RunConfig(task="brats_flair", method=method, device="cpu", results=results,
                             save_predictions=True)).record

    record = benchmark.pedantic(one_run, rounds=3, iterations=1, warmup_rounds=1)
    load, predict = _per_case(record, "load_s"), _per_case(record, "predict_s")
    score, write = _per_case(record, "score_s"), _per_case(record, "write_s")
    overhead = load + score + write
    benchmark.extra_info.update({
        "cases": len(record["cases"]), "median_load_s": load, "median_predict_s": predict,
        "median_score_s": score, "median_write_s": write, "overhead_over_predict": overhead / predict,
    })
    print(f"\n{method}: per case load {load * 1e3:.1f} ms, predict {predict * 1e3:.1f} ms, "
          f"score {score * 1e3:.1f} ms, write {write * 1e3:.1f} ms; overhead/predict = {overhead / predict:.2f}")

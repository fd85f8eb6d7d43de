"""Timing utilities: behaviour (warm-up, median of repeats, phases), not wall-clock thresholds."""

from __future__ import annotations

import itertools

import pytest

from cmsbench.benchmark.timing import Timer, peak_memory, time_call


def fake_clock(step_sequence):
    """A clock advancing by the given steps between consecutive reads."""
    t = [0.0]
    steps = itertools.cycle(step_sequence)

    def clock():
        t[0] += next(steps)
        return t[0]

    return clock


def test_time_call_warmup_and_median():
    calls = []
    # reads come in pairs (start, end): durations 3, 1, 2 -> median 2
    clock = fake_clock([0.0, 3.0, 0.0, 1.0, 0.0, 2.0])
    res = time_call(lambda x: calls.append(x) or x * 2, 21, repeats=3, warmup=2, clock=clock)
    assert len(calls) == 5  # 2 warm-up + 3 timed
    assert res.times == [3.0, 1.0, 2.0]
    assert res.median == 2.0 and res.min == 1.0
    assert res.result == 42
    assert res.to_dict()["warmup"] == 2
    with pytest.raises(ValueError):
        time_call(lambda: None, repeats=0)


def test_timer_cpu():
    with Timer("cpu", clock=fake_clock([1.0, 0.5])) as t:
        pass
    assert t.seconds == 0.5


def test_peak_memory_reports_bytes():
    before = peak_memory()
    assert before["cpu_peak_rss"] is None or before["cpu_peak_rss"] > 1_000_000  # bytes, not KiB
    blob = bytearray(64 * 1024 * 1024)
    blob[::4096] = b"x" * len(blob[::4096])
    after = peak_memory()
    if after["cpu_peak_rss"] is not None:
        assert after["cpu_peak_rss"] >= before["cpu_peak_rss"]
        assert after["cpu_peak_rss"] >= 64 * 1024 * 1024
    if after["cpu_rss"] is not None:
        assert after["cpu_rss"] > 0
    assert set(after) == {"cpu_peak_rss", "cpu_rss", "gpu_peak_allocated"}
    del blob


@pytest.mark.gpu
def test_cuda_timer_and_gpu_memory():
    import torch

    x = torch.randn(1024, 1024, device="cuda")
    res = time_call(lambda: x @ x, repeats=3, warmup=1, device="cuda")
    assert len(res.times) == 3 and all(t > 0 for t in res.times)
    assert peak_memory("cuda")["gpu_peak_allocated"] >= 4 * 1024 * 1024

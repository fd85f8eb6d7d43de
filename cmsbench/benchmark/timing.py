"""Timing and memory utilities for the runner.

- :func:`time_call` / :class:`Timer`: warm-up calls, then ``repeats`` timed calls; the reported time
  is the median. On CUDA the timed region is bracketed by CUDA events after a synchronisation (GPU
  work is asynchronous: wall-clock around a launch measures nothing).
- :class:`PhaseTimer`: ``with phases.phase("fit"): ...`` accumulates seconds per named phase
  (synchronising CUDA at phase boundaries when asked).
- :func:`peak_memory`: peak GPU memory (``torch.cuda.max_memory_allocated``) when CUDA is in use and
  peak CPU RSS (``resource.getrusage``: ``ru_maxrss`` is in KiB on Linux, bytes on macOS), plus the
  current RSS from ``/proc/self/status`` where it exists. All in bytes.
"""

from __future__ import annotations

import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


def _cuda_ready(device: str | None) -> bool:
    if device is None or not str(device).startswith("cuda"):
        return False
    try:
        import torch
    except ImportError:  # pragma: no cover
        return False
    return torch.cuda.is_available()


def cuda_synchronize(device: str | None = "cuda") -> None:
    """``torch.cuda.synchronize`` when ``device`` is a CUDA device and CUDA is available; else nothing."""
    if _cuda_ready(device):
        import torch

        torch.cuda.synchronize(device)


@dataclass
class TimingResult:
    """Seconds of each timed repeat, their median, and the last call's return value."""

    times: list[float]
    warmup: int
    device: str
    result: Any = None

    @property
    def median(self) -> float:
        return statistics.median(self.times)

    @property
    def min(self) -> float:
        return min(self.times)

    def to_dict(self) -> dict[str, Any]:
        return {
            "median_s": self.median,
            "min_s": self.min,
            "times_s": list(self.times),
            "warmup": self.warmup,
            "device": self.device,
        }


class Timer:
    """Times one region; CUDA-event based on a CUDA device, ``perf_counter`` otherwise.

    ``with Timer(device) as t: ...`` then ``t.seconds``.
    """

    def __init__(self, device: str = "cpu", clock: Callable[[], float] = time.perf_counter) -> None:
        self.device = str(device)
        self.clock = clock
        self.seconds: float = float("nan")
        self._cuda = _cuda_ready(self.device)

    def __enter__(self) -> Timer:
        if self._cuda:
            import torch

            torch.cuda.synchronize(self.device)
            self._start = torch.cuda.Event(enable_timing=True)
            self._end = torch.cuda.Event(enable_timing=True)
            self._start.record()
        else:
            self._t0 = self.clock()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._cuda:
            import torch

            self._end.record()
            torch.cuda.synchronize(self.device)
            self.seconds = self._start.elapsed_time(self._end) / 1000.0
        else:
            self.seconds = self.clock() - self._t0


def time_call(
    fn: Callable[..., Any],
    *args: Any,
    repeats: int = 5,
    warmup: int = 1,
    device: str = "cpu",
    clock: Callable[[], float] = time.perf_counter,
    **kwargs: Any,
) -> TimingResult:
    """Call ``fn(*args, **kwargs)`` ``warmup`` times untimed, then ``repeats`` times timed."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    result = None
    for _ in range(max(0, warmup)):
        result = fn(*args, **kwargs)
    cuda_synchronize(device)
    times = []
    for _ in range(repeats):
        with Timer(device, clock) as t:
            result = fn(*args, **kwargs)
        times.append(t.seconds)
    return TimingResult(times, warmup, str(device), result)


def current_rss_bytes() -> int | None:
    """Current resident set size from ``/proc/self/status`` (None where unavailable)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        return None
    return None


def peak_rss_bytes() -> int | None:
    """Peak resident set size of this process (``ru_maxrss``; KiB on Linux, bytes on macOS)."""
    try:
        import resource
    except ImportError:  # pragma: no cover (Windows)
        return None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return int(peak) if sys.platform == "darwin" else int(peak) * 1024


def peak_memory(device: str | None = None, *, reset: bool = False) -> dict[str, int | None]:
    """``{"cpu_peak_rss": bytes, "cpu_rss": bytes, "gpu_peak_allocated": bytes | None}``.

    ``reset=True`` resets the CUDA peak counter after reading (the CPU peak cannot be reset).
    """
    out: dict[str, int | None] = {
        "cpu_peak_rss": peak_rss_bytes(),
        "cpu_rss": current_rss_bytes(),
        "gpu_peak_allocated": None,
    }
    if _cuda_ready(device or "cuda"):
        import torch

        dev = device if device and str(device).startswith("cuda") else "cuda"
        out["gpu_peak_allocated"] = int(torch.cuda.max_memory_allocated(dev))
        if reset:
            torch.cuda.reset_peak_memory_stats(dev)
    return out

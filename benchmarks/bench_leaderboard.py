"""Leaderboard cost at scale: 20,000 cases (two methods x 10,000) aggregated into the HTML site and a table.

Run with ``python -m pytest benchmarks/bench_leaderboard.py -s``. The reference measured in the same run is
loading and validating the same records (``cmsbench.results.load``); the target is the whole site in
under 30 s on 2 CPU cores.
"""

from __future__ import annotations

import time
from pathlib import Path


def test_site_for_20000_cases(benchmark, tmp_path: Path) -> None:
    from cmsbench.leaderboard.aggregate import build_boards
    from cmsbench.leaderboard.site import build_site
    from cmsbench.results import load
    from cmsbench.testing.synthetic import demo_results

    demo_results(tmp_path / "res", n_cases=10_000, methods={"a": (28.0, 0.85, 0.05), "b": (27.0, 0.84, 0.06)})
    start = time.perf_counter()
    loaded = load(tmp_path / "res")
    load_s = time.perf_counter() - start
    rounds = iter(range(100))

    def site() -> None:
        build_site(build_boards(load(tmp_path / "res")), tmp_path / f"site{next(rounds)}", images=False)

    benchmark.pedantic(site, rounds=1, iterations=1)
    site_s = benchmark.stats.stats.median
    n = sum(len(r.cases) for _, r in loaded)
    benchmark.extra_info.update({"cases": n, "load_s": load_s, "site_s": site_s, "site_over_load": site_s / load_s})
    print(f"\n{n} cases: loading the records {load_s:.2f} s; whole site {site_s:.2f} s "
          f"({site_s / load_s:.1f}x loading; target < 30 s)")

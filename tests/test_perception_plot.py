"""The leaderboard's perception-distortion plots (inline SVG) and its set-level metrics (FRD): drawn from
synthetic records that carry LPIPS per case and FRD per run, shown with their interval, never tested
pairwise or ranked."""

from __future__ import annotations

import csv
import html
import io
import math
import re
from pathlib import Path

import numpy as np
import pytest

from cmsbench.leaderboard.aggregate import build_boards, load_boards
from cmsbench.leaderboard.svgplot import Interval, Point, nice_ticks, scatter_svg
from cmsbench.testing.synthetic import make_record, write_record

#: method -> (PSNR mean, LPIPS mean, FRD value): the sharp method loses PSNR and wins LPIPS and FRD.
METHODS = {"blurry": (27.0, 0.30, 9.0), "sharp": (25.5, 0.12, 4.0), "<b>odd</b>": (24.0, 0.25, 7.0)}
N = 12


def _records(seeds=(0,), frd: bool = True, frd_reason: str | None = None):
    recs = []
    for k, (name, (psnr, lpips, frd_value)) in enumerate(METHODS.items()):
        for seed in seeds:
            rng = np.random.default_rng(10 * k + seed)  # continuous values: no ties in the paired tests
            scores = {f"c{i:02d}": {"brain": {"psnr": psnr + 0.5 * rng.standard_normal(),
                                              "lpips": lpips + 0.02 * rng.standard_normal()}} for i in range(N)}
            rec = make_record(scores, method=name, seed=seed)
            if frd:
                value = None if frd_reason else frd_value + 0.5 * seed
                rec.set_scores = {"brain": {"frd": {"value": value, "ci_low": None if frd_reason else value - 1.0,
                                                    "ci_high": None if frd_reason else value + 1.5, "n": N,
                                                    "reason": frd_reason}},
                                  "lesion": {"frd": {"value": "-inf", "ci_low": "-inf", "ci_high": "-inf", "n": N}}}
            recs.append((None, rec))
    return recs


def _points(svg: str) -> dict[str, tuple[float, float]]:
    return {html.unescape(k): (float(x), float(y)) for k, x, y in
            re.findall(r'<g class="point" data-key="([^"]*)" data-x="([^"]*)" data-y="([^"]*)"', svg)}


def test_lpips_and_frd_plots_have_one_point_per_method_at_the_board_values() -> None:
    from cmsbench.leaderboard.site import perception_distortion_plots

    board = build_boards(_records())[0]
    plots = perception_distortion_plots(board)
    assert [p["id"] for p in plots] == ["pd-lpips", "pd-frd"]
    lp, fr = (str(p["svg"]) for p in plots)
    psnr, lpips = board.metric("brain", "psnr"), board.metric("brain", "lpips")
    for e in board.entries:
        assert _points(lp)[e.key] == (pytest.approx(lpips.stats[e.key].mean), pytest.approx(psnr.stats[e.key].mean))
        assert _points(fr)[e.key] == (pytest.approx(e.set_score("brain", "frd").value),
                                      pytest.approx(psnr.stats[e.key].mean))
    assert 'data-points="3"' in lp and lp.count('class="x-bar"') == 3 and lp.count('class="y-bar"') == 3
    assert "LPIPS (brain) ↓ lower is better — perception" in lp
    assert "PSNR (brain) ↑ higher is better — distortion" in lp and "FRD (brain) ↓ lower is better" in fr
    assert "<b>" not in lp and "&lt;b&gt;odd&lt;/b&gt;" in lp  # a method name from a record is text
    assert 'data-x-metric="lpips"' in lp and 'data-y-metric="psnr"' in lp and 'data-x-metric="frd"' in fr


def test_interval_bars_span_each_points_intervals() -> None:
    points = [Point("a", "a", Interval(0.2, 0.1, 0.25), Interval(25.0, 24.0, 27.0)),
              Point("b", "b", Interval(0.4, 0.35, 0.5), Interval(22.0, 21.5, 22.5)),
              Point("c", "c", Interval(float("nan")), Interval(20.0))]  # no finite x: not drawn
    svg = scatter_svg(points, "x", "y")
    assert 'data-points="2"' in svg and 'data-key="c"' not in svg
    groups = re.findall(r'<g class="point" data-key="(\w)".*?</g>', svg)
    assert groups == ["a", "b"]
    a = re.search(r'data-key="a".*?</g>', svg).group(0)
    cx, cy = (float(v) for v in re.search(r'<circle cx="([\d.]+)" cy="([\d.]+)"', a).groups())
    x1, x2 = (float(v) for v in re.search(r'class="x-bar" x1="([\d.]+)" x2="([\d.]+)"', a).groups())
    y1, y2 = (float(v) for v in re.search(r'class="y-bar" x1="[\d.]+" x2="[\d.]+" y1="([\d.]+)" y2="([\d.]+)"',
                                          a).groups())
    assert x1 < cx < x2 and (cx - x1) == pytest.approx(2 * (x2 - cx), abs=0.2)  # 0.1 left, 0.05 right of 0.2
    assert y2 < cy < y1 and (y1 - cy) == pytest.approx((cy - y2) / 2, abs=0.2)  # screen y grows downwards
    assert scatter_svg([points[2]], "x", "y") == ""


@pytest.mark.parametrize(("low", "high"), [(0.12, 0.31), (24.3, 27.9), (-3.0, 42.5), (5.0, 5.0), (1e-3, 1.3e-3)])
def test_nice_ticks_cover_the_range_with_round_steps(low: float, high: float) -> None:
    ticks = nice_ticks(low, high)
    assert ticks[0] <= low and ticks[-1] >= high and 3 <= len(ticks) <= 9
    steps = {round(b - a, 12) for a, b in zip(ticks, ticks[1:], strict=False)}
    assert len(steps) == 1
    mantissa = next(iter(steps)) / 10 ** math.floor(math.log10(next(iter(steps))) + 1e-9)
    assert round(mantissa, 6) in (1, 2, 2.5, 5)


def test_set_level_metrics_shown_with_their_interval_and_never_tested_pairwise(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import build_site
    from cmsbench.leaderboard.tables import render_tables

    res = tmp_path / "res"
    for _, rec in _records():
        write_record(res, rec)
    board = load_boards(res)[0]
    assert ("brain", "frd") not in board.regions_metrics() and board.set_metrics() == [("brain", "frd"),
                                                                                       ("lesion", "frd")]
    assert [board.entry(k).name for k in board.set_order("brain", "frd")] == ["sharp", "<b>odd</b>", "blurry"]
    build_site([board], tmp_path / "site", images=False)
    page = (tmp_path / "site" / "tasks" / f"{board.slug}.html").read_text()
    table = re.search(r'<table class="sortable" id="set-level">.*?</table>', page, re.S).group(0)
    assert "4.0 [3.0, 5.5]" in table and "-inf [-inf, -inf]" in table and 'class="best"' not in table
    assert "FRD (brain) ↓ [95% interval]" in table
    comparisons = re.search(r'<table class="sortable" id="comparisons">.*?</table>', page, re.S).group(0)
    assert "frd" not in comparisons.lower()
    assert page.count("<svg") == 2 and 'id="pd-frd"' in page
    method_page = (tmp_path / "site" / "methods" / board.slug / f"{board.entries[0].key}.html").read_text()
    assert 'id="set-level"' in method_page and "[95% interval]" in method_page
    rows = list(csv.DictReader(io.StringIO((tmp_path / "site" / "csv" / board.slug / "set-level.csv").read_text())))
    assert [r["method"] for r in rows] == ["sharp", "<b>odd</b>", "blurry"]
    assert float(rows[0]["frd (brain) value"]) == 4.0 and float(rows[0]["frd (brain) ci_high"]) == 5.5

    md = render_tables([board], "md")
    assert r"FRD (brain) ↓ \[set\]" in md and "4.0 [3.0, 5.5]" in md.replace("\\", "")
    assert "never in the paired tests" in md
    assert "LPIPS (brain) ↓" in md  # LPIPS, a per-case metric, is a column like any other when recorded
    stats = list(csv.DictReader(io.StringIO(render_tables([board], "csv"))))
    frd_rows = [r for r in stats if r["metric"] == "frd"]
    assert len(frd_rows) == 6 and {r["level"] for r in frd_rows} == {"set"}
    assert all(r["group"] == "" and r["mean_rank"] == "" for r in frd_rows)
    assert {r["level"] for r in stats if r["metric"] == "psnr"} == {"case"}


def test_set_level_seeds_combine_and_a_missing_value_says_why(tmp_path: Path) -> None:
    board = build_boards(_records(seeds=(0, 1)))[0]
    sharp = next(e for e in board.entries if e.name == "sharp")
    s = sharp.set_score("brain", "frd")
    assert (s.value, s.ci_low, s.ci_high, s.seeds) == (4.25, 3.0, 6.0, 2)  # mean of 4.0 and 4.5, both intervals

    from cmsbench.leaderboard.site import build_site, perception_distortion_plots

    reason = 'FRD needs pyradiomics and frd-score, which are not installed: pip install "cmsbench[frd]"'
    board = build_boards(_records(frd_reason=reason))[0]
    assert not board.entries[0].set_score("brain", "frd").defined
    assert [p["id"] for p in perception_distortion_plots(board)] == ["pd-lpips"]  # no finite FRD in the brain
    build_site([board], tmp_path / "site", images=False)
    page = (tmp_path / "site" / "tasks" / f"{board.slug}.html").read_text()
    table = re.search(r'<table class="sortable" id="set-level">.*?</table>', page, re.S).group(0)
    assert ">n/a<" in table and reason in html.unescape(table)

"""Leaderboard statistics, tables and site: numbers agree across outputs and with independent references."""

from __future__ import annotations

import csv
import io
import json
import math
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from scipy import stats as sps

from cmsbench.leaderboard import aggregate as agg
from cmsbench.leaderboard.aggregate import build_boards, decimals_for, fmt_ci, load_boards, load_result_boards
from cmsbench.leaderboard.tables import escape_latex, escape_markdown, render_tables
from cmsbench.results import MetricInfo
from cmsbench.testing.synthetic import demo_results, draw_scores, make_record, write_record


# ------------------------------------------------------------------------------------------- helpers
class _Tables(HTMLParser):
    """Table id -> rows of cell texts (header row first)."""

    def __init__(self) -> None:
        super().__init__()
        self.tables: dict[str, list[list[str]]] = {}
        self._stack: list[str] = []
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "table":
            tid = dict(attrs).get("id") or f"anon{len(self.tables)}"
            self._stack.append(tid)
            self.tables[tid] = []
        elif tag == "tr" and self._stack:
            self.tables[self._stack[-1]].append([])
        elif tag in ("td", "th") and self._stack:
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag == "table" and self._stack:
            self._stack.pop()
        elif tag in ("td", "th") and self._cell is not None and self._stack:
            self.tables[self._stack[-1]][-1].append("".join(self._cell).strip())
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def html_tables(path: Path) -> dict[str, list[list[str]]]:
    parser = _Tables()
    parser.feed(path.read_text())
    return parser.tables


def md_rows(text: str) -> dict[str, list[str]]:
    """Method label -> cells of the first Markdown table (bold and daggers removed)."""
    out = {}
    for line in text.splitlines():
        if line.startswith("| ") and not line.startswith("| Method"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", line)[1:-1]]
            out[cells[0]] = [c.replace("**", "").replace(" †", "") for c in cells[1:]]
        if out and not line.startswith("|"):
            break
    return out


def latex_rows(text: str) -> dict[str, list[str]]:
    out = {}
    body = text.split(r"\midrule")[1].split(r"\bottomrule")[0]
    for line in body.strip().splitlines():
        cells = [c.strip() for c in line.rstrip("\\ ").split(" & ")]
        clean = [
            re.sub(r"\\textbf\{(.*)\}", r"\1", c).replace(r"$\pm$", "±").replace(r"$^\dagger$", "") for c in cells[1:]
        ]
        out[cells[0]] = clean
    return out


def studentized_reference(x: np.ndarray, n_boot: int = 10_000, seed: int = 0) -> tuple[float, float]:
    """Bootstrap-t interval written out from its definition (Efron & Tibshirani ch. 12)."""
    n = x.size
    rng = np.random.default_rng(seed)
    idx = rng.integers(0, n, size=(n_boot, n))
    se = x.std(ddof=1) / np.sqrt(n)
    t = []
    for row in idx:
        s = x[row]
        se_b = s.std(ddof=1) / np.sqrt(n)
        if se_b > 0:
            t.append((s.mean() - x.mean()) / se_b)
    lo_q, hi_q = np.quantile(np.array(t), [0.025, 0.975])
    return x.mean() - hi_q * se, x.mean() - lo_q * se


@pytest.fixture()
def three(tmp_path: Path) -> Path:
    res = tmp_path / "res"
    demo_results(res, n_cases=25)
    return res


# ------------------------------------------------------------------------------------ the same numbers
def test_site_markdown_latex_show_the_same_numbers_and_they_match_independent_stats(
    three: Path, tmp_path: Path
) -> None:
    from cmsbench.leaderboard.site import build_site

    boards = load_boards(three)
    assert len(boards) == 1
    board = boards[0]
    assert {e.name for e in board.entries} == {"unet", "pix2pix", "linear"}
    md = md_rows(render_tables(boards, "md"))
    tex = latex_rows(render_tables(boards, "latex"))
    build_site(boards, tmp_path / "site", images=False)
    overview = html_tables(tmp_path / "site" / "tasks" / f"{board.slug}.html")["overview"]
    site = {row[0]: row for row in overview[1:]}
    header = overview[0]
    assert header[1].startswith("PSNR mean")

    _, result_set = load_result_boards(three)
    assert result_set.skipped == [] and len(result_set) == 3
    records = {rec.method.name: rec for _, rec in result_set}
    mb = board.metric("brain", "psnr")
    d = decimals_for(mb.stats.values())
    for name, rec in records.items():
        x = np.array([rec.cases[c].scores["brain"]["psnr"] for c in sorted(rec.cases)])
        lo, hi = studentized_reference(x)
        expected = f"{x.mean():.{d}f} ± {(hi - lo) / 2:.{d}f}"
        s = mb.stats[board.entries[[e.name for e in board.entries].index(name)].key]
        assert s.mean == pytest.approx(x.mean(), abs=1e-12)
        assert s.std == pytest.approx(x.std(ddof=1), abs=1e-12)
        assert s.median == pytest.approx(np.median(x), abs=1e-12)
        assert (s.ci_low, s.ci_high) == pytest.approx((lo, hi), abs=1e-9)
        assert md[name][0] == expected, (md[name], expected)
        assert tex[name][0] == expected
        assert site[name][1] == expected
        assert site[name][2] == f"[{lo:.{d}f}, {hi:.{d}f}]"
    # every metric column: Markdown and LaTeX agree cell by cell, and with the site's per-metric tables
    for name in records:
        assert md[name] == tex[name]
    all_tables = html_tables(tmp_path / "site" / "tasks" / f"{board.slug}.html")
    for col, metric in enumerate(["psnr", "ssim", "mae"]):
        rows = {r[0]: r for r in all_tables[f"m-brain-{metric}"][1:]}
        for name in records:
            assert rows[name][1] == md[name][col]


def test_percentile_bootstrap_matches_scipy() -> None:
    x = np.random.default_rng(3).normal(28, 2, size=23)
    ref = sps.bootstrap((x,), np.mean, method="percentile", n_resamples=4000, rng=7, vectorized=True)
    ours = agg.bootstrap_ci(x, n_boot=4000, seed=7)
    assert ours == pytest.approx((ref.confidence_interval.low, ref.confidence_interval.high), abs=1e-12)


def test_studentized_interval_matches_reference_and_edge_cases() -> None:
    x = np.random.default_rng(4).gamma(2.0, 1.0, size=17)
    assert agg.studentized_ci(x, n_boot=3000, seed=5) == pytest.approx(studentized_reference(x, 3000, 5), abs=1e-12)
    assert all(math.isnan(v) for v in agg.studentized_ci([1.0]))
    assert agg.studentized_ci([2.0, 2.0, 2.0]) == (2.0, 2.0)
    with pytest.raises(agg.CmsbenchError if hasattr(agg, "CmsbenchError") else Exception):
        agg.confidence_interval([1.0, 2.0], method="nope")


def test_wilcoxon_and_holm_match_scipy(three: Path) -> None:
    board = load_boards(three)[0]
    mb = board.metric("brain", "psnr")
    by_key = {e.key: e for e in board.entries}
    raw_p = []
    for c in mb.comparisons:
        va, vb = by_key[c.a].values("brain", "psnr"), by_key[c.b].values("brain", "psnr")
        common = sorted(set(va) & set(vb))
        ref = sps.wilcoxon([va[k] for k in common], [vb[k] for k in common])
        assert c.p == pytest.approx(ref.pvalue, rel=1e-12)
        assert c.statistic == pytest.approx(ref.statistic)
        assert c.n == len(common) == 25
        raw_p.append(ref.pvalue)
    # Holm by hand: sorted p times (m, m-1, ...), running maximum, capped at 1
    order = np.argsort(raw_p)
    m = len(raw_p)
    expected = np.empty(m)
    running = 0.0
    for rank, i in enumerate(order):
        running = max(running, min(1.0, (m - rank) * raw_p[i]))
        expected[i] = running
    assert [c.p_holm for c in mb.comparisons] == pytest.approx(list(expected))


# ------------------------------------------------------------------------------------- honest intervals
def test_interval_coverage_by_simulation() -> None:
    """95% intervals of a mean (normal, n=20; skewed gamma, n=30) and of a paired difference (n=25) cover
    the true value 92-98% of the time over 1000 repetitions (MC standard error ~0.7%)."""
    reps, n_boot = 1000, 1000
    rng = np.random.default_rng(2024)
    hits = {"mean_normal": 0, "mean_gamma": 0, "paired_diff": 0, "percentile_normal": 0}
    for r in range(reps):
        x = rng.normal(28.0, 1.5, 20)
        lo, hi = agg.studentized_ci(x, n_boot=n_boot, seed=r)
        hits["mean_normal"] += lo <= 28.0 <= hi
        lo, hi = agg.bootstrap_ci(x, n_boot=n_boot, seed=r)
        hits["percentile_normal"] += lo <= 28.0 <= hi
        g = rng.gamma(2.0, 1.0, 30)
        lo, hi = agg.studentized_ci(g, n_boot=n_boot, seed=r)
        hits["mean_gamma"] += lo <= 2.0 <= hi
        case = rng.normal(0.0, 2.0, 25)  # shared case difficulty
        a = 28.3 + case + rng.normal(0, 0.5, 25)
        b = 28.0 + case + rng.normal(0, 0.5, 25)
        lo, hi = agg.studentized_ci(a - b, n_boot=n_boot, seed=r)
        hits["paired_diff"] += lo <= 0.3 <= hi
    coverage = {k: v / reps for k, v in hits.items()}
    print("coverage:", coverage)
    for key in ("mean_normal", "mean_gamma", "paired_diff"):
        assert 0.92 <= coverage[key] <= 0.98, coverage
    # the reason the leaderboard does not show the percentile interval: it is too narrow at small n
    assert coverage["percentile_normal"] < coverage["mean_normal"]


# ----------------------------------------------------------------------------------------- ranking
def test_ranks_groups_and_directions(tmp_path: Path) -> None:
    ids = [f"c{i}" for i in range(14)]  # > 13 tied pairs: scipy's asymptotic Wilcoxon (fast, deterministic)
    # A beats B by 0.1 on 13 cases and loses by 10 on one: A wins per-case ranks, B wins the mean
    a = {c: {"brain": {"psnr": 30.1, "mae": 0.01}} for c in ids}
    b = {c: {"brain": {"psnr": 30.0, "mae": 0.02}} for c in ids}
    a["c0"]["brain"]["psnr"] = 20.0
    worst = {c: {"brain": {"psnr": 10.0 + 0.01 * i, "mae": 0.5}} for i, c in enumerate(ids)}
    recs = [
        (None, make_record(a, method="A")),
        (None, make_record(b, method="B")),
        (None, make_record(worst, method="C")),
    ]
    board = build_boards(recs)[0]
    key = {e.name: e.key for e in board.entries}
    mb = board.metric("brain", "psnr")
    assert mb.ranks[key["A"]].rank_rta == 1 and mb.ranks[key["B"]].rank_rta == 2
    assert mb.ranks[key["B"]].rank_atr == 1 and mb.ranks[key["A"]].rank_atr == 2
    assert mb.ranks[key["C"]].rank_rta == 3 and (mb.ranks[key["C"]].rta_low, mb.ranks[key["C"]].rta_high) == (3, 3)
    assert mb.ranks[key["A"]].mean_rank == pytest.approx((13 * 1 + 2) / 14)
    assert mb.best == key["B"]  # best mean
    # lower is better for MAE: A (0.01) is best, C worst; every pair differs significantly
    mae = board.metric("brain", "mae")
    assert mae.higher_is_better is False and mae.order == [key["A"], key["B"], key["C"]]
    assert mae.groups == {key["A"]: 1, key["B"]: 2, key["C"]: 3}
    assert agg.higher_is_better("nrmse") is False and agg.higher_is_better("ssim") is True
    assert agg.higher_is_better("foo") is None


def test_significance_group_holds_methods_not_different_from_the_best(three: Path) -> None:
    board = load_boards(three)[0]
    key = {e.name: e.key for e in board.entries}
    mb = board.metric("brain", "psnr")
    assert mb.order[-1] == key["linear"]
    assert mb.groups[key["linear"]] > 1
    assert mb.groups[mb.order[0]] == 1
    cmp = mb.comparison(key["unet"], key["pix2pix"])
    assert (mb.groups[key["unet"]] == mb.groups[key["pix2pix"]] == 1) == (not cmp.significant)
    r = mb.ranks[key["linear"]]
    assert r.rank_rta == 3 and r.rta_low == 3 and r.rta_high == 3


def test_direction_stated_in_the_records_ranks_an_unregistered_metric(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from cmsbench.benchmark.metrics.registry import direction_of
    from cmsbench.leaderboard import site
    from cmsbench.leaderboard.tables import metric_heading

    figures = []
    make_figure = site._figure
    monkeypatch.setattr(site, "_figure", lambda *a: figures.append(make_figure(*a)) or figures[-1])

    # "mymetric" is known to neither the metric registry nor the 0.1 name table: only the records can rank it
    assert direction_of("mymetric") is None and agg.higher_is_better("mymetric") is None
    ids = [f"c{i}" for i in range(14)]
    a = {c: {"global": {"mymetric": 1.0 + 0.1 * i}} for i, c in enumerate(ids)}
    b = {c: {"global": {"mymetric": 2.0 + 0.1 * i}} for i, c in enumerate(ids)}  # B above A on every case
    for direction, higher, best in (("lower", False, "A"), ("higher", True, "B")):
        res = tmp_path / direction
        for method, scores in (("A", a), ("B", b)):
            rec = make_record(scores, method=method)
            rec.scoring.metrics = {"mymetric": MetricInfo(direction=direction)}
            write_record(res, rec)
        boards = load_boards(res)
        assert len(boards) == 1
        board = boards[0]
        key = {e.name: e.key for e in board.entries}
        assert board.directions == {"mymetric": higher}
        assert board.higher_is_better("mymetric") is higher
        mb = board.metric("global", "mymetric")
        assert mb.higher_is_better is higher
        worst = "B" if best == "A" else "A"
        assert mb.order == [key[best], key[worst]] and mb.best == key[best]
        assert mb.ranks[key[best]].rank_rta == 1 and mb.ranks[key[best]].rank_atr == 1
        assert mb.groups == {key[best]: 1, key[worst]: 2}
        assert metric_heading("mymetric", "global", board) == f"MYMETRIC (global) {'↑' if higher else '↓'}"
        assert metric_heading("mymetric", "global") == "MYMETRIC (global)"  # without the board: unknown
        # the method page's box plot per region labels the axis with the records' direction too
        site.box_plot_regions(board.entries[0], "mymetric", ["global"], tmp_path / f"{direction}.png", board)
        assert figures[-1].axes[0].get_ylabel() == f"MYMETRIC ({'higher' if higher else 'lower'} is better)"


def test_unknown_metric_is_shown_but_not_ranked() -> None:
    recs = [
        (None, make_record({"c1": {"global": {"weird": 1.0}}, "c2": {"global": {"weird": 2.0}}}, method=m))
        for m in ("a", "b")
    ]
    mb = build_boards(recs)[0].metric("global", "weird")
    assert mb.higher_is_better is None and mb.ranks == {} and mb.best is None
    assert all(s.n == 2 for s in mb.stats.values())


# -------------------------------------------------------------------------------------- what is compared
def _scores(seed: int, mu: float = 28.0, n: int = 10) -> dict:
    return draw_scores(
        [f"c{i}" for i in range(n)], {"brain": {"psnr": mu, "mae": 0.05}}, sd={"psnr": 1.0, "mae": 0.01}, seed=seed
    )


def test_phantom_and_real_never_share_a_table_and_differences_are_shown_apart(tmp_path: Path) -> None:
    res = tmp_path / "res"
    write_record(res, make_record(_scores(0), method="unet", data_kind="real"))
    write_record(res, make_record(_scores(1), method="linear", data_kind="real"))
    write_record(res, make_record(_scores(2), method="unet", data_kind="phantom"))
    write_record(res, make_record(_scores(3), method="linear", data_kind="real", test_hash="feedbeef00000000"))
    write_record(res, make_record(_scores(4), method="old", data_kind="real", task_version="0.9"))
    write_record(
        res,
        make_record(
            _scores(5), method="compat", data_kind="real", mode="synthrad2023", convention={"data_range": "per-image"}
        ),
    )
    boards = load_boards(res)
    for b in boards:
        kinds = {rec.data.kind for e in b.entries for _, rec in e.records}
        assert len(kinds) == 1
        hashes = {rec.split.test_hash for e in b.entries for _, rec in e.records}
        assert len(hashes) == 1
    main = [b for b in boards if b.main and b.key.data_kind == "real"]
    assert len(main) == 1 and {e.name for e in main[0].entries} == {"unet", "linear"}
    apart = {b.entries[0].name: b.reason for b in boards if not b.main}
    assert "test split hash feedbeef00000000" in apart["linear"]
    assert "task version 0.9 (main table: 1.0)" in apart["old"]
    assert "scoring mode 'synthrad2023'" in apart["compat"] and "metric convention" in apart["compat"]
    phantom = [b for b in boards if b.key.data_kind == "phantom"]
    assert len(phantom) == 1 and "phantom" in phantom[0].reason
    md = render_tables(boards, "md")
    assert md.count("### ") == len(boards) == 5
    assert "shown apart: test split hash feedbeef00000000" in md and "(phantom data" in md
    csv_rows = list(csv.DictReader(io.StringIO(render_tables(boards, "csv"))))
    assert {r["data_kind"] for r in csv_rows} == {"real", "phantom"}
    assert len({r["table"] for r in csv_rows}) == 5


def test_newest_complete_record_is_kept_and_seeds_are_averaged(tmp_path: Path) -> None:
    old = make_record(_scores(0, 20.0), method="m", created="2024-01-01T00:00:00+00:00")
    new = make_record(_scores(1, 25.0), method="m", created="2024-02-01T00:00:00+00:00")
    running = make_record(_scores(2, 99.0), method="m", created="2024-03-01T00:00:00+00:00", status="running")
    seed1 = make_record(_scores(3, 27.0), method="m", seed=1, created="2024-02-01T00:00:00+00:00")
    board = build_boards([(None, old), (None, running), (None, new), (None, seed1)])[0]
    assert len(board.entries) == 1
    entry = board.entries[0]
    assert entry.seeds == [0, 1]
    assert any("kept the newest complete record of 3" in n for n in board.notes)
    s = board.metric("brain", "psnr").stats[entry.key]
    v0 = [new.cases[c].scores["brain"]["psnr"] for c in sorted(new.cases)]
    v1 = [seed1.cases[c].scores["brain"]["psnr"] for c in sorted(seed1.cases)]
    assert s.mean == pytest.approx(np.mean((np.array(v0) + np.array(v1)) / 2))
    assert s.n == 10
    assert s.seed_sd == pytest.approx(np.std([np.mean(v0), np.mean(v1)], ddof=1))
    md = render_tables([board], "md")
    assert "m (2 seeds)" in md


def test_failed_cases_rank_last_and_inf_values_are_handled(tmp_path: Path) -> None:
    ids = [f"c{i}" for i in range(6)]
    good = {c: {"global": {"psnr": 30.0}} for c in ids}
    good["c0"]["global"]["psnr"] = "inf"  # a perfect case, stored as strict JSON
    flaky = {c: {"global": {"psnr": 35.0}} for c in ids[:3]}
    recs = [
        (None, make_record(good, method="good")),
        (None, make_record(flaky, method="flaky", failed={c: "boom" for c in ids[3:]})),
    ]
    board = build_boards(recs)[0]
    key = {e.name: e.key for e in board.entries}
    mb = board.metric("global", "psnr")
    assert mb.stats[key["good"]].n == 5  # the inf case is left out of the mean
    assert mb.stats[key["flaky"]].n == 3 and board.entry(key["flaky"]).n_failed() == 3
    # per case: c0 good (inf) wins, c1-c2 flaky wins, c3-c5 flaky failed -> good wins
    assert mb.ranks[key["good"]].mean_rank == pytest.approx((1 + 2 + 2 + 1 + 1 + 1) / 6)
    assert mb.comparison(key["good"], key["flaky"]).n == 2


# -------------------------------------------------------------------------------------------- escaping
EVIL = '<script>alert("x")</script> | a&b_%$#{}~^\\'


def test_untrusted_text_is_escaped_everywhere(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import build_site

    res = tmp_path / "res"
    card = {"name": EVIL, "summary": "<img src=x onerror=alert(1)>", "paper": "javascript:alert(1)"}
    write_record(res, make_record(_scores(0), method=EVIL, card=card, options={"<b>k</b>": "<i>v</i>"}))
    write_record(res, make_record(_scores(1, 25.0), method="plain"))
    boards = load_boards(res)
    build_site(boards, tmp_path / "site", images=False)
    pages = list((tmp_path / "site").rglob("*.html"))
    assert len(pages) == 4
    for page in pages:
        html = page.read_text()
        assert html.count("<script") == 1, page  # only the page's own sorting script
        assert "<img src=x" not in html and "<b>k</b>" not in html and "<i>v</i>" not in html
        assert 'href="javascript' not in html
    task_html = next((tmp_path / "site" / "tasks").glob("*.html")).read_text()
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;" in task_html
    method_page = next(p for p in pages if "methods" in p.parts and "plain" not in p.name).read_text()
    assert "&lt;img src=x onerror=alert(1)&gt;" in method_page

    md = render_tables(boards, "md")
    assert "<script>" not in md and "&lt;script&gt;" in md
    row = next(line for line in md.splitlines() if "&lt;script&gt;" in line)
    header = next(line for line in md.splitlines() if line.startswith("| Method"))
    unescaped_pipes = lambda s: len(re.findall(r"(?<!\\)\|", s))  # noqa: E731
    assert unescaped_pipes(row) == unescaped_pipes(header)
    tex = render_tables(boards, "latex")
    assert "<script>" not in tex and r"\textless{}script\textgreater{}" in tex
    assert r"a\&b\_\%\$\#\{\}\textasciitilde{}\textasciicircum{}\textbackslash{}" in tex
    assert escape_latex("50% & $x$") == r"50\% \& \$x\$"
    assert escape_markdown("a|b<c>") == r"a\|b&lt;c&gt;"
    rows = list(csv.DictReader(io.StringIO(render_tables(boards, "csv"))))
    assert {r["method"] for r in rows} == {EVIL, "plain"}
    formula = make_record(_scores(0), method="=HYPERLINK(1)")
    rows = list(csv.DictReader(io.StringIO(render_tables(build_boards([(None, formula)]), "csv"))))
    assert rows[0]["method"] == "'=HYPERLINK(1)"


# ------------------------------------------------------------------------------------------------ CLI
def test_cli_table_formats_and_leaderboard(three: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cmsbench.cli import main

    assert main(["table", "--task", "brats_flair", "--results", str(three), "--format", "latex"]) == 0
    tex = capsys.readouterr().out
    assert r"\toprule" in tex and r"\textbf{" in tex and "split hash 0123456789abcdef" in tex
    assert "higher is better" in tex and "lower is better" in tex
    assert (
        main(
            [
                "table",
                "--task",
                "brats_flair",
                "--results",
                str(three),
                "--format",
                "md",
                "--metric",
                "mae",
                "--region",
                "lesion",
                "--ci",
                "interval",
            ]
        )
        == 0
    )
    md = capsys.readouterr().out
    assert "MAE (lesion) ↓" in md and "PSNR" not in md.split("\n\n")[1] and " [" in md
    assert main(["table", "--task", "brats_flair", "--results", str(three), "--format", "csv"]) == 0
    rows = list(csv.DictReader(io.StringIO(capsys.readouterr().out)))
    assert len(rows) == 3 * 6 and {r["ci_method"] for r in rows} == {"studentized"}
    board = load_boards(three)[0]
    for r in rows:
        s = board.metric(r["region"], r["metric"]).stats[next(e.key for e in board.entries if e.name == r["method"])]
        assert float(r["mean"]) == s.mean and float(r["ci_low"]) == s.ci_low
    assert main(["table", "--task", "brats_flair", "--results", str(three), "--format", "text"]) == 0
    assert "unet" in capsys.readouterr().out
    assert main(["table", "--task", "brats_flair", "--results", str(three), "--metric", "nope"]) == 2
    assert "not scored" in capsys.readouterr().err
    assert main(["table", "--task", "nosuch", "--results", str(three)]) == 2
    assert main(["leaderboard", "--results", str(three), "--out", str(tmp_path / "site"), "--images", "0"]) == 0
    assert (tmp_path / "site" / "index.html").exists()
    index = (tmp_path / "site" / "index.html").read_text()
    assert 'href="tasks/' in index and "file://" not in index and "http" not in index.replace("http-equiv", "")
    # re-rendering replaces the site; a foreign non-empty folder is refused
    assert main(["leaderboard", "--results", str(three), "--out", str(tmp_path / "site"), "--images", "0"]) == 0
    (tmp_path / "mine").mkdir()
    (tmp_path / "mine" / "thesis.tex").write_text("keep me")
    assert main(["leaderboard", "--results", str(three), "--out", str(tmp_path / "mine")]) == 2
    assert (tmp_path / "mine" / "thesis.tex").exists()


def test_run_table_still_summarises_one_record() -> None:
    from cmsbench.commands.benchmark import format_run_table

    rec = make_record(_scores(0))
    text = format_run_table(rec)
    s = agg.summarise(rec, "brain", "psnr")
    assert s.n == 10 and s.ci_low < s.mean < s.ci_high
    assert f"[{s.ci_low:.4g}, {s.ci_high:.4g}]" in text
    assert agg.record_regions_metrics(rec) == [("brain", "psnr"), ("brain", "mae")]


# --------------------------------------------------------------------------------------------- images
def test_method_pages_draw_case_grids_or_say_why_not(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import build_site
    from cmsbench.testing.synthetic import demo_with_images

    res = tmp_path / "res"
    demo_with_images(res, tmp_path / "data", n_subjects=8)
    write_record(res, make_record(_scores(0), method="nopred"))  # phantom board, no predictions
    boards = load_boards(res)
    build_site(boards, tmp_path / "site")
    real = next(b for b in boards if b.key.data_kind == "real")
    for e in real.entries:
        page = (tmp_path / "site" / "methods" / real.slug / f"{e.key}.html").read_text()
        assert 'id="case-grid"' in page
        png = tmp_path / "site" / "img" / real.slug / f"{e.key}_cases.png"
        assert png.stat().st_size > 5000
        assert json.loads(json.dumps(page.count("<img"))) >= 3  # box plots + grid
    other = next(b for b in boards if b.key.data_kind == "phantom")
    page = (tmp_path / "site" / "methods" / other.slug / f"{other.entries[0].key}.html").read_text()
    assert 'id="case-grid"' not in page and "no saved predictions" in page


def test_missing_data_root_is_a_note(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import case_image_grid

    rec = make_record(_scores(0), predictions={"c0": str(tmp_path / "c0.nii.gz")}, data_path=str(tmp_path / "gone"))
    path, notes = case_image_grid(rec, tmp_path / "x.png")
    assert path is None and "not available" in notes[0]
    assert fmt_ci(agg.Summary("r", "m", 0, *[float("nan")] * 5), 2) == "n/a"


def test_small_samples_use_the_student_t_interval_visibly() -> None:
    x = np.array([61.0, 61.4, 60.7])
    s = agg.summarise_values(x)
    ref = sps.t.interval(0.95, df=2, loc=x.mean(), scale=sps.sem(x))
    assert s.ci_method == "t" and (s.ci_low, s.ci_high) == pytest.approx(ref)
    assert agg.summarise_values(np.arange(12.0)).ci_method == "studentized"
    rows = list(csv.DictReader(io.StringIO(render_tables(build_boards([(None, make_record(_scores(0, n=4)))]), "csv"))))
    assert {r["ci_method"] for r in rows} == {"t"}


def test_memory_and_case_dependent_convention_fields() -> None:
    assert agg.memory_mb({"cpu_peak_rss": 3 * 2**20, "cpu_rss": 2**20, "gpu_peak_allocated": None}) == {"host": 3.0}
    assert agg.memory_mb({"gpu_peak_allocated": 2**30, "host_peak_gb": 2}) == {"gpu": 1024.0, "host": 2048.0}
    conv = {"mode": "default", "units": "SUV"}
    a = make_record(_scores(0), method="a", convention={**conv, "suv": "SUV factor 1.2e-05 g/Bq"})
    b = make_record(_scores(1), method="b", convention={**conv, "suv": "SUV factor 3.4e-05 g/Bq"})
    c = make_record(_scores(2), method="c", convention={**conv, "units": "Bq/mL"})
    boards = build_boards([(None, a), (None, b), (None, c)])
    assert len(boards) == 2 and {e.name for e in boards[0].entries} == {"a", "b"}
    assert "metric convention differs in units: Bq/mL (main table: SUV)" in boards[1].reason

"""The leaderboard site a researcher opens: overview matrices, conventions in words, pictures by default,
method pages from the cards, a CSV under every table; and the thumbnails every run stores."""

from __future__ import annotations

import csv
import io
import json
import re
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

from cmsbench.benchmark import thumbnails
from cmsbench.leaderboard.aggregate import load_boards
from cmsbench.results import load_record
from cmsbench.testing.synthetic import DEMO_METHODS, demo_results, make_record, write_record

METHODS = ("identity", "linear", "poly2")


def _run_three(data: Path, results: Path, *extra: str) -> None:
    from cmsbench.cli import main

    for method in METHODS:
        assert main(["run", "--task", "brats_flair", "--method", method, "--data-root", str(data),
                     "--results", str(results), "--quiet", *extra]) == 0


def _thumb_imgs(html: str) -> list[dict[str, str]]:
    return [dict(re.findall(r'([a-z-]+)="([^"]*)"', tag)) for tag in re.findall(r'<img class="thumb"[^>]*>', html)]


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, Path]:
    """identity, linear and poly2 with no extra flags, twice (the second time refitted) on the same data."""
    from cmsbench.testing.layouts import write_brats

    tmp = tmp_path_factory.mktemp("site_runs")
    write_brats(tmp / "data", n=24)
    _run_three(tmp / "data", tmp / "a")
    _run_three(tmp / "data", tmp / "b", "--refit")
    return tmp / "data", tmp / "a", tmp / "b"


# ------------------------------------------------------------------------------------------ thumbnails
def test_every_run_stores_small_thumbnails_that_are_byte_identical_for_a_seed(runs: tuple[Path, Path, Path]) -> None:
    from PIL import Image

    _, a, b = runs
    records = sorted(a.rglob("*.json"))
    assert len(records) == 3
    for path in records:
        rec = load_record(path)
        chosen = thumbnails.chosen_cases(rec.split.test_ids, 3)
        assert {cid for cid, c in rec.cases.items() if c.thumbnail} == set(chosen)
        files = [path.parent / rec.cases[cid].thumbnail for cid in chosen]
        assert all(f.parent == thumbnails.thumbs_dir(path) for f in files)
        total = sum(f.stat().st_size for f in files)
        print(f"{rec.method.name}: {len(files)} thumbnails, {total} bytes")
        assert 0 < total <= 500_000
        twin = b / path.relative_to(a)
        for f in files:
            assert f.read_bytes() == (twin.parent / f.relative_to(path.parent)).read_bytes(), f
            with Image.open(f) as im:
                assert im.mode == "P" and im.size[0] > 4 * im.size[1]  # five panels side by side
            info = thumbnails.read_info(f)
            assert info["panels"] == ["t1", "t2", "target", "prediction", "|error|"]
            assert info["slice"]["through"] == "lesion centre"
        assert not list(path.parent.glob(f"{rec.run_id}_predictions"))  # full volumes only when asked


def test_leaderboard_of_the_runs_shows_the_methods_with_cis_and_image_grids(
    runs: tuple[Path, Path, Path], tmp_path: Path
) -> None:
    from cmsbench.cli import main

    _, a, _ = runs
    assert main(["leaderboard", "--results", str(a), "--out", str(tmp_path / "site")]) == 0
    index = (tmp_path / "site" / "index.html").read_text()
    matrix = re.search(r'<table class="sortable" id="matrix-real">(.*?)</table>', index, re.S).group(1)
    rows = re.findall(r"<tr><td[^>]*><a [^>]*>([^<]+)</a></td><td[^>]*><a href=\"(tasks/[^\"]+)\">([^<]+)</a>",
                      matrix)
    assert sorted(r[0] for r in rows) == sorted(METHODS)
    assert all("±" in r[2] for r in rows)
    assert "matrix-phantom" not in index
    (board,) = load_boards(a)
    task = (tmp_path / "site" / "tasks" / f"{board.slug}.html").read_text()
    imgs = _thumb_imgs(task)
    for e in board.entries:
        mine = [i for i in imgs if i["data-method"] == e.key]
        assert len(mine) == 6  # three cases side by side with the others, three in its own grid
        for i in mine:
            assert (tmp_path / "site" / "tasks" / i["src"]).resolve().is_file()
    # one case: the same windows for every method (the window comes from the ground truth)
    blocks = re.findall(r'<div class="case-block" data-case="([^"]+)">(.*?)</div>\n</div>', task, re.S)
    assert len(blocks) == 3
    assert "differ between methods" not in task
    method_page = (tmp_path / "site" / "methods" / board.slug / f"{board.entries[0].key}.html").read_text()
    assert 'id="thumb-grid"' in method_page and len(_thumb_imgs(method_page)) == 3


def _task_stub(**kw):
    from cmsbench.tasks.spec import DataRange

    base = dict(main_region="brain", regions=["brain"], inputs=("t1",), data_range=DataRange("fixed", 4.0), units="u")
    return SimpleNamespace(**{**base, **kw})


def test_thumbnail_window_comes_from_the_ground_truth_and_the_slice_from_the_lesion() -> None:
    rng = np.random.default_rng(0)
    target = rng.uniform(1.0, 2.0, (30, 28, 10))
    brain = np.zeros(target.shape, bool)
    brain[3:27, 3:25, :] = True
    lesion = np.zeros(target.shape, bool)
    lesion[10:15, 10:14, 6:9] = True
    target[~brain] = 0.0
    masks = {"brain": brain, "lesion": lesion}
    inputs = {"t1": target * 0.5}
    task = _task_stub()
    good, info_good = thumbnails.render(inputs, target, target + 0.01, masks, task)
    bad, info_bad = thumbnails.render(inputs, target, 5 * target + rng.normal(0, 1, target.shape), masks, task)
    assert info_good["window"] == info_bad["window"]
    assert info_good["window"] == pytest.approx(list(np.percentile(target[brain], [1, 99])), rel=1e-5)
    assert info_good["slice"] == {"axis": 2, "index": 7, "of": 10, "through": "lesion centre"}
    assert info_good["error_max"] == pytest.approx(0.4)  # 0.1 x the fixed data range 4
    panel = (good.shape[1] - 3 * 2) // 4  # t1, target, prediction, |error| with 2-pixel gaps
    target_panel = slice(panel + 2, 2 * panel + 2)
    assert np.array_equal(good[:, target_panel], bad[:, target_panel])  # same picture of the target
    assert not np.array_equal(good, bad)
    assert (good == 255).any()  # the lesion outline
    _, no_lesion = thumbnails.render(inputs, target, target, {"brain": brain}, task)
    assert no_lesion["slice"]["index"] == 5 and no_lesion["slice"]["through"] == "middle"
    # deterministic bytes, readable by PIL, with the description in a text chunk
    png = thumbnails.encode_png(good, {thumbnails.TEXT_KEY: json.dumps(info_good)})
    assert png == thumbnails.encode_png(good, {thumbnails.TEXT_KEY: json.dumps(info_good)})
    from PIL import Image

    with Image.open(io.BytesIO(png)) as im:
        assert im.mode == "P" and np.array_equal(np.asarray(im), good)


def test_thumbnails_of_a_large_volume_stay_small(tmp_path: Path) -> None:
    """BraTS-size slices of noise (the worst case for compression), three cases: well under 500 KB."""
    rng = np.random.default_rng(1)
    shape = (240, 240, 12)
    target = rng.uniform(0, 3, shape).astype(np.float32)
    brain = np.ones(shape, bool)
    inputs = {name: rng.uniform(0, 3, shape).astype(np.float32) for name in ("t1", "t2", "t1ce", "flair")}
    task = _task_stub(inputs=tuple(inputs))
    total = 0
    for k in range(3):
        path = thumbnails.write(tmp_path / f"c{k}.png", inputs, target, rng.uniform(0, 3, shape), {"brain": brain},
                                task, f"c{k}")
        total += path.stat().st_size
    print(f"three 240x240 cases with four inputs: {total} bytes")
    assert total <= 3 * thumbnails.MAX_BYTES < 500_000


def test_thumbnail_failures_and_zero_cases_never_fail_a_case() -> None:
    entry = SimpleNamespace(thumbnail=None, warnings=[])
    case = SimpleNamespace(target=SimpleNamespace(data=np.zeros((4, 4, 4))), inputs={}, masks={})
    thumbnails.attach(entry, case_id="x", case=case, prediction=np.zeros((3, 3, 3)), task=_task_stub(),
                      record_path=Path("/nonexistent/r.json"), test_ids=["x"], n=3)
    assert entry.thumbnail is None and "no thumbnail" in entry.warnings[0]
    thumbnails.attach(entry, case_id="x", case=case, prediction=np.zeros((4, 4, 4)), task=_task_stub(),
                      record_path=Path("/nonexistent/r.json"), test_ids=["x"], n=0)
    assert entry.thumbnail is None and len(entry.warnings) == 1
    assert thumbnails.chosen_cases(["c", "a", "b", "d"], 3) == ["a", "b", "c"]
    assert thumbnails.file_name("../a b") == "_a_b.png"


def test_a_thumbnail_outside_its_record_folder_is_never_copied(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import build_site

    res = tmp_path / "res"
    secret = tmp_path / "secret.png"
    secret.write_bytes(thumbnails.encode_png(np.zeros((4, 4), np.uint8)))
    rec = make_record({f"c{i}": {"brain": {"psnr": 20.0 + i}} for i in range(5)}, method="sneaky")
    rec.cases["c0"].thumbnail = "../../../secret.png"
    rec.cases["c1"].thumbnail = str(secret)
    rec.cases["c2"].thumbnail = "x_thumbs/missing.png"
    write_record(res, rec)
    build_site(load_boards(res), tmp_path / "site")
    assert not [p for p in (tmp_path / "site").rglob("*.png") if "thumbs" in p.parts]
    task = next((tmp_path / "site" / "tasks").glob("*.html")).read_text()
    assert task.count("is not a PNG beside its record") == 3


# ------------------------------------------------------------------------------------------ the pages
def test_phantom_and_real_data_get_separate_sortable_matrices(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import build_site

    res = tmp_path / "res"
    demo_results(res, n_cases=12, data_kind="real")
    demo_results(res, n_cases=12, data_kind="phantom", task="ixi_t2")
    demo_results(res, n_cases=12, data_kind="real", task="ixi_t2", methods={"unet": (30.0, 0.9, 0.04)})
    build_site(load_boards(res), tmp_path / "site", images=False)
    index = (tmp_path / "site" / "index.html").read_text()
    assert index.index('id="matrix-real"') < index.index('id="matrix-phantom"')
    real = re.search(r'id="matrix-real">(.*?)</table>', index, re.S).group(1)
    phantom = re.search(r'id="matrix-phantom">(.*?)</table>', index, re.S).group(1)
    heads = re.findall(r"<th [^>]*>([^<]*)</th>", real)
    assert heads[1].startswith("brats_flair: PSNR (brain)") and heads[2].startswith("ixi_t2: PSNR (brain)")
    body = real.split("<tbody>")[1]
    assert len(re.findall(r"<tr>", body)) == 3 and len(re.findall(r"<tr>", phantom.split("<tbody>")[1])) == 3
    assert body.count("rank 1 of") == 2  # unet is best on both real tasks
    assert re.search(r"<td>–</td>|<td title=\"not run on this task\">–</td>", body)  # pix2pix not run on ixi_t2
    assert 'data-sort="' in body and 'href="tasks/' in body
    rows = list(csv.DictReader(io.StringIO((tmp_path / "site" / "csv" / "index" / "matrix-real.csv").read_text())))
    assert [r["method"] for r in rows][0] == "unet" and float(rows[0]["mean_rank_over_tasks"]) == 1.0
    board = next(b for b in load_boards(res) if b.task == "brats_flair")
    unet = board.metric("brain", "psnr").stats[next(e.key for e in board.entries if e.name == "unet")]
    assert float(rows[0]["brats_flair psnr (brain) mean"]) == unet.mean


def test_conventions_in_words_with_the_compatibility_mode_and_its_source(tmp_path: Path) -> None:
    from cmsbench.benchmark.metrics.registry import get_mode
    from cmsbench.leaderboard.site import build_site

    res = tmp_path / "res"
    scores = {f"c{i}": {"brain": {"psnr": 20.0 + i}} for i in range(6)}
    default = {"mode": "default", "units": "HU", "normalisation": "none (HU)", "data_range": "fixed 4",
               "ssim": "3D SSIM, Gaussian sigma 1.5", "ssim_config": {"sigma": 1.5},
               "regions": {"brain": "case 'brain' mask"}, "ct_windows": {"head": [40, 80]}, "novel_key": 3}
    write_record(res, make_record(scores, method="a", convention=default))
    compat = {"mode": "synthrad2023", "evaluator": "SynthRAD2023 ImageMetrics", "mask": "body (binarised)"}
    write_record(res, make_record(scores, method="b", mode="synthrad2023", convention=compat))
    boards = load_boards(res)
    build_site(boards, tmp_path / "site", images=False)
    pages = {b.key.mode: (tmp_path / "site" / "tasks" / f"{b.slug}.html").read_text() for b in boards}
    words = pages["default"]
    for text in ("Scoring mode <b>default</b>", "<dt>Units</dt><dd>HU</dd>", "Normalisation", "none (HU)",
                 "Data range (PSNR peak, SSIM range)", "SSIM flavour", "<b>brain</b>: case &#39;brain&#39; mask",
                 "CT windows", "<dt>Novel key</dt><dd>3</dd>", '<details id="convention-json">'):
        assert text in words, text
    assert "&#34;ssim_config&#34;" in words.split('<details id="convention-json">')[1]  # raw JSON holds it all
    mode = get_mode("synthrad2023")
    page = pages["synthrad2023"]
    assert "Compatibility mode <b>synthrad2023</b>" in page and "Official source" in page
    assert mode.source in page and mode.verified in page and "SynthRAD2023 ImageMetrics" in page


def test_method_page_from_the_card_with_cost_and_nfe(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import build_site

    res = tmp_path / "res"
    scores = {f"c{i}": {"brain": {"psnr": 20.0 + i}} for i in range(6)}
    card = {"name": "diff", "version": "2", "summary": "a diffusion model", "paper": "https://example.org/paper",
            "differences_from_paper": "50 sampling steps instead of 1000", "stochastic": True}
    rec = make_record(scores, method="diff", card=card, options={"steps": 50}, predict_s=2.5, fit_s=120.0)
    for case in rec.cases.values():
        case.timing["nfe"] = 50
    write_record(res, rec)
    write_record(res, make_record(scores, method="evil", card={"name": "evil", "paper": "javascript:alert(1)"}))
    boards = load_boards(res)
    build_site(boards, tmp_path / "site")
    pages = {e.name: (tmp_path / "site" / "methods" / boards[0].slug / f"{e.key}.html").read_text()
             for e in boards[0].entries}
    page = pages["diff"]
    for text in ("a diffusion model", '<a href="https://example.org/paper"', "50 sampling steps instead of 1000",
                 "steps = 50", "<dt>training time</dt><dd>120.0 s</dd>", "<dt>predict time per case</dt><dd>2.500 s",
                 "<dt>NFE per case</dt><dd>50 (", "<dt>stochastic</dt><dd>yes</dd>"):
        assert text in page, text
    assert "NFE" not in pages["evil"] and 'href="javascript' not in pages["evil"]
    assert "javascript:alert(1)" in pages["evil"]  # shown as text
    assert "No thumbnails in these records" in (tmp_path / "site" / "tasks" / f"{boards[0].slug}.html").read_text()


def test_every_table_on_every_page_has_its_csv(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import build_site

    res = tmp_path / "res"
    demo_results(res, n_cases=12, methods={**DEMO_METHODS, "=cmd()": (-1.0, 0.5, 0.1)})
    build_site(load_boards(res), tmp_path / "site", images=False)
    pages = sorted((tmp_path / "site").rglob("*.html"))
    assert len(pages) == 1 + 1 + 4  # index, one task, four methods
    checked = 0
    for page in pages:
        html = page.read_text()
        tables = re.findall(r'<table class="sortable" id="([^"]+)">(.*?)</table>\s*</div>\s*<p class="csv">'
                            r'<a class="csv-link" href="([^"]+)" download>', html, re.S)
        assert len(tables) == html.count('<table class="sortable"') > 0, page
        for table_id, body, href in tables:
            rows = list(csv.reader(io.StringIO((page.parent / href).read_text())))
            assert len(rows) - 1 == body.split("<tbody>")[1].count("<tr>"), (page, table_id)
            if table_id in ("overview", "summary", "cases") or table_id.startswith("m-"):
                heads = re.findall(r"<th [^>]*>([^<]*)</th>", body)
                assert rows[0] == heads
            checked += 1
    assert checked > 10
    text = "".join(p.read_text() for p in (tmp_path / "site" / "csv").rglob("*.csv"))
    assert ",=cmd()" not in text and "'=cmd()" in text  # spreadsheet formulas stay text
    cases = list(csv.DictReader(io.StringIO((tmp_path / "site" / "csv" / load_boards(res)[0].slug / "cases.csv")
                                            .read_text())))
    assert {r["method"] for r in cases} == {"unet", "pix2pix", "linear", "'=cmd()"}
    assert min(float(r["value"]) for r in cases) < 0  # negative numbers are not mistaken for formulas


def test_perception_distortion_plot_when_lpips_is_present(tmp_path: Path) -> None:
    from cmsbench.leaderboard.site import build_site

    res = tmp_path / "res"
    for k, name in enumerate(("sharp", "smooth")):
        scores = {f"c{i}": {"brain": {"psnr": 25.0 + k + 0.1 * i}, "global": {"lpips": 0.2 - 0.05 * k + 0.01 * i}}
                  for i in range(8)}
        write_record(res, make_record(scores, method=name))
    write_record(res, make_record({f"c{i}": {"brain": {"psnr": 20.0 + i}} for i in range(8)}, method="x",
                                  task="other"))
    build_site(load_boards(res), tmp_path / "site", images=False)
    with_lpips = next(b for b in load_boards(res) if b.task == "brats_flair")
    page = (tmp_path / "site" / "tasks" / f"{with_lpips.slug}.html").read_text()
    assert '<svg xmlns="http://www.w3.org/2000/svg" class="pd-plot"' in page and 'data-points="2"' in page
    other = next(b for b in load_boards(res) if b.task == "other")
    page = (tmp_path / "site" / "tasks" / f"{other.slug}.html").read_text()
    assert 'id="perception-distortion"' in page and "--metric lpips" in page


def test_task_page_shows_the_udpet_caveat(tmp_path: Path) -> None:
    """A mode without official code says so where its numbers are shown (issue 13)."""
    from cmsbench.leaderboard.aggregate import load_boards
    from cmsbench.leaderboard.site import build_site
    from cmsbench.testing.synthetic import demo_results

    demo_results(tmp_path / "res", n_cases=6, task="ldpet", mode="udpet",
                 convention={"evaluator": "UDPET / ULD-PET challenge", "mode": "udpet"})
    index = build_site(load_boards(tmp_path / "res"), tmp_path / "site", images=False)
    pages = "".join(p.read_text() for p in (index.parent / "tasks").glob("*.html"))
    assert "not checked against official code" in pages

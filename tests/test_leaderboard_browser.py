"""The generated site in headless Chromium: tables and images render, sorting works; a screenshot is kept."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest

from cmsbench.leaderboard.aggregate import load_boards
from cmsbench.testing.synthetic import demo_results, demo_with_images, make_record, write_record

CANDIDATES = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def find_chromium() -> str | None:
    explicit = os.environ.get("CHROMIUM")
    if explicit and shutil.which(explicit):
        return shutil.which(explicit)
    for name in CANDIDATES:
        path = shutil.which(name)
        if path:
            return path
    return None


def run_chromium(binary: str, profile: Path, *args: str, timeout: int = 90) -> subprocess.CompletedProcess[str]:
    cmd = [
        binary,
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={profile}",
        *args,
    ]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)


def keep_artifact(path: Path) -> None:
    """Copy a screenshot to $CMSBENCH_ARTIFACTS (a folder; '1'/'true'/'yes' mean ./artifacts)."""
    target = os.environ.get("CMSBENCH_ARTIFACTS")
    if not target:
        return
    folder = Path("artifacts") if target.lower() in ("1", "true", "yes") else Path(target)
    folder.mkdir(parents=True, exist_ok=True)
    shutil.copy2(path, folder / path.name)


def overview_methods(dom: str) -> list[str]:
    table = re.search(r'<table class="sortable" id="overview"[^>]*>(.*?)</table>', dom, re.S)
    assert table, "no overview table in the DOM"
    body = table.group(1).split("<tbody>")[1]
    return re.findall(r'<tr><td[^>]*><a href="[^"]*">([^<]*)</a>', body)


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list]:
    tmp = tmp_path_factory.mktemp("browser")
    res = tmp / "res"
    demo_results(res, n_cases=20)
    demo_with_images(res, tmp / "data", n_subjects=8)
    scores = {f"c{i}": {"brain": {"psnr": 20.0 + i}} for i in range(5)}
    write_record(res, make_record(scores, method="<script>document.title='pwned'</script>", test_hash="aaaa"))
    boards = load_boards(res)
    from cmsbench.leaderboard.site import build_site

    build_site(boards, tmp / "site", images_per_method=2)
    return tmp / "site", boards


@pytest.fixture(scope="module")
def chromium() -> str:
    binary = find_chromium()
    if binary is None:
        pytest.skip("no chromium binary found (apt-get install chromium, or set CHROMIUM=/path/to/chrome)")
    return binary


def test_site_renders_sorts_and_shows_images_in_chromium(
    chromium: str, site: tuple[Path, list], tmp_path: Path
) -> None:
    binary = chromium
    root, boards = site
    profile = tmp_path / "profile"
    phantom = next(b for b in boards if b.key.data_kind == "phantom" and b.main)
    page = (root / "tasks" / f"{phantom.slug}.html").resolve()
    default_order = [phantom.entry(k).label for k in phantom.metric(phantom.main_region, phantom.main_metric).order]

    # unsorted page: rows in the aggregation's order (best first), the table and the box plot loaded
    dom = run_chromium(binary, profile, "--dump-dom", page.as_uri()).stdout
    assert overview_methods(dom) == default_order
    assert 'data-loaded="yes"' in dom and 'data-loaded="no"' not in dom

    # #sort=method sorts by name; #sort=mean (ascending) puts the worst PSNR first
    dom = run_chromium(binary, profile, "--dump-dom", page.as_uri() + "#sort=method").stdout
    assert overview_methods(dom) == sorted(default_order, key=str.lower)
    assert 'data-sorted-by="method"' in dom and 'aria-sort="ascending"' in dom
    dom = run_chromium(binary, profile, "--dump-dom", page.as_uri() + "#sort=mean").stdout
    assert overview_methods(dom) == default_order[::-1]
    dom = run_chromium(binary, profile, "--dump-dom", page.as_uri() + "#sort=mean:desc").stdout
    assert overview_methods(dom) == default_order and 'aria-sort="descending"' in dom

    # a method page with case images: every image (box plots and the case grid) loads
    real = next(b for b in boards if b.key.data_kind == "real")
    method_page = (root / "methods" / real.slug / f"{real.entries[0].key}.html").resolve()
    dom = run_chromium(binary, profile, "--dump-dom", method_page.as_uri()).stdout
    assert 'id="case-grid"' in dom
    loaded = re.findall(r'<img[^>]*data-loaded="(yes|no)"', dom)
    assert loaded and set(loaded) == {"yes"}, loaded
    assert re.search(r'<table class="sortable" id="cases"', dom)

    # the injected name stays text: the title is not rewritten, the DOM shows the escaped name
    evil = next(b for b in boards if b.key.split_hash == "aaaa")
    evil_page = (root / "methods" / evil.slug / f"{evil.entries[0].key}.html").resolve()
    dom = run_chromium(binary, profile, "--dump-dom", evil_page.as_uri()).stdout
    title = re.search(r"<title>(.*?)</title>", dom, re.S).group(1)
    assert title.startswith("&lt;script&gt;document.title=") and title != "pwned"
    assert "&lt;script&gt;document.title" in dom

    # screenshots (kept as test artifacts) are real renderings, not blank pages
    from matplotlib.image import imread

    for name, url in (("leaderboard_task.png", page.as_uri()), ("leaderboard_method.png", method_page.as_uri())):
        shot = tmp_path / name
        out = run_chromium(binary, profile, f"--screenshot={shot}", "--window-size=1280,900", url)
        assert shot.exists(), out.stderr[-2000:]
        pixels = imread(shot)
        assert pixels.shape[:2] == (900, 1280) and float(np.std(pixels[..., :3])) > 0.05
        keep_artifact(shot)

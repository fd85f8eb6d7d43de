"""The generated site in headless Chromium: tables and images render, sorting works; screenshots are kept.

The second test drives Chromium through the DevTools protocol over a pipe (``--remote-debugging-pipe``; no
driver, no extra package) to see console errors and each image's natural size: the index and a task page of
real runs load without console errors, the overview matrix has one row per method, and every thumbnail of the
case grids loads; deleting a thumbnail makes those checks fail. Screenshots are written under the test's tmp
folder (the path is printed) and copied to ``$CMSBENCH_ARTIFACTS`` when set.
"""

from __future__ import annotations

import json
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


# ------------------------------------------------------------------ the DevTools protocol over a pipe
class Page:
    """What one page load showed: console errors, what the page reports about itself, a screenshot."""

    def __init__(self, url: str, errors: list[str], facts: dict, screenshot: Path | None) -> None:
        self.url, self.errors, self.facts, self.screenshot = url, errors, facts, screenshot


#: Evaluated in the page after its load event: images (natural size), overview matrices, task overview.
PAGE_FACTS = """(() => {
  const rows = (t) => t ? Array.from(t.tBodies[0].rows).map(r => Array.from(r.cells).map(c => c.textContent.trim())) : null;
  return {
    title: document.title,
    images: Array.from(document.images).map(i => ({src: i.getAttribute("src"), w: i.naturalWidth,
      thumb: i.classList.contains("thumb"), case: i.getAttribute("data-case"), method: i.getAttribute("data-method"),
      view: i.closest("table") ? i.closest("table").className : ""})),
    matrices: Array.from(document.querySelectorAll("table[id^='matrix-']")).map(t => ({id: t.id, rows: rows(t)})),
    overview: rows(document.getElementById("overview")),
    conventions: document.querySelectorAll("dl.conventions dt").length,
    rawConvention: document.querySelector("details#convention-json pre") ? true : false,
    csvLinks: Array.from(document.querySelectorAll("a.csv-link")).map(a => a.getAttribute("href")),
    tables: document.querySelectorAll("table.sortable").length,
  };
})()"""


class Browser:
    """Headless Chromium driven through ``--remote-debugging-pipe`` (no driver, no network, no extra package)."""

    def __init__(self, binary: str, profile: Path, timeout: float = 60.0) -> None:
        self.binary, self.profile, self.timeout = binary, profile, timeout
        self._id = 0
        self._buf = b""

    def __enter__(self) -> Browser:
        chrome_in, self._to_chrome = os.pipe()  # Chromium reads commands on fd 3
        self._from_chrome, chrome_out = os.pipe()  # and writes replies and events on fd 4

        def fds() -> None:
            os.dup2(chrome_in, 3)
            os.dup2(chrome_out, 4)

        self.proc = subprocess.Popen(
            [self.binary, "--headless", "--no-sandbox", "--disable-gpu", "--remote-debugging-pipe", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync",
             f"--user-data-dir={self.profile}", "about:blank"],
            pass_fds=(3, 4), preexec_fn=fds, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        os.close(chrome_in)
        os.close(chrome_out)
        return self

    def __exit__(self, *exc: object) -> None:
        try:
            self._send("Browser.close")
        except OSError:
            pass
        try:
            self.proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)

    def _send(self, method: str, params: dict | None = None, session: str | None = None) -> int:
        self._id += 1
        msg: dict = {"id": self._id, "method": method, "params": params or {}}
        if session:
            msg["sessionId"] = session
        os.write(self._to_chrome, json.dumps(msg).encode() + b"\0")
        return self._id

    def _recv(self) -> dict:
        import select
        import time

        end = time.monotonic() + self.timeout
        while b"\0" not in self._buf:
            ready, _, _ = select.select([self._from_chrome], [], [], max(0.0, end - time.monotonic()))
            if not ready:
                raise TimeoutError("no answer from chromium")
            chunk = os.read(self._from_chrome, 1 << 20)
            if not chunk:
                raise EOFError("chromium closed the pipe")
            self._buf += chunk
        msg, self._buf = self._buf.split(b"\0", 1)
        return json.loads(msg)

    def call(self, method: str, params: dict | None = None, session: str | None = None,
             events: list | None = None) -> dict:
        want = self._send(method, params, session)
        while True:
            msg = self._recv()
            if msg.get("id") == want:
                if "error" in msg:
                    raise RuntimeError(f"{method}: {msg['error']}")
                return msg.get("result", {})
            if events is not None:
                events.append(msg)

    def visit(self, url: str, screenshot: Path | None = None, width: int = 1280) -> Page:
        """Load ``url`` in a fresh tab; console errors, :data:`PAGE_FACTS` and a full-page screenshot."""
        events: list = []
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        for domain in ("Runtime.enable", "Log.enable", "Page.enable"):
            self.call(domain, session=session, events=events)
        self.call("Emulation.setDeviceMetricsOverride",
                  {"width": width, "height": 900, "deviceScaleFactor": 1, "mobile": False}, session, events)
        self.call("Page.navigate", {"url": url}, session, events)
        while not any(e.get("method") == "Page.loadEventFired" for e in events):
            events.append(self._recv())
        facts = self.call("Runtime.evaluate", {"expression": PAGE_FACTS, "returnByValue": True}, session,
                          events)["result"]["value"]
        if screenshot is not None:
            import base64

            size = self.call("Page.getLayoutMetrics", session=session, events=events)["cssContentSize"]
            clip = {"x": 0, "y": 0, "width": width, "height": min(8000, int(size["height"])), "scale": 1}
            shot = self.call("Page.captureScreenshot", {"format": "png", "clip": clip, "captureBeyondViewport": True},
                             session, events)
            screenshot.write_bytes(base64.b64decode(shot["data"]))
        errors = []
        for e in events:
            p = e.get("params", {})
            if e.get("method") == "Runtime.exceptionThrown":
                errors.append("exception: " + json.dumps(p.get("exceptionDetails", {}))[:500])
            elif e.get("method") == "Runtime.consoleAPICalled" and p.get("type") in ("error", "assert"):
                errors.append("console.error: " + json.dumps(p.get("args", []))[:500])
            elif e.get("method") == "Log.entryAdded" and p.get("entry", {}).get("level") == "error":
                errors.append(f"{p['entry'].get('text')} {p['entry'].get('url', '')}")
        self.call("Target.closeTarget", {"targetId": target}, events=events)
        return Page(url, errors, facts, screenshot)


def assert_grid_images_load(page: Page, methods: list[str], n_cases: int) -> None:
    """Every method has ``n_cases`` thumbnails in the side-by-side view and in its case grid, all loaded."""
    thumbs = [i for i in page.facts["images"] if i["thumb"]]
    broken = [i["src"] for i in thumbs if not i["w"] > 0]
    assert not broken, f"grid images that did not load: {broken}"
    for view in ("side-by-side", "grid"):
        shown = {m: sum(1 for i in thumbs if i["method"] == m and view in i["view"].split()) for m in methods}
        assert shown == {m: n_cases for m in methods}, f"{view} thumbnails per method: {shown}"


def assert_no_console_errors(page: Page) -> None:
    assert page.errors == [], f"console errors on {page.url}: {page.errors}"


@pytest.fixture(scope="module")
def run_site(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    """identity, linear and poly2 run by ``cmsbench run`` (no extra flags) on a tiny BraTS layout, then the site."""
    from cmsbench.cli import main
    from cmsbench.testing.layouts import write_brats

    tmp = tmp_path_factory.mktemp("runs")
    write_brats(tmp / "data", n=24)
    for method in ("identity", "linear", "poly2"):
        assert main(["run", "--task", "brats_flair", "--method", method, "--data-root", str(tmp / "data"),
                     "--results", str(tmp / "res"), "--quiet"]) == 0
    assert main(["leaderboard", "--results", str(tmp / "res"), "--out", str(tmp / "site")]) == 0
    return tmp / "site", tmp / "res", load_boards(tmp / "res")


def test_index_and_task_page_load_cleanly_with_loaded_grid_images(
    chromium: str, run_site: tuple[Path, Path, list], tmp_path: Path
) -> None:
    from cmsbench.leaderboard.site import build_site

    root, res, boards = run_site
    board = boards[0]
    methods = sorted(e.key for e in board.entries)
    labels = sorted(e.label for e in board.entries)
    assert labels == ["identity", "linear", "poly2"]
    task_url = (root / "tasks" / f"{board.slug}.html").resolve().as_uri()
    with Browser(chromium, tmp_path / "profile") as browser:
        index = browser.visit((root / "index.html").resolve().as_uri(), tmp_path / "leaderboard_index.png")
        task = browser.visit(task_url, tmp_path / "leaderboard_task_thumbnails.png")
    for page in (index, task):
        assert_no_console_errors(page)
        print(f"screenshot of {page.url}: {page.screenshot}")
        keep_artifact(page.screenshot)
        pixels = __import__("matplotlib.image", fromlist=["imread"]).imread(page.screenshot)
        assert pixels.shape[1] == 1280 and float(np.std(pixels[..., :3])) > 0.05

    # the overview matrix: one row per method, each cell a mean ± CI with the rank, linked to the task page
    (matrix,) = index.facts["matrices"]
    assert matrix["id"] == "matrix-real"
    assert sorted(row[0] for row in matrix["rows"]) == labels
    assert all("±" in row[1] and "rank" in row[1] for row in matrix["rows"])
    assert all(i["w"] > 0 for i in index.facts["images"])
    assert index.facts["csvLinks"] == ["csv/index/matrix-real.csv"]

    # the task page: conventions in words and in raw JSON, tables with CSV links, every grid image loaded
    assert task.facts["conventions"] >= 6 and task.facts["rawConvention"]
    assert len(task.facts["csvLinks"]) == task.facts["tables"]
    assert sorted(r[0] for r in task.facts["overview"]) == labels
    assert_grid_images_load(task, methods, n_cases=3)
    assert all(i["w"] > 0 for i in task.facts["images"])

    # a thumbnail deleted from the site: the image does not load and the check fails
    victim = next((root / "img" / board.slug / "thumbs").rglob("*.png"))
    saved = victim.read_bytes()
    victim.unlink()
    with Browser(chromium, tmp_path / "profile2") as browser:
        broken = browser.visit(task_url)
    with pytest.raises(AssertionError, match="did not load"):
        assert_grid_images_load(broken, methods, n_cases=3)
    with pytest.raises(AssertionError, match="console errors"):
        assert_no_console_errors(broken)
    victim.write_bytes(saved)

    # a thumbnail deleted beside its record: the rebuilt page lacks that image and the check fails
    record_thumb = next(res.rglob("*_thumbs/*.png"))
    record_thumb.unlink()
    rebuilt = tmp_path / "site2"
    build_site(load_boards(res), rebuilt)
    with Browser(chromium, tmp_path / "profile3") as browser:
        partial = browser.visit((rebuilt / "tasks" / f"{board.slug}.html").resolve().as_uri())
    assert_no_console_errors(partial)  # nothing broken on the page: the picture is missing, and said so
    with pytest.raises(AssertionError, match="thumbnails per method"):
        assert_grid_images_load(partial, methods, n_cases=3)

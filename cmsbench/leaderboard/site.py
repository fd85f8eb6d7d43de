"""The static HTML leaderboard: an overview across tasks, a sortable table per board, a page per method.

- ``index.html``: one matrix per data kind (real data and phantom data never share one), methods x tasks,
  each cell the task's main metric (mean ± CI half-width) and the method's rank, linked to the task page.
- ``tasks/<board>.html``: the board's tables (set-level metrics in a table of their own), its metric
  conventions in words (raw JSON behind a disclosure), the perception-distortion plots, example cases
  (the runs' thumbnails, :mod:`cmsbench.benchmark.thumbnails`) side by side across methods with one
  colour scale, and a case grid per method.
- ``methods/<board>/<method>.html``: the method's card (summary, paper, differences from the paper,
  options, version), its cost (training time, predict time per case, NFE of diffusion samplers), its
  scores and pictures.
- ``csv/``: every table of every page as CSV (linked under the table), plus each board's statistics and
  per-case scores at full precision.

Pages are rendered by jinja2 with autoescape on, so names, cards and options from a record are text,
never markup. Links are relative; the site opens from a plain file system with no server and no network
(no CDN: the sorting script and styles are inline). Box plots and case grids are matplotlib PNGs (Agg, no
pyplot state); the perception-distortion plots are inline SVG (:mod:`.svgplot`); thumbnails are copied from
beside the records into the site, so the site folder stands alone. Set-level metrics (FRD, ...) have their
own table with their own interval, apart from the per-case statistics, tests and ranks.
"""

from __future__ import annotations

import csv
import io
import json
import logging
import math
import re
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from cmsbench.errors import CmsbenchError
from cmsbench.leaderboard.aggregate import (
    ALPHA,
    CI_DESCRIPTION,
    CI_LEVEL,
    CI_METHOD,
    N_BOOT_RANKS,
    Board,
    Entry,
    MetricBoard,
    SetSummary,
    Summary,
    decimals_for,
    fmt,
    fmt_ci,
    higher_is_better,
    record_set_metrics,
)
from cmsbench.leaderboard.svgplot import Interval, Point, scatter_svg
from cmsbench.leaderboard.tables import (
    directions_text,
    escape_csv_text,
    fmt_set,
    metric_heading,
    set_decimals,
    to_csv,
)
from cmsbench.results import RunRecord

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
SITE_MARKER = ".cmsbench-site"


# ------------------------------------------------------------------------------------ table view-models
@dataclass
class Col:
    key: str
    label: str
    title: str = ""


@dataclass
class Td:
    text: str
    sort: str | None = None
    best: bool = False
    href: str | None = None
    sub: str | None = None  # a second, smaller line (the overview matrix's rank)
    title: str | None = None


@dataclass
class Table:
    id: str
    columns: list[Col]
    rows: list[list[Td]] = field(default_factory=list)
    csv: str | None = None  # link to the table as CSV, relative to the page
    csv_header: list[str] | None = None  # full-precision CSV instead of the shown text (optional)
    csv_rows: list[list[Any]] | None = None


def _num(v: float | None) -> str | None:
    """The raw number a column sorts on (None: sorts last)."""
    if v is None or (isinstance(v, float) and not math.isfinite(v)):
        return None
    return repr(float(v))


def _env() -> Any:
    import jinja2

    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(TEMPLATES)),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=False,
    )


def _figure(width: float, height: float) -> Any:
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=80, layout="constrained")


# ----------------------------------------------------------------------------------------- figures
def box_plot_methods(board: Board, mb: MetricBoard, path: Path) -> Path:
    """One box per method (best first) of a metric in one region."""
    fig = _figure(max(4.0, 1.1 * len(mb.order) + 2), 3.2)
    ax = fig.add_subplot()
    data = [list(board.entry(k).values(mb.region, mb.metric).values()) or [np.nan] for k in mb.order]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(mb.order) + 1), [_short(board.entry(k).label) for k in mb.order], rotation=20)
    ax.set_ylabel(metric_heading(mb.metric, mb.region) if mb.higher_is_better is None else
                  f"{mb.metric.upper()} ({mb.region}) {'↑' if mb.higher_is_better else '↓'}")
    ax.grid(axis="y", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def box_plot_regions(
    entry: Entry, metric: str, regions: Sequence[str], path: Path, board: Board | None = None
) -> Path:
    """One box per region of one metric for one method (the direction is ``board``'s when given)."""
    fig = _figure(max(4.0, 0.9 * len(regions) + 2), 3.0)
    ax = fig.add_subplot()
    data = [list(entry.values(r, metric).values()) or [np.nan] for r in regions]
    ax.boxplot(data, showmeans=True)
    ax.set_xticks(range(1, len(regions) + 1), list(regions), rotation=20)
    arrow = {True: " (higher is better)", False: " (lower is better)", None: ""}[
        board.higher_is_better(metric) if board else higher_is_better(metric)
    ]
    ax.set_ylabel(metric.upper() + arrow)
    ax.set_title(metric.upper(), fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path


def _short(text: str, n: int = 24) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"


def case_image_grid(record: RunRecord, path: Path, max_cases: int = 3) -> tuple[Path | None, list[str]]:
    """Inputs, target, prediction and |error| of a few test cases with the lesion outlined.

    Needs saved predictions (``case["prediction"]``) and the record's data root; otherwise returns
    ``(None, [reason])``. Problems with single cases are returned as notes, never raised.
    """
    notes: list[str] = []
    preds = [(cid, c.prediction) for cid, c in sorted(record.ok_cases().items()) if c.prediction]
    if not preds:
        return None, ["No image grid: the record has no saved predictions (run with --save-predictions)."]
    root = record.data.path
    if not root or not Path(root).exists():
        return None, [f"No image grid: the data root {root!r} of the record is not available on this machine."]
    try:
        from cmsbench.tasks.dataset import open_dataset
        from cmsbench.tasks.registry import get_task

        task_info = record.task
        task = get_task(task_info.name)
        if task_info.parameters:
            task = task.with_parameters(**task_info.parameters)
        if task_info.split_variant not in (None, "", "default"):
            task = task.with_split(task_info.split_variant)
        dataset = open_dataset(task, root)
    except Exception as exc:  # any failure: a note on the page, the site is still written
        return None, [f"No image grid: cannot open the dataset at {root} ({type(exc).__name__}: {exc})."]

    import nibabel as nib

    panels = []
    for cid, pred_path in preds:
        if len(panels) >= max_cases:
            break
        try:
            case = dataset.load_case(cid)
            if case.target is None:
                raise ValueError("the case has no target")
            target = np.asarray(case.target.data, dtype=np.float32)
            pred = np.asarray(nib.load(str(pred_path)).get_fdata(dtype=np.float32))
            if pred.ndim == 4 and pred.shape[3] == 1:
                pred = pred[..., 0]
            if pred.shape != target.shape:
                raise ValueError(f"prediction shape {pred.shape} differs from the target's {target.shape}")
            lesion = case.masks.get("lesion")
            panels.append(
                (
                    cid,
                    {k: np.asarray(v.data, dtype=np.float32) for k, v in case.inputs.items()},
                    target,
                    pred,
                    None if lesion is None else np.asarray(lesion, dtype=bool),
                )
            )
        except Exception as exc:
            notes.append(f"Case {cid}: not drawn ({type(exc).__name__}: {exc}).")
    if not panels:
        return None, notes or ["No image grid: no case could be drawn."]

    n_inputs = max(len(p[1]) for p in panels)
    ncols = n_inputs + 3
    fig = _figure(2.1 * ncols, 2.2 * len(panels))
    axes = fig.subplots(len(panels), ncols, squeeze=False)
    for row, (cid, inputs, target, pred, lesion) in enumerate(panels):
        z = int(np.argmax(lesion.sum(axis=(0, 1)))) if lesion is not None and lesion.any() else target.shape[2] // 2
        lo, hi = np.percentile(target, [1, 99])
        err = np.abs(pred - target)
        images = [(name, vol[:, :, z], *np.percentile(vol, [1, 99]), "gray") for name, vol in inputs.items()]
        images += [
            ("target", target[:, :, z], lo, hi, "gray"),
            ("prediction", pred[:, :, z], lo, hi, "gray"),
            ("|error|", err[:, :, z], 0.0, float(np.percentile(err, 99.5)) or 1.0, "magma"),
        ]
        for col in range(ncols):
            ax = axes[row][col]
            ax.axis("off")
            if col >= len(images):
                continue
            name, img, vmin, vmax, cmap = images[col]
            ax.imshow(np.rot90(img), cmap=cmap, vmin=vmin, vmax=vmax if vmax > vmin else vmin + 1)
            if lesion is not None and lesion[:, :, z].any():
                ax.contour(np.rot90(lesion[:, :, z].astype(float)), levels=[0.5], colors="cyan", linewidths=0.8)
            ax.set_title(f"{cid}\n{name}" if col == 0 else name, fontsize=8)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    return path, notes


def _direction_words(board: Board, metric: str) -> str:
    return {True: "↑ higher is better", False: "↓ lower is better", None: "(direction unknown)"}[
        board.higher_is_better(metric)]


def _interval(s: Summary | SetSummary) -> Interval:
    if isinstance(s, SetSummary):
        return Interval(s.value, s.ci_low, s.ci_high)
    return Interval(s.mean, s.ci_low, s.ci_high)


def _pd_axes(board: Board) -> tuple[str, str, str | None] | None:
    """(distortion metric, its region, LPIPS metric) of the board's perception-distortion plot."""
    rms = board.regions_metrics()
    metrics = board.metrics()
    distortion = "psnr" if "psnr" in metrics else board.main_metric
    region = board.main_region if (board.main_region, distortion) in rms else next(
        (r for r, m in rms if m == distortion), None)
    if region is None:
        return None
    lpips = "lpips" if "lpips" in metrics else next((m for m in metrics if m.startswith("lpips")), None)
    return distortion, region, lpips


def perception_distortion_plots(board: Board) -> list[dict[str, Any]]:
    """Inline SVG plots of distortion (PSNR, else the main metric) against perception, one point per method
    with both 95% intervals: LPIPS (per case, the leaderboard's CI) and FRD (set-level, its bootstrap
    interval) when the records hold them. Each plot: ``{"id", "svg" (markup), "caption", "missing"}``."""
    from markupsafe import Markup

    axes = _pd_axes(board)
    if axes is None:
        return []
    distortion, d_region, lpips = axes
    dist = board.metric(d_region, distortion)
    y_label = f"{distortion.upper()} ({d_region}) {_direction_words(board, distortion)} — distortion"
    perception: list[tuple[str, str, str, dict[str, Summary | SetSummary]]] = []
    if lpips is not None:
        rms = board.regions_metrics()
        lp_region = d_region if (d_region, lpips) in rms else next(r for r, m in rms if m == lpips)
        mb = board.metric(lp_region, lpips)
        perception.append((lpips, lp_region, f"mean over cases with its {CI_LEVEL:.0%} CI ({CI_METHOD})",
                           dict(mb.stats)))
    set_rms = board.set_metrics()
    frd = next(((r, m) for r, m in set_rms if m == "frd" and r == d_region), None) or next(
        ((r, m) for r, m in set_rms if m == "frd"), None)
    if frd is not None:
        perception.append((frd[1], frd[0], "set-level value over the test set with its bootstrap interval",
                           {e.key: e.set_score(*frd) for e in board.entries}))
    plots = []
    for metric, region, how, stats in perception:
        points, missing = [], []
        for e in board.entries:
            x, y = stats[e.key], dist.stats[e.key]
            px, py = _interval(x), _interval(y)
            if not (px.finite() and py.finite()):
                missing.append(e.label)
                continue
            note = (f"{e.label}: {metric.upper()} {_fmt_interval(px)}, {distortion.upper()} {_fmt_interval(py)}"
                    f" (n = {y.n})")
            points.append(Point(e.key, e.label, px, py, note))
        x_label = f"{metric.upper()} ({region}) {_direction_words(board, metric)} — perception"
        svg = scatter_svg(points, x_label, y_label, css_class="pd-plot",
                          data={"x-metric": metric, "x-region": region, "y-metric": distortion,
                                "y-region": d_region})
        if not svg:
            continue
        plots.append({
            "id": f"pd-{_safe(metric)}",
            "svg": Markup(svg),  # every text in it is escaped by scatter_svg
            "caption": (f"One point per method: {distortion.upper()} in {d_region} (mean over cases, "
                        f"{CI_LEVEL:.0%} CI) against {metric.upper()} in {region} ({how}); bars: the intervals."),
            "missing": missing,
        })
    return plots


def _fmt_interval(i: Interval) -> str:
    d = 4 if abs(i.value) < 10 else 2
    if math.isfinite(i.low) and math.isfinite(i.high):
        return f"{fmt(i.value, d)} [{fmt(i.low, d)}, {fmt(i.high, d)}]"
    return fmt(i.value, d)


# --------------------------------------------------------------------------------------------- CSV
def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _csv_cell(value: Any) -> str:
    """A CSV cell: numbers as they are, text guarded against spreadsheet formulas."""
    if value is None:
        return ""
    if isinstance(value, float):
        return "" if math.isnan(value) else repr(value)
    if isinstance(value, (int, bool)):
        return str(value)
    text = str(value)
    return text if _is_number(text) else escape_csv_text(text)


def table_csv(table: Table) -> str:
    """The table as CSV: its full-precision rows when it has them, else the text shown on the page."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    if table.csv_rows is not None:
        writer.writerow([_csv_cell(h) for h in (table.csv_header or [])])
        for row in table.csv_rows:
            writer.writerow([_csv_cell(v) for v in row])
    else:
        writer.writerow([_csv_cell(c.label) for c in table.columns])
        for row in table.rows:
            writer.writerow([_csv_cell(td.text + (f" ({td.sub})" if td.sub else "")) for td in row])
    return buf.getvalue()


def _save_csv(table: Table, out: Path, folder: str, up: str) -> Table:
    """Write ``table`` to ``out/csv/<folder>/<id>.csv`` and link it from the page (``up``: path to the root)."""
    rel = f"csv/{folder}/{_safe(table.id)}.csv"
    (out / rel).parent.mkdir(parents=True, exist_ok=True)
    (out / rel).write_text(table_csv(table))
    table.csv = up + rel
    return table


# ------------------------------------------------------------------------------------- conventions
#: Labels of the convention fields the scorer and the compatibility modes write, in display order.
CONVENTION_LABELS = {
    "evaluator": "Official evaluator",
    "source": "Official source",
    "units": "Units",
    "normalisation": "Normalisation",
    "data_range": "Data range (PSNR peak, SSIM range)",
    "ssim": "SSIM flavour",
    "psnr_perfect": "PSNR of a perfect prediction",
    "mask": "Mask",
    "regions": "Regions",
    "per_lesion": "Per-lesion scores",
    "per_slice": "Per-slice scores",
    "ct_windows": "CT windows",
    "windows": "Windows",
    "suv": "SUV (first case; differs per case)",
}
#: Fields shown only in the raw JSON (the words above already say them).
CONVENTION_HIDDEN = frozenset({"mode", "ssim_config"})


def _words(value: Any) -> str:
    if isinstance(value, str):
        return value
    if isinstance(value, dict) and all(not isinstance(v, (dict, list)) for v in value.values()):
        return ", ".join(f"{k} {v}" for k, v in value.items())
    return json.dumps(value, sort_keys=True)


def mode_description(name: str) -> dict[str, Any]:
    """A scoring mode's summary, official source and how it was checked (from the installed registry)."""
    try:
        from cmsbench.benchmark.metrics.registry import get_mode

        mode = get_mode(name)
    except Exception:  # noqa: BLE001 - a plugin mode not installed here: say so
        return {"name": name, "known": False, "compat": name != "default", "summary": "", "source": "",
                "verified": ""}
    return {"name": mode.name, "known": True, "compat": mode.name != "default", "summary": mode.summary,
            "source": mode.source, "verified": mode.verified}


def convention_items(convention: Any) -> list[dict[str, Any]]:
    """The convention as labelled sentences: ``{"label", "text"}`` or ``{"label", "entries": [(k, text)]}``."""
    if not isinstance(convention, dict):
        return [{"label": "Convention", "text": "not recorded" if convention is None else _words(convention),
                 "entries": []}]
    keys = [k for k in CONVENTION_LABELS if k in convention]
    keys += sorted(k for k in convention if k not in CONVENTION_LABELS and k not in CONVENTION_HIDDEN)
    out = []
    for key in keys:
        value = convention[key]
        label = CONVENTION_LABELS.get(key) or (key.upper() if len(key) <= 8 else key.replace("_", " ").capitalize())
        if isinstance(value, dict) and any(isinstance(v, (dict, str)) for v in value.values()):
            out.append({"label": label, "text": None, "entries": [(str(k), _words(v)) for k, v in value.items()]})
        else:
            out.append({"label": label, "text": _words(value), "entries": []})
    return out


# -------------------------------------------------------------------------------------- thumbnails
_PNG = b"\x89PNG\r\n\x1a\n"
_MAX_THUMB_BYTES = 2_000_000


def _thumb_source(record_path: Path | None, rel: str) -> Path | None:
    """The thumbnail file a record names, only if it is a PNG inside the record's folder."""
    if record_path is None or not rel:
        return None
    parts = PurePosixPath(rel.replace("\\", "/"))
    if parts.is_absolute() or ".." in parts.parts or parts.suffix.lower() != ".png":
        return None
    folder = record_path.parent.resolve()
    path = (folder / parts).resolve()
    try:
        path.relative_to(folder)
        if not path.is_file() or path.stat().st_size > _MAX_THUMB_BYTES:
            return None
        with path.open("rb") as handle:
            if handle.read(8) != _PNG:
                return None
    except (OSError, ValueError):
        return None
    return path


@dataclass
class Thumb:
    case: str
    src: str  # path relative to the site root
    info: dict[str, Any] | None


def collect_thumbnails(board: Board, out: Path) -> tuple[dict[str, dict[str, Thumb]], list[str]]:
    """Copy each entry's thumbnails (of its first seed) into the site; entry key -> case -> :class:`Thumb`."""
    from cmsbench.benchmark.thumbnails import file_name, read_info

    thumbs: dict[str, dict[str, Thumb]] = {}
    notes: list[str] = []
    for e in board.entries:
        path, rec = e.records[0]
        found: dict[str, Thumb] = {}
        for cid, case in sorted(rec.ok_cases().items()):
            if not case.thumbnail:
                continue
            src = _thumb_source(path, case.thumbnail)
            if src is None:
                notes.append(f"{e.label}, case {cid}: thumbnail {case.thumbnail!r} is not a PNG beside its record "
                             "(moved or deleted?); not shown.")
                continue
            rel = f"img/{board.slug}/thumbs/{e.key}/{file_name(cid)}"
            (out / rel).parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(src, out / rel)
            found[cid] = Thumb(cid, rel, read_info(src))
        if found:
            thumbs[e.key] = found
            if len(e.records) > 1:
                notes.append(f"{e.label}: thumbnails show seed {rec.seed} of {len(e.records)}.")
    return thumbs, notes


def _scale_text(infos: Sequence[dict[str, Any] | None]) -> tuple[dict[str, str] | None, bool]:
    """The shared colour scale of one case's thumbnails in words, and whether all of them agree."""
    known = [i for i in infos if i]
    if not known:
        return None, True
    first = known[0]
    same = all(i.get("window") == first.get("window") and i.get("error_max") == first.get("error_max")
               for i in known)
    try:
        lo, hi = (float(v) for v in first.get("window", [])[:2])
        top = float(first.get("error_max", float("nan")))
    except (TypeError, ValueError):
        return None, same
    units = f" {first['units']}" if first.get("units") else ""
    where = first.get("slice") if isinstance(first.get("slice"), dict) else {}
    return {
        "grey": f"target and prediction {lo:.4g} to {hi:.4g}{units} ({first.get('window_from', '')})",
        "error": f"|error| 0 to {top:.4g}{units} ({first.get('error_from', '')})",
        "slice": f"axial slice {where.get('index')} of {where.get('of')}, through the {where.get('through', 'middle')}",
    }, same


def _panels_text(infos: Sequence[dict[str, Any] | None]) -> str:
    known = [i for i in infos if i and i.get("panels")]
    return " · ".join(str(p) for p in known[0]["panels"]) if known else ""


def thumbnail_views(board: Board, thumbs: dict[str, dict[str, Thumb]], up: str,
                    method_href: dict[str, str]) -> dict[str, Any]:
    """The task page's pictures: per case (rows = methods, one colour scale) and per method (rows = cases)."""
    order = board.metric(board.main_region, board.main_metric).order
    cases = sorted({cid for per in thumbs.values() for cid in per})
    by_case = []
    for cid in cases:
        rows = []
        for key in order:
            t = thumbs.get(key, {}).get(cid)
            rows.append({"label": board.entry(key).label, "href": method_href[key], "key": key,
                         "src": up + t.src if t else None})
        infos = [thumbs.get(k, {}).get(cid).info for k in order if cid in thumbs.get(k, {})]
        scale, same = _scale_text(infos)
        by_case.append({"case": cid, "rows": rows, "scale": scale, "same": same})
    by_method = []
    for key in order:
        if key not in thumbs:
            continue
        per = thumbs[key]
        by_method.append({"label": board.entry(key).label, "href": method_href[key], "key": key,
                          "images": [{"case": cid, "src": up + per[cid].src, "scale": _scale_text([per[cid].info])[0]}
                                     for cid in sorted(per)]})
    missing = [board.entry(k).label for k in order if k not in thumbs]
    infos = [t.info for per in thumbs.values() for t in per.values()]
    return {"cases": by_case, "methods": by_method, "missing": missing, "panels": _panels_text(infos)}


# ------------------------------------------------------------------------------------ the overview
def overview_matrices(boards: Sequence[Board], method_pages: dict[tuple[str, str], str]) -> list[dict[str, Any]]:
    """One matrix per data kind (real first): rows = methods, columns = the tasks' main tables.

    A cell: the task's main metric (mean ± CI half-width) and the method's rank by mean with its bootstrap
    interval, linked to the task page. Rows are ordered by the mean rank over the tasks a method ran on.
    """
    kinds = sorted({b.key.data_kind for b in boards if b.main}, key=lambda k: (k != "real", k))
    out = []
    for kind in kinds:
        cols = sorted((b for b in boards if b.main and b.key.data_kind == kind), key=lambda b: b.task)
        labels: list[str] = []
        for b in cols:
            for e in b.entries:
                if e.label not in labels:
                    labels.append(e.label)
        cells: dict[str, dict[str, tuple[Board, Any, Any, int]]] = {lbl: {} for lbl in labels}
        for b in cols:
            mb = b.metric(b.main_region, b.main_metric)
            d = decimals_for(mb.stats.values())
            for e in b.entries:
                cells[e.label][b.slug] = (b, e, mb, d)

        mean_ranks = {}
        for label in labels:
            r = [c[2].ranks[c[1].key].rank_atr for c in cells[label].values() if c[1].key in c[2].ranks]
            mean_ranks[label] = float(np.mean(r)) if r else float("nan")
        labels.sort(key=lambda lbl: (math.isnan(mean_ranks[lbl]), mean_ranks[lbl], lbl.lower()))
        columns = [Col("method", "Method")]
        for b in cols:
            columns.append(Col(_safe(b.slug), f"{b.task}: {metric_heading(b.main_metric, b.main_region, b)}",
                               f"{b.title()}; mean ± 95% CI half-width; rank by mean (95% bootstrap interval)"))
        columns += [Col("mean_rank", "Mean rank over tasks", "mean of the ranks by mean over the tasks run"),
                    Col("n_tasks", "Tasks")]
        table = Table(f"matrix-{_safe(kind)}", columns)
        table.csv_header = ["method"] + [f"{b.task} {h}" for b in cols for h in (
            f"{b.main_metric} ({b.main_region}) mean", "ci_low", "ci_high", "rank_by_mean", "rank_low",
            "rank_high", "n")] + ["mean_rank_over_tasks", "n_tasks"]
        table.csv_rows = []
        for label in labels:
            first = next(iter(cells[label].values()))
            row = [Td(label, label.lower(), href=method_pages.get((first[0].slug, first[1].key)))]
            csv_row: list[Any] = [label]
            for b in cols:
                c = cells[label].get(b.slug)
                if c is None:
                    row.append(Td("–", None, title="not run on this task"))
                    csv_row += [None] * 7
                    continue
                _, e, mb, d = c
                s = mb.stats[e.key]
                r = mb.ranks.get(e.key)
                sub = (f"rank {r.rank_atr:g} of {len(mb.order)} ({r.atr_low:g}–{r.atr_high:g})" if r
                       else "not ranked")
                row.append(Td(fmt_ci(s, d), _num(s.mean), best=mb.best == e.key, href=f"tasks/{b.slug}.html",
                              sub=sub, title=f"95% CI [{fmt(s.ci_low, d)}, {fmt(s.ci_high, d)}], n = {s.n}"))
                csv_row += [s.mean, s.ci_low, s.ci_high, *((r.rank_atr, r.atr_low, r.atr_high) if r
                                                           else (None, None, None)), s.n]
            mr = mean_ranks[label]
            row += [Td(f"{mr:.2f}" if math.isfinite(mr) else "–", _num(mr)),
                    Td(str(len(cells[label])), _num(len(cells[label])))]
            csv_row += [mr, len(cells[label])]
            table.rows.append(row)
            table.csv_rows.append(csv_row)
        out.append({"kind": kind, "table": table, "n_methods": len(labels), "n_tasks": len(cols)})
    return out


# -------------------------------------------------------------------------------------------- pages
def _overview_table(board: Board, method_href: dict[str, str]) -> Table:
    mb = board.metric(board.main_region, board.main_metric)
    d = decimals_for(mb.stats.values())
    t = Table(
        "overview",
        [
            Col("method", "Method"),
            Col("mean", f"{mb.metric.upper()} mean ± CI half-width", "mean over cases"),
            Col("ci", "95% CI"),
            Col("group", "Group", "1 = not significantly different from the best"),
            Col("mean_rank", "Mean rank", "rank-then-aggregate"),
            Col("rank_interval", "Rank 95%", "bootstrap"),
            Col("rank_by_mean", "Rank by mean", "aggregate-then-rank"),
            Col("rank_by_mean_interval", "Rank by mean 95%"),
            Col("n", "n ok"),
            Col("failed", "failed"),
            Col("seeds", "seeds"),
            Col("seed_sd", "seed SD"),
            Col("predict_s", "predict s/case"),
            Col("fit_s", "fit s"),
            Col("host_mb", "host MB"),
            Col("gpu_mb", "GPU MB"),
        ],
    )
    for key in mb.order:
        e = board.entry(key)
        s = mb.stats[key]
        r = mb.ranks.get(key)
        mem = e.memory_mb()
        fit = e.fit_s()
        t.rows.append(
            [
                Td(e.label, e.label.lower(), href=method_href[key]),
                Td(fmt_ci(s, d), _num(s.mean), best=mb.best == key),
                Td(f"[{fmt(s.ci_low, d)}, {fmt(s.ci_high, d)}]", _num(s.ci_low)),
                Td(str(mb.groups.get(key, "–")), _num(mb.groups.get(key))),
                Td(f"{r.mean_rank:.2f}" if r else "–", _num(r.mean_rank) if r else None),
                Td(f"{r.rta_low:g}–{r.rta_high:g}" if r else "–", _num(r.rta_low) if r else None),
                Td(f"{r.rank_atr:g}" if r else "–", _num(r.rank_atr) if r else None),
                Td(f"{r.atr_low:g}–{r.atr_high:g}" if r else "–", _num(r.atr_low) if r else None),
                Td(str(s.n), _num(s.n)),
                Td(str(e.n_failed()), _num(e.n_failed())),
                Td(", ".join(map(str, e.seeds)), _num(len(e.seeds))),
                Td(fmt(s.seed_sd, d) if math.isfinite(s.seed_sd) else "–", _num(s.seed_sd)),
                Td(fmt(e.predict_s_per_case(), 3), _num(e.predict_s_per_case())),
                Td(fmt(fit, 1) if math.isfinite(fit) else ("cached" if e.fit_cached() else "–"), _num(fit)),
                Td(fmt(mem["host"], 0) if "host" in mem else "–", _num(mem.get("host"))),
                Td(fmt(mem["gpu"], 0) if "gpu" in mem else "–", _num(mem.get("gpu"))),
            ]
        )
    return t


def _comparison_table(board: Board) -> Table:
    mb = board.metric(board.main_region, board.main_metric)
    d = decimals_for(mb.stats.values())
    t = Table(
        "comparisons",
        [
            Col("a", "A"),
            Col("b", "B"),
            Col("n", "paired cases"),
            Col("diff", "mean A − B [95% CI]"),
            Col("w", "Wilcoxon W"),
            Col("p", "p"),
            Col("p_holm", "p (Holm)"),
            Col("significant", f"significant (α = {ALPHA})"),
        ],
    )
    for c in mb.comparisons:
        t.rows.append(
            [
                Td(board.entry(c.a).label),
                Td(board.entry(c.b).label),
                Td(str(c.n), _num(c.n)),
                Td(f"{fmt(c.mean_diff, d)} [{fmt(c.ci_low, d)}, {fmt(c.ci_high, d)}]", _num(c.mean_diff)),
                Td(fmt(c.statistic, 1), _num(c.statistic)),
                Td(_p(c.p), _num(c.p)),
                Td(_p(c.p_holm), _num(c.p_holm)),
                Td("yes" if c.significant else "no"),
            ]
        )
    return t


def _p(p: float) -> str:
    if not math.isfinite(p):
        return "n/a"
    return f"{p:.2e}" if p < 1e-3 else f"{p:.4f}"


def _metric_table(board: Board, mb: MetricBoard, method_href: dict[str, str]) -> Table:
    d = decimals_for(mb.stats.values())
    t = Table(
        f"m-{mb.region}-{mb.metric}",
        [
            Col("method", "Method"),
            Col("mean", "mean ± CI half-width"),
            Col("ci_low", "CI low"),
            Col("ci_high", "CI high"),
            Col("std", "SD"),
            Col("median", "median"),
            Col("n", "n"),
            Col("group", "Group"),
            Col("mean_rank", "Mean rank"),
            Col("rank_interval", "Rank 95%"),
        ],
    )
    for key in mb.order:
        e = board.entry(key)
        s = mb.stats[key]
        r = mb.ranks.get(key)
        t.rows.append(
            [
                Td(e.label, e.label.lower(), href=method_href[key]),
                Td(fmt_ci(s, d), _num(s.mean), best=mb.best == key),
                Td(fmt(s.ci_low, d), _num(s.ci_low)),
                Td(fmt(s.ci_high, d), _num(s.ci_high)),
                Td(fmt(s.std, d), _num(s.std)),
                Td(fmt(s.median, d), _num(s.median)),
                Td(str(s.n), _num(s.n)),
                Td(str(mb.groups.get(key, "–")), _num(mb.groups.get(key))),
                Td(f"{r.mean_rank:.2f}" if r else "–", _num(r.mean_rank) if r else None),
                Td(f"{r.rta_low:g}–{r.rta_high:g}" if r else "–", _num(r.rta_low) if r else None),
            ]
        )
    return t


def set_level_table(board: Board, method_href: dict[str, str], keys: Sequence[str] | None = None,
                    table_id: str = "set-level") -> Table | None:
    """Set-level metrics (one value per run over the test set, with the metric's own interval): rows =
    methods sorted by the first one's value, columns = (region, metric). Never tested pairwise, never
    ranked, no group: the value is not a mean of per-case scores. None when the records hold none."""
    rms = board.set_metrics()
    if not rms:
        return None
    order = board.set_order(*rms[0])
    if keys is not None:
        order = [k for k in order if k in keys]
    summaries = {(k, rm): board.entry(k).set_score(*rm) for k in order for rm in rms}
    decimals = {rm: set_decimals([board.entry(k).set_score(*rm) for k in board.set_order(*rm)]) for rm in rms}
    columns = [Col("method", "Method")]
    header: list[Any] = ["method"]
    for r, m in rms:
        columns.append(Col(f"{_safe(r)}-{_safe(m)}", f"{metric_heading(m, r, board)} [95% interval]",
                           "set-level: the value over the whole test set and its bootstrap interval over cases"))
        columns.append(Col(f"{_safe(r)}-{_safe(m)}-n", "n", "cases the value was computed over"))
        header += [f"{m} ({r}) {field}" for field in ("value", "ci_low", "ci_high", "n", "seeds", "reason")]
    table = Table(table_id, columns, csv_header=header, csv_rows=[])
    for k in order:
        e = board.entry(k)
        row = [Td(e.label, e.label.lower(), href=method_href.get(k))]
        csv_row: list[Any] = [e.label]
        for rm in rms:
            s = summaries[(k, rm)]
            title = s.reason if not s.defined else (
                f"{s.seeds} seeds: mean of the values, interval spanning theirs" if s.seeds > 1 else None)
            row += [Td(fmt_set(s, decimals[rm]), _num(s.value) if s.defined else None, title=title),
                    Td(str(s.n), _num(s.n))]
            csv_row += [s.value, s.ci_low, s.ci_high, s.n, s.seeds, s.reason]
        table.rows.append(row)
        table.csv_rows.append(csv_row)
    return table


def agreement_table(board: Board, method_href: dict[str, str], table_id: str = "agreement") -> Table | None:
    """Bland-Altman agreement of the densitometry quantities (:mod:`.agreement`): rows = methods, per quantity
    the bias (mean of prediction - ground truth), the 95 % limits of agreement (bias ± 1.96 SD) and n.
    None when the board records no signed densitometry error."""
    from cmsbench.leaderboard.agreement import board_agreements

    per_entry = board_agreements(board)
    if not per_entry:
        return None
    columns = [Col("method", "Method")]
    header: list[Any] = ["method"]
    for a in per_entry[0][1]:
        key = f"{_safe(a.region)}-{_safe(a.metric)}"
        columns += [Col(f"{key}-bias", f"{a.label} bias", "mean of prediction - ground truth over the cases"),
                    Col(f"{key}-loa", f"{a.label} 95% limits of agreement", "bias ± 1.96 × SD (ddof 1)"),
                    Col(f"{key}-n", "n", "cases")]
        header += [f"{a.metric} ({a.region}) {f}" for f in ("bias", "sd", "loa_low", "loa_high", "n")]
    table = Table(table_id, columns, csv_header=header, csv_rows=[])
    for entry, stats in per_entry:
        row = [Td(entry.label, entry.label.lower(), href=method_href.get(entry.key))]
        csv_row: list[Any] = [entry.label]
        for a in stats:
            loa = "n/a" if not math.isfinite(a.sd) else f"[{a.lower:.2f}, {a.upper:.2f}]"
            row += [Td("n/a" if not math.isfinite(a.bias) else f"{a.bias:.2f}", _num(a.bias)),
                    Td(loa, _num(a.upper - a.lower) if math.isfinite(a.sd) else None),
                    Td(str(a.n), _num(a.n))]
            csv_row += [a.bias, a.sd, a.lower, a.upper, a.n]
        table.rows.append(row)
        table.csv_rows.append(csv_row)
    return table


def set_level_conventions(board: Board) -> list[tuple[str, str]]:
    """(metric, how it is computed) of the board's set-level metrics, as their records state it."""
    out: dict[str, str] = {}
    for e in board.entries:
        for _, rec in e.records:
            for _, m in record_set_metrics(rec):
                info = rec.scoring.metrics.get(m)
                if m not in out and info is not None:
                    out[m] = info.convention
    return sorted(out.items())


def _board_info(board: Board) -> dict[str, Any]:
    conv = board.convention
    mode_name = conv.get("mode", board.key.mode) if isinstance(conv, dict) else board.key.mode
    return {
        "title": board.title(),
        "task": board.task,
        "version": board.key.task_version,
        "parameters": board.key.parameters,
        "data_kind": board.key.data_kind,
        "split_hash": board.key.split_hash,
        "mode": board.key.mode,
        "mode_info": mode_description(str(mode_name)),
        "convention": json.dumps(conv, sort_keys=True) if conv is not None else "not recorded",
        "convention_json": json.dumps(conv, sort_keys=True, indent=2) if conv is not None else "not recorded",
        "conventions": convention_items(conv),
        "directions": directions_text(
            board.metrics() + [m for m in dict.fromkeys(m for _, m in board.set_metrics()) if m not in board.metrics()],
            board),
        "reason": board.reason,
        "main": board.main,
        "notes": board.notes,
        "main_heading": metric_heading(board.main_metric, board.main_region, board),
        "description": str(board.spec.get("description") or ""),
    }


def build_site(
    boards: Sequence[Board],
    out: str | Path,
    *,
    title: str = "cmsbench leaderboard",
    images_per_method: int = 3,
    images: bool = True,
) -> Path:
    """Write the site under ``out`` (replacing its ``index.html``, ``tasks/``, ``methods/``, ``img/``, ``csv/``).

    ``images_per_method`` bounds the full-volume case grid drawn from saved predictions; the thumbnails
    stored with the runs are shown unless ``images`` is False.
    """
    from cmsbench import __version__

    out = Path(out)
    marker = out / SITE_MARKER
    if out.is_dir() and any(out.iterdir()) and not marker.exists():
        raise CmsbenchError(f"{out} is a non-empty folder that is not a cmsbench site; choose an empty or new --out")
    for sub in ("tasks", "methods", "img", "csv"):
        if (out / sub).is_dir():
            shutil.rmtree(out / sub)
    out.mkdir(parents=True, exist_ok=True)
    marker.write_text("written by cmsbench leaderboard; the folder is replaced on the next run\n")
    env = _env()
    common = {
        "site_title": title,
        "version": __version__,
        "ci_description": CI_DESCRIPTION,
        "alpha": ALPHA,
        "n_boot_ranks": N_BOOT_RANKS,
    }

    tasks: dict[str, list[dict[str, Any]]] = {}
    for board in boards:
        mb = board.metric(board.main_region, board.main_metric)
        best = board.entry(mb.best).label if mb.best else None
        tasks.setdefault(board.task, []).append(
            {
                "href": f"tasks/{board.slug}.html",
                "title": board.title(),
                "n_methods": len(board.entries),
                "best": best,
                "main_metric": metric_heading(board.main_metric, board.main_region, board),
                "reason": board.reason,
            }
        )
    method_pages = {(b.slug, e.key): f"methods/{b.slug}/{e.key}.html" for b in boards for e in b.entries}
    matrices = overview_matrices(boards, method_pages)
    for m in matrices:
        _save_csv(m["table"], out, "index", "")
    (out / "index.html").write_text(
        env.get_template("index.html").render(
            tasks=[{"name": k, "boards": v} for k, v in tasks.items()], matrices=matrices, **common)
    )

    for board in boards:
        method_href = {e.key: f"../methods/{board.slug}/{e.key}.html" for e in board.entries}
        img_dir = out / "img" / board.slug
        mb_main = board.metric(board.main_region, board.main_metric)
        box_main = box_plot_methods(board, mb_main, img_dir / "box_main.png")
        try:
            pd_plots = perception_distortion_plots(board)
        except Exception as exc:  # noqa: BLE001 - a figure never breaks the site
            log.warning("perception-distortion plot of %s not drawn: %s", board.slug, exc)
            pd_plots = []
        folder = board.slug
        overview = _save_csv(_overview_table(board, method_href), out, folder, "../")
        comparisons = _save_csv(_comparison_table(board), out, folder, "../")
        set_table = set_level_table(board, method_href)
        if set_table is not None:
            _save_csv(set_table, out, folder, "../")
        agreement = agreement_table(board, method_href)
        if agreement is not None:
            _save_csv(agreement, out, folder, "../")
        metric_tables = [
            {"heading": metric_heading(m, r, board),
             "table": _save_csv(_metric_table(board, board.metric(r, m), method_href), out, folder, "../")}
            for r, m in board.regions_metrics()
        ]
        (out / "csv" / folder / "statistics.csv").write_text(to_csv([board]))
        frame = _board_frame(board)
        (out / "csv" / folder / "cases.csv").write_text(frame)
        others = [
            {"href": f"{b.slug}.html", "title": b.title()} for b in boards if b.task == board.task and b is not board
        ]
        thumbs, thumb_notes = collect_thumbnails(board, out) if images else ({}, [])
        views = thumbnail_views(board, thumbs, "../", method_href)
        if not images:
            thumb_notes = ["Pictures were not requested (--images 0)."]
        elif not thumbs:
            thumb_notes.append("No thumbnails in these records (runs of cmsbench before thumbnails, or run with "
                               "thumbnails = 0).")
        (out / "tasks" / f"{board.slug}.html").parent.mkdir(parents=True, exist_ok=True)
        (out / "tasks" / f"{board.slug}.html").write_text(
            env.get_template("task.html").render(
                board=_board_info(board),
                overview=overview,
                comparisons=comparisons,
                metric_tables=metric_tables,
                others=others,
                box_main=f"../img/{board.slug}/{box_main.name}",
                pd_plots=pd_plots,
                set_table=set_table,
                set_conventions=set_level_conventions(board),
                agreement=agreement,
                thumbs=views,
                thumb_notes=thumb_notes,
                statistics_csv=f"../csv/{folder}/statistics.csv",
                cases_csv=f"../csv/{folder}/cases.csv",
                **common,
            )
        )
        for e in board.entries:
            _method_page(env, board, e, out, img_dir, images_per_method if images else 0, common,
                         thumbs.get(e.key, {}), images)
    return out / "index.html"


def _board_frame(board: Board) -> str:
    """Every per-case score of the board's records, full precision (the long frame of :mod:`cmsbench.results`)."""
    from cmsbench.results import records_frame

    frame = records_frame(rec for e in board.entries for _, rec in e.records)
    frame.insert(0, "method_label", [next((e.label for e in board.entries if any(r.run_id == rid for _, r in
                                                                                   e.records)), "")
                                     for rid in frame["run_id"]])
    from pandas.api.types import is_numeric_dtype

    for col in frame.columns:
        if not is_numeric_dtype(frame[col]):
            frame[col] = [_csv_cell(v) for v in frame[col]]
    return frame.to_csv(index=False, lineterminator="\n")


def _link(text: str) -> str | None:
    """A safe external link for a card's paper field (http(s) URL or DOI); None for anything else."""
    t = text.strip()
    if re.fullmatch(r"https?://[^\s\"'<>]+", t):
        return t
    m = re.fullmatch(r"(?:doi:\s*)?(10\.\d{4,9}/[^\s\"'<>]+)", t, re.I)
    return f"https://doi.org/{m.group(1)}" if m else None


def _yes_no(value: Any) -> str:
    return {True: "yes", False: "no"}.get(value, str(value)) if isinstance(value, bool) else str(value)


def _method_facts(board: Board, e: Entry) -> dict[str, Any]:
    """What a method page states from the card and the records: card fields, cost, NFE."""
    card = dict(e.card)
    nfe = [float(c.timing["nfe"]) for _, rec in e.records for c in rec.ok_cases().values()
           if isinstance(c.timing.get("nfe"), (int, float))]
    fit = e.fit_s()
    predict = e.predict_s_per_case()
    mem = e.memory_mb()
    samples = sorted({rec.samples for _, rec in e.records})
    paper = str(card.get("paper") or "")
    tasks = card.get("tasks")
    cost = [
        ("training time", f"{fit:.1f} s" if math.isfinite(fit) else
         ("cached fitted state reused (no training in these runs)" if e.fit_cached() else "–")),
        ("predict time per case", f"{predict:.3f} s" if math.isfinite(predict) else "–"),
    ]
    if nfe:
        cost.append(("NFE per case", f"{np.mean(nfe):g} (network function evaluations of the sampler"
                     + (f", summed over {samples[-1]} samples" if samples[-1] > 1 else "") + ")"))
    if samples != [1]:
        cost.append(("samples per case", ", ".join(map(str, samples))))
    if mem:
        cost.append(("peak memory", ", ".join(f"{k} {v:.0f} MB" for k, v in sorted(mem.items()))))
    shown = {"name", "version", "summary", "paper", "differences_from_paper", "tasks"}
    extra = [(k, _yes_no(v) if isinstance(v, (bool, str)) else json.dumps(v, sort_keys=True))
             for k, v in card.items() if k not in shown and v not in ("", None, [], ())]
    return {
        "summary": str(card.get("summary") or ""),
        "paper": paper,
        "paper_href": _link(paper) if paper else None,
        "differences": str(card.get("differences_from_paper") or ""),
        "tasks": ", ".join(map(str, tasks)) if isinstance(tasks, (list, tuple)) and tasks else "any task whose "
                 "inputs it can take",
        "cost": cost,
        "extra": extra,
        "nfe": bool(nfe),
    }


def _method_page(
    env: Any, board: Board, e: Entry, out: Path, img_dir: Path, n_images: int, common: dict[str, Any],
    thumbs: dict[str, Thumb] | None = None, pictures: bool = True,
) -> Path:
    rms = board.regions_metrics()
    summary = Table(
        "summary",
        [
            Col("region", "Region"),
            Col("metric", "Metric"),
            Col("mean", "mean ± CI half-width"),
            Col("ci", "95% CI"),
            Col("std", "SD"),
            Col("median", "median"),
            Col("n", "n"),
            Col("group", "Group"),
            Col("mean_rank", "Mean rank"),
        ],
    )
    for r, m in rms:
        mb = board.metric(r, m)
        d = decimals_for(mb.stats.values())
        s = mb.stats[e.key]
        rk = mb.ranks.get(e.key)
        summary.rows.append(
            [
                Td(r),
                Td(m),
                Td(fmt_ci(s, d), _num(s.mean), best=mb.best == e.key),
                Td(f"[{fmt(s.ci_low, d)}, {fmt(s.ci_high, d)}]", _num(s.ci_low)),
                Td(fmt(s.std, d), _num(s.std)),
                Td(fmt(s.median, d), _num(s.median)),
                Td(str(s.n), _num(s.n)),
                Td(str(mb.groups.get(e.key, "–")), _num(mb.groups.get(e.key))),
                Td(f"{rk.mean_rank:.2f}" if rk else "–", _num(rk.mean_rank) if rk else None),
            ]
        )
    boxplots = []
    for m in board.metrics():
        regions = [r for r, mm in rms if mm == m]
        p = box_plot_regions(e, m, regions, img_dir / f"{e.key}_box_{_safe(m)}.png", board)
        boxplots.append({"src": f"../../img/{board.slug}/{p.name}", "alt": f"box plot of {m} per region"})

    # per-case table: seeds averaged, status from every seed
    cols = [Col("case", "Case"), Col("status", "Status")] + [
        Col(f"{_safe(r)}-{_safe(m)}", f"{m} ({r})") for r, m in rms
    ]
    cols += [Col("predict_s", "predict s")]
    cases = Table("cases", cols)
    decimals = {rm: decimals_for(board.metric(*rm).stats.values()) for rm in rms}
    values = {rm: e.raw_values(*rm) for rm in rms}
    all_ids = sorted({cid for _, rec in e.records for cid in rec.cases})
    for cid in all_ids:
        statuses = [rec.cases.get(cid) for _, rec in e.records]
        bad = [c for c in statuses if c is None or c.status != "ok"]
        status = (
            "ok" if not bad else "failed: " + "; ".join(("missing" if c is None else str(c.error or c.status))
                                                        for c in bad)
        )
        times = [c.timing.get("predict_s") for c in statuses if c is not None]
        times = [t for t in times if isinstance(t, (int, float))]
        row = [Td(cid), Td(status)]
        for rm in rms:
            v = values[rm].get(cid)
            row.append(Td(fmt(v, decimals[rm]) if v is not None else "–", _num(v)))
        row.append(Td(fmt(float(np.mean(times)), 3) if times else "–", _num(float(np.mean(times))) if times else None))
        cases.rows.append(row)
    folder = f"{board.slug}/{e.key}"
    _save_csv(summary, out, folder, "../../")
    set_table = set_level_table(board, {}, keys=[e.key])
    if set_table is not None:
        _save_csv(set_table, out, folder, "../../")
    _save_csv(cases, out, folder, "../../")

    grid, notes = None, []
    if n_images > 0:
        rec = e.records[0][1]
        try:
            path, notes = case_image_grid(rec, img_dir / f"{e.key}_cases.png", max_cases=n_images)
        except Exception as exc:  # drawing must never break the site; the reason goes on the page
            path, notes = None, [f"No image grid: drawing failed ({type(exc).__name__}: {exc})."]
        if path is not None:
            grid = f"../../img/{board.slug}/{path.name}"
            if len(e.records) > 1:
                notes.append(f"Images show seed {rec.seed} of {len(e.records)}.")
    else:
        notes = ["Image grids were not requested."]
    thumbs = thumbs or {}
    thumb_images = [{"case": cid, "src": f"../../{thumbs[cid].src}", "scale": _scale_text([thumbs[cid].info])[0]}
                    for cid in sorted(thumbs)]
    thumb_infos = [thumbs[cid].info for cid in sorted(thumbs)]
    card = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in e.card.items() if v not in ("", None, [], ())]
    entry_info = {
        "label": e.label,
        "name": e.name,
        "version": e.version,
        "options": json.dumps(e.options, sort_keys=True),
        "options_items": [(str(k), v if isinstance(v, str) else json.dumps(v, sort_keys=True))
                          for k, v in sorted(e.options.items())],
        "seeds": ", ".join(map(str, e.seeds)),
        "card": card,
        "facts": _method_facts(board, e),
        "records": [str(p) if p else "(in memory)" for p, _ in e.records],
    }
    page = out / "methods" / board.slug / f"{e.key}.html"
    page.parent.mkdir(parents=True, exist_ok=True)
    page.write_text(
        env.get_template("method.html").render(
            board=_board_info(board),
            entry=entry_info,
            board_href=f"../../tasks/{board.slug}.html",
            summary=summary,
            set_table=set_table,
            boxplots=boxplots,
            grid=grid,
            image_notes=notes,
            thumb_images=thumb_images if pictures else [],
            thumb_panels=_panels_text(thumb_infos),
            cases=cases,
            **common,
        )
    )
    return page


def _safe(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "x"

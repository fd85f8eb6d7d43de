"""The static HTML leaderboard: an index of tasks, a sortable table per board, a page per method.

Pages are rendered by jinja2 with autoescape on, so names, cards and options from a record are text,
never markup. Links are relative; the site opens from a plain file system with no server and no network
(no CDN: the sorting script and styles are inline). Figures are matplotlib PNGs (Agg, no pyplot state).
"""

from __future__ import annotations

import json
import logging
import math
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.errors import CmsbenchError
from cmsbench.leaderboard.aggregate import (
    ALPHA,
    CI_DESCRIPTION,
    N_BOOT_RANKS,
    Board,
    Entry,
    MetricBoard,
    decimals_for,
    fmt,
    fmt_ci,
    higher_is_better,
)
from cmsbench.leaderboard.tables import directions_text, metric_heading
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


@dataclass
class Table:
    id: str
    columns: list[Col]
    rows: list[list[Td]] = field(default_factory=list)


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


def _board_info(board: Board) -> dict[str, Any]:
    conv = board.convention
    return {
        "title": board.title(),
        "task": board.task,
        "version": board.key.task_version,
        "parameters": board.key.parameters,
        "data_kind": board.key.data_kind,
        "split_hash": board.key.split_hash,
        "mode": board.key.mode,
        "convention": json.dumps(conv, sort_keys=True) if conv is not None else "not recorded",
        "directions": directions_text(board.metrics(), board),
        "reason": board.reason,
        "main": board.main,
        "notes": board.notes,
        "main_heading": metric_heading(board.main_metric, board.main_region, board),
    }


def build_site(
    boards: Sequence[Board],
    out: str | Path,
    *,
    title: str = "cmsbench leaderboard",
    images_per_method: int = 3,
    images: bool = True,
) -> Path:
    """Write the site under ``out`` (replacing its ``index.html``, ``tasks/``, ``methods/``, ``img/``)."""
    from cmsbench import __version__

    out = Path(out)
    marker = out / SITE_MARKER
    if out.is_dir() and any(out.iterdir()) and not marker.exists():
        raise CmsbenchError(f"{out} is a non-empty folder that is not a cmsbench site; choose an empty or new --out")
    for sub in ("tasks", "methods", "img"):
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
    (out / "index.html").write_text(
        env.get_template("index.html").render(tasks=[{"name": k, "boards": v} for k, v in tasks.items()], **common)
    )

    for board in boards:
        method_href = {e.key: f"../methods/{board.slug}/{e.key}.html" for e in board.entries}
        img_dir = out / "img" / board.slug
        mb_main = board.metric(board.main_region, board.main_metric)
        box_main = box_plot_methods(board, mb_main, img_dir / "box_main.png")
        metric_tables = [
            {"heading": metric_heading(m, r, board), "table": _metric_table(board, board.metric(r, m), method_href)}
            for r, m in board.regions_metrics()
        ]
        others = [
            {"href": f"{b.slug}.html", "title": b.title()} for b in boards if b.task == board.task and b is not board
        ]
        (out / "tasks" / f"{board.slug}.html").parent.mkdir(parents=True, exist_ok=True)
        (out / "tasks" / f"{board.slug}.html").write_text(
            env.get_template("task.html").render(
                board=_board_info(board),
                overview=_overview_table(board, method_href),
                comparisons=_comparison_table(board),
                metric_tables=metric_tables,
                others=others,
                box_main=f"../img/{board.slug}/{box_main.name}",
                **common,
            )
        )
        for e in board.entries:
            _method_page(env, board, e, out, img_dir, images_per_method if images else 0, common)
    return out / "index.html"


def _method_page(
    env: Any, board: Board, e: Entry, out: Path, img_dir: Path, n_images: int, common: dict[str, Any]
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
    card = [(k, v if isinstance(v, str) else json.dumps(v)) for k, v in e.card.items() if v not in ("", None, [], ())]
    entry_info = {
        "label": e.label,
        "version": e.version,
        "options": json.dumps(e.options, sort_keys=True),
        "seeds": ", ".join(map(str, e.seeds)),
        "card": card,
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
            boxplots=boxplots,
            grid=grid,
            image_notes=notes,
            cases=cases,
            **common,
        )
    )
    return page


def _safe(text: str) -> str:
    import re

    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text) or "x"

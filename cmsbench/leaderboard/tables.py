"""Publication tables (Markdown, LaTeX with booktabs, CSV, plain text) from the aggregation module.

Every number comes from :mod:`cmsbench.leaderboard.aggregate` and is formatted by its ``fmt``/``fmt_ci``,
so the site, the Markdown and the LaTeX show the same digits. Everything that comes from a record (method
names, options, conventions) is escaped for the target format.
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from cmsbench.errors import CmsbenchError, UnknownNameError
from cmsbench.leaderboard.aggregate import (
    ALPHA,
    CI_DESCRIPTION,
    Board,
    SetSummary,
    decimals_for,
    fmt,
    fmt_ci,
    higher_is_better,
)

FORMATS = ("md", "latex", "csv", "text")

_LATEX = {
    "\\": r"\textbackslash{}",
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "<": r"\textless{}",
    ">": r"\textgreater{}",
    "|": r"\textbar{}",
}


def escape_latex(text: Any) -> str:
    """LaTeX-safe text: every special character as its command; newlines as spaces."""
    return "".join(_LATEX.get(ch, ch) for ch in " ".join(str(text).split()))


def escape_markdown(text: Any) -> str:
    """Markdown-table-safe text: HTML characters as entities, Markdown punctuation and pipes backslashed."""
    out = []
    for ch in " ".join(str(text).split()):
        if ch == "&":
            out.append("&amp;")
        elif ch == "<":
            out.append("&lt;")
        elif ch == ">":
            out.append("&gt;")
        elif ch in "\\|*_`[]#!":
            out.append("\\" + ch)
        else:
            out.append(ch)
    return "".join(out)


def escape_csv_text(text: Any) -> str:
    """A text cell that a spreadsheet will not run as a formula."""
    s = " ".join(str(text).split())
    return "'" + s if s[:1] in ("=", "+", "-", "@") else s


def metric_heading(metric: str, region: str, board: Board | None = None) -> str:
    arrow = {True: "↑", False: "↓", None: ""}[board.higher_is_better(metric) if board else higher_is_better(metric)]
    return f"{metric.upper()} ({region}) {arrow}".rstrip()


@dataclass
class Cell:
    text: str
    best: bool = False
    top_group: bool = False


@dataclass
class PubTable:
    """A table in a format-neutral form: what Markdown, LaTeX and the site all show."""

    board: Board
    title: str
    header: list[str]
    rows: list[tuple[str, list[Cell]]]  # (method label, cells)
    footnote: list[str]


#: The convention fields a table footnote shows (all fields when none of these is present).
FOOTNOTE_CONVENTION_KEYS = ("units", "normalisation", "data_range", "ssim", "ct_windows", "suv")


def _conventions_text(board: Board) -> str:
    conv = board.convention
    if isinstance(conv, dict):
        keys = [k for k in FOOTNOTE_CONVENTION_KEYS if k in conv] or list(conv)
        return "; ".join(
            f"{k}: {v if isinstance(v, str) else json.dumps(v, sort_keys=True)}"
            for k, v in ((k, conv[k]) for k in keys)
        )
    return json.dumps(conv) if conv is not None else "not recorded"


def directions_text(metrics: Sequence[str], board: Board | None = None) -> str:
    direction = board.higher_is_better if board else higher_is_better
    hi = [m.upper() for m in metrics if direction(m) is True]
    lo = [m.upper() for m in metrics if direction(m) is False]
    unk = [m.upper() for m in metrics if direction(m) is None]
    parts = []
    if hi:
        parts.append(f"{', '.join(hi)}: higher is better")
    if lo:
        parts.append(f"{', '.join(lo)}: lower is better")
    if unk:
        parts.append(f"{', '.join(unk)}: direction unknown, not ranked")
    return "; ".join(parts)


def publication_table(
    board: Board, region: str | None = None, metrics: Sequence[str] | None = None, ci_style: str = "pm"
) -> PubTable:
    """Rows = methods (best first by the first metric), columns = metrics of one region, plus the mean rank."""
    region = region or board.main_region
    available = [m for r, m in board.regions_metrics() if r == region]
    if not available:
        raise UnknownNameError(f"region {region!r} has no scores on {board.title()}; regions: {board.regions()}")
    set_available = [m for r, m in board.set_metrics() if r == region]
    main = board.main_metric if board.main_metric in available else available[0]
    if metrics:
        unknown = [m for m in metrics if m not in available and m not in set_available]
        if unknown:
            raise UnknownNameError(
                f"metric(s) {unknown} not scored in region {region!r} on {board.title()}; metrics: "
                f"{available + set_available}"
            )
        chosen = [m for m in metrics if m in available] or [main]  # rows are ordered by a per-case metric
        chosen_set = [m for m in metrics if m in set_available and m not in available]
    else:
        chosen = [main] + [m for m in available if m != main]
        chosen_set = list(set_available)
    mbs = [board.metric(region, m) for m in chosen]
    lead = mbs[0]
    decimals = [decimals_for(mb.stats.values()) for mb in mbs]
    header = ["Method", *(metric_heading(m, region, board) for m in chosen)]
    has_ranks = bool(lead.ranks)
    if has_ranks:
        header.append(f"Mean rank ({chosen[0].upper()})")
    header += [f"{metric_heading(m, region, board)} [set]" for m in chosen_set]
    set_digits = {m: set_decimals([e.set_score(region, m) for e in board.entries]) for m in chosen_set}
    rows = []
    for key in lead.order:
        entry = board.entry(key)
        cells = []
        for mb, d in zip(mbs, decimals, strict=True):
            s = mb.stats[key]
            cells.append(
                Cell(
                    fmt_ci(s, d, ci_style),
                    best=(mb.best == key),
                    top_group=(mb.groups.get(key) == 1 and mb.best is not None),
                )
            )
        if has_ranks:
            r = lead.ranks[key]
            cells.append(Cell(f"{r.mean_rank:.2f} [{r.rta_low:g}, {r.rta_high:g}]"))
        for m in chosen_set:
            cells.append(Cell(fmt_set(entry.set_score(region, m), set_digits[m])))
        label = entry.label + (f" ({len(entry.seeds)} seeds)" if len(entry.seeds) > 1 else "")
        rows.append((label, cells))
    n_cases = sorted({mb.stats[k].n for mb in mbs for k in mb.stats})
    ci_text = "mean ± half-width of the 95% CI" if ci_style == "pm" else "mean [95% CI]"
    footnote = [
        f"{ci_text} over n = {', '.join(map(str, n_cases))} test cases; CI: {CI_DESCRIPTION}.",
        f"Bold: best mean; †: not significantly different from the best (two-sided Wilcoxon signed-rank test on "
        f"paired cases, Holm-corrected, α = {ALPHA}). Mean rank: average per-case rank (ties averaged, a failed "
        f"case ranks last) with the 2.5–97.5% bootstrap interval of the final position.",
        f"{directions_text(chosen, board)}.",
        f"Task {board.task} v{board.key.task_version}, parameters {board.key.parameters}, {board.key.data_kind} data, "
        f"test split hash {board.key.split_hash}; scoring mode {board.key.mode}; convention: {_conventions_text(board)}.",
    ]
    if chosen_set:
        footnote.append(
            f"[set]: {', '.join(m.upper() for m in chosen_set)} computed once over the whole test set (prediction set "
            "against target set), value [95% interval] with the metric's own bootstrap over cases (several seeds: "
            "mean of the values, interval spanning theirs); not a mean of per-case scores, so never in the paired "
            f"tests, groups or ranks; {directions_text(chosen_set, board)}.")
    footnote.extend(agreement_footnote(board))
    if board.reason:
        footnote.append(f"Note: {board.reason}.")
    return PubTable(board, board.title(), header, rows, footnote)


def agreement_footnote(board: Board) -> list[str]:
    """Bland-Altman lines (one per densitometry quantity) for the boards that record signed densitometry errors."""
    from cmsbench.leaderboard.agreement import board_agreements

    per_entry = board_agreements(board)
    if not per_entry:
        return []
    lines = []
    for i, first in enumerate(per_entry[0][1]):
        parts = "; ".join(f"{entry.label} {stats[i].text()} (n = {stats[i].n})" for entry, stats in per_entry)
        lines.append(f"Bland-Altman {first.label} in {first.region}, prediction - ground truth, bias [95% limits "
                     f"of agreement, bias ± 1.96 SD]: {parts}.")
    return lines


def fmt_set(s: SetSummary, decimals: int) -> str:
    """A set-level value as every table shows it: ``value [low, high]``, ``n/a`` when undefined."""
    if not s.defined:
        return "n/a"
    if math.isnan(s.ci_low) or math.isnan(s.ci_high):
        return fmt(s.value, decimals)
    return f"{fmt(s.value, decimals)} [{fmt(s.ci_low, decimals)}, {fmt(s.ci_high, decimals)}]"


def set_decimals(summaries: Sequence[SetSummary]) -> int:
    """Decimals for set-level values: two significant digits of the narrowest half-interval."""
    widths = [(s.ci_high - s.ci_low) / 2 for s in summaries
              if math.isfinite(s.ci_low) and math.isfinite(s.ci_high) and s.ci_high > s.ci_low]
    if widths:
        return int(min(6, max(0, 1 - math.floor(math.log10(min(widths))))))
    values = [abs(s.value) for s in summaries if math.isfinite(s.value) and s.value != 0]
    return 4 if not values else int(min(6, max(0, 3 - math.floor(math.log10(min(values))))))


def _cell_text_plain(cell: Cell) -> str:
    return cell.text + (" †" if cell.top_group and not cell.best else "")


def to_markdown(table: PubTable) -> str:
    lines = [f"### {escape_markdown(table.title)}", ""]
    lines.append("| " + " | ".join(escape_markdown(h) for h in table.header) + " |")
    lines.append("|" + "|".join(["---"] + ["---:"] * (len(table.header) - 1)) + "|")
    for label, cells in table.rows:
        texts = []
        for c in cells:
            t = c.text  # numbers formatted here, nothing from a record
            t = f"**{t}**" if c.best else t
            texts.append(t + (" †" if c.top_group and not c.best else ""))
        lines.append("| " + " | ".join([escape_markdown(label), *texts]) + " |")
    lines.append("")
    lines.extend(escape_markdown(f) + "  " for f in table.footnote)
    return "\n".join(lines).rstrip() + "\n"


def _latex_text(text: str) -> str:
    out = escape_latex(text).replace("±", r"$\pm$").replace("–", "--").replace("↑", r"$\uparrow$")
    return out.replace("↓", r"$\downarrow$").replace("†", r"$^\dagger$").replace("α", r"$\alpha$")


def to_latex(table: PubTable) -> str:
    cols = "l" + "r" * (len(table.header) - 1)
    lines = [
        r"\begin{table}[t]",
        r"\centering",
        r"\caption{" + _latex_text(table.title) + "}",
        r"\small",
        r"\begin{tabular}{" + cols + "}",
        r"\toprule",
        " & ".join(_latex_text(h) for h in table.header) + r" \\",
        r"\midrule",
    ]
    for label, cells in table.rows:
        texts = []
        for c in cells:
            t = _latex_text(c.text)
            t = r"\textbf{" + t + "}" if c.best else t
            texts.append(t + (r"$^\dagger$" if c.top_group and not c.best else ""))
        lines.append(" & ".join([_latex_text(label), *texts]) + r" \\")
    lines += [r"\bottomrule", r"\end{tabular}", r"\par\smallskip\footnotesize"]
    lines.append(" ".join(_latex_text(f) for f in table.footnote))
    lines.append(r"\end{table}")
    return "\n".join(lines) + "\n"


def to_text(table: PubTable) -> str:
    from cmsbench.textutil import format_table

    rows = [[label, *(_cell_text_plain(c) + (" *" if c.best else "") for c in cells)] for label, cells in table.rows]
    return "\n".join([table.title, format_table(rows, table.header), *table.footnote]) + "\n"


CSV_COLUMNS = [
    "task",
    "task_version",
    "data_kind",
    "split_hash",
    "mode",
    "table",
    "shown_apart_because",
    "method",
    "method_version",
    "options",
    "seeds",
    "region",
    "metric",
    "higher_is_better",
    "n",
    "mean",
    "std",
    "median",
    "ci_low",
    "ci_high",
    "ci_method",
    "seed_sd",
    "mean_rank",
    "rank_rta",
    "rank_rta_low",
    "rank_rta_high",
    "rank_atr",
    "rank_atr_low",
    "rank_atr_high",
    "group",
    "predict_s_per_case",
    "fit_s",
    "level",
]


def to_csv(boards: Sequence[Board], region: str | None = None, metrics: Sequence[str] | None = None) -> str:
    """Long format, one row per (table, method, region, metric), full precision."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(CSV_COLUMNS)
    for board in boards:
        for r, m in board.regions_metrics():
            if (region and r != region) or (metrics and m not in metrics):
                continue
            mb = board.metric(r, m)
            for key in mb.order:
                e = board.entry(key)
                s = mb.stats[key]
                rk = mb.ranks.get(key)
                nums = [s.n, s.mean, s.std, s.median, s.ci_low, s.ci_high]
                writer.writerow(
                    [
                        escape_csv_text(board.task),
                        escape_csv_text(board.key.task_version),
                        board.key.data_kind,
                        escape_csv_text(board.key.split_hash),
                        escape_csv_text(board.key.mode),
                        board.slug,
                        escape_csv_text(board.reason or ""),
                        escape_csv_text(e.name),
                        escape_csv_text(e.version),
                        escape_csv_text(json.dumps(e.options, sort_keys=True)),
                        escape_csv_text(" ".join(map(str, e.seeds))),
                        r,
                        m,
                        board.higher_is_better(m),
                        *(_num(v) for v in nums),
                        s.ci_method,
                        _num(s.seed_sd),
                        *(
                            _num(v)
                            for v in (
                                (
                                    rk.mean_rank,
                                    rk.rank_rta,
                                    rk.rta_low,
                                    rk.rta_high,
                                    rk.rank_atr,
                                    rk.atr_low,
                                    rk.atr_high,
                                )
                                if rk
                                else [float("nan")] * 7
                            )
                        ),
                        mb.groups.get(key, ""),
                        _num(e.predict_s_per_case()),
                        _num(e.fit_s()),
                        "case",
                    ]
                )
        for r, m in board.set_metrics():
            if (region and r != region) or (metrics and m not in metrics):
                continue
            for key in board.set_order(r, m):
                e = board.entry(key)
                s = e.set_score(r, m)
                row = dict.fromkeys(CSV_COLUMNS, "")
                row.update({
                    "task": escape_csv_text(board.task), "task_version": escape_csv_text(board.key.task_version),
                    "data_kind": board.key.data_kind, "split_hash": escape_csv_text(board.key.split_hash),
                    "mode": escape_csv_text(board.key.mode), "table": board.slug,
                    "shown_apart_because": escape_csv_text(board.reason or ""), "method": escape_csv_text(e.name),
                    "method_version": escape_csv_text(e.version),
                    "options": escape_csv_text(json.dumps(e.options, sort_keys=True)),
                    "seeds": escape_csv_text(" ".join(map(str, e.seeds))), "region": r, "metric": m,
                    "higher_is_better": board.higher_is_better(m), "n": _num(s.n), "mean": _num(s.value),
                    "ci_low": _num(s.ci_low), "ci_high": _num(s.ci_high),
                    "ci_method": "set-level: the metric's own interval over the test set",
                    "predict_s_per_case": _num(e.predict_s_per_case()), "fit_s": _num(e.fit_s()), "level": "set",
                })
                writer.writerow([row[c] for c in CSV_COLUMNS])
    return buf.getvalue()


def _num(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return "" if math.isnan(v) else repr(v)
    return str(v)


def render_tables(
    boards: Sequence[Board],
    fmt_name: str,
    region: str | None = None,
    metrics: Sequence[str] | None = None,
    ci_style: str = "pm",
) -> str:
    """Every board of a task in one format; boards shown apart come after the main one, with the reason."""
    if fmt_name not in FORMATS:
        raise UnknownNameError(f"unknown table format {fmt_name!r}; use one of {FORMATS}")
    if ci_style not in ("pm", "interval"):
        raise UnknownNameError(f"unknown CI style {ci_style!r}; use 'pm' or 'interval'")
    if not boards:
        raise CmsbenchError("no result records to tabulate")
    if fmt_name == "csv":
        return to_csv(boards, region, metrics)
    render = {"md": to_markdown, "latex": to_latex, "text": to_text}[fmt_name]
    parts = []
    for board in boards:
        if region is not None and region not in board.regions():
            continue
        parts.append(render(publication_table(board, region, metrics, ci_style)))
    if not parts:
        raise UnknownNameError(f"region {region!r} is not scored in any table")
    return "\n".join(parts)

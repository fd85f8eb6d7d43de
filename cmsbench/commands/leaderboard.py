"""Sub-commands for results and leaderboards: ``leaderboard`` (static HTML site), ``table`` and ``export``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from cmsbench.errors import CmsbenchError


def _folders(args: argparse.Namespace) -> list[Path]:
    folders = [Path(p) for p in (args.results or ["results"])]
    missing = [str(p) for p in folders if not p.is_dir()]
    if missing:
        raise CmsbenchError(f"results folder(s) {missing} not found; pass --results DIR (default ./results)")
    return folders


def _boards(args: argparse.Namespace) -> list:
    """The boards of ``--results`` (every skipped file is reported with its reason); none is an error."""
    from cmsbench.leaderboard.aggregate import load_result_boards

    boards, loaded = load_result_boards(*_folders(args), task=args.task)
    for board in boards:
        board.set_rank_by(getattr(args, "rank_by", None))
    for skipped in loaded.skipped:
        sys.stderr.write(f"skipped {skipped.path}: {skipped.reason}\n")
    if not boards:
        what = f"for task {args.task!r} " if args.task else ""
        raise CmsbenchError(f"no usable result records {what}under {', '.join(args.results or ['results'])}")
    return boards


def cmd_leaderboard(args: argparse.Namespace) -> int:
    from cmsbench.leaderboard.site import build_site

    boards = _boards(args)
    index = build_site(boards, Path(args.out), title=args.title, images_per_method=args.images, images=args.images > 0)
    sys.stdout.write(f"wrote {len(boards)} table(s) for {len({b.task for b in boards})} task(s): {index}\n")
    return 0


def cmd_table(args: argparse.Namespace) -> int:
    from cmsbench.leaderboard.tables import render_tables

    boards = _boards(args)
    metrics = args.metric or None
    sys.stdout.write(render_tables(boards, args.format, region=args.region, metrics=metrics, ci_style=args.ci))
    return 0


def cmd_export(args: argparse.Namespace) -> int:
    from cmsbench.results import export, load

    result_set = load(*_folders(args))
    for skipped in result_set.skipped:
        sys.stderr.write(f"skipped {skipped.path}: {skipped.reason}\n")
    if not result_set.records:
        raise CmsbenchError(f"no result records found under {', '.join(args.results or ['results'])}")
    out = export(result_set, Path(args.out))
    sys.stdout.write(f"wrote {len(result_set.to_frame())} rows from {len(result_set)} record(s) to {out}\n")
    return 0


def _add_rank_by(p: argparse.ArgumentParser) -> None:
    p.add_argument("--rank-by", default=None, metavar="METRIC[@REGION]",
                   help="the metric the tables rank by instead of the task's main metric, e.g. seg_dice_drop@wt "
                        "(region default: the main region if scored there, else the first region that has it)")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the leaderboard sub-commands to the ``cmsbench`` parser."""
    p = sub.add_parser("leaderboard", help="render a static HTML leaderboard site from result records")
    p.add_argument("--results", action="append", metavar="DIR", help="results folder (repeatable; default ./results)")
    p.add_argument("--out", required=True, metavar="SITE", help="output folder of the site (index.html)")
    p.add_argument("--task", default=None, help="only this task")
    p.add_argument("--title", default="cmsbench leaderboard")
    p.add_argument(
        "--images",
        type=int,
        default=3,
        metavar="N",
        help="test cases shown per method: the runs' thumbnails, or grids drawn from saved predictions (0: no pictures)",
    )
    _add_rank_by(p)
    p.set_defaults(func=cmd_leaderboard)

    p = sub.add_parser("table", help="print a publication table (Markdown, LaTeX, CSV or text) for one task")
    p.add_argument("--task", required=True)
    p.add_argument("--results", action="append", metavar="DIR", help="results folder (repeatable; default ./results)")
    p.add_argument("--format", choices=("md", "latex", "csv", "text"), default="md")
    p.add_argument("--metric", action="append", metavar="M", help="metric column(s) (repeatable; default all)")
    p.add_argument("--region", default=None, help="region (default the task's main region)")
    p.add_argument(
        "--ci", choices=("pm", "interval"), default="pm", help="CI as ± half-width (pm) or [lo, hi] (interval)"
    )
    _add_rank_by(p)
    p.set_defaults(func=cmd_table)

    p = sub.add_parser("export", help="export every record's per-case scores as one long CSV or Parquet table")
    p.add_argument("--results", action="append", metavar="DIR", help="results folder (repeatable; default ./results)")
    p.add_argument("--out", required=True, metavar="FILE", help="FILE.csv or FILE.parquet")
    p.set_defaults(func=cmd_export)

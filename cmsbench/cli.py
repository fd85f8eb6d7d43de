"""The ``cmsbench`` command. Sub-commands import what they need lazily: listing is cheap."""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Sequence
from pathlib import Path

from cmsbench.errors import CmsbenchError
from cmsbench.textutil import format_table, parse_assignments

log = logging.getLogger("cmsbench")


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


# ---------------------------------------------------------------------------------------------- tasks
def cmd_tasks(args: argparse.Namespace) -> int:
    from cmsbench.tasks.registry import TASKS, get_task

    rows = []
    for name in TASKS.names():
        try:
            spec = get_task(name)
            rows.append([name, spec.summary(), spec.units, f"{spec.main_metric}@{spec.main_region}", spec.dataset.name])
        except CmsbenchError as exc:
            rows.append([name, f"(failed to load: {exc})", "", "", ""])
    _out(format_table(rows, ["task", "inputs -> target", "units", "main metric", "dataset"]))
    return 0


# ----------------------------------------------------------------------------------------------- data
def cmd_data_check(args: argparse.Namespace) -> int:
    from cmsbench.tasks.dataset import check_dataset
    from cmsbench.tasks.registry import get_task

    task = get_task(args.task)
    if args.parameter:
        task = task.with_parameters(**parse_assignments(args.parameter))
    report = check_dataset(task, args.data_root, load=not args.quick)
    _out(f"task {report.task}: {report.n_cases} usable case(s) in {report.root}")
    _out("subjects per split: " + ", ".join(f"{k} {v}" for k, v in report.counts.items()))
    if report.excluded:
        _out(f"{len(report.excluded)} case(s) excluded by the task's protocol (not problems):")
        for excluded in report.excluded:
            _out(f"  - {excluded}")
    if report.problems:
        _out(f"{len(report.problems)} problem(s):")
        for problem in report.problems:
            _out(f"  - {problem}")
        return 1
    _out("no problems found")
    return 0


def cmd_data_synth(args: argparse.Namespace) -> int:
    from cmsbench.tasks.phantoms import synthesize

    root = synthesize(args.dataset, Path(args.out), subjects=args.subjects, seed=args.seed, size=args.size)
    _out(f"wrote the phantom dataset {args.dataset!r} (seed {args.seed}, size {args.size}) to {root}")
    return 0


def cmd_data_show(args: argparse.Namespace) -> int:
    from cmsbench.tasks.phantoms import write_montage

    out = Path(args.out) if args.out else Path(args.root) / "montage.png"
    if out.is_dir():  # a folder: the montage goes inside it
        out = out / "montage.png"
    elif out.suffix.lower() != ".png":
        raise CmsbenchError(f"--out {out}: give a .png file name (or a folder)")
    path = write_montage(Path(args.root), out, dataset=args.dataset, max_subjects=args.subjects)
    _out(f"wrote {path}")
    return 0


def cmd_data_card(args: argparse.Namespace) -> int:
    from cmsbench.tasks.phantoms.catalog import generator_version, phantom_card

    features = phantom_card(args.dataset)
    _out(f"phantom {args.dataset!r}, generator version {generator_version(args.dataset)} (synthetic data, not patients)")
    if not features:
        _out("no acquisition features listed for this phantom")
    for feature, parameter, source in features:
        _out(f"- {feature}\n    parameter: {parameter}\n    source: {source}")
    return 0


def _positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1, got {value}")
    return value


# ------------------------------------------------------------------------------------------- parser
def build_parser() -> argparse.ArgumentParser:
    from cmsbench import __version__

    parser = argparse.ArgumentParser(prog="cmsbench", description="Benchmark for cross-modality medical image synthesis.")
    parser.add_argument("--version", action="version", version=f"cmsbench {__version__}")
    parser.add_argument("-v", "--verbose", action="store_true", help="log debug messages")
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("tasks", help="list the registered tasks")
    p.set_defaults(func=cmd_tasks)

    data = sub.add_parser("data", help="dataset tools: check, synth, show, card")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("check", help="validate a dataset folder for a task and report every problem")
    p.add_argument("--task", required=True, help="task name or path to a task .toml")
    p.add_argument("--data-root", required=True, help="folder holding the dataset in its official layout")
    p.add_argument("--parameter", action="append", metavar="KEY=VALUE", help="task parameter, e.g. drf=10")
    p.add_argument("--quick", action="store_true", help="only check the layout, do not read the images")
    p.set_defaults(func=cmd_data_check)
    p = dsub.add_parser("synth", help="write a phantom dataset in its official layout")
    p.add_argument("dataset", help="brats, ixi, udpet, ldct, synthrad, chest or msd_ct")
    p.add_argument("--out", required=True)
    p.add_argument("--subjects", type=_positive_int, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", choices=("default", "full"), default="default")
    p.set_defaults(func=cmd_data_synth)
    p = dsub.add_parser("show", help="write a PNG montage of a dataset (one slice per modality per subject)")
    p.add_argument("root")
    p.add_argument("--out", default=None, help="PNG path (default ROOT/montage.png)")
    p.add_argument("--dataset", default=None, help="dataset kind if it cannot be detected")
    p.add_argument("--subjects", type=int, default=6)
    p.set_defaults(func=cmd_data_show)
    p = dsub.add_parser("card", help="what a phantom dataset models, with each feature's parameter and source")
    p.add_argument("dataset", help="brats, ixi, udpet, ldct, synthrad, chest or msd_ct")
    p.set_defaults(func=cmd_data_card)

    from cmsbench.commands import benchmark, leaderboard, weights

    benchmark.register(sub)
    leaderboard.register(sub)
    weights.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``cmsbench`` console script."""
    parser = build_parser()
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(levelname)s %(name)s: %(message)s")
    try:
        return int(args.func(args) or 0)
    except CmsbenchError as exc:
        sys.stderr.write(f"cmsbench: error: {exc}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("cmsbench: interrupted\n")
        return 130
    except Exception as exc:  # a bug in cmsbench: one clear line, the traceback only with -v
        if args.verbose:
            import traceback

            traceback.print_exc()
        sys.stderr.write(f"cmsbench: internal error: {type(exc).__name__}: {exc}\n"
                         "cmsbench failed; this is a bug: please report it with the command and the output of -v\n")
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())

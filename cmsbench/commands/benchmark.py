"""Sub-commands for the benchmark layer: run, sweep, methods, check-method, score, metrics, regions, modes."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from cmsbench.errors import CmsbenchError
from cmsbench.results import RunRecord
from cmsbench.textutil import format_table, parse_assignments


def _out(text: str = "") -> None:
    sys.stdout.write(text + "\n")


def format_run_table(record: RunRecord) -> str:
    """Per region and metric: mean ± std, median, 95% CI and n, from the record's cases."""
    from cmsbench.leaderboard.aggregate import record_regions_metrics, summarise

    rows = []
    for region, metric in record_regions_metrics(record):
        s = summarise(record, region, metric)
        if s.n == 0:
            rows.append([region, metric, "n/a", "", "", "0"])
            continue
        rows.append([region, metric, f"{s.mean:.4g} ± {s.std:.3g}", f"{s.median:.4g}",
                     f"[{s.ci_low:.4g}, {s.ci_high:.4g}]", str(s.n)])
    out = format_table(rows, ["region", "metric", "mean ± std", "median", "95% CI", "n"])
    for region, metrics in record.set_scores.items():
        for metric, s in metrics.items():
            if s.value is None:
                out += f"\nset-level {metric}@{region}: undefined ({s.reason or 'no value'})"
            else:
                interval = "" if s.ci_low is None or s.ci_high is None else f" [{s.ci_low:.4g}, {s.ci_high:.4g}]"
                out += f"\nset-level {metric}@{region}: {s.value:.4g}{interval} (n={s.n})"
    return out


class StageBars:
    """tqdm bars for long stages (``stage_progress(stage, done, total)``): one bar per stage name."""

    def __init__(self, quiet: bool) -> None:
        self.quiet, self.bars, self.current = quiet, {}, None

    def __call__(self, stage: str, done: int, total: int) -> None:
        if self.quiet:
            return
        from tqdm import tqdm

        if stage not in self.bars:
            self.bars[stage] = tqdm(total=total, desc=stage, unit="step", file=sys.stderr)
        bar = self.bars[stage]
        bar.n = done
        bar.refresh()
        if done >= total:
            bar.close()

    def close(self) -> None:
        for bar in self.bars.values():
            bar.close()


def _downstream_args(args: argparse.Namespace) -> dict[str, Any]:
    return {"downstream": args.downstream, "segmenter": args.segmenter,
            "segmenter_options": parse_assignments(args.segmenter_option)}


def cmd_run(args: argparse.Namespace) -> int:
    from cmsbench.benchmark.runner import RunConfig, run

    config = RunConfig(
        task=args.task, method=args.method, data_root=args.data_root, seed=args.seed, device=args.device,
        results=Path(args.results), save_predictions=args.save_predictions, options=parse_assignments(args.option),
        task_parameters=parse_assignments(args.parameter), split_variant=args.split, mode=args.mode,
        samples=args.samples, max_cases=args.max_cases, refit=args.refit,
        metrics=tuple(args.metric or ()), regions=tuple(args.region or ()),
        case_timeout_s=args.case_timeout if args.case_timeout and args.case_timeout > 0 else None,
        thumbnails=max(0, args.thumbnails), **_downstream_args(args),
    )
    bar = None

    def progress(done: int, total: int, case_id: str) -> None:
        nonlocal bar
        if args.quiet:
            return
        from tqdm import tqdm

        if bar is None:
            bar = tqdm(total=total, desc="predict+score", unit="case", file=sys.stderr)
        bar.n = done
        bar.set_postfix_str(case_id)
        bar.refresh()

    stages = StageBars(args.quiet)
    try:
        outcome = run(config, progress=progress, stage_progress=stages)
    finally:
        stages.close()
    if bar is not None:
        bar.close()
    rec = outcome.record
    kind = rec.data.kind
    _out(f"task {rec.task.name} v{rec.task.version} | method {rec.method.name} v{rec.method.version} | "
         f"seed {rec.seed} | split {rec.split.test_hash} | data: {kind}{' (embedded phantom)' if kind == 'phantom' else ''}"
         + (" | partial (--max-cases)" if rec.partial else ""))
    timing = rec.timing
    _out(f"fit {timing.get('fit_s', 0):.2f} s{' (cached)' if timing.get('fit_cached') else ''}; "
         f"{len(rec.cases)} test case(s)")
    _out(format_run_table(rec))
    _out(f"record: {outcome.path}")
    if outcome.failed:
        _out(f"{len(outcome.failed)} case(s) failed:")
        for cid, err in outcome.failed.items():
            _out(f"  - {cid}: {err}")
        return 1
    return 0


def cmd_methods(args: argparse.Namespace) -> int:
    from cmsbench.baselines.registry import METHODS

    rows = []
    for name, entry in METHODS.entries().items():
        if args.long:
            try:
                card = METHODS.load(name).card
                rows.append([name, card.version, "yes" if card.needs_training else "no",
                             "yes" if card.stochastic else "no", card.summary[:60], entry.distribution])
            except CmsbenchError as exc:
                rows.append([name, "", "", "", f"failed to load: {exc}", entry.distribution])
        else:
            rows.append([name, entry.target, entry.distribution])
    header = (["method", "version", "trains", "stochastic", "summary", "package"] if args.long
              else ["method", "entry point", "package"])
    _out(format_table(rows, header))
    return 0


def cmd_check_method(args: argparse.Namespace) -> int:
    from cmsbench.testing.conformance import check_method

    report = check_method(args.method, options=parse_assignments(args.option))
    for result in report.results:
        _out(f"{'PASS' if result.passed else 'FAIL'}  {result.name}" + ("" if result.passed else f": {result.message}"))
    _out(f"{sum(r.passed for r in report.results)}/{len(report.results)} checks passed")
    return 0 if report.ok else 1


def cmd_score(args: argparse.Namespace) -> int:
    from cmsbench.benchmark.environment import resolve_device
    from cmsbench.benchmark.score_folder import score_folder

    stages = StageBars(getattr(args, "quiet", False))
    try:
        result = score_folder(args.task, Path(args.predictions), data_root=args.data_root, mode=args.mode,
                              out=Path(args.out) if args.out else None, prediction_units=args.prediction_units,
                              split=args.split, seed=args.seed, device=resolve_device(args.device),
                              stage_progress=stages, **_downstream_args(args))
    finally:
        stages.close()
    _out(format_run_table(result.record))
    if result.out:
        _out(f"scores: {result.out}")
    if result.warnings:
        _out(f"{len(result.warnings)} warning(s):")
        for warning in result.warnings:
            _out(f"  - {warning}")
    if result.problems:
        _out(f"{len(result.problems)} problem(s):")
        for problem in result.problems:
            _out(f"  - {problem}")
        return 1
    return 0


def cmd_sweep(args: argparse.Namespace) -> int:
    from cmsbench.benchmark.sweep import plan_sweep, run_local, run_ray

    tasks = [t for t in args.tasks.split(",") if t]
    roots: dict[str, str] = {}
    for item in args.data_root or []:
        if "=" in item:
            task, path = item.split("=", 1)
            roots[task] = path
        elif len(tasks) == 1:
            roots[tasks[0]] = item
        else:
            raise CmsbenchError("with several tasks, give --data-root as TASK=DIR (once per task)")
    plan = plan_sweep(tasks, [m for m in args.methods.split(",") if m], [int(s) for s in args.seeds.split(",") if s],
                      results=Path(args.results), data_roots=roots, options=parse_assignments(args.option),
                      device=args.device, max_cases=args.max_cases)
    if args.dry_run:
        _out(plan.describe())
        return 0
    report = (lambda msg: None) if args.quiet else (lambda msg: sys.stderr.write(msg + "\n"))
    if args.executor == "ray":
        run_ray(plan, address=args.address, gpus_per_job=args.gpus_per_job, cpus_per_job=args.cpus_per_job,
                retries=args.retries, report=report)
    else:
        run_local(plan, retries=args.retries, report=report)
    _out(summary_table(plan))
    return 0 if all(j.state in ("ok", "done") for j in plan.jobs) else 1


def summary_table(plan: Any) -> str:
    """Job, state, main metric mean and time of a sweep, as text."""
    from cmsbench.leaderboard.aggregate import summarise
    from cmsbench.results import load_record

    rows = []
    for job in plan.jobs:
        metric = ""
        if job.record and Path(job.record).exists():
            rec = load_record(job.record)
            spec = rec.task.spec
            s = summarise(rec, spec["main_region"], spec["main_metric"])
            metric = f"{spec['main_metric']}@{spec['main_region']} {s.mean:.4g} (n={s.n})"
        rows.append([job.key, job.state, metric, f"{job.seconds:.1f}", job.error or ""])
    return format_table(rows, ["job", "state", "main metric", "seconds", "note"])


def _describe_loaded(registry: Any, describe: Any) -> list[list[str]]:
    rows = []
    for name, entry in registry.entries().items():
        try:
            rows.append([name, *describe(registry.load(name)), entry.distribution])
        except CmsbenchError as exc:
            rows.append([name, f"failed to load: {exc}", *([""] * 2), entry.distribution])
    return rows


def cmd_metrics(args: argparse.Namespace) -> int:
    from cmsbench.benchmark.metrics.registry import METRICS

    def describe(m: Any) -> list[str]:
        conv = m.convention or m.summary
        return [m.direction or "(not ranked)", m.level, m.needs.describe(),
                conv if args.long else (conv[:70] + ("…" if len(conv) > 70 else ""))]

    rows = _describe_loaded(METRICS, describe)
    _out(format_table([r if len(r) == 6 else [*r[:2], "", "", r[-2], r[-1]] for r in rows],
                      ["metric", "direction", "level", "needs", "convention", "package"]))
    return 0


def cmd_regions(args: argparse.Namespace) -> int:
    from cmsbench.benchmark.metrics.registry import REGIONS

    rows = _describe_loaded(REGIONS, lambda r: ["lesion" if r.lesion else "", r.summary])
    _out(format_table([r[:4] + [r[-1]] if len(r) > 4 else r for r in rows], ["region", "kind", "definition", "package"]))
    return 0


def cmd_modes(args: argparse.Namespace) -> int:
    from cmsbench.benchmark.metrics.registry import MODES

    rows = _describe_loaded(MODES, lambda m: [m.summary, m.source or "-", m.verified or "-"])
    _out(format_table(rows, ["mode", "what", "official source", "checked", "package"]))
    return 0


def _add_downstream_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--downstream", action="store_true",
                   help="also segment each test case's real images and the images with the synthetic target, and "
                        "score the segmentations (Dice / HD95 on WT, TC, ET and their drop; the segmenter trains on "
                        "the task's train split once and is cached)")
    p.add_argument("--segmenter", default=None, metavar="NAME",
                   help="the downstream segmenter (default segresnet; 'command' for your own model; any installed "
                        "cmsbench.segmenters plugin)")
    p.add_argument("--segmenter-option", action="append", metavar="KEY=VALUE",
                   help="segmenter option, e.g. preset=gpu, or for 'command': command='{python} seg.py {input_dir} "
                        "{output_dir}' and files=seg.py")


def register(sub: argparse._SubParsersAction) -> None:
    """Add the benchmark sub-commands to the ``cmsbench`` parser."""
    p = sub.add_parser("run", help="fit, predict, score one method on one task and write a result record")
    p.add_argument("--task", required=True, help="task name or path to a task .toml")
    p.add_argument("--method", required=True, help="method name, package.module:Class or file.py:Class")
    p.add_argument("--data-root", default=None, help="dataset folder (default: the embedded phantom dataset)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    p.add_argument("--results", default="results", help="results folder (default ./results)")
    p.add_argument("--save-predictions", action="store_true", help="write predictions as NIfTI on the target grid")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="method hyper-parameter override")
    p.add_argument("--parameter", action="append", metavar="KEY=VALUE", help="task parameter, e.g. drf=10")
    p.add_argument("--split", default="default", help="split protocol variant (e.g. icon, mayo2016)")
    p.add_argument("--mode", default="default", help="metric convention: default or a compatibility mode")
    p.add_argument("--samples", type=int, default=1, help="samples per case for stochastic methods")
    p.add_argument("--max-cases", type=int, default=None, help="only the first N test cases (smoke runs)")
    p.add_argument("--refit", action="store_true", help="ignore a cached fitted state")
    p.add_argument("--thumbnails", type=int, default=3, metavar="N",
                   help="test cases drawn as small PNGs beside the record for the leaderboard (default 3; 0: none)")
    p.add_argument("--case-timeout", type=float, default=3600.0, metavar="SECONDS",
                   help="per-case limit on predict; a case over it fails and the run goes on (0: none; default 3600)")
    p.add_argument("--metric", action="append", metavar="NAME", help="extra registered metric to score (repeatable)")
    p.add_argument("--region", action="append", metavar="NAME", help="extra registered region to score (repeatable)")
    _add_downstream_arguments(p)
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("sweep", help="run a task x method x seed grid locally or on Ray")
    p.add_argument("--tasks", required=True, help="comma-separated task names")
    p.add_argument("--methods", required=True, help="comma-separated method names")
    p.add_argument("--seeds", default="0", help="comma-separated seeds")
    p.add_argument("--executor", choices=("local", "ray"), default="local")
    p.add_argument("--address", default=None, help="Ray cluster address (default: start a local Ray)")
    p.add_argument("--gpus-per-job", type=float, default=0.0)
    p.add_argument("--cpus-per-job", type=float, default=1.0)
    p.add_argument("--retries", type=int, default=2, help="retries of a failed job")
    p.add_argument("--results", default="results")
    p.add_argument("--data-root", action="append", metavar="[TASK=]DIR")
    p.add_argument("--option", action="append", metavar="KEY=VALUE", help="method option for every job")
    p.add_argument("--device", default="auto")
    p.add_argument("--max-cases", type=int, default=None)
    p.add_argument("--dry-run", action="store_true", help="print the plan: done jobs and jobs to run")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_sweep)

    p = sub.add_parser("methods", help="list the registered methods")
    p.add_argument("--long", action="store_true", help="load each method and show its card")
    p.set_defaults(func=cmd_methods)

    p = sub.add_parser("check-method", help="run the method-contract conformance checks on a fake task")
    p.add_argument("method", help="method name, package.module:Class or file.py:Class")
    p.add_argument("--option", action="append", metavar="KEY=VALUE")
    p.set_defaults(func=cmd_check_method)

    p = sub.add_parser("score", help="score a folder of predicted NIfTI files against a task's test split")
    p.add_argument("--task", required=True)
    p.add_argument("--predictions", required=True, help="folder of <case_id>.nii.gz on the target's grid")
    p.add_argument("--data-root", default=None)
    p.add_argument("--mode", default="default")
    p.add_argument("--split", default="default")
    p.add_argument("--prediction-units", choices=("dataset", "task", "raw"), default="dataset",
                   help="'dataset' (default): the intensity scale of the dataset's own files (MR predictions are "
                        "divided by the ground truth's normalisation divisor, like the target); 'task': already in "
                        "the task's units ('raw' is an old name of 'dataset')")
    p.add_argument("--out", default=None, help="JSON file for the per-case score records")
    _add_downstream_arguments(p)
    p.add_argument("--seed", type=int, default=0, help="seed of the downstream segmenter's training")
    p.add_argument("--device", default="auto", help="device of the downstream segmenter: auto, cpu, cuda")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_score)

    p = sub.add_parser("metrics", help="list the registered metrics with direction and convention")
    p.add_argument("--long", action="store_true", help="full conventions")
    p.set_defaults(func=cmd_metrics)
    p = sub.add_parser("regions", help="list the registered evaluation regions")
    p.set_defaults(func=cmd_regions)
    p = sub.add_parser("modes", help="list the scoring modes and the official code each reproduces")
    p.set_defaults(func=cmd_modes)

"""Hardening of runs: data identity by content, one writer per record, time limits, misbehaving plugins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cmsbench.benchmark.runner import RunConfig, run
from cmsbench.errors import MethodError
from cmsbench.results import load, load_record
from cmsbench.tasks.dataset import open_dataset
from cmsbench.tasks.registry import get_task

METHODS = textwrap.dedent('''
    import os, sys, time
    import numpy as np
    from cmsbench.baselines.base import Method, MethodCard

    class _Base(Method):
        defaults = {"delay": 0.0, "log": ""}
        def predict(self, inputs):
            if self.options["log"]:
                with open(self.options["log"], "a") as fh:
                    fh.write(f"{os.getpid()}\\n")
            time.sleep(self.options["delay"])
            stack, ref = self.stack_inputs(inputs)
            return self.output(stack[0], ref)

    class Slow(_Base):
        card = MethodCard("slow_copy", "1", "copies the first input slowly", needs_training=False)

    class Hangs(_Base):
        card = MethodCard("hangs", "1", "never returns on its first case", needs_training=False)
        calls = 0
        def predict(self, inputs):
            type(self).calls += 1
            if type(self).calls == 1:
                while True:
                    pass
            return super().predict(inputs)

    class Exits(_Base):
        card = MethodCard("exits", "1", "calls sys.exit in predict", needs_training=False)
        def predict(self, inputs):
            sys.exit(0)

    class FitRaises(_Base):
        card = MethodCard("fit_raises", "1", "raises in fit")
        def _fit(self, train, val, ctx):
            raise ZeroDivisionError("bad plugin")
''')


@pytest.fixture()
def brats(brats_tiny: Path) -> Path:
    return brats_tiny


@pytest.fixture()
def methods(tmp_path: Path) -> Path:
    path = tmp_path / "hostile.py"
    path.write_text(METHODS)
    return path


def _rewrite_same_size(path: Path, shift: float) -> None:
    """New pixels (+shift on every other foreground voxel), same header and the same file size: the NIfTI
    bytes are stored in the gzip container uncompressed (level 0), so the size depends only on the array's."""
    import gzip

    import nibabel as nib

    img = nib.load(str(path))
    data = np.asarray(img.dataobj)
    checker = (np.indices(data.shape).sum(axis=0) % 2).astype(bool)
    out = nib.Nifti1Image((data + shift * ((data > 0) & checker)).astype(data.dtype), img.affine, img.header)
    path.write_bytes(gzip.compress(out.to_bytes(), compresslevel=0, mtime=0))


def test_rewritten_test_case_is_scored_again_and_train_change_refits(brats: Path, tmp_path: Path) -> None:
    dataset = open_dataset(get_task("brats_flair"), brats)
    test_id, other = dataset.split.test[0], dataset.split.test[1]
    flair = brats / test_id / f"{test_id}_flair.nii.gz"
    train_t1 = brats / dataset.split.train[0] / f"{dataset.split.train[0]}_t1.nii.gz"
    _rewrite_same_size(flair, 0)  # the same image, stored uncompressed: later rewrites keep the size
    _rewrite_same_size(train_t1, 0)
    config = RunConfig(task="brats_flair", method="linear", data_root=str(brats), device="cpu",
                       results=tmp_path / "res")
    first = run(config)
    before = first.record.cases[test_id].scores["brain"]["psnr"]
    size = flair.stat().st_size
    _rewrite_same_size(flair, 300)
    assert flair.stat().st_size == size
    second = run(config)
    assert second.path == first.path  # same run (same train data), the changed case is recomputed
    assert second.record.cases[test_id].ok, second.record.cases[test_id].error
    assert second.record.cases[test_id].scores["brain"]["psnr"] != before
    assert second.record.cases[other].scores == first.record.cases[other].scores
    assert second.record.timing["fit_cached"] is True
    # a rewritten training case is other data: a new run and a new fit
    size = train_t1.stat().st_size
    _rewrite_same_size(train_t1, 5)
    assert train_t1.stat().st_size == size
    third = run(config)
    assert third.path != first.path and third.record.timing["fit_cached"] is False


@pytest.mark.slow
def test_two_concurrent_runs_record_every_case_once(brats: Path, methods: Path, tmp_path: Path) -> None:
    log = tmp_path / "predict.log"
    cmd = [sys.executable, "-m", "cmsbench", "run", "--task", "brats_flair", "--method", f"{methods}:Slow",
           "--data-root", str(brats), "--results", str(tmp_path / "res"), "--device", "cpu", "--quiet",
           "--option", "delay=0.4", "--option", f"log={log}"]
    a = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(1.0)
    b = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    out_a, err_a = a.communicate(timeout=300)
    out_b, err_b = b.communicate(timeout=300)
    assert a.returncode == 0 and b.returncode == 0, (err_a, err_b)
    records = list(load(tmp_path / "res"))
    assert len(records) == 1
    _, rec = records[0]
    assert rec.status == "complete" and sorted(rec.cases) == sorted(rec.split.test_ids)
    predicted = log.read_text().split()
    assert len(predicted) == len(rec.split.test_ids)  # every case predicted once, by one process
    assert "being written by PID" in err_b  # the second run said whom it waited for
    assert "psnr" in out_a and "psnr" in out_b  # both report the (same) complete results


def test_a_hanging_predict_fails_that_case_only(brats: Path, methods: Path, tmp_path: Path) -> None:
    outcome = run(RunConfig(task="brats_flair", method=f"{methods}:Hangs", data_root=str(brats), device="cpu",
                            results=tmp_path / "res", case_timeout_s=0.5))
    failed = outcome.failed
    assert len(failed) == 1 and "exceeded the per-case time limit of 0.5 s" in next(iter(failed.values()))
    assert len(outcome.record.ok_cases()) == len(outcome.record.cases) - 1 > 0  # the run went on
    assert outcome.record.status == "complete_with_failures"


def test_sys_exit_in_predict_is_recorded_not_obeyed(brats: Path, methods: Path, tmp_path: Path) -> None:
    outcome = run(RunConfig(task="brats_flair", method=f"{methods}:Exits", data_root=str(brats), device="cpu",
                            results=tmp_path / "res"))
    assert len(outcome.failed) == len(outcome.record.cases) > 0
    assert all("SystemExit" in e for e in outcome.failed.values())
    assert load_record(outcome.path).status == "complete_with_failures"


def test_a_plugin_that_raises_in_fit_gets_a_clear_error(brats: Path, methods: Path, tmp_path: Path,
                                                         capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(MethodError, match="'fit_raises' raised ZeroDivisionError in fit: bad plugin"):
        run(RunConfig(task="brats_flair", method=f"{methods}:FitRaises", data_root=str(brats), device="cpu",
                      results=tmp_path / "res"))
    from cmsbench.cli import main

    rc = main(["run", "--task", "brats_flair", "--method", f"{methods}:FitRaises", "--data-root", str(brats),
               "--results", str(tmp_path / "res"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and "ZeroDivisionError in fit" in err and "Traceback (most recent call last)" not in err


def test_names_are_checked_before_any_fit(brats: Path, methods: Path, tmp_path: Path) -> None:
    from cmsbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="synthrad2023"):
        run(RunConfig(task="brats_flair", method=f"{methods}:FitRaises", data_root=str(brats), device="cpu",
                      results=tmp_path / "res", mode="synthrad2032"))
    assert not (tmp_path / "res").exists()  # nothing fitted, nothing written


def test_max_cases_records_are_partial_and_never_satisfy_a_full_run(brats: Path, tmp_path: Path) -> None:
    smoke = run(RunConfig(task="brats_flair", method="identity", data_root=str(brats), device="cpu",
                          results=tmp_path / "res", max_cases=2))
    assert smoke.record.partial and len(smoke.record.cases) == 2
    full = run(RunConfig(task="brats_flair", method="identity", data_root=str(brats), device="cpu",
                         results=tmp_path / "res"))
    assert not full.record.partial and full.path != smoke.path
    assert len(full.record.cases) == len(full.record.split.test_ids) > 2


def test_internal_errors_exit_2_with_a_hint_and_no_traceback(monkeypatch, capsys) -> None:
    from cmsbench import cli

    def boom(args):
        raise RuntimeError("unexpected")

    monkeypatch.setattr("cmsbench.cli.cmd_tasks", boom)
    parser = cli.build_parser
    monkeypatch.setattr(cli, "build_parser", lambda: _patched(parser(), boom))
    rc = cli.main(["tasks"])
    err = capsys.readouterr().err
    assert rc == 2 and "internal error: RuntimeError: unexpected" in err and "please report it" in err
    assert "Traceback" not in err


def _patched(parser, func):
    parser.set_defaults(func=func)
    for action in parser._subparsers._group_actions:  # the sub-command's own default wins over the parser's
        for sub in action.choices.values():
            sub.set_defaults(func=func)
    return parser


# ------------------------------------------------------------------------------------------ leaderboard
def test_leaderboard_skips_malformed_and_unreadable_files_with_reasons(tmp_path: Path, capsys) -> None:
    import os

    from cmsbench.cli import main
    from cmsbench.testing.synthetic import demo_results

    results = tmp_path / "res"
    demo_results(results, n_cases=12)
    good = next(results.rglob("*.json"))
    malformed = good.with_name("malformed.json")
    data = good.read_text().replace('"cases": {', '"cases": [], "_was": {', 1)
    malformed.write_text(data)
    unreadable = good.with_name("unreadable.json")
    unreadable.write_text("{}")
    os.chmod(unreadable, 0)
    deep = good.with_name("deep.json")
    deep.write_text("[" * 100_000 + "]" * 100_000)
    try:
        rc = main(["leaderboard", "--results", str(results), "--out", str(tmp_path / "site"), "--images", "0"])
        err = capsys.readouterr().err
        assert rc == 0 and (tmp_path / "site" / "index.html").exists()
        assert f"skipped {malformed}: " in err and "cases" in err.split(f"skipped {malformed}: ")[1].splitlines()[0]
        assert f"skipped {deep}: " in err
        if os.geteuid() != 0:  # root reads anything
            assert f"skipped {unreadable}: " in err
        else:
            assert f"skipped {unreadable}: " in err and "not a cmsbench result record" in err
        # nothing usable: non-zero exit, with the reasons
        only_bad = tmp_path / "bad"
        only_bad.mkdir()
        malformed.replace(only_bad / "malformed.json")
        rc = main(["leaderboard", "--results", str(only_bad), "--out", str(tmp_path / "site2")])
        assert rc == 2 and "no usable result records" in capsys.readouterr().err
    finally:
        os.chmod(unreadable, 0o644)


def test_rank_bootstrap_fast_path_equals_the_gather(monkeypatch) -> None:
    """Above MAX_BOOTSTRAP_N cases the rank bootstrap uses case counts and a matrix product: same numbers."""
    from cmsbench.leaderboard import aggregate as agg
    from cmsbench.testing.synthetic import draw_scores, make_record

    ids = [f"c{i}" for i in range(300)]
    entries = []
    for k, mu in enumerate((30.0, 30.2, 29.5)):
        rec = make_record(draw_scores(ids, {"brain": {"psnr": mu}}, sd=1.0, seed=k), method=f"m{k}")
        entries.extend(agg.build_boards([(None, rec)])[0].entries)
    monkeypatch.setattr(agg, "MAX_BOOTSTRAP_N", 10**9)
    slow = agg.compute_metric_board(entries, "brain", "psnr")
    monkeypatch.setattr(agg, "MAX_BOOTSTRAP_N", 0)
    fast = agg.compute_metric_board(entries, "brain", "psnr")
    for key, r in slow.ranks.items():
        for field in ("rta_low", "rta_high", "atr_low", "atr_high", "mean_rank"):
            assert getattr(fast.ranks[key], field) == pytest.approx(getattr(r, field), abs=1e-9), field


BAD_PLUGINS = textwrap.dedent('''
    from cmsbench.baselines.base import Method, MethodCard

    class NoCard(Method):
        defaults = {}
        def predict(self, inputs):
            stack, ref = self.stack_inputs(inputs)
            return self.output(stack[0], ref)

    class BadState(NoCard):
        card = MethodCard("bad_state", "1", "returns a non-array state")
        def _fit(self, train, val, ctx):
            pass
        def get_state(self):
            return {"w": "not an array"}, {}
''')


@pytest.mark.parametrize("cls, message", [
    ("NoCard", "has no card: set the class attribute card = MethodCard"),
    ("BadState", "get_state entry 'w' is str (dtype <U12), not a numeric array"),
])
def test_plugins_without_card_or_with_a_bad_state_get_clear_errors(brats: Path, tmp_path: Path, capsys,
                                                                    cls: str, message: str) -> None:
    from cmsbench.cli import main

    path = tmp_path / "bad_plugins.py"
    path.write_text(BAD_PLUGINS)
    rc = main(["run", "--task", "brats_flair", "--method", f"{path}:{cls}", "--data-root", str(brats),
               "--results", str(tmp_path / "res"), "--quiet"])
    err = capsys.readouterr().err
    assert rc == 2 and message in err and "internal error" not in err


# ------------------------------------------------------------------------------- review findings, fixed
def test_equal_settings_give_one_run_identity(brats: Path) -> None:
    from cmsbench.benchmark.runner import resolve_run

    a = resolve_run(RunConfig(task="brats_flair", method="gaussian", data_root=str(brats), options={"sigma": 1}))
    b = resolve_run(RunConfig(task="brats_flair", method="gaussian", data_root=str(brats), options={"sigma": 1.0}))
    assert a.identity.run_id() == b.identity.run_id()
    c = resolve_run(RunConfig(task="brats_flair", method="identity", data_root=str(brats), metrics=("mse", "nrmse")))
    d = resolve_run(RunConfig(task="brats_flair", method="identity", data_root=str(brats), metrics=("nrmse", "mse")))
    assert c.identity.run_id() == d.identity.run_id()


def test_a_window_metric_with_the_tasks_own_window_is_not_confused_with_the_task_sums() -> None:
    import dataclasses

    from cmsbench.benchmark.scorer import score_case
    from cmsbench.tasks.builtin import LDCT
    from cmsbench.tasks.spec import DataRange

    rng = np.random.default_rng(0)
    gt = rng.normal(40, 60, (24, 24, 12)).astype(np.float32)
    pr = (gt + rng.normal(0, 15, gt.shape)).astype(np.float32)
    body = np.ones(gt.shape, bool)
    plain = dataclasses.replace(LDCT, metrics=("mae", "psnr", "ssim_abdomen"), main_metric="mae")
    same = dataclasses.replace(plain, data_range=DataRange("window", low=-150.0, high=250.0))
    a = score_case(gt, pr, {"body": body}, plain).value("body", "ssim_abdomen")
    b = score_case(gt, pr, {"body": body}, same).value("body", "ssim_abdomen")
    assert np.isfinite(a) and a == pytest.approx(b, rel=1e-9)


def test_registered_unranked_metric_stays_unranked() -> None:
    from cmsbench.leaderboard.aggregate import higher_is_better

    assert higher_is_better("suvmean_pct_error") is None  # registered, direction None (signed)
    assert higher_is_better("mae") is False and higher_is_better("psnr") is True
    assert higher_is_better("mae_signed", {"mae_signed": None}) is None  # recorded None wins over the name table


def test_one_process_cannot_take_a_record_lock_twice(tmp_path: Path) -> None:
    from cmsbench.errors import CmsbenchError
    from cmsbench.results.lock import RecordLock

    with RecordLock(tmp_path / "r.json"):
        with pytest.raises(CmsbenchError, match="already writing"):
            with RecordLock(tmp_path / "r.json"):
                pass
    with RecordLock(tmp_path / "r.json"):  # released: taken again
        pass


def test_a_failing_fit_is_recorded(brats: Path, methods: Path, tmp_path: Path) -> None:
    with pytest.raises(MethodError):
        run(RunConfig(task="brats_flair", method=f"{methods}:FitRaises", data_root=str(brats), device="cpu",
                      results=tmp_path / "res"))
    (path, rec), = list(load(tmp_path / "res"))
    assert rec.status == "failed" and "ZeroDivisionError" in rec.problems[0] and not rec.cases

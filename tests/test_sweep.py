"""Sweeps: plan, local and Ray executors, resume, and a worker killed mid-job."""

from __future__ import annotations

import os
import signal
import textwrap
import threading
import time
from pathlib import Path

import pytest

from cmsbench.benchmark.runner import RunConfig, run
from cmsbench.benchmark.sweep import plan_sweep, run_local, run_ray
from cmsbench.results import load, load_record
from cmsbench.testing import layouts


@pytest.fixture(scope="module")
def roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    base = tmp_path_factory.mktemp("sweep_data")
    layouts.write_brats(base / "brats", n=24)
    layouts.write_synthrad(base / "synthrad", n=24)
    return {"brats_flair": str(base / "brats"), "mr_ct": str(base / "synthrad")}


def _scores(results: Path) -> dict[tuple[str, str, int], dict]:
    out = {}
    for _, rec in load(results):
        key = (rec.task.name, rec.method.name, rec.seed)
        assert key not in out, f"duplicate record for {key}"
        out[key] = {cid: c.scores for cid, c in rec.cases.items()}
    return out


def _one_by_one(roots: dict[str, str], results: Path) -> dict:
    for task in ("brats_flair", "mr_ct"):
        for method in ("identity", "linear"):
            for seed in (0, 1):
                run(RunConfig(task=task, method=method, seed=seed, data_root=roots[task], results=results, device="cpu"))
    return _scores(results)


def test_local_sweep_matches_single_runs_and_dry_run_after_has_nothing_to_do(
    roots, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    reference = _one_by_one(roots, tmp_path / "single")
    plan = plan_sweep(["brats_flair", "mr_ct"], ["identity", "linear"], [0, 1], results=tmp_path / "sweep",
                      data_roots=roots, device="cpu")
    assert len(plan.todo) == 8
    run_local(plan)
    assert all(j.state == "ok" for j in plan.jobs)
    assert _scores(tmp_path / "sweep") == reference
    again = plan_sweep(["brats_flair", "mr_ct"], ["identity", "linear"], [0, 1], results=tmp_path / "sweep",
                       data_roots=roots, device="cpu")
    assert again.todo == [] and "0 to run" in again.describe()
    # the leaderboard reads the sweep's results folder directly
    from cmsbench.cli import main

    assert main(["table", "--task", "mr_ct", "--results", str(tmp_path / "sweep"), "--format", "md"]) == 0
    site = tmp_path / "site"
    assert main(["leaderboard", "--results", str(tmp_path / "sweep"), "--out", str(site)]) == 0
    assert (site / "index.html").exists()
    out = capsys.readouterr().out
    assert "identity" in out and "linear" in out


def test_sweep_cli_dry_run(roots, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from cmsbench.cli import main

    rc = main(["sweep", "--tasks", "brats_flair", "--methods", "identity,linear", "--seeds", "0",
               "--data-root", roots["brats_flair"], "--results", str(tmp_path), "--dry-run"])
    assert rc == 0 and "2 job(s): 0 done, 2 to run" in capsys.readouterr().out
    rc = main(["sweep", "--tasks", "brats_flair", "--methods", "identity", "--seeds", "0", "--device", "cpu",
               "--data-root", roots["brats_flair"], "--results", str(tmp_path), "--quiet"])
    assert rc == 0
    main(["sweep", "--tasks", "brats_flair", "--methods", "identity,linear", "--seeds", "0",
          "--data-root", roots["brats_flair"], "--results", str(tmp_path), "--dry-run"])
    assert "2 job(s): 1 done, 1 to run" in capsys.readouterr().out


@pytest.mark.slow
def test_ray_sweep_matches_single_runs(roots, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    reference = _one_by_one(roots, tmp_path / "single")
    plan = plan_sweep(["brats_flair", "mr_ct"], ["identity", "linear"], [0, 1], results=tmp_path / "ray",
                      data_roots=roots, device="cpu")
    run_ray(plan, num_cpus=2)
    assert all(j.state == "ok" for j in plan.jobs), [(j.key, j.error) for j in plan.jobs]
    assert _scores(tmp_path / "ray") == reference


SLOW_METHOD = textwrap.dedent('''
    import os, time
    from cmsbench.baselines.base import Method, MethodCard

    class SlowCopy(Method):
        card = MethodCard("slow_copy", "1", "copies the first input, slowly", needs_training=False)
        defaults = {"pid_dir": "", "delay": 0.3}
        def predict(self, inputs):
            with open(os.path.join(self.options["pid_dir"], f"{os.getpid()}.pid"), "w") as handle:
                handle.write("x")
            time.sleep(self.options["delay"])
            stack, ref = self.stack_inputs(inputs)
            return self.output(stack[0], ref)
''')


@pytest.mark.slow
def test_killing_a_ray_worker_loses_nothing_and_duplicates_nothing(roots, tmp_path: Path) -> None:
    pytest.importorskip("ray")
    method_file = tmp_path / "slow_method.py"
    method_file.write_text(SLOW_METHOD)
    pid_dir = tmp_path / "pids"
    pid_dir.mkdir()
    plan = plan_sweep(["brats_flair"], [f"{method_file}:SlowCopy"], [0, 1], results=tmp_path / "res",
                      data_roots=roots, device="cpu", options={"pid_dir": str(pid_dir), "delay": 0.4})
    errors: list[BaseException] = []

    def sweep() -> None:
        try:
            run_ray(plan, num_cpus=2, retries=3)
        except BaseException as exc:  # pragma: no cover - surfaced below
            errors.append(exc)

    thread = threading.Thread(target=sweep)
    thread.start()
    deadline = time.time() + 180
    killed = None
    while time.time() < deadline and killed is None:
        records = [p for p in (tmp_path / "res").rglob("*.json")] if (tmp_path / "res").exists() else []
        partial = [p for p in records if not p.name.startswith(".")]
        pids = sorted(pid_dir.glob("*.pid"))
        if pids and partial:
            rec = load_record(partial[0])
            if len(rec.cases) >= 1:
                killed = int(pids[0].stem)
                os.kill(killed, signal.SIGKILL)
                break
        time.sleep(0.05)
    thread.join(timeout=600)
    assert not errors, errors
    assert killed is not None, "no worker was seen running"
    assert all(j.state == "ok" for j in plan.jobs), [(j.key, j.state, j.error) for j in plan.jobs]
    records = list(load(tmp_path / "res"))
    assert len(records) == 2
    for _, rec in records:
        assert rec.status == "complete"
        assert sorted(rec.cases) == sorted(rec.split.test_ids)

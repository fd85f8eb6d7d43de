"""The runner: end to end on tiny data, failure isolation, resume after kill -9, plugins by entry point."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest

from cmsbench.benchmark.runner import RunConfig, run
from cmsbench.results import load_record

METHODS_PY = textwrap.dedent('''
    import os, time
    import numpy as np
    from cmsbench.baselines.base import Method, MethodCard

    class _Base(Method):
        defaults = {}
        def predict(self, inputs):
            stack, ref = self.stack_inputs(inputs)
            return self.output(stack.mean(axis=0), ref)

    class Slow(_Base):
        card = MethodCard("slow", "1", "mean of inputs, slowly", needs_training=False)
        defaults = {"log": "", "delay": 0.4}
        def predict(self, inputs):
            out = super().predict(inputs)
            time.sleep(self.options["delay"])
            with open(self.options["log"], "a") as handle:
                handle.write(str(int(np.asarray(inputs["t1"].data).sum())) + "\\n")
            return out

    class Flaky(_Base):
        """Fails differently on each of three cases, succeeds on the rest."""
        card = MethodCard("flaky", "1", "breaks on purpose", needs_training=False)
        calls = 0
        def predict(self, inputs):
            Flaky.calls += 1
            out = super().predict(inputs)
            if Flaky.calls == 1:
                raise RuntimeError("boom")
            if Flaky.calls == 2:
                return out.with_data(out.data[:-1])
            if Flaky.calls == 3:
                data = np.array(out.data); data[0, 0, 0] = np.nan
                return out.with_data(data)
            if Flaky.calls == 4:
                return out.with_data(out.data.astype(np.int16))
            return out
''')


@pytest.fixture()
def methods_file(tmp_path: Path) -> Path:
    path = tmp_path / "my_methods.py"
    path.write_text(METHODS_PY)
    return path


def test_run_end_to_end_writes_a_reproducible_record(brats_tiny: Path, tmp_path: Path) -> None:
    config = RunConfig(task="brats_flair", method="linear", data_root=str(brats_tiny), results=tmp_path / "res",
                       device="cpu", save_predictions=True)
    outcome = run(config)
    rec = load_record(outcome.path)
    assert rec.status == "complete" and not outcome.failed
    assert set(rec.cases) == set(rec.split.test_ids) and len(rec.cases) >= 2
    raw = json.loads(outcome.path.read_text())
    for key in ("schema", "identity", "task", "method", "seed", "split", "data", "environment", "timing", "memory",
                "scoring"):
        assert key in raw
    assert raw["schema"] == "cmsbench.result/2" and raw["identity"]["method"] == "linear"
    assert rec.run_id == rec.identity.run_id() == outcome.path.stem
    assert rec.scoring.metrics["psnr"].direction == "higher" and rec.scoring.metrics["mae"].direction == "lower"
    assert rec.task.version == "1.0" and rec.split.test_hash
    assert rec.data.kind == "real" and rec.data.fingerprint
    assert rec.environment["torch"] and rec.environment["cmsbench"]
    assert rec.scoring.convention
    case = next(iter(rec.cases.values()))
    assert "psnr" in case.scores["brain"] and case.timing["predict_s"] >= 0
    pred = Path(case.prediction)
    assert pred.exists()
    # the fitted state is cached: a second run with another results folder does not refit
    again = run(RunConfig(task="brats_flair", method="linear", data_root=str(brats_tiny), results=tmp_path / "res2",
                          device="cpu"))
    assert again.record.timing["fit_cached"] is True
    assert again.record.cases.keys() == rec.cases.keys()
    first = next(iter(rec.cases))
    assert again.record.cases[first].scores == rec.cases[first].scores


def test_failures_are_isolated_and_reported(brats_tiny: Path, methods_file: Path, tmp_path: Path) -> None:
    outcome = run(RunConfig(task="brats_flair", method=f"{methods_file}:Flaky", data_root=str(brats_tiny),
                            results=tmp_path / "res", device="cpu"))
    failed = outcome.failed
    assert len(failed) == 4, failed
    messages = " | ".join(failed.values())
    assert "raised RuntimeError" in messages and "boom" in messages
    assert "shape (" in messages and "non-finite voxel" in messages and "dtype int16" in messages
    ok = [c for c in outcome.record.cases.values() if c.status == "ok"]
    assert len(ok) == len(outcome.record.cases) - 4 and ok
    assert outcome.record.status == "complete_with_failures"


def test_cli_exit_code_names_failed_cases(brats_tiny: Path, methods_file: Path, tmp_path: Path,
                                           capsys: pytest.CaptureFixture[str]) -> None:
    from cmsbench.cli import main

    rc = main(["run", "--task", "brats_flair", "--method", f"{methods_file}:Flaky", "--data-root", str(brats_tiny),
               "--results", str(tmp_path / "res"), "--device", "cpu", "--quiet"])
    out = capsys.readouterr().out
    assert rc == 1 and "4 case(s) failed" in out and "boom" in out


def test_kill_minus_nine_then_resume_records_every_case_once(brats_tiny: Path, methods_file: Path, tmp_path: Path) -> None:
    log = tmp_path / "predict.log"
    results = tmp_path / "res"
    cmd = [sys.executable, "-m", "cmsbench", "run", "--task", "brats_flair", "--method", f"{methods_file}:Slow",
           "--data-root", str(brats_tiny), "--results", str(results), "--device", "cpu", "--quiet",
           "--option", f"log={json.dumps(str(log))}", "--option", "delay=0.5"]
    env = {**os.environ}
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=env)
    deadline = time.time() + 120
    done_before = 0
    while time.time() < deadline:
        records = list(results.rglob("*.json"))
        if records:
            try:
                done_before = len(json.loads(records[0].read_text())["cases"])
            except (ValueError, OSError):
                done_before = 0
        if done_before >= 2:
            break
        time.sleep(0.05)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert done_before >= 2, proc.stderr.read().decode()[-2000:]
    record_path = next(results.rglob("*.json"))
    partial = load_record(record_path)  # never torn
    assert partial.status == "running"
    n_partial = len(partial.cases)
    n_logged_first = len(log.read_text().splitlines())
    second = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)
    assert second.returncode == 0, second.stderr[-2000:]
    final = load_record(record_path)
    assert final.status == "complete"
    assert sorted(final.cases) == sorted(final.split.test_ids)
    assert all(c.status == "ok" for c in final.cases.values())
    n_test = len(final.split.test_ids)
    assert n_partial < n_test
    predicted_second = len(log.read_text().splitlines()) - n_logged_first
    assert predicted_second == n_test - n_partial  # done cases were skipped, the rest ran once
    assert len(list(results.rglob("*.json"))) == 1


PLUGIN_PYPROJECT = textwrap.dedent('''
    [build-system]
    requires = ["setuptools>=61"]
    build-backend = "setuptools.build_meta"
    [project]
    name = "cmsbench-toy-plugin"
    version = "0.0.1"
    [project.entry-points."cmsbench.methods"]
    toy_plugin = "cmsbench_toy_plugin:ToyScaled"
    [tool.setuptools]
    py-modules = ["cmsbench_toy_plugin"]
''')

PLUGIN_MODULE = textwrap.dedent('''
    import numpy as np
    from cmsbench.baselines.base import Method, MethodCard

    class ToyScaled(Method):
        """The first input times a scale fitted by least squares on the train split."""
        card = MethodCard("toy_plugin", "0.0.1", "first input times a fitted scale", licence="MIT")
        defaults = {}
        def _fit(self, train, val, ctx):
            num = den = 0.0
            for case in train:
                x = np.asarray(case.inputs[self.inputs[0]].data, np.float64)
                y = np.asarray(case.target.data, np.float64)
                num += float((x * y).sum()); den += float((x * x).sum())
            self.scale = num / den
        def predict(self, inputs):
            self.require_fitted()
            stack, ref = self.stack_inputs(inputs)
            return self.output(stack[0] * self.scale, ref)
        def get_state(self):
            return {"scale": np.array([self.scale])}, {}
        def set_state(self, arrays, meta):
            self.scale = float(arrays["scale"][0])
''')


@pytest.mark.slow
def test_third_party_plugin_installed_by_entry_point(brats_tiny: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "plugin"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(PLUGIN_PYPROJECT)
    (pkg / "cmsbench_toy_plugin.py").write_text(PLUGIN_MODULE)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(pkg)]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    try:
        listed = subprocess.run([sys.executable, "-m", "cmsbench", "methods"], capture_output=True, text=True, timeout=120)
        assert "toy_plugin" in listed.stdout and "cmsbench-toy-plugin" in listed.stdout
        check = subprocess.run([sys.executable, "-m", "cmsbench", "check-method", "toy_plugin"],
                               capture_output=True, text=True, timeout=300)
        assert check.returncode == 0, check.stdout + check.stderr
        assert "checks passed" in check.stdout
        ran = subprocess.run([sys.executable, "-m", "cmsbench", "run", "--task", "brats_flair", "--method", "toy_plugin",
                              "--data-root", str(brats_tiny), "--results", str(tmp_path / "res"), "--device", "cpu",
                              "--quiet"], capture_output=True, text=True, timeout=300)
        assert ran.returncode == 0, ran.stdout + ran.stderr
        assert "psnr" in ran.stdout and "toy_plugin" in ran.stdout
        record = load_record(next((tmp_path / "res").rglob("*.json")))
        assert record.method.card["licence"] == "MIT"
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "cmsbench-toy-plugin"],
                       capture_output=True, timeout=300)


def test_method_given_as_module_path_and_unknown_names(brats_tiny: Path, tmp_path: Path) -> None:
    from cmsbench.baselines.registry import get_method_class
    from cmsbench.errors import UnknownNameError

    assert get_method_class("cmsbench.baselines.classical:LinearRegressionMethod").card.name == "linear"
    with pytest.raises(UnknownNameError, match="Did you mean 'linear'"):
        get_method_class("lineer")
    with pytest.raises(Exception, match="no_such_mod"):
        get_method_class("no_such_mod:Thing")


def test_fitted_state_loads_without_executing_code(brats_tiny: Path, tmp_path: Path) -> None:
    outcome = run(RunConfig(task="brats_flair", method="linear", data_root=str(brats_tiny), results=tmp_path / "r",
                            device="cpu"))
    state_dir = Path(outcome.record.fitted_state)
    assert sorted(p.name for p in state_dir.iterdir()) == ["meta.json", "state.safetensors"]
    json.loads((state_dir / "meta.json").read_text())  # plain JSON
    from safetensors.numpy import load_file

    arrays = load_file(str(state_dir / "state.safetensors"))
    assert all(isinstance(v, np.ndarray) for v in arrays.values())


NOISY_PY = textwrap.dedent('''
    import numpy as np
    import torch
    from cmsbench.baselines.base import Method, MethodCard

    class NoisyMean(Method):
        """Mean of the inputs plus noise from the global torch generator (seeded per case by the runner)."""
        card = MethodCard("noisy_mean", "1", "stochastic on purpose", needs_training=False, stochastic=True)
        defaults = {}
        def predict(self, inputs):
            stack, ref = self.stack_inputs(inputs)
            self.last_nfe = 4
            noise = torch.randn(stack.shape[1:], dtype=torch.float64).numpy().astype(np.float32)
            return self.output(stack.mean(axis=0) + 0.1 * noise, ref)
''')


def test_samples_record_spread_and_nfe_and_are_reproducible(brats_tiny: Path, tmp_path: Path) -> None:
    path = tmp_path / "noisy.py"
    path.write_text(NOISY_PY)
    config = RunConfig(task="brats_flair", method=f"{path}:NoisyMean", data_root=str(brats_tiny), device="cpu",
                       results=tmp_path / "a", samples=3)
    first = run(config).record
    case = next(iter(first.cases.values()))
    assert case.sample_spread > 0.05 and case.timing["nfe"] == 12
    again = run(RunConfig(**{**config.__dict__, "results": tmp_path / "b"})).record
    assert {k: v.model_dump(exclude={"timing"}) for k, v in again.cases.items()} == {
        k: v.model_dump(exclude={"timing"}) for k, v in first.cases.items()}

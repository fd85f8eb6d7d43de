"""Third-party metrics and regions through entry points: listed, scored, recorded and ranked like built-ins."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from cmsbench.results import load

PYPROJECT = textwrap.dedent('''
    [build-system]
    requires = ["setuptools>=61"]
    build-backend = "setuptools.build_meta"
    [project]
    name = "cmsbench-toy-metrics"
    version = "0.0.1"
    [project.entry-points."cmsbench.metrics"]
    max_abs_error = "cmsbench_toy_metrics:MAX_ABS_ERROR"
    broken_metric = "cmsbench_toy_metrics:BROKEN"
    set_bias = "cmsbench_toy_metrics:SET_BIAS"
    [project.entry-points."cmsbench.regions"]
    brain_core = "cmsbench_toy_metrics:BRAIN_CORE"
    [tool.setuptools]
    py-modules = ["cmsbench_toy_metrics"]
''')

MODULE = textwrap.dedent('''
    import numpy as np
    from scipy import ndimage
    from cmsbench.benchmark.metrics.api import Metric, Region, SetValue

    def _max_abs_error(ctx, region):
        t, p = ctx.voxels(region)
        return float(np.abs(t - p).max())

    def _broken(ctx, region):
        raise RuntimeError("this plugin metric is broken")

    def _bias_features(ctx, region):
        t, p = ctx.voxels(region)
        return np.array([float(np.mean(p - t))])

    def _bias_aggregate(features, seed):
        x = np.array([f[0] for f in features])
        half = 2.0 * x.std(ddof=1) / np.sqrt(x.size)
        return SetValue(float(x.mean()), float(x.mean() - half), float(x.mean() + half), int(x.size))

    def _brain_core(target, masks, *, case_id="", cache=None):
        return ndimage.binary_erosion(np.asarray(masks["brain"], bool), iterations=2)

    MAX_ABS_ERROR = Metric("max_abs_error", "lower", "largest absolute voxel error", "task units, region voxels",
                           _max_abs_error)
    BROKEN = Metric("broken_metric", "higher", "always raises", "", _broken)
    SET_BIAS = Metric("set_bias", None, "mean signed error over the test set", "mean over cases of mean(pred - gt)",
                      level="set", features=_bias_features, aggregate=_bias_aggregate)
    BRAIN_CORE = Region("brain_core", "brain mask eroded twice (toy plugin)", _brain_core)
''')


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "cmsbench", *args], capture_output=True, text=True, timeout=600)


@pytest.mark.slow
def test_plugin_metric_and_region_are_listed_recorded_and_ranked(brats_tiny: Path, tmp_path: Path) -> None:
    pkg = tmp_path / "plugin"
    pkg.mkdir()
    (pkg / "pyproject.toml").write_text(PYPROJECT)
    (pkg / "cmsbench_toy_metrics.py").write_text(MODULE)
    pip = [sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", str(pkg)]
    installed = subprocess.run(pip, capture_output=True, text=True, timeout=300)
    assert installed.returncode == 0, installed.stderr[-2000:]
    try:
        listed = _cli("metrics")
        assert listed.returncode == 0, listed.stderr
        line = next(ln for ln in listed.stdout.splitlines() if ln.startswith("max_abs_error"))
        assert "lower" in line and "cmsbench-toy-metrics" in line
        assert any(ln.startswith("set_bias") and " set " in ln for ln in listed.stdout.splitlines())
        assert any(ln.startswith("psnr") and "higher" in ln for ln in listed.stdout.splitlines())
        regions = _cli("regions")
        assert "brain_core" in regions.stdout and "eroded" in regions.stdout

        results = tmp_path / "res"
        extra = ["--metric", "max_abs_error", "--metric", "broken_metric", "--metric", "set_bias",
                 "--region", "brain_core"]
        for method in ("identity", "linear"):
            ran = _cli("run", "--task", "brats_flair", "--method", method, "--data-root", str(brats_tiny),
                       "--results", str(results), "--device", "cpu", "--quiet", *extra)
            assert ran.returncode == 0, ran.stdout + ran.stderr
            assert "max_abs_error" in ran.stdout and "set-level set_bias@brain_core" in ran.stdout
        typo = _cli("run", "--task", "brats_flair", "--method", "identity", "--data-root", str(brats_tiny),
                    "--results", str(results), "--metric", "max_abs_eror")
        assert typo.returncode == 2 and "did you mean 'max_abs_error'" in typo.stderr.lower()

        records = {rec.method.name: rec for _, rec in load(results)}
        assert set(records) == {"identity", "linear"}
        rec = records["identity"]
        assert rec.scoring.metrics["max_abs_error"].direction == "lower"
        assert rec.scoring.metrics["max_abs_error"].source == "cmsbench-toy-metrics"
        assert "brain_core" in rec.task.spec["regions"] and "brain_core" in rec.scoring.convention["regions"]
        # the recorded value is the plugin's computation on the scored images: check one case directly
        from scipy import ndimage

        from cmsbench.tasks.dataset import open_dataset
        from cmsbench.tasks.registry import get_task

        dataset = open_dataset(get_task("brats_flair"), brats_tiny)
        cid = next(iter(rec.ok_cases()))
        case = dataset.load_case(cid)
        core = ndimage.binary_erosion(np.asarray(case.masks["brain"], bool), iterations=2)
        wants = [float(np.abs(np.asarray(case.target.data, np.float64)[core]
                              - np.asarray(case.inputs[name].data, np.float64)[core]).max()) for name in ("t1", "t2")]
        got = rec.cases[cid].scores["brain_core"]["max_abs_error"]  # identity copies t1 or t2 (chosen in fit)
        assert min(abs(got - w) for w in wants) <= 1e-6 * max(wants)
        # a plugin metric that raises: NaN with the reason, the run still completes
        assert rec.cases[cid].scores["brain"]["broken_metric"] is None
        assert "this plugin metric is broken" in rec.cases[cid].nan_reasons["brain/broken_metric"]
        # the set-level metric: one value with an interval per region, over every test case
        s = rec.set_scores["brain_core"]["set_bias"]
        assert s.n == len(rec.cases) and s.ci_low < s.value < s.ci_high

        # the leaderboard ranks by the new metric, smaller first
        from cmsbench.leaderboard.aggregate import load_boards

        board = next(b for b in load_boards(results) if b.task == "brats_flair")
        mb = board.metric("brain_core", "max_abs_error")
        assert mb.higher_is_better is False
        means = [mb.stats[k].mean for k in mb.order]
        assert means == sorted(means) and means[0] < means[1]
        assert mb.ranks[mb.order[0]].rank_atr == 1.0
        table = _cli("table", "--task", "brats_flair", "--results", str(results), "--region", "brain_core",
                     "--metric", "max_abs_error", "--format", "md")
        assert table.returncode == 0 and r"MAX\_ABS\_ERROR (brain\_core) ↓" in table.stdout
        first_row = next(ln for ln in table.stdout.splitlines() if ln.startswith("| ") and "Method" not in ln
                         and "---" not in ln)
        assert board.entry(mb.order[0]).name in first_row
    finally:
        subprocess.run([sys.executable, "-m", "pip", "uninstall", "-y", "-q", "cmsbench-toy-metrics"],
                       capture_output=True, timeout=300)

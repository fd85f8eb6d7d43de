"""Task registry, specs, user-defined tasks, and the listing CLI."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from cmsbench.errors import DuplicateNameError, TaskSpecError, UnknownNameError
from cmsbench.tasks.builtin import BRATS_FLAIR, LDPET
from cmsbench.tasks.registry import TASKS, get_task, list_tasks
from cmsbench.tasks.spec import DataRange, SplitPolicy
from cmsbench.testing.layouts import PATTERN_TASK_TOML

SEVEN = {"brats_flair", "ixi_t1_t2", "ixi_t2_pd", "ixi_t1_t2_xsite", "ldpet", "ldct", "mr_ct"}


def test_registry_lists_the_seven_builtin_tasks() -> None:
    assert SEVEN <= set(TASKS.names())
    assert {t.name for t in list_tasks()} >= SEVEN


def test_unknown_task_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'brats_flair'"):
        get_task("brats_flar")


def test_duplicate_registration_is_an_error() -> None:
    with pytest.raises(DuplicateNameError, match="brats_flair"):
        TASKS.register("brats_flair", "somewhere:ELSE")


def test_runtime_registration_and_broken_plugin_reported_by_name() -> None:
    TASKS.register("broken_task", "no_such_module_xyz:TASK")
    try:
        with pytest.raises(Exception, match="broken_task.*no_such_module_xyz"):
            get_task("broken_task")
    finally:
        TASKS.unregister("broken_task")


def test_spec_validation_rejects_inconsistent_specs() -> None:
    from dataclasses import replace

    with pytest.raises(TaskSpecError, match="main_metric"):
        replace(BRATS_FLAIR, main_metric="lpips")
    with pytest.raises(TaskSpecError, match="also an input"):
        replace(BRATS_FLAIR, target="t1")
    with pytest.raises(TaskSpecError, match="duplicate"):
        replace(BRATS_FLAIR, regions=("brain", "brain"))
    # region and metric names are checked against their registries (plugins may add names) before any work
    from cmsbench.benchmark.metrics.registry import validate_names
    from cmsbench.errors import UnknownNameError

    with pytest.raises(UnknownNameError, match="unknown region 'tumour'"):
        validate_names(replace(BRATS_FLAIR, regions=("brain", "tumour")))
    with pytest.raises(UnknownNameError, match="(?i)unknown metric 'psnrr'.*did you mean 'psnr'"):
        validate_names(replace(BRATS_FLAIR, metrics=("psnrr",), main_metric="psnrr"))
    with pytest.raises(TaskSpecError):
        DataRange("window", low=1.0, high=0.0)
    with pytest.raises(TaskSpecError):
        SplitPolicy("hash", fractions=(0.5, 0.5, 0.5))


def test_parameters_and_split_variants() -> None:
    spec = LDPET.with_parameters(drf=10)
    assert spec.adapter_options["drf"] == 10 and spec.parameters["drf"] == 10
    assert spec.fingerprint() != LDPET.fingerprint()
    with pytest.raises(TaskSpecError, match="no parameter"):
        LDPET.with_parameters(dose=3)
    icon = get_task("ixi_t1_t2").with_split("icon")
    assert icon.split.counts == (25, 5, 10)
    with pytest.raises(TaskSpecError, match="no split variant"):
        BRATS_FLAIR.with_split("icon")


def test_specs_serialise_with_every_convention() -> None:
    record = BRATS_FLAIR.to_dict()
    assert record["normalisation"]["kind"] == "healthy_median"
    assert record["data_range"] == {"kind": "fixed", "value": 4.0, "low": None, "high": None}
    assert record["inputs"] == ["t1", "t2"] and record["target"] == "flair"


def test_user_task_file(tmp_path: Path) -> None:
    path = tmp_path / "lab.toml"
    path.write_text(PATTERN_TASK_TOML)
    spec = get_task(str(path))
    assert spec.name == "lab_t1_flair" and spec.adapter == "pattern"
    assert spec.inputs == ("t1",) and spec.regions == ("brain", "lesion")
    bad = tmp_path / "bad.toml"
    bad.write_text(PATTERN_TASK_TOML.replace('main_metric = "psnr"', 'main_metric = "psnr"\ncolour = "red"'))
    with pytest.raises(TaskSpecError, match="unknown keys.*colour"):
        get_task(str(bad))
    broken = tmp_path / "broken.toml"
    broken.write_text("name = [")
    with pytest.raises(TaskSpecError, match="not valid TOML"):
        get_task(str(broken))


def test_cli_tasks_lists_inputs_and_target_without_importing_torch() -> None:
    code = (
        "import sys; from cmsbench.cli import main; rc = main(['tasks']); "
        "assert 'torch' not in sys.modules, 'torch imported'; sys.exit(rc)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    for name in SEVEN:
        assert name in out.stdout
    assert "t1 + t2 -> flair" in out.stdout and "mr -> ct" in out.stdout and "ct_low -> ct" in out.stdout


def test_cli_unknown_task_error_is_clear(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    from cmsbench.cli import main

    assert main(["data", "check", "--task", "ixi_t1t2", "--data-root", str(tmp_path)]) == 2
    assert "Did you mean 'ixi_t1_t2'" in capsys.readouterr().err

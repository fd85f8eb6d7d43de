"""The layer contracts of ``pyproject.toml`` (import-linter) hold, and they do catch a wrong import."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _lint(package_parent: Path, config: Path) -> subprocess.CompletedProcess[str]:
    pytest.importorskip("importlinter", reason="import-linter is in the dev extra")
    env = {**os.environ, "PYTHONPATH": str(package_parent)}
    code = "import sys; from importlinter.cli import lint_imports_command; sys.exit(lint_imports_command())"
    return subprocess.run([sys.executable, "-c", code, "--config", str(config), "--no-cache"], cwd=package_parent,
                          env=env, capture_output=True, text=True, timeout=300)


def test_import_contracts_are_kept() -> None:
    result = _lint(ROOT, ROOT / "pyproject.toml")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "4 kept, 0 broken" in result.stdout


def test_a_wrong_import_breaks_the_contract(tmp_path: Path) -> None:
    """A scratch copy of the package where the task layer imports the leaderboard: the check fails."""
    shutil.copytree(ROOT / "cmsbench", tmp_path / "cmsbench", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "pyproject.toml", tmp_path / "pyproject.toml")
    spec = tmp_path / "cmsbench" / "tasks" / "spec.py"
    spec.write_text(spec.read_text() + "\n\ndef _wrong() -> None:\n    from cmsbench.leaderboard import aggregate  # noqa\n")
    result = _lint(tmp_path, tmp_path / "pyproject.toml")
    assert result.returncode != 0
    assert "BROKEN" in result.stdout and "cmsbench.tasks.spec -> cmsbench.leaderboard.aggregate" in result.stdout

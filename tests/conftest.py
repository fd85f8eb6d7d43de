"""Shared test configuration: an isolated cache folder, the gpu marker."""

from __future__ import annotations

from pathlib import Path

import pytest


@pytest.fixture(autouse=True, scope="session")
def _isolated_cache(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Every test session gets its own CMSBENCH_HOME unless the caller set one (CI reuses phantoms)."""
    import os

    if "CMSBENCH_HOME" not in os.environ:
        os.environ["CMSBENCH_HOME"] = str(tmp_path_factory.mktemp("cmsbench_home"))


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    try:
        import torch

        has_cuda = torch.cuda.is_available()
    except Exception:  # pragma: no cover
        has_cuda = False
    if has_cuda:
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture()
def brats_tiny(tmp_path: Path) -> Path:
    """A tiny BraTS 2021 layout with 24 subjects (7 test cases)."""
    from cmsbench.testing import layouts

    root = tmp_path / "brats"
    layouts.write_brats(root, n=24)
    return root

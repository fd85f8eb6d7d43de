"""Shared test configuration: an isolated cache folder, the gpu marker."""

from __future__ import annotations

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

"""One pytest test per conformance check, for plugin authors.

Usage in a plugin's test file::

    from cmsbench.testing.pytest_plugin import parametrize_conformance

    @parametrize_conformance(MyMethod, epochs=1)
    def test_conformance(conformance_check):
        conformance_check()

or, equivalently, ``@pytest.mark.parametrize("check", conformance_checks(MyMethod, epochs=1))``. Each
test is named after its check (``test_conformance[my_method-deterministic]``) and fails with the
check's message. pytest is imported lazily: the library itself does not need it.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

from cmsbench.testing.conformance import CHECKS, as_factory


def conformance_checks(method: Any, *, task: str = "auto", checks: list[str] | None = None, **options: Any) -> list:
    """``pytest.param`` objects, one per check, each a no-argument callable that runs the check."""
    import pytest

    factory = as_factory(method, task, options)
    names = list(CHECKS) if checks is None else list(checks)
    return [
        pytest.param(functools.partial(CHECKS[name], factory), id=f"{factory.name}-{name}") for name in names
    ]


def parametrize_conformance(
    method: Any, *, task: str = "auto", checks: list[str] | None = None, argname: str = "conformance_check",
    **options: Any,
) -> Callable:
    """A ``pytest.mark.parametrize`` decorator giving the test one ``argname`` callable per check."""
    import pytest

    return pytest.mark.parametrize(argname, conformance_checks(method, task=task, checks=checks, **options))

"""Empty stand-in modules for packages an official evaluator imports but the compared code never uses."""

from __future__ import annotations

import contextlib
import importlib.util
import sys
import types
from collections.abc import Iterator, Mapping


def missing(name: str) -> bool:
    """True when ``name`` can be neither found nor is already imported (a stand-in of another test counts)."""
    if name in sys.modules:
        return False
    try:
        return importlib.util.find_spec(name) is None
    except (ImportError, ValueError):  # a parent is a stand-in, or a module without __spec__
        return True


@contextlib.contextmanager
def stand_ins(modules: Mapping[str, Mapping[str, object]]) -> Iterator[None]:
    """Within the block, each missing module ``name`` is an empty module with the given attributes."""
    added = {}
    for name, attrs in modules.items():
        if missing(name):
            mod = types.ModuleType(name)
            for key, value in attrs.items():
                setattr(mod, key, value)
            added[name] = sys.modules[name] = mod
    try:
        yield
    finally:
        for name, mod in added.items():
            if sys.modules.get(name) is mod:
                del sys.modules[name]

"""Where cmsbench keeps its cache (phantom datasets, preprocessed arrays, fitted states)."""

from __future__ import annotations

import os
from pathlib import Path


def cache_home() -> Path:
    """``$CMSBENCH_HOME`` if set, else ``$XDG_CACHE_HOME/cmsbench`` or ``~/.cache/cmsbench``."""
    env = os.environ.get("CMSBENCH_HOME")
    if env:
        return Path(env).expanduser()
    xdg = os.environ.get("XDG_CACHE_HOME")
    return (Path(xdg) if xdg else Path.home() / ".cache") / "cmsbench"

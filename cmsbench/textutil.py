"""Small text helpers shared by every layer's command-line code: plain tables and ``key=value`` options.

They live outside the layers (like :mod:`cmsbench.errors`) so that no library module needs
:mod:`cmsbench.cli`, which nothing imports.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from cmsbench.errors import CmsbenchError


def format_table(rows: Sequence[Sequence[Any]], header: Sequence[str]) -> str:
    """A left-aligned plain-text table with a dashed rule under the header."""
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]

    def line(r: Sequence[Any]) -> str:
        return "  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()

    return "\n".join([line(header), line(["-" * w for w in widths]), *(line(r) for r in rows)])


def parse_assignments(items: Sequence[str] | None) -> dict[str, Any]:
    """``key=value`` strings -> dict, values parsed as JSON when possible (numbers, booleans, lists)."""
    out: dict[str, Any] = {}
    for item in items or []:
        if "=" not in item:
            raise CmsbenchError(f"option {item!r} is not of the form key=value")
        key, value = item.split("=", 1)
        try:
            out[key.strip()] = json.loads(value)
        except ValueError:
            out[key.strip()] = value
    return out

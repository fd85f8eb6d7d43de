"""Freeze the leaderboard numbers that cmsbench at commit 887370c computes from the historic records.

Provenance: this script was run with cmsbench at git commit 887370c0265a56fde51f6c3cb10b517d5945ad91
(version 0.1.0; numpy 2.4.6, scipy 1.17.1, Python 3.11.7), from a clean detached worktree of that commit, as

    cd /tmp/oldhead && CMSBENCH_HOME=/tmp/oldhome PYTHONPATH=/tmp/oldhead \
        python /work/main/tests/historic_records/freeze_expected.py

It wrote ``expected.json`` next to this file. It is kept to document how ``expected.json`` was produced;
re-running it with a newer cmsbench would overwrite the frozen numbers with new ones and defeat its
purpose, so do not (a test compares the new code against the frozen file instead). As a guard it refuses
to run unless the imported cmsbench is a git checkout at that commit. Running it twice gave identical
numbers (the rank bootstrap is seeded).

It is not a test module (no ``test_`` prefix) and is not collected by pytest.

JSON conventions: NaN -> null, +inf -> "inf", -inf -> "-inf"; floats are written with ``repr`` precision.
"""

from __future__ import annotations

import dataclasses
import json
import math
import sys
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
FROZEN_COMMIT = "887370c0265a56fde51f6c3cb10b517d5945ad91"


def plain(obj: Any) -> Any:
    """Strict-JSON view of dataclasses, numpy scalars, NaN and inf."""
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        return {f.name: plain(getattr(obj, f.name)) for f in dataclasses.fields(obj) if not f.name.startswith("_")}
    if isinstance(obj, dict):
        return {str(k): plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [plain(v) for v in obj]
    if hasattr(obj, "item") and callable(obj.item) and getattr(obj, "ndim", 1) == 0:
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None if math.isnan(obj) else ("inf" if obj > 0 else "-inf")
    return obj


def freeze(folder: Path) -> dict[str, Any]:
    import cmsbench
    from cmsbench.benchmark.environment import git_commit
    from cmsbench.leaderboard.aggregate import load_boards

    commit = git_commit() or ""
    if not commit.startswith(FROZEN_COMMIT):
        raise SystemExit(
            f"refusing to freeze: cmsbench at {cmsbench.__file__} is commit {commit!r}, not {FROZEN_COMMIT}"
        )
    boards_out = []
    for board in load_boards(folder):
        entries = []
        for e in board.entries:
            entries.append(
                {
                    "key": e.key,
                    "name": e.name,
                    "version": e.version,
                    "label": e.label,
                    "options": plain(e.options),
                    "seeds": plain(e.seeds),
                    "n_cases": e.n_cases(),
                    "n_failed": e.n_failed(),
                    "records": [str(p.relative_to(folder)) if p is not None else None for p, _ in e.records],
                }
            )
        metrics = []
        for region, metric in board.regions_metrics():
            mb = board.metric(region, metric)
            metrics.append(
                {
                    "region": region,
                    "metric": metric,
                    "higher_is_better": mb.higher_is_better,
                    "n_union": mb.n_union,
                    "best": mb.best,
                    "order": list(mb.order),
                    "groups": plain(mb.groups),
                    "stats": {k: plain(s) for k, s in mb.stats.items()},
                    "ranks": {k: plain(r) for k, r in mb.ranks.items()},
                    "comparisons": [plain(c) for c in mb.comparisons],
                }
            )
        boards_out.append(
            {
                "title": board.title(),
                "slug": board.slug,
                "key": plain(board.key),
                "main": board.main,
                "reason": board.reason,
                "notes": list(board.notes),
                "main_region": board.main_region,
                "main_metric": board.main_metric,
                "regions_metrics": [list(rm) for rm in board.regions_metrics()],
                "entries": entries,
                "metrics": metrics,
            }
        )
    return {
        "format": "cmsbench-historic-expected/1",
        "note": "frozen output of cmsbench.leaderboard.aggregate.load_boards on this folder; never edit",
        "produced_by": {
            "cmsbench": cmsbench.__version__,
            "cmsbench_file": cmsbench.__file__,
            "git_commit": commit,
            "script": "freeze_expected.py",
            "python": sys.version.split()[0],
            "numpy": __import__("numpy").__version__,
            "scipy": __import__("scipy").__version__,
        },
        "json_conventions": {"nan": None, "inf": "inf", "-inf": "-inf"},
        "boards": boards_out,
    }


def main() -> int:
    folder = Path(sys.argv[1]).resolve() if len(sys.argv) > 1 else HERE
    out = Path(sys.argv[2]) if len(sys.argv) > 2 else folder / "expected.json"
    data = freeze(folder)
    out.write_text(json.dumps(data, indent=1, allow_nan=False) + "\n")
    print(f"wrote {out}: {len(data['boards'])} board(s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

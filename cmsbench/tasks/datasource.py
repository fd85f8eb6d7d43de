"""Choose the data a task runs on: the user's dataset, or the embedded phantom dataset.

With no ``--data-root``, cmsbench generates the task's phantom dataset once into its cache folder
(``$CMSBENCH_HOME/phantoms/<dataset>-seed<seed>-<size>``) and uses it, saying so plainly.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
from pathlib import Path

from cmsbench.errors import DataError
from cmsbench.paths import cache_home
from cmsbench.tasks.spec import TaskSpec

log = logging.getLogger(__name__)


def phantom_root(dataset: str, seed: int = 0, size: str = "default") -> Path:
    """Where the cached phantom dataset lives."""
    return cache_home() / "phantoms" / f"{dataset}-seed{seed}-{size}"


def ensure_phantom(dataset: str, seed: int = 0, size: str = "default") -> Path:
    """Generate the phantom dataset once (atomically: temp folder, then rename); return its root.

    A cached folder written by another generator version of the dataset is generated again (its records
    keep their own data fingerprints, so nothing mixes on a leaderboard)."""
    from cmsbench.tasks.dataset import PHANTOM_MARKER, read_phantom_marker
    from cmsbench.tasks.phantoms import synthesize
    from cmsbench.tasks.phantoms.catalog import generator_version

    root = phantom_root(dataset, seed, size)
    marker = read_phantom_marker(root) if (root / PHANTOM_MARKER).is_file() else None
    wanted = generator_version(dataset)
    if marker is not None and str(marker.get("generator_version")) == wanted:
        return root
    root.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{root.name}.", dir=root.parent))
    try:
        if marker is not None:
            log.warning("the cached phantom %s was made by generator %s; generating version %s", root,
                        marker.get("generator_version"), wanted)
        else:
            log.warning("generating the embedded phantom dataset %r into %s (once)", dataset, root)
        synthesize(dataset, tmp, seed=seed, size=size)
        if marker is not None:  # replace the stale folder: move it aside first, then delete it
            stale = Path(tempfile.mkdtemp(prefix=f".{root.name}.stale.", dir=root.parent))
            try:
                root.rename(stale / "old")
            except OSError:
                pass  # replaced concurrently by another process
            shutil.rmtree(stale, ignore_errors=True)
        try:
            tmp.rename(root)
        except OSError:  # generated concurrently by another process
            shutil.rmtree(tmp, ignore_errors=True)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return root


def resolve_data_root(task: TaskSpec, data_root: str | Path | None) -> tuple[Path, bool]:
    """(root, is_phantom). A given root must exist; none means the task's phantom dataset."""
    if data_root is not None:
        root = Path(data_root).expanduser()
        if not root.exists():
            raise DataError(f"--data-root {root} does not exist; give the folder holding the {task.dataset.name} data")
        return root, False
    if not task.phantom:
        raise DataError(f"task {task.name!r} has no embedded phantom dataset: pass --data-root")
    return ensure_phantom(task.phantom), True

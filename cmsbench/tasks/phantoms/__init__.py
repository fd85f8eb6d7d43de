"""Deterministic, physics-based phantom datasets: the embedded default data of cmsbench.

Each phantom dataset is written in the official layout of the real dataset it stands in for, so the
same adapters read both. Anatomy comes from the MNI152 2009a template shipped with nilearn; MR contrast
from spin-echo / inversion-recovery equations with BrainWeb relaxation times; CT from HU per tissue,
projection, Poisson noise and FBP; PET from FDG uptake per tissue, PSF blur and Poisson counts. A marker
file ``.cmsbench_phantom.json`` labels every generated folder as phantom data.

Importing this package is cheap (no numpy); the generator is imported when used.
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

from cmsbench.tasks.phantoms.catalog import (
    DEFAULT_SUBJECTS,
    GENERATOR_VERSION,
    IXI_SITES,
    PHANTOM_DATASETS,
    SIZES,
    UDPET_DRFS,
    check_dataset,
    check_size,
    n_subjects,
    subject_ids,
    subject_sites,
)

__all__ = [
    "DEFAULT_SUBJECTS",
    "GENERATOR_VERSION",
    "IXI_SITES",
    "MARKER_NAME",
    "PHANTOM_DATASETS",
    "SIZES",
    "UDPET_DRFS",
    "read_marker",
    "subject_ids",
    "subject_sites",
    "synthesize",
    "write_montage",
]

MARKER_NAME = ".cmsbench_phantom.json"
logger = logging.getLogger(__name__)


def synthesize(
    dataset: str,
    out: Path,
    *,
    subjects: int | None = None,
    seed: int = 0,
    size: str = "default",
) -> Path:
    """Write the phantom ``dataset`` in its official layout into ``out`` and return the dataset root.

    Args:
        dataset: one of :data:`PHANTOM_DATASETS`.
        out: output folder (created; existing files of the same names are overwritten).
        subjects: number of subjects (default: :data:`DEFAULT_SUBJECTS`, enough for >= 20 test subjects
            under every task's default split). Subject k is identical whatever this number is.
        seed: the same seed gives byte-identical files; different seeds give different subjects.
        size: ``"default"`` (small grids, ~1 min per dataset) or ``"full"`` (the real datasets' grids).

    Raises:
        cmsbench.errors.UnknownNameError: unknown dataset or size (with a "did you mean").
        cmsbench.errors.DataError: nilearn's MNI152 template files cannot be found.
    """
    check_dataset(dataset)
    check_size(size)
    n = n_subjects(dataset, subjects)
    out = Path(out)
    from cmsbench.tasks.phantoms.datasets import generate
    from cmsbench.tasks.phantoms.writers import write_marker

    t0 = time.perf_counter()
    generate(dataset, out, n, int(seed), size)
    write_marker(out, dataset, int(seed), size, n)
    logger.info("phantom %s: %d subjects written to %s in %.1f s", dataset, n, out, time.perf_counter() - t0)
    return out


def read_marker(root: Path) -> dict | None:
    """The phantom marker of a dataset folder (dataset, seed, size, subjects, generator version), or
    None when the folder was not written by :func:`synthesize`."""
    import json

    path = Path(root) / MARKER_NAME
    if not path.is_file():
        return None
    return json.loads(path.read_text())


def write_montage(root: Path, out_png: Path, dataset: str | None = None, max_subjects: int = 6) -> Path:
    """A PNG montage of a dataset folder: one mid axial slice per modality (columns) per subject (rows).

    ``dataset`` is detected from the layout when None. Works on phantom and real data in the official
    layouts. Returns ``out_png``.
    """
    from cmsbench.tasks.phantoms.montage import montage

    return montage(Path(root), Path(out_png), dataset, max_subjects)

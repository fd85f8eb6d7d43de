"""The phantom datasets' catalogue: names, sizes, default subject counts and subject IDs.

Pure Python (no numpy): listing names and IDs is cheap. Subject IDs depend only on the dataset and the
subject index, never on the seed or on how many subjects are generated, so subject ``k`` keeps its ID
(and its split) whatever ``subjects`` is.
"""

from __future__ import annotations

import difflib
import hashlib

from cmsbench.errors import UnknownNameError

#: Bumped whenever the generator's output changes for a given (dataset, seed, size, subject).
GENERATOR_VERSION = "1.0"

PHANTOM_DATASETS: tuple[str, ...] = ("brats", "ixi", "udpet", "ldct", "synthrad")
SIZES: tuple[str, ...] = ("default", "full")

#: Default number of subjects per dataset (the same for both sizes, so every task's default split
#: has at least 20 test subjects; checked in tests/test_phantoms.py).
DEFAULT_SUBJECTS: dict[str, int] = {
    "brats": 100,
    "ixi": 96,
    "udpet": 108,
    "ldct": 84,
    "synthrad": 84,
}

IXI_SITES: tuple[str, ...] = ("Guys", "HH", "IOP")
# Repeating site pattern over the subject index: 3 Guys, 3 HH, 2 IOP per 8 subjects (IOP >= 20 of 96).
_IXI_SITE_PATTERN = ("Guys", "HH", "IOP", "Guys", "HH", "IOP", "Guys", "HH")

#: PET dose-reduction factors written for every UDPET subject (``1-{drf} dose.nii.gz``).
UDPET_DRFS: tuple[int, ...] = (2, 4, 10, 20, 50, 100)


def check_dataset(dataset: str) -> str:
    """Return ``dataset`` if it is a phantom dataset name; raise UnknownNameError (with a suggestion)."""
    if dataset in PHANTOM_DATASETS:
        return dataset
    close = difflib.get_close_matches(str(dataset).lower(), PHANTOM_DATASETS, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownNameError(f"unknown phantom dataset {dataset!r}{hint} Available: {', '.join(PHANTOM_DATASETS)}")


def check_size(size: str) -> str:
    """Return ``size`` if it is a known phantom size; raise UnknownNameError otherwise."""
    if size in SIZES:
        return size
    close = difflib.get_close_matches(str(size).lower(), SIZES, n=1, cutoff=0.5)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise UnknownNameError(f"unknown phantom size {size!r}{hint} Available: {', '.join(SIZES)}")


def n_subjects(dataset: str, subjects: int | None = None) -> int:
    """The number of subjects to generate (``subjects`` or the dataset's default)."""
    check_dataset(dataset)
    if subjects is None:
        return DEFAULT_SUBJECTS[dataset]
    if int(subjects) < 1:
        raise ValueError(f"subjects must be >= 1, got {subjects}")
    return int(subjects)


def ixi_site(index: int) -> str:
    """The IXI site (``Guys``, ``HH`` or ``IOP``) of the subject with this 0-based index."""
    return _IXI_SITE_PATTERN[index % len(_IXI_SITE_PATTERN)]


def _scan_number(tag: str, index: int, modulo: int = 10000) -> int:
    digest = hashlib.sha256(f"{tag}:{index}".encode()).digest()
    return int.from_bytes(digest[:4], "big") % modulo


def subject_id(dataset: str, index: int) -> str:
    """The subject ID of the 0-based ``index``-th subject, in the dataset's official style."""
    check_dataset(dataset)
    if dataset == "brats":
        return f"BraTS2021_{index:05d}"
    if dataset == "ixi":
        return f"IXI{index + 2:03d}-{ixi_site(index)}-{_scan_number('ixi', index):04d}"
    if dataset == "udpet":
        return f"UDPET_{index + 1:04d}"
    if dataset == "ldct":
        return f"N{index + 1:03d}"
    return f"1BA{index + 1:03d}"  # synthrad


def subject_ids(dataset: str, subjects: int | None = None) -> list[str]:
    """IDs of the subjects ``synthesize(dataset, subjects=subjects)`` writes, in index order."""
    return [subject_id(dataset, i) for i in range(n_subjects(dataset, subjects))]


def subject_sites(subjects: int | None = None) -> dict[str, str]:
    """IXI subject ID -> site for the phantom IXI dataset."""
    return {subject_id("ixi", i): ixi_site(i) for i in range(n_subjects("ixi", subjects))}

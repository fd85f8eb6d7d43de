"""Deterministic, stable train/val/test splits and the split hash recorded with every result."""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

from cmsbench.errors import DataError
from cmsbench.tasks.spec import SplitPolicy

SPLIT_NAMES = ("train", "val", "test")


@dataclass(frozen=True)
class Split:
    """Subject IDs per split (each tuple sorted)."""

    train: tuple[str, ...]
    val: tuple[str, ...]
    test: tuple[str, ...]

    def __getitem__(self, name: str) -> tuple[str, ...]:
        if name not in SPLIT_NAMES:
            raise KeyError(f"unknown split {name!r}; use one of {SPLIT_NAMES}")
        return getattr(self, name)

    @property
    def test_hash(self) -> str:
        """SHA-256 (first 16 hex digits) of the sorted test IDs joined by newlines."""
        return id_list_hash(self.test)

    def counts(self) -> dict[str, int]:
        """Number of subjects per split."""
        return {name: len(self[name]) for name in SPLIT_NAMES}


def id_list_hash(ids: Iterable[str]) -> str:
    """Hash of a set of IDs, independent of their order."""
    blob = "\n".join(sorted(ids)).encode()
    return hashlib.sha256(blob).hexdigest()[:16]


def unit_hash(subject_id: str, salt: str) -> float:
    """A number in [0, 1) that depends only on the subject ID and the salt."""
    digest = hashlib.sha256(f"{salt}:{subject_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _by_fraction(ids: Iterable[str], fractions: tuple[float, float, float], salt: str) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {name: [] for name in SPLIT_NAMES}
    train_cut = fractions[0]
    val_cut = fractions[0] + fractions[1]
    for sid in ids:
        u = unit_hash(sid, salt)
        out["train" if u < train_cut else "val" if u < val_cut else "test"].append(sid)
    return out


def make_split(
    subject_ids: Iterable[str],
    policy: SplitPolicy,
    sites: Mapping[str, str] | None = None,
) -> Split:
    """Assign subjects to train/val/test under ``policy``.

    ``hash`` and ``site`` assignments depend only on each subject's own ID, so adding or removing
    other subjects never moves a subject between splits. ``sites`` maps subject ID -> site name and
    is required by the ``site`` policy.
    """
    ids = sorted(set(subject_ids))
    if policy.kind == "hash":
        groups = _by_fraction(ids, policy.fractions, policy.salt)
    elif policy.kind == "first_n":
        assert policy.counts is not None
        n_train, n_val, n_test = policy.counts
        need = n_train + n_val + n_test
        if len(ids) < need:
            raise DataError(
                f"the 'first_n' split protocol needs {need} subjects ({n_train}/{n_val}/{n_test}), "
                f"found {len(ids)}; use the default split or a larger dataset"
            )
        groups = {
            "train": ids[:n_train],
            "val": ids[n_train : n_train + n_val],
            "test": ids[n_train + n_val : need],
        }
    elif policy.kind == "site":
        if sites is None:
            raise DataError("the 'site' split protocol needs each subject's site; the adapter gave none")
        missing = [sid for sid in ids if sid not in sites]
        if missing:
            raise DataError(f"no site known for subjects {missing[:5]}{'...' if len(missing) > 5 else ''}")
        test = [sid for sid in ids if sites[sid] in policy.test_sites]
        rest = [sid for sid in ids if sites[sid] not in policy.test_sites]
        train_frac = policy.fractions[0] / max(policy.fractions[0] + policy.fractions[1], 1e-12)
        groups = _by_fraction(rest, (train_frac, 1.0 - train_frac, 0.0), policy.salt)
        groups["test"] = test
    elif policy.kind == "fixed_ids":
        test_set = set(policy.test_ids)
        val_set = set(policy.val_ids)
        groups = {
            "test": [sid for sid in ids if sid in test_set],
            "val": [sid for sid in ids if sid in val_set],
            "train": [sid for sid in ids if sid not in test_set and sid not in val_set],
        }
    else:  # pragma: no cover - guarded by SplitPolicy's Literal
        raise DataError(f"unknown split kind {policy.kind!r}")
    return Split(*(tuple(sorted(groups[name])) for name in SPLIT_NAMES))

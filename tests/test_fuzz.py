"""Seeded fuzz test of ``cmsbench data check`` over tiny datasets in all five layouts.

A few hundred seeded variants of clean layouts (BraTS 2021/2023, IXI, UDPET, LDCT as DICOM and NIfTI,
SynthRAD) are checked in-process. For every variant: no traceback and exit code 0 or 1; every variant
that changes what the data means is reported (exit 1, naming the corrupted file, folder or subject);
benign rewrites (re-compression, float storage with scaling, hidden files, shuffled DICOM names, ...)
are accepted. ``pytest -s`` prints the counts (tried, clean errors, accepted-correct, failures).
"""

from __future__ import annotations

import contextlib
import io
import logging
import shutil
import signal
import threading
import traceback
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import fuzz_corruptions as fc
import numpy as np
import pytest

from cmsbench.cli import main
from cmsbench.testing import layouts

SEED = 20240612
N_SUBJECTS = 2
TIME_LIMIT_S = 60  # per data check: a variant that takes longer counts as a hang


# ------------------------------------------------------------------------------------------ layouts
def _folder_subject(depth: int) -> Callable[[Path, Path], str]:
    return lambda root, path: path.relative_to(root).parts[depth]


def _ixi_subject(root: Path, path: Path) -> str:
    return path.name.rsplit("-", 1)[0]  # IXI002-Guys-1000-T2.nii.gz -> IXI002-Guys-1000


@dataclass(frozen=True)
class Layout:
    """A clean tiny dataset and where its meaningful files are (globs relative to the data root)."""

    name: str
    task: str
    write: Callable[[Path], object]
    images: tuple[str, ...]  # image files the task reads
    subjects: tuple[str, ...]  # subject folders (IXI: subject files), for the name-mismatch variants
    subject_of: Callable[[Path, Path], str] = field(default=_folder_subject(0))
    labels: tuple[tuple[str, object], ...] = ()  # label files the task reads, with their allowed labels
    bad_labels: tuple[int, ...] = ()
    same_grid: bool = True  # every file read shares one grid (IXI T1 is resampled onto the T2 grid)
    nii_ok: bool = False  # an uncompressed .nii is accepted in place of the .nii.gz
    dicom: bool = False


LAYOUTS = {layout.name: layout for layout in (
    Layout("brats2021", "brats_flair", partial(layouts.write_brats, n=N_SUBJECTS, layout="brats2021"),
           images=("*/*_t1.nii.gz", "*/*_t2.nii.gz", "*/*_flair.nii.gz"), subjects=("BraTS2021_*",),
           labels=(("*/*_seg.nii.gz", (0, 1, 2, 4)),), bad_labels=(3, 255, -1), nii_ok=True),
    Layout("brats2023", "brats_flair", partial(layouts.write_brats, n=N_SUBJECTS, layout="brats2023"),
           images=("*/*-t1n.nii.gz", "*/*-t2w.nii.gz", "*/*-t2f.nii.gz"), subjects=("BraTS-GLI-*",),
           labels=(("*/*-seg.nii.gz", (0, 1, 2, 3)),), bad_labels=(4, 255, -1), nii_ok=True),
    Layout("ixi", "ixi_t1_t2", partial(layouts.write_ixi, n=N_SUBJECTS),
           images=("IXI-T1/*.nii.gz", "IXI-T2/*.nii.gz"), subjects=("IXI-T1/*.nii.gz", "IXI-T2/*.nii.gz"),
           subject_of=_ixi_subject, same_grid=False, nii_ok=True),
    Layout("udpet", "ldpet", partial(layouts.write_udpet, n=N_SUBJECTS),
           images=("*/Full_dose.nii.gz", "*/1-4 dose.nii.gz"), subjects=("UDPET_*",),
           labels=(("*/lesion_mask.nii.gz", "nonnegative"),), bad_labels=(-1,)),
    Layout("ldct_nifti", "ldct", partial(layouts.write_ldct, n=N_SUBJECTS, fmt="nifti"),
           images=("*/full_dose.nii.gz", "*/low_dose.nii.gz"), subjects=("L*",), nii_ok=True),
    Layout("ldct_dicom", "ldct", partial(layouts.write_ldct, n=N_SUBJECTS, fmt="dicom"),
           images=("*/*/*/*.dcm",), subjects=("L*",), dicom=True),
    Layout("synthrad", "mr_ct", partial(layouts.write_synthrad, n=N_SUBJECTS),
           images=("Task1/brain/*/mr.nii.gz", "Task1/brain/*/ct.nii.gz"), subjects=("Task1/brain/1BA*",),
           subject_of=_folder_subject(2), labels=(("Task1/brain/*/mask.nii.gz", (0, 1)),), bad_labels=(2, 255, -1)),
)}

#: Names that no longer match a layout (applied to the subject ID inside a folder or file name).
RENAMES = (lambda s: s + "_old", str.lower, lambda s: s + " (copy)", lambda s: s[:-1])


# ----------------------------------------------------------------------------------------- variants
@dataclass(frozen=True)
class Kind:
    """One corruption: ``changes_meaning`` variants must be reported, the others accepted."""

    name: str
    corrupt: Callable[[fc.Target], fc.Applied]
    repeats: int
    changes_meaning: bool = True
    needs: str | None = None  # "labels", "same_grid" or "nii_ok": the layouts it applies to


NIFTI_KINDS = (
    Kind("truncate", fc.truncate, 3),
    Kind("flip_bytes", fc.flip_bytes, 4),
    Kind("empty", fc.empty, 2),
    Kind("missing", fc.missing, 2),
    Kind("nan_voxels", fc.nan_voxels, 3),
    Kind("inf_voxels", fc.inf_voxels, 2),
    Kind("nan_affine", fc.nan_affine, 3),
    Kind("singular_affine", fc.singular_affine, 2),
    Kind("absurd_scl_slope", fc.absurd_slope, 3),
    Kind("absurd_scl_inter", fc.absurd_inter, 3),
    Kind("rgb_dtype", fc.rgb_dtype, 1),
    Kind("complex_dtype", fc.complex_dtype, 1),
    Kind("four_d", fc.four_d, 1),
    Kind("wrong_shape", fc.wrong_shape, 1, needs="same_grid"),
    Kind("shifted_affine", fc.shifted_affine, 2, needs="same_grid"),
    Kind("label_out_of_set", fc.label_out_of_set, 3, needs="labels"),
    Kind("label_fraction", fc.label_fraction, 2, needs="labels"),
    Kind("unmatched_rename", fc.unmatched_rename, 2),
    Kind("unmatched_copy", fc.unmatched_copy, 1),
    # benign: the data means the same
    Kind("regzip", fc.regzip, 1, changes_meaning=False),
    Kind("uncompressed", fc.uncompressed, 1, changes_meaning=False, needs="nii_ok"),
    Kind("float_scaled", fc.float_scaled, 1, changes_meaning=False),
    Kind("float_labels_integral", fc.float_labels_integral, 1, changes_meaning=False, needs="labels"),
    Kind("hidden_file", fc.hidden_file, 1, changes_meaning=False),
    Kind("readme", fc.readme, 1, changes_meaning=False),
    Kind("touch", fc.touch, 1, changes_meaning=False),
)

DICOM_KINDS = (
    Kind("dcm_rescale_slope", fc.dcm_slope, 5),
    Kind("dcm_rescale_intercept", fc.dcm_intercept, 4),
    Kind("dcm_position_text", fc.dcm_ipp_text, 3),
    Kind("dcm_orientation_text", fc.dcm_iop_text, 2),
    Kind("dcm_spacing_text", fc.dcm_spacing_text, 3),
    Kind("dcm_no_position", fc.dcm_no_ipp, 2),
    Kind("dcm_no_orientation", fc.dcm_no_iop, 1),
    Kind("dcm_no_spacing", fc.dcm_no_spacing, 1),
    Kind("dcm_truncate", fc.dcm_truncate, 3),
    Kind("dcm_empty", fc.dcm_empty, 1),
    Kind("dcm_missing_slice", fc.dcm_missing_slice, 2),
    Kind("dcm_duplicate_slice", fc.dcm_duplicate_slice, 1),
    Kind("dcm_uneven_spacing", fc.dcm_ipp_shift, 2),
    Kind("dcm_patient_id", fc.dcm_patient_id, 1),
    Kind("dcm_series_description", fc.dcm_description, 1),
    Kind("dcm_missing_series", fc.dcm_missing_series, 1),
    Kind("dcm_float_nan_pixels", fc.dcm_float_nan, 2),
    Kind("unmatched_rename", fc.unmatched_rename, 2),
    Kind("unmatched_copy", fc.unmatched_copy, 1),
    # benign
    Kind("dcm_shuffled_names", fc.dcm_shuffle_names, 1, changes_meaning=False),
    Kind("dcm_rescaled", fc.dcm_rescale, 1, changes_meaning=False),
    Kind("hidden_file", fc.hidden_file, 1, changes_meaning=False),
    Kind("readme", fc.readme, 1, changes_meaning=False),
    Kind("touch", fc.touch, 1, changes_meaning=False),
)


@dataclass(frozen=True)
class Variant:
    layout: Layout
    kind: Kind
    seed: int
    index: int

    @property
    def id(self) -> str:
        return f"{self.layout.name}-{self.kind.name}-{self.index}"


def _applies(kind: Kind, layout: Layout) -> bool:
    return kind.needs is None or bool(getattr(layout, kind.needs))


def _variants() -> list[Variant]:
    master = np.random.default_rng(SEED)
    out = []
    for layout in LAYOUTS.values():
        for kind in DICOM_KINDS if layout.dicom else NIFTI_KINDS:
            if _applies(kind, layout):
                out.extend(Variant(layout, kind, int(master.integers(2**31)), i) for i in range(kind.repeats))
    return out


VARIANTS = _variants()


# ------------------------------------------------------------------------------------------ running
class _Hang(Exception):
    pass


@contextlib.contextmanager
def _time_limit(seconds: int) -> Iterator[None]:
    """Raise :class:`_Hang` after ``seconds`` (main thread on POSIX; elsewhere no limit)."""
    if not hasattr(signal, "SIGALRM") or threading.current_thread() is not threading.main_thread():
        yield
        return

    def on_alarm(signum, frame):  # noqa: ARG001
        raise _Hang(f"data check still running after {seconds} s")

    previous = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


class _Records(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
        self.lines: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.lines.append(self.format(record))  # includes the traceback of exc_info records


def data_check(task: str, root: Path) -> tuple[int | None, str]:
    """``cmsbench data check`` in-process: (exit code or None when an exception escaped, all output)."""
    out, err, logs = io.StringIO(), io.StringIO(), _Records()
    rc: int | None = None
    escaped = ""
    logging.getLogger().addHandler(logs)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err), _time_limit(TIME_LIMIT_S):
            rc = main(["data", "check", "--task", task, "--data-root", str(root)])
    except KeyboardInterrupt:
        raise
    except BaseException:  # noqa: BLE001 - anything escaping main() is the failure under test
        escaped = traceback.format_exc()
    finally:
        logging.getLogger().removeHandler(logs)
    return rc, "\n".join(x for x in (out.getvalue(), err.getvalue(), *logs.lines, escaped) if x)


TALLY: Counter[str] = Counter()
PER_LAYOUT: dict[str, Counter[str]] = {}
FAILURES: list[str] = []


def _judge(variant: Variant, applied: fc.Applied, rc: int | None, output: str, root: Path) -> str:
    """The outcome of one variant: "clean error", "accepted-correct" or a failure kind."""
    if rc is None or rc not in (0, 1) or "Traceback (most recent call last)" in output:
        return "crash"
    if not variant.kind.changes_meaning:
        return "accepted-correct" if rc == 0 else "false alarm"
    if rc != 1:
        return "unreported"
    report = output.replace(str(root), "<root>")
    named = (not applied.any_of or any(n in report for n in applied.any_of)) and all(
        n in report for n in applied.all_of)
    return "clean error" if named else "unnamed"


@pytest.fixture(scope="module")
def clean_roots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("clean")
    roots = {}
    for name, layout in LAYOUTS.items():
        layout.write(base / name)
        roots[name] = base / name
    return roots


@pytest.fixture(scope="module", autouse=True)
def _print_counts() -> Iterator[None]:
    yield
    if not TALLY:
        return
    lines = [f"\nfuzz (seed {SEED}): tried {TALLY['tried']}, clean errors {TALLY['clean error']}, "
             f"accepted-correct {TALLY['accepted-correct']}, failures {TALLY['tried'] - TALLY['clean error'] - TALLY['accepted-correct']}"
             + "".join(f", {k} {v}" for k, v in sorted(TALLY.items())
                       if k not in ("tried", "clean error", "accepted-correct"))]
    for name, counts in PER_LAYOUT.items():
        lines.append(f"  {name:11s} " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    lines.extend(f"  FAILED {f}" for f in FAILURES)
    print("\n".join(lines))


@pytest.mark.parametrize("name", sorted(LAYOUTS))
def test_clean_layout_has_no_problems(name: str, clean_roots: dict[str, Path],
                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    root = tmp_path_factory.mktemp("baseline") / "data"
    shutil.copytree(clean_roots[name], root)
    rc, output = data_check(LAYOUTS[name].task, root)
    assert rc == 0 and "no problems found" in output, output


@pytest.mark.parametrize("variant", VARIANTS, ids=lambda v: v.id)
def test_corrupted_dataset_is_reported(variant: Variant, clean_roots: dict[str, Path],
                                       tmp_path_factory: pytest.TempPathFactory) -> None:
    layout = variant.layout
    root = tmp_path_factory.mktemp("v") / "data"
    shutil.copytree(clean_roots[layout.name], root)
    images = sorted({p for g in layout.images for p in root.glob(g)})
    labels = {p: allowed for g, allowed in layout.labels for p in sorted(root.glob(g))}
    subject_dirs = sorted({p for g in layout.subjects for p in root.glob(g)})
    rng = np.random.default_rng(variant.seed)

    def rename(path: Path, rng: np.random.Generator) -> str:
        subject = layout.subject_of(root, path)
        return path.name.replace(subject, RENAMES[int(rng.integers(len(RENAMES)))](subject))

    target = fc.Target(root, rng, images, labels, layout.bad_labels,
                       subject_of=lambda p: layout.subject_of(root, p), subject_dirs=subject_dirs, rename=rename)
    applied = variant.kind.corrupt(target)
    rc, output = data_check(layout.task, root)
    outcome = _judge(variant, applied, rc, output, root)

    TALLY["tried"] += 1
    TALLY[outcome] += 1
    counts = PER_LAYOUT.setdefault(layout.name, Counter())
    counts["tried"] += 1
    counts[outcome] += 1
    ok = outcome in ("clean error", "accepted-correct")
    if not ok:
        FAILURES.append(f"{variant.id} [{outcome}] {applied.description}: rc {rc}; "
                        + " | ".join(output.replace(str(root), "<root>").splitlines()[-4:]))
    expected = "reported naming " + " or ".join(applied.any_of) if variant.kind.changes_meaning else "accepted"
    assert ok, f"{applied.description}: expected {expected}, got {outcome} (rc {rc}):\n{output}"

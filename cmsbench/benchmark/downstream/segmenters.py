"""Segmenters as plugins: what a downstream metric calls to turn a case's images into a label map.

A segmenter is a :class:`Segmenter`: a ``name``, a ``version``, ``segment(images, case_id=...)`` returning
an integer label map on the images' grid, and ``identity()`` / ``digest()`` - everything its output depends
on, for caching (a changed model file or script gives another digest, so cached downstream results of the
old one are not reused). ``segment_cases`` segments many cases and turns a failure on one case into that
case's :class:`Segmentation` with a reason, leaving the others.

Segmenters are registered under the entry-point group ``cmsbench.segmenters`` (built-in: ``command``)::

    [project.entry-points."cmsbench.segmenters"]
    my_model = "my_pkg.seg:MY_MODEL"     # a Segmenter instance, a Segmenter subclass or a factory

and obtained with :func:`get_segmenter` (``get_segmenter("command", command=..., files=[...])``). The
built-in learned one is ``segresnet`` (:mod:`.segresnet`, trained on the task's train split).

The built-in :class:`CommandSegmenter` runs a user's program that reads a folder of NIfTI inputs and
writes label maps (nnU-Net v2's layout: inputs ``<case>_<channel:04d>.nii.gz``, output ``<case>.nii.gz``),
for example a script or an nnU-Net v2 results folder through ``nnUNetv2_predict_from_modelfolder``. It is
pinned by the SHA-256 of the files it is given (the script, every file of the model folder); nothing is
downloaded.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.errors import CmsbenchError
from cmsbench.registry import Registry
from cmsbench.tasks.volume import Case, Volume

log = logging.getLogger(__name__)

Images = Mapping[str, "Volume | np.ndarray"]


class SegmenterError(CmsbenchError):
    """A segmenter could not be built, or failed on a case (the message names the case)."""


@dataclass(frozen=True)
class Segmentation:
    """One case's outcome: the label map, or the reason there is none; the time it took."""

    case_id: str
    labels: np.ndarray | None
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return self.labels is not None


def _volume(image: Volume | np.ndarray, affine: np.ndarray | None) -> Volume:
    if isinstance(image, Volume):
        return image
    return Volume(data=np.asarray(image), affine=np.eye(4) if affine is None else np.asarray(affine))


class Segmenter:
    """Base of every segmenter. Subclasses set ``name`` and ``version`` and implement :meth:`segment`;
    :meth:`identity` must include everything else the output depends on (weights' digests, settings)."""

    name: str = ""
    version: str = "1"

    #: True for a segmenter that learns from the task's train split (then :meth:`prepare` trains or loads)
    needs_training: bool = False

    def prepare(self, train: Sequence[Case], *, seed: int = 0, device: str = "cpu", data_fingerprint: str = "",
                progress: Callable[[str, int, int], None] | None = None) -> None:
        """Make the segmenter ready for a task before any case is segmented. A learned segmenter trains on
        ``train`` (REAL images, :func:`real_images`, and ``case.labels``) or loads its cached fit, keyed by
        ``data_fingerprint`` + its settings + ``seed``; a fixed model or a command does nothing (default).
        After it, :meth:`identity` includes what the fit depends on."""

    def segment(self, images: Images, *, case_id: str, affine: np.ndarray | None = None) -> np.ndarray:
        """The integer label map of one case (BraTS 2023 labels: 0, 1 NCR, 2 ED, 3 ET). ``images``: channel name -> volume (or array with
        ``affine``), all on one grid. Raise :class:`SegmenterError` with a reason on failure."""
        raise NotImplementedError

    def identity(self) -> dict[str, Any]:
        """What the output depends on, as JSON-able values (recorded in result records)."""
        return {"name": self.name, "version": self.version, "class": f"{type(self).__module__}.{type(self).__qualname__}"}

    def digest(self) -> str:
        """SHA-256 of :meth:`identity` (canonical JSON): the segmenter's part of a downstream cache key."""
        blob = json.dumps(self.identity(), sort_keys=True, separators=(",", ":")).encode()
        return hashlib.sha256(blob).hexdigest()

    def segment_cases(self, cases: Mapping[str, Images], *,
                      affines: Mapping[str, np.ndarray] | None = None) -> dict[str, Segmentation]:
        """Segment every case; a case that fails gets its reason, the others are unaffected."""
        out: dict[str, Segmentation] = {}
        for case_id, images in cases.items():
            start = time.perf_counter()
            try:
                labels = self.segment(images, case_id=case_id, affine=(affines or {}).get(case_id))
                out[case_id] = Segmentation(case_id, labels, None, time.perf_counter() - start)
            except SegmenterError as exc:
                out[case_id] = Segmentation(case_id, None, str(exc), time.perf_counter() - start)
            except Exception as exc:  # noqa: BLE001 - a plugin's bug fails that case only, with its reason
                log.warning("segmenter %r crashed on case %r", self.name, case_id, exc_info=True)
                out[case_id] = Segmentation(case_id, None, f"segmenter {self.name!r} crashed on case {case_id!r}: "
                                            f"{type(exc).__name__}: {exc}", time.perf_counter() - start)
        return out


def real_images(case: Case) -> dict[str, Volume]:
    """The images a segmenter reads for a case: its inputs and its real target, by modality name
    (task units, the grid of the target)."""
    if case.target is None:
        raise SegmenterError(f"case {case.case_id!r} has no target image to segment")
    return {**case.inputs, case.target.modality: case.target}


def synthetic_images(case: Case, prediction: Volume | np.ndarray) -> dict[str, Volume]:
    """:func:`real_images` with the synthetic target substituted for the real one."""
    images = real_images(case)
    name = case.target.modality  # type: ignore[union-attr]
    data = prediction.data if isinstance(prediction, Volume) else prediction
    images[name] = images[name].with_data(np.asarray(data, dtype=np.float32))
    return images


def brats_labels(labels: np.ndarray) -> np.ndarray:
    """A BraTS label map in the 2023 convention (enhancing tumour 4 -> 3; 0, 1 NCR, 2 ED, 3 ET)."""
    out = np.asarray(labels).astype(np.int16, copy=True)
    out[out == 4] = 3
    return out


# ------------------------------------------------------------------------------ file pinning
_SMALL = 1 << 20


def _sha256(path: Path) -> str:
    """A file's SHA-256; large files through the project's digest index (remembered by size + mtime)."""
    if path.stat().st_size <= _SMALL:
        return hashlib.sha256(path.read_bytes()).hexdigest()
    from cmsbench.tasks.io.digests import file_digest

    return file_digest(path)


def pin_files(paths: Iterable[str | Path]) -> dict[str, str]:
    """``{name: sha256}`` for each file, and for each folder every file under it (``folder/relative``,
    hidden files and ``__pycache__`` left out). A missing path is an error naming it."""
    pinned: dict[str, str] = {}
    for raw in paths:
        path = Path(raw).expanduser()
        if path.is_file():
            pinned[path.name] = _sha256(path)
        elif path.is_dir():
            files = sorted(p for p in path.rglob("*") if p.is_file() and not any(
                part.startswith(".") or part == "__pycache__" for part in p.relative_to(path).parts))
            if not files:
                raise SegmenterError(f"the segmenter folder {path} holds no files to pin")
            for p in files:
                pinned[f"{path.name}/{p.relative_to(path).as_posix()}"] = _sha256(p)
        else:
            raise SegmenterError(f"the segmenter file {path} does not exist; give the script or model folder "
                                 f"the command uses (it is pinned by its SHA-256)")
    return pinned


# --------------------------------------------------------------------------- command segmenter
PLACEHOLDERS = ("input_dir", "output_dir", "case_id", "python")


class CommandSegmenter(Segmenter):
    """A user's program that reads a folder of NIfTI inputs and writes one label map per case.

    Args:
        command: the command line, a string (split like a shell, no shell is run) or a list of arguments,
            with placeholders ``{input_dir}``, ``{output_dir}``, ``{case_id}`` (per-case mode) and
            ``{python}`` (this interpreter), e.g. ``"{python} seg.py {input_dir} {output_dir}"``.
        files: the script(s) / model folder(s) the command uses, pinned by SHA-256 (at construction; the
            digest changes when their bytes change).
        channels: the order of the images as channels ``_0000``, ``_0001``, ... (default: sorted names);
            the names are also given to the command in ``CMSBENCH_CHANNELS`` (comma-separated).
        per_case: run the command once per case (default; a crash fails that case only) or once for all
            cases (nnU-Net's way, faster; a non-zero exit fails every case of the batch).
        timeout: seconds per run (None: no limit).
        name, version: recorded in the identity.
    """

    def __init__(self, command: str | Sequence[str], files: Sequence[str | Path] = (), *,
                 channels: Sequence[str] | None = None, per_case: bool = True, timeout: float | None = None,
                 name: str = "command", version: str = "1") -> None:
        args = shlex.split(command) if isinstance(command, str) else [str(a) for a in command]
        if not args:
            raise SegmenterError("the command segmenter needs a command, e.g. "
                                 "'{python} seg.py {input_dir} {output_dir}'")
        text = " ".join(args)
        for needed in ("{input_dir}", "{output_dir}"):
            if needed not in text:
                raise SegmenterError(f"the segmenter command {text!r} does not contain {needed}: the command "
                                     f"must read the inputs from {{input_dir}} and write label maps to {{output_dir}}")
        if "{case_id}" in text and not per_case:
            raise SegmenterError("{case_id} in the command needs per_case=True (one run per case)")
        self.name, self.version = name, version
        self.args = args
        if isinstance(files, (str, Path)):  # one path (e.g. --segmenter-option files=seg.py); commas separate several
            files = [f for f in str(files).split(",") if f]
        self.files = [Path(f).expanduser().resolve() for f in files]
        self.pinned = pin_files(self.files)
        self.channels = tuple(channels) if channels is not None else None
        self.per_case, self.timeout = per_case, timeout

    @classmethod
    def nnunet(cls, model_dir: str | Path, *, channels: Sequence[str], extra_args: Sequence[str] = (),
               name: str = "nnunet", version: str = "1", timeout: float | None = None) -> CommandSegmenter:
        """An nnU-Net v2 results folder (e.g. ``.../Dataset137_BraTS2021/nnUNetTrainer__nnUNetPlans__3d_fullres``)
        run with ``nnUNetv2_predict_from_modelfolder`` (needs ``pip install nnunetv2``; nothing is downloaded),
        all cases in one run; every file of the folder is pinned."""
        model = Path(model_dir).expanduser()
        if not (model / "dataset.json").is_file() or not (model / "plans.json").is_file():
            raise SegmenterError(f"{model} is not an nnU-Net v2 model folder (no dataset.json / plans.json); give "
                                 f"the trainer folder that holds fold_*/checkpoint_final.pth")
        exe = shutil.which("nnUNetv2_predict_from_modelfolder")
        if exe is None:
            raise SegmenterError("nnU-Net v2 is not installed (no nnUNetv2_predict_from_modelfolder on PATH): "
                                 "pip install nnunetv2, or give your own command")
        return cls([exe, "-i", "{input_dir}", "-o", "{output_dir}", "-m", str(model), *extra_args], [model],
                   channels=channels, per_case=False, timeout=timeout, name=name, version=version)

    def identity(self) -> dict[str, Any]:
        return {**super().identity(), "command": self.args, "files": dict(sorted(self.pinned.items())),
                "channels": list(self.channels) if self.channels is not None else None, "per_case": self.per_case}

    # ----------------------------------------------------------------------------------- running
    def _order(self, images: Images, case_id: str) -> list[str]:
        order = list(self.channels) if self.channels is not None else sorted(images)
        missing = [c for c in order if c not in images]
        if missing:
            raise SegmenterError(f"case {case_id!r}: segmenter {self.name!r} needs channel(s) "
                                 f"{', '.join(missing)}, the case has {', '.join(sorted(images)) or 'none'}")
        return order

    def _write_inputs(self, folder: Path, case_id: str, images: Images, affine: np.ndarray | None) -> Volume:
        from cmsbench.tasks.io.nifti import write_nifti

        order = self._order(images, case_id)
        first: Volume | None = None
        for i, channel in enumerate(order):
            vol = _volume(images[channel], affine)
            if first is not None and vol.shape != first.shape:
                raise SegmenterError(f"case {case_id!r}: channel {channel!r} has shape {vol.shape}, "
                                     f"{order[0]!r} has {first.shape}; all channels must share one grid")
            if first is None:
                first = vol
            write_nifti(folder / f"{case_id}_{i:04d}.nii.gz", np.asarray(vol.data, np.float32), vol.affine)
        assert first is not None
        return first

    def _run(self, values: Mapping[str, str], who: str) -> None:
        args = [a.format_map(_Placeholders(values)) for a in self.args]
        env = dict(os.environ, CMSBENCH_CHANNELS=",".join(self.channels or ()))
        try:
            done = subprocess.run(args, capture_output=True, text=True, timeout=self.timeout, env=env, check=False)
        except FileNotFoundError as exc:
            raise SegmenterError(f"segmenter {self.name!r} ({who}): cannot run {args[0]!r}: {exc.strerror}; "
                                 f"check the command") from exc
        except subprocess.TimeoutExpired as exc:
            raise SegmenterError(f"segmenter {self.name!r} ({who}): the command ran past {self.timeout} s") from exc
        if done.returncode != 0:
            tail = (done.stderr or done.stdout or "").strip().splitlines()[-5:]
            raise SegmenterError(f"segmenter {self.name!r} failed on {who}: the command exited with status "
                                 f"{done.returncode}" + (": " + " | ".join(tail) if tail else ""))

    def _read_output(self, folder: Path, case_id: str, grid: Volume) -> np.ndarray:
        from cmsbench.tasks.io.nifti import read_nifti

        path = folder / f"{case_id}.nii.gz"
        if not path.is_file():
            found = ", ".join(sorted(p.name for p in folder.iterdir())[:5]) or "nothing"
            raise SegmenterError(f"segmenter {self.name!r} wrote no label map for case {case_id!r} (expected "
                                 f"{path.name} in the output folder, found {found})")
        try:
            labels = read_nifti(path, labels="nonnegative", dtype=np.int16, subject=case_id).data
        except CmsbenchError as exc:
            raise SegmenterError(f"segmenter {self.name!r}, case {case_id!r}: unusable label map: {exc}") from exc
        if labels.shape != grid.shape:
            raise SegmenterError(f"segmenter {self.name!r}, case {case_id!r}: label map of shape {labels.shape}, "
                                 f"the images have {grid.shape}")
        return labels

    def segment(self, images: Images, *, case_id: str, affine: np.ndarray | None = None) -> np.ndarray:
        with tempfile.TemporaryDirectory(prefix="cmsbench-seg-") as tmp:
            inp, out = Path(tmp, "input"), Path(tmp, "output")
            inp.mkdir()
            out.mkdir()
            grid = self._write_inputs(inp, case_id, images, affine)
            self._run({"input_dir": str(inp), "output_dir": str(out), "case_id": case_id}, f"case {case_id!r}")
            return self._read_output(out, case_id, grid)

    def segment_cases(self, cases: Mapping[str, Images], *,
                      affines: Mapping[str, np.ndarray] | None = None) -> dict[str, Segmentation]:
        if self.per_case or not cases:
            return super().segment_cases(cases, affines=affines)
        start = time.perf_counter()
        grids: dict[str, Volume] = {}
        out: dict[str, Segmentation] = {}
        with tempfile.TemporaryDirectory(prefix="cmsbench-seg-") as tmp:
            inp, res = Path(tmp, "input"), Path(tmp, "output")
            inp.mkdir()
            res.mkdir()
            for case_id, images in cases.items():
                try:
                    grids[case_id] = self._write_inputs(inp, case_id, images, (affines or {}).get(case_id))
                except SegmenterError as exc:
                    out[case_id] = Segmentation(case_id, None, str(exc))
            if grids:
                try:
                    self._run({"input_dir": str(inp), "output_dir": str(res)}, f"the batch of {len(grids)} case(s)")
                    failure = None
                except SegmenterError as exc:
                    failure = str(exc)
                per_case = (time.perf_counter() - start) / len(grids)
                for case_id, grid in grids.items():
                    if failure is not None:
                        out[case_id] = Segmentation(case_id, None, failure, per_case)
                        continue
                    try:
                        out[case_id] = Segmentation(case_id, self._read_output(res, case_id, grid), None, per_case)
                    except SegmenterError as exc:
                        out[case_id] = Segmentation(case_id, None, str(exc), per_case)
        return {case_id: out[case_id] for case_id in cases}


class _Placeholders(dict):
    """Placeholder values for ``str.format_map``; an unknown ``{name}`` is an error naming the known ones."""

    def __init__(self, values: Mapping[str, str]) -> None:
        super().__init__(values, python=sys.executable)

    def __missing__(self, key: str) -> str:
        raise SegmenterError(f"unknown placeholder {{{key}}} in the segmenter command; known: "
                             + ", ".join("{" + p + "}" for p in PLACEHOLDERS))


# ---------------------------------------------------------------------------------- registry
BUILTIN_SEGMENTERS = {"command": "cmsbench.benchmark.downstream.segmenters:CommandSegmenter",
                      "segresnet": "cmsbench.benchmark.downstream.segresnet:SegResNetSegmenter"}

SEGMENTERS: Registry[Any] = Registry("cmsbench.segmenters", "segmenter", BUILTIN_SEGMENTERS)


def get_segmenter(name: str, **options: Any) -> Segmenter:
    """The segmenter registered under ``name``, built with ``options`` when the entry is a class or a
    factory ("did you mean" for an unknown name; a clear error for a broken entry)."""
    obj = SEGMENTERS.load(name)
    entry = SEGMENTERS.entries()[name]
    where = f"segmenter {name!r} registered by {entry.distribution} ({entry.target})"
    if isinstance(obj, Segmenter):
        if options:
            raise SegmenterError(f"{where} is a configured segmenter and takes no options (got {', '.join(options)})")
        if obj.name != name:
            raise SegmenterError(f"{where} calls itself {obj.name!r}; the entry-point name and the segmenter's "
                                 f"name must agree")
        return obj
    if not callable(obj):
        raise SegmenterError(f"{where} is a {type(obj).__name__}, not a Segmenter, a Segmenter class or a factory")
    factory: Callable[..., Any] = obj
    try:
        seg = factory(**options)
    except TypeError as exc:
        raise SegmenterError(f"{where}: bad options {sorted(options)}: {exc}") from exc
    if not isinstance(seg, Segmenter):
        raise SegmenterError(f"{where} built a {type(seg).__name__}, not a cmsbench Segmenter")
    return seg

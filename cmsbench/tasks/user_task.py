"""User-defined tasks from a small TOML file: a lab benchmarks its own dataset without writing Python.

Example (``mylab.toml``)::

    name = "mylab_flair"
    version = "1.0"
    description = "T1 + T2 -> FLAIR on our 3T collection"
    inputs = ["t1", "t2"]
    target = "flair"
    units = "a.u."
    normalisation = "healthy_median"      # or "none"
    normalisation_region = "brain"
    regions = ["brain", "lesion"]
    metrics = ["psnr", "ssim", "mae"]
    main_metric = "psnr"
    data_range = 4.0                      # or {low = -160, high = 240} for a window, or "gt_range"
    [split]
    kind = "hash"                         # hash | first_n | site | fixed_ids
    fractions = [0.65, 0.10, 0.25]
    [files]                               # patterns relative to --data-root, {subject} placeholder
    t1 = "{subject}/t1.nii.gz"
    t2 = "{subject}/t2.nii.gz"
    flair = "{subject}/flair.nii.gz"
    [masks]
    brain = "{subject}/brain_mask.nii.gz"
    lesion = "{subject}/lesion.nii.gz"
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import tomllib

from cmsbench.errors import TaskSpecError
from cmsbench.tasks.spec import DataRange, DatasetInfo, Normalisation, SplitPolicy, TaskSpec

_KNOWN_KEYS = {
    "name", "version", "description", "inputs", "target", "units", "normalisation", "normalisation_region",
    "regions", "metrics", "main_metric", "data_range", "split", "files", "masks", "dataset", "citation", "licence",
}


def _data_range(value: Any, path: Path) -> DataRange:
    if isinstance(value, (int, float)):
        return DataRange("fixed", value=float(value))
    if value == "gt_range":
        return DataRange("gt_range")
    if isinstance(value, dict) and {"low", "high"} <= set(value):
        return DataRange("window", low=float(value["low"]), high=float(value["high"]))
    raise TaskSpecError(f"{path}: data_range must be a number, 'gt_range' or {{low = .., high = ..}}, got {value!r}")


def load_task_file(path: str | Path) -> TaskSpec:
    """Parse and validate a task TOML file into a :class:`TaskSpec` (adapter ``pattern``)."""
    path = Path(path)
    if not path.is_file():
        raise TaskSpecError(f"task file {path} does not exist")
    try:
        raw = tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise TaskSpecError(f"task file {path} is not valid TOML: {exc}") from exc
    unknown = sorted(set(raw) - _KNOWN_KEYS)
    if unknown:
        raise TaskSpecError(f"task file {path}: unknown keys {unknown}; known: {sorted(_KNOWN_KEYS)}")
    required = [k for k in ("name", "inputs", "target", "files") if k not in raw]
    if required:
        raise TaskSpecError(f"task file {path}: missing required keys {required}")
    split_raw = dict(raw.get("split", {}))
    for key in ("fractions", "counts", "test_sites", "test_ids", "val_ids"):
        if key in split_raw:
            split_raw[key] = tuple(split_raw[key])
    masks = dict(raw.get("masks", {}))
    default_regions = ["global", *[m for m in ("brain", "head", "body", "lesion") if m in masks]]
    try:
        return TaskSpec(
            name=str(raw["name"]),
            version=str(raw.get("version", "1.0")),
            description=str(raw.get("description", f"user-defined task from {path.name}")),
            dataset=DatasetInfo(str(raw.get("dataset", raw["name"])), "patterns: " + ", ".join(
                f"{k}={v}" for k, v in raw["files"].items()), citation=str(raw.get("citation", "")),
                licence=str(raw.get("licence", ""))),
            adapter="pattern",
            inputs=tuple(raw["inputs"]),
            target=str(raw["target"]),
            units=str(raw.get("units", "a.u.")),
            normalisation=Normalisation(raw.get("normalisation", "none"), region=raw.get("normalisation_region", "brain")),
            regions=tuple(raw.get("regions", default_regions)),
            metrics=tuple(raw.get("metrics", ("psnr", "ssim", "mae", "nmse"))),
            main_metric=str(raw.get("main_metric", "psnr")),
            data_range=_data_range(raw.get("data_range", "gt_range"), path),
            split=SplitPolicy(**split_raw) if split_raw else SplitPolicy(salt=str(raw["name"])),
            adapter_options={"files": dict(raw["files"]), "masks": masks},
        )
    except TypeError as exc:
        raise TaskSpecError(f"task file {path}: {exc}") from exc

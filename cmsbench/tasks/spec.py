"""Task specifications: frozen, validated, versioned metadata records (MTEB ``TaskMetadata`` style).

A :class:`TaskSpec` pins down everything a number depends on: inputs, target, units, the intensity
normalisation (computed from the ground truth only), evaluation regions, metrics, the PSNR data range,
the split policy and the dataset. A changed task gets a new ``version``; old numbers keep their meaning.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from typing import Any, Literal

from cmsbench.errors import TaskSpecError

NormalisationKind = Literal["none", "healthy_median", "fixed_scale"]
DataRangeKind = Literal["fixed", "window", "gt_range"]
SplitKind = Literal["hash", "first_n", "site", "fixed_ids"]

@dataclass(frozen=True)
class Normalisation:
    """How intensities are scaled before methods see them and before scoring.

    ``healthy_median``: divide each image by the median of its voxels in ``region`` minus the lesion.
    For the target this statistic comes from the ground truth only, and the same divisor is applied to
    the prediction's reference; predictions are never rescaled by their own statistics.
    ``none``: physical units are kept (CT in HU, PET in Bq/mL). ``fixed_scale``: divide by ``scale``.
    """

    kind: NormalisationKind = "none"
    region: str = "brain"
    scale: float = 1.0

    def describe(self) -> str:
        """A one-line human description."""
        if self.kind == "healthy_median":
            return f"divided by the ground truth's median over {self.region} voxels outside the lesion"
        if self.kind == "fixed_scale":
            return f"divided by the fixed scale {self.scale:g}"
        return "none (physical units)"


@dataclass(frozen=True)
class DataRange:
    """The PSNR peak / SSIM data range convention.

    ``fixed``: ``value`` in the task's (normalised) units. ``window``: images are clipped to
    ``[low, high]`` and the range is ``high - low`` (CT display windows). ``gt_range``: max - min of the
    ground truth inside the evaluated region.
    """

    kind: DataRangeKind = "fixed"
    value: float | None = None
    low: float | None = None
    high: float | None = None

    def __post_init__(self) -> None:
        if self.kind == "fixed" and (self.value is None or self.value <= 0):
            raise TaskSpecError("DataRange(kind='fixed') needs a positive value")
        if self.kind == "window" and (self.low is None or self.high is None or self.high <= self.low):
            raise TaskSpecError("DataRange(kind='window') needs low < high")

    def describe(self) -> str:
        """A one-line human description."""
        if self.kind == "fixed":
            return f"fixed {self.value:g}"
        if self.kind == "window":
            return f"window [{self.low:g}, {self.high:g}] (range {self.high - self.low:g})"
        return "ground truth max - min"


@dataclass(frozen=True)
class SplitPolicy:
    """How subjects are assigned to train / val / test.

    ``hash``: by a salted SHA-256 of the subject ID, with ``fractions`` (stable when subjects are added
    or missing). ``first_n``: the first sum(``counts``) sorted subject IDs, in ``counts`` order (e.g. the
    ICON-lab IXI protocol 25/5/10). ``site``: subjects of ``test_sites`` are the test set, the others are
    split train/val by hash. ``fixed_ids``: ``test_ids`` (and optional ``val_ids``) are listed.
    """

    kind: SplitKind = "hash"
    fractions: tuple[float, float, float] = (0.65, 0.10, 0.25)
    counts: tuple[int, int, int] | None = None
    salt: str = "cmsbench-v1"
    test_sites: tuple[str, ...] = ()
    test_ids: tuple[str, ...] = ()
    val_ids: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.kind == "hash":
            if len(self.fractions) != 3 or abs(sum(self.fractions) - 1.0) > 1e-9:
                raise TaskSpecError(f"split fractions must be 3 numbers summing to 1, got {self.fractions}")
        if self.kind == "first_n" and (self.counts is None or len(self.counts) != 3):
            raise TaskSpecError("SplitPolicy(kind='first_n') needs counts=(train, val, test)")
        if self.kind == "site" and not self.test_sites:
            raise TaskSpecError("SplitPolicy(kind='site') needs test_sites")
        if self.kind == "fixed_ids" and not self.test_ids:
            raise TaskSpecError("SplitPolicy(kind='fixed_ids') needs test_ids")


@dataclass(frozen=True)
class DatasetInfo:
    """Where the data comes from and under which terms."""

    name: str
    layout: str
    citation: str = ""
    licence: str = ""
    url: str = ""


@dataclass(frozen=True)
class TaskSpec:
    """A benchmark task. Construct via keyword arguments; validated on construction.

    Attributes:
        name: registry name (``brats_flair``).
        version: bumped whenever anything that changes numbers changes.
        description: one paragraph for humans.
        dataset: dataset name, layout, citation, licence.
        adapter: name of the dataset adapter that reads the official layout.
        inputs: input modality names, in the order methods receive them.
        target: target modality name.
        units: units of the target as scored (after normalisation).
        normalisation: intensity policy (ground truth only).
        regions: evaluation regions (``global``, ``brain``, ``lesion``, ...), names in the region registry
            (``cmsbench.regions`` entry points) or masks the task's own files provide.
        metrics: metric names computed per region, names in the metric registry (``cmsbench.metrics``),
            task-specific ones included (PET SUV errors, CT window metrics).
        main_metric: the leaderboard's sort key (``"psnr"``, ``"mae"``).
        data_range: PSNR/SSIM data range convention.
        split: split policy.
        phantom: name of the embedded phantom dataset that stands in for the real one.
        adapter_options: options passed to the adapter (e.g. the PET dose-reduction factor).
        parameters: user-tunable task parameters with their defaults (e.g. ``{"drf": 4}``).
        superseded_by: name of a newer task that replaces this one, if any.
        downstream_metrics: metrics that ``--downstream`` adds in the task's regions without a segmenter
            (synthetic CT: the HU-band tissue consistency); not part of the fingerprint.
        targets: set when the target varies per case among these modalities (BraSyn: the one sequence
            removed from each case). ``inputs`` then lists every modality a case may have, the targets among
            them; a case's inputs are the others and its target the missing one (its ``target.modality``),
            and ``target`` is only a label for that role (``"missing"``). :meth:`for_target` gives the
            fixed-target task of one choice. Left out of :meth:`to_dict` when empty, so the fingerprints
            of fixed-target tasks do not depend on it.
    """

    name: str
    version: str
    description: str
    dataset: DatasetInfo
    adapter: str
    inputs: tuple[str, ...]
    target: str
    units: str
    normalisation: Normalisation = field(default_factory=Normalisation)
    regions: tuple[str, ...] = ("global",)
    metrics: tuple[str, ...] = ("psnr", "ssim", "mae", "nmse")
    main_metric: str = "psnr"
    main_region: str | None = None
    data_range: DataRange = field(default_factory=lambda: DataRange("fixed", 1.0))
    split: SplitPolicy = field(default_factory=SplitPolicy)
    split_variants: Mapping[str, SplitPolicy] = field(default_factory=dict)
    phantom: str | None = None
    adapter_options: Mapping[str, Any] = field(default_factory=dict)
    parameters: Mapping[str, Any] = field(default_factory=dict)
    superseded_by: str | None = None
    targets: tuple[str, ...] = ()
    downstream_metrics: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        problems = []
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            problems.append(f"name {self.name!r} must be alphanumeric with _ or -")
        if not self.inputs:
            problems.append("a task needs at least one input modality")
        if self.target in self.inputs:
            problems.append(f"target {self.target!r} is also an input")
        if len(set(self.inputs)) != len(self.inputs):
            problems.append(f"duplicate inputs {self.inputs}")
        if self.main_metric not in self.metrics:
            problems.append(f"main_metric {self.main_metric!r} is not among metrics {self.metrics}")
        if not self.regions:
            problems.append("a task needs at least one region")
        if len(set(self.metrics)) != len(self.metrics) or len(set(self.regions)) != len(self.regions):
            problems.append(f"duplicate metrics or regions ({self.metrics}, {self.regions})")
        if self.targets:
            if len(self.targets) < 2 or len(set(self.targets)) != len(self.targets):
                problems.append(f"targets {tuple(self.targets)} must name at least two distinct modalities")
            if any(t not in self.inputs for t in self.targets):
                problems.append(f"every one of targets {tuple(self.targets)} must be among inputs {tuple(self.inputs)}")
        if self.main_region is not None and self.main_region not in self.regions:
            problems.append(f"main_region {self.main_region!r} is not among regions {self.regions}")
        if problems:
            raise TaskSpecError(f"invalid task spec {self.name!r}: " + "; ".join(problems))
        object.__setattr__(self, "inputs", tuple(self.inputs))
        object.__setattr__(self, "targets", tuple(self.targets))
        object.__setattr__(self, "downstream_metrics", tuple(self.downstream_metrics))
        object.__setattr__(self, "regions", tuple(self.regions))
        object.__setattr__(self, "metrics", tuple(self.metrics))
        object.__setattr__(self, "adapter_options", dict(self.adapter_options))
        object.__setattr__(self, "parameters", dict(self.parameters))
        object.__setattr__(self, "split_variants", dict(self.split_variants))
        if self.main_region is None:
            object.__setattr__(self, "main_region", self.regions[0])

    def summary(self) -> str:
        """``"t1 + t2 -> flair"``; ``"3 of t1 + t1ce + t2 + flair -> the missing one"`` when the target varies."""
        if self.targets:
            among = "" if set(self.targets) == set(self.inputs) else f" (one of {' + '.join(self.targets)})"
            return f"{len(self.inputs) - 1} of {' + '.join(self.inputs)} -> the missing one{among}"
        return f"{' + '.join(self.inputs)} -> {self.target}"

    @property
    def varies_target(self) -> bool:
        """True when each case has its own target among :attr:`targets`."""
        return bool(self.targets)

    def for_target(self, target: str) -> TaskSpec:
        """The fixed-target task of one choice of a varying target: inputs = the others, target = ``target``."""
        if target not in self.targets:
            raise TaskSpecError(f"task {self.name!r}: {target!r} is not one of its targets {self.targets}")
        return replace(self, inputs=tuple(m for m in self.inputs if m != target), target=target, targets=())

    def with_parameters(self, **params: Any) -> TaskSpec:
        """The same task with some parameters changed (unknown parameters are an error)."""
        unknown = sorted(set(params) - set(self.parameters))
        if unknown:
            raise TaskSpecError(
                f"task {self.name!r} has no parameter(s) {unknown}; its parameters: {dict(self.parameters)}"
            )
        params = {k: (float(v) if isinstance(self.parameters[k], float) and isinstance(v, int)
                      and not isinstance(v, bool) else v) for k, v in params.items()}  # 10 and 10.0: one task
        merged = {**self.parameters, **params}
        options = {**self.adapter_options, **params}
        return replace(self, parameters=merged, adapter_options=options)

    def with_scoring(self, metrics: tuple[str, ...] = (), regions: tuple[str, ...] = ()) -> TaskSpec:
        """The same task scored with extra metrics and/or regions (e.g. a plugin's); the fingerprint changes.

        Names are checked against the registries by the scorer before any work.
        """
        if not metrics and not regions:
            return self
        return replace(self, metrics=tuple(dict.fromkeys([*self.metrics, *sorted(metrics)])),
                       regions=tuple(dict.fromkeys([*self.regions, *sorted(regions)])))

    def with_split(self, variant: str) -> TaskSpec:
        """The same task under a named split protocol variant (e.g. ``"icon"`` for IXI 25/5/10)."""
        if variant in ("", "default"):
            return self
        if variant not in self.split_variants:
            raise TaskSpecError(
                f"task {self.name!r} has no split variant {variant!r}; "
                f"available: {['default', *sorted(self.split_variants)]}"
            )
        return replace(self, split=self.split_variants[variant])

    def to_dict(self) -> dict[str, Any]:
        """A JSON-serialisable dict (for result records); ``targets`` and ``downstream_metrics`` only when set."""
        data = asdict(self)
        for optional in ("targets", "downstream_metrics"):
            if not data[optional]:
                del data[optional]
        return json.loads(json.dumps(data, default=str))

    def fingerprint(self) -> str:
        """A short hash of everything in the spec (changes whenever the spec does) except
        ``downstream_metrics``: those are scored only with ``--downstream``, which the run identity records."""
        data = self.to_dict()
        data.pop("downstream_metrics", None)
        blob = json.dumps(data, sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]

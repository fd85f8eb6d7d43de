"""Shared machinery of the tasks whose input is a degradation of a clean image, simulated on read.

A degraded task (``ixi_sr_t2``, ``gbca_lowdose``) reads its dataset through an existing adapter (IXI,
BraTS) under a *proxy* task that names the clean images only, then applies the task's degradation
operator (:mod:`cmsbench.tasks.degradations`) to produce the degraded input. What the operator does is
fixed by the task spec's ``adapter_options``:

* ``operator``, ``operator_version``, ``operator_params``: the operator and its fixed parameters (the
  :meth:`~cmsbench.tasks.degradations.OperatorCall.options` fragment);
* the task parameter (``scale`` or ``dose``) is copied into ``operator_params`` under the operator's
  own name (``factor``, ``dose``) when the adapter resolves the call, so ``--parameter scale=2`` changes
  the operator, the adapter options and hence the task fingerprint, the cache key and the record;
* ``degradation_seed``: the seed of a stochastic operator (part of the task: every method and every run
  sees the same degraded bytes, whatever the run's ``--seed``).

Each loaded case records what was applied in ``case.metadata["degradation"]`` (``{"name", "version",
"params", "seed"}``), which methods may read in ``fit`` (the up-sampling factor, the dose).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from cmsbench.errors import TaskSpecError
from cmsbench.tasks.adapters.base import CaseRef, DatasetAdapter, Discovery
from cmsbench.tasks.degradations import OperatorCall, OperatorError, from_options
from cmsbench.tasks.spec import TaskSpec
from cmsbench.tasks.volume import Case

log = logging.getLogger(__name__)

#: ``adapter_options`` key of a stochastic operator's seed (not ``operator_*``: those are the registry's).
SEED_KEY = "degradation_seed"


def operator_call(task: TaskSpec, parameter: str, operator_param: str) -> OperatorCall:
    """The task's degradation: ``adapter_options`` with the task parameter ``parameter`` put into the
    operator's parameter ``operator_param``. Raises :class:`OperatorError` (a :class:`TaskSpecError`)
    naming the task when the options or the parameter's value are invalid."""
    options = dict(task.adapter_options)
    if parameter not in options:
        raise TaskSpecError(f"task {task.name!r}: adapter option {parameter!r} is missing")
    fixed = dict(options.get("operator_params") or {})
    if operator_param in fixed and fixed[operator_param] != options[parameter]:
        raise TaskSpecError(f"task {task.name!r}: give {operator_param!r} as the task parameter {parameter!r}, "
                            "not in operator_params")
    options["operator_params"] = {**fixed, operator_param: options[parameter]}
    options.pop(SEED_KEY, None)
    options.pop(parameter, None)
    try:
        call = from_options(options)
    except OperatorError as exc:
        raise OperatorError(f"task {task.name!r} (parameter {parameter}={task.adapter_options[parameter]!r}): {exc}") from None
    if call is None:
        raise TaskSpecError(f"task {task.name!r}: adapter_options name no degradation operator")
    return call


def degradation_seed(task: TaskSpec) -> int:
    """The task's degradation seed (0 when not given)."""
    return int(task.adapter_options.get(SEED_KEY, 0))


def describe(call: OperatorCall, seed: int) -> dict[str, Any]:
    """What a case's metadata records about its degradation."""
    return {**call.describe(), "seed": int(seed)}


def proxy_task(task: TaskSpec, *, adapter: str, inputs: tuple[str, ...], target: str) -> TaskSpec:
    """The same task re-stated for the underlying dataset adapter: clean ``inputs`` -> ``target``, no
    adapter options (so its cache entries are those of the sibling task that reads the same images)."""
    return replace(task, adapter=adapter, inputs=inputs, target=target, adapter_options={}, parameters={})


def load_clean(inner: DatasetAdapter, ref: CaseRef, proxy: TaskSpec, *, cached: bool) -> Case:
    """The clean case as ``inner`` reads it under ``proxy``; with ``cached``, through the case cache under
    the inner adapter's own key (shared with e.g. ``ixi_t1_t2``, whose T1 registration is the costly part).
    A cache that cannot be written (read-only home) is skipped."""
    if not cached:
        return inner.load(ref, proxy)
    from cmsbench.paths import cache_home
    from cmsbench.tasks.dataset import load_raw_case
    from cmsbench.tasks.io.cache import CaseCache

    try:
        return load_raw_case(ref, proxy, CaseCache(cache_home() / "cases"))
    except OSError as exc:  # pragma: no cover - an unwritable cache folder
        log.debug("case cache unavailable (%s); reading %s directly", exc, ref.case_id)
        return inner.load(ref, proxy)


def copy_case(case: Case, inputs: Mapping[str, Any], metadata: Mapping[str, Any]) -> Case:
    """``case`` with other inputs and extra metadata (masks, target and labels shared)."""
    return Case(case_id=case.case_id, inputs=dict(inputs), target=case.target, masks=dict(case.masks),
                labels=case.labels, metadata={**case.metadata, **metadata})


class DegradedAdapter(DatasetAdapter):
    """An adapter whose task has two inputs: the degraded image (named ``<target>_<suffix>``) and a clean
    companion read by ``inner``; subclasses set ``inner``, ``parameter``/``operator_param``, ``what`` (for
    messages) and ``load``."""

    inner: DatasetAdapter
    parameter: str
    operator_param: str
    what: str

    def roles(self, task: TaskSpec) -> tuple[str, str, str]:
        """(degraded input, clean input, target): the input named like the target is the degraded one."""
        degraded = next((m for m in task.inputs if m.startswith(task.target + "_")), None)
        if degraded is None or len(task.inputs) != 2:
            raise TaskSpecError(f"task {task.name!r}: the {self.what} adapter needs two inputs, one of them "
                                f"{task.target}_<suffix> (the degraded {task.target}); got {task.inputs}")
        clean = next(m for m in task.inputs if m != degraded)
        return degraded, clean, task.target

    def proxy(self, task: TaskSpec) -> TaskSpec:
        """The task ``inner`` reads: the clean input and the target only."""
        _, clean, target = self.roles(task)
        return proxy_task(task, adapter=self.inner.name, inputs=(clean,), target=target)

    def call(self, task: TaskSpec) -> OperatorCall:
        """The task's degradation operator with its parameter set."""
        return operator_call(task, self.parameter, self.operator_param)

    def discover(self, root: Path, task: TaskSpec) -> Discovery:
        self.call(task)  # an invalid parameter is an error before any file is read
        return self.inner.discover(root, self.proxy(task))  # names a missing file by its file name

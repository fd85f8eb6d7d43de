"""The registry of degradation operators (``cmsbench.operators`` entry points, built-in fallbacks) and the
bridge from a task's ``adapter_options`` to an operator call."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from cmsbench.registry import Registry, did_you_mean
from cmsbench.tasks.degradations.api import Operator, OperatorCall, OperatorError

BUILTIN_OPERATORS = {
    **{name: f"cmsbench.tasks.degradations.builtin:{name.upper()}"
       for name in ("kspace_truncation", "downsample", "contrast_dose")},
    **{name: f"cmsbench.tasks.degradations.slices:{name.upper()}" for name in ("decimate", "slab")},
}

OPERATORS: Registry[Operator] = Registry("cmsbench.operators", "degradation operator", BUILTIN_OPERATORS)

#: The ``adapter_options`` keys that name a task's degradation.
OPTION_KEYS = ("operator", "operator_version", "operator_params")


def get_operator(name: str, version: str | None = None) -> Operator:
    """The operator registered under ``name``, at ``version`` (None: the current one; an older one from
    :attr:`Operator.previous`). :class:`~cmsbench.errors.UnknownNameError` with "did you mean" when the
    name is unknown; :class:`OperatorError` when the entry point is not an :class:`Operator`, calls itself
    otherwise, or has no such version."""
    obj = OPERATORS.load(name)
    entry = OPERATORS.entries()[name]
    if not isinstance(obj, Operator):
        raise OperatorError(f"degradation operator {name!r} registered by {entry.distribution} ({entry.target}) is "
                            f"a {type(obj).__name__}, not a cmsbench Operator; fix the plugin's entry point")
    if obj.name != name:
        raise OperatorError(f"degradation operator registered as {name!r} by {entry.distribution} calls itself "
                            f"{obj.name!r}; the entry-point name and the operator's name must agree")
    return obj.at_version(version)


def degradation(name: str, params: Mapping[str, Any] | None = None, *, version: str | None = None,
                **kwargs: Any) -> OperatorCall:
    """The operator ``name`` with its parameters resolved: ``degradation("kspace_truncation", factor=4)``;
    ``version`` picks a previous version (``degradation("contrast_dose", version="1", dose=0.1)``).

    ``.options()`` is the ``adapter_options`` fragment a task spec stores; ``.apply(...)`` degrades a case.
    """
    return get_operator(name, version).call({**dict(params or {}), **kwargs})


def from_options(options: Mapping[str, Any]) -> OperatorCall | None:
    """The operator call a task's ``adapter_options`` name, or None when they name none.

    Reads ``operator`` (name), ``operator_params`` (defaults fill the rest) and ``operator_version``
    (optional, default the current version; when given, the operator runs at that version, the current one
    or one it keeps in :attr:`Operator.previous`, because the records of the task were produced by it; an
    unknown version is an error). Other ``operator*`` keys are an error (a misspelt key would otherwise
    silently degrade with the defaults).
    """
    stray = [k for k in options if str(k).startswith("operator") and k not in OPTION_KEYS]
    if stray:
        raise OperatorError(f"unknown adapter option {stray[0]!r}.{did_you_mean(str(stray[0]), OPTION_KEYS)} "
                            f"Degradation options: {', '.join(OPTION_KEYS)}")
    if options.get("operator") is None:
        if options.get("operator_params") or options.get("operator_version"):
            raise OperatorError("adapter options give operator_params or operator_version but no operator name")
        return None
    version = options.get("operator_version")
    operator = get_operator(str(options["operator"]), None if version is None else str(version))
    params = options.get("operator_params") or {}
    if not isinstance(params, Mapping):
        raise OperatorError(f"operator_params of {operator.name!r} must be a table of parameters, got {params!r}")
    return operator.call(params)

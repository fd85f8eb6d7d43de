"""The degradation-operator API: what an operator is, its parameters, and one configured call of it.

A degradation operator turns a clean volume (real data or a phantom) into the degraded input of a task:
k-space truncation for super-resolution, a simulated low contrast dose, ... . Published numbers depend on
exactly how the degradation is simulated, so every operator is named, versioned and parameterised
explicitly, and what it was run with (:meth:`Operator.describe`) goes into the task fingerprint and every
record. Operators are registered under the ``cmsbench.operators`` entry-point group (built-ins and
plugins alike; :mod:`.registry`).

Determinism: an operator's output depends only on its input volumes, its resolved parameters, the seed
and the case id. Operators that draw noise get a generator seeded from ``(seed, case_id, operator name)``
through SHA-256 (:func:`operator_rng`; never Python's ``hash()``, which is salted per process), so a case
degrades to the same bytes in every run and process, whatever the order or number of cases.

A plugin operator in full::

    import numpy as np
    from cmsbench.tasks.degradations.api import Operator, Parameter, real

    def _gain(volume, params, *, rng, others):
        return volume.with_data((volume.data * params["gain"]).astype(np.float32))

    GAIN = Operator(name="gain", version="1", summary="multiply by a constant", function=_gain,
                    parameters=(Parameter("gain", 1.0, "the factor", real(low=0, low_open=True)),))

and in the plugin's ``pyproject.toml``::

    [project.entry-points."cmsbench.operators"]
    gain = "my_pkg.operators:GAIN"

A task names its operator in ``adapter_options`` (see :class:`OperatorCall` and
:func:`cmsbench.tasks.degradations.registry.from_options`)::

    adapter_options={"operator": "kspace_truncation", "operator_version": "1",
                     "operator_params": {"factor": 4, "output": "grid", "axes": [0, 1], "convention": "symmetric"}}

and its adapter applies the operator on read.
"""

from __future__ import annotations

import hashlib
import math
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmsbench.errors import DataError, GeometryError, TaskSpecError
from cmsbench.registry import did_you_mean
from cmsbench.tasks.volume import Volume


class OperatorError(TaskSpecError):
    """A degradation operator was defined, named or parameterised wrongly, or lacks a volume it needs."""


#: A parameter validator: returns the normalised value (JSON-serialisable) or raises ValueError / TypeError
#: whose message completes "parameter 'x' ...", e.g. "must be an integer >= 2, got 0".
Validator = Callable[[Any], Any]

#: ``function(volume, params, *, rng, others) -> Volume``: the operator's work. ``params`` are resolved
#: (defaults filled in, validated); ``rng`` is the case's generator; ``others`` holds the extra volumes
#: named in :attr:`Operator.requires` (already checked to be present and on the volume's grid).
OperatorFunction = Callable[..., Volume]


# ---------------------------------------------------------------------------------------- validators
def _any(value: Any) -> Any:
    return value


def integer(low: int | None = None, high: int | None = None) -> Validator:
    """An integer in ``[low, high]`` (an integral float such as ``4.0`` is accepted as ``4``)."""
    bounds = " and ".join(s for s in (f">= {low}" if low is not None else "", f"<= {high}" if high is not None else "")
                          if s)

    def check(value: Any) -> int:
        ok = isinstance(value, numbers.Integral) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not ok:
            raise ValueError(f"must be an integer{' ' + bounds if bounds else ''}, got {value!r}")
        v = int(value)
        if (low is not None and v < low) or (high is not None and v > high):
            raise ValueError(f"must be an integer {bounds}, got {v}")
        return v

    return check


def real(low: float | None = None, high: float | None = None, *, low_open: bool = False,
         high_open: bool = False) -> Validator:
    """A finite number in the interval from ``low`` to ``high`` (open ends where asked)."""
    lo = "-inf" if low is None else f"{low:g}"
    hi = "inf" if high is None else f"{high:g}"
    interval = f"{'(' if low_open or low is None else '['}{lo}, {hi}{')' if high_open or high is None else ']'}"

    def check(value: Any) -> float:
        if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(float(value)):
            raise ValueError(f"must be a finite number in {interval}, got {value!r}")
        v = float(value)
        if low is not None and (v < low or (low_open and v == low)):
            raise ValueError(f"must be in {interval}, got {v:g}")
        if high is not None and (v > high or (high_open and v == high)):
            raise ValueError(f"must be in {interval}, got {v:g}")
        return v

    return check


def choice(*options: str) -> Validator:
    """One of the given strings."""

    def check(value: Any) -> str:
        if value not in options:
            hint = did_you_mean(str(value), options)
            raise ValueError(f"must be one of {', '.join(repr(o) for o in options)}, got {value!r}.{hint}".rstrip("."))
        return str(value)

    return check


def boolean(value: Any) -> bool:
    """A validator for True / False."""
    if not isinstance(value, (bool, np.bool_)):
        raise ValueError(f"must be true or false, got {value!r}")
    return bool(value)


def optional(inner: Validator) -> Validator:
    """``None`` or a value ``inner`` accepts."""

    def check(value: Any) -> Any:
        return None if value is None else inner(value)

    return check


def axes_pair(value: Any) -> list[int]:
    """A validator for two distinct array axes of a 3D volume, as a sorted list (``[0, 1]``)."""
    try:
        axes = [integer(0, 2)(a) for a in value]
    except (TypeError, ValueError):
        raise ValueError(f"must be two distinct axes among 0, 1, 2, got {value!r}") from None
    if len(axes) != 2 or axes[0] == axes[1]:
        raise ValueError(f"must be two distinct axes among 0, 1, 2, got {value!r}")
    return sorted(axes)


# ---------------------------------------------------------------------------------------- the API
@dataclass(frozen=True)
class Parameter:
    """One operator parameter: its name, default (already valid), meaning and validator."""

    name: str
    default: Any
    summary: str
    validate: Validator = _any


def operator_rng(seed: int, case_id: str, operator: str) -> np.random.Generator:
    """The random generator of one case under one operator: seeded from ``(seed, case_id, operator)`` by
    SHA-256, hence the same in every process and independent of which other cases are degraded."""
    digest = hashlib.sha256(f"cmsbench-degradation|{operator}|{int(seed)}|{case_id}".encode()).digest()
    words = np.frombuffer(digest[:16], dtype="<u4")
    return np.random.default_rng(np.random.SeedSequence([int(w) for w in words]))


@dataclass(frozen=True)
class Operator:
    """A named, versioned degradation operator.

    Attributes:
        name: registry name (``"kspace_truncation"``); the entry-point name must agree.
        version: bumped whenever the output changes for the same inputs, parameters, seed and case.
        summary: one line for listings.
        function: the work, ``function(volume, params, *, rng, others) -> Volume`` (:data:`OperatorFunction`).
        parameters: the parameters with defaults and validators; unknown parameters are an error.
        requires: names of the extra volumes ``apply`` needs in ``others`` (``("pre",)`` for the
            contrast dose: the pre-contrast image); each must lie on the volume's grid.
        convention: the exact definition (axes, normalisation, noise model), for task cards.
        stochastic: whether the output depends on the seed (it draws noise).
        previous: the earlier versions of this operator (each an :class:`Operator` of the same name), kept
            so that a task spec naming one (``operator_version``) still degrades exactly as it did and its
            fingerprint stays what its records carry; :meth:`at_version` picks one. The registry holds one
            entry per name, the newest version, which carries its predecessors here.
    """

    name: str
    version: str
    summary: str
    function: OperatorFunction
    parameters: tuple[Parameter, ...] = ()
    requires: tuple[str, ...] = ()
    convention: str = ""
    stochastic: bool = False
    previous: tuple[Operator, ...] = ()
    _by_name: dict[str, Parameter] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if not self.name or not self.name.replace("_", "").replace("-", "").isalnum():
            raise OperatorError(f"operator name {self.name!r} must be alphanumeric with _ or -")
        if not isinstance(self.version, str) or not self.version:
            raise OperatorError(f"operator {self.name!r}: version must be a non-empty string, got {self.version!r}")
        object.__setattr__(self, "parameters", tuple(self.parameters))
        object.__setattr__(self, "requires", tuple(self.requires))
        names = [p.name for p in self.parameters]
        if len(set(names)) != len(names):
            raise OperatorError(f"operator {self.name!r}: duplicate parameter names {names}")
        object.__setattr__(self, "_by_name", {p.name: p for p in self.parameters})
        object.__setattr__(self, "previous", tuple(self.previous))
        versions = [self.version]
        for old in self.previous:
            if not isinstance(old, Operator) or old.name != self.name or old.previous:
                raise OperatorError(f"operator {self.name!r}: previous versions must be operators named {self.name!r} "
                                    f"without previous versions of their own, got {old!r:.80}")
            versions.append(old.version)
        if len(set(versions)) != len(versions):
            raise OperatorError(f"operator {self.name!r}: duplicate versions {versions}")
        for p in self.parameters:  # the defaults must pass their own validation
            self._check(p, p.default)

    def _check(self, param: Parameter, value: Any) -> Any:
        try:
            return param.validate(value)
        except (TypeError, ValueError) as exc:
            raise OperatorError(f"operator {self.name!r}: parameter {param.name!r} {exc}") from None

    @property
    def defaults(self) -> dict[str, Any]:
        """Every parameter's default."""
        return {p.name: self._check(p, p.default) for p in self.parameters}

    def resolve(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """Defaults filled in and every value validated (normalised, JSON-serialisable), in declaration order.

        Raises :class:`OperatorError` naming the operator and the parameter (unknown ones with "did you mean").
        """
        params = dict(params or {})
        unknown = [k for k in params if k not in self._by_name]
        if unknown:
            k = unknown[0]
            known = ", ".join(self._by_name) or "none"
            raise OperatorError(f"operator {self.name!r} has no parameter {k!r}.{did_you_mean(str(k), self._by_name)} "
                                f"Its parameters: {known}")
        return {p.name: self._check(p, params.get(p.name, p.default)) for p in self.parameters}

    def describe(self, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """What a task fingerprint and a record store: ``{"name", "version", "params"}`` (resolved)."""
        return {"name": self.name, "version": self.version, "params": self.resolve(params)}

    @property
    def versions(self) -> tuple[str, ...]:
        """Every version this operator can run: the current one first, then the previous ones."""
        return (self.version, *(old.version for old in self.previous))

    def at_version(self, version: str | None) -> Operator:
        """This operator (``version`` None or the current one) or the previous version ``version``.

        Raises :class:`OperatorError` naming the versions available when there is no such version.
        """
        if version is None or str(version) == self.version:
            return self
        for old in self.previous:
            if old.version == str(version):
                return old
        raise OperatorError(f"degradation operator {self.name!r} has no version {str(version)!r} (installed: "
                            f"{', '.join(self.versions)}): its output for that version cannot be reproduced, so the "
                            f"task's records would not be comparable; update the task spec (and its version)")

    def info(self) -> dict[str, Any]:
        """A listing entry: summary, version, parameters with defaults and meaning, required volumes."""
        return {"name": self.name, "version": self.version, "versions": list(self.versions), "summary": self.summary,
                "parameters": {p.name: {"default": p.default, "summary": p.summary} for p in self.parameters},
                "requires": list(self.requires), "stochastic": self.stochastic, "convention": self.convention}

    def rng(self, *, seed: int, case_id: str) -> np.random.Generator:
        """The generator this operator uses for ``case_id`` under ``seed`` (:func:`operator_rng`)."""
        return operator_rng(seed, case_id, self.name)

    def apply(self, volume: Volume, *, seed: int, case_id: str, params: Mapping[str, Any] | None = None,
              others: Mapping[str, Volume] | None = None) -> Volume:
        """Degrade ``volume`` (one case) with ``params``; deterministic in (inputs, params, seed, case_id).

        ``others`` holds the extra volumes named by :attr:`requires` (e.g. ``{"pre": pre_contrast}``), on
        ``volume``'s grid. Inputs must be finite and real. Returns a new :class:`Volume`.
        """
        resolved = self.resolve(params)
        if isinstance(seed, bool) or not isinstance(seed, numbers.Integral):
            raise OperatorError(f"operator {self.name!r}: seed must be an integer, got {seed!r}")
        if not isinstance(case_id, str):
            raise OperatorError(f"operator {self.name!r}: case_id must be a string, got {case_id!r}")
        others = dict(others or {})
        missing = [r for r in self.requires if r not in others]
        if missing:
            raise OperatorError(f"operator {self.name!r} needs the volume(s) {missing} in others (case {case_id!r}); "
                                f"given: {sorted(others) or 'none'}")
        _check_volume(volume, self.name, case_id, "the input")
        for key in self.requires:
            other = others[key]
            _check_volume(other, self.name, case_id, f"volume {key!r}")
            if not other.same_grid(volume):
                raise GeometryError(
                    f"case {case_id!r}: operator {self.name!r} needs {key!r} on the input's grid; input shape "
                    f"{volume.shape} spacing {volume.spacing} ({volume.source or '-'}), {key!r} shape {other.shape} "
                    f"spacing {other.spacing} ({other.source or '-'}); register or resample {key!r} first")
        out = self.function(volume, resolved, rng=self.rng(seed=seed, case_id=case_id), others=others)
        if not isinstance(out, Volume):
            raise OperatorError(f"operator {self.name!r} returned a {type(out).__name__}, not a Volume")
        return out

    def call(self, params: Mapping[str, Any] | None = None) -> OperatorCall:
        """This operator with resolved ``params``."""
        return OperatorCall(self, self.resolve(params))


def _check_volume(volume: Any, operator: str, case_id: str, what: str) -> None:
    if not isinstance(volume, Volume):
        raise OperatorError(f"operator {operator!r}: {what} must be a cmsbench Volume, got {type(volume).__name__}")
    data = np.asarray(volume.data)
    if np.iscomplexobj(data) or not (np.issubdtype(data.dtype, np.number) or data.dtype == np.bool_):
        raise DataError(f"case {case_id!r}: operator {operator!r}: {what} must be real-valued, got dtype {data.dtype}"
                        f" ({volume.source or '-'})")
    if np.issubdtype(data.dtype, np.floating) and not np.isfinite(data).all():
        raise DataError(f"case {case_id!r}: operator {operator!r}: {what} has {int((~np.isfinite(data)).sum())} "
                        f"non-finite voxels ({volume.source or '-'})")


@dataclass(frozen=True)
class OperatorCall:
    """An operator with resolved parameters: what a task's ``adapter_options`` name, applied on read.

    ``options()`` is the ``adapter_options`` fragment (name, version, full parameters, so the task
    fingerprint changes with any of them); :func:`~cmsbench.tasks.degradations.registry.from_options`
    reads it back.
    """

    operator: Operator
    params: Mapping[str, Any]

    def describe(self) -> dict[str, Any]:
        """``{"name", "version", "params"}`` for records."""
        return self.operator.describe(self.params)

    def options(self) -> dict[str, Any]:
        """``{"operator": name, "operator_version": version, "operator_params": params}``."""
        return {"operator": self.operator.name, "operator_version": self.operator.version,
                "operator_params": dict(self.operator.resolve(self.params))}

    def apply(self, volume: Volume, *, seed: int, case_id: str, others: Mapping[str, Volume] | None = None) -> Volume:
        """:meth:`Operator.apply` with these parameters."""
        return self.operator.apply(volume, seed=seed, case_id=case_id, params=self.params, others=others)

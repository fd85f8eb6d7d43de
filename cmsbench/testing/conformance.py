"""The method conformance suite (scikit-learn ``check_estimator`` style).

``check_method(MyMethod)`` runs every contract check on a tiny fake task and returns a
:class:`ConformanceReport`; ``report.raise_if_failed()`` turns failures into one
:class:`ConformanceError`. Each check is also a plain function ``check_xxx(factory)`` that raises
:class:`ConformanceError` with a message saying what is wrong and what to do; every check builds fresh
method instances from a :class:`MethodFactory` (class + options) and fresh fake cases.

The fake task is chosen automatically: ``fake_denoising`` (one input ``x_low`` -> ``x``) for a method
whose card lists only denoising tasks (``ldpet``, ``ldct``), else ``fake_synthesis`` (``a``, ``b`` ->
``c``). See :mod:`cmsbench.testing.pytest_plugin` for one pytest test per check.
"""

from __future__ import annotations

import copy
import json
import tempfile
import traceback
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from cmsbench.baselines.base import Method, MethodCard
from cmsbench.errors import CmsbenchError, MethodError
from cmsbench.tasks.volume import Case, Volume
from cmsbench.testing.fake import FAKE_TASKS, fake_splits

DENOISING_TASKS = frozenset({"ldpet", "ldct"})
#: relative tolerance for "same predictions" (determinism, save/load)
RTOL = 1e-6


class ConformanceError(CmsbenchError):
    """A method failed a conformance check."""


@dataclass
class MethodFactory:
    """Builds fresh instances of one method class with fixed options, and fresh fake cases."""

    cls: type[Method]
    options: dict[str, Any] = field(default_factory=dict)
    task: str = "auto"

    def __post_init__(self) -> None:
        if self.task == "auto":
            self.task = auto_task(self.cls)
        if self.task not in FAKE_TASKS:
            raise ConformanceError(f"unknown conformance task {self.task!r}; use 'auto' or one of {sorted(FAKE_TASKS)}")

    @property
    def name(self) -> str:
        card = getattr(self.cls, "card", None)
        return getattr(card, "name", None) or self.cls.__name__

    def __call__(self) -> Method:
        try:
            return self.cls(**copy.deepcopy(self.options))
        except Exception as exc:
            raise ConformanceError(
                f"{self.name}: constructing {self.cls.__name__}(**{self.options}) failed: {type(exc).__name__}: {exc}"
            ) from exc

    def splits(self) -> tuple[list[Case], list[Case], list[Case]]:
        """Fresh (train, val, test) cases of the fake task: 3, 1 and 1 cases."""
        return fake_splits(self.task)

    def fitted(self, seed: int = 0) -> tuple[Method, list[Case]]:
        """A fresh instance fitted on the fake train/val cases, and the test cases."""
        train, val, test = self.splits()
        method = self()
        _call(self, "fit", lambda: method.fit(train, val, seed=seed))
        return method, test


def auto_task(cls: type[Method]) -> str:
    """``fake_denoising`` for a method whose card lists only denoising tasks, else ``fake_synthesis``."""
    card = getattr(cls, "card", None)
    tasks = tuple(getattr(card, "tasks", ()) or ())
    if tasks and set(tasks) <= DENOISING_TASKS:
        return "fake_denoising"
    return "fake_synthesis"


def as_factory(method: Any, task: str = "auto", options: Mapping[str, Any] | None = None) -> MethodFactory:
    """A :class:`MethodFactory` from a factory, a Method subclass, an instance (class + its options) or a name."""
    if isinstance(method, MethodFactory):
        return method
    if isinstance(method, str):
        from cmsbench.baselines.registry import get_method_class

        method = get_method_class(method)
    if isinstance(method, Method):
        return MethodFactory(type(method), {**method.options, **(options or {})}, task)
    if isinstance(method, type) and issubclass(method, Method):
        return MethodFactory(method, dict(options or {}), task)
    raise ConformanceError(
        f"check_method needs a Method subclass, instance, registered name or MethodFactory, got {method!r}"
    )


def _call(factory: MethodFactory, what: str, fn: Callable[[], Any]) -> Any:
    """Run ``fn``; an exception becomes a ConformanceError naming the method and the step."""
    try:
        return fn()
    except ConformanceError:
        raise
    except Exception as exc:
        raise ConformanceError(
            f"{factory.name}: {what} raised {type(exc).__name__}: {exc} (on the {factory.task} fake task)"
        ) from exc


def _predict(factory: MethodFactory, method: Method, case: Case) -> Volume:
    return _call(factory, f"predict on case {case.case_id!r}", lambda: method.predict(case.inputs))


def _as_array(factory: MethodFactory, volume: Any) -> np.ndarray:
    if not isinstance(volume, Volume):
        raise ConformanceError(
            f"{factory.name}: predict must return a cmsbench Volume (use self.output(array, reference)), "
            f"got {type(volume).__name__}"
        )
    return np.asarray(volume.data)


def _same(a: np.ndarray, b: np.ndarray) -> tuple[bool, float]:
    a64, b64 = np.asarray(a, np.float64), np.asarray(b, np.float64)
    if a64.shape != b64.shape:
        return False, float("inf")
    diff = float(np.nanmax(np.abs(a64 - b64))) if a64.size else 0.0
    scale = max(1.0, float(np.nanmax(np.abs(a64))) if a64.size else 1.0)
    same = bool(np.array_equal(np.isnan(a64), np.isnan(b64))) and diff <= RTOL * scale
    return same, diff


# ------------------------------------------------------------------------------------------- checks
def check_card_complete(factory: Any) -> None:
    """The class has a :class:`MethodCard` whose required fields are filled."""
    factory = as_factory(factory)
    card = getattr(factory.cls, "card", None)
    if not isinstance(card, MethodCard):
        raise ConformanceError(
            f"{factory.cls.__name__}: set the class attribute `card = MethodCard(name=..., version=..., summary=...)`"
            f" (got {type(card).__name__})"
        )
    missing = card.missing_fields()
    if missing:
        raise ConformanceError(
            f"{factory.name}: the method card is incomplete: fill {missing} in its MethodCard "
            "(a card that cites a paper must also say how the implementation differs from it)"
        )


def check_unknown_options_rejected(factory: Any) -> None:
    """An unknown option raises MethodError; the defaults construct and are JSON-serialisable."""
    factory = as_factory(factory)
    method = factory()
    try:
        json.dumps(method.options)
    except TypeError as exc:
        raise ConformanceError(
            f"{factory.name}: options must be JSON-serialisable (they are saved in meta.json): {exc}"
        ) from exc
    bogus = "__no_such_option__"
    try:
        factory.cls(**{**factory.options, bogus: 1})
    except MethodError as exc:
        if bogus not in str(exc):
            raise ConformanceError(
                f"{factory.name}: the error for an unknown option should name it; got: {exc}"
            ) from exc
        return
    except Exception as exc:
        raise ConformanceError(
            f"{factory.name}: an unknown option raised {type(exc).__name__} ({exc}) instead of MethodError; "
            "declare options in `defaults` and call super().__init__(**options)"
        ) from exc
    raise ConformanceError(
        f"{factory.name}: the unknown option {bogus!r} was accepted silently; declare options in `defaults` and "
        "call super().__init__(**options)"
    )


def check_fit_returns_self(factory: Any) -> None:
    """``fit`` returns the method itself (so ``m = Method().fit(train)`` works)."""
    factory = as_factory(factory)
    train, val, _ = factory.splits()
    method = factory()
    result = _call(factory, "fit", lambda: method.fit(train, val, seed=0))
    if result is not method:
        raise ConformanceError(
            f"{factory.name}: fit returned {type(result).__name__} instead of the method itself; override `_fit` "
            "(not `fit`), or end `fit` with `return self`"
        )
    if not method.fitted:
        raise ConformanceError(f"{factory.name}: after fit, `fitted` is still False; call super().fit(...)")


def check_predict_before_fit(factory: Any) -> None:
    """A method that needs training raises a clear MethodError when asked to predict unfitted; one that
    does not need training predicts unfitted."""
    factory = as_factory(factory)
    _, _, test = factory.splits()
    method = factory()
    case = test[0]
    if not method.card.needs_training:
        try:
            method.predict(case.inputs)
        except Exception as exc:
            raise ConformanceError(
                f"{factory.name}: card.needs_training is False but predict before fit raised "
                f"{type(exc).__name__}: {exc}; set needs_training=True or make predict work without fit"
            ) from exc
        return
    try:
        method.predict(case.inputs)
    except MethodError as exc:
        if "fit" not in str(exc).lower():
            raise ConformanceError(
                f"{factory.name}: predict before fit raised MethodError but its message does not say to fit "
                f"first: {exc!s}; call self.require_fitted() at the start of predict"
            ) from exc
        return
    except Exception as exc:
        raise ConformanceError(
            f"{factory.name}: predict before fit raised {type(exc).__name__} ({exc}) instead of a clear "
            "MethodError; call self.require_fitted() at the start of predict"
        ) from exc
    raise ConformanceError(
        f"{factory.name}: predict before fit did not raise although card.needs_training is True; call "
        "self.require_fitted() at the start of predict"
    )


def _contract(factory: Any, pred: Any, case: Case) -> None:
    """The prediction contract the runner and ``cmsbench score`` apply (:mod:`cmsbench.benchmark.contract`)."""
    from cmsbench.benchmark.contract import PredictionError, check_prediction

    ref = next(iter(case.inputs.values()))
    data = _as_array(factory, pred)
    try:
        check_prediction(data, ref.shape, case_id=case.case_id, source=f"method {factory.name!r}",
                         affine=np.asarray(pred.affine), target_affine=ref.affine)
    except PredictionError as exc:
        raise ConformanceError(f"{factory.name}: {exc}; return self.output(array, reference) to keep the "
                               "inputs' grid") from exc


def check_output_geometry(factory: Any) -> None:
    """predict returns a floating-point Volume with the inputs' shape and affine (the prediction contract)."""
    factory = as_factory(factory)
    method, test = factory.fitted()
    case = test[0]
    _contract(factory, _predict(factory, method, case), case)


def check_finite(factory: Any) -> None:
    """Every predicted voxel is finite (no NaN or inf), for every case (the prediction contract)."""
    factory = as_factory(factory)
    method, test = factory.fitted()
    for case in test:
        _contract(factory, _predict(factory, method, case), case)


def _snapshot(cases: list[Case]) -> list[tuple[str, str, np.ndarray, np.ndarray | None]]:
    items: list[tuple[str, str, np.ndarray, np.ndarray | None]] = []
    for case in cases:
        for name, vol in case.inputs.items():
            items.append((case.case_id, f"input {name!r}", np.array(vol.data, copy=True), vol.affine.copy()))
        if case.target is not None:
            items.append((case.case_id, "target", np.array(case.target.data, copy=True), case.target.affine.copy()))
        for name, mask in case.masks.items():
            items.append((case.case_id, f"mask {name!r}", np.array(mask, copy=True), None))
    return items


def _compare_snapshot(factory: MethodFactory, cases: list[Case], before: list, when: str) -> None:
    after = _snapshot(cases)
    for (cid, what, data, affine), (_, _, data2, affine2) in zip(before, after, strict=True):
        if data.shape != data2.shape or not np.array_equal(data, data2, equal_nan=True):
            raise ConformanceError(
                f"{factory.name}: {when} modified the {what} volume of case {cid!r} in place; work on a copy "
                "(np.array(volume.data, dtype=np.float32) or self.stack_inputs(inputs))"
            )
        if affine is not None and not np.array_equal(affine, affine2):
            raise ConformanceError(f"{factory.name}: {when} modified the affine of the {what} of case {cid!r}")


def check_inputs_not_mutated(factory: Any) -> None:
    """Neither fit nor predict modifies the cases' arrays or affines."""
    factory = as_factory(factory)
    train, val, test = factory.splits()
    before = _snapshot(train + val)
    method = factory()
    _call(factory, "fit", lambda: method.fit(train, val, seed=0))
    _compare_snapshot(factory, train + val, before, "fit")
    before = _snapshot(test)
    for case in test:
        _predict(factory, method, case)
    _compare_snapshot(factory, test, before, "predict")


def check_deterministic(factory: Any) -> None:
    """Two fresh instances fitted with the same seed give the same predictions."""
    factory = as_factory(factory)
    first, test = factory.fitted(seed=0)
    second, _ = factory.fitted(seed=0)
    for case in test:
        a = _as_array(factory, _predict(factory, first, case))
        b = _as_array(factory, _predict(factory, second, case))
        same, diff = _same(a, b)
        if not same:
            raise ConformanceError(
                f"{factory.name}: not deterministic under a seed: two fits with seed=0 give predictions for case "
                f"{case.case_id!r} differing by up to {diff:.3g}; derive every random draw from the seed given to "
                "fit (self.seed), e.g. numpy.random.default_rng(self.seed) and torch.manual_seed(self.seed)"
            )
        again = _as_array(factory, _predict(factory, first, case))
        same, diff = _same(a, again)
        if not same:
            raise ConformanceError(
                f"{factory.name}: predicting case {case.case_id!r} twice with one fitted instance gives results "
                f"differing by up to {diff:.3g}, so predictions depend on which cases were predicted before; seed "
                "each prediction from self.seed and the case (see cmsbench.testing.fake.FakeNoise)"
            )


def check_save_load_roundtrip(factory: Any) -> None:
    """``save`` then ``load`` rebuilds a method that predicts the same."""
    factory = as_factory(factory)
    method, test = factory.fitted(seed=0)
    case = test[0]
    before = _as_array(factory, _predict(factory, method, case))
    with tempfile.TemporaryDirectory(prefix="cmsbench-conformance-") as tmp:
        _call(factory, "save", lambda: method.save(tmp))
        loaded = _call(factory, "load", lambda: type(method).load(tmp))
    if not isinstance(loaded, type(method)):
        raise ConformanceError(f"{factory.name}: load returned {type(loaded).__name__}, not {type(method).__name__}")
    after = _as_array(factory, _call(factory, "predict after load", lambda: loaded.predict(case.inputs)))
    same, diff = _same(before, after)
    if not same:
        raise ConformanceError(
            f"{factory.name}: predictions after save/load differ by up to {diff:.3g} from before (case "
            f"{case.case_id!r}); get_state must return every fitted array and set_state restore them"
        )


#: every check, in the order check_method runs them
CHECKS: dict[str, Callable[[Any], None]] = {
    "card_complete": check_card_complete,
    "unknown_options_rejected": check_unknown_options_rejected,
    "fit_returns_self": check_fit_returns_self,
    "predict_before_fit": check_predict_before_fit,
    "output_geometry": check_output_geometry,
    "finite": check_finite,
    "inputs_not_mutated": check_inputs_not_mutated,
    "deterministic": check_deterministic,
    "save_load_roundtrip": check_save_load_roundtrip,
}


# ------------------------------------------------------------------------------------------- report
@dataclass(frozen=True)
class CheckResult:
    """The outcome of one check."""

    name: str
    passed: bool
    message: str = ""


@dataclass
class ConformanceReport:
    """What :func:`check_method` found: one :class:`CheckResult` per check."""

    method: str
    task: str
    results: list[CheckResult] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when every check passed."""
        return all(r.passed for r in self.results)

    @property
    def failures(self) -> list[CheckResult]:
        return [r for r in self.results if not r.passed]

    def raise_if_failed(self) -> None:
        """Raise one :class:`ConformanceError` listing every failed check."""
        if not self.ok:
            lines = "\n".join(f"  - {r.name}: {r.message}" for r in self.failures)
            raise ConformanceError(
                f"method {self.method!r} failed {len(self.failures)} of {len(self.results)} conformance checks "
                f"on {self.task}:\n{lines}"
            )

    def __str__(self) -> str:
        lines = [f"conformance of {self.method!r} on {self.task}:"]
        for r in self.results:
            lines.append(f"  {'PASS' if r.passed else 'FAIL'}  {r.name}" + (f": {r.message}" if r.message else ""))
        return "\n".join(lines)

    def to_dict(self) -> dict[str, Any]:
        return {"method": self.method, "task": self.task, "ok": self.ok,
                "results": [{"name": r.name, "passed": r.passed, "message": r.message} for r in self.results]}


def run_check(name: str, factory: MethodFactory) -> CheckResult:
    """Run one named check; unexpected exceptions count as failures with their traceback's last line."""
    try:
        CHECKS[name](factory)
    except ConformanceError as exc:
        return CheckResult(name, False, str(exc))
    except Exception as exc:  # a bug in the method surfacing somewhere unexpected
        where = traceback.extract_tb(exc.__traceback__)[-1]
        return CheckResult(
            name, False, f"{type(exc).__name__}: {exc} (at {where.filename}:{where.lineno})"
        )
    return CheckResult(name, True)


def check_method(
    method: Method | type[Method] | str | MethodFactory,
    *,
    task: str = "auto",
    options: Mapping[str, Any] | None = None,
    checks: list[str] | None = None,
) -> ConformanceReport:
    """Run the conformance checks on a fake task.

    Args:
        method: a Method subclass, an instance (its class and options are used; it is not modified), a
            registered name or ``module:Class``, or a :class:`MethodFactory`.
        task: ``"auto"``, ``"fake_synthesis"`` or ``"fake_denoising"``.
        options: hyper-parameter overrides for every instance the checks build.
        checks: names from :data:`CHECKS` to run (default: all).
    """
    factory = as_factory(method, task, options)
    names = list(CHECKS) if checks is None else list(checks)
    unknown = [n for n in names if n not in CHECKS]
    if unknown:
        raise ConformanceError(f"unknown conformance check(s) {unknown}; checks: {list(CHECKS)}")
    return ConformanceReport(factory.name, factory.task, [run_check(n, factory) for n in names])

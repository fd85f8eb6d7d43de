"""The conformance suite: reference methods pass, each deliberately broken method fails its check."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pytest

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.errors import CmsbenchError
from cmsbench.tasks.volume import Case, Volume
from cmsbench.testing.conformance import (
    CHECKS,
    ConformanceError,
    MethodFactory,
    auto_task,
    check_card_complete,
    check_deterministic,
    check_finite,
    check_fit_returns_self,
    check_inputs_not_mutated,
    check_method,
    check_output_geometry,
    check_predict_before_fit,
    check_save_load_roundtrip,
    check_unknown_options_rejected,
)
from cmsbench.testing.fake import (
    FAKE_AFFINE,
    FAKE_DENOISING,
    FAKE_SYNTHESIS,
    FakeIdentity,
    FakeNoise,
    FakeOracle,
    fake_splits,
    get_fake_task,
    make_fake_cases,
    make_fake_denoising_cases,
)
from cmsbench.testing.pytest_plugin import conformance_checks, parametrize_conformance


# ------------------------------------------------------------------------------ reference methods
@pytest.mark.parametrize("cls", [FakeIdentity, FakeOracle, FakeNoise])
def test_fake_methods_pass_every_check(cls) -> None:
    report = check_method(cls)
    assert report.ok, str(report)
    assert [r.name for r in report.results] == list(CHECKS)
    report.raise_if_failed()
    assert "PASS" in str(report) and report.to_dict()["ok"] is True


@parametrize_conformance(FakeNoise, noise=0.5)
def test_parametrize_conformance_gives_one_test_per_check(conformance_check) -> None:
    conformance_check()


def test_conformance_checks_are_named_params() -> None:
    params = conformance_checks(FakeIdentity, checks=["finite", "deterministic"])
    assert [p.id for p in params] == ["fake_identity-finite", "fake_identity-deterministic"]


def test_check_method_accepts_names_instances_and_options() -> None:
    assert check_method("identity").ok
    report = check_method(FakeNoise(noise=0.3), checks=["deterministic"])
    assert report.ok and [r.name for r in report.results] == ["deterministic"]
    with pytest.raises(ConformanceError, match="unknown conformance check"):
        check_method(FakeNoise, checks=["nope"])
    with pytest.raises(ConformanceError, match="unknown conformance task"):
        check_method(FakeNoise, task="brats_flair")
    with pytest.raises(ConformanceError, match="needs a Method subclass"):
        check_method(42)  # type: ignore[arg-type]


def test_task_is_chosen_from_the_card() -> None:
    assert auto_task(FakeIdentity) == "fake_synthesis"
    assert check_method("gaussian").task == "fake_denoising"
    assert check_method("linear", checks=["finite"]).task == "fake_synthesis"
    assert MethodFactory(FakeIdentity, task="fake_denoising").task == "fake_denoising"


# ------------------------------------------------------------------------------- broken methods
def _card(name: str, **changes: Any) -> MethodCard:
    fields = dict(name=name, version="0.1", summary="a deliberately broken method for the conformance tests",
                  needs_training=False)
    fields.update(changes)
    return MethodCard(**fields)


class WrongShape(FakeIdentity):
    card = _card("wrong_shape")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, ref = self.stack_inputs(inputs)
        return Volume(stack[0][:-1], ref.affine, "c")


class WrongDtype(FakeIdentity):
    card = _card("wrong_dtype")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, ref = self.stack_inputs(inputs)
        return Volume(np.rint(stack[0] * 100).astype(np.int16), ref.affine, "c")  # integers: refused, never cast


class DropsAffine(FakeIdentity):
    card = _card("drops_affine")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, _ = self.stack_inputs(inputs)
        return Volume(stack[0])  # identity affine instead of the inputs'


class ReturnsArray(FakeIdentity):
    card = _card("returns_array")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        return self.stack_inputs(inputs)[0][0]  # type: ignore[return-value]


class NaNOutput(FakeIdentity):
    card = _card("nan_output")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, ref = self.stack_inputs(inputs)
        out = stack[0]
        out[0, 0, 0] = np.nan
        return self.output(out, ref)


class MutatesInputs(FakeIdentity):
    card = _card("mutates_inputs")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        vol = next(iter(inputs.values()))
        vol.data[...] *= 2.0  # in place: the caller's case changes
        return self.output(vol.data.copy(), vol)


class MutatesInFit(FakeIdentity):
    card = _card("mutates_in_fit")

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        for case in train:
            case.target.data[...] -= case.target.data.mean()  # type: ignore[union-attr]


class NonDeterministic(FakeIdentity):
    card = _card("non_deterministic")

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, ref = self.stack_inputs(inputs)
        return self.output(stack[0] + np.random.default_rng().standard_normal(stack[0].shape), ref)


class SharedGenerator(FakeIdentity):
    card = _card("shared_generator")

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        self.rng = np.random.default_rng(ctx.seed)  # seeded once: each predict continues the stream

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, ref = self.stack_inputs(inputs)
        return self.output(stack[0] + self.rng.standard_normal(stack[0].shape), ref)


class FitReturnsNone(FakeIdentity):
    card = _card("fit_returns_none")

    def fit(self, train, val=(), *, device="cpu", seed=0):  # type: ignore[override]
        super().fit(train, val, device=device, seed=seed)


class _Offset(Method):
    """Learns the mean target-minus-input offset; the base of the persistence and fit-order breakages."""

    card = _card("offset", needs_training=True)

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.offset = 0.0

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        first = self.inputs[0]
        self.offset = float(np.mean([c.target.data.mean() - c.inputs[first].data.mean() for c in train]))

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        stack, ref = self.stack_inputs(inputs)
        return self.output(stack[0] + self.offset, ref)

    def get_state(self):
        return {"offset": np.array([self.offset])}, {}

    def set_state(self, arrays, meta) -> None:
        self.offset = float(arrays["offset"][0])


class PredictsUnfitted(_Offset):
    card = _card("predicts_unfitted", needs_training=True)

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:  # no require_fitted()
        stack, ref = self.stack_inputs(inputs)
        return self.output(stack[0] + self.offset, ref)


class CrashesUnfitted(_Offset):
    card = _card("crashes_unfitted", needs_training=True)

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        stack, ref = self.stack_inputs(inputs)
        return self.output(stack[0] + self.weights, ref)  # type: ignore[attr-defined]  # AttributeError unfitted


class VagueUnfittedError(_Offset):
    card = _card("vague_unfitted", needs_training=True)

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        if not self.fitted:
            from cmsbench.errors import MethodError

            raise MethodError("something went wrong")
        return super().predict(inputs)


class ClaimsNoTraining(_Offset):
    card = _card("claims_no_training", needs_training=False)

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        if not self.fitted:
            raise RuntimeError("not ready")
        return super().predict(inputs)


class ForgetsState(_Offset):
    card = _card("forgets_state", needs_training=True)

    def get_state(self):  # the fitted offset is not saved
        return {}, {}

    def set_state(self, arrays, meta) -> None:
        pass


class MissingSummary(FakeIdentity):
    card = MethodCard(name="missing_summary", version="1.0", summary=" ", needs_training=False)


class PaperWithoutDifferences(FakeIdentity):
    card = MethodCard(name="paper_only", version="1.0", summary="cites a paper", paper="Someone 2020",
                      needs_training=False)


class NoCard(Method):
    def predict(self, inputs):  # pragma: no cover - never reached
        raise NotImplementedError


class SwallowsOptions(FakeIdentity):
    card = _card("swallows_options")

    def __init__(self, **options: Any) -> None:
        super().__init__()


class UnserialisableOptions(FakeIdentity):
    card = _card("unserialisable_options")
    defaults = {"callback": object()}


BROKEN = [
    (WrongShape, check_output_geometry, "output_geometry", r"shape \(15, 16, 6\) but the target has shape \(16, 16, 6\)"),
    (WrongDtype, check_output_geometry, "output_geometry", "dtype int16; a floating-point volume is expected"),
    (DropsAffine, check_output_geometry, "output_geometry", "affine differs from the target's"),
    (ReturnsArray, check_output_geometry, "output_geometry", "must return a cmsbench Volume"),
    (NaNOutput, check_finite, "finite", r"1 non-finite voxel\(s\) \(1 NaN, 0 inf\)"),
    (MutatesInputs, check_inputs_not_mutated, "inputs_not_mutated", "predict modified the input 'a' volume"),
    (MutatesInFit, check_inputs_not_mutated, "inputs_not_mutated", "fit modified the target volume"),
    (NonDeterministic, check_deterministic, "deterministic", "not deterministic under a seed"),
    (SharedGenerator, check_deterministic, "deterministic", "predicting case 'fake004' twice"),
    (FitReturnsNone, check_fit_returns_self, "fit_returns_self", "fit returned NoneType instead of the method"),
    (PredictsUnfitted, check_predict_before_fit, "predict_before_fit", "did not raise.*require_fitted"),
    (CrashesUnfitted, check_predict_before_fit, "predict_before_fit", "raised AttributeError.*instead of a clear"),
    (VagueUnfittedError, check_predict_before_fit, "predict_before_fit", "does not say to fit first"),
    (ClaimsNoTraining, check_predict_before_fit, "predict_before_fit", "needs_training is False but predict"),
    (ForgetsState, check_save_load_roundtrip, "save_load_roundtrip", "after save/load differ"),
    (MissingSummary, check_card_complete, "card_complete", r"fill \['summary'\]"),
    (PaperWithoutDifferences, check_card_complete, "card_complete", r"fill \['differences_from_paper'\]"),
    (NoCard, check_card_complete, "card_complete", "set the class attribute `card"),
    (SwallowsOptions, check_unknown_options_rejected, "unknown_options_rejected", "accepted silently"),
    (UnserialisableOptions, check_unknown_options_rejected, "unknown_options_rejected", "JSON-serialisable"),
]


@pytest.mark.parametrize("cls, check, name, message", BROKEN, ids=[b[0].__name__ for b in BROKEN])
def test_each_check_catches_its_breakage(cls, check, name, message) -> None:
    with pytest.raises(ConformanceError, match=message):
        check(MethodFactory(cls))
    if cls is NoCard:  # the other checks cannot even name it; the card check is the one that matters
        return
    report = check_method(cls)
    failed = {r.name: r.message for r in report.failures}
    assert name in failed, str(report)
    with pytest.raises(ConformanceError, match="failed .* conformance checks"):
        report.raise_if_failed()


def test_a_working_learned_method_passes() -> None:
    assert check_method(_Offset).ok


def test_conformance_error_is_a_cmsbench_error() -> None:
    assert issubclass(ConformanceError, CmsbenchError)


def test_unexpected_exceptions_are_reported_not_raised() -> None:
    class Explodes(FakeIdentity):
        card = _card("explodes")

        def predict(self, inputs):
            raise ZeroDivisionError("boom")

    report = check_method(Explodes)
    assert not report.ok
    assert "ZeroDivisionError: boom" in dict((r.name, r.message) for r in report.results)["finite"]


# ------------------------------------------------------------------------------------ fake data
def test_fake_cases_are_deterministic_and_independent_of_n() -> None:
    a, b = make_fake_cases(3, seed=5), make_fake_cases(5, seed=5)
    for x, y in zip(a, b, strict=False):
        assert x.case_id == y.case_id
        assert np.array_equal(x.inputs["a"].data, y.inputs["a"].data)
        assert np.array_equal(x.target.data, y.target.data)
    assert not np.array_equal(make_fake_cases(1, seed=6)[0].target.data, a[0].target.data)


def test_fake_synthesis_cases_match_their_spec() -> None:
    spec = get_fake_task("fake_synthesis")
    assert spec is FAKE_SYNTHESIS and spec.summary() == "a + b -> c"
    assert spec.main_metric == "psnr" and spec.data_range.value == 4.0 and spec.adapter == "fake"
    for case in make_fake_cases(4, shape=(10, 12, 5)):
        assert tuple(case.inputs) == spec.inputs and case.target.modality == spec.target
        body = case.masks["body"]
        assert case.masks["global"].all() and 0.2 < body.mean() < 0.9
        for vol in [*case.inputs.values(), case.target]:
            assert vol.shape == (10, 12, 5) and vol.data.dtype == np.float32
            assert np.array_equal(vol.affine, FAKE_AFFINE) and vol.units == spec.units
            assert np.all(vol.data[~body] == 0) and np.all(vol.data[body] != 0)
        assert 0 < case.target.data.max() < spec.data_range.value


def test_fake_denoising_cases_carry_the_requested_noise() -> None:
    assert FAKE_DENOISING.summary() == "x_low -> x"
    case = make_fake_denoising_cases(1, shape=(24, 24, 6), noise=0.2)[0]
    body = case.masks["body"]
    resid = (case.inputs["x_low"].data - case.target.data)[body]
    assert resid.std() == pytest.approx(0.2, rel=0.1)
    train, val, test = fake_splits("fake_denoising")
    assert (len(train), len(val), len(test)) == (3, 1, 1)


def test_fake_oracle_returns_seen_targets_and_round_trips(tmp_path) -> None:
    cases = make_fake_cases(3)
    oracle = FakeOracle.from_cases(cases[:2])
    assert np.array_equal(oracle.predict(cases[1].inputs).data, cases[1].target.data)
    assert np.array_equal(oracle.predict(cases[2].inputs).data, cases[2].inputs["a"].data)
    loaded = FakeOracle.load(oracle.save(tmp_path / "oracle"))
    assert np.array_equal(loaded.predict(cases[0].inputs).data, cases[0].target.data)


def test_fake_noise_is_seeded_per_case() -> None:
    cases = make_fake_cases(2)
    m0, m1 = FakeNoise().fit(cases, seed=0), FakeNoise().fit(cases, seed=1)
    p = m0.predict(cases[0].inputs).data
    assert np.array_equal(p, FakeNoise().fit(cases, seed=0).predict(cases[0].inputs).data)
    assert not np.array_equal(p, m1.predict(cases[0].inputs).data)
    assert not np.allclose(p - cases[0].inputs["a"].data, m0.predict(cases[1].inputs).data - cases[1].inputs["a"].data)
    assert (p - cases[0].inputs["a"].data).std() == pytest.approx(0.1, rel=0.1)

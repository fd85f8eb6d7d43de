"""The classical baselines: conformance, exact recovery of known relations, denoising, persistence."""

from __future__ import annotations

import numpy as np
import pytest

from cmsbench.baselines.classical import (
    GaussianDenoiseMethod,
    HistogramMatchingMethod,
    IdentityMethod,
    LinearRegressionMethod,
    NonLocalMeansMethod,
    Poly2RegressionMethod,
)
from cmsbench.baselines.classical._common import match_by_name, noise_sigma
from cmsbench.baselines.registry import BUILTIN_METHODS, get_method_class
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume
from cmsbench.testing.fake import FAKE_AFFINE, make_fake_cases, make_fake_denoising_cases
from cmsbench.testing.pytest_plugin import conformance_checks

CLASSICAL = [IdentityMethod, LinearRegressionMethod, Poly2RegressionMethod, HistogramMatchingMethod,
             GaussianDenoiseMethod, NonLocalMeansMethod]
SHAPE = (12, 12, 4)


def _all_checks() -> list:
    params = []
    for cls in CLASSICAL:
        params.extend(conformance_checks(cls))
    return params


@pytest.mark.parametrize("check", _all_checks())
def test_classical_method_passes_conformance(check) -> None:
    check()


def test_registry_names_resolve_to_the_classes() -> None:
    for name in ("identity", "linear", "poly2", "histogram", "gaussian", "nlm"):
        assert name in BUILTIN_METHODS
        cls = get_method_class(name)
        assert cls.card.name == name
        assert cls in CLASSICAL


# -------------------------------------------------------------------------------------- helpers
def _case(i: int, inputs: dict[str, np.ndarray], target: np.ndarray, tmod: str = "y") -> Case:
    vols = {k: Volume(v.astype(np.float32), FAKE_AFFINE, k) for k, v in inputs.items()}
    return Case(f"c{i}", vols, Volume(target.astype(np.float32), FAKE_AFFINE, tmod))


def _body(shape=SHAPE) -> np.ndarray:
    body = np.zeros(shape, dtype=bool)
    body[2:-2, 2:-2, :] = True
    return body


def _relation_cases(fn, n: int, seed: int, background: float = 0.0) -> list[Case]:
    """Cases with inputs a in [0.5, 2], b in [0.2, 1.5] inside a body, target fn(a, b), ``background`` outside."""
    rng = np.random.default_rng(seed)
    cases = []
    body = _body()
    for i in range(n):
        a = rng.uniform(0.5, 2.0, SHAPE) * body
        b = rng.uniform(0.2, 1.5, SHAPE) * body
        t = np.where(body, fn(a, b), background)
        cases.append(_case(i, {"a": a, "b": b}, t))
    return cases


def _fg_error(method, case: Case) -> float:
    body = _body()
    pred = method.predict(case.inputs).data.astype(np.float64)
    return float(np.max(np.abs(pred[body] - case.target.data[body])))


def _mse(pred: np.ndarray, case: Case, mask: np.ndarray) -> float:
    return float(np.mean((pred[mask].astype(np.float64) - case.target.data[mask]) ** 2))


# ---------------------------------------------------------------------------------- regression
def test_linear_recovers_an_exact_linear_relation_and_the_ct_background() -> None:
    fn = lambda a, b: 120.0 * a - 75.0 * b + 40.0  # noqa: E731
    train = _relation_cases(fn, 3, seed=0, background=-1000.0)  # CT-like: air outside the body
    test = _relation_cases(fn, 1, seed=1, background=-1000.0)[0]
    method = LinearRegressionMethod(clip=False).fit(train, seed=0)
    assert _fg_error(method, test) < 1e-3  # HU, float32 output of values ~200
    pred = method.predict(test.inputs).data
    assert np.all(pred[~_body()] == -1000.0)
    assert method.term_names() == ["1", "a", "b"]
    # raw coefficients from the standardised fit: slope_i = coef_i / scale_i
    assert np.allclose(method.coef[1:] / method.scale, [120.0, -75.0], atol=1e-6)


def test_poly2_recovers_an_exact_quadratic_relation() -> None:
    fn = lambda a, b: 1.0 + a - 2.0 * b + 0.5 * a**2 + 0.3 * a * b - 0.2 * b**2  # noqa: E731
    train = _relation_cases(fn, 3, seed=0)
    test = _relation_cases(fn, 1, seed=1)[0]
    poly = Poly2RegressionMethod(clip=False).fit(train, seed=0)
    assert _fg_error(poly, test) < 1e-4
    assert poly.term_names() == ["1", "a", "b", "a*a", "a*b", "b*b"]
    assert np.all(poly.predict(test.inputs).data[~_body()] == 0.0)  # MR-like background
    linear = LinearRegressionMethod(clip=False).fit(train, seed=0)
    assert _fg_error(linear, test) > 100 * _fg_error(poly, test)


def test_regression_clips_inputs_to_the_training_range() -> None:
    fn = lambda a, b: a**2  # noqa: E731
    train = _relation_cases(fn, 2, seed=0)
    poly = Poly2RegressionMethod().fit(train)
    far = {k: v.with_data(v.data * 100) for k, v in train[0].inputs.items()}
    assert poly.predict(far).data.max() <= 2.0**2 + 1e-3


def test_linear_beats_identity_on_a_nonlinear_monotone_relation() -> None:
    fn = lambda a, b: 50.0 * np.sqrt(a) + 10.0  # noqa: E731
    train = _relation_cases(fn, 3, seed=0)
    test = _relation_cases(fn, 1, seed=1)[0]
    body = _body()
    ident = IdentityMethod().fit(train)
    lin = LinearRegressionMethod().fit(train)
    e_ident = _mse(ident.predict(test.inputs).data, test, body)
    e_lin = _mse(lin.predict(test.inputs).data, test, body)
    assert ident.source == "a"  # a correlates with sqrt(a); b is independent
    assert e_lin < 0.01 * e_ident


def test_regression_subsample_is_seeded() -> None:
    cases = make_fake_cases(3)
    a = LinearRegressionMethod(max_voxels=300).fit(cases, seed=1).coef
    b = LinearRegressionMethod(max_voxels=300).fit(cases, seed=1).coef
    c = LinearRegressionMethod(max_voxels=300).fit(cases, seed=2).coef
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


# ------------------------------------------------------------------------------------ histogram
def test_histogram_matching_maps_a_monotone_transform() -> None:
    fn = lambda a, b: 3.0 * a**2 + 1.0  # noqa: E731 - increasing in a, target range [1.75, 13]
    train = _relation_cases(fn, 3, seed=0)
    test = _relation_cases(fn, 1, seed=1)[0]
    method = HistogramMatchingMethod().fit(train, seed=0)
    assert method.source == "a" and method.direction == 1
    assert _fg_error(method, test) < 0.1  # < 1% of the range: quantile interpolation error only
    assert np.all(method.predict(test.inputs).data[~_body()] == 0.0)


def test_histogram_matching_follows_a_decreasing_relation() -> None:
    fn = lambda a, b: 5.0 - 2.0 * b  # noqa: E731
    train = _relation_cases(fn, 3, seed=0)
    test = _relation_cases(fn, 1, seed=1)[0]
    method = HistogramMatchingMethod().fit(train, seed=0)
    assert method.source == "b" and method.direction == -1
    assert _fg_error(method, test) < 0.05


def test_histogram_source_option_and_unknown_source() -> None:
    fn = lambda a, b: a + b  # noqa: E731
    train = _relation_cases(fn, 2, seed=0)
    assert HistogramMatchingMethod(source="b").fit(train).source == "b"
    with pytest.raises(MethodError, match="source='zz' is not an input"):
        HistogramMatchingMethod(source="zz").fit(train)


# ------------------------------------------------------------------------------------- identity
def test_identity_picks_the_most_correlated_input_when_fitted() -> None:
    fn = lambda a, b: 2.0 * b + 0.1 * a  # noqa: E731
    train = _relation_cases(fn, 2, seed=0)
    method = IdentityMethod().fit(train)
    assert method.source == "b"
    assert method.correlations["b"] > method.correlations["a"]
    pred = method.predict(train[0].inputs)
    assert np.array_equal(pred.data, train[0].inputs["b"].data)
    assert pred.modality == "y"


def test_identity_without_fit_uses_the_name_or_the_first_input() -> None:
    assert match_by_name(["pet_low"], "pet") == "pet_low"
    assert match_by_name(["t1", "ct_low"], "ct") == "ct_low"
    assert match_by_name(["t1", "t2"], "flair") is None
    case = make_fake_cases(1)[0]
    method = IdentityMethod()  # never fitted: the target is unknown, so the first input
    assert np.array_equal(method.predict(case.inputs).data, case.inputs["a"].data)
    method.target = "ct"
    inputs = {"t1": case.inputs["a"], "ct_low": case.inputs["b"]}
    assert np.array_equal(method.predict(inputs).data, case.inputs["b"].data)


# ------------------------------------------------------------------------------------- denoising
def _denoising_split(noise: float = 0.15):
    cases = make_fake_denoising_cases(6, shape=(32, 32, 8), noise=noise)
    return cases[:3], cases[3:5], cases[5]


@pytest.mark.parametrize("cls, max_ratio", [(GaussianDenoiseMethod, 0.9), (NonLocalMeansMethod, 0.5)])
def test_denoisers_reduce_the_error_of_the_noisy_input(cls, max_ratio: float) -> None:
    train, val, test = _denoising_split()
    method = cls().fit(train, val, seed=0)
    body = test.masks["body"]
    noisy = _mse(test.inputs["x_low"].data, test, body)
    denoised = _mse(method.predict(test.inputs).data, test, body)
    assert denoised < max_ratio * noisy, (cls.__name__, denoised, noisy, method.params)


def test_tuned_hyperparameters_come_from_the_validation_cases() -> None:
    train = make_fake_denoising_cases(3, shape=(24, 24, 6), noise=0.02)
    heavy = make_fake_denoising_cases(2, seed=1, shape=(24, 24, 6), noise=0.4)
    light = make_fake_denoising_cases(2, seed=1, shape=(24, 24, 6), noise=0.02)
    on_heavy = GaussianDenoiseMethod().fit(train, heavy)
    on_light = GaussianDenoiseMethod().fit(train, light)
    assert on_heavy.tuned_on == [c.case_id for c in heavy]
    assert on_heavy.params["sigma"] > on_light.params["sigma"]
    nlm = NonLocalMeansMethod().fit(train, heavy)
    assert nlm.tuned_on == [c.case_id for c in heavy]
    assert len(nlm.scores) == len(nlm.grid()) == 12
    best = max(nlm.scores, key=lambda s: s["psnr"])
    assert nlm.params == {"h_factor": best["h_factor"], "patch_size": best["patch_size"]}


def test_denoisers_tune_on_train_without_validation_and_skip_fixed_options() -> None:
    train, _, _ = _denoising_split()
    method = NonLocalMeansMethod(max_tune_cases=2).fit(train)
    assert method.tuned_on == [c.case_id for c in train[:2]]
    fixed = GaussianDenoiseMethod(sigma=1.0, mode="3d").fit(train)
    assert fixed.params == {"sigma": 1.0, "mode": "3d"} and fixed.tuned_on == []


def test_denoisers_refuse_several_inputs() -> None:
    with pytest.raises(MethodError, match="denoises a single input"):
        GaussianDenoiseMethod().fit(make_fake_cases(2))


def test_noise_sigma_estimate() -> None:
    rng = np.random.default_rng(0)
    img = 5.0 + 0.2 * rng.standard_normal((48, 48, 6))
    assert noise_sigma(img) == pytest.approx(0.2, rel=0.05)


# ----------------------------------------------------------------------------------- persistence
@pytest.mark.parametrize("cls", CLASSICAL)
def test_save_load_round_trip(cls, tmp_path) -> None:
    task = "fake_denoising" if cls in (GaussianDenoiseMethod, NonLocalMeansMethod) else "fake_synthesis"
    cases = make_fake_cases(4, task=task)
    method = cls().fit(cases[:2], cases[2:3], seed=3)
    before = method.predict(cases[3].inputs).data
    method.save(tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["meta.json", "state.safetensors"]
    loaded = cls.load(tmp_path / "m")
    assert loaded.fitted and loaded.seed == 3 and loaded.inputs == method.inputs
    assert np.array_equal(loaded.predict(cases[3].inputs).data, before)


@pytest.mark.parametrize("cls", [c for c in CLASSICAL if c.card.needs_training])
def test_predict_before_fit_raises(cls) -> None:
    case = make_fake_cases(1)[0]
    with pytest.raises(MethodError, match="must be fitted before predict"):
        cls().predict(case.inputs)


@pytest.mark.parametrize("cls", CLASSICAL)
def test_cards_are_complete(cls) -> None:
    assert cls.card.missing_fields() == []
    assert cls.card.version and len(cls.card.summary) > 40

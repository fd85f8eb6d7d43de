"""Degradation operators: k-space truncation, image-domain down-sampling, contrast dose, and their registry."""

from __future__ import annotations

import hashlib
import subprocess
import sys
import textwrap
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from cmsbench.errors import GeometryError, UnknownNameError
from cmsbench.tasks import Volume
from cmsbench.tasks.degradations import (
    OPERATORS,
    Operator,
    OperatorError,
    degradation,
    from_options,
    get_operator,
    operator_rng,
)
from cmsbench.tasks.degradations.builtin import estimate_noise_sigma, kept_frequencies, zero_filled_upsample

AFFINE = np.diag([0.9, 0.9, 1.2, 1.0])
AFFINE[:3, 3] = (-100.0, -110.0, -60.0)


def _textured_disk(shape: tuple[int, int, int] = (48, 40, 6), seed: int = 0) -> np.ndarray:
    """A head-like phantom: a bright disk with smooth texture, a darker inner ring, noise, zero outside."""
    g = np.mgrid[tuple(slice(0, s) for s in shape)].astype(np.float64)
    cx, cy = (shape[0] - 1) / 2, (shape[1] - 1) / 2
    r = np.hypot((g[0] - cx) / (0.42 * shape[0]), (g[1] - cy) / (0.42 * shape[1]))
    tissue = 600 + 120 * np.sin(g[0] / 3.1) * np.cos(g[1] / 2.3) - 250 * ((r > 0.55) & (r < 0.7))
    noise = np.random.default_rng(seed).normal(0, 15, shape)
    return np.where(r < 1, tissue + noise, 0.0).astype(np.float32)


def _band_mask(shape: tuple[int, ...], factor: int, axes: tuple[int, int] = (0, 1)) -> np.ndarray:
    """The kept in-plane frequencies as a boolean array in numpy.fft order, from an independent computation."""
    mask = np.ones(shape, dtype=bool)
    for axis in axes:
        size = shape[axis]
        n = size // factor
        k = np.fft.fftfreq(size, 1.0 / size)  # integer frequencies of the input grid
        keep = np.abs(k) <= (n - 1) // 2
        view = [1] * len(shape)
        view[axis] = -1
        mask &= keep.reshape(view)
    return mask


def _outside_energy(data: np.ndarray, factor: int) -> float:
    spectrum = np.fft.fft2(np.asarray(data, np.float64), axes=(0, 1))
    energy = np.abs(spectrum) ** 2
    return float(energy[~_band_mask(data.shape, factor)].sum() / energy.sum())


CASES = {
    "even-square": (np.random.default_rng(3).random((32, 32, 4)) * 100).astype(np.float32),
    "odd-non-square": (np.random.default_rng(4).random((33, 25, 3)) * 100).astype(np.float32),
    "textured-disk": _textured_disk(),
}


# ---------------------------------------------------------------------------------- k-space truncation
@pytest.mark.parametrize("factor", [2, 3, 4])
@pytest.mark.parametrize("case", list(CASES))
def test_kspace_truncation_leaves_no_energy_above_the_cutoff_and_is_idempotent(case: str, factor: int) -> None:
    vol = Volume(CASES[case], AFFINE)
    call = degradation("kspace_truncation", factor=factor)
    lr = call.apply(vol, seed=0, case_id="s1")
    assert lr.shape == vol.shape and lr.same_grid(vol) and lr.data.dtype == np.float32
    assert _outside_energy(lr.data, factor) < 1e-10
    assert _outside_energy(vol.data, factor) > 1e-3  # the input did have energy there
    again = call.apply(lr, seed=0, case_id="s1")
    assert np.abs(again.data - lr.data).max() <= 1e-6 * np.abs(lr.data).max()
    # the through-plane axis is untouched: each slice is degraded on its own
    one = call.apply(Volume(vol.data[:, :, 1:2], AFFINE), seed=0, case_id="s1")
    np.testing.assert_allclose(one.data[:, :, 0], lr.data[:, :, 1], rtol=0, atol=1e-4)


def test_kspace_truncation_is_byte_identical_across_calls_seeds_and_cases() -> None:
    vol = Volume(CASES["textured-disk"], AFFINE)
    call = degradation("kspace_truncation", factor=4)
    a = call.apply(vol, seed=0, case_id="s1").data.tobytes()
    assert a == call.apply(vol, seed=0, case_id="s1").data.tobytes()
    assert a == call.apply(vol, seed=7, case_id="other").data.tobytes()  # no randomness in it


def test_kspace_truncation_kept_band_definition() -> None:
    freqs, keep = kept_frequencies(224, 4)  # n = 56: |k| <= 27, the LR Nyquist bin -28 dropped
    assert freqs.size == 56 and sorted(freqs[keep]) == list(range(-27, 28))
    freqs, keep = kept_frequencies(225, 4)  # n = 56 too
    assert sorted(freqs[keep]) == list(range(-27, 28))
    freqs, keep = kept_frequencies(45, 2)  # n = 22: |k| <= 10
    assert freqs.size == 22 and sorted(freqs[keep]) == list(range(-10, 11))
    freqs, keep = kept_frequencies(224, 4, "disc_diff")  # DisC-Diff getLR: -28..27
    assert keep.all() and sorted(freqs) == list(range(-28, 28))


@pytest.mark.parametrize("case", ["even-square", "odd-non-square"])
def test_kspace_low_res_grid_geometry_and_zero_filled_upsampling(case: str) -> None:
    vol = Volume(CASES[case], AFFINE)
    grid = degradation("kspace_truncation", factor=2).apply(vol, seed=0, case_id="s1")
    small = degradation("kspace_truncation", factor=2, output="low_res").apply(vol, seed=0, case_id="s1")
    nx, ny = vol.shape[0] // 2, vol.shape[1] // 2
    assert small.shape == (nx, ny, vol.shape[2])
    # same field of view: voxel size x N / n in-plane, voxel 0 in place, the third axis unchanged
    np.testing.assert_allclose(small.spacing, (0.9 * vol.shape[0] / nx, 0.9 * vol.shape[1] / ny, 1.2))
    np.testing.assert_allclose(small.affine[:3, 3], AFFINE[:3, 3])
    # zero-filled (sinc) up-sampling of the low-res image is the grid-preserving output
    up = zero_filled_upsample(small.data, vol.shape)
    assert np.abs(up - grid.data).max() <= 1e-5 * np.abs(grid.data).max()
    # intensities are preserved: a constant stays that constant on both grids
    const = Volume(np.full(vol.shape, 7.5, np.float32), AFFINE)
    for output in ("grid", "low_res"):
        out = degradation("kspace_truncation", factor=2, output=output).apply(const, seed=0, case_id="c")
        np.testing.assert_allclose(out.data, 7.5, rtol=1e-6)


def test_kspace_low_res_samples_the_grid_output_when_the_factor_divides() -> None:
    vol = Volume(CASES["even-square"], AFFINE)
    grid = degradation("kspace_truncation", factor=4).apply(vol, seed=0, case_id="s1")
    small = degradation("kspace_truncation", factor=4, output="low_res").apply(vol, seed=0, case_id="s1")
    np.testing.assert_allclose(small.data, grid.data[::4, ::4], rtol=0, atol=1e-4)
    np.testing.assert_allclose(small.spacing[:2], (3.6, 3.6))


def test_disc_diff_convention_reproduces_getlr_and_is_not_a_fixed_point() -> None:
    data = CASES["textured-disk"]
    vol = Volume(data, AFFINE)
    out = degradation("kspace_truncation", factor=4, output="low_res", convention="disc_diff").apply(
        vol, seed=0, case_id="s1")
    # DisC-Diff's getLR, written out: fftn, fftshift, centre crop in-plane, ifftshift, ifftn, magnitude
    k = np.fft.fftshift(np.fft.fftn(data.astype(np.float64)))
    x, y, _ = k.shape
    dx, dy = x // 8, y // 8
    crop = k[x // 2 - dx:x // 2 + dx, y // 2 - dy:y // 2 + dy, :]
    ref = np.abs(np.fft.ifftn(np.fft.ifftshift(crop)))
    ref *= (crop.shape[0] * crop.shape[1]) / (x * y)  # getLR's intensities grow by the grid ratio; ours do not
    np.testing.assert_allclose(out.data, ref, rtol=1e-5, atol=1e-3)
    # the magnitude re-introduces frequencies above the cut-off: why the default is the real projection
    grid = degradation("kspace_truncation", factor=4, convention="disc_diff").apply(vol, seed=0, case_id="s1")
    again = degradation("kspace_truncation", factor=4, convention="disc_diff").apply(grid, seed=0, case_id="s1")
    assert np.abs(again.data - grid.data).max() > 1e-3 * np.abs(grid.data).max()


def test_kspace_truncation_other_axes_and_too_small_axes() -> None:
    vol = Volume(np.ascontiguousarray(np.moveaxis(CASES["odd-non-square"], 2, 0)), AFFINE)  # (3, 33, 25)
    out = degradation("kspace_truncation", factor=2, axes=[2, 1]).apply(vol, seed=0, case_id="s1")
    ref = degradation("kspace_truncation", factor=2).apply(Volume(CASES["odd-non-square"], AFFINE),
                                                           seed=0, case_id="s1")
    np.testing.assert_allclose(out.data, np.moveaxis(ref.data, 2, 0), atol=1e-4)
    with pytest.raises(Exception, match="axis 0 has 3 voxels, too few for factor 4"):
        degradation("kspace_truncation", factor=4, axes=[0, 1]).apply(vol, seed=0, case_id="s1")


def test_operators_give_the_same_bytes_in_another_process(tmp_path: Path) -> None:
    vol = Volume(CASES["textured-disk"], AFFINE)
    pre = Volume((CASES["textured-disk"] * 0.8).astype(np.float32), AFFINE)
    np.save(tmp_path / "full.npy", vol.data)
    np.save(tmp_path / "pre.npy", pre.data)
    here = [
        hashlib.sha256(degradation("kspace_truncation", factor=4).apply(vol, seed=3, case_id="IXI002")
                       .data.tobytes()).hexdigest(),
        hashlib.sha256(degradation("contrast_dose", dose=0.2).apply(vol, seed=3, case_id="IXI002",
                                                                    others={"pre": pre}).data.tobytes()).hexdigest(),
        hashlib.sha256(degradation("contrast_dose", version="1", dose=0.2).apply(
            vol, seed=3, case_id="IXI002", others={"pre": pre}).data.tobytes()).hexdigest(),
    ]
    assert len(set(here)) == 3
    code = textwrap.dedent(f"""
        import hashlib, numpy as np
        from cmsbench.tasks import Volume
        from cmsbench.tasks.degradations import degradation
        affine = np.array({AFFINE.tolist()!r})
        full = Volume(np.load({str(tmp_path / 'full.npy')!r}), affine)
        pre = Volume(np.load({str(tmp_path / 'pre.npy')!r}), affine)
        print(hashlib.sha256(degradation("kspace_truncation", factor=4).apply(full, seed=3, case_id="IXI002")
                             .data.tobytes()).hexdigest())
        print(hashlib.sha256(degradation("contrast_dose", dose=0.2).apply(full, seed=3, case_id="IXI002",
                             others={{"pre": pre}}).data.tobytes()).hexdigest())
        print(hashlib.sha256(degradation("contrast_dose", version="1", dose=0.2).apply(full, seed=3,
                             case_id="IXI002", others={{"pre": pre}}).data.tobytes()).hexdigest())
    """)
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={"PYTHONHASHSEED": "12345", **__import__("os").environ})
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == here


# ---------------------------------------------------------------------------------------- downsample
@pytest.mark.parametrize("factor", [2, 3])
def test_downsample_keeps_a_constant_image_constant(factor: int) -> None:
    const = Volume(np.full((31, 20, 3), 3.7, np.float32), AFFINE)
    for output, interpolation in (("grid", "nearest"), ("grid", "linear"), ("low_res", "nearest")):
        out = degradation("downsample", factor=factor, output=output, interpolation=interpolation).apply(
            const, seed=0, case_id="c")
        assert np.all(out.data == np.float32(3.7)), (output, interpolation)


def test_downsample_block_means_match_a_direct_computation() -> None:
    data = CASES["even-square"]  # 32 x 32 x 4, factor 4 divides
    vol = Volume(data, AFFINE)
    small = degradation("downsample", factor=4, output="low_res").apply(vol, seed=0, case_id="c")
    direct = data.astype(np.float64).reshape(8, 4, 8, 4, 4).mean(axis=(1, 3))
    np.testing.assert_allclose(small.data, direct, rtol=1e-6)
    # low-res voxel (0, 0) is the centroid of input voxels 0..3: 1.5 voxels in, 4x the voxel size
    np.testing.assert_allclose(small.spacing, (3.6, 3.6, 1.2))
    np.testing.assert_allclose(small.affine[:3, 3], AFFINE[:3, 3] + np.array([1.5 * 0.9, 1.5 * 0.9, 0.0]))
    grid = degradation("downsample", factor=4).apply(vol, seed=0, case_id="c")
    np.testing.assert_allclose(grid.data, np.repeat(np.repeat(direct, 4, 0), 4, 1), rtol=1e-6)
    # nearest block replication is a projection: re-applying changes nothing
    again = degradation("downsample", factor=4).apply(grid, seed=0, case_id="c")
    assert np.abs(again.data - grid.data).max() <= 1e-6 * np.abs(grid.data).max()


def test_downsample_partial_blocks_and_linear_interpolation() -> None:
    data = CASES["odd-non-square"]  # 33 x 25: last blocks of 1 voxel (factor 4)
    small = degradation("downsample", factor=4, output="low_res").apply(Volume(data, AFFINE), seed=0, case_id="c")
    assert small.shape == (9, 7, 3)
    np.testing.assert_allclose(small.data[-1, -1], data[32:, 24:].astype(np.float64).mean(axis=(0, 1)), rtol=1e-6)
    np.testing.assert_allclose(small.data[2, 3], data[8:12, 12:16].astype(np.float64).mean(axis=(0, 1)), rtol=1e-6)
    ramp = Volume(np.broadcast_to(np.arange(32, dtype=np.float32)[:, None, None], (32, 8, 2)).copy(), AFFINE)
    lin = degradation("downsample", factor=4, interpolation="linear").apply(ramp, seed=0, case_id="c")
    # a ramp is reproduced exactly between the first and last block centroids (1.5 and 29.5), constant beyond
    np.testing.assert_allclose(lin.data[2:30, 0, 0], np.arange(2, 30), atol=1e-5)
    np.testing.assert_allclose(lin.data[:2, 0, 0], 1.5)
    np.testing.assert_allclose(lin.data[30:, 0, 0], 29.5)


# ---------------------------------------------------------------------------------------- contrast dose
def _pre_full(sigma: float = 10.0, shape: tuple[int, int, int] = (48, 48, 12), seed: int = 1,
              sigma_pre: float | None = None):
    """Synthetic pre-contrast and full-dose scans with known noise: (pre, full, pre_clean, full_clean, brain,
    n_pre, n_full); the noises are those of the brain voxels (zero outside)."""
    g = np.mgrid[tuple(slice(0, s) for s in shape)].astype(np.float64)
    r = np.hypot(g[0] - shape[0] / 2, g[1] - shape[1] / 2)
    brain = r < 0.42 * shape[0]
    pre_clean = np.where(brain, 400 + 100 * np.sin(g[0] / 7) * np.cos(g[1] / 5), 0.0)
    full_clean = pre_clean + np.where(r < 6, 300.0, 0.0)  # an enhancing lesion
    rng = np.random.default_rng(seed)
    n_pre = np.where(brain, rng.normal(0, sigma if sigma_pre is None else sigma_pre, shape), 0)
    n_full = np.where(brain, rng.normal(0, sigma, shape), 0)
    pre = (pre_clean + n_pre).astype(np.float32)
    full = (full_clean + n_full).astype(np.float32)
    return Volume(pre, AFFINE), Volume(full, AFFINE), pre_clean, full_clean, brain, n_pre, n_full


def test_full_dose_without_noise_returns_the_full_dose_image() -> None:
    pre, full, *_ = _pre_full()
    out = degradation("contrast_dose", dose=1.0, noise="none").apply(full, seed=0, case_id="c", others={"pre": pre})
    assert out.data.tobytes() == full.data.tobytes() and out.same_grid(full)
    half = degradation("contrast_dose", dose=0.5, noise="none").apply(full, seed=0, case_id="c", others={"pre": pre})
    np.testing.assert_allclose(half.data, (pre.data.astype(np.float64) + full.data) / 2, rtol=1e-6)
    # version 2 adds the low-dose scan's own noise even at full dose (a second acquisition); version 1 did not
    again = degradation("contrast_dose", dose=1.0).apply(full, seed=0, case_id="c", others={"pre": pre})
    inside = full.data != 0
    assert (again.data - full.data)[inside].std() == pytest.approx(estimate_noise_sigma(full.data), rel=0.02)
    v1 = degradation("contrast_dose", version="1", dose=1.0).apply(full, seed=0, case_id="c", others={"pre": pre})
    assert v1.data.tobytes() == full.data.tobytes()


def test_noise_estimator_recovers_a_known_sigma() -> None:
    _, full, *_ = _pre_full(sigma=10.0)
    assert estimate_noise_sigma(full.data) == pytest.approx(10.0, rel=0.1)
    white = np.random.default_rng(0).normal(100, 4.0, (40, 40, 10))
    assert estimate_noise_sigma(white) == pytest.approx(4.0, rel=0.05)
    with pytest.raises(Exception, match="cannot estimate the noise level"):
        estimate_noise_sigma(np.zeros((10, 10, 4)))


@pytest.mark.parametrize(("dose", "sigma_pre"), [(0.1, 10.0), (0.33, 10.0), (0.1, 30.0), (0.2, 3.0)])
def test_low_dose_noise_is_an_independent_acquisition_at_the_full_dose_level(dose: float, sigma_pre: float) -> None:
    """Version 2: low - pre - dose (full - pre) is i.i.d. noise of the full-dose level, whatever the
    pre-contrast noise, uncorrelated with the noise of either scan; dose scaling amplifies it by 1/dose."""
    pre, full, pre_clean, full_clean, brain, n_pre, n_full = _pre_full(sigma=10.0, sigma_pre=sigma_pre)
    out = degradation("contrast_dose", dose=dose).apply(full, seed=0, case_id="c", others={"pre": pre})
    p64, f64 = pre.data.astype(np.float64), full.data.astype(np.float64)
    own = (out.data - (p64 + dose * (f64 - p64)))[brain]
    estimate = estimate_noise_sigma(full.data)
    assert own.std() == pytest.approx(estimate, rel=0.02)  # exactly the estimate's level (float32 rounding aside)
    assert own.std() == pytest.approx(10.0, rel=0.1)
    assert abs(own.mean()) < 0.5
    for shared in (n_pre[brain], n_full[brain]):
        assert abs(np.corrcoef(own, shared)[0, 1]) < 0.03  # ~19 000 voxels: |r| of independent noise ~ 0.007
    # the whole noise of the low dose: the shared residual (1 - dose) n_pre + dose n_full plus its own
    total = (out.data - (pre_clean + dose * (full_clean - pre_clean)))[brain]
    expected = np.sqrt((1 - dose) ** 2 * sigma_pre**2 + dose**2 * 100.0 + 100.0)
    assert total.std() == pytest.approx(expected, rel=0.05)
    # dose scaling returns full + own / dose: the target's noise reproduced, the own noise amplified 1/dose
    scaled = p64 + (out.data.astype(np.float64) - p64) / dose
    assert (scaled - f64)[brain].std() == pytest.approx(estimate / dose, rel=0.02)
    # noise none: the linear model alone; a given sigma replaces the estimate; the background stays zero
    noiseless = degradation("contrast_dose", dose=dose, noise="none").apply(full, seed=0, case_id="c",
                                                                          others={"pre": pre})
    np.testing.assert_allclose(noiseless.data, p64 + dose * (f64 - p64), atol=1e-3)
    given = degradation("contrast_dose", dose=dose, sigma=20.0).apply(full, seed=0, case_id="c", others={"pre": pre})
    assert (given.data - noiseless.data)[brain].std() == pytest.approx(20.0, rel=0.02)
    assert np.all(given.data[~brain] == 0) and np.all(out.data[~brain] == 0)


@pytest.mark.parametrize(("sigma_pre", "expected"), [(5.0, 10.0), (30.0, 0.9 * 30.0)])
def test_version_1_stays_reachable_and_unchanged(sigma_pre: float, expected: float) -> None:
    """Version 1 (specs naming operator_version "1"): noise only topping the combination up to the full-dose
    level, none where the pre-contrast image is the noisier, exactly as defined in its convention."""
    pre, full, pre_clean, full_clean, brain, *_ = _pre_full(sigma=10.0, sigma_pre=sigma_pre)
    call = from_options({"operator": "contrast_dose", "operator_version": "1", "operator_params": {"dose": 0.1}})
    assert call is not None and call.describe()["version"] == "1" and call.params["noise"] == "matched"
    out = call.apply(full, seed=0, case_id="c", others={"pre": pre})
    residual = (out.data - (0.9 * pre_clean + 0.1 * full_clean))[brain]
    assert residual.std() == pytest.approx(expected, rel=0.1)
    # its definition, recomputed here: (1 - d) pre + d full + N(0, s_full^2 - (1 - d)^2 s_pre^2 - d^2 s_full^2)
    s_full, s_pre = estimate_noise_sigma(full.data), estimate_noise_sigma(pre.data)
    low = 0.9 * pre.data.astype(np.float64) + 0.1 * full.data.astype(np.float64)
    variance = s_full**2 - (0.81 * s_pre**2 + 0.01 * s_full**2)
    if variance > 0:
        noise = operator_rng(0, "c", "contrast_dose").standard_normal(low.shape) * np.sqrt(variance)
        low = low + np.where(brain, noise, 0.0)
    assert out.data.tobytes() == low.astype(np.float32).tobytes()
    with pytest.raises(OperatorError, match="parameter 'noise' must be one of 'acquisition', 'none'"):
        degradation("contrast_dose", noise="matched")


def test_contrast_dose_is_deterministic_per_seed_and_case() -> None:
    pre, full, *_ = _pre_full()
    call = degradation("contrast_dose", dose=0.1)

    def run(seed: int, case_id: str) -> bytes:
        return call.apply(full, seed=seed, case_id=case_id, others={"pre": pre}).data.tobytes()

    assert run(0, "BraTS-001") == run(0, "BraTS-001")
    assert run(0, "BraTS-001") != run(1, "BraTS-001")
    assert run(0, "BraTS-001") != run(0, "BraTS-002")
    a = operator_rng(0, "x", "contrast_dose").standard_normal(4)
    assert np.array_equal(a, operator_rng(0, "x", "contrast_dose").standard_normal(4))
    assert not np.array_equal(a, operator_rng(0, "x", "other_operator").standard_normal(4))


def test_contrast_dose_needs_the_pre_contrast_image_on_the_same_grid() -> None:
    pre, full, *_ = _pre_full()
    call = degradation("contrast_dose", dose=0.1)
    with pytest.raises(OperatorError, match=r"'contrast_dose' needs the volume\(s\) \['pre'\]"):
        call.apply(full, seed=0, case_id="c")
    moved = AFFINE.copy()
    moved[:3, 3] += 5.0
    shifted = Volume(pre.data, moved)
    with pytest.raises(GeometryError, match="case 'c'.*'pre' on the input's grid"):
        call.apply(full, seed=0, case_id="c", others={"pre": shifted})
    bad = full.data.copy()
    bad[0, 0, 0] = np.nan
    with pytest.raises(Exception, match="non-finite"):
        call.apply(Volume(bad, AFFINE), seed=0, case_id="c", others={"pre": pre})


# ---------------------------------------------------------------------------------------- registry
def test_registry_lists_the_builtin_operators_by_entry_point() -> None:
    assert {"kspace_truncation", "downsample", "contrast_dose"} <= set(OPERATORS.names())
    for name in ("kspace_truncation", "downsample", "contrast_dose"):
        op = get_operator(name)
        assert isinstance(op, Operator) and op.name == name and op.version == ("2" if name == "contrast_dose" else "1")
        assert OPERATORS.entries()[name].target == f"cmsbench.tasks.degradations.builtin:{name.upper()}"
    assert get_operator("contrast_dose").requires == ("pre",) and get_operator("contrast_dose").stochastic


def test_an_operator_keeps_its_previous_versions_reachable() -> None:
    current, v1 = get_operator("contrast_dose"), get_operator("contrast_dose", "1")
    assert current.versions == ("2", "1") and v1.version == "1" and v1.name == "contrast_dose"
    assert get_operator("contrast_dose", "2") is current and current.at_version(None) is current
    assert current.info()["versions"] == ["2", "1"]
    with pytest.raises(OperatorError, match=r"'contrast_dose' has no version '3' \(installed: 2, 1\)"):
        get_operator("contrast_dose", "3")
    with pytest.raises(OperatorError, match="duplicate versions"):
        replace(current, previous=(v1, replace(v1, summary="again")))
    with pytest.raises(OperatorError, match="previous versions must be operators named 'contrast_dose'"):
        replace(current, previous=(replace(get_operator("downsample"), version="0"),))


def test_unknown_operator_suggests_the_closest_name() -> None:
    with pytest.raises(UnknownNameError, match="Did you mean 'kspace_truncation'"):
        get_operator("kspace_trunctaion")


@pytest.mark.parametrize(("name", "params", "message"), [
    ("kspace_truncation", {"factor": 0}, "operator 'kspace_truncation': parameter 'factor' must be an integer >= 2, got 0"),
    ("kspace_truncation", {"factor": 2.5}, "parameter 'factor' must be an integer >= 2, got 2.5"),
    ("kspace_truncation", {"output": "lowres"}, "parameter 'output' must be one of .*Did you mean 'low_res'"),
    ("kspace_truncation", {"axes": [1, 1]}, "parameter 'axes' must be two distinct axes"),
    ("kspace_truncation", {"factr": 2}, "operator 'kspace_truncation' has no parameter 'factr'. Did you mean 'factor'"),
    ("downsample", {"interpolation": "cubic"}, "parameter 'interpolation' must be one of 'nearest', 'linear'"),
    ("contrast_dose", {"dose": 1.5}, r"operator 'contrast_dose': parameter 'dose' must be in \(0, 1\], got 1.5"),
    ("contrast_dose", {"dose": 0}, r"parameter 'dose' must be in \(0, 1\], got 0"),
    ("contrast_dose", {"sigma": -1}, r"parameter 'sigma' must be in \[0, inf\)"),
])
def test_bad_parameters_name_the_operator_and_the_parameter(name: str, params: dict, message: str) -> None:
    with pytest.raises(OperatorError, match=message):
        degradation(name, params)


def test_describe_and_adapter_options_round_trip_into_the_fingerprint() -> None:
    from cmsbench.tasks.builtin import IXI_T1_T2

    call = degradation("kspace_truncation", factor=4.0)
    assert call.describe() == {"name": "kspace_truncation", "version": "1",
                               "params": {"factor": 4, "output": "grid", "axes": [0, 1], "convention": "symmetric"}}
    options = call.options()
    assert options == {"operator": "kspace_truncation", "operator_version": "1",
                       "operator_params": call.describe()["params"]}
    back = from_options({"operator": "kspace_truncation", "operator_params": {"factor": 4}})
    assert back is not None and back.describe() == call.describe()
    assert from_options({"drf": 4}) is None
    specs = [replace(IXI_T1_T2, adapter_options={**IXI_T1_T2.adapter_options, **degradation(
        "kspace_truncation", factor=f).options()}) for f in (2, 4)]
    assert specs[0].fingerprint() != specs[1].fingerprint()
    assert from_options(specs[1].adapter_options).describe()["params"]["factor"] == 4
    with pytest.raises(OperatorError, match=r"'kspace_truncation' has no version '0' \(installed: 1\)"):
        from_options({"operator": "kspace_truncation", "operator_version": "0"})
    with pytest.raises(OperatorError, match="unknown adapter option 'operator_param'. Did you mean 'operator_params'"):
        from_options({"operator": "kspace_truncation", "operator_param": {"factor": 2}})
    with pytest.raises(OperatorError, match="parameter 'factor'"):
        from_options({"operator": "kspace_truncation", "operator_params": {"factor": 0}})


def test_a_runtime_registered_operator_works(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "my_degradations.py").write_text(textwrap.dedent("""
        import numpy as np
        from cmsbench.tasks.degradations.api import Operator, Parameter, real

        def _gain(volume, params, *, rng, others):
            noise = rng.standard_normal(volume.shape) * params["jitter"]
            return volume.with_data((volume.data * params["gain"] + noise).astype(np.float32))

        GAIN = Operator(name="gain", version="2", summary="multiply by a constant", function=_gain,
                        parameters=(Parameter("gain", 1.0, "the factor", real(low=0, low_open=True)),
                                    Parameter("jitter", 0.0, "noise sd", real(low=0))),
                        stochastic=True)
        NOT_AN_OPERATOR = 42
        WRONG_NAME = Operator(name="other", version="1", summary="", function=_gain)
    """))
    monkeypatch.syspath_prepend(str(tmp_path))
    OPERATORS.register("gain", "my_degradations:GAIN")
    OPERATORS.register("not_an_operator", "my_degradations:NOT_AN_OPERATOR")
    OPERATORS.register("wrong_name", "my_degradations:WRONG_NAME")
    try:
        assert "gain" in OPERATORS.names()
        vol = Volume(np.ones((4, 4, 2), np.float32), AFFINE)
        out = degradation("gain", gain=3).apply(vol, seed=0, case_id="c")
        assert np.all(out.data == 3)
        assert from_options({"operator": "gain", "operator_params": {"gain": 2}}).describe() == {
            "name": "gain", "version": "2", "params": {"gain": 2.0, "jitter": 0.0}}
        a = degradation("gain", jitter=1).apply(vol, seed=0, case_id="c").data
        assert np.array_equal(a, degradation("gain", jitter=1).apply(vol, seed=0, case_id="c").data)
        with pytest.raises(OperatorError, match="parameter 'gain' must be in"):
            degradation("gain", gain=-1)
        with pytest.raises(OperatorError, match="is a int, not a cmsbench Operator"):
            get_operator("not_an_operator")
        with pytest.raises(OperatorError, match="calls itself 'other'"):
            get_operator("wrong_name")
    finally:
        for name in ("gain", "not_an_operator", "wrong_name"):
            OPERATORS.unregister(name)
    assert "gain" not in OPERATORS.names()


def test_operator_definitions_are_checked() -> None:
    def fn(volume, params, *, rng, others):  # noqa: ANN001, ANN202
        return volume

    with pytest.raises(OperatorError, match="name 'bad name'"):
        Operator(name="bad name", version="1", summary="", function=fn)
    with pytest.raises(OperatorError, match="version must be a non-empty string"):
        Operator(name="x", version="", summary="", function=fn)
    from cmsbench.tasks.degradations.api import Parameter, integer

    with pytest.raises(OperatorError, match="operator 'x': parameter 'k' must be an integer >= 2, got 1"):
        Operator(name="x", version="1", summary="", function=fn, parameters=(Parameter("k", 1, "", integer(2)),))
    info = get_operator("downsample").info()
    assert info["parameters"]["factor"]["default"] == 4 and "block" in info["convention"]

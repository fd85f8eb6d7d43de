"""Denoising baselines for low-dose -> full-dose tasks (one input of the target modality): Gaussian, NLM.

Both tune their hyper-parameters by grid search on the validation cases (the first ``max_tune_cases``;
the train cases when no validation case is given), maximising the mean PSNR over the foreground
(voxels where the input is non-zero) with peak = max - min of that case's target over the foreground.
Options set explicitly are not tuned. The grid, the winner, its PSNR and the tuning case IDs are kept
in the fitted state (``params``, ``scores``, ``tuned_on``).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from itertools import product
from typing import Any, ClassVar

import numpy as np
from scipy import ndimage

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.baselines.classical._common import case_arrays, noise_sigma, psnr
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume

DENOISING_TASKS = ("ldpet", "ldct")


class _TunedDenoiser(Method):
    """Shared fit: grid search of ``tuned`` options on validation PSNR; predict applies ``_denoise``."""

    #: option name -> option holding its grid (an option left None is tuned over its grid)
    tuned: ClassVar[dict[str, str]] = {}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.params: dict[str, Any] = {}
        self.scores: list[dict[str, Any]] = []
        self.tuned_on: list[str] = []

    # -------------------------------------------------------------------------------- subclass hooks
    def _denoise(self, x: np.ndarray, params: Mapping[str, Any], slices: Sequence[int] | None = None) -> np.ndarray:
        """Denoised float64 copy of ``x`` (X, Y, Z); ``slices``: only those z slices matter (tuning)."""
        raise NotImplementedError

    def _tuning_slices(self, mask: np.ndarray) -> list[int] | None:
        """z slices to score during tuning (None: all)."""
        return None

    # ----------------------------------------------------------------------------------------- fit
    def grid(self) -> list[dict[str, Any]]:
        """The candidate parameter sets, in search order (fixed options are not searched)."""
        names = list(self.tuned)
        values = [
            [self.options[n]] if self.options[n] is not None else list(self.options[self.tuned[n]]) for n in names
        ]
        for n, v in zip(names, values, strict=True):
            if not v:
                raise MethodError(f"method {self.card.name!r}: option {self.tuned[n]!r} is an empty grid")
        return [dict(zip(names, combo, strict=True)) for combo in product(*values)]

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        if len(self.inputs) != 1:
            raise MethodError(
                f"method {self.card.name!r} denoises a single input of the target modality (e.g. pet_low -> pet, "
                f"ct_low -> ct), but the task has inputs {list(self.inputs)} -> {self.target!r}"
            )
        grid = self.grid()
        self.params = dict(grid[0])
        self.scores, self.tuned_on = [], []
        if len(grid) == 1:
            return
        pool = list(val) if len(val) else list(train)
        tune_cases = pool[: max(1, int(self.options["max_tune_cases"]))]
        prepared = []
        for case in tune_cases:
            stack, target = case_arrays(case, self.inputs, self.card.name)
            x = stack[0]
            mask = x != 0
            if not mask.any():
                mask = np.ones_like(mask)
            slices = self._tuning_slices(mask)
            if slices is not None:
                mask = mask.copy()
                keep = np.zeros(mask.shape[2], dtype=bool)
                keep[list(slices)] = True
                mask[:, :, ~keep] = False
            values = target[mask]
            data_range = float(values.max() - values.min()) if values.size else 1.0
            prepared.append((x, target, mask, data_range, slices))
            self.tuned_on.append(case.case_id)
        best = -np.inf
        for params in grid:
            score = float(np.mean([
                psnr(self._denoise(x, params, slices), y, mask, dr) for x, y, mask, dr, slices in prepared
            ]))
            self.scores.append({**params, "psnr": score})
            if score > best:
                best, self.params = score, dict(params)

    # ------------------------------------------------------------------------------------- predict
    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        stack, ref = self.stack_inputs(inputs)
        if stack.shape[0] != 1:
            raise MethodError(f"method {self.card.name!r} denoises one input, got {list(inputs)}")
        return self.output(self._denoise(stack[0].astype(np.float64), self.params), ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"params": self.params, "scores": self.scores, "tuned_on": self.tuned_on}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.params = dict(meta.get("params", {}))
        self.scores = list(meta.get("scores", []))
        self.tuned_on = list(meta.get("tuned_on", []))


class GaussianDenoiseMethod(_TunedDenoiser):
    """Gaussian smoothing of the low-dose input, ``sigma`` in voxels, in-plane (``2d``) or in 3D."""

    card = MethodCard(
        name="gaussian",
        version="1.0",
        summary=(
            "Gaussian filter of the low-dose input (scipy.ndimage.gaussian_filter, sigma in voxels, 'nearest' "
            "borders), in-plane per axial slice ('2d') or isotropic in voxels ('3d'). sigma and mode tuned "
            "by grid search maximising foreground PSNR on the validation split (train if none): sigma in "
            "(0, 0.5, 0.75, 1, 1.5, 2, 3), mode in ('2d', '3d'); sigma 0 returns the input."
        ),
        needs_training=True,
        tasks=DENOISING_TASKS,
    )
    defaults = {
        "sigma": None,
        "mode": None,
        "sigma_grid": (0.0, 0.5, 0.75, 1.0, 1.5, 2.0, 3.0),
        "mode_grid": ("2d", "3d"),
        "max_tune_cases": 3,
    }
    tuned = {"sigma": "sigma_grid", "mode": "mode_grid"}

    def _denoise(self, x: np.ndarray, params: Mapping[str, Any], slices: Sequence[int] | None = None) -> np.ndarray:
        sigma = float(params["sigma"])
        x = np.asarray(x, dtype=np.float64)
        if sigma <= 0:
            return x.copy()
        mode = params["mode"]
        if mode not in ("2d", "3d"):
            raise MethodError(f"method 'gaussian': mode must be '2d' or '3d', got {mode!r}")
        sigmas = (sigma, sigma, 0.0) if mode == "2d" else (sigma, sigma, sigma)
        return ndimage.gaussian_filter(x, sigma=sigmas, mode="nearest")


class NonLocalMeansMethod(_TunedDenoiser):
    """Non-local means (scikit-image, fast mode) per axial slice or in 3D, h = h_factor x noise sigma."""

    card = MethodCard(
        name="nlm",
        version="1.0",
        summary=(
            "Non-local means of the low-dose input (skimage.restoration.denoise_nl_means, fast_mode=True, "
            "patch_distance 5) per axial slice ('2d', default) or in 3D, with h = h_factor x sigma where "
            "sigma is the volume's noise level (robust Immerkaer estimator over the foreground). h_factor in "
            "(0.3, 0.45, 0.6, 0.8, 1.0, 1.2) and patch_size in (3, 5) tuned by grid search maximising foreground "
            "PSNR on up to 2 validation cases (train if none), 4 slices each."
        ),
        paper="Buades A., Coll B., Morel J.-M., A non-local algorithm for image denoising, CVPR 2005.",
        differences_from_paper=(
            "scikit-image's fast blockwise variant (Darbon et al. 2008) with the noise-variance correction; "
            "noise sigma from the Immerkaer (1996) estimator instead of estimate_sigma (needs PyWavelets); "
            "h and patch size tuned on validation PSNR."
        ),
        needs_training=True,
        tasks=DENOISING_TASKS,
    )
    defaults = {
        "h_factor": None,
        "patch_size": None,
        "patch_distance": 5,
        "mode": "2d",
        "h_grid": (0.3, 0.45, 0.6, 0.8, 1.0, 1.2),
        "patch_grid": (3, 5),
        "max_tune_cases": 2,
        "max_tune_slices": 4,
    }
    tuned = {"h_factor": "h_grid", "patch_size": "patch_grid"}

    def _tuning_slices(self, mask: np.ndarray) -> list[int] | None:
        if self.options["mode"] == "3d":
            return None
        filled = np.flatnonzero(mask.any(axis=(0, 1)))
        if filled.size == 0:
            filled = np.arange(mask.shape[2])
        n = min(filled.size, max(1, int(self.options["max_tune_slices"])))
        picks = np.linspace(0, filled.size - 1, n + 2)[1:-1] if filled.size > n else np.arange(filled.size)
        return sorted({int(filled[int(round(p))]) for p in picks})

    def _denoise(self, x: np.ndarray, params: Mapping[str, Any], slices: Sequence[int] | None = None) -> np.ndarray:
        from skimage.restoration import denoise_nl_means

        x = np.asarray(x, dtype=np.float64)
        sigma = noise_sigma(x, mask=x != 0)
        out = x.copy()
        if sigma <= 0:
            return out
        kwargs = dict(
            patch_size=int(params["patch_size"]),
            patch_distance=int(self.options["patch_distance"]),
            h=float(params["h_factor"]) * sigma,
            sigma=sigma,
            fast_mode=True,
            preserve_range=True,
        )
        mode = self.options["mode"]
        if mode == "3d":
            return np.asarray(denoise_nl_means(x.astype(np.float32), **kwargs), dtype=np.float64)
        if mode != "2d":
            raise MethodError(f"method 'nlm': mode must be '2d' or '3d', got {mode!r}")
        for z in range(x.shape[2]) if slices is None else slices:
            plane = x[:, :, z]
            if plane.max() == plane.min():
                continue
            out[:, :, z] = denoise_nl_means(plane.astype(np.float32), **kwargs)
        return out

"""``kernel_filter``: a radial frequency-domain (Wiener-type) filter from the smooth to the sharp CT kernel,
fitted on the train split (``ct_kernel``).

A reconstruction kernel is, to first order, a radial transfer function in the axial plane (FBP filters each
projection; by the central-slice theorem that is a radial filter of the slice). The method fits one gain per
radial frequency band by least squares over every training slice pair:

    H_b = sum Re(conj(S) T) / (sum |S|^2 + lambda mean_b(sum |S|^2)),  over the 2D DFT coefficients in band b,

with S, T the DFTs of the smooth input and the sharp target (HU + 1000, so that the air around the body is
0 and the DFT's periodic wrap is benign). This is the Wiener estimate of the kernel ratio: it recovers the
ratio of the two kernels where the smooth image carries signal, and shrinks to 0 where it carries none
(frequencies the smooth kernel removed cannot be restored). Frequencies are in cycles/mm (bands up to the
largest in-plane Nyquist radius of the training cases), so cases of other pixel sizes get the same physical
filter. Prediction: each axial slice's DFT times H(|f|) (linear interpolation between band centres). The
filtered input is the ``source`` option, else the input named like the target, else the first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.baselines.classical._common import check_source, match_by_name
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume

#: Added to HU before the DFT: air (-1000 HU) becomes 0.
AIR_OFFSET = 1000.0


def _radial_frequency(shape: tuple[int, int], spacing: tuple[float, float]) -> np.ndarray:
    """|f| (cycles/mm) of the rfft2 coefficients of a slice of ``shape`` with pixel ``spacing`` (mm)."""
    fx = np.fft.fftfreq(shape[0], d=spacing[0])
    fy = np.fft.rfftfreq(shape[1], d=spacing[1])
    return np.sqrt(fx[:, None] ** 2 + fy[None, :] ** 2)


def _spacing(vol: Volume) -> tuple[float, float]:
    s = vol.spacing
    return float(s[0]), float(s[1])


def apply_radial_filter(image: np.ndarray, spacing: tuple[float, float], centres: np.ndarray,
                        gain: np.ndarray) -> np.ndarray:
    """Filter each axial slice of an (X, Y, Z) HU array by the radial gain ``gain`` at ``centres`` (cycles/mm)."""
    arr = np.asarray(image, dtype=np.float64) + AIR_OFFSET
    spec = np.fft.rfft2(arr, axes=(0, 1))
    h = np.interp(_radial_frequency(arr.shape[:2], spacing), centres, gain, right=float(gain[-1]))
    out = np.fft.irfft2(spec * h[:, :, None], s=arr.shape[:2], axes=(0, 1))
    return (out - AIR_OFFSET).astype(np.float32)


class KernelFilterMethod(Method):
    """Smooth -> sharp kernel conversion by a radial transfer function fitted by least squares on train."""

    card = MethodCard(
        name="kernel_filter",
        version="1.0",
        summary=(
            "A Wiener-type radial filter of each axial slice: one gain per radial frequency band (cycles/mm), "
            "fitted by ridge-regularised least squares of the sharp target's 2D DFT on the smooth input's over "
            "every training slice (HU + 1000), applied by DFT with linear interpolation between bands. Restores "
            "what a linear, shift-invariant kernel change can: the sharp kernel's edges and its noise texture "
            "where the smooth image keeps them; not frequencies the smooth kernel removed."
        ),
        needs_training=True,
    )
    defaults = {"bands": 48, "regularisation": 1e-6, "source": None}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.centres = np.zeros(0)
        self.gain = np.zeros(0)
        self.source: str | None = None

    def _source(self, available: Sequence[str]) -> str:
        """The filtered input: the ``source`` option, else the one named like the target, else the first."""
        if self.options["source"] is not None:
            return check_source(str(self.options["source"]), list(available), self.card.name)
        if self.source in available:
            return str(self.source)
        return match_by_name(list(available), self.target) or list(available)[0]

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        self.source = self._source(self.inputs)
        n_bands = int(self.options["bands"])
        if n_bands < 2:
            raise MethodError(f"method {self.card.name!r}: bands must be >= 2, got {n_bands}")
        f_max = max(float(np.hypot(0.5 / _spacing(c.inputs[self.source])[0],
                                   0.5 / _spacing(c.inputs[self.source])[1])) for c in train)
        edges = np.linspace(0.0, f_max * (1 + 1e-9), n_bands + 1)
        num, den = np.zeros(n_bands), np.zeros(n_bands)
        for case in train:
            src = case.inputs[self.source]
            assert case.target is not None
            if src.shape != case.target.shape:
                raise MethodError(f"method {self.card.name!r}: case {case.case_id!r} has input shape {src.shape} "
                                  f"but target shape {case.target.shape}")
            s = np.fft.rfft2(np.asarray(src.data, np.float64) + AIR_OFFSET, axes=(0, 1))
            t = np.fft.rfft2(np.asarray(case.target.data, np.float64) + AIR_OFFSET, axes=(0, 1))
            band = np.clip(np.digitize(_radial_frequency(src.shape[:2], _spacing(src)), edges) - 1, 0, n_bands - 1)
            # rfft2 keeps half the spectrum; the weights of the omitted conjugates are equal, so the ratio holds
            num += np.bincount(band.ravel(), weights=np.real(np.conj(s) * t).sum(axis=2).ravel(), minlength=n_bands)
            den += np.bincount(band.ravel(), weights=(np.abs(s) ** 2).sum(axis=2).ravel(), minlength=n_bands)
        seen = den > 0
        if not seen.any():
            raise MethodError(f"method {self.card.name!r}: the training inputs are empty")
        lam = float(self.options["regularisation"]) * float(den[seen].mean())
        self.gain = np.where(seen, num / (den + lam), 0.0)
        self.centres = 0.5 * (edges[:-1] + edges[1:])

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        _, ref = self.stack_inputs(inputs)
        src = inputs[self._source(list(self.inputs or inputs))]
        return self.output(apply_radial_filter(np.asarray(src.data), _spacing(src), self.centres, self.gain), ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {"centres": self.centres, "gain": self.gain}, {"source": self.source}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.centres = np.asarray(arrays["centres"], np.float64)
        self.gain = np.asarray(arrays["gain"], np.float64)
        self.source = meta.get("source")

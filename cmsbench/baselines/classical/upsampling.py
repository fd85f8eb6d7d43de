"""Super-resolution floors for k-space-truncated inputs (``ixi_sr_t2``): bicubic interpolation of the
low-resolution samples, and a guided (T1-driven) restoration of the missing high frequencies.

Both read the truncation (factor, in-plane axes, convention) from the training cases' metadata
``degradation`` (written by the task's adapter), or from the ``factor`` option; failing both, from the
input itself: a zero-filled input has no energy above its cut-off, whose position gives the factor
(:func:`estimate_factor`). An input with no truncation is returned as it is.

The identity baseline of these tasks is ``identity`` (it copies ``t2_lr``, the zero-filled
reconstruction). Zero filling is the orthogonal projection of the target onto the kept band, so the
error of any other image of the same samples is at least the target's out-of-band energy unless it
adds high frequencies that agree with the target's; bicubic interpolation adds spectral replicas that
do not, and scores below zero filling in PSNR (measured on the IXI phantoms: -0.2 dB at x2 and x4).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from cmsbench.baselines.base import FitContext, Method, MethodCard
from cmsbench.baselines.classical._common import check_source, foreground, match_by_name
from cmsbench.errors import MethodError
from cmsbench.tasks.volume import Case, Volume

log = logging.getLogger(__name__)

TRUNCATION = "kspace_truncation"
#: fraction of the total spectral energy below which a frequency bin counts as empty (float32 rounding of
#: a band-limited image leaves ~1e-14 there; the weakest kept bins of a head image hold ~1e-8 and more)
EMPTY_BIN = 1e-11


# ------------------------------------------------------------------------------------------ helpers
def truncation_params(factor: int, axes: Sequence[int] = (0, 1), convention: str = "symmetric") -> dict[str, Any]:
    """The ``kspace_truncation`` parameters of a zero-filled input (``output="grid"``)."""
    return {"factor": int(factor), "output": "grid", "axes": [int(a) for a in axes], "convention": convention}


def params_from_cases(cases: Sequence[Case], method: str) -> dict[str, Any] | None:
    """The truncation the first training case records in ``metadata["degradation"]`` (None if it has none)."""
    if not len(cases):
        return None
    info = cases[0].metadata.get("degradation") if isinstance(cases[0].metadata, dict) else None
    if not isinstance(info, Mapping):
        return None
    if info.get("name") != TRUNCATION:
        raise MethodError(f"method {method!r} undoes {TRUNCATION!r}, but the task's inputs were degraded by "
                          f"{info.get('name')!r}")
    params = dict(info.get("params") or {})
    return truncation_params(params["factor"], params.get("axes", (0, 1)), params.get("convention", "symmetric"))


def estimate_factor(data: np.ndarray, axes: Sequence[int] = (0, 1)) -> int | None:
    """The ``kspace_truncation`` factor (symmetric convention) of a zero-filled image, from its cut-off
    frequency along each in-plane axis: the smallest factor f whose kept band, |k| <= (N // f - 1) // 2,
    ends where the image's spectrum does. None when the image has energy up to the Nyquist frequency (not
    truncated) or no factor explains the cut-off on every axis."""
    x = np.asarray(data, dtype=np.float64)
    total = float(np.sum(x**2))
    if not total > 0:
        return None
    candidates: set[int] | None = None
    for axis in axes:
        size = x.shape[axis]
        power = np.abs(np.fft.fft(x, axis=axis)) ** 2 / size
        energy = np.sum(np.moveaxis(power, axis, 0).reshape(size, -1), axis=1)
        k = np.abs(np.rint(np.fft.fftfreq(size, 1.0 / size))).astype(int)
        occupied = k[energy > EMPTY_BIN * total]
        cut = int(occupied.max()) if occupied.size else 0
        factors = {f for f in range(2, size + 1) if size // f >= 1 and (size // f - 1) // 2 == cut}
        candidates = factors if candidates is None else candidates & factors
    return min(candidates) if candidates else None


def band_limit(data: np.ndarray, params: Mapping[str, Any]) -> np.ndarray:
    """``data`` through the task's truncation (its kept band only), float64."""
    from cmsbench.tasks.degradations import degradation

    vol = Volume(np.asarray(data, dtype=np.float64))
    return np.asarray(degradation(TRUNCATION, {**params, "output": "grid"}).apply(vol, seed=0, case_id="band").data,
                      dtype=np.float64)


def cubic_upsample(low: np.ndarray, shape: Sequence[int], axes: Sequence[int]) -> np.ndarray:
    """Interpolating cubic spline (``scipy.ndimage``, order 3, periodic like the k-space data) of a
    low-resolution array onto ``shape``, in-plane ``axes`` only: high-resolution voxel i sits at
    low-resolution coordinate i * n / N (voxel 0 in place, same field of view: the ``low_res`` grid)."""
    from scipy import ndimage

    a0, a1 = (int(a) for a in axes)
    x = np.moveaxis(np.asarray(low, dtype=np.float64), (a0, a1), (0, 1))
    n0, n1 = x.shape[:2]
    big0, big1 = int(shape[a0]), int(shape[a1])
    grid = np.meshgrid(np.arange(big0) * (n0 / big0), np.arange(big1) * (n1 / big1), indexing="ij")
    coords = np.stack(grid)
    rest = x.shape[2:]
    flat = x.reshape(n0, n1, -1)
    out = np.empty((big0, big1, flat.shape[2]), dtype=np.float64)
    for j in range(flat.shape[2]):
        out[:, :, j] = ndimage.map_coordinates(flat[:, :, j], coords, order=3, mode="grid-wrap")
    return np.moveaxis(out.reshape(big0, big1, *rest), (0, 1), (a0, a1))


class _TruncationAware(Method):
    """Finds the low-resolution input and the truncation it went through."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.params: dict[str, Any] | None = None
        self.source: str | None = None

    def _source(self, available: Sequence[str]) -> str:
        if self.options["source"] is not None:
            return check_source(str(self.options["source"]), list(available), self.card.name)
        if self.source is not None and self.source in available:
            return self.source
        return match_by_name(list(available), self.target) or available[0]

    def _resolve_params(self, cases: Sequence[Case], data: np.ndarray | None) -> dict[str, Any] | None:
        """Option ``factor``, else the cases' metadata, else the factor seen in ``data``'s spectrum."""
        from_meta = params_from_cases(cases, self.card.name)
        if self.options["factor"] is not None:
            axes = from_meta["axes"] if from_meta else (0, 1)
            convention = from_meta["convention"] if from_meta else "symmetric"
            return truncation_params(int(self.options["factor"]), axes, convention)
        if from_meta is not None:
            return from_meta
        if data is None:
            return None
        factor = estimate_factor(data)
        return None if factor is None else truncation_params(factor)

    def _params_for(self, data: np.ndarray) -> dict[str, Any] | None:
        if self.params is not None:
            return self.params
        return self._resolve_params([], data)


# ------------------------------------------------------------------------------------------ bicubic
class BicubicUpsampling(_TruncationAware):
    """The low-resolution samples interpolated back to the high-resolution grid by a cubic spline."""

    card = MethodCard(
        name="bicubic",
        version="1.0",
        summary=(
            "Super-resolution floor: takes the genuinely low-resolution samples of the k-space-truncated input "
            "(kspace_truncation with output='low_res' of the zero-filled input, which recovers them exactly) and "
            "interpolates them back onto the high-resolution grid in-plane with an interpolating cubic spline "
            "(scipy.ndimage.map_coordinates, order 3, periodic boundary; low-resolution voxel j at "
            "high-resolution position j * N / n, the operator's low_res geometry). The factor comes from the "
            "training cases' degradation metadata, the factor option, or the input's cut-off frequency. "
            "Scores below zero filling in PSNR on k-space-truncated data (zero filling is the projection onto "
            "the kept band); it is the interpolation baseline the literature quotes."
        ),
        needs_training=False,
        tasks=("ixi_sr_t2",),
    )
    defaults = {"source": None, "factor": None}

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        self.source = self._source(self.inputs)
        self.params = self._resolve_params(train[:1], None)

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        _, ref = self.stack_inputs(inputs)
        src = inputs[self._source(list(self.inputs or inputs))]
        data = np.asarray(src.data, dtype=np.float64)
        params = self._params_for(data)
        if params is None:
            log.warning("bicubic: the input %s shows no k-space truncation; returning it unchanged", src.modality)
            return self.output(np.array(data, dtype=np.float32), ref)
        from cmsbench.tasks.degradations import degradation

        # the zero-filled input is band-limited: truncating it again returns exactly its low-resolution samples
        call = degradation(TRUNCATION, {**params, "output": "low_res"})
        low = call.apply(Volume(data, src.affine), seed=0, case_id="bicubic").data
        return self.output(cubic_upsample(low, data.shape, params["axes"]), ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return {}, {"source": self.source, "params": self.params}

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.source = meta.get("source")
        self.params = dict(meta["params"]) if meta.get("params") else None


# ------------------------------------------------------------------------------------------- guided
GUIDED_TERMS = ("g_h", "a*g_h", "g_h*s", "g_h*g_l", "a*g_h*s", "g_h*s^2")


def guided_features(source: np.ndarray, guide: np.ndarray, params: Mapping[str, Any], radius: int,
                    eps: float) -> list[np.ndarray]:
    """The per-voxel features of :class:`GuidedSuperResolution`, in the order of :data:`GUIDED_TERMS`.

    ``s`` the zero-filled source, ``g_l`` the guide through the same truncation, ``g_h = guide - g_l`` its
    missing high frequencies, ``a`` the local linear coefficient of ``s`` on ``g_l`` (guided filter, He et
    al. 2013: cov(g_l, s) / (var(g_l) + eps) over an in-plane box of ``2 radius + 1`` voxels), which
    says how the guide's contrast maps onto the source's locally (T1 and T2 edges have opposite signs).
    """
    from scipy import ndimage

    s = np.asarray(source, dtype=np.float64)
    g = np.asarray(guide, dtype=np.float64)
    g_l = band_limit(g, params)
    g_h = g - g_l
    size = [1] * s.ndim
    for axis in params["axes"]:
        size[int(axis)] = 2 * int(radius) + 1

    def box(x: np.ndarray) -> np.ndarray:
        return ndimage.uniform_filter(x, size=size, mode="reflect")

    mg, ms = box(g_l), box(s)
    a = (box(g_l * s) - mg * ms) / (box(g_l * g_l) - mg * mg + float(eps))
    return [g_h, a * g_h, g_h * s, g_h * g_l, a * g_h * s, g_h * s * s]


class GuidedSuperResolution(_TruncationAware):
    """Zero-filled source + the guide's missing high frequencies, mapped by a regression fitted on train."""

    card = MethodCard(
        name="guided_sr",
        version="1.0",
        summary=(
            "Classical guided super-resolution (T1-guided for ixi_sr_t2): the zero-filled input s keeps its "
            "band; the missing high frequencies are predicted from the guide's own (g_h = guide minus the guide "
            "truncated like the input) as a linear combination of g_h, a g_h, g_h s, g_h g_l, a g_h s and "
            "g_h s^2, where a is the local guided-filter coefficient of s on the truncated guide g_l "
            "(in-plane box of 2 radius + 1 voxels, eps), least squares (float64) on a seeded subsample of "
            "foreground train voxels against the residual target - s; the prediction's out-of-band part only "
            "is added (data consistency: the kept band stays the input's). Factor from the training cases' "
            "degradation metadata or the factor option."
        ),
        paper="He K., Sun J., Tang X., Guided Image Filtering, IEEE TPAMI 35(6), 2013 (the local coefficient a)",
        differences_from_paper=(
            "The guided filter's local linear model is used only to derive a feature (the local source-on-guide "
            "coefficient, estimated from the low band that both images share); the output is a regression "
            "fitted on the train split, restricted to the frequencies the input lacks, not the filter output."
        ),
        needs_training=True,
        tasks=("ixi_sr_t2",),
    )
    defaults = {"source": None, "guide": None, "factor": None, "radius": 8, "eps": 0.01, "max_voxels": 400_000}

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.guide: str | None = None
        self.coef = np.zeros(len(GUIDED_TERMS))

    def _guide(self, available: Sequence[str], source: str) -> str:
        if self.options["guide"] is not None:
            return check_source(str(self.options["guide"]), list(available), self.card.name)
        if self.guide is not None and self.guide in available:
            return self.guide
        others = [m for m in available if m != source]
        if not others:
            raise MethodError(f"method {self.card.name!r} needs a guide input besides {source!r}")
        return others[0]

    def _fit(self, train: Sequence[Case], val: Sequence[Case], ctx: FitContext) -> None:
        self.source = self._source(self.inputs)
        self.guide = self._guide(self.inputs, self.source)
        first = np.asarray(train[0].inputs[self.source].data)
        self.params = self._resolve_params(train[:1], first)
        self.coef = np.zeros(len(GUIDED_TERMS))
        if self.params is None:
            log.warning("guided_sr: the training inputs show no k-space truncation; the method copies %s", self.source)
            return
        rng = np.random.default_rng(ctx.seed)
        quota = max(1, int(self.options["max_voxels"]) // len(train))
        xs, ys = [], []
        for case in train:
            s = np.asarray(case.inputs[self.source].data, dtype=np.float64)
            g = np.asarray(case.inputs[self.guide].data, dtype=np.float64)
            fg = foreground(np.stack([s, g]))
            idx = np.flatnonzero(fg)
            if idx.size > quota:
                idx = np.sort(rng.choice(idx, size=quota, replace=False))
            feats = guided_features(s, g, self.params, int(self.options["radius"]), float(self.options["eps"]))
            xs.append(np.stack([f.reshape(-1)[idx] for f in feats], axis=1))
            assert case.target is not None
            ys.append((np.asarray(case.target.data, dtype=np.float64) - s).reshape(-1)[idx])
        x, y = np.concatenate(xs), np.concatenate(ys)
        if x.shape[0] < len(GUIDED_TERMS):
            raise MethodError(f"method {self.card.name!r}: {x.shape[0]} foreground training voxels cannot "
                              f"determine {len(GUIDED_TERMS)} coefficients")
        self.coef, *_ = np.linalg.lstsq(x, y, rcond=None)

    def predict(self, inputs: Mapping[str, Volume]) -> Volume:
        self.require_fitted()
        _, ref = self.stack_inputs(inputs)
        available = list(self.inputs or inputs)
        source = self._source(available)
        s = np.asarray(inputs[source].data, dtype=np.float64)
        if self.params is None or not np.any(self.coef):
            return self.output(np.array(s, dtype=np.float32), ref)
        g = np.asarray(inputs[self._guide(available, source)].data, dtype=np.float64)
        feats = guided_features(s, g, self.params, int(self.options["radius"]), float(self.options["eps"]))
        residual = np.zeros_like(s)
        for c, f in zip(self.coef, feats, strict=True):
            residual += c * f
        residual[~foreground(np.stack([s, g]))] = 0.0
        residual -= band_limit(residual, self.params)  # only what the input lacks
        return self.output(s + residual, ref)

    def get_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        return ({"coef": self.coef},
                {"source": self.source, "guide": self.guide, "params": self.params, "terms": list(GUIDED_TERMS)})

    def set_state(self, arrays: Mapping[str, np.ndarray], meta: Mapping[str, Any]) -> None:
        self.coef = np.asarray(arrays["coef"], dtype=np.float64)
        self.source = meta.get("source")
        self.guide = meta.get("guide")
        self.params = dict(meta["params"]) if meta.get("params") else None

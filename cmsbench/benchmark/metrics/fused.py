"""One fused pass over a case: the SSIM map (computed once) and every region's sums.

For each region the pass accumulates the voxel count, ``sum |t - p|``, ``sum (t - p)^2``, ``sum t^2``,
``sum (clip(t) - clip(p))^2`` (when a window is given), ``sum ssim`` and the number of voxels where
the map is defined (``border="valid"`` excludes the border). Every metric of
:mod:`cmsbench.benchmark.metrics.pixel` follows from these sums, so all regions cost one pass.

Two engines compute the same sums. On CPU, when numba is importable, the default is the fused numba
kernel of :mod:`~cmsbench.benchmark.metrics.ssim_numba` (SSIM map and region sums in one tiled pass;
float64 pixel sums); ``CMSBENCH_SSIM_ENGINE=torch`` selects the torch engine below, which is also the
fallback (numba missing) and the GPU path (see :func:`select_engine`).

Torch engine: the volume is processed in slabs of planes, in parallel worker threads (see
:func:`~cmsbench.benchmark.metrics.ssim.run_slabs`). Per slab the values are float32 and are reduced
against the stacked masks by one batched matrix product over chunks of :data:`CHUNK` voxels; the
chunk partial sums are added in float64. Measured agreement with float64 numpy sums: ~1e-7 relative
(the float32 difference ``p - t`` dominates).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from cmsbench.benchmark.metrics.ssim import (
    GAUSSIAN,
    SSIMConfig,
    SSIMSlabs,
    default_workers,
    from_numpy_readonly,
    run_slabs,
    valid_box,
)
from cmsbench.benchmark.metrics.ssim_numba import region_sums_numba, select_engine
from cmsbench.errors import MetricError

#: channel order of :attr:`RegionSums.sums`
CHANNELS = ("n", "abs", "sq", "t2", "sq_clip", "ssim", "ssim_n")
CHUNK = 4096


@dataclass
class RegionSums:
    """Per-region float64 sums (see :data:`CHANNELS`) and, optionally, the SSIM map."""

    names: list[str]
    sums: np.ndarray  # (len(CHANNELS), n_regions)
    ssim_map: np.ndarray | None = None
    extra: dict = field(default_factory=dict)

    def get(self, region: str, channel: str) -> float:
        return float(self.sums[CHANNELS.index(channel), self.names.index(region)])

    def mae(self, region: str) -> float:
        n = self.get(region, "n")
        return self.get(region, "abs") / n if n else float("nan")

    def mse(self, region: str, clipped: bool = False) -> float:
        n = self.get(region, "n")
        return self.get(region, "sq_clip" if clipped else "sq") / n if n else float("nan")

    def nmse(self, region: str) -> float:
        den = self.get(region, "t2")
        return self.get(region, "sq") / den if den > 0 else float("nan")

    def ssim(self, region: str) -> float:
        n = self.get(region, "ssim_n")
        return self.get(region, "ssim") / n if n else float("nan")


def region_sums(
    target: np.ndarray,
    prediction: np.ndarray,
    masks: dict[str, np.ndarray | None],
    *,
    ssim_range: float | None = None,
    ssim_config: SSIMConfig = GAUSSIAN,
    window: tuple[float, float] | None = None,
    keep_map: bool = False,
    device: str = "cpu",
    workers: int | None = None,
) -> RegionSums:
    """Accumulate the sums of :data:`CHANNELS` for every mask (``None`` mask = every voxel).

    ``ssim_range``: the SSIM data range (None: no SSIM). ``window``: ``(low, high)``; when given, both
    images are clipped to it for the SSIM map and for ``sq_clip`` (PSNR); the other sums use the raw
    images. ``device``: where the SSIM map is computed (the sums run on the CPU).
    """
    if target.shape != prediction.shape:
        raise MetricError(f"target {target.shape} and prediction {prediction.shape} differ in shape")
    if target.ndim != 3:
        raise MetricError(f"expected 3D volumes, got shape {target.shape}")
    names = list(masks)
    shape = tuple(int(s) for s in target.shape)
    D, H, W = shape
    t_np = np.ascontiguousarray(target, dtype=np.float32)
    p_np = np.ascontiguousarray(prediction, dtype=np.float32)
    if select_engine(device) == "numba":

        mask_list = []
        for name in names:
            m = masks[name]
            if m is not None:
                m = np.asarray(m)
                if m.shape != shape:
                    raise MetricError(f"mask {name!r} has shape {m.shape}, the images {shape}")
                m = np.ascontiguousarray(m, dtype=bool)
            mask_list.append(m)
        sums, full_map = region_sums_numba(
            t_np,
            p_np,
            mask_list,
            ssim_range=ssim_range,
            config=ssim_config,
            window=window,
            keep_map=keep_map,
            workers=workers if workers is not None else default_workers("cpu"),
        )
        return RegionSums(names=names, sums=sums, ssim_map=full_map, extra={"engine": "numba"})
    import torch

    T, Pr = from_numpy_readonly(t_np), from_numpy_readonly(p_np)
    mask_t: list = []
    counts = np.zeros(len(names))
    for j, name in enumerate(names):
        m = masks[name]
        if m is None:
            mask_t.append(None)
            counts[j] = t_np.size
            continue
        m = np.asarray(m)
        if m.shape != shape:
            raise MetricError(f"mask {name!r} has shape {m.shape}, the images {shape}")
        m = np.ascontiguousarray(m, dtype=bool)
        counts[j] = np.count_nonzero(m)
        mask_t.append(from_numpy_readonly(m))

    eng = None
    if ssim_range is not None:
        if window is not None:
            lo, hi = float(window[0]), float(window[1])
            sx, sy = np.clip(t_np, lo, hi), np.clip(p_np, lo, hi)
        else:
            sx, sy = t_np, p_np
        eng = SSIMSlabs(sx, sy, ssim_range, ssim_config, device=device)
        slabs = eng.slabs()
    else:
        step = max(1, int(round(1.4e6 / (H * W))))
        slabs = [(p0, min(step, D - p0)) for p0 in range(0, D, step)]
    P = max(p for _, p in slabs)
    interior = None
    if eng is not None and ssim_config.border == "valid":
        interior = torch.zeros(shape, dtype=torch.bool)
        interior[valid_box(shape, ssim_config)] = True
    full_map = np.empty(shape, dtype=np.float32) if keep_map and eng is not None else None

    rows = ["abs", "sq", "t2"] + (["sq_clip"] if window is not None else []) + (["ssim"] if eng is not None else [])
    rows += ["ssim_n"] if interior is not None else []
    K, R = len(rows), len(names)
    nmax = -(-P * H * W // CHUNK) * CHUNK

    def make_state() -> dict:
        st = {"V": torch.empty(K, nmax), "M": torch.empty(R, nmax), "tmp": torch.empty(P * H * W)}
        if eng is not None:
            st["ssim"] = eng.buffers()
        return st

    def work(i: int, st: dict) -> np.ndarray:
        p0, p = slabs[i]
        n = p * H * W
        nb = -(-n // CHUNK) * CHUNK
        V, M = st["V"][:, :nb], st["M"][:, :nb]
        if nb > n:
            V[:, n:].zero_()
            M[:, n:].zero_()
        t = T[p0 : p0 + p].reshape(-1)
        pr = Pr[p0 : p0 + p].reshape(-1)
        v = {name: V[k, :n] for k, name in enumerate(rows)}
        torch.sub(pr, t, out=v["abs"])
        torch.mul(v["abs"], v["abs"], out=v["sq"])
        v["abs"].abs_()
        torch.mul(t, t, out=v["t2"])
        if window is not None:
            tmp = st["tmp"][:n]
            torch.clamp(t, window[0], window[1], out=tmp)
            torch.clamp(pr, window[0], window[1], out=v["sq_clip"])
            v["sq_clip"].sub_(tmp)
            v["sq_clip"].mul_(v["sq_clip"])
        if eng is not None:
            smap = eng.compute(p0, p, st["ssim"])
            if full_map is not None:
                full_map[p0 : p0 + p] = smap.cpu().numpy()
            v["ssim"].copy_(smap.reshape(-1))
            if interior is not None:
                v["ssim_n"].copy_(interior[p0 : p0 + p].reshape(-1))
                v["ssim"].mul_(v["ssim_n"])
        for j, m in enumerate(mask_t):
            if m is None:
                M[j, :n].fill_(1.0)
            else:
                M[j, :n].copy_(m[p0 : p0 + p].reshape(-1))
        c = nb // CHUNK
        part = torch.bmm(V.view(K, c, CHUNK).transpose(0, 1), M.view(R, c, CHUNK).permute(1, 2, 0))
        return part.sum(0, dtype=torch.float64).numpy()

    nw = workers if workers is not None else default_workers("cpu")
    parts = run_slabs(len(slabs), work, make_state, nw, single_threaded_ops=not str(device).startswith("cuda"))
    acc = np.sum(parts, axis=0) if parts else np.zeros((K, R))
    sums = np.zeros((len(CHANNELS), R))
    sums[CHANNELS.index("n")] = counts
    for k, name in enumerate(rows):
        sums[CHANNELS.index(name)] = acc[k]
    if window is None:
        sums[CHANNELS.index("sq_clip")] = sums[CHANNELS.index("sq")]
    if eng is not None and interior is None:
        sums[CHANNELS.index("ssim_n")] = counts
    if full_map is not None and interior is not None:
        full_map[~interior.numpy()] = np.nan
    return RegionSums(names=names, sums=sums, ssim_map=full_map, extra={"engine": "torch"})


"""A fused CPU engine (numba) for the SSIM map and the per-region sums of :mod:`.fused`.

One compiled kernel computes, for a tile of the volume, the SSIM value of every voxel and adds the
region sums of :data:`cmsbench.benchmark.metrics.fused.CHANNELS` (``n, abs, sq, t2, sq_clip, ssim,
ssim_n``) into float64 accumulators, in a single pass over the images:

- a work item is a tile of ``th`` rows (axis 1) x all columns (axis 2) x a block of planes (axis 0);
- the kernel streams the input planes of the block (plus the window halo, border-completed through
  index maps): per plane and per row it forms the four moment channels ``x, y, x^2 + y^2, xy``
  (centred on a common value, float32) on a border-padded row and filters them along axis 2, then
  filters the tile along axis 1 into a ring buffer of ``2r + 1`` planes (a few hundred KB: stays in
  L2); once the ring holds the window of an output plane it filters along axis 0 (symmetric window:
  one multiply per tap pair), evaluates the SSIM formula row by row, optionally writes the map, and
  accumulates the row's values for every region (mask rows multiplied in, like the torch engine);
- accumulators are per column (element-wise float64 adds, which vectorise without reassociation,
  hence ``fastmath=False`` keeps IEEE semantics) and are reduced once per item.

Pixel values (``|p - t|`` etc.) are formed in float64 from the float32 inputs, so the pixel sums are
float64-exact up to summation order. The SSIM arithmetic is float32 after centring, like
:class:`~cmsbench.benchmark.metrics.ssim.SSIMSlabs` (~1e-8 relative on means).

Items are independent; :func:`region_sums_numba` runs them on Python threads (the kernel releases the
GIL), handed out dynamically, which keeps the run robust when other processes share the cores (a
static split would wait for the slowest core). Every convention of :class:`SSIMConfig` is covered
(Gaussian / uniform window, sample covariance, 2D per slice, every border mode, ``valid``) on CPU.

The kernel compiles once per process for all shapes (float32 images, bool masks) and ``cache=True``
keeps the machine code on disk, so later processes load it in well under a second.
"""

from __future__ import annotations

import itertools
import os
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np

from cmsbench.benchmark.metrics._filters import border_index
from cmsbench.errors import MetricError

try:  # numba is optional: the torch engine is the fallback
    import numba as _nb

    HAVE_NUMBA = True
except Exception:  # pragma: no cover - exercised only without numba
    _nb = None
    HAVE_NUMBA = False

#: masks per kernel call (more regions are processed in groups of this many)
MAXR = 8
#: ring buffer budget per item (bytes); the axis-1 tile height follows from it
RING_BYTES = 640_000
# accumulator channels, the order of fused.CHANNELS
_N, _ABS, _SQ, _T2, _SQC, _SSIM, _SSIMN = range(7)


def available() -> bool:
    return HAVE_NUMBA


def _njit(**kw):
    def deco(fn):
        if not HAVE_NUMBA:
            return fn
        return _nb.njit(nogil=True, cache=True, fastmath=False, error_model="numpy", boundscheck=False, **kw)(fn)

    return deco


@_njit()
def _fir11(src, o, dst, w, n):
    """The 11-tap case of :func:`_conv`, fully unrolled: every tap from registers, one store.

    Indices are unsigned (numba then emits no negative-index test, which would block vectorisation).
    """
    o0, o1, o2, o3, o4, o5 = o[0], o[1], o[2], o[3], o[4], o[5]
    o6, o7, o8, o9, o10 = o[6], o[7], o[8], o[9], o[10]
    w0, w1, w2, w3, w4, w5 = w[0], w[1], w[2], w[3], w[4], w[5]
    for i in range(np.uint64(n)):
        dst[i] = (
            w5 * src[i + o5]
            + w0 * (src[i + o0] + src[i + o10])
            + w1 * (src[i + o1] + src[i + o9])
            + w2 * (src[i + o2] + src[i + o8])
            + w3 * (src[i + o3] + src[i + o7])
            + w4 * (src[i + o4] + src[i + o6])
        )


@_njit()
def _conv(src, o, dst, w, r, n):
    """``dst[i] = sum_k w[k] src[o[k] + i]`` for ``i < n`` (symmetric ``w`` of ``2r + 1`` taps; ``o``:
    uint64 offsets of the taps in the flat ``src``)."""
    if r == 5:
        _fir11(src, o, dst, w, n)
        return
    # any other window: one pass per tap pair over contiguous views
    wr = w[r]
    s0 = src[o[r] : o[r] + n]
    for i in range(n):
        dst[i] = wr * s0[i]
    for k in range(r):
        wk = w[k]
        a = src[o[k] : o[k] + n]
        b = src[o[2 * r - k] : o[2 * r - k] + n]
        for i in range(n):
            dst[i] += wk * (a[i] + b[i])


@_njit()
def _acc_all(aj, vals, chs, n):
    """``aj[ch, i % L] += vals[ch, i]`` for the channels ``chs`` (element-wise float64 adds: they
    vectorise without reassociation)."""
    L = aj.shape[1]
    for f0 in range(0, n, L):
        m_len = min(L, n - f0)
        for ch in chs:
            a = aj[ch]
            v = vals[ch, f0 : f0 + m_len]
            for i in range(m_len):
                a[i] += v[i]


@_njit()
def _acc_mask(aj, vals, chs, m, n):
    """Like :func:`_acc_all` over the voxels where ``m`` (uint8) is set; returns their number.

    Chunks of ``L`` voxels: a chunk outside the mask is skipped, one inside it takes the plain adds
    (masks are spatially compact, so most chunks are one or the other).
    """
    L = aj.shape[1]
    total = 0
    for f0 in range(0, n, L):
        m_len = min(L, n - f0)
        mm = m[f0 : f0 + m_len]
        cnt = 0
        for i in range(m_len):
            cnt += mm[i]
        if cnt == 0:
            continue
        total += cnt
        if cnt == m_len:
            for ch in chs:
                a = aj[ch]
                v = vals[ch, f0 : f0 + m_len]
                for i in range(m_len):
                    a[i] += v[i]
        else:
            for ch in chs:
                a = aj[ch]
                v = vals[ch, f0 : f0 + m_len]
                for i in range(m_len):
                    a[i] += v[i] if mm[i] != 0 else 0.0
    return total


@_njit()
def _item(
    t,
    p,
    masks,
    nreg,
    is_all,
    w,
    ww,
    zidx,
    hidx,
    cidx,
    centre,
    c1,
    c2,
    cov_norm,
    lo,
    hi,
    clip,
    do_ssim,
    valid,
    z0,
    z1,
    h0,
    h1,
    want_map,
    out_map,
    acc_out,
):
    """Planes ``z0:z1`` x rows ``h0:h1`` (all columns): add the region sums to ``acc_out`` (7, nreg).

    Arrays are 3D ``(D, H, W)`` C-contiguous; ``masks``: a tuple of bool arrays (``is_all[j]``: mask
    ``j`` is every voxel and is not read). ``w``: taps along axes 0 and 1 (radius ``r``); ``ww``: taps
    along axis 2 (radius ``rw``; one tap of weight 1 for 2D SSIM). ``zidx`` / ``hidx`` / ``cidx``:
    source index of the padded positions ``-r .. n + r`` of each axis (the border mode). ``valid``:
    ssim / ssim_n only count voxels at least the radius from the borders of the filtered axes (the
    map is NaN there).
    """
    D, H, W = t.shape
    HW = H * W
    t2 = t.reshape(D, HW)
    p2 = p.reshape(D, HW)
    r = (w.shape[0] - 1) // 2
    rw = (ww.shape[0] - 1) // 2
    K = 2 * r + 1
    th = h1 - h0
    n = th * W  # voxels of one plane of the tile (contiguous in the volume)
    f32 = np.float32
    lo32 = f32(lo)
    hi32 = f32(hi)
    L = 256
    acc = np.zeros((nreg, 7, L))
    vals = np.zeros((7, n))
    # the channels to accumulate (sq_clip only with a window, ssim_n only for valid)
    nch = 3 + (1 if clip else 0) + (1 if do_ssim else 0) + (1 if (do_ssim and valid) else 0)
    chs = np.empty(nch, dtype=np.int64)
    chs[0] = _ABS
    chs[1] = _SQ
    chs[2] = _T2
    k = 3
    if clip:
        chs[k] = _SQC
        k += 1
    if do_ssim:
        chs[k] = _SSIM
        k += 1
        if valid:
            chs[k] = _SSIMN
    sc = np.zeros(n, dtype=np.float32)  # the tile's SSIM (0 where not counted)
    ok = np.ones(n)  # interior weight of the current plane (valid)
    if do_ssim:
        w32 = w.astype(np.float32)
        ww32 = ww.astype(np.float32)
        cf = f32(centre)
        c1f = f32(c1)
        c2f = f32(c2)
        cn = f32(cov_norm)
        two = f32(2.0)
        Wp = W + 2 * rw
        nq = (th + 2 * r) * Wp
        nf = th * Wp
        # rows of stride Wp: the column filter runs over the flat buffer, outputs at columns >= W
        # mix neighbouring rows and are never read
        q = np.zeros((4, nq), dtype=np.float32)
        wb = np.zeros((4, nq), dtype=np.float32)
        ring_flat = np.zeros(K * 4 * nf, dtype=np.float32)  # (K, 4, nf): 2r + 1 planes of the tile
        ow = np.empty(2 * rw + 1, dtype=np.uint64)  # tap offsets along axis 2 / axis 1 / axis 0
        oh = np.empty(K, dtype=np.uint64)
        od = np.empty(K, dtype=np.uint64)
        for k in range(2 * rw + 1):
            ow[k] = np.uint64(k)
        for k in range(K):
            oh[k] = np.uint64(k * Wp)
        mrow = np.zeros((4, nf), dtype=np.float32)
        srow = np.zeros(nf, dtype=np.float32)
        zstart = z0 - r
        zstop = z1 + r
        if valid:
            # columns and rows of the tile inside the valid box (planes are tested per plane)
            for h in range(th):
                hrow = h0 + h
                for i in range(W):
                    good = hrow >= r and hrow < H - r and i >= rw and i < W - rw
                    ok[h * W + i] = 1.0 if good else 0.0
    else:
        zstart = z0
        zstop = z1
    for zi in range(zstart, zstop):
        if do_ssim:
            zs = zidx[zi + r]
            slot = (zi - zstart) % K
            # ---- moment channels on border-padded rows, then axis 2 and axis 1
            for hh in range(th + 2 * r):
                hs = hidx[h0 + hh]
                trow = t[zs, hs]
                prow = p[zs, hs]
                o = hh * Wp
                qx = q[0, o + rw : o + rw + W]
                qy = q[1, o + rw : o + rw + W]
                for j in range(W):
                    a = trow[j]
                    b = prow[j]
                    if clip:
                        a = lo32 if a < lo32 else (hi32 if a > hi32 else a)
                        b = lo32 if b < lo32 else (hi32 if b > hi32 else b)
                    qx[j] = a - cf
                    qy[j] = b - cf
                for j in range(rw):
                    q[0, o + j] = q[0, o + rw + cidx[j]]
                    q[1, o + j] = q[1, o + rw + cidx[j]]
                    q[0, o + W + rw + j] = q[0, o + rw + cidx[W + rw + j]]
                    q[1, o + W + rw + j] = q[1, o + rw + cidx[W + rw + j]]
            q0 = q[0]
            q1 = q[1]
            q2 = q[2]
            q3 = q[3]
            for j in range(nq):
                a = q0[j]
                b = q1[j]
                q2[j] = a * a + b * b
                q3[j] = a * b
            for c in range(4):
                _conv(q[c], ow, wb[c], ww32, rw, nq - 2 * rw)
                _conv(wb[c], oh, ring_flat[(slot * 4 + c) * nf : (slot * 4 + c + 1) * nf], w32, r, nf)
            if zi < z0 + r:
                continue
            zo = zi - r
            # ---- axis 0 from the ring, then the SSIM formula
            for c in range(4):
                for k in range(K):
                    od[k] = np.uint64((((zo - z0 + k) % K) * 4 + c) * nf)
                _conv(ring_flat, od, mrow[c], w32, r, nf)
            m0 = mrow[0]
            m1 = mrow[1]
            m2 = mrow[2]
            m3 = mrow[3]
            for i in range(nf):
                mx = m0[i]
                my = m1[i]
                vsum = (m2[i] - (mx * mx + my * my)) * cn
                cov = (m3[i] - mx * my) * cn
                ux = mx + cf
                uy = my + cf
                num = (two * ux * uy + c1f) * (two * cov + c2f)
                den = (ux * ux + uy * uy + c1f) * (vsum + c2f)
                srow[i] = num / den
            for h in range(th):
                sc[h * W : (h + 1) * W] = srow[h * Wp : h * Wp + W]
            if want_map:
                orow = out_map.reshape(D, HW)[zo, h0 * W : h1 * W]
                if valid:
                    zin = zo >= r and zo < D - r
                    for i in range(n):
                        orow[i] = sc[i] if (zin and ok[i] > 0.0) else np.nan
                else:
                    for i in range(n):
                        orow[i] = sc[i]
        else:
            zo = zi
        # ---- the tile plane's values (float64), then every region
        tt = t2[zo, h0 * W : h1 * W]
        pp = p2[zo, h0 * W : h1 * W]
        v_abs = vals[_ABS]
        v_sq = vals[_SQ]
        v_t2 = vals[_T2]
        v_sqc = vals[_SQC]
        v_ss = vals[_SSIM]
        v_sn = vals[_SSIMN]
        for i in range(n):
            a = np.float64(tt[i])
            b = np.float64(pp[i])
            d = b - a
            v_abs[i] = abs(d)
            v_sq[i] = d * d
            v_t2[i] = a * a
        if clip:
            for i in range(n):
                a32 = tt[i]
                b32 = pp[i]
                a32 = lo32 if a32 < lo32 else (hi32 if a32 > hi32 else a32)
                b32 = lo32 if b32 < lo32 else (hi32 if b32 > hi32 else b32)
                dc = np.float64(b32) - np.float64(a32)
                v_sqc[i] = dc * dc
        if do_ssim:
            if valid:
                zin = 1.0 if (zo >= r and zo < D - r) else 0.0
                for i in range(n):
                    g = zin * ok[i]
                    v_sn[i] = g
                    v_ss[i] = np.float64(sc[i]) if g > 0.0 else 0.0
            else:
                for i in range(n):
                    v_ss[i] = np.float64(sc[i])
        for j in range(nreg):
            if is_all[j]:
                _acc_all(acc[j], vals, chs, n)
            else:
                cnt = _acc_mask(acc[j], vals, chs, masks[j].reshape(D, HW)[zo, h0 * W : h1 * W], n)
                acc_out[_N, j] += float(cnt)
    for j in range(nreg):
        for ch in range(1, 7):
            s = 0.0
            for i in range(L):
                s += acc[j, ch, i]
            acc_out[ch, j] += s
        if is_all[j]:
            acc_out[_N, j] += float((z1 - z0) * n)


def _tiles(shape: tuple[int, int, int], r: int, workers: int, do_ssim: bool) -> list[tuple[int, int, int, int]]:
    """Work items ``(z0, z1, h0, h1)``: row tiles sized so the ring buffer stays in L2, split along
    axis 0 when there are too few tiles to keep the workers busy."""
    D, H, W = shape
    K = 2 * r + 1 if do_ssim else 1
    th = int(max(4, min(H, RING_BYTES // (K * 16 * max(W, 1)))))
    nh = -(-H // th)
    th = -(-H // nh)
    want = 4 * max(1, workers)
    nz = 1
    if nh < want and workers > 1:
        nz = int(max(1, min(-(-want // nh), D // max(1, 4 * r + 4))))
    zb = -(-D // nz)
    return [(z0, min(D, z0 + zb), h0, min(H, h0 + th)) for z0 in range(0, D, zb) for h0 in range(0, H, th)]


def select_engine(device: str = "cpu") -> str:
    """The SSIM engine for ``device``: ``"numba"`` (this module) on CPU when numba is importable, else
    ``"torch"`` (:class:`~cmsbench.benchmark.metrics.ssim.SSIMSlabs`; always on GPU). The environment
    variable ``CMSBENCH_SSIM_ENGINE=torch|numba`` overrides the CPU choice (``numba`` without numba
    installed falls back to torch)."""
    if str(device).split(":")[0] != "cpu":
        return "torch"
    want = os.environ.get("CMSBENCH_SSIM_ENGINE", "numba").strip().lower() or "numba"
    if want not in ("numba", "torch"):
        raise MetricError(f"CMSBENCH_SSIM_ENGINE must be 'numba' or 'torch', got {want!r}")
    return "numba" if want == "numba" and HAVE_NUMBA else "torch"


def region_sums_numba(
    t_np: np.ndarray,
    p_np: np.ndarray,
    mask_list: list[np.ndarray | None],
    *,
    ssim_range: float | None,
    config,
    window: tuple[float, float] | None,
    keep_map: bool,
    workers: int,
) -> tuple[np.ndarray, np.ndarray | None]:
    """The sums ``(7, n_regions)`` in :data:`fused.CHANNELS` order and the map (``keep_map``).

    ``t_np`` / ``p_np``: C-contiguous float32 3D; masks: C-contiguous bool of the same shape or None.
    """
    if not HAVE_NUMBA:  # pragma: no cover
        raise RuntimeError("numba is not installed")
    D, H, W = (int(s) for s in t_np.shape)
    R = len(mask_list)
    do_ssim = ssim_range is not None
    if do_ssim:
        from cmsbench.benchmark.metrics.ssim import _check_pair

        _check_pair(t_np, p_np, config)
        if not np.isfinite(ssim_range) or ssim_range <= 0:
            raise MetricError(f"SSIM needs an explicit positive data_range, got {ssim_range!r}")
    lo, hi = (float(window[0]), float(window[1])) if window is not None else (0.0, 0.0)
    clip = window is not None
    if do_ssim:
        w = np.ascontiguousarray(config.taps(), dtype=np.float64)
        r = (len(w) - 1) // 2
        ww = w if config.spatial_dims == 3 else np.ones(1)
        rw = (len(ww) - 1) // 2
        mode = "reflect" if config.border == "valid" else config.border
        zidx = border_index(-r, D + r, D, mode).astype(np.int64)
        hidx = border_index(-r, H + r, H, mode).astype(np.int64)
        cidx = border_index(-rw, W + rw, W, mode).astype(np.int64)
        sub = t_np[:: max(1, D // 16), :: max(1, H // 16), :: max(1, W // 16)]
        if clip:
            sub = np.clip(sub, np.float32(lo), np.float32(hi))
        centre = float(np.mean(sub, dtype=np.float64))
        L = float(ssim_range)
        c1, c2 = (config.k1 * L) ** 2, (config.k2 * L) ** 2
        if config.sample_covariance:
            n = len(w) ** config.spatial_dims
            cov_norm = n / (n - 1.0)
        else:
            cov_norm = 1.0
        valid = config.border == "valid"
    else:
        w, ww, r = np.ones(1), np.ones(1), 0
        zidx = hidx = cidx = np.zeros(1, dtype=np.int64)
        centre = c1 = c2 = 0.0
        cov_norm = 1.0
        valid = False
    full_map = np.empty((D, H, W), dtype=np.float32) if (keep_map and do_ssim) else np.empty((1, 1, 1), np.float32)
    items = _tiles((D, H, W), r, workers, do_ssim)
    dummy = np.zeros((1, 1, 1), dtype=np.uint8)
    sums = np.zeros((7, R))
    groups = [list(range(g, min(R, g + MAXR))) for g in range(0, R, MAXR)] or [[]]
    for gi, group in enumerate(groups):
        # the map only once; later groups recompute SSIM (only with more than MAXR regions)
        wm = bool(keep_map and do_ssim and gi == 0)
        # one array type for every mask (numba types a tuple by its members: read-only memory-mapped masks
        # and writable derived ones would make a heterogeneous tuple it cannot index)
        ms = tuple(dummy if mask_list[j] is None else np.require(mask_list[j].view(np.uint8), requirements=("C", "W"))
                   for j in group)
        ms = ms + (dummy,) * (MAXR - len(ms))
        is_all = np.array([mask_list[j] is None for j in group] + [False] * (MAXR - len(group)))
        nreg = len(group)
        parts = np.zeros((len(items), 7, max(nreg, 1)))

        active = _active_items(items, [mask_list[j] for j in group])
        if wm and not all(active):  # the map is only defined where some region is; NaN elsewhere
            for i, (z0, z1, h0, h1) in enumerate(items):
                if not active[i]:
                    full_map[z0:z1, h0:h1, :] = np.nan

        def run(i: int, ms=ms, is_all=is_all, nreg=nreg, parts=parts, wm=wm, active=active) -> None:
            if not active[i]:  # no voxel of any region in the tile: every sum is 0 there
                return
            z0, z1, h0, h1 = items[i]
            _item(
                t_np, p_np, ms, nreg, is_all, w, ww, zidx, hidx, cidx, centre, c1, c2, cov_norm, lo, hi, clip,
                do_ssim, valid, z0, z1, h0, h1, wm, full_map, parts[i],
            )  # fmt: skip

        _run_items(len(items), run, workers)
        for k, j in enumerate(group):
            sums[:, j] = parts[:, :, k].sum(axis=0)
    if not clip:
        sums[_SQC] = sums[_SQ]
    if do_ssim and not valid:
        sums[_SSIMN] = sums[_N]
    return sums, (full_map if keep_map and do_ssim else None)


def _active_items(items: list[tuple[int, int, int, int]], masks: list[np.ndarray | None]) -> list[bool]:
    """Which tiles hold a voxel of some region (all of them when a region is the whole grid). Skipping the
    others changes no sum: their contribution is exactly 0."""
    if not masks or any(m is None for m in masks):
        return [True] * len(items)
    return [any(bool(m[z0:z1, h0:h1].any()) for m in masks) for z0, z1, h0, h1 in items]


_pools: dict[int, ThreadPoolExecutor] = {}
_pools_lock = threading.Lock()


def _pool(workers: int) -> ThreadPoolExecutor:
    """The process's kernel thread pool of ``workers`` threads, started once: a case's SSIM runs in tens of
    milliseconds, which a pool started per call (two thread starts and joins) measurably lengthened."""
    with _pools_lock:
        pool = _pools.get(workers)
        if pool is None:
            pool = _pools[workers] = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="cmsbench-ssim")
        return pool


def _run_items(n: int, fn, workers: int) -> None:
    """``fn(i)`` for ``i < n`` on ``workers`` threads, items handed out dynamically.

    The calling thread takes items too, so a call made from inside a pool thread cannot wait on itself.
    """
    if workers <= 1 or n <= 1:
        for i in range(n):
            fn(i)
        return
    counter = itertools.count()

    def drain() -> None:
        while (i := next(counter)) < n:
            fn(i)

    helpers = [_pool(workers - 1).submit(drain) for _ in range(min(workers, n) - 1)]
    try:
        drain()
    finally:
        for future in helpers:
            if not future.cancel():  # a helper that has not started has nothing left to do
                future.result()


def warmup() -> float:
    """Compile (or load from the on-disk cache) the kernel on a tiny case; returns the seconds it took."""
    import time

    from cmsbench.benchmark.metrics.ssim import GAUSSIAN

    t0 = time.perf_counter()
    a = np.zeros((3, 4, 5), np.float32)
    region_sums_numba(a, a, [None, np.ones(a.shape, bool)], ssim_range=1.0, config=GAUSSIAN, window=(0.0, 1.0),
                      keep_map=True, workers=1)  # fmt: skip
    return time.perf_counter() - t0

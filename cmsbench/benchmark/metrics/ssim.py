"""SSIM (Wang et al. 2004) as a dense map, on CPU or GPU, with explicit conventions.

Conventions (all explicit in :class:`SSIMConfig`, nothing is inferred from the images):

- ``window``: ``"gaussian"`` (sigma 1.5, radius ``int(3.5 * sigma + 0.5)`` = 5, i.e. 11 taps; the
  Wang et al. / torchmetrics window, scikit-image's ``gaussian_weights=True``) or ``"uniform"`` (box of
  ``size`` taps, scikit-image's default 7).
- ``sample_covariance``: scikit-image's default for the uniform window multiplies (co)variances by
  ``N / (N - 1)`` (N = window voxels); the Gaussian default does not.
- ``spatial_dims``: 3 (a 3D window) or 2 (2D SSIM of each slice along the **last** array axis; the
  window never crosses slices).
- ``border``: how the map is completed near the grid border. cmsbench's default is ``"reflect"``
  (scipy half-sample mirror, ``d c b a | a b c d``): the map covers every voxel, so the mean over any
  mask uses all its voxels. ``"mirror"`` (whole-sample, what torchmetrics pads with) and ``"nearest"``
  are available. ``"valid"`` is scikit-image's convention: the map is computed like ``reflect`` and
  the voxels closer than the window radius to the border are set to NaN and excluded from means
  (scikit-image crops them). 2D SSIM aggregated over a region is the mean of the per-slice maps over
  the region's voxels.
- ``data_range`` is mandatory: ``C1 = (k1 L)^2``, ``C2 = (k2 L)^2``.

Implementation: the four local moments the index needs (means of x, y, x^2 + y^2 and xy: the
variances only enter as the sum ``sigma_x^2 + sigma_y^2``) are filtered separably: along axis 0 as a
small banded matrix product, along the two other axes as shift-and-add of in-place tensor operations.
The volume is processed in slabs of a few planes (working set in cache), slabs in parallel worker
threads that each run torch single-threaded (no barrier per small op; robust on shared cores). Values
are float32 after subtracting a common centre ``c`` from both images (variances are shift invariant
and the means are shifted back exactly), which keeps the float32 cancellation in ``E[x^2] - E[x]^2``
small; means over masks accumulate in float64. Agreement with float64 scikit-image: ~1e-8 relative
on the mean (see tests). The same code runs on a CUDA device (one slab = the whole volume).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np

from cmsbench.benchmark.metrics._filters import BORDER_MODES, border_index, gaussian_window, uniform_window
from cmsbench.errors import MetricError

BorderMode = Literal["reflect", "mirror", "nearest", "valid"]


@dataclass(frozen=True)
class SSIMConfig:
    """One SSIM flavour. The default is Wang et al. 2004: Gaussian sigma 1.5 (11 taps), no sample
    covariance, K1 0.01, K2 0.03, 3D, reflect-completed map."""

    window: Literal["gaussian", "uniform"] = "gaussian"
    sigma: float = 1.5
    size: int = 7
    k1: float = 0.01
    k2: float = 0.03
    sample_covariance: bool = False
    spatial_dims: int = 3
    border: BorderMode = "reflect"

    def __post_init__(self) -> None:
        if self.window not in ("gaussian", "uniform"):
            raise MetricError(f"SSIM window must be 'gaussian' or 'uniform', got {self.window!r}")
        if self.spatial_dims not in (2, 3):
            raise MetricError(f"SSIM spatial_dims must be 2 or 3, got {self.spatial_dims}")
        if self.border not in (*BORDER_MODES, "valid"):
            raise MetricError(f"SSIM border must be one of {(*BORDER_MODES, 'valid')}, got {self.border!r}")
        self.taps()  # validates sigma / size

    def taps(self) -> np.ndarray:
        """The normalised 1D window."""
        return gaussian_window(self.sigma) if self.window == "gaussian" else uniform_window(self.size)

    @property
    def radius(self) -> int:
        return (len(self.taps()) - 1) // 2

    def describe(self) -> str:
        """A one-line human description."""
        n = len(self.taps())
        win = f"Gaussian sigma {self.sigma:g} ({n} taps)" if self.window == "gaussian" else f"uniform {n}"
        cov = "sample covariance" if self.sample_covariance else "no sample covariance"
        return f"{self.spatial_dims}D SSIM, {win}, {cov}, K1 {self.k1:g}, K2 {self.k2:g}, border {self.border}" + (
            " (2D per slice along the last axis)" if self.spatial_dims == 2 else ""
        )

    def to_dict(self) -> dict:
        return {
            "window": self.window,
            "sigma": self.sigma,
            "size": len(self.taps()),
            "k1": self.k1,
            "k2": self.k2,
            "sample_covariance": self.sample_covariance,
            "spatial_dims": self.spatial_dims,
            "border": self.border,
        }


#: cmsbench's default (Wang et al. 2004; torchmetrics' window; reflect-completed map).
GAUSSIAN = SSIMConfig()
#: scikit-image's ``structural_similarity`` defaults (uniform 7, sample covariance, border cropped).
SKIMAGE_DEFAULT = SSIMConfig(window="uniform", size=7, sample_covariance=True, border="valid")
#: torchmetrics' ``structural_similarity_index_measure`` (Gaussian 11, whole-sample reflect padding,
#: mean over the full map).
TORCHMETRICS_DEFAULT = SSIMConfig(border="mirror")


def from_numpy_readonly(a: np.ndarray):
    """``torch.from_numpy`` that accepts read-only arrays (cached / memory-mapped volumes) without a
    warning; cmsbench never writes through these tensors."""
    import warnings

    import torch

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="The given NumPy array is not writable")
        return torch.from_numpy(a)


def _as_tensor(a: np.ndarray, device: str, dtype):
    t = from_numpy_readonly(np.ascontiguousarray(a))
    return t.to(device=device, dtype=dtype)


def _check_pair(x: np.ndarray, y: np.ndarray, config: SSIMConfig) -> None:
    if x.shape != y.shape:
        raise MetricError(f"SSIM needs images of one shape, got {x.shape} and {y.shape}")
    if x.ndim != 3:
        raise MetricError(f"SSIM works on 3D arrays (X, Y, Z), got shape {x.shape}")
    r = config.radius
    axes = range(config.spatial_dims)
    if config.border == "valid" and any(x.shape[a] <= 2 * r for a in axes):
        raise MetricError(f"image {x.shape} is too small for a {2 * r + 1}-voxel window with border 'valid'")


def _slab_planes(shape: tuple[int, ...], r: int, device: str) -> int:
    """Output planes per slab: about 1.4M float32 per moment buffer on CPU (cache friendly), whole volume on GPU."""
    if str(device).startswith("cuda"):
        return shape[0]
    per_plane = 4 * (shape[1] + 2 * r) * (shape[2] + 2 * r)
    return int(max(2, min(shape[0], round(1.4e6 / per_plane))))


def _runs(idx: np.ndarray) -> list[tuple[int, int, int]]:
    """(dst_start, src_start, length) runs of consecutive source planes."""
    out, start = [], 0
    for k in range(1, len(idx) + 1):
        if k == len(idx) or idx[k] != idx[k - 1] + 1:
            out.append((start, int(idx[start]), k - start))
            start = k
    return out


class SSIMSlabs:
    """The SSIM map of a pair, computed slab by slab (planes along axis 0).

    One instance holds the pair (as tensors sharing the numpy memory on CPU) and the constants;
    :meth:`buffers` makes the per-worker scratch buffers and :meth:`compute` fills the map of planes
    ``p0:p0+p`` into them. Independent slabs can run in parallel threads, each with its own buffers.
    For ``border="valid"`` the map is the ``reflect`` one; callers crop (see :func:`valid_box`).
    """

    def __init__(
        self,
        x: np.ndarray,
        y: np.ndarray,
        data_range: float,
        config: SSIMConfig = GAUSSIAN,
        *,
        device: str = "cpu",
        float64: bool = False,
    ) -> None:
        import torch

        _check_pair(x, y, config)
        if data_range is None or not np.isfinite(data_range) or data_range <= 0:
            raise MetricError(f"SSIM needs an explicit positive data_range, got {data_range!r}")
        self.torch = torch
        self.device = device
        self.dtype = torch.float64 if float64 else torch.float32
        self.shape = tuple(int(s) for s in x.shape)
        self.w = [float(v) for v in config.taps()]
        self.r = r = (len(self.w) - 1) // 2
        self.mode = "reflect" if config.border == "valid" else config.border
        D, H, W = self.shape
        # 2D: filter axes 0 and 1 only (slices along the last axis are independent)
        self.pad_w = pad_w = r if config.spatial_dims == 3 else 0
        sub = x[:: max(1, D // 16), :: max(1, H // 16), :: max(1, W // 16)]
        self.centre = float(np.mean(sub, dtype=np.float64))
        self.X = _as_tensor(x, device, self.dtype)
        self.Y = _as_tensor(y, device, self.dtype)
        L = float(data_range)
        self.c1 = (config.k1 * L) ** 2
        self.c2 = (config.k2 * L) ** 2
        if config.sample_covariance:
            n = len(self.w) ** config.spatial_dims
            self.cov_norm = n / (n - 1.0)
        else:
            self.cov_norm = 1.0
        self.src_h = border_index(-r, 0, H, self.mode).tolist() + border_index(H, H + r, H, self.mode).tolist()
        self.dst_h = list(range(r)) + list(range(H + r, H + 2 * r))
        self.src_w = border_index(-pad_w, 0, W, self.mode).tolist() + border_index(W, W + pad_w, W, self.mode).tolist()
        self.dst_w = list(range(pad_w)) + list(range(W + pad_w, W + 2 * pad_w))
        self.planes = _slab_planes(self.shape, r, device)
        # axis 0 as a banded matrix product: out[p] = sum_k w[k] in[p + k] (in: p + 2r padded planes),
        # scaled by w[0] per shift-and-add pass (those use weights w[k] / w[0]: one op fewer per pass)
        P = self.planes
        n_shift_passes = 2 if pad_w else 1
        band = np.zeros((P, P + 2 * r))
        for p in range(P):
            band[p, p : p + 2 * r + 1] = np.asarray(self.w) * self.w[0] ** n_shift_passes
        self.band0 = torch.as_tensor(band, dtype=self.dtype, device=device)

    def slabs(self) -> list[tuple[int, int]]:
        """``(p0, p)`` of every slab."""
        D, P = self.shape[0], self.planes
        return [(p0, min(P, D - p0)) for p0 in range(0, D, P)]

    def buffers(self) -> dict:
        torch = self.torch
        _, H, W = self.shape
        P, r = self.planes, self.r
        Hp, Wp = H + 2 * r, W + 2 * self.pad_w
        kw = dict(device=self.device, dtype=self.dtype)
        return {
            "S": torch.empty(4, P + 2 * r, Hp, Wp, **kw),
            "A": torch.empty(4, P, Hp, Wp, **kw),
            "B": torch.empty(4, P, H, Wp, **kw),
            "C": torch.empty(4, P, H, Wp, **kw),
            "T": torch.empty(3, P, H, Wp, **kw),
            "OUT": torch.empty(P, H, Wp, **kw),
        }

    def _one_axis(self, src, dst, dim: int, n: int) -> None:
        """``dst = sum_k (w[k] / w[0]) src[k : k + n]`` along ``dim`` (the 1/w[0] is undone by axis 0)."""
        w, r = self.w, self.r
        self.torch.add(src.narrow(dim, 0, n), src.narrow(dim, 2 * r, n), out=dst)
        for k in range(1, 2 * r):
            dst.add_(src.narrow(dim, k, n), alpha=w[k] / w[0])

    def compute(self, p0: int, p: int, buf: dict):
        """The map of planes ``p0:p0+p`` (a view into ``buf['OUT']``)."""
        torch = self.torch
        D, H, W = self.shape
        r, pad_w, centre = self.r, self.pad_w, self.centre
        Hp, Wp = H + 2 * r, W + 2 * pad_w

        def prefix(name: str, *dims: int):  # a contiguous (4, p, ...) view at the start of a buffer
            n = 4 * int(np.prod(dims))
            return buf[name].view(-1)[:n].view(4, *dims)

        s = prefix("S", p + 2 * r, Hp, Wp)
        inner = s[:, :, r : r + H, pad_w : pad_w + W]
        for d0, s0, n in _runs(border_index(p0 - r, p0 + p + r, D, self.mode)):
            torch.sub(self.X[s0 : s0 + n], centre, out=inner[0, d0 : d0 + n])
            torch.sub(self.Y[s0 : s0 + n], centre, out=inner[1, d0 : d0 + n])
        xs, ys = inner[0], inner[1]
        torch.mul(xs, xs, out=inner[2])
        inner[2].addcmul_(ys, ys)
        torch.mul(xs, ys, out=inner[3])
        for dst, src in zip(self.dst_h, self.src_h, strict=False):
            s[:, :, dst, pad_w : pad_w + W].copy_(s[:, :, src + r, pad_w : pad_w + W])
        for dst, src in zip(self.dst_w, self.src_w, strict=False):
            s[:, :, :, dst].copy_(s[:, :, :, src + pad_w])
        a, b = prefix("A", p, Hp, Wp), prefix("B", p, H, Wp)
        torch.matmul(self.band0[:p, : p + 2 * r], s.view(4, p + 2 * r, Hp * Wp), out=a.view(4, p, Hp * Wp))
        self._one_axis(a, b, 2, H)
        if pad_w:
            # last axis on the flattened contiguous buffer: outputs at columns >= W mix neighbouring rows
            # and are never read (they are cropped below), so every op is one contiguous run
            c = prefix("C", p, H, Wp)
            n_flat = 4 * p * H * Wp
            self._one_axis(b.view(-1), c.view(-1)[: n_flat - 2 * r], 0, n_flat - 2 * r)
        else:
            c = b
        mx, my, sq, xy = c[0], c[1], c[2], c[3]  # centred local moments
        t1, t2, t3 = buf["T"][0, :p], buf["T"][1, :p], buf["T"][2, :p]
        out = buf["OUT"][:p]
        # variance sum and covariance are shift invariant: centred values
        torch.mul(mx, mx, out=t1)
        t1.addcmul_(my, my)
        torch.sub(sq, t1, out=t2)  # var_x + var_y (population)
        torch.mul(mx, my, out=t3)
        xy.sub_(t3)  # cov (population)
        if self.cov_norm != 1.0:
            t2.mul_(self.cov_norm)
            xy.mul_(self.cov_norm)
        t2.add_(self.c2)  # var sum + C2
        xy.mul_(2.0).add_(self.c2)  # 2 cov + C2
        # luminance uses the un-centred means
        mx.add_(centre)
        my.add_(centre)
        torch.mul(mx, my, out=t3)
        t3.mul_(2.0).add_(self.c1)
        torch.mul(mx, mx, out=t1)
        t1.addcmul_(my, my).add_(self.c1)
        torch.mul(t3, xy, out=out)
        t1.mul_(t2)
        out.div_(t1)
        return out[..., :W] if out.shape[-1] != W else out


def default_workers(device: str = "cpu") -> int:
    """Slab-parallel worker threads: torch's intra-op thread count on CPU (each worker then runs its
    ops single-threaded: no per-op barrier, robust when cores are shared); 1 on GPU."""
    if str(device).startswith("cuda"):
        return 1
    import torch

    return max(1, torch.get_num_threads())


def run_slabs(n_items: int, work, make_state, workers: int, *, single_threaded_ops: bool = True) -> list:
    """Run ``work(i, state)`` for ``i < n_items`` on ``workers`` threads, each with its own
    ``make_state()``; results in item order.

    With ``single_threaded_ops`` (CPU), torch runs each op on one thread inside the workers (and in
    the caller when ``workers == 1``): parallelism comes from independent slabs, never from a barrier
    per small op, which collapses when the cores are shared with other processes.
    """
    import torch

    main_threads = torch.get_num_threads()
    try:
        if workers <= 1 or n_items <= 1:
            if single_threaded_ops:
                torch.set_num_threads(1)
            state = make_state()
            return [work(i, state) for i in range(n_items)]
        import threading
        from concurrent.futures import ThreadPoolExecutor

        local = threading.local()

        def task(i: int):
            if not hasattr(local, "state"):
                if single_threaded_ops:
                    torch.set_num_threads(1)
                local.state = make_state()
            return work(i, local.state)

        with ThreadPoolExecutor(max_workers=min(workers, n_items)) as pool:
            return list(pool.map(task, range(n_items)))
    finally:
        torch.set_num_threads(main_threads)


def valid_box(shape: tuple[int, ...], config: SSIMConfig) -> tuple[slice, ...]:
    """The interior where a ``valid`` map is defined (window fully inside the grid)."""
    r = config.radius
    return tuple(slice(r, n - r) if a < config.spatial_dims else slice(None) for a, n in enumerate(shape))


def ssim_map(
    target: np.ndarray,
    prediction: np.ndarray,
    data_range: float,
    config: SSIMConfig = GAUSSIAN,
    *,
    device: str = "cpu",
    float64: bool = False,
) -> np.ndarray:
    """The SSIM map (float32 numpy array of the images' shape; NaN outside the interior for ``valid``).

    On CPU the numba engine computes it when available (see
    :func:`~cmsbench.benchmark.metrics.ssim_numba.select_engine`; ``float64`` always uses torch)."""
    import torch

    from cmsbench.benchmark.metrics.ssim_numba import region_sums_numba, select_engine

    if not float64 and select_engine(device) == "numba":
        if data_range is None:
            raise MetricError(f"SSIM needs an explicit positive data_range, got {data_range!r}")
        if target.shape != prediction.shape:
            raise MetricError(f"SSIM needs images of one shape, got {target.shape} and {prediction.shape}")
        _, smap = region_sums_numba(
            np.ascontiguousarray(target, dtype=np.float32),
            np.ascontiguousarray(prediction, dtype=np.float32),
            [None],
            ssim_range=float(data_range),
            config=config,
            window=None,
            keep_map=True,
            workers=default_workers("cpu"),
        )
        return smap
    eng = SSIMSlabs(target, prediction, data_range, config, device=device, float64=float64)
    out = torch.empty(target.shape, dtype=eng.dtype)
    slabs = eng.slabs()

    def work(i: int, buf: dict) -> None:
        p0, p = slabs[i]
        out[p0 : p0 + p].copy_(eng.compute(p0, p, buf))

    run_slabs(
        len(slabs), work, eng.buffers, default_workers(device), single_threaded_ops=not str(device).startswith("cuda")
    )
    arr = out.numpy()
    if config.border == "valid":
        keep = np.zeros(arr.shape, dtype=bool)
        keep[valid_box(arr.shape, config)] = True
        arr[~keep] = np.nan
    return arr


def masked_mean(values: np.ndarray, mask: np.ndarray | None = None) -> float:
    """Mean of ``values`` over ``mask`` voxels (all voxels if None), NaN voxels excluded, float64 sum.

    Returns NaN when no voxel is left (the caller records why).
    """
    v = values if mask is None else values[mask]
    finite = ~np.isnan(v)
    n = int(finite.sum())
    if n == 0:
        return float("nan")
    return float(np.sum(v[finite], dtype=np.float64) / n) if n != v.size else float(np.sum(v, dtype=np.float64) / n)


def ssim(
    target: np.ndarray,
    prediction: np.ndarray,
    data_range: float,
    config: SSIMConfig = GAUSSIAN,
    *,
    mask: np.ndarray | None = None,
    device: str = "cpu",
) -> float:
    """Mean SSIM over ``mask`` (every voxel if None; the interior only for ``valid``)."""
    return masked_mean(ssim_map(target, prediction, data_range, config, device=device), mask)

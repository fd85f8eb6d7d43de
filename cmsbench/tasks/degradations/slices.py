"""Thick-slice degradations of thin-slice CT along the slice axis (``ct_thin``): ``decimate`` and ``slab``.

Both keep one thick slice per ``factor`` thin slices, centred on thin slices ``0, k, 2k, ...`` (k = factor):

- ``decimate`` (SAINT, CVPR 2020; I3Net, TMI 2024): thick = ``thin[..., ::k]``; the thick slices ARE thin
  slices (acquired exactly), the others are to be synthesised.
- ``slab``: each thick slice is the mean of the thin slices under a boxcar of width ``k`` thin spacings
  centred on thin slice ``j k`` (odd k: the k slices ``jk - (k-1)/2 .. jk + (k-1)/2``; even k: k + 1 slices,
  the two end ones weighted 1/2; weights renormalised where the boxcar leaves the volume): the physically
  closer model of a thick reconstruction. No thin slice is acquired exactly.

``output="thick"`` returns the thick stack (slice spacing x k, voxel 0 in place); ``output="grid"`` puts it
back on the thin grid, each thin slice taking its nearest thick slice (a tie halfway goes to the lower one),
which is what methods receive (a nearest-neighbour along z image of the acquired data).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cmsbench.errors import DataError
from cmsbench.tasks.degradations.api import Operator, Parameter, choice, integer
from cmsbench.tasks.volume import Volume


def thick_positions(n_thin: int, factor: int) -> np.ndarray:
    """The thin-slice indices the thick slices are centred on: ``0, k, 2k, ... < n_thin``."""
    return np.arange(0, int(n_thin), int(factor))


def nearest_thick(n_thin: int, factor: int) -> np.ndarray:
    """For each thin slice, the index of its nearest thick slice (ties halfway to the lower one)."""
    z = np.arange(int(n_thin))
    n_thick = len(thick_positions(n_thin, factor))
    return np.minimum((z + (int(factor) - 1) // 2) // int(factor), n_thick - 1)


def cropped_length(n_thin: int, factor: int) -> int:
    """The largest ``1 + m k <= n_thin``: a crop whose first and last thin slices are thick-slice centres."""
    if n_thin < 1 + factor:
        return 0
    return 1 + ((int(n_thin) - 1) // int(factor)) * int(factor)


def slab_weights(n_thin: int, factor: int) -> np.ndarray:
    """(n_thick, n_thin) averaging weights of ``slab``: a boxcar of width ``factor`` centred on each thick
    position, half weights at the ends for even factors, each row normalised to sum 1."""
    k = int(factor)
    centres = thick_positions(n_thin, k)
    z = np.arange(int(n_thin))
    d = np.abs(z[None, :] - centres[:, None]).astype(np.float64)
    w = np.where(d < k / 2.0, 1.0, np.where(d == k / 2.0, 0.5, 0.0))
    return w / w.sum(axis=1, keepdims=True)


def _to_output(volume: Volume, thick: np.ndarray, params: dict[str, Any], axis: int) -> Volume:
    k = params["factor"]
    dtype = np.float64 if np.asarray(volume.data).dtype == np.float64 else np.float32
    if params["output"] == "grid":
        index = nearest_thick(volume.shape[axis], k)
        return volume.with_data(np.take(thick, index, axis=axis).astype(dtype))
    scale = np.eye(4)
    scale[axis, axis] = k
    return volume.with_data(thick.astype(dtype), affine=volume.affine @ scale)


def _check(volume: Volume, params: dict[str, Any]) -> int:
    axis = params["axis"]
    if volume.shape[axis] < 2:
        raise DataError(f"{volume.source or 'volume'}: {volume.shape[axis]} slice(s) along axis {axis}; "
                        "thick slices need at least 2")
    return axis


def _decimate(volume: Volume, params: dict[str, Any], *, rng: np.random.Generator,
              others: dict[str, Volume]) -> Volume:
    axis = _check(volume, params)
    x = np.asarray(volume.data, dtype=np.float64)
    thick = np.take(x, thick_positions(x.shape[axis], params["factor"]), axis=axis)
    return _to_output(volume, thick, params, axis)


def _slab(volume: Volume, params: dict[str, Any], *, rng: np.random.Generator,
          others: dict[str, Volume]) -> Volume:
    axis = _check(volume, params)
    x = np.moveaxis(np.asarray(volume.data, dtype=np.float64), axis, -1)
    thick = np.moveaxis(x @ slab_weights(x.shape[-1], params["factor"]).T, -1, axis)
    return _to_output(volume, thick, params, axis)


_PARAMS = (
    Parameter("factor", 4, "thin slices per thick slice (4 or 6 published)", integer(low=2)),
    Parameter("output", "grid", "'grid': the thick slices on the thin grid (each thin slice its nearest thick "
              "slice); 'thick': the thick stack (slice spacing x factor)", choice("grid", "thick")),
    Parameter("axis", 2, "the slice array axis", integer(0, 2)),
)

DECIMATE = Operator(
    name="decimate",
    version="1",
    summary="keep every factor-th slice along the slice axis (thick = thin[..., ::k], as SAINT / I3Net)",
    function=_decimate,
    parameters=_PARAMS,
    convention=(
        "thick = thin[..., ::factor] along the slice axis (axis 2): thin slices 0, k, 2k, ... are kept exactly, "
        "the others dropped (SAINT, Peng et al. CVPR 2020; I3Net). output='grid': on the thin grid, thin slice z "
        "takes thick slice min((z + (k - 1) // 2) // k, n_thick - 1) (nearest; a tie halfway to the lower one); "
        "output='thick': the stack itself, affine slice column x k. Deterministic."
    ),
)

SLAB = Operator(
    name="slab",
    version="1",
    summary="average a slab of factor thin slices into each thick slice (boxcar along the slice axis)",
    function=_slab,
    parameters=_PARAMS,
    convention=(
        "thick slice j = weighted mean of the thin slices under a boxcar of width k = factor thin spacings "
        "centred on thin slice j k (odd k: k slices of weight 1; even k: k - 1 slices of weight 1 and the two "
        "at distance k / 2 of weight 1/2), weights renormalised where the boxcar leaves the volume; no thin "
        "slice is kept exactly. output='grid' and 'thick' as for decimate. Deterministic."
    ),
)

"""The prediction contract: what a prediction must be to be scored, checked in one place.

The runner (a method's output), ``cmsbench score`` (a prediction file) and the conformance suite
(``check_method``) all call :func:`check_prediction`:

- a real floating-point array (float16/32/64; integer, boolean and complex data are refused, never cast);
- the target's shape;
- an affine equal to the target's within :data:`AFFINE_TOL` (mm) when an affine is given, finite;
- every voxel finite (no NaN or inf).

The error names the case and who produced the prediction (method or file) and says what to do.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from cmsbench.errors import CmsbenchError

#: Largest allowed difference between a prediction's and the target's affine entries (mm).
AFFINE_TOL = 1e-3


class PredictionError(CmsbenchError):
    """A prediction breaks the contract (see :mod:`cmsbench.benchmark.contract`)."""


def check_prediction(data: Any, target_shape: tuple[int, ...], *, case_id: str, source: str,
                     affine: Any = None, target_affine: Any = None) -> np.ndarray:
    """Return ``data`` as an array after checking the contract; :class:`PredictionError` otherwise.

    ``source`` names the producer in messages (``"method 'unet'"``, ``"file preds/BraTS_001.nii.gz"``).
    """
    arr = np.asarray(data)
    where = f"{source} for case {case_id!r}"
    if np.iscomplexobj(arr):
        raise PredictionError(f"{where}: complex values (dtype {arr.dtype}); predictions must be real images")
    if not np.issubdtype(arr.dtype, np.floating):
        raise PredictionError(f"{where}: dtype {arr.dtype}; a floating-point volume is expected (float32)")
    if tuple(arr.shape) != tuple(target_shape):
        raise PredictionError(f"{where}: shape {tuple(arr.shape)} but the target has shape {tuple(target_shape)}; "
                              "predict on the target's grid")
    if affine is not None and target_affine is not None:
        a = np.asarray(affine, dtype=np.float64)
        b = np.asarray(target_affine, dtype=np.float64)
        if a.shape != b.shape or not np.isfinite(a).all():
            raise PredictionError(f"{where}: the affine is missing or not finite; write the target's affine")
        diff = float(np.max(np.abs(a - b)))
        if not diff <= AFFINE_TOL:
            raise PredictionError(f"{where}: the affine differs from the target's by up to {diff:.3g} mm "
                                  f"(tolerance {AFFINE_TOL:g}); predictions must be on the target's grid "
                                  "(same affine)")
    finite = np.isfinite(arr)
    if not finite.all():
        bad = int(arr.size - np.count_nonzero(finite))
        n_nan = int(np.isnan(arr).sum())
        raise PredictionError(f"{where}: {bad} non-finite voxel(s) ({n_nan} NaN, {bad - n_nan} inf) of {arr.size}; "
                              "outputs must be finite")
    return arr

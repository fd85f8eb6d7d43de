"""The Kernel Inception Distance's estimator (Binkowski et al., ICLR 2018) on radiomic features.

KID is the unbiased estimate of the squared maximum mean discrepancy with the cubic polynomial kernel
``k(x, y) = (x . y / d + 1)^3`` (``d`` = number of features):

    MMD^2_u = sum_{i != j} k(x_i, x_j) / (m (m - 1)) + sum_{i != j} k(y_i, y_j) / (n (n - 1))
              - 2 sum_{i, j} k(x_i, y_j) / (m n)

Here it runs on the same features as FRD (:mod:`cmsbench.benchmark.metrics.frd`: frd-score v1 radiomic
features z-scored with the target set's statistics), over the whole test set (no subsets: test sets are
small), with the same paired percentile bootstrap over cases. It is unbiased for independent samples, so
it can be slightly negative: the test set against itself gives twice (mean off-diagonal kernel value -
mean of all kernel values), a small negative number, not 0.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from cmsbench.benchmark.metrics.api import Metric, SetValue

CONVENTION = (
    "unbiased MMD^2 (KID's estimator) with the kernel (x.y/d + 1)^3 on the FRD features (frd-score v1 radiomics "
    "z-scored with the target set's statistics), whole test set, percentile bootstrap over cases (1,000 resamples, "
    "the run's seed); can be slightly negative"
)


def polynomial_kernel(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> np.ndarray:
    """``(x y^T / d + coef0) ^ degree`` for rows of ``x`` and ``y`` (``d`` = number of columns)."""
    d = x.shape[1]
    return (x @ y.T / d + coef0) ** degree


def mmd2_unbiased(x: np.ndarray, y: np.ndarray, degree: int = 3, coef0: float = 1.0) -> float:
    """Unbiased squared MMD between the rows of ``x`` (m) and ``y`` (n) with :func:`polynomial_kernel`."""
    m, n = len(x), len(y)
    if m < 2 or n < 2:
        raise ValueError(f"an unbiased MMD needs at least 2 cases per set (got {m} and {n})")
    kxx = polynomial_kernel(x, x, degree, coef0)
    kyy = polynomial_kernel(y, y, degree, coef0)
    kxy = polynomial_kernel(x, y, degree, coef0)
    return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1))
                 - 2.0 * kxy.sum() / (m * n))


def kid_statistic(prediction: np.ndarray, target: np.ndarray) -> float:
    """KID of the prediction set from the target set on FRD's normalised features."""
    from cmsbench.benchmark.metrics.frd import normalise_sets

    x, y = normalise_sets(prediction, target)
    if x.shape[1] == 0:
        raise ValueError("no radiomic feature is finite in both sets after z-scoring")
    return mmd2_unbiased(x, y)


def aggregate_kid(features: Sequence[np.ndarray], seed: int = 0) -> SetValue:
    """KID over the test set with its bootstrap interval (the features of :func:`frd.case_features`)."""
    from cmsbench.benchmark.metrics.frd import set_value

    return set_value(features, seed, kid_statistic)


def _features(ctx, region):
    from cmsbench.benchmark.metrics.frd import case_features

    return case_features(ctx, region)


KID_RADIOMIC = Metric("kid_radiomic", "lower", "kernel distance (KID estimator) of radiomic feature distributions",
                      CONVENTION, level="set", features=_features, aggregate=aggregate_kid)

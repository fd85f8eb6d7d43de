"""Classical baselines, the floors every method is quoted against.

``identity`` (copy the most similar input), ``linear`` and ``poly2`` (voxel-wise least squares),
``histogram`` (quantile mapping), and for denoising tasks ``gaussian`` and ``nlm`` (non-local means),
whose hyper-parameters are tuned on the validation split; for degraded-input tasks ``bicubic``,
``guided_sr`` (super-resolution of k-space-truncated MR), ``dose_scaling`` (low contrast dose),
``kernel_filter`` (smooth -> sharp CT reconstruction kernel, a radial filter fitted on train) and, for
thick-to-thin CT, ``nearest_z``, ``linear_z``, ``cubic_z`` (interpolation along z). All
are deterministic under a seed, need only numpy/scipy/scikit-image, and save their fitted state as
arrays plus JSON.
"""

from cmsbench.baselines.classical.denoise import GaussianDenoiseMethod, NonLocalMeansMethod
from cmsbench.baselines.classical.dose import DoseScalingMethod
from cmsbench.baselines.classical.histogram import HistogramMatchingMethod
from cmsbench.baselines.classical.identity import IdentityMethod
from cmsbench.baselines.classical.kernel import KernelFilterMethod
from cmsbench.baselines.classical.regression import LinearRegressionMethod, Poly2RegressionMethod
from cmsbench.baselines.classical.slices import CubicZ, LinearZ, NearestZ
from cmsbench.baselines.classical.upsampling import BicubicUpsampling, GuidedSuperResolution

__all__ = [
    "BicubicUpsampling",
    "CubicZ",
    "DoseScalingMethod",
    "GuidedSuperResolution",
    "GaussianDenoiseMethod",
    "HistogramMatchingMethod",
    "IdentityMethod",
    "KernelFilterMethod",
    "LinearRegressionMethod",
    "LinearZ",
    "NearestZ",
    "NonLocalMeansMethod",
    "Poly2RegressionMethod",
]

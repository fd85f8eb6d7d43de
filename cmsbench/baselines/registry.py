"""The method registry: built-ins and plugins through the ``cmsbench.methods`` entry-point group.

``get_method_class`` also accepts ``package.module:Class`` and ``path/to/file.py:Class`` for quick
experiments without packaging.
"""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

from cmsbench.errors import MethodError
from cmsbench.registry import PluginLoadError, Registry, load_target

BUILTIN_METHODS = {
    "identity": "cmsbench.baselines.classical:IdentityMethod",
    "linear": "cmsbench.baselines.classical:LinearRegressionMethod",
    "poly2": "cmsbench.baselines.classical:Poly2RegressionMethod",
    "histogram": "cmsbench.baselines.classical:HistogramMatchingMethod",
    "gaussian": "cmsbench.baselines.classical:GaussianDenoiseMethod",
    "nlm": "cmsbench.baselines.classical:NonLocalMeansMethod",
    "bicubic": "cmsbench.baselines.classical:BicubicUpsampling",
    "guided_sr": "cmsbench.baselines.classical:GuidedSuperResolution",
    "dose_scaling": "cmsbench.baselines.classical:DoseScalingMethod",
    "kernel_filter": "cmsbench.baselines.classical:KernelFilterMethod",
    "nearest_z": "cmsbench.baselines.classical:NearestZ",
    "linear_z": "cmsbench.baselines.classical:LinearZ",
    "cubic_z": "cmsbench.baselines.classical:CubicZ",
    "unet": "cmsbench.baselines.learned.supervised:UNet",
    "pix2pix": "cmsbench.baselines.learned.supervised:Pix2Pix",
    "redcnn": "cmsbench.baselines.learned.supervised:RedCNN",
    "resvit": "cmsbench.baselines.learned.supervised:ResViT",
    "cyclegan": "cmsbench.baselines.learned.cyclegan:CycleGAN",
    "cond_ddpm": "cmsbench.baselines.learned.diffusion:CondDDPM",
    "cola_diff": "cmsbench.baselines.learned.diffusion:ColaDiff",
}

METHODS: Registry[type] = Registry("cmsbench.methods", "method", BUILTIN_METHODS)


def _load_from_file(spec: str) -> type:
    path_text, _, attr = spec.rpartition(":")
    path = Path(path_text)
    if not path.is_file():
        raise PluginLoadError(f"method file {path} does not exist")
    module_name = f"cmsbench_user_{abs(hash(str(path.resolve())))}"
    module_spec = importlib.util.spec_from_file_location(module_name, path)
    if module_spec is None or module_spec.loader is None:
        raise PluginLoadError(f"cannot import {path} as a Python module")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[module_name] = module
    try:
        module_spec.loader.exec_module(module)
        return getattr(module, attr)
    except Exception as exc:
        raise PluginLoadError(f"failed to load method {attr!r} from {path}: {type(exc).__name__}: {exc}") from exc


def get_method_class(name: str) -> type:
    """The method class registered as ``name``, or named by ``module:Class`` / ``file.py:Class``."""
    from cmsbench.baselines.base import Method, MethodCard

    if ":" in name and name.split(":", 1)[0].endswith(".py"):
        cls = _load_from_file(name)
    elif ":" in name:
        cls = load_target(name, what=f"method {name!r}")
    else:
        cls = METHODS.load(name)
    if not (isinstance(cls, type) and issubclass(cls, Method)):
        raise MethodError(f"{name!r} is not a cmsbench Method subclass (got {cls!r})")
    if not isinstance(getattr(cls, "card", None), MethodCard):
        raise MethodError(f"method {name!r} ({cls.__module__}.{cls.__qualname__}) has no card: set the class "
                          "attribute card = MethodCard(name, version, summary, ...)")
    return cls


def make_method(name: str, **options: object) -> Method:  # noqa: F821
    """Instantiate a method by name with hyper-parameter overrides."""
    return get_method_class(name)(**options)

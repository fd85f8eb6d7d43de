"""Learned baselines (PyTorch + MONAI), trained on 2D axial slices.

``unet``, ``pix2pix``, ``redcnn``, ``resvit`` (paired), ``cyclegan`` (unpaired) and the diffusion family
``cond_ddpm`` (image-space conditional diffusion) and ``cola_diff`` (conditional latent diffusion). Each has
a ``config`` option: ``small`` (about two minutes on two CPU cores; the default on CPU), ``paper`` (the
published sizes and schedules; the default on CUDA). Importing this package does not import torch; the
classes are loaded on first access.
"""

from __future__ import annotations

from typing import Any

_CLASSES = {
    "UNet": "supervised",
    "Pix2Pix": "supervised",
    "RedCNN": "supervised",
    "ResViT": "supervised",
    "CycleGAN": "cyclegan",
    "CondDDPM": "diffusion",
    "ColaDiff": "diffusion",
}

__all__ = sorted(_CLASSES)


def __getattr__(name: str) -> Any:
    if name in _CLASSES:
        import importlib

        module = importlib.import_module(f"cmsbench.baselines.learned.{_CLASSES[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")

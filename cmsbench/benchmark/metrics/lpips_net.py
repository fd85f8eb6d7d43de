"""The LPIPS network (Zhang et al. 2018, version 0.1) in plain torch, without torchvision.

LPIPS compares two RGB images in [-1, 1]: both go through a shift/scale layer (per channel
``(x - shift) / scale`` with shift (-0.030, -0.088, -0.188) and scale (0.458, 0.448, 0.450)) and an
ImageNet backbone; at five ReLU outputs the feature vectors of every position are divided by their
Euclidean norm (+1e-10), the squared difference is weighted per channel by a learned non-negative
vector (a 1x1 convolution without bias), averaged over positions, and the five layer values are summed.

Backbones (the convolution layers as in torchvision's ``features``; which ReLU outputs are tapped):

- ``alex``: AlexNet. conv 11x11/4 pad 2 (64) | pool 3/2 | conv 5x5 pad 2 (192) | pool 3/2 |
  conv 3x3 (384) | conv 3x3 (256) | conv 3x3 (256); every ReLU after a convolution is tapped.
- ``vgg``: VGG16 without batch norm, 3x3 pad 1 convolutions in blocks of 2, 2, 3, 3, 3 separated by
  2x2/2 max pools; the last ReLU of each block is tapped (relu1_2, relu2_2, relu3_3, relu4_3, relu5_3).

Weights are a flat ``name -> tensor`` mapping (see :func:`parameter_shapes`): ``conv{i}.weight``
(out, in, kh, kw), ``conv{i}.bias`` and ``lin{k}.weight`` (channels,). :mod:`.lpips_weights` converts
the published arrays into that layout.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
import torch.nn.functional as F

#: the v0.1 input scaling layer (the same constants for every backbone)
SHIFT = (-0.030, -0.088, -0.188)
SCALE = (0.458, 0.448, 0.450)
#: added to the feature norm before dividing
NORM_EPS = 1e-10


@dataclass(frozen=True)
class Conv:
    out: int
    k: int
    stride: int
    pad: int
    tap: bool  # the ReLU after it is an LPIPS layer


@dataclass(frozen=True)
class Pool:
    k: int
    stride: int


Step = Conv | Pool


def _vgg_steps() -> tuple[Step, ...]:
    steps: list[Step] = []
    for i, (width, n) in enumerate(((64, 2), (128, 2), (256, 3), (512, 3), (512, 3))):
        if i:
            steps.append(Pool(2, 2))
        steps += [Conv(width, 3, 1, 1, tap=j == n - 1) for j in range(n)]
    return tuple(steps)


BACKBONES: dict[str, tuple[Step, ...]] = {
    "alex": (Conv(64, 11, 4, 2, True), Pool(3, 2), Conv(192, 5, 1, 2, True), Pool(3, 2),
             Conv(384, 3, 1, 1, True), Conv(256, 3, 1, 1, True), Conv(256, 3, 1, 1, True)),
    "vgg": _vgg_steps(),
}
#: the smallest image side each backbone accepts (every pooling stage keeps at least one position)
MIN_SIDE = {"alex": 31, "vgg": 16}


def parameter_shapes(net: str) -> dict[str, tuple[int, ...]]:
    """Every tensor the network ``net`` needs, with its shape."""
    shapes: dict[str, tuple[int, ...]] = {}
    c_in, i, k = 3, 0, 0
    for step in BACKBONES[net]:
        if isinstance(step, Conv):
            shapes[f"conv{i}.weight"] = (step.out, c_in, step.k, step.k)
            shapes[f"conv{i}.bias"] = (step.out,)
            if step.tap:
                shapes[f"lin{k}.weight"] = (step.out,)
                k += 1
            c_in, i = step.out, i + 1
    return shapes


class LPIPSNet(torch.nn.Module):
    """LPIPS v0.1 with backbone ``net`` and the given weights; ``forward(x0, x1)`` -> (N,) distances."""

    def __init__(self, net: str, weights: Mapping[str, torch.Tensor]) -> None:
        super().__init__()
        if net not in BACKBONES:
            raise ValueError(f"unknown LPIPS backbone {net!r}; choose one of {sorted(BACKBONES)}")
        shapes = parameter_shapes(net)
        missing = sorted(set(shapes) - set(weights))
        wrong = sorted(n for n in shapes if n in weights and tuple(weights[n].shape) != shapes[n])
        if missing or wrong:
            raise ValueError(f"LPIPS {net} weights: missing {missing}, wrong shape {wrong}")
        self.net = net
        self.steps = BACKBONES[net]
        for name in shapes:
            self.register_buffer(name.replace(".", "_"), weights[name].detach().to(torch.float32).clone())
        self.register_buffer("shift", torch.tensor(SHIFT, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("scale", torch.tensor(SCALE, dtype=torch.float32).view(1, 3, 1, 1))

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The unit-normalised tapped feature maps of ``x`` ((N, 3, H, W) in [-1, 1])."""
        first = self.steps[0]
        h = F.conv2d((x - self.shift) / self.scale, self.conv0_weight, self.conv0_bias, stride=first.stride,
                     padding=first.pad)
        return self._trunk(h)

    def features_grey(self, x: torch.Tensor) -> list[torch.Tensor]:
        """:meth:`features` of grey images ((N, 1, H, W) in [-1, 1]) repeated to 3 channels, in one channel.

        The first convolution of the scaled channels ``(x - shift_c) / scale_c`` equals
        ``conv(x, sum_c W_c / scale_c) - conv(m, sum_c W_c shift_c / scale_c)`` with ``m`` = 1 inside the
        image and 0 in the zero padding, so three input channels fold into one (the same value up to
        float rounding, a third of the multiply-adds)."""
        first = self.steps[0]
        w = self.conv0_weight
        w_x = (w / self.scale).sum(dim=1, keepdim=True)
        w_m = (w * (self.shift / self.scale)).sum(dim=1, keepdim=True)
        ones = torch.ones((1, 1) + tuple(x.shape[2:]), dtype=x.dtype, device=x.device)
        offset = F.conv2d(ones, w_m, None, stride=first.stride, padding=first.pad)
        h = F.conv2d(x, w_x, self.conv0_bias, stride=first.stride, padding=first.pad) - offset
        return self._trunk(h)

    def _trunk(self, h: torch.Tensor) -> list[torch.Tensor]:
        """Everything after the first convolution's linear part."""
        taps, i = [], 0
        for step in self.steps:
            if isinstance(step, Pool):
                h = F.max_pool2d(h, step.k, step.stride)
                continue
            if i:
                h = F.conv2d(h, getattr(self, f"conv{i}_weight"), getattr(self, f"conv{i}_bias"),
                             stride=step.stride, padding=step.pad)
            h = F.relu(h)
            i += 1
            if step.tap:
                taps.append(h / (torch.sqrt(torch.sum(h * h, dim=1, keepdim=True)) + NORM_EPS))
        return taps

    def distance(self, f0: list[torch.Tensor], f1: list[torch.Tensor]) -> torch.Tensor:
        """LPIPS from two images' :meth:`features`: (N,) float32."""
        total = None
        for k, (a, b) in enumerate(zip(f0, f1, strict=True)):
            w = getattr(self, f"lin{k}_weight").view(1, -1, 1, 1)
            layer = torch.sum((a - b) ** 2 * w, dim=1).mean(dim=(1, 2))
            total = layer if total is None else total + layer
        return total

    def forward(self, x0: torch.Tensor, x1: torch.Tensor) -> torch.Tensor:
        """LPIPS of two batches: (N, 3, H, W) RGB or (N, 1, H, W) grey (repeated to RGB), in [-1, 1]."""
        n = x0.shape[0]
        both = torch.cat([x0, x1])  # one pass over the two batches
        feats = self.features_grey(both) if both.shape[1] == 1 else self.features(both)
        return self.distance([f[:n] for f in feats], [f[n:] for f in feats])

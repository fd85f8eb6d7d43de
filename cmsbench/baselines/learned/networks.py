"""Networks that MONAI does not ship: RED-CNN, a ResNet generator (CycleGAN) and a ResViT-style hybrid.

The U-Nets (``BasicUNet``, ``UNet``), the PatchGAN discriminator, the diffusion U-Net, the KL autoencoder
and the transformer blocks come from MONAI (see the method modules).
"""

from __future__ import annotations

import math

import torch
from torch import nn
from torch.nn import functional as F


class RedCNN(nn.Module):
    """RED-CNN (Chen et al. 2017): 5 unpadded convolutions, 5 transposed convolutions, 3 shortcuts.

    The first shortcut adds the input to the output; with several input channels (not in the paper)
    the input is projected to the output channels by a 1x1 convolution first.
    """

    def __init__(self, in_channels: int = 1, out_channels: int = 1, filters: int = 96, kernel: int = 5) -> None:
        super().__init__()
        k = kernel
        self.conv = nn.ModuleList([nn.Conv2d(in_channels, filters, k)] + [nn.Conv2d(filters, filters, k) for _ in range(4)])
        self.tconv = nn.ModuleList([nn.ConvTranspose2d(filters, filters, k) for _ in range(4)]
                                   + [nn.ConvTranspose2d(filters, out_channels, k)])
        self.project = nn.Conv2d(in_channels, out_channels, 1) if in_channels != out_channels else nn.Identity()
        # He initialisation (PyTorch's default shrinks the signal through ten ReLU layers and the conv
        # branch dies) and a zero last layer: the network starts as the identity (the input shortcut)
        # and learns the correction; a random start is far worse than the noisy input for a long time.
        for m in self.modules():
            if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) and m is not self.project:
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                nn.init.zeros_(m.bias)
        nn.init.zeros_(self.tconv[-1].weight)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        residual_1 = self.project(x)
        out = F.relu(self.conv[0](x))
        out = F.relu(self.conv[1](out))
        residual_2 = out
        out = F.relu(self.conv[2](out))
        out = F.relu(self.conv[3](out))
        residual_3 = out
        out = F.relu(self.conv[4](out))
        out = self.tconv[0](out) + residual_3
        out = self.tconv[1](F.relu(out))
        out = self.tconv[2](F.relu(out)) + residual_2
        out = self.tconv[3](F.relu(out))
        out = self.tconv[4](F.relu(out)) + residual_1
        # no final ReLU (the paper has one): in net units air is 0 and noisy air goes below it; the
        # method clamps its prediction at 0 afterwards
        return out


class ResnetBlock(nn.Module):
    """Conv-IN-ReLU-Conv-IN with reflection padding and an identity shortcut (Johnson et al. 2016)."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.block = nn.Sequential(
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels), nn.ReLU(True),
            nn.ReflectionPad2d(1), nn.Conv2d(channels, channels, 3), nn.InstanceNorm2d(channels),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.block(x)


def _encoder(in_channels: int, ngf: int) -> nn.Sequential:
    return nn.Sequential(
        nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7), nn.InstanceNorm2d(ngf), nn.ReLU(True),
        nn.Conv2d(ngf, 2 * ngf, 3, stride=2, padding=1), nn.InstanceNorm2d(2 * ngf), nn.ReLU(True),
        nn.Conv2d(2 * ngf, 4 * ngf, 3, stride=2, padding=1), nn.InstanceNorm2d(4 * ngf), nn.ReLU(True),
    )


def _decoder(out_channels: int, ngf: int, final: str) -> nn.Sequential:
    layers: list[nn.Module] = [
        nn.ConvTranspose2d(4 * ngf, 2 * ngf, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(2 * ngf),
        nn.ReLU(True),
        nn.ConvTranspose2d(2 * ngf, ngf, 3, stride=2, padding=1, output_padding=1), nn.InstanceNorm2d(ngf), nn.ReLU(True),
        nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7),
    ]
    if final == "tanh":
        layers.append(nn.Tanh())
    return nn.Sequential(*layers)


class ResnetGenerator(nn.Module):
    """The CycleGAN generator (c7s1-ngf, d2ngf, d4ngf, n x R4ngf, u2ngf, ungf, c7s1-out); linear output
    (net units are not bounded to [-1, 1] as the paper's tanh output assumes)."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 9) -> None:
        super().__init__()
        self.net = nn.Sequential(_encoder(in_channels, ngf), *[ResnetBlock(4 * ngf) for _ in range(n_blocks)],
                                 _decoder(out_channels, ngf, "linear"))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class ViTBottleneck(nn.Module):
    """Transformer over the bottleneck features: patch embedding (stride ``patch``), learned position
    embedding (interpolated to other grids), ``layers`` MONAI TransformerBlocks, transposed-conv
    un-embedding, and a 1x1 fusion with the input features (ResViT's aggregated residual transformer)."""

    def __init__(self, channels: int, hidden: int, layers: int, heads: int, mlp: int, patch: int, grid: int) -> None:
        super().__init__()
        from monai.networks.blocks import TransformerBlock

        self.embed = nn.Conv2d(channels, hidden, patch, stride=patch)
        self.pos = nn.Parameter(torch.zeros(1, hidden, grid, grid))
        nn.init.trunc_normal_(self.pos, std=0.02)
        self.blocks = nn.ModuleList([TransformerBlock(hidden, mlp, heads, qkv_bias=True) for _ in range(layers)])
        self.norm = nn.LayerNorm(hidden)
        self.unembed = nn.ConvTranspose2d(hidden, channels, patch, stride=patch)
        self.fuse = nn.Sequential(nn.Conv2d(2 * channels, channels, 1), nn.InstanceNorm2d(channels), nn.ReLU(True))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        tokens = self.embed(x)
        b, c, h, w = tokens.shape
        pos = self.pos if self.pos.shape[-2:] == (h, w) else F.interpolate(self.pos, size=(h, w), mode="bilinear",
                                                                           align_corners=False)
        seq = (tokens + pos).flatten(2).transpose(1, 2)
        for block in self.blocks:
            seq = block(seq)
        seq = self.norm(seq).transpose(1, 2).reshape(b, c, h, w)
        return self.fuse(torch.cat([x, self.unembed(seq)], dim=1))


class ResViTNet(nn.Module):
    """A ResViT-style generator (Dalmaz et al. 2022): CNN encoder (x4 down), ``n_blocks`` residual CNN
    blocks in the bottleneck with transformer modules inserted before the blocks listed in
    ``vit_positions``, CNN decoder. Transformer modules at different positions share weights when
    ``share_vit`` (as in the paper)."""

    def __init__(self, in_channels: int, out_channels: int, ngf: int = 64, n_blocks: int = 9,
                 vit_positions: tuple[int, ...] = (0, 5), hidden: int = 768, layers: int = 12, heads: int = 12,
                 mlp: int = 3072, patch: int = 1, grid: int = 16, share_vit: bool = True) -> None:
        super().__init__()
        self.encoder = _encoder(in_channels, ngf)
        self.blocks = nn.ModuleList([ResnetBlock(4 * ngf) for _ in range(n_blocks)])
        self.vit_positions = tuple(int(p) for p in vit_positions)
        n_vit = 1 if share_vit else len(self.vit_positions)
        self.vits = nn.ModuleList([ViTBottleneck(4 * ngf, hidden, layers, heads, mlp, patch, grid) for _ in range(n_vit)])
        self.share_vit = share_vit
        self.decoder = _decoder(out_channels, ngf, "linear")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.encoder(x)
        for i, block in enumerate(self.blocks):
            if i in self.vit_positions:
                vit = self.vits[0] if self.share_vit else self.vits[self.vit_positions.index(i)]
                h = vit(h)
            h = block(h)
        return self.decoder(h)


def patch_layers(size: int, wanted: int) -> int:
    """PatchGAN depth that keeps a valid output map for ``size``-pixel inputs (>= 1)."""
    return max(1, min(int(wanted), int(math.log2(max(size, 2))) - 3))

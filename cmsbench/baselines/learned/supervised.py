"""Paired, supervised slice regressors: U-Net (L1), pix2pix (U-Net + PatchGAN + L1), RED-CNN, ResViT."""

from __future__ import annotations

import math
from typing import Any

from cmsbench.baselines.base import MethodCard
from cmsbench.baselines.learned._common import COMMON_DEFAULTS, TorchSliceMethod, autocast, gan_loss, import_torch


class _PairedRegressor(TorchSliceMethod):
    """A generator ``G`` trained with a pixel loss, plus an optional conditional PatchGAN ``D``
    (``gan_weight`` > 0) that sees the inputs and the real or generated target as channels."""

    def _make_generator(self) -> Any:
        raise NotImplementedError

    def _build(self) -> None:
        self.nets = {"G": self._make_generator()}
        if float(self.hp.get("gan_weight") or 0.0) > 0 and not getattr(self, "_inference_only", False):
            from monai.networks.nets import PatchDiscriminator

            from cmsbench.baselines.learned.networks import patch_layers

            size = min(self.train_info.get("train_hw") or [256])
            self.nets["D"] = PatchDiscriminator(
                spatial_dims=2, channels=int(self.hp["ndf"]), in_channels=self.n_in + 1,
                num_layers_d=patch_layers(size, int(self.hp["d_layers"])), norm="INSTANCE",
            )

    def _saved_modules(self) -> dict[str, Any]:
        return {"G": self.nets["G"]}

    def _setup_optim(self) -> None:
        betas = tuple(self.hp.get("betas") or (0.9, 0.999))
        self.optimisers = [self._adam(self.nets["G"].parameters(), betas=betas)]  # type: ignore[arg-type]
        if "D" in self.nets:
            self.optimisers.append(self._adam(self.nets["D"].parameters(), betas=betas))  # type: ignore[arg-type]
        self._gan = gan_loss(str(self.hp.get("gan_loss") or "vanilla"))

    def _pixel_loss(self, pred: Any, y: Any) -> Any:
        F = import_torch().nn.functional
        air = self.hp.get("air_weight")
        if air is None or float(air) >= 1.0:
            return F.mse_loss(pred, y) if self.hp.get("loss") == "mse" else F.l1_loss(pred, y)
        # down-weight background (target below 0.1 net units: air in CT, outside the head in MR), whose
        # noise would otherwise dominate the loss
        weight = 1.0 + (float(air) - 1.0) * (y < 0.1).float()
        err = (pred - y).pow(2) if self.hp.get("loss") == "mse" else (pred - y).abs()
        return (weight * err).sum() / weight.sum().clamp_min(1.0)

    def _train_step(self, x: Any, y: Any, extra: Any, gen: Any, step: int, steps: int) -> dict[str, Any]:
        torch = import_torch()
        G = self.nets["G"]
        amp = bool(self.hp.get("amp", True))
        device = x.device
        opt_g = self.optimisers[0]
        if "D" not in self.nets:
            with autocast(device, amp):
                loss = self._pixel_loss(G(x).float(), y)
            opt_g.zero_grad(set_to_none=True)
            loss.backward()
            opt_g.step()
            return {"pixel": loss.detach()}
        D, opt_d = self.nets["D"], self.optimisers[1]
        w_gan, w_pix = float(self.hp["gan_weight"]), float(self.hp.get("pixel_weight") or 100.0)
        with autocast(device, amp):
            fake = G(x)
            d_fake = D(torch.cat([x, fake.detach()], 1))[-1].float()
            d_real = D(torch.cat([x, y], 1))[-1].float()
            loss_d = 0.5 * (self._gan(d_fake, False) + self._gan(d_real, True))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        with autocast(device, amp):
            g_adv = self._gan(D(torch.cat([x, fake], 1))[-1].float(), True)
            pix = self._pixel_loss(fake.float(), y)
            loss_g = w_gan * g_adv + w_pix * pix
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        return {"pixel": pix.detach(), "g_adv": g_adv.detach(), "d": loss_d.detach()}

    def _infer(self, x: Any) -> Any:
        return self.nets["G"](x)


_GAN_DEFAULTS = {"air_weight": None, "gan_weight": None, "pixel_weight": None, "ndf": None, "d_layers": None, "gan_loss": None,
                 "betas": None, "loss": None}


class UNet(_PairedRegressor):
    """MONAI ``BasicUNet`` (2D) trained slice-wise with an L1 loss."""

    card = MethodCard(
        name="unet",
        version="1.0",
        varying_target="per_target",
        summary=(
            "2D U-Net (MONAI BasicUNet: two 3x3 conv + instance norm + LeakyReLU per level, 4 poolings, "
            "transposed-conv upsampling) mapping the input modalities, stacked as channels, to the target "
            "slice by slice; L1 loss, Adam."
        ),
        paper=(
            "Ronneberger O., Fischer P., Brox T., U-Net: Convolutional Networks for Biomedical Image "
            "Segmentation, MICCAI 2015, arXiv:1505.04597"
        ),
        differences_from_paper=(
            "Regression instead of segmentation: linear 1-channel output and an L1 loss instead of a softmax "
            "with weighted cross-entropy; instance norm and LeakyReLU (MONAI BasicUNet) instead of plain "
            "ReLU; padded convolutions (no cropping); Adam instead of SGD with momentum 0.99. 'paper' keeps "
            "the published widths 64-1024; 'small' uses widths 16-128 and 450 steps of batch 8 on whole "
            "slices (about 2 minutes on 2 CPU cores; random crops hurt here: instance-norm statistics of a crop "
            "differ from those of the whole slice seen at inference). Options added for thick-to-thin CT "
            "(ct_thin): 'plane' (axial, default; coronal or sagittal: the 2D slices it trains and predicts on, "
            "which then contain z) and 'residual' (false, default; true: the network predicts a correction added "
            "to input channel 0, which is first re-made as the task's physical estimate when the training "
            "cases record their degradation: cubic interpolation along z for a slice factor (ct_thin), the "
            "dose scaling pre + (low - pre) / dose for a contrast dose (gbca_lowdose))."
        ),
    )
    defaults = {**COMMON_DEFAULTS, "features": None, **_GAN_DEFAULTS, "plane": "axial", "residual": False}
    #: added for ct_thin (issue 16); at their defaults they leave earlier unet run identities unchanged
    late_options = ("plane", "residual")
    presets = {
        "small": {"features": [16, 16, 32, 64, 128, 16], "steps": 450, "batch_size": 8, "lr": 2e-3,
                  "lr_schedule": "cosine", "crop": 0, "flip": True, "gan_weight": 0.0, "loss": "l1"},
        "paper": {"features": [64, 128, 256, 512, 1024, 64],
                  "epochs": 50, "batch_size": 16, "lr": 2e-4, "lr_schedule": "cosine", "crop": 0, "flip": True,
                  "gan_weight": 0.0, "loss": "l1"},
    }

    def _make_generator(self) -> Any:
        from monai.networks.nets import BasicUNet

        net = BasicUNet(spatial_dims=2, in_channels=self.n_in, out_channels=1,
                        features=tuple(int(f) for f in self.hp["features"]))
        if self._residual():  # the correction starts at zero: the untrained network returns its base input
            import torch

            with torch.no_grad():
                for param in net.final_conv.parameters():
                    param.zero_()
        return net


class Pix2Pix(_PairedRegressor):
    """pix2pix: U-Net generator, conditional PatchGAN discriminator, L1 weight 100."""

    card = MethodCard(
        name="pix2pix",
        version="1.0",
        varying_target="per_target",
        summary=(
            "Conditional GAN: a U-Net generator (MONAI UNet, strided convs, instance norm, LeakyReLU, skip "
            "connections) and a conditional PatchGAN discriminator (MONAI PatchDiscriminator) on the inputs "
            "stacked with the real or synthesised target; loss = GAN (BCE) + 100 x L1; Adam(2e-4, 0.5, 0.999)."
        ),
        paper=(
            "Isola P., Zhu J.-Y., Zhou T., Efros A. A., Image-to-Image Translation with Conditional "
            "Adversarial Networks, CVPR 2017, arXiv:1611.07004"
        ),
        differences_from_paper=(
            "Generator is MONAI's UNet (3x3 kernels, instance norm, no dropout) rather than the U-Net-256 "
            "with 4x4 kernels, batch norm and decoder dropout; 'paper' keeps its 8 levels (64-512 channels; "
            "slices padded to a multiple of 128); 'small' uses MONAI's BasicUNet (widths 16-128, two convs per "
            "level: the strided 4-level UNet underfitted in a CPU budget) and 2 discriminator layers. "
            "Linear output in net units instead of tanh on [-1, 1]; no random resize-and-crop jitter (random "
            "left-right flips only); 'paper' trains 200 epochs with batch 1 and the linear decay of the second "
            "half as published, 'small' 400 steps of batch 8 on whole slices (about 2 minutes on 2 CPU cores)."
        ),
    )
    defaults = {**COMMON_DEFAULTS, "generator": None, "channels": None, "features": None, **_GAN_DEFAULTS}
    presets = {
        "small": {"generator": "basic_unet", "features": [16, 16, 32, 64, 128, 16], "channels": [16, 32, 64, 128],
                  "steps": 400, "batch_size": 8, "lr": 1e-3, "lr_schedule": "cosine",
                  "crop": 0, "flip": True, "gan_weight": 1.0, "pixel_weight": 100.0, "ndf": 16, "d_layers": 2,
                  "gan_loss": "vanilla", "betas": [0.5, 0.999], "loss": "l1"},
        "paper": {"generator": "unet", "features": [16, 16, 32, 64, 128, 16],
                  "channels": [64, 128, 256, 512, 512, 512, 512, 512], "epochs": 200, "batch_size": 1, "lr": 2e-4,
                  "lr_schedule": "linear_half", "crop": 0, "flip": True, "gan_weight": 1.0, "pixel_weight": 100.0,
                  "ndf": 64, "d_layers": 3, "gan_loss": "vanilla", "betas": [0.5, 0.999], "loss": "l1"},
    }

    def multiple(self) -> int:
        hp = self.hp or self.resolve("cpu")
        if hp.get("generator") == "basic_unet":
            return 16
        return max(16, 2 ** (len(hp["channels"]) - 1))

    def _make_generator(self) -> Any:
        from monai.networks.nets import BasicUNet
        from monai.networks.nets import UNet as MonaiUNet

        if self.hp.get("generator") == "basic_unet":
            return BasicUNet(spatial_dims=2, in_channels=self.n_in, out_channels=1,
                             features=tuple(int(f) for f in self.hp["features"]))

        channels = tuple(int(c) for c in self.hp["channels"])
        return MonaiUNet(spatial_dims=2, in_channels=self.n_in, out_channels=1, channels=channels,
                         strides=(2,) * (len(channels) - 1), num_res_units=0, norm="INSTANCE",
                         act=("LEAKYRELU", {"negative_slope": 0.2}))


class RedCNN(_PairedRegressor):
    """RED-CNN for low-dose CT (and any other task): residual encoder-decoder CNN, MSE loss."""

    card = MethodCard(
        name="redcnn",
        version="1.1",
        varying_target="per_target",
        summary=(
            "Residual encoder-decoder CNN: 5 unpadded 5x5 convolutions and 5 transposed convolutions with "
            "3 shortcut connections (the input is added to the output), ReLU, MSE loss, Adam; trained on "
            "random patches, applied to whole slices."
        ),
        paper=(
            "Chen H. et al., Low-Dose CT With a Residual Encoder-Decoder Convolutional Neural Network, "
            "IEEE TMI 36(12):2524-2535, 2017, arXiv:1702.00288"
        ),
        differences_from_paper=(
            "CT intensities enter the network (input and target, MSE computed there) as asinh(HU / 50) "
            "(option hu_scale; linear around soft tissue, log-compressed for air and bone) instead of a "
            "linear [0, 1] map of the scanner range: with a linear map the ~10 HU noise is ~1% of the range "
            "the activations scale with, and in a short CPU budget the network never improved on the noisy "
            "input; other units stay in the shared net units. Augmentation is random "
            "left-right flips only (the paper also rotates and rescales); 'paper' keeps 96 filters, 5x5 "
            "kernels, 55x55 patches and lr 1e-4 but samples patches on the fly (batch 16, 100k steps) "
            "instead of a fixed pre-extracted patch set; 'small' uses 32 filters, 48x48 patches, 900 steps "
            "of batch 8 and lr 3e-4 with cosine decay (about 70 s on 2 CPU cores). With several inputs "
            "(not in the paper) the input shortcut is a learned 1x1 projection. He-initialised weights with a zero last layer (the "
            "network starts as the identity; the default initialisation lets the conv branch die) and no ReLU after the output shortcut (predictions are "
            "clamped at air afterwards)."
        ),
    )
    defaults = {**COMMON_DEFAULTS, "filters": None, "hu_scale": None, **_GAN_DEFAULTS}
    presets = {
        "small": {"filters": 32, "steps": 900, "batch_size": 8, "lr": 3e-4, "lr_schedule": "cosine", "crop": 48,
                  "flip": True, "gan_weight": 0.0, "loss": "mse", "hu_scale": 50.0},
        "paper": {"filters": 96, "steps": 100_000, "batch_size": 16, "lr": 1e-4, "lr_schedule": "step_half",
                  "crop": 55, "flip": True, "gan_weight": 0.0, "loss": "mse", "hu_scale": 50.0},
    }

    def multiple(self) -> int:
        return 1

    # Internal intensity space. In net units ((HU + 1000) / 1000) the quantum noise of CT (~0.01) is tiny
    # next to the range of the image (air 0, bone ~2): the ReLU activations scale with that range, so one
    # Adam step moves the output by far more than the noise it has to remove and training never gets
    # below the noisy input. CT channels (input and target) are therefore mapped to
    # asinh((HU) / hu_scale): linear (HU / hu_scale) around water and soft tissue, logarithmically
    # compressed for air and bone, invertible; other channels stay in net units.
    def _hu_channels(self) -> tuple[list[int], bool]:
        from cmsbench.baselines.learned._common import HU

        assert self.scaling is not None
        kinds = self.scaling.kinds
        return [c for c, k in enumerate(kinds[:-1]) if k == HU], kinds[-1] == HU

    def _internal(self, t: Any) -> Any:
        """Net units of a CT channel -> internal units."""
        torch = import_torch()
        scale = float(self.hp.get("hu_scale") or 0.0)
        return torch.asinh((t.float() - 1.0) * (1000.0 / scale)) if scale > 0 else t

    def _from_internal(self, t: Any) -> Any:
        torch = import_torch()
        scale = float(self.hp.get("hu_scale") or 0.0)
        return torch.sinh(t.float()) * (scale / 1000.0) + 1.0 if scale > 0 else t

    def _inputs_internal(self, x: Any) -> Any:
        channels, _ = self._hu_channels()
        if not channels or not float(self.hp.get("hu_scale") or 0.0) > 0:
            return x
        x = x.float().clone()
        x[:, channels] = self._internal(x[:, channels])
        return x

    def _pixel_loss(self, pred: Any, y: Any) -> Any:
        scaled = self._hu_channels()[1] and float(self.hp.get("hu_scale") or 0.0) > 0
        if scaled and self.hp.get("air_weight") is not None:
            # the base class finds air as y < 0.1 net units (HU < -900): the same threshold internally
            air = float(self.hp["air_weight"])
            threshold = math.asinh(-900.0 / float(self.hp["hu_scale"]))
            weight = 1.0 + (air - 1.0) * (y < threshold).float()
            err = (pred - y).pow(2) if self.hp.get("loss") == "mse" else (pred - y).abs()
            return (weight * err).sum() / weight.sum().clamp_min(1.0)
        return super()._pixel_loss(pred, y)

    def _train_step(self, x: Any, y: Any, extra: Any, gen: Any, step: int, steps: int) -> dict[str, Any]:
        if self._hu_channels()[1]:
            y = self._internal(y)
        return super()._train_step(self._inputs_internal(x), y, extra, gen, step, steps)

    def _infer(self, x: Any) -> Any:
        out = self.nets["G"](self._inputs_internal(x))
        return self._from_internal(out) if self._hu_channels()[1] else out

    def _make_generator(self) -> Any:
        from cmsbench.baselines.learned.networks import RedCNN as RedCNNNet

        return RedCNNNet(self.n_in, 1, filters=int(self.hp["filters"]))


class ResViT(_PairedRegressor):
    """ResViT-style hybrid: CNN encoder/decoder, residual CNN bottleneck with transformer modules."""

    card = MethodCard(
        name="resvit",
        version="1.0",
        varying_target="per_target",
        summary=(
            "CNN encoder (x4 downsampling) -> residual CNN blocks in the bottleneck, with transformer "
            "modules (patch embedding, MONAI TransformerBlocks, un-embedding, 1x1 fusion with the CNN "
            "features) inserted before some of them -> CNN decoder; inputs stacked as channels; L1 + "
            "conditional PatchGAN loss in 'paper', L1 only in 'small'."
        ),
        paper=(
            "Dalmaz O., Yurt M., Cukur T., ResViT: Residual Vision Transformers for Multimodal Medical Image "
            "Synthesis, IEEE TMI 41(10):2598-2614, 2022, arXiv:2106.16031"
        ),
        differences_from_paper=(
            "No ImageNet-pretrained R50+ViT-B/16: the transformer is trained from scratch, embeds the "
            "bottleneck features directly with a strided patch convolution, and its position embedding is "
            "interpolated to other grids; the ART block is simplified to 'transformer output fused with the CNN "
            "features by a 1x1 conv, then a residual CNN block'; linear output instead of tanh; no "
            "two-stage (CNN pre-training then joint) schedule. 'paper': ngf 64, 9 blocks, transformers before "
            "blocks 1 and 6 with shared weights, 768 hidden / 12 layers / 12 heads, L1 weight 100 + GAN, 100 "
            "epochs, Adam(2e-4, 0.5, 0.999) with linear decay over the second half. 'small': ngf 16, 3 blocks, "
            "one 2-layer transformer of width 64 on 2x2 patches, L1 only, 350 steps of batch 8 on whole slices "
            "(about 2 minutes on 2 CPU cores)."
        ),
    )
    defaults = {**COMMON_DEFAULTS, "ngf": None, "n_blocks": None, "vit_positions": None, "hidden": None,
                "layers": None, "heads": None, "mlp": None, "patch": None, **_GAN_DEFAULTS}
    presets = {
        "small": {"ngf": 16, "n_blocks": 3, "vit_positions": [1], "hidden": 64, "layers": 2, "heads": 4, "mlp": 128,
                  "patch": 2, "steps": 350, "batch_size": 8, "lr": 1e-3, "lr_schedule": "cosine", "crop": 0,
                  "flip": True, "gan_weight": 0.0, "loss": "l1", "betas": [0.9, 0.999]},
        "paper": {"ngf": 64, "n_blocks": 9, "vit_positions": [0, 5], "hidden": 768, "layers": 12, "heads": 12,
                  "mlp": 3072, "patch": 4, "epochs": 100, "batch_size": 1, "lr": 2e-4, "lr_schedule": "linear_half",
                  "crop": 0, "flip": True, "gan_weight": 1.0, "pixel_weight": 100.0, "ndf": 64, "d_layers": 3,
                  "gan_loss": "vanilla", "betas": [0.5, 0.999], "loss": "l1"},
    }

    def multiple(self) -> int:
        patch = self.hp.get("patch") or self.resolve("cpu")["patch"]
        return max(16, 4 * int(patch))

    def _make_generator(self) -> Any:
        from cmsbench.baselines.learned.networks import ResViTNet

        hw = self.train_info.get("train_hw") or [256, 256]
        grid = max(1, min(hw) // (4 * int(self.hp["patch"])))
        return ResViTNet(self.n_in, 1, ngf=int(self.hp["ngf"]), n_blocks=int(self.hp["n_blocks"]),
                         vit_positions=tuple(self.hp["vit_positions"]), hidden=int(self.hp["hidden"]),
                         layers=int(self.hp["layers"]), heads=int(self.hp["heads"]), mlp=int(self.hp["mlp"]),
                         patch=int(self.hp["patch"]), grid=grid, share_vit=True)

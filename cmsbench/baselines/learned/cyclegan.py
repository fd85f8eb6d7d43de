"""CycleGAN: unpaired translation. Training never uses the pairing: each input slice is matched with a
target slice drawn at random from a *different* training subject."""

from __future__ import annotations

from typing import Any

import numpy as np

from cmsbench.baselines.base import MethodCard
from cmsbench.baselines.learned._common import (
    COMMON_DEFAULTS,
    DeviceData,
    TorchSliceMethod,
    autocast,
    gan_loss,
    import_torch,
    random_crop_flip,
)


def unpaired_partner(subject: np.ndarray, index: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """For each slice in ``index``, a random slice of another subject (any slice when there is one subject)."""
    n = len(subject)
    partner = rng.integers(0, n, size=len(index))
    if len(np.unique(subject)) < 2:
        return partner
    for _ in range(64):
        clash = subject[partner] == subject[index]
        if not clash.any():
            break
        partner[clash] = rng.integers(0, n, size=int(clash.sum()))
    return partner


class CycleGAN(TorchSliceMethod):
    """Two ResNet generators (inputs -> target, target -> inputs), two PatchGAN discriminators, LSGAN +
    cycle-consistency (+ identity) losses, trained on unpaired slices."""

    card = MethodCard(
        name="cyclegan",
        version="1.0",
        varying_target="per_target",
        summary=(
            "Unpaired translation: generators G (inputs -> target) and F (target -> inputs) with ResNet blocks, "
            "PatchGAN discriminators on each domain (MONAI PatchDiscriminator), least-squares GAN loss, "
            "cycle-consistency weight 10 (+ identity loss when the domains have the same channel count). "
            "The pairing of the data is never used: each input slice is trained against a random target "
            "slice of a different subject."
        ),
        paper=(
            "Zhu J.-Y., Park T., Isola P., Efros A. A., Unpaired Image-to-Image Translation using "
            "Cycle-Consistent Adversarial Networks, ICCV 2017, arXiv:1703.10593"
        ),
        differences_from_paper=(
            "Linear generator output in net units instead of tanh on [-1, 1]; no image pool of past fakes "
            "(discriminators see the current fakes); augmentation is random crops and left-right flips only. "
            "'paper': ngf 64, 9 ResNet blocks, 3-layer PatchGAN with ndf 64, identity weight 0.5, batch 1, "
            "200 epochs with linear decay over the second half, Adam(2e-4, 0.5, 0.999). 'small': ngf 16, 3 "
            "blocks, 2-layer PatchGAN with ndf 16, no identity loss, 400 steps of batch 4 on 64x64 crops "
            "(about 2 minutes on 2 CPU cores); with so little training the output is blurrier and its "
            "intensity mapping less exact than a paired method's."
        ),
    )
    defaults = {**COMMON_DEFAULTS, "ngf": None, "n_blocks": None, "ndf": None, "d_layers": None,
                "cycle_weight": None, "identity_weight": None, "gan_loss": None, "betas": None}
    presets = {
        "small": {"ngf": 16, "n_blocks": 3, "ndf": 16, "d_layers": 2, "cycle_weight": 10.0, "identity_weight": 0.0,
                  "gan_loss": "lsgan", "betas": [0.5, 0.999], "steps": 400, "batch_size": 4, "lr": 1e-3,
                  "lr_schedule": "cosine", "crop": 64, "flip": True},
        "paper": {"ngf": 64, "n_blocks": 9, "ndf": 64, "d_layers": 3, "cycle_weight": 10.0, "identity_weight": 0.5,
                  "gan_loss": "lsgan", "betas": [0.5, 0.999], "epochs": 200, "batch_size": 1, "lr": 2e-4,
                  "lr_schedule": "linear_half", "crop": 0, "flip": True},
    }

    def multiple(self) -> int:
        return 16

    def _build(self) -> None:
        from cmsbench.baselines.learned.networks import ResnetGenerator, patch_layers

        ngf, blocks = int(self.hp["ngf"]), int(self.hp["n_blocks"])
        self.nets = {"G": ResnetGenerator(self.n_in, 1, ngf, blocks)}
        if self._inference_only:
            return
        from monai.networks.nets import PatchDiscriminator

        size = min(self.train_info.get("train_hw") or [256])
        layers = patch_layers(size, int(self.hp["d_layers"]))
        ndf = int(self.hp["ndf"])
        self.nets["F"] = ResnetGenerator(1, self.n_in, ngf, blocks)
        self.nets["D_target"] = PatchDiscriminator(spatial_dims=2, channels=ndf, in_channels=1, num_layers_d=layers,
                                                   norm="INSTANCE")
        self.nets["D_input"] = PatchDiscriminator(spatial_dims=2, channels=ndf, in_channels=self.n_in,
                                                  num_layers_d=layers, norm="INSTANCE")

    def _saved_modules(self) -> dict[str, Any]:
        return {"G": self.nets["G"]}

    def _setup_optim(self) -> None:
        import itertools

        betas = tuple(self.hp["betas"])
        gens = itertools.chain(self.nets["G"].parameters(), self.nets["F"].parameters())
        discs = itertools.chain(self.nets["D_target"].parameters(), self.nets["D_input"].parameters())
        self.optimisers = [self._adam(gens, betas=betas), self._adam(discs, betas=betas)]  # type: ignore[arg-type]
        self._gan = gan_loss(str(self.hp["gan_loss"]))
        self._rng = np.random.default_rng(self.seed + 1)

    def _extra_batch(self, data: DeviceData, index: Any, batch: int, gen: Any, crop: int, flip: bool) -> Any:
        """The unpaired target batch: random slices of other subjects (own crop and flip)."""
        torch = import_torch()
        partner = unpaired_partner(data.subject, index.numpy(), self._rng)
        _, y = data.batch(torch.from_numpy(partner))
        if crop or flip:
            (y,) = random_crop_flip([y], crop, flip, gen)
        return y

    def _train_step(self, x: Any, y_paired: Any, y: Any, gen: Any, step: int, steps: int) -> dict[str, Any]:
        # y_paired (the real partner of x) is deliberately ignored: CycleGAN is unpaired.
        torch = import_torch()
        F_ = torch.nn.functional
        G, Fn, Dt, Di = self.nets["G"], self.nets["F"], self.nets["D_target"], self.nets["D_input"]
        opt_g, opt_d = self.optimisers
        amp = bool(self.hp.get("amp", True))
        w_cyc, w_id = float(self.hp["cycle_weight"]), float(self.hp["identity_weight"])
        with autocast(x.device, amp):
            fake_y = G(x)
            fake_x = Fn(y)
            adv = self._gan(Dt(fake_y)[-1].float(), True) + self._gan(Di(fake_x)[-1].float(), True)
            cyc = F_.l1_loss(Fn(fake_y).float(), x) + F_.l1_loss(G(fake_x).float(), y)
            loss_g = adv + w_cyc * cyc
            if w_id > 0 and self.n_in == 1:
                ident = F_.l1_loss(G(y).float(), y) + F_.l1_loss(Fn(x).float(), x)
                loss_g = loss_g + w_id * w_cyc * ident
        for d in (Dt, Di):
            d.requires_grad_(False)
        opt_g.zero_grad(set_to_none=True)
        loss_g.backward()
        opt_g.step()
        for d in (Dt, Di):
            d.requires_grad_(True)
        with autocast(x.device, amp):
            loss_d = 0.5 * (self._gan(Dt(y)[-1].float(), True) + self._gan(Dt(fake_y.detach())[-1].float(), False))
            loss_d = loss_d + 0.5 * (self._gan(Di(x)[-1].float(), True) + self._gan(Di(fake_x.detach())[-1].float(), False))
        opt_d.zero_grad(set_to_none=True)
        loss_d.backward()
        opt_d.step()
        return {"adv": adv.detach(), "cycle": cyc.detach(), "d": loss_d.detach()}

    def _infer(self, x: Any) -> Any:
        return self.nets["G"](x)

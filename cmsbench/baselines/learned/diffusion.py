"""The diffusion family: ``cond_ddpm`` (conditional diffusion in image space) and ``cola_diff``
(conditional latent diffusion: autoencoder + latent denoiser conditioned on every input + DDIM).

Both use MONAI's ``DiffusionModelUNet``, ``DDPMScheduler`` (training noise) and ``DDIMScheduler``
(sampling); ``cola_diff`` adds MONAI's ``AutoencoderKL``. The denoiser predicts the clean sample (x0,
``prediction_type="sample"``) by default: on small budgets an epsilon-predicting denoiser learns the
high-noise end far too slowly, and x0 prediction lets a handful of DDIM steps give a usable sample.

Noise at sampling time comes from a generator seeded with ``torch.initial_seed()``: the runner seeds
torch per case, so a prediction is reproducible for a given (run seed, case). ``last_nfe`` is the number
of denoiser evaluations per slice in the last ``predict`` (the DDIM step count); ``last_denoiser_calls``
counts the batched network calls.
"""

from __future__ import annotations

from typing import Any

from cmsbench.baselines.base import MethodCard
from cmsbench.baselines.learned._common import (
    COMMON_DEFAULTS,
    DeviceData,
    TorchSliceMethod,
    autocast,
    import_torch,
    lr_factor,
    random_crop_flip,
)
from cmsbench.errors import MethodError

_DIFFUSION_DEFAULTS = {
    "channels": None,
    "num_res_blocks": None,
    "attention_levels": None,
    "norm_groups": None,
    "num_head_channels": None,
    "train_timesteps": None,
    "schedule": None,
    "prediction_type": None,  # sample (x0), epsilon or v_prediction
    "loss": None,  # l1 or mse
    "sampling_steps": None,  # DDIM steps (= NFE per slice)
    "eta": 0.0,  # DDIM eta (0: deterministic given the initial noise)
    "shift": 1.0,  # diffusion space = net units - shift (background at -shift)
    "train_t": None,  # uniform (every timestep) or sampler (only the DDIM sampler's timesteps)
}


class _Diffusion(TorchSliceMethod):
    """Common parts: the MONAI denoiser, the training step on (clean sample, condition) pairs and the
    DDIM sampling loop. Subclasses define the sample space (image or latent)."""

    def __init__(self, **options: Any) -> None:
        super().__init__(**options)
        self.last_nfe = 0
        self.last_denoiser_calls = 0
        self._noise_gen: Any = None

    # ------------------------------------------------------------------------------ pieces
    def _denoiser(self, in_channels: int, out_channels: int) -> Any:
        from monai.networks.nets import DiffusionModelUNet

        channels = tuple(int(c) for c in self.hp["channels"])
        attention = tuple(bool(a) for a in (self.hp.get("attention_levels") or [False] * len(channels)))
        return DiffusionModelUNet(
            spatial_dims=2, in_channels=in_channels, out_channels=out_channels, channels=channels,
            attention_levels=attention, num_res_blocks=int(self.hp["num_res_blocks"]),
            norm_num_groups=int(self.hp["norm_groups"]), num_head_channels=int(self.hp.get("num_head_channels") or 8),
        )

    def _schedulers(self) -> tuple[Any, Any]:
        from monai.networks.schedulers import DDIMScheduler, DDPMScheduler

        kind = str(self.hp["prediction_type"])
        if kind not in ("sample", "epsilon", "v_prediction"):
            raise MethodError(f"prediction_type must be sample, epsilon or v_prediction, got {kind!r}")
        common = {"num_train_timesteps": int(self.hp["train_timesteps"]), "schedule": str(self.hp["schedule"]),
                  "prediction_type": kind, "clip_sample": False}
        return DDPMScheduler(**common), DDIMScheduler(**common)

    def _denoiser_step(self, clean: Any, cond: Any, gen: Any) -> dict[str, Any]:
        """One optimiser step of the denoiser on the diffusion loss; returns the detached loss."""
        loss = self._diffusion_loss(self.nets["denoiser"], clean, cond, gen)
        opt = self.optimisers[0]
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        return {"diffusion": loss.detach()}

    def _diffusion_loss(self, model: Any, clean: Any, cond: Any, gen: Any) -> Any:
        """Noise ``clean`` at random timesteps and score the denoiser's prediction."""
        torch = import_torch()
        F = torch.nn.functional
        sched = self._train_sched
        n = clean.shape[0]
        if clean.device.type != "cpu":  # draw on the device: no host-device copies per step
            if getattr(self, "_train_gen", None) is None or self._train_gen.device != clean.device:
                seed = int(torch.randint(0, 2**62, (1,), generator=gen))
                self._train_gen = torch.Generator(device=clean.device).manual_seed(seed)
            gen = self._train_gen
        if self.hp.get("train_t") == "sampler":  # only the timesteps the DDIM sampler visits
            visits = self._sampler_timesteps().to(gen.device)
            t = visits[torch.randint(0, len(visits), (n,), generator=gen, device=gen.device)].to(clean.device)
        else:
            t = torch.randint(0, sched.num_train_timesteps, (n,), generator=gen, device=gen.device).to(clean.device)
        noise = torch.randn(clean.shape, generator=gen, device=gen.device).to(clean.device)
        noisy = sched.add_noise(clean, noise, t)
        kind = str(self.hp["prediction_type"])
        goal = clean if kind == "sample" else noise if kind == "epsilon" else sched.get_velocity(clean, noise, t)
        with autocast(clean.device, bool(self.hp.get("amp", True))):
            out = model(torch.cat([noisy, cond], 1), timesteps=t).float()
        return F.l1_loss(out, goal) if self.hp["loss"] == "l1" else F.mse_loss(out, goal)

    def _sampler_timesteps(self) -> Any:
        from monai.networks.schedulers import DDIMScheduler

        if getattr(self, "_visits", None) is None:
            probe = DDIMScheduler(num_train_timesteps=int(self.hp["train_timesteps"]), schedule=str(self.hp["schedule"]))
            probe.set_timesteps(int(self.hp["sampling_steps"]))
            self._visits = probe.timesteps.clone().long()
        return self._visits

    def _ddim_sample(self, model: Any, cond: Any, shape: tuple[int, ...]) -> Any:
        """DDIM from pure noise, conditioned on ``cond`` (channels concatenated to the noisy sample)."""
        torch = import_torch()
        sched = self._ddim
        steps = int(self.hp["sampling_steps"])
        sched.set_timesteps(steps, device=cond.device)
        x = torch.randn(shape, generator=self._noise_gen, device=self._noise_gen.device).to(cond.device)
        for t in sched.timesteps:
            tt = torch.full((shape[0],), int(t), device=cond.device, dtype=torch.long)
            with autocast(cond.device, bool(self.hp.get("amp", True))):
                out = model(torch.cat([x, cond.to(x.dtype)], 1), timesteps=tt).float()
            x, _ = sched.step(out, int(t), x, eta=float(self.hp.get("eta") or 0.0), generator=self._noise_gen)
            self.last_denoiser_calls += 1
        self.last_nfe = steps
        return x

    def _begin_predict(self) -> None:
        torch = import_torch()
        self.last_nfe = 0
        self.last_denoiser_calls = 0
        device = self._device if self._device is not None else torch.device("cpu")
        self._noise_gen = torch.Generator(device=device).manual_seed(torch.initial_seed() % (2**63))
        if not hasattr(self, "_ddim"):
            self._train_sched, self._ddim = self._schedulers()


class CondDDPM(_Diffusion):
    """Conditional diffusion in image space: the denoiser sees the noisy target slice and the input slices."""

    card = MethodCard(
        name="cond_ddpm",
        version="1.0",
        varying_target="per_target",
        stochastic=True,
        summary=(
            "Conditional denoising diffusion in image space (Palette / SR3-style conditioning): a MONAI "
            "DiffusionModelUNet receives the noisy target slice concatenated with every input slice and the "
            "timestep; trained with the DDPM forward process (1000 steps), sampled with DDIM. Predicts the "
            "clean image (x0) by default."
        ),
        paper=(
            "Ho J., Jain A., Abbeel P., Denoising Diffusion Probabilistic Models, NeurIPS 2020, "
            "arXiv:2006.11239; conditioning by concatenation as in Saharia C. et al., Palette: Image-to-Image "
            "Diffusion Models, SIGGRAPH 2022, arXiv:2111.05826; DDIM sampling: Song J. et al., ICLR 2021, "
            "arXiv:2010.02502"
        ),
        differences_from_paper=(
            "x0 prediction with an L1 loss instead of epsilon prediction with MSE (epsilon remains available as "
            "prediction_type=epsilon); DDIM with few steps instead of 1000 ancestral steps; linear schedule, "
            "no EMA of the weights. 'paper': channels 64/128/256/256, 2 residual blocks per level, attention at "
            "the two lowest resolutions, timesteps drawn uniformly, 100 epochs of batch 16, 50 DDIM steps. "
            "'small': channels 16/32/64, one residual block, attention only in MONAI's middle block, 300 steps "
            "of batch 8 on 64x64 crops, trained only at the 4 timesteps its 4-step DDIM sampler visits "
            "(train_t=sampler): essentially a regression network refined by 3 denoising steps, so samples are "
            "smoother and less diverse than a fully trained diffusion model's. Measured on the brain phantoms "
            "(2 CPU cores): 27.6 dB with 500 steps vs 27.9 dB for the small U-Net; 4 NFE, about 5 s per "
            "96x96x24 volume on CPU."
        ),
    )
    defaults = {**COMMON_DEFAULTS, **_DIFFUSION_DEFAULTS}
    presets = {
        "small": {"channels": [16, 32, 64], "num_res_blocks": 1, "attention_levels": [False, False, False],
                  "norm_groups": 8, "num_head_channels": 8, "train_timesteps": 1000, "schedule": "linear_beta",
                  "prediction_type": "sample", "loss": "l1", "sampling_steps": 4, "train_t": "sampler", "steps": 300,
                  "batch_size": 8, "lr": 2e-3, "lr_schedule": "cosine", "crop": 64, "flip": True},
        "paper": {"channels": [64, 128, 256, 256], "num_res_blocks": 2, "attention_levels": [False, False, True, True],
                  "norm_groups": 32, "num_head_channels": 32, "train_timesteps": 1000, "schedule": "linear_beta",
                  "prediction_type": "sample", "loss": "l1", "sampling_steps": 50, "train_t": "uniform", "epochs": 100,
                  "batch_size": 16, "lr": 1e-4, "lr_schedule": "cosine", "crop": 0, "flip": True},
    }

    def _build(self) -> None:
        self.nets = {"denoiser": self._denoiser(1 + self.n_in, 1)}
        self._train_sched, self._ddim = self._schedulers()

    def _setup_optim(self) -> None:
        self.optimisers = [self._adam(self.nets["denoiser"].parameters())]

    def _train_step(self, x: Any, y: Any, extra: Any, gen: Any, step: int, steps: int) -> dict[str, Any]:
        return self._denoiser_step(y - float(self.hp["shift"]), x, gen)

    def _infer(self, x: Any) -> Any:
        x = x.float()
        sample = self._ddim_sample(self.nets["denoiser"], x, (x.shape[0], 1, *x.shape[-2:]))
        return sample + float(self.hp["shift"])


class ColaDiff(_Diffusion):
    """Conditional latent diffusion: a KL autoencoder shared by all modalities, a latent denoiser
    conditioned on the latents of every input modality, DDIM sampling, decoding."""

    card = MethodCard(
        name="cola_diff",
        version="1.0",
        varying_target="per_target",
        stochastic=True,
        summary=(
            "Conditional latent diffusion for multi-modal synthesis: a MONAI AutoencoderKL (one for all "
            "modalities, trained on target and input slices) maps slices to a latent space; a MONAI "
            "DiffusionModelUNet denoises the target latent conditioned on the latents of every input "
            "modality (concatenated as channels); DDIM sampling, then decoding. Predicts the clean latent (x0)."
        ),
        paper=(
            "Jiang L., Mao Y., Wang X., Chen X., Li C., CoLa-Diff: Conditional Latent Diffusion Model for "
            "Multi-Modal MRI Synthesis, MICCAI 2023, arXiv:2303.14081"
        ),
        differences_from_paper=(
            "No structural guidance from brain-region masks and no auto-weight adaptation of the conditions: "
            "the input latents are simply concatenated to the noisy latent; the autoencoder is trained with L1 "
            "+ KL only (no perceptual or adversarial loss); x0 prediction with an L1 loss and DDIM with few "
            "steps; latents rescaled by their train-set standard deviation (as in latent diffusion). 'paper': "
            "autoencoder channels 64/128/256 (x4 downsampling, 4 latent channels), denoiser 128/256/256 with "
            "attention at the lowest resolution, timesteps drawn uniformly, 50 DDIM steps, 100 + 100 epochs. "
            "'small': autoencoder 16/32 (x2 downsampling, 4 latent channels) trained 200 steps, denoiser 32/64 "
            "for 250 steps, both on 64x64 crops, the denoiser trained only at the timesteps of its 4-step DDIM "
            "sampler (about 2 minutes on 2 CPU cores); the autoencoder's reconstruction error bounds its "
            "quality, and with 4 NFE samples are close to a regression output (little diversity)."
        ),
    )
    defaults = {**COMMON_DEFAULTS, **_DIFFUSION_DEFAULTS, "ae_channels": None, "latent_channels": None,
                "ae_steps": None, "ae_epochs": None, "ae_lr": None, "kl_weight": None}
    presets = {
        "small": {"ae_channels": [16, 32], "latent_channels": 4, "ae_steps": 200, "ae_lr": 2e-3, "kl_weight": 1e-6,
                  "channels": [32, 64], "num_res_blocks": 1, "attention_levels": [False, False], "norm_groups": 8,
                  "num_head_channels": 8, "train_timesteps": 1000, "schedule": "linear_beta",
                  "prediction_type": "sample", "loss": "l1", "sampling_steps": 4, "train_t": "sampler", "steps": 250,
                  "batch_size": 8, "lr": 2e-3, "lr_schedule": "cosine", "crop": 64, "flip": True},
        "paper": {"ae_channels": [64, 128, 256], "latent_channels": 4, "ae_epochs": 100, "ae_lr": 1e-4,
                  "kl_weight": 1e-6, "channels": [128, 256, 256], "num_res_blocks": 2,
                  "attention_levels": [False, False, True], "norm_groups": 32, "num_head_channels": 32,
                  "train_timesteps": 1000, "schedule": "linear_beta", "prediction_type": "sample", "loss": "l1",
                  "sampling_steps": 50, "train_t": "uniform", "epochs": 100, "batch_size": 16, "lr": 1e-4, "lr_schedule": "cosine",
                  "crop": 0, "flip": True},
    }

    def multiple(self) -> int:
        return 16

    def _build(self) -> None:
        from monai.networks.nets import AutoencoderKL

        ae_channels = tuple(int(c) for c in self.hp["ae_channels"])
        latent = int(self.hp["latent_channels"])
        groups = int(self.hp["norm_groups"])
        self.nets = {
            "autoencoder": AutoencoderKL(
                spatial_dims=2, in_channels=1, out_channels=1, channels=ae_channels, latent_channels=latent,
                num_res_blocks=1, attention_levels=(False,) * len(ae_channels), norm_num_groups=min(groups, ae_channels[0]),
                with_encoder_nonlocal_attn=False, with_decoder_nonlocal_attn=False,
            ),
            "denoiser": self._denoiser(latent * (1 + self.n_in), latent),
        }
        self._train_sched, self._ddim = self._schedulers()
        torch = import_torch()
        self.nets["latent_stats"] = _Buffer(torch.ones(1))

    def _saved_modules(self) -> dict[str, Any]:
        return self.nets

    def _setup_optim(self) -> None:
        self.optimisers = [self._adam(self.nets["denoiser"].parameters())]

    # ---------------------------------------------------------------------------- latents
    def _encode(self, images: Any) -> Any:
        """(B, K, H, W) images -> (B, K * latent, h, w) scaled posterior means, one modality at a time."""
        torch = import_torch()
        ae = self.nets["autoencoder"]
        scale = self.nets["latent_stats"].value
        parts = [ae.encode(images[:, k:k + 1] - float(self.hp["shift"]))[0] for k in range(images.shape[1])]
        return torch.cat(parts, 1) * scale

    def _decode(self, latent: Any) -> Any:
        ae = self.nets["autoencoder"]
        return ae.decode(latent / self.nets["latent_stats"].value) + float(self.hp["shift"])

    def _train(self, data: DeviceData, steps: int, seed: int) -> None:
        """Stage 1: the autoencoder on target and input slices; stage 2: the latent denoiser."""
        import time

        torch = import_torch()
        F = torch.nn.functional
        gen = torch.Generator().manual_seed(seed)
        ae = self.nets["autoencoder"]
        batch = int(self.hp["batch_size"])
        crop, flip = int(self.hp.get("crop") or 0), bool(self.hp.get("flip"))
        if self.hp.get("ae_epochs"):
            ae_steps = max(1, int(float(self.hp["ae_epochs"]) * data.n * (1 + self.n_in) / batch))
        else:
            ae_steps = int(self.hp["ae_steps"])
        opt = self._adam(ae.parameters())
        ae.train()
        kl_w, ae_lr = float(self.hp["kl_weight"]), float(self.hp["ae_lr"])
        budget = float(self.hp.get("train_seconds") or 0.0)
        t0 = time.perf_counter()
        rec = torch.zeros(())
        done_ae = 0
        for step in range(ae_steps):
            for group in opt.param_groups:
                frac = step / ae_steps
                if budget:
                    frac = max(frac, (time.perf_counter() - t0) / (budget / 2))
                group["lr"] = ae_lr * lr_factor("cosine", frac)
            xb, yb = data.batch(torch.randint(0, data.n, (batch,), generator=gen))
            xb, yb = random_crop_flip([xb, yb], crop, flip, gen)
            images = torch.cat([yb, xb], 1)  # every modality, one channel each
            pick = torch.randint(0, images.shape[1], (images.shape[0],), generator=gen).to(images.device)
            img = images[torch.arange(images.shape[0], device=images.device), pick][:, None] - float(self.hp["shift"])
            with autocast(img.device, bool(self.hp.get("amp", True))):
                recon, mu, sigma = ae(img)
            recon, mu, sigma = recon.float(), mu.float(), sigma.float()
            kl = 0.5 * torch.mean(mu.pow(2) + sigma.pow(2) - torch.log(sigma.pow(2) + 1e-8) - 1)
            rec = F.l1_loss(recon, img)
            loss = rec + kl_w * kl
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            done_ae += 1
            if budget and time.perf_counter() - t0 > budget / 2:
                break
        ae.eval()
        ae.requires_grad_(False)
        # latent scale: 1 / std of the target latents over (up to) 64 training slices
        with torch.no_grad():
            self.nets["latent_stats"].value.fill_(1.0)
            probe = torch.linspace(0, data.n - 1, min(64, data.n)).long()
            _, yb = data.batch(probe)
            z = self._encode(yb.float())
            self.nets["latent_stats"].value.fill_(float(1.0 / z.std().clamp_min(1e-6)))
        self.train_info.update(ae_steps=done_ae, ae_l1=float(rec.detach()), ae_s=time.perf_counter() - t0)
        if budget:
            self.hp = {**self.hp, "train_seconds": max(1.0, budget - (time.perf_counter() - t0))}
        super()._train(data, steps, seed + 1)
        self.hp = {**self.hp, "train_seconds": budget or None}
        self.nets["autoencoder"].train(False)

    def _train_step(self, x: Any, y: Any, extra: Any, gen: Any, step: int, steps: int) -> dict[str, Any]:
        torch = import_torch()
        self.nets["autoencoder"].eval()
        with torch.no_grad():
            z_y = self._encode(y)
            z_x = self._encode(x)
        return self._denoiser_step(z_y, z_x, gen)

    def _infer(self, x: Any) -> Any:
        x = x.float()
        cond = self._encode(x)
        latent = int(self.hp["latent_channels"])
        z = self._ddim_sample(self.nets["denoiser"], cond, (x.shape[0], latent, *cond.shape[-2:]))
        return self._decode(z)


class _Buffer(import_torch().nn.Module):  # type: ignore[misc]
    """A module holding one tensor (so it is saved and moved with the networks)."""

    def __init__(self, value: Any) -> None:
        super().__init__()
        self.register_buffer("value", value)

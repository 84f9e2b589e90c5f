"""The two-phase ESRGAN task on the generic training loop (see ``train/task.py``): L1 alone until
``psnr_steps``, then L1 + VGG perceptual + relativistic (or non-saturating) adversarial loss
against a PatchGAN, with a fresh generator optimiser."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import GanforgeError, WeightsError
from ...train.adversarial import EmaCopy, GeneratorDiscriminatorTask, frozen, side_effect_free
from .config import SRConfig, build_sr_generator

# The perceptual loss is multiplied by this per input normalisation, so that --perceptual-weight
# means the same for every registered VGG19: Caffe-scale inputs (0..255 minus the mean) give
# features about 255 x 0.226 = 57.6 times those of ImageNet-normalised inputs ((x - mean) / std,
# std about 0.226), for which ESRGAN's weight 1 was set.
PERCEPTUAL_SCALE = {"imagenet": 1.0, "caffe": 1 / 57.6, "caffe-bgr": 1 / 57.6, "none": 1.0}


def load_perceptual(cfg: SRConfig, device: torch.device) -> nn.Module | None:
    """The frozen VGG19 of the perceptual loss (None when its weight is 0); missing weights are a
    one-line error that names both ways out."""
    if cfg.perceptual_weight <= 0:
        return None
    from ...nets.vgg import load_vgg

    try:
        vgg = load_vgg(cfg.perceptual_encoder)
    except (WeightsError, KeyError, GanforgeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise WeightsError(f"the perceptual loss needs VGG19 weights ({cfg.perceptual_encoder}): {first} -- or pass "
                           f"--perceptual-weight 0 (no perceptual loss)") from exc
    return vgg.to(device).eval().requires_grad_(False)


def relativistic_d_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """ESRGAN's RaGAN: real should look more real than the average fake, and vice versa."""
    real, fake = real.float(), fake.float()
    return 0.5 * (F.softplus(-(real - fake.mean())).mean() + F.softplus(fake - real.mean()).mean())


def relativistic_g_loss(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    real, fake = real.float(), fake.float()
    return 0.5 * (F.softplus(real - fake.mean()).mean() + F.softplus(-(fake - real.mean())).mean())


class SRTask(GeneratorDiscriminatorTask):
    """Two-phase ESRGAN training (see :mod:`ganforge.restore.sr`) as a :class:`ganforge.train.task.Task`."""

    name = "upscaler"
    snapshot_columns = ["bicubic", "super-resolved", "ground truth"]

    def __init__(self, cfg: SRConfig, device: torch.device, fixed: dict[str, torch.Tensor],
                 perceptual: nn.Module | None = None) -> None:
        from ...nets.translators import PatchDiscriminator, init_weights

        self.cfg, self.device, self.fixed = cfg.resolved(), device, fixed
        torch.manual_seed(cfg.seed)  # network initialisation
        self.G = build_sr_generator(cfg).to(device)
        self.D = PatchDiscriminator(3, cfg.ndf, cfg.d_layers, norm=cfg.d_norm)
        init_weights(self.D, "normal", 0.02)
        self.D = self.D.to(device)
        self.ema = EmaCopy(self.G, cfg.ema)
        fused = device.type in ("cpu", "cuda")
        betas = (cfg.beta1, cfg.beta2)
        self.opt = {"G_psnr": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_psnr, betas=betas, fused=fused),
                    "G": torch.optim.Adam(self.G.parameters(), lr=cfg.lr_g, betas=betas, fused=fused),
                    "D": torch.optim.Adam(self.D.parameters(), lr=cfg.lr_d, betas=betas, fused=fused)}
        self.perceptual = perceptual
        self.layers = cfg.layer_weights() if perceptual is not None else {}
        self.perceptual_scale = PERCEPTUAL_SCALE.get(getattr(perceptual, "normalisation", "imagenet"), 1.0)

    def phase(self, step: int) -> str:
        """'psnr' before ``psnr_steps``, then 'gan': a function of the step only."""
        return "psnr" if step < self.cfg.psnr_steps else "gan"

    def perceptual_loss(self, sr: torch.Tensor, hr: torch.Tensor) -> torch.Tensor:
        names = list(self.layers)
        f_sr = self.perceptual(sr, names)
        with torch.no_grad():
            f_hr = self.perceptual(hr, names)
        total = sum(w * F.l1_loss(f_sr[n].float(), f_hr[n].float()) for n, w in self.layers.items())
        return self.perceptual_scale * total

    def step(self, ctx) -> dict[str, float]:

        cfg = self.cfg
        batch = ctx.next_batch()
        lr, hr = batch["lr"], batch["hr"]
        if self.phase(ctx.step) == "psnr":
            with ctx.autocast():
                sr = self.G(lr)
            loss = F.l1_loss(sr.float(), hr)
            if ctx.optimize(loss, "G_psnr", [self.G]):
                self.ema.update(self.G, ctx.step)
            return {"loss_L1": float(loss.detach())}
        out: dict[str, float] = {}
        with frozen(self.D), ctx.autocast():
            sr = self.G(lr)
            l1 = F.l1_loss(sr.float(), hr)
            loss = cfg.l1_weight * l1
            if self.perceptual is not None:
                percep = self.perceptual_loss(sr, hr)
                loss = loss + cfg.perceptual_weight * percep
                out["loss_percep"] = float(percep.detach())
            if cfg.gan_weight > 0:
                d_fake = self.D(sr * 2 - 1)
                if cfg.gan_loss == "ragan":
                    with torch.no_grad():
                        d_real = self.D(hr * 2 - 1)
                    gan = relativistic_g_loss(d_real, d_fake)
                else:
                    gan = F.softplus(-d_fake.float()).mean()
                loss = loss + cfg.gan_weight * gan
                out["loss_G_gan"] = float(gan.detach())
        if ctx.optimize(loss, "G", [self.G]):
            self.ema.update(self.G, ctx.step)
        out["loss_L1"] = float(l1.detach())
        if cfg.gan_weight > 0:
            with ctx.autocast():
                d_real = self.D(hr * 2 - 1)
                d_fake = self.D(sr.detach() * 2 - 1)
                if cfg.gan_loss == "ragan":
                    loss_d = relativistic_d_loss(d_real, d_fake)
                else:
                    loss_d = 0.5 * (F.softplus(-d_real.float()).mean() + F.softplus(d_fake.float()).mean())
            ctx.optimize(loss_d, "D", [self.D])
            out.update(loss_D=float(loss_d.detach()), D_real=float(d_real.detach().float().mean()),
                       D_fake=float(d_fake.detach().float().mean()))
        return out

    def snapshot(self, ctx) -> torch.Tensor:
        """Rows of bicubic | super-resolved | ground truth (fixed held-in crops)."""
        from torchvision.utils import make_grid


        G = self.ema.copy or self.G
        lr, hr = self.fixed["lr"], self.fixed["hr"]
        with side_effect_free(G), ctx.autocast():
            sr = G(lr)
        up = F.interpolate(lr, size=hr.shape[-2:], mode="bicubic", align_corners=False)
        tiles = torch.stack([t.detach().float().clamp(0, 1).cpu() for t in (up, sr, hr)], 1).flatten(0, 1)
        return make_grid(tiles, nrow=3, padding=2, pad_value=1.0)

"""The inpainting task on the generic training loop (see ``train/task.py``): a U-Net G on (image
with the hole pre-filled, mask), a PatchGAN D on (composite, mask); L1 on the hole and on the
known pixels, the adversarial term and an optional VGG perceptual term."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ...errors import GanforgeError
from ...train.adversarial import (LOSS_SCALE, EmaCopy, GeneratorDiscriminatorTask, frozen, grid, init_normal,
                                  side_effect_free, to_display)
from .config import InpaintConfig, build_inpaint_generator
from .ops import composite, masked_l1, net_input


class _Perceptual(nn.Module):
    """L1 between VGG features (relu1_1, relu2_1, relu3_1) of two [-1, 1] RGB batches."""

    LAYERS = ("relu1_1", "relu2_1", "relu3_1")

    def __init__(self, encoder: str) -> None:
        super().__init__()
        from ...nets.vgg import load_vgg

        try:
            self.vgg = load_vgg(encoder)
        except GanforgeError as exc:
            first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
            raise type(exc)(f"the perceptual loss needs VGG weights ({first}); "
                            f"fetch them or pass --perceptual-weight 0") from None

    def forward(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        fx = self.vgg((x.float() + 1) / 2, self.LAYERS)
        with torch.no_grad():
            fy = self.vgg((y.float() + 1) / 2, self.LAYERS)
        return sum(F.l1_loss(fx[k], fy[k]) for k in self.LAYERS) / len(self.LAYERS)


class InpaintTask(GeneratorDiscriminatorTask):
    """U-Net G on (masked image, mask), PatchGAN D on (composite, mask)."""

    name = "inpainter"
    snapshot_columns = ["masked input", "output", "real"]

    def __init__(self, cfg: InpaintConfig, device: torch.device, fixed: dict[str, torch.Tensor]) -> None:
        from ...losses import LOSSES
        from ...nets.translators import PatchDiscriminator

        self.cfg, self.device = cfg, device
        self.memory = torch.channels_last if cfg.channels_last else torch.contiguous_format
        self.loss = LOSSES.get(cfg.gan_loss)
        self.d_scale, self.g_scale = LOSS_SCALE[cfg.gan_loss]
        torch.manual_seed(cfg.seed)  # network initialisation
        G = init_normal(build_inpaint_generator(cfg))
        if cfg.prefill == "pyramid":  # start exactly at the pre-fill: the correction's last layer begins at zero
            last = G.model.model[3]
            nn.init.zeros_(last.weight)
            nn.init.zeros_(last.bias)
        self.G = self._place(G)
        self.D = self._place(init_normal(PatchDiscriminator(cfg.channels + 1, cfg.ndf, cfg.n_layers_d, norm=cfg.norm)))
        self.ema = EmaCopy(self.G, cfg.ema)
        fused = device.type in ("cpu", "cuda")
        adam = lambda params, lr: torch.optim.Adam(params, lr=lr, betas=(cfg.beta1, cfg.beta2), fused=fused)  # noqa: E731
        self.opt = {"G": adam(self.G.parameters(), cfg.lr_g), "D": adam(self.D.parameters(), cfg.lr_d)}
        self.perceptual = _Perceptual(cfg.perceptual_encoder).to(device) if cfg.perceptual_weight > 0 else None
        self.fixed = fixed

    def _place(self, m: nn.Module) -> nn.Module:
        return m.to(self.device, memory_format=self.memory)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory)

    def step(self, ctx) -> dict[str, float]:
        cfg = self.cfg
        batch = ctx.next_batch()
        real, mask = self._fmt(batch["image"]), self._fmt(batch["mask"])
        with ctx.autocast():
            inp, base = net_input(real, mask, cfg.prefill)
            out = base + self.G(self._fmt(inp)).float()
            comp = composite(real, out.float(), mask)
            d_real = self.D(torch.cat([real, mask], 1))
            d_fake = self.D(torch.cat([comp.detach(), mask], 1))
            loss_d = self.d_scale * self.loss.d_loss(d_real.float(), d_fake.float(), 1.0)
        ctx.optimize(loss_d, "D", [self.D])

        with frozen(self.D), ctx.autocast():
            loss_gan = self.g_scale * self.loss.g_loss(self.D(torch.cat([comp, mask], 1)).float())
            out32 = out.float()
            hole = masked_l1(out32, real, mask)
            valid = masked_l1(out32, real, 1 - mask)
            loss_g = cfg.lambda_gan * loss_gan + cfg.lambda_hole * hole + cfg.lambda_valid * valid
            if self.perceptual is not None:
                perc = self.perceptual(comp, real)
                loss_g = loss_g + cfg.perceptual_weight * perc
        if ctx.optimize(loss_g, "G", [self.G]):
            self.ema.update(self.G, ctx.step)
        logs = {"loss_G_gan": float(loss_gan.detach()), "loss_hole_L1": float(hole.detach()),
                "loss_valid_L1": float(valid.detach()), "loss_D": float(loss_d.detach()),
                "D_real": float(d_real.detach().float().mean()), "D_fake": float(d_fake.detach().float().mean())}
        if self.perceptual is not None:
            logs["loss_perceptual"] = float(perc.detach())
        return logs

    def snapshot(self, ctx) -> torch.Tensor:
        """Rows of masked input (hole shown mid-grey) | output (composite) | real."""

        G = self.ema.copy or self.G
        real, mask = self.fixed["image"], self.fixed["mask"]
        with side_effect_free(G), ctx.autocast():
            inp, base = net_input(real, mask, self.cfg.prefill)
            out = (base + G(self._fmt(inp)).float()).clamp(-1, 1)
        return grid([to_display(real * (1 - mask)), to_display(composite(real, out, mask)), to_display(real)])

"""The image-to-image tasks on the generic training loop (see ``train/task.py``):

- :class:`Pix2PixTask` (Isola et al. 2017): G(A) -> B with a conditional PatchGAN on (A, B) and
  an L1 term (lambda 100); dropout in the U-Net is the noise.
- :class:`CycleGANTask` (Zhu et al. 2017): two generators A->B, B->A, two PatchGANs, LSGAN,
  cycle (lambda 10) and identity (0.5 x lambda) losses, D trained on a history of 50 fakes.
- :class:`SpadeTask` (Park et al. 2019): label map -> image with a multi-scale PatchGAN, hinge
  loss and discriminator feature matching.

Everything random (image pool, the loop's crops/flips) draws from the run's checkpointed generator;
dropout draws from torch's CPU RNG, which the loop checkpoints too, so resume is exact.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanforgeError
from ..losses import LOSSES
from ..train.adversarial import (LOSS_SCALE, EmaCopy, GeneratorDiscriminatorTask, frozen, grid, init_normal,
                                 side_effect_free, to_display)
from .config import TranslateConfig

def build_generator(cfg: TranslateConfig, in_channels: int, out_channels: int) -> nn.Module:
    """The generator a (resolved) config asks for; ``multiple`` says what H, W must divide by."""
    from ..nets.translators import ResnetGenerator, UnetGenerator

    if cfg.generator == "unet":
        return UnetGenerator(in_channels, out_channels, num_downs=cfg.unet_downs, ngf=cfg.ngf, norm=cfg.norm,
                             use_dropout=cfg.dropout)
    if cfg.generator == "resnet":
        return ResnetGenerator(in_channels, out_channels, ngf=cfg.ngf, n_blocks=cfg.resnet_blocks, norm=cfg.norm,
                               use_dropout=False)
    if cfg.generator == "spade":
        from ..nets.spade import SpadeGenerator

        h, w = cfg.crop_hw()
        return SpadeGenerator(cfg.num_classes, out_channels, ngf=cfg.ngf, crop_size=w, aspect_ratio=w / h,
                              norm=cfg.norm)
    raise GanforgeError(f"unknown generator {cfg.generator!r}")


def label_colours(num_classes: int) -> torch.Tensor:
    """A fixed, well-spread colour per class id (for showing label maps), K×3 in [0, 1]."""
    g = torch.Generator().manual_seed(7)
    colours = torch.rand(max(num_classes, 1), 3, generator=g) * 0.8 + 0.2
    colours[0] = 0.0  # class 0 (background, usually) black
    return colours


def show_labels(label: torch.Tensor, num_classes: int) -> torch.Tensor:
    """N×H×W class ids -> N×3×H×W colours in [0, 1]."""
    return label_colours(num_classes)[label.cpu().clamp(0, num_classes - 1)].permute(0, 3, 1, 2)


class _Base:
    """What the three tasks share: optimisers, loss scaling, memory format, EMA."""

    name = "translator"

    def __init__(self, cfg: TranslateConfig, device: torch.device) -> None:
        self.cfg, self.device = cfg, device
        # NHWC only on CUDA: on the CPU (oneDNN, torch 2.14, 1 thread) these generators run slower in
        # NHWC: U-Net-256 fwd+bwd fp32 1.2-1.3 s vs 0.7-1.0 s NCHW, ResNet-9 4.6 vs 3.6 s, bf16 5-10 %;
        # bench_translate_speed.py pix2pix 256² fp32 went from 0.85x to 1.10x the plain loop
        self.memory = torch.channels_last if cfg.channels_last and device.type == "cuda" else torch.contiguous_format
        self.loss = LOSSES.get(cfg.gan_loss)
        self.d_scale, self.g_scale = LOSS_SCALE[cfg.gan_loss]
        self.fused = device.type in ("cpu", "cuda")

    def _adam(self, params, lr: float) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=lr, betas=(self.cfg.beta1, self.cfg.beta2), fused=self.fused)

    def _place(self, m: nn.Module) -> nn.Module:
        return m.to(self.device, memory_format=self.memory)

    def _fmt(self, x: torch.Tensor) -> torch.Tensor:
        return x.contiguous(memory_format=self.memory) if x.dim() == 4 else x

    def d_loss(self, real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
        return self.d_scale * self.loss.d_loss(real.float(), fake.float(), 1.0)

    def g_loss(self, fake: torch.Tensor) -> torch.Tensor:
        return self.g_scale * self.loss.g_loss(fake.float())


class Pix2PixTask(GeneratorDiscriminatorTask, _Base):
    snapshot_columns = ["real A", "fake B", "real B"]

    def __init__(self, cfg: TranslateConfig, device: torch.device, fixed: dict[str, torch.Tensor]) -> None:
        super().__init__(cfg, device)
        from ..nets.translators import PatchDiscriminator

        torch.manual_seed(cfg.seed)  # network initialisation
        self.G = self._place(init_normal(build_generator(cfg, cfg.channels_a, cfg.channels_b)))
        self.D = self._place(init_normal(PatchDiscriminator(cfg.channels_a + cfg.channels_b, cfg.ndf, cfg.n_layers_d,
                                                      norm=cfg.norm)))
        self.ema = EmaCopy(self.G, cfg.ema)
        self.opt = {"G": self._adam(self.G.parameters(), cfg.lr_g), "D": self._adam(self.D.parameters(), cfg.lr_d)}
        self.fixed = fixed

    def step(self, ctx) -> dict[str, float]:
        batch = ctx.next_batch()
        a, b = self._fmt(batch["A"]), self._fmt(batch["B"])
        with ctx.autocast():
            fake = self.G(a)
            d_real = self.D(torch.cat([a, b], 1))
            d_fake = self.D(torch.cat([a, fake.detach()], 1))
            loss_d = self.d_loss(d_real, d_fake)
        ctx.optimize(loss_d, "D", [self.D])
        with frozen(self.D), ctx.autocast():
            loss_gan = self.g_loss(self.D(torch.cat([a, fake], 1)))
            loss_l1 = F.l1_loss(fake.float(), b.float())
            loss_g = loss_gan + self.cfg.lambda_l1 * loss_l1
        if ctx.optimize(loss_g, "G", [self.G]):
            self.ema.update(self.G, ctx.step)
        return {"loss_G_gan": float(loss_gan.detach()), "loss_G_L1": float(loss_l1.detach()),
                "loss_D": float(loss_d.detach()), "D_real": float(d_real.detach().float().mean()),
                "D_fake": float(d_fake.detach().float().mean())}

    def snapshot(self, ctx) -> torch.Tensor:
        """Rows of real A | fake B | real B (fixed held-in pairs)."""
        G = self.ema.copy or self.G
        a, b = self.fixed["A"], self.fixed["B"]
        with side_effect_free(G), ctx.autocast():
            fake = G(self._fmt(a))
        return grid([to_display(a), to_display(fake), to_display(b)])


class ImagePool:
    """The last ``size`` generated images; D sees a mix of new and old fakes (Shrivastava et al.
    2017), which damps oscillation. Draws from the run's generator; contents are checkpointed."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.images: list[torch.Tensor] = []

    def query(self, images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        if self.size == 0:
            return images
        out = []
        for image in images.detach():
            image = image[None]
            if len(self.images) < self.size:
                self.images.append(image.clone())
                out.append(image)
                continue
            draws = torch.rand(2, generator=generator, device=generator.device).tolist()
            if draws[0] > 0.5:  # return an old fake, keep the new one in its place
                i = min(int(draws[1] * self.size), self.size - 1)
                old = self.images[i].clone()
                self.images[i] = image.clone()
                out.append(old)
            else:
                out.append(image)
        return torch.cat(out)

    def state(self) -> torch.Tensor:
        return torch.cat(self.images).cpu() if self.images else torch.empty(0)

    def load(self, saved: torch.Tensor, device: torch.device) -> None:
        self.images = [t[None].to(device) for t in saved] if saved.numel() else []


class CycleGANTask(_Base):
    snapshot_columns = ["real A", "fake B", "rec A", "real B", "fake A", "rec B"]

    def __init__(self, cfg: TranslateConfig, device: torch.device, fixed: dict[str, torch.Tensor]) -> None:
        super().__init__(cfg, device)
        from ..nets.translators import PatchDiscriminator

        if cfg.lambda_identity > 0 and cfg.channels_a != cfg.channels_b:
            raise GanforgeError(f"the identity loss needs the same channels in A and B (got {cfg.channels_a} and "
                                f"{cfg.channels_b}); pass --lambda-identity 0")
        torch.manual_seed(cfg.seed)
        self.G_A = self._place(init_normal(build_generator(cfg, cfg.channels_a, cfg.channels_b)))  # A -> B
        self.G_B = self._place(init_normal(build_generator(cfg, cfg.channels_b, cfg.channels_a)))  # B -> A
        self.D_A = self._place(init_normal(PatchDiscriminator(cfg.channels_b, cfg.ndf, cfg.n_layers_d, norm=cfg.norm)))  # judges B
        self.D_B = self._place(init_normal(PatchDiscriminator(cfg.channels_a, cfg.ndf, cfg.n_layers_d, norm=cfg.norm)))  # judges A
        self.ema_A, self.ema_B = EmaCopy(self.G_A, cfg.ema), EmaCopy(self.G_B, cfg.ema)
        self.opt = {"G": self._adam(list(self.G_A.parameters()) + list(self.G_B.parameters()), cfg.lr_g),
                    "D": self._adam(list(self.D_A.parameters()) + list(self.D_B.parameters()), cfg.lr_d)}
        self.pool_A, self.pool_B = ImagePool(cfg.pool_size), ImagePool(cfg.pool_size)  # fakes of A, of B
        self.fixed = fixed

    def modules(self) -> dict[str, nn.Module]:
        out = {"G_A": self.G_A, "G_B": self.G_B, "D_A": self.D_A, "D_B": self.D_B}
        if self.ema_A.copy is not None:
            out.update(G_A_ema=self.ema_A.copy, G_B_ema=self.ema_B.copy)
        return out

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opt

    def extra_state(self) -> dict[str, Any]:
        return {"pool_A": self.pool_A.state(), "pool_B": self.pool_B.state()}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        self.pool_A.load(state["pool_A"], self.device)
        self.pool_B.load(state["pool_B"], self.device)

    def step(self, ctx) -> dict[str, float]:
        cfg = self.cfg
        batch = ctx.next_batch()
        a, b = self._fmt(batch["A"]), self._fmt(batch["B"])
        lam_id = cfg.lambda_cycle * cfg.lambda_identity
        with frozen(self.D_A, self.D_B), ctx.autocast():
            fake_b, fake_a = self.G_A(a), self.G_B(b)
            rec_a, rec_b = self.G_B(fake_b), self.G_A(fake_a)
            gan_a, gan_b = self.g_loss(self.D_A(fake_b)), self.g_loss(self.D_B(fake_a))
            cycle = F.l1_loss(rec_a.float(), a.float()) + F.l1_loss(rec_b.float(), b.float())
            loss_g = gan_a + gan_b + cfg.lambda_cycle * cycle
            if lam_id > 0:
                identity = F.l1_loss(self.G_A(b).float(), b.float()) + F.l1_loss(self.G_B(a).float(), a.float())
                loss_g = loss_g + lam_id * identity
        if ctx.optimize(loss_g, "G", [self.G_A, self.G_B]):
            self.ema_A.update(self.G_A, ctx.step)
            self.ema_B.update(self.G_B, ctx.step)
        old_b = self.pool_B.query(fake_b, ctx.generator)
        old_a = self.pool_A.query(fake_a, ctx.generator)
        with ctx.autocast():
            d_real_b, d_real_a = self.D_A(b), self.D_B(a)
            loss_d_a = self.d_loss(d_real_b, self.D_A(old_b))
            loss_d_b = self.d_loss(d_real_a, self.D_B(old_a))
        ctx.optimize(loss_d_a + loss_d_b, "D", [self.D_A, self.D_B])
        out = {"loss_G_A": float(gan_a.detach()), "loss_G_B": float(gan_b.detach()), "loss_cycle": float(cycle.detach()),
               "loss_D_A": float(loss_d_a.detach()), "loss_D_B": float(loss_d_b.detach())}
        if lam_id > 0:
            out["loss_idt"] = float(identity.detach())
        return out

    def snapshot(self, ctx) -> torch.Tensor:
        """Rows of real A | fake B | rec A | real B | fake A | rec B."""
        G_A, G_B = self.ema_A.copy or self.G_A, self.ema_B.copy or self.G_B
        a, b = self.fixed["A"], self.fixed["B"]
        with side_effect_free(G_A, G_B), ctx.autocast():
            fake_b, fake_a = G_A(self._fmt(a)), G_B(self._fmt(b))
            rec_a, rec_b = G_B(fake_b), G_A(fake_a)
        return grid([to_display(t) for t in (a, fake_b, rec_a, b, fake_a, rec_b)])


class SpadeTask(GeneratorDiscriminatorTask, _Base):
    snapshot_columns = ["label map", "generated", "real"]

    def __init__(self, cfg: TranslateConfig, device: torch.device, fixed: dict[str, torch.Tensor]) -> None:
        super().__init__(cfg, device)
        from ..nets.spade import MultiscaleDiscriminator

        torch.manual_seed(cfg.seed)
        self.G = self._place(init_normal(build_generator(cfg, cfg.num_classes, cfg.channels_b)))
        self.D = self._place(init_normal(MultiscaleDiscriminator(cfg.num_classes + cfg.channels_b, cfg.ndf,
                                                           n_layers=cfg.n_layers_d + 1, num_d=cfg.num_d, norm=cfg.norm)))
        self.ema = EmaCopy(self.G, cfg.ema)
        self.opt = {"G": self._adam(self.G.parameters(), cfg.lr_g), "D": self._adam(self.D.parameters(), cfg.lr_d)}
        self.fixed = fixed

    def _onehot(self, label: torch.Tensor) -> torch.Tensor:
        from ..nets.spade import one_hot

        return self._fmt(one_hot(label, self.cfg.num_classes))

    def step(self, ctx) -> dict[str, float]:
        cfg = self.cfg
        batch = ctx.next_batch()
        label, real = batch["A"], self._fmt(batch["B"])
        seg = self._onehot(label)
        with ctx.autocast():
            fake = self.G(seg)
            d_real = self.D(torch.cat([seg, real], 1))
            d_fake = self.D(torch.cat([seg, fake.detach()], 1))
            loss_d = sum(self.d_loss(r[-1], f[-1]) for r, f in zip(d_real, d_fake)) / len(d_real)
        ctx.optimize(loss_d, "D", [self.D])
        with frozen(self.D), ctx.autocast():
            pred_fake = self.D(torch.cat([seg, fake], 1))
            with torch.no_grad():
                pred_real = self.D(torch.cat([seg, real], 1))
            loss_gan = sum(self.g_loss(p[-1]) for p in pred_fake) / len(pred_fake)
            feat = fake.new_zeros((), dtype=torch.float32)
            for pf, pr in zip(pred_fake, pred_real):
                for f, r in zip(pf[:-1], pr[:-1]):
                    feat = feat + F.l1_loss(f.float(), r.float().detach()) / len(pred_fake)
            loss_g = loss_gan + cfg.lambda_feat * feat
        if ctx.optimize(loss_g, "G", [self.G]):
            self.ema.update(self.G, ctx.step)
        return {"loss_G_gan": float(loss_gan.detach()), "loss_G_feat": float(feat.detach()),
                "loss_D": float(loss_d.detach())}

    def snapshot(self, ctx) -> torch.Tensor:
        """Rows of label map | generated | real."""
        G = self.ema.copy or self.G
        label, real = self.fixed["A"], self.fixed["B"]
        with side_effect_free(G), ctx.autocast():
            fake = G(self._onehot(label))
        return grid([show_labels(label, self.cfg.num_classes), to_display(fake), to_display(real)])


TASKS = {"pix2pix": Pix2PixTask, "cyclegan": CycleGANTask, "spade": SpadeTask}

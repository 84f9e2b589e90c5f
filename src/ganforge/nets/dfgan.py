"""DF-GAN (Tao et al., CVPR 2022, "DF-GAN: A Simple and Effective Baseline for Text-to-Image
Synthesis"): a one-stage text-conditional generator and a matching-aware discriminator, sized by
a :class:`GanNetSpec` whose ``text_dim`` is the sentence embedding's size.

- **G**: ``fc(z)`` -> a 4x4 map, then one up-block per doubling to the output resolution. Each
  up-block is the paper's G_Block: upsample 2x, a *deep text-image fusion* (DFBlock: two
  text-conditioned affine transforms, each a per-channel scale and shift predicted by a small MLP
  from ``[z, sentence]``, each followed by a leaky ReLU), a 3x3 conv, a second DFBlock, a second
  3x3 conv, plus a 1x1 shortcut. The affine MLPs start as the identity (scale 1, shift 0), as in
  the official code. Output: leaky ReLU, 3x3 conv to the image channels, tanh.
- **D**: a 3x3 conv, then residual down-blocks (two 4x4 / 3x3 convs with leaky ReLU, a learned
  residual gain ``gamma`` starting at 0, and a 1x1 + avg-pool shortcut) to 4x4 features; the
  matching-aware head joins the 4x4 features with the sentence embedding (narrowed to half the
  channels by a linear map: the paper joins all 256 dimensions, which here would cost as much as
  the rest of D) replicated over the map, then a 3x3 conv, leaky ReLU and a 4x4 conv to one
  logit: "real *and* matching this text".

``G(z, c)`` and ``D(x, c)`` take the sentence embedding ``c`` (N x text_dim, float) where class
generators take labels, so the GAN machinery (EMA, sampling, export) treats both alike. Channel
widths: ``spec.width`` at the output resolution, doubling per halving, at most 8 x width (the
paper's ngf = 32 at 256² gives 256 channels at 4x4; here width 32 at 32² gives 128).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ARCHITECTURES, GanNetSpec
from .stylegan2 import _levels, channels_at  # the same channel layout as the other GANs (progan too)


def _text_dim(spec: GanNetSpec) -> int:
    if spec.text_dim <= 0:
        raise ValueError("dfgan is a text-conditional architecture: its spec needs text_dim > 0 (train with --text)")
    return spec.text_dim


class Affine(nn.Module):
    """Per-channel scale and shift of a feature map, each predicted from the condition by
    Linear -> ReLU -> Linear; the last layers start at scale 1, shift 0 (the identity)."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.gamma = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))
        self.beta = nn.Sequential(nn.Linear(cond_dim, channels), nn.ReLU(inplace=True), nn.Linear(channels, channels))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for mlp in (self.gamma, self.beta):
            mlp[0].reset_parameters()
        with torch.no_grad():
            nn.init.zeros_(self.gamma[2].weight)
            nn.init.ones_(self.gamma[2].bias)
            nn.init.zeros_(self.beta[2].weight)
            nn.init.zeros_(self.beta[2].bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.gamma(cond).to(x.dtype), self.beta(cond).to(x.dtype)
        return x * gamma[:, :, None, None] + beta[:, :, None, None]


class DFBlock(nn.Module):
    """Deep fusion: affine -> lrelu -> affine -> lrelu, all from the condition."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.affine0, self.affine1 = Affine(cond_dim, channels), Affine(cond_dim, channels)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.leaky_relu(self.affine0(x, cond), 0.2)
        return F.leaky_relu(self.affine1(x, cond), 0.2)


class GBlock(nn.Module):
    def __init__(self, cond_dim: int, cin: int, cout: int) -> None:
        super().__init__()
        self.fuse0, self.fuse1 = DFBlock(cond_dim, cin), DFBlock(cond_dim, cout)
        self.conv0, self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1), nn.Conv2d(cout, cout, 3, 1, 1)
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, scale_factor=2.0, mode="nearest")
        h = self.conv1(self.fuse1(self.conv0(self.fuse0(x, cond)), cond))
        return h + (x if self.shortcut is None else self.shortcut(x))


class DFGANGenerator(nn.Module):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = _levels(spec.resolution)
        self.z_dim, self.num_classes, self.text_dim = spec.z_dim, 0, _text_dim(spec)
        cond_dim = spec.z_dim + self.text_dim  # the paper's condition: [noise, sentence]
        self.ch0 = channels_at(spec, 4)
        self.fc = nn.Linear(spec.z_dim, self.ch0 * 16)
        blocks, res = [], 4
        for _ in range(levels):
            blocks.append(GBlock(cond_dim, channels_at(spec, res), channels_at(spec, res * 2)))
            res *= 2
        self.blocks = nn.ModuleList(blocks)
        self.to_rgb = nn.Conv2d(channels_at(spec, spec.resolution), spec.channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        if text is None:
            raise ValueError("a text-conditional generator needs sentence embeddings")
        cond = torch.cat([z, text.to(z.dtype)], dim=1)
        x = self.fc(z).view(z.shape[0], self.ch0, 4, 4)
        for block in self.blocks:
            x = block(x, cond)
        return torch.tanh(self.to_rgb(F.leaky_relu(x, 0.2)))


class DBlock(nn.Module):
    """DF-GAN's D_Block: 4x4 stride-2 conv, lrelu, 3x3 conv, lrelu; + gamma x that on a learned
    1x1 + avg-pool shortcut (gamma starts at 0: each block starts as its shortcut)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.res = nn.Sequential(nn.Conv2d(cin, cout, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True),
                                 nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.LeakyReLU(0.2, inplace=True))
        self.shortcut = nn.Conv2d(cin, cout, 1) if cin != cout else None
        self.gamma = nn.Parameter(torch.zeros(()))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        s = x if self.shortcut is None else self.shortcut(x)
        return F.avg_pool2d(s, 2) + self.gamma.to(x.dtype) * self.res(x)


class DFGANDiscriminator(nn.Module):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = _levels(spec.resolution)
        self.text_dim = _text_dim(spec)
        self.from_rgb = nn.Conv2d(spec.channels, channels_at(spec, spec.resolution), 3, 1, 1)
        blocks, res = [], spec.resolution
        for _ in range(levels):
            blocks.append(DBlock(channels_at(spec, res), channels_at(spec, res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        ch = channels_at(spec, 4)
        self.text_proj = nn.Linear(self.text_dim, ch // 2)  # the sentence, narrowed before the joint conv
        self.joint = nn.Sequential(nn.Conv2d(ch + ch // 2, ch, 3, 1, 1, bias=False),
                                   nn.LeakyReLU(0.2, inplace=True), nn.Conv2d(ch, 1, 4, 1, 0, bias=False))

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """The 4x4 image features (the part of D that does not see the text)."""
        return self.blocks(self.from_rgb(x))

    def logits(self, h: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        c = self.text_proj(text.to(h.dtype))[:, :, None, None].expand(-1, -1, h.shape[2], h.shape[3])
        return self.joint(torch.cat([h, c], dim=1)).flatten(1).squeeze(1)

    def forward(self, x: torch.Tensor, text: torch.Tensor | None = None) -> torch.Tensor:
        if text is None:
            raise ValueError("a matching-aware discriminator needs sentence embeddings")
        return self.logits(self.features(x), text)


@ARCHITECTURES.register("dfgan")
def dfgan(spec: GanNetSpec) -> tuple[nn.Module, nn.Module]:
    return DFGANGenerator(spec), DFGANDiscriminator(spec)

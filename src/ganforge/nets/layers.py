"""Small building blocks shared by the GAN architectures."""

from __future__ import annotations

import torch
from torch import nn


class ProjectionHead(nn.Module):
    """Discriminator output: ``linear(h) + <embed(y), h>`` (Miyato & Koyama 2018).

    Without classes it is the plain linear critic, so every architecture shares one head."""

    def __init__(self, features: int, num_classes: int, spectral: bool = False) -> None:
        super().__init__()
        wrap = nn.utils.parametrizations.spectral_norm if spectral else (lambda m: m)
        self.linear = wrap(nn.Linear(features, 1))
        self.embed = None
        if num_classes > 0:
            embed = nn.Embedding(num_classes, features)
            # N(0, 1) rows would dominate the output (their dot product with h scales with sqrt(features)).
            nn.init.normal_(embed.weight, 0.0, features ** -0.5)
            self.embed = wrap(embed)

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels")
            out = out + (self.embed(labels) * h).sum(dim=1)
        return out


class ConditionalBatchNorm2d(nn.Module):
    """BatchNorm whose gain and bias are per-class embeddings (de Vries et al. 2017; SNGAN, BigGAN).

    The label modulates every layer's features, while only z varies the sample within a class:
    concatenating a learned label embedding to z instead lets G drown z and collapse per class."""

    def __init__(self, num_features: int, num_classes: int) -> None:
        super().__init__()
        self.bn = nn.BatchNorm2d(num_features, affine=False)
        self.gain = nn.Embedding(num_classes, num_features)
        self.bias = nn.Embedding(num_classes, num_features)
        nn.init.ones_(self.gain.weight)
        nn.init.zeros_(self.bias.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        out = self.bn(x)
        return out * self.gain(labels)[:, :, None, None] + self.bias(labels)[:, :, None, None]


def make_norm(num_features: int, num_classes: int) -> nn.Module:
    return ConditionalBatchNorm2d(num_features, num_classes) if num_classes else nn.BatchNorm2d(num_features)


def apply_norm(norm: nn.Module, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
    if isinstance(norm, ConditionalBatchNorm2d):
        if labels is None:
            raise ValueError("a conditional generator needs labels")
        return norm(x, labels)
    return norm(x)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02), BatchNorm gamma ~ N(1, 0.02), beta = 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.affine:
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)
        elif isinstance(m, ConditionalBatchNorm2d):
            nn.init.normal_(m.gain.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias.weight)

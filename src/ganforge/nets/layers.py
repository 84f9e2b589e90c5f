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
        self.embed = wrap(nn.Embedding(num_classes, features)) if num_classes > 0 else None

    def forward(self, h: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        out = self.linear(h).squeeze(1)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional discriminator needs labels")
            out = out + (self.embed(labels) * h).sum(dim=1)
        return out


def label_input(z: torch.Tensor, labels: torch.Tensor | None, embed: nn.Embedding | None) -> torch.Tensor:
    """Concatenate a learned label embedding to the latent (conditional generators)."""
    if embed is None:
        return z
    if labels is None:
        raise ValueError("a conditional generator needs labels")
    return torch.cat([z, embed(labels)], dim=1)


def dcgan_init(module: nn.Module) -> None:
    """Radford et al.: conv weights ~ N(0, 0.02), BatchNorm gamma ~ N(1, 0.02), beta = 0."""
    for m in module.modules():
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            nn.init.normal_(m.weight, 0.0, 0.02)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.normal_(m.weight, 1.0, 0.02)
            nn.init.zeros_(m.bias)

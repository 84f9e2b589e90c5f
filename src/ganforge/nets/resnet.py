"""ResNet generator/discriminator with spectral norm in D (SNGAN, Miyato et al. 2018)."""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from .registry import ARCHITECTURES, GanNetSpec
from .layers import ProjectionHead, apply_norm, class_condition, class_embedding, make_norm


class GBlock(nn.Module):
    def __init__(self, cin: int, cout: int, num_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.bn1, self.bn2 = make_norm(cin, num_classes, embed_dim), make_norm(cout, num_classes, embed_dim)
        self.conv1 = nn.Conv2d(cin, cout, 3, 1, 1)
        self.conv2 = nn.Conv2d(cout, cout, 3, 1, 1)
        self.skip = nn.Conv2d(cin, cout, 1)

    def forward(self, x: torch.Tensor, cond: torch.Tensor | None) -> torch.Tensor:
        h = F.interpolate(F.relu(apply_norm(self.bn1, x, cond)), scale_factor=2.0, mode="nearest")
        h = self.conv2(F.relu(apply_norm(self.bn2, self.conv1(h), cond)))
        return h + self.skip(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class DBlock(nn.Module):
    def __init__(self, cin: int, cout: int, first: bool = False) -> None:
        super().__init__()
        self.first = first
        self.conv1 = spectral_norm(nn.Conv2d(cin, cout, 3, 1, 1))
        self.conv2 = spectral_norm(nn.Conv2d(cout, cout, 3, 1, 1))
        self.skip = spectral_norm(nn.Conv2d(cin, cout, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x if self.first else F.relu(x)
        h = F.avg_pool2d(self.conv2(F.relu(self.conv1(h))), 2)
        return h + self.skip(F.avg_pool2d(x, 2))


class ResNetGenerator(nn.Module):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = int(math.log2(spec.resolution)) - 2
        self.z_dim, self.num_classes = spec.z_dim, spec.num_classes
        ch = spec.width * min(2 ** (levels - 1), 8)
        self.ch0 = ch
        self.fc = nn.Linear(spec.z_dim * (2 if spec.num_classes else 1), 16 * ch)  # [z, embed(y)]
        self.embed = class_embedding(spec.num_classes, spec.z_dim)
        blocks = []
        for _ in range(levels):
            blocks.append(GBlock(ch, max(ch // 2, spec.width), spec.num_classes, spec.z_dim))
            ch = max(ch // 2, spec.width)
        self.blocks = nn.ModuleList(blocks)
        self.out = nn.Sequential(nn.BatchNorm2d(ch), nn.ReLU(True), nn.Conv2d(ch, spec.channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cond = class_condition(self.embed, labels)
        h = self.fc(z if cond is None else torch.cat([z, cond], dim=1)).view(z.shape[0], self.ch0, 4, 4)
        if cond is not None:
            cond = cond * cond.shape[1] ** -0.5  # unit-norm input for the gain/bias projections
        for block in self.blocks:
            h = block(h, cond)
        return self.out(h)


class ResNetDiscriminator(nn.Module):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = int(math.log2(spec.resolution)) - 2
        ch, blocks = spec.width, []
        cin = spec.channels
        for i in range(levels):
            blocks.append(DBlock(cin, ch, first=i == 0))
            cin, ch = ch, min(ch * 2, spec.width * 8)
        self.blocks = nn.Sequential(*blocks)
        self.head = ProjectionHead(cin, spec.num_classes, spectral=True)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = F.relu(self.blocks(x)).sum(dim=(2, 3))  # global sum pooling
        return self.head(h, labels)


@ARCHITECTURES.register("resnet")
def resnet(spec: GanNetSpec) -> tuple[nn.Module, nn.Module]:
    return ResNetGenerator(spec), ResNetDiscriminator(spec)

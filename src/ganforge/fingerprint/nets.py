"""The fingerprint encoder and decoder (after Yu et al., "Artificial Fingerprinting for Generative
Models", ICCV 2021, whose pair is StegaStamp's): the encoder adds a small, bounded residual to an
image that carries a bit string; the decoder reads the bits back from an image. Small convnets at
the training data's resolution, so a pair costs minutes on a CPU at 32-64 px."""

from __future__ import annotations

import math

import torch
from torch import nn

CODE_MAP = 32  # the code's spatial map is learnt at most this size and resized to the image's
DEFAULT_STRENGTH = 0.04  # the largest change per pixel ([-1, 1] units); docs/benchmarks.md "Fingerprinted training"


class FingerprintEncoder(nn.Module):
    """``forward(x, code)``: ``x`` in [-1, 1] (N, C, H, W), ``code`` in {0, 1} (N, bits) ->
    the fingerprinted image, ``x`` plus a residual of at most ``strength`` per pixel."""

    def __init__(self, bits: int, channels: int, resolution: int, width: int = 32,
                 strength: float = DEFAULT_STRENGTH) -> None:
        super().__init__()
        self.bits, self.channels, self.resolution, self.strength = bits, channels, resolution, strength
        self.map_size = min(resolution, CODE_MAP)
        self.code = nn.Linear(bits, self.map_size ** 2)
        self.net = nn.Sequential(
            nn.Conv2d(channels + 1, width, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, width, 3, 1, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(width, channels, 3, 1, 1))

    def residual(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        m = self.code(code.float() * 2 - 1).view(-1, 1, self.map_size, self.map_size)
        if self.map_size != x.shape[-1]:
            m = nn.functional.interpolate(m, size=x.shape[-2:], mode="nearest")
        return self.strength * torch.tanh(self.net(torch.cat([x, m], dim=1)))

    def forward(self, x: torch.Tensor, code: torch.Tensor) -> torch.Tensor:
        return (x + self.residual(x, code)).clamp(-1, 1)


class FingerprintDecoder(nn.Module):
    """``forward(x)``: one logit per bit (positive: 1)."""

    def __init__(self, bits: int, channels: int, resolution: int, width: int = 32) -> None:
        super().__init__()
        levels = max(1, int(math.log2(resolution)) - 2)  # stride-2 convs down to 4x4
        layers: list[nn.Module] = []
        c_in, c = channels, width
        for _ in range(levels):
            layers += [nn.Conv2d(c_in, c, 3, 2, 1), nn.LeakyReLU(0.2)]
            c_in, c = c, min(c * 2, 256)
        self.features = nn.Sequential(*layers)
        self.head = nn.Linear(c_in * 16, bits)
        self.resolution = resolution

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != self.resolution or x.shape[-2] != self.resolution:
            x = nn.functional.interpolate(x, size=(self.resolution, self.resolution), mode="bilinear",
                                          antialias=True, align_corners=False)
        h = self.features(x)
        return self.head(nn.functional.adaptive_avg_pool2d(h, 4).flatten(1))

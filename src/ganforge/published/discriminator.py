"""The official StyleGAN2-ADA discriminator architecture (Karras et al. 2020), written for ganforge
so that the ``D`` of a published pickle loads strictly under its official names
(``b1024.fromrgb.weight``, ``b512.conv1.weight``, ``b4.fc.weight``, ``mapping.fc0.weight``, …) and
fine-tuning (``ganforge train --init``) continues from it.

What it computes, as the official code: per block (``resnet``: a 1×1 skip conv after the
[1, 3, 3, 1] FIR down-sampling, times sqrt(0.5); ``orig``: none) a 3×3 conv, then a 3×3 conv
that low-passes with the FIR filter (pad 2) and strides by 2; equalised learning rate gains at run
time; ``lrelu * sqrt(2)`` then the optional ``conv_clamp``; the epilogue: minibatch standard
deviation (groups of ``mbstd_group_size``), a 3×3 conv, a dense layer, the output layer, and for
conditional networks the projection onto the class embedding ``cmap`` (the mapping network
without z) divided by sqrt(cmap_dim). Layers the official code runs in fp16 run in the caller's
precision here. ``forward(img, c)`` takes ``c`` as the one-hot or as class indices and returns the
scores as a 1-D tensor (ganforge's discriminator convention; the official shape is N × 1).
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError
from .network import ACT_GAIN, FullyConnectedLayer, MappingNetwork, _act, _depthwise, fir_filter


def _fir_down(x: torch.Tensor, f: torch.Tensor, pad: int, down: int) -> torch.Tensor:
    """The FIR low-pass (gain 1) with ``pad`` on every side, then every ``down``-th pixel."""
    y = _depthwise(F.pad(x, [pad] * 4), f, 1.0)
    return y[:, :, ::down, ::down] if down > 1 else y


class Conv2dLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, bias: bool = True,
                 activation: str = "linear", down: int = 1, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.activation, self.down, self.conv_clamp = activation, down, conv_clamp
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", fir_filter())
        self.weight_gain = 1 / math.sqrt(in_channels * kernel_size ** 2)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        self.bias = nn.Parameter(torch.zeros([out_channels])) if bias else None

    def forward(self, x: torch.Tensor, gain: float = 1.0) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        k = w.shape[-1]
        if self.down > 1 and k == 1:  # down-sample first, then the 1x1 conv
            x = F.conv2d(_fir_down(x, self.resample_filter, 1, self.down), w)
        elif self.down > 1:  # low-pass (pad 2 for a 3x3 kernel), then a stride-2 conv
            x = F.conv2d(_fir_down(x, self.resample_filter, self.padding + 1, 1), w, stride=self.down)
        else:
            x = F.conv2d(x, w, padding=self.padding)
        act_gain = ACT_GAIN[self.activation] * gain
        clamp = self.conv_clamp * gain if self.conv_clamp is not None else None
        if self.bias is not None:
            x = x + self.bias.to(x.dtype).reshape(1, -1, 1, 1)
        x = _act(x, self.activation)
        if act_gain != 1:
            x = x * act_gain
        return x.clamp(-clamp, clamp) if clamp is not None and clamp >= 0 else x


class DiscriminatorBlock(nn.Module):
    def __init__(self, in_channels: int, tmp_channels: int, out_channels: int, img_channels: int,
                 architecture: str = "resnet", conv_clamp: float | None = None) -> None:
        super().__init__()
        self.in_channels, self.architecture = in_channels, architecture
        self.register_buffer("resample_filter", fir_filter())
        if in_channels == 0:
            self.fromrgb = Conv2dLayer(img_channels, tmp_channels, 1, activation="lrelu", conv_clamp=conv_clamp)
        self.conv0 = Conv2dLayer(tmp_channels, tmp_channels, 3, activation="lrelu", conv_clamp=conv_clamp)
        self.conv1 = Conv2dLayer(tmp_channels, out_channels, 3, activation="lrelu", down=2, conv_clamp=conv_clamp)
        if architecture == "resnet":
            self.skip = Conv2dLayer(tmp_channels, out_channels, 1, bias=False, down=2)

    def forward(self, x: torch.Tensor | None, img: torch.Tensor) -> torch.Tensor:
        if self.in_channels == 0:
            y = self.fromrgb(img.to(torch.float32))
            x = x + y if x is not None else y
        if self.architecture == "resnet":
            y = self.skip(x, gain=math.sqrt(0.5))
            x = self.conv1(self.conv0(x), gain=math.sqrt(0.5))
            return y + x
        return self.conv1(self.conv0(x))


def minibatch_std(x: torch.Tensor, group_size: int | None, num_channels: int) -> torch.Tensor:
    n, c, h, w = x.shape
    g = min(group_size, n) if group_size is not None else n
    f = num_channels
    y = x.reshape(g, -1, f, c // f, h, w)
    y = (y - y.mean(dim=0)).square().mean(dim=0).add(1e-8).sqrt().mean(dim=[2, 3, 4])
    y = y.reshape(-1, f, 1, 1).repeat(g, 1, h, w)
    return torch.cat([x, y], dim=1)


class DiscriminatorEpilogue(nn.Module):
    def __init__(self, in_channels: int, cmap_dim: int, resolution: int = 4, mbstd_group_size: int | None = 4,
                 mbstd_num_channels: int = 1, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.cmap_dim, self.mbstd_group_size, self.mbstd_num_channels = cmap_dim, mbstd_group_size, mbstd_num_channels
        self.conv = Conv2dLayer(in_channels + mbstd_num_channels, in_channels, 3, activation="lrelu",
                                conv_clamp=conv_clamp)
        self.fc = FullyConnectedLayer(in_channels * resolution ** 2, in_channels, activation="lrelu")
        self.out = FullyConnectedLayer(in_channels, 1 if cmap_dim == 0 else cmap_dim)

    def forward(self, x: torch.Tensor, cmap: torch.Tensor | None) -> torch.Tensor:
        if self.mbstd_num_channels > 0:
            x = minibatch_std(x, self.mbstd_group_size, self.mbstd_num_channels)
        x = self.out(self.fc(self.conv(x).flatten(1).to(torch.float32)))
        if self.cmap_dim > 0:
            x = (x * cmap).sum(dim=1, keepdim=True) * (1 / math.sqrt(self.cmap_dim))
        return x


D_KEYS = {"c_dim", "img_resolution", "img_channels", "architecture", "channel_base", "channel_max",
          "num_fp16_res", "conv_clamp", "cmap_dim", "block_kwargs", "mapping_kwargs", "epilogue_kwargs"}


class OfficialDiscriminator(nn.Module):
    """``D(img, c)`` with the official children ``b{res}``, ``mapping`` (conditional) and ``b4``."""

    def __init__(self, c_dim: int, img_resolution: int, img_channels: int, architecture: str = "resnet",
                 channel_base: int = 32768, channel_max: int = 512, num_fp16_res: int = 0,
                 conv_clamp: float | None = None, cmap_dim: int | None = None, block_kwargs: dict | None = None,
                 mapping_kwargs: dict | None = None, epilogue_kwargs: dict | None = None) -> None:
        super().__init__()
        if architecture not in ("resnet", "orig"):
            raise WeightsError(f"discriminator architecture {architecture!r} is not supported (resnet, orig)")
        if bad := sorted(set(block_kwargs or {}) - {"activation", "resample_filter", "fp16_channels_last",
                                                    "freeze_layers"}):
            raise WeightsError(f"discriminator block options {bad} are not supported")
        if bad := sorted(set(epilogue_kwargs or {}) - {"mbstd_group_size", "mbstd_num_channels", "activation"}):
            raise WeightsError(f"discriminator epilogue options {bad} are not supported")
        if (block_kwargs or {}).get("activation", "lrelu") != "lrelu" or \
                list((block_kwargs or {}).get("resample_filter", [1, 3, 3, 1])) != [1, 3, 3, 1]:
            raise WeightsError("only the lrelu activation and the [1, 3, 3, 1] filter are supported")
        self.init_kwargs = dict(c_dim=c_dim, img_resolution=img_resolution, img_channels=img_channels,
                                architecture=architecture, channel_base=channel_base, channel_max=channel_max,
                                num_fp16_res=num_fp16_res, conv_clamp=conv_clamp, cmap_dim=cmap_dim,
                                block_kwargs=dict(block_kwargs or {}), mapping_kwargs=dict(mapping_kwargs or {}),
                                epilogue_kwargs=dict(epilogue_kwargs or {}))
        self.c_dim, self.img_resolution, self.img_channels = c_dim, img_resolution, img_channels
        log2 = int(math.log2(img_resolution))
        if 2 ** log2 != img_resolution or img_resolution < 8:
            raise WeightsError(f"img_resolution {img_resolution} is not a power of two >= 8")
        self.block_resolutions = [2 ** i for i in range(log2, 2, -1)]
        ch = {r: min(channel_base // r, channel_max) for r in self.block_resolutions + [4]}
        cmap_dim = (ch[4] if cmap_dim is None else cmap_dim) if c_dim > 0 else 0
        for res in self.block_resolutions:
            setattr(self, f"b{res}", DiscriminatorBlock(ch[res] if res < img_resolution else 0, ch[res], ch[res // 2],
                                                        img_channels, architecture, conv_clamp))
        if c_dim > 0:
            self.mapping = MappingNetwork(0, c_dim, cmap_dim, num_ws=0, w_avg_beta=None, **(mapping_kwargs or {}))
        epi = {k: v for k, v in (epilogue_kwargs or {}).items() if k != "activation"}
        self.b4 = DiscriminatorEpilogue(ch[4], cmap_dim, 4, conv_clamp=conv_clamp, **epi)

    def forward(self, img: torch.Tensor, c: torch.Tensor | None = None) -> torch.Tensor:
        x = None
        for res in self.block_resolutions:
            x = getattr(self, f"b{res}")(x, img)
        cmap = self.mapping(None, c) if self.c_dim > 0 else None
        return self.b4(x, cmap).squeeze(1)

"""Super-resolution generators: ESRGAN's RRDBNet and a lighter SRResNet.

Parameter names follow the published checkpoints, so their ``.pth`` files load strictly without
``basicsr``:

- :class:`RRDBNet`: the basicsr / Real-ESRGAN layout (``conv_first``, ``body.N.rdb{1,2,3}.conv{1..5}``,
  ``conv_body``, ``conv_up1``, ``conv_up2``, ``conv_hr``, ``conv_last``). ×4 upsamples twice with
  nearest ×2 + conv; ×2 and ×1 first fold the input with pixel-unshuffle (by 2 and 4) so that the same
  ×4 trunk gives ×2 / ×1 (Real-ESRGAN's ``RealESRGAN_x2plus``). The original ESRGAN repository's
  names (``RRDB_trunk``, ``RDB1``, ``trunk_conv``, ``upconv1``, ``HRconv``) are renamed on load by
  :func:`from_esrgan_legacy`.
- :class:`SRResNet`: residual blocks without batch norm and pixel-shuffle upsampling, in basicsr's
  ``MSRResNet`` layout (``conv_first``, ``body.N.conv{1,2}``, ``upconv1``, ``upconv2``, ``conv_hr``,
  ``conv_last``), plus a bilinear skip from the input.

Both map RGB in [0, 1] to RGB in about [0, 1] at ``scale`` × the input size and carry ``scale`` and
``input_multiple`` (what H and W must be divisible by) attributes.
"""

from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

RESIDUAL_SCALE = 0.2  # ESRGAN's residual scaling inside and around each dense block


def _conv(cin: int, cout: int) -> nn.Conv2d:
    return nn.Conv2d(cin, cout, 3, 1, 1)


def _small_init(*convs: nn.Conv2d, gain: float = 0.1) -> None:
    """Kaiming-normal weights scaled down (ESRGAN's "smaller initialisation" for deep residual
    trunks) and zero biases: every residual branch starts close to the identity."""
    for conv in convs:
        nn.init.kaiming_normal_(conv.weight, a=0, mode="fan_in")
        conv.weight.data.mul_(gain)
        nn.init.zeros_(conv.bias)


class ResidualDenseBlock(nn.Module):
    """Five 3×3 convs, each seeing the block input and every earlier output (dense connections);
    the last one maps back to ``nf`` channels and is added to the input scaled by 0.2."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.conv1 = _conv(nf, gc)
        self.conv2 = _conv(nf + gc, gc)
        self.conv3 = _conv(nf + 2 * gc, gc)
        self.conv4 = _conv(nf + 3 * gc, gc)
        self.conv5 = _conv(nf + 4 * gc, nf)
        _small_init(self.conv1, self.conv2, self.conv3, self.conv4, self.conv5)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        features = [x]
        for conv in (self.conv1, self.conv2, self.conv3, self.conv4):
            features.append(F.leaky_relu(conv(torch.cat(features, 1)), 0.2, inplace=True))
        return x + RESIDUAL_SCALE * self.conv5(torch.cat(features, 1))


class RRDB(nn.Module):
    """Residual-in-residual dense block: three dense blocks in a row, wrapped in a scaled skip."""

    def __init__(self, nf: int = 64, gc: int = 32) -> None:
        super().__init__()
        self.rdb1 = ResidualDenseBlock(nf, gc)
        self.rdb2 = ResidualDenseBlock(nf, gc)
        self.rdb3 = ResidualDenseBlock(nf, gc)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + RESIDUAL_SCALE * self.rdb3(self.rdb2(self.rdb1(x)))


_UNSHUFFLE = {4: 1, 2: 2, 1: 4}  # scale -> pixel-unshuffle factor applied to the input


class RRDBNet(nn.Module):
    """ESRGAN generator (Wang et al. 2018): ``nb`` RRDBs of ``nf`` features with growth ``gc``,
    then two nearest-×2 + conv upsampling steps. ``scale`` is 4, 2 or 1 (×2 and ×1 pixel-unshuffle
    the input by 2 / 4 first, as Real-ESRGAN does; H and W must then be multiples of 2 / 4)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, nf: int = 64, nb: int = 23, gc: int = 32,
                 scale: int = 4) -> None:
        super().__init__()
        if scale not in _UNSHUFFLE:
            raise ValueError(f"RRDBNet supports scale 1, 2 or 4, got {scale}")
        self.scale = scale
        self.input_multiple = _UNSHUFFLE[scale]
        self.in_channels, self.out_channels, self.nf, self.nb, self.gc = in_channels, out_channels, nf, nb, gc
        self.conv_first = _conv(in_channels * self.input_multiple ** 2, nf)
        self.body = nn.Sequential(*(RRDB(nf, gc) for _ in range(nb)))
        self.conv_body = _conv(nf, nf)
        self.conv_up1 = _conv(nf, nf)
        self.conv_up2 = _conv(nf, nf)
        self.conv_hr = _conv(nf, nf)
        self.conv_last = _conv(nf, out_channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.input_multiple > 1:
            x = F.pixel_unshuffle(x, self.input_multiple)
        feat = self.conv_first(x)
        feat = feat + self.conv_body(self.body(feat))
        for conv in (self.conv_up1, self.conv_up2):
            feat = F.leaky_relu(conv(F.interpolate(feat, scale_factor=2, mode="nearest")), 0.2, inplace=True)
        return self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.2, inplace=True))


class ResidualBlockNoBN(nn.Module):
    """conv - ReLU - conv with an identity skip, no batch norm (EDSR / MSRResNet)."""

    def __init__(self, nf: int = 64) -> None:
        super().__init__()
        self.conv1 = _conv(nf, nf)
        self.conv2 = _conv(nf, nf)
        _small_init(self.conv1, self.conv2)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv2(F.relu(self.conv1(x), inplace=True))


class SRResNet(nn.Module):
    """SRResNet (Ledig et al. 2017) without batch norm, in basicsr's ``MSRResNet`` layout: ``nb``
    residual blocks, pixel-shuffle upsampling (×2 and ×3 in one step, ×4 in two ×2 steps) and a
    bilinear-upsampled copy of the input added to the output (when in and out channels agree)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, nf: int = 64, nb: int = 16,
                 scale: int = 4) -> None:
        super().__init__()
        if scale not in (2, 3, 4):
            raise ValueError(f"SRResNet supports scale 2, 3 or 4, got {scale}")
        self.scale = scale
        self.input_multiple = 1
        self.in_channels, self.out_channels, self.nf, self.nb = in_channels, out_channels, nf, nb
        self.conv_first = _conv(in_channels, nf)
        self.body = nn.Sequential(*(ResidualBlockNoBN(nf) for _ in range(nb)))
        step = 2 if scale == 4 else scale
        self.upconv1 = _conv(nf, nf * step * step)
        if scale == 4:
            self.upconv2 = _conv(nf, nf * 4)
        self.conv_hr = _conv(nf, nf)
        self.conv_last = _conv(nf, out_channels)
        _small_init(*(m for m in (self.conv_first, self.upconv1, getattr(self, "upconv2", None), self.conv_hr,
                                  self.conv_last) if m is not None))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feat = self.body(F.leaky_relu(self.conv_first(x), 0.1, inplace=True))
        step = 2 if self.scale == 4 else self.scale
        ups = (self.upconv1, self.upconv2) if self.scale == 4 else (self.upconv1,)
        for conv in ups:
            feat = F.leaky_relu(F.pixel_shuffle(conv(feat), step), 0.1, inplace=True)
        out = self.conv_last(F.leaky_relu(self.conv_hr(feat), 0.1, inplace=True))
        if self.in_channels == self.out_channels:
            out = out + F.interpolate(x, scale_factor=self.scale, mode="bilinear", align_corners=False)
        return out


# -- reading the architecture off a state dict ----------------------------------------------------

_LEGACY = [  # original ESRGAN repository names -> basicsr names
    (re.compile(r"^RRDB_trunk\.(\d+)\.RDB(\d)\."), r"body.\1.rdb\2."),
    (re.compile(r"^trunk_conv\."), "conv_body."),
    (re.compile(r"^upconv1\."), "conv_up1."),
    (re.compile(r"^upconv2\."), "conv_up2."),
    (re.compile(r"^HRconv\."), "conv_hr."),
]


def from_esrgan_legacy(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Rename the original ESRGAN repository's RRDBNet keys (``RRDB_ESRGAN_x4.pth``) to the basicsr
    layout; a state dict already in that layout is returned unchanged."""
    if not any(k.startswith("RRDB_trunk.") for k in state):
        return state
    renamed = {}
    for key, value in state.items():
        for pattern, new in _LEGACY:
            key = pattern.sub(new, key)
        renamed[key] = value
    return renamed


def _count_blocks(state: dict[str, torch.Tensor]) -> int:
    return len({int(m.group(1)) for k in state if (m := re.match(r"body\.(\d+)\.", k))})


def arch_from_state_dict(state: dict[str, torch.Tensor], scale: int | None = None) -> tuple[type[nn.Module], dict]:
    """``(class, kwargs)`` of the network a state dict (basicsr layout) was saved from: RRDBNet
    (``body.0.rdb1.*``) or SRResNet (``body.0.conv1.*`` + ``upconv1``). ``scale`` settles what the
    keys cannot: an RRDBNet's input channels and pixel-unshuffle share ``conv_first``'s input width,
    so without it the input is assumed to have as many channels as the output (RGB in, RGB out).
    Raises ``ValueError`` for any other layout."""
    try:
        first, last = state["conv_first.weight"], state["conv_last.weight"]
    except KeyError:
        raise ValueError("no conv_first/conv_last weights: not an RRDBNet or SRResNet state dict") from None
    nf, width_in, out_ch = first.shape[0], first.shape[1], last.shape[0]
    nb = _count_blocks(state)
    if "body.0.rdb1.conv1.weight" in state:
        gc = state["body.0.rdb1.conv1.weight"].shape[0]
        if scale is None:
            ratio = width_in // out_ch if width_in % out_ch == 0 else 0
            scale = {u * u: s for s, u in _UNSHUFFLE.items()}.get(ratio)
            if scale is None:
                raise ValueError(f"cannot tell the scale of an RRDBNet whose conv_first takes {width_in} channels "
                                 f"for {out_ch} output channels; give the scale")
        if scale not in _UNSHUFFLE or width_in % _UNSHUFFLE[scale] ** 2:
            raise ValueError(f"an RRDBNet with conv_first taking {width_in} channels cannot be scale {scale}")
        in_ch = width_in // _UNSHUFFLE[scale] ** 2
        return RRDBNet, dict(in_channels=in_ch, out_channels=out_ch, nf=nf, nb=nb, gc=gc, scale=scale)
    if "body.0.conv1.weight" in state and "upconv1.weight" in state:
        if "upconv2.weight" in state:
            found = 4
        else:
            ratio = state["upconv1.weight"].shape[0] // nf
            found = {4: 2, 9: 3}.get(ratio, 0)
        if scale is not None and scale != found:
            raise ValueError(f"this SRResNet is ×{found}, not ×{scale}")
        return SRResNet, dict(in_channels=width_in, out_channels=out_ch, nf=nf, nb=nb, scale=found)
    raise ValueError("keys match neither RRDBNet (body.N.rdb1.conv1) nor SRResNet (body.N.conv1 + upconv1)")

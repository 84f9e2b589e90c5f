"""Progressive growing of GANs (Karras et al. 2018, "Progressive Growing of GANs for Improved
Quality, Stability, and Variation"), sized by a :class:`GanNetSpec`.

Both networks are built for the target resolution from the start; which part of them runs is the
*stage* ``(level, alpha)``: level 0 works at 4x4, level k at 4 * 2^k, and while a new block fades
in (``alpha`` from 0 to 1) its output is blended with the upsampled output of the level below (G)
and its input with the downsampled image fed to the level below (D). The stage lives in a
persistent buffer of each network, so it is saved with the weights: a checkpoint taken in the
middle of a fade loads back into exactly that network, and a sampler never needs the schedule.
The schedule itself (:func:`stage_at`) is a pure function of the training step, which is what
makes a resume in the middle of a fade bit-exact.

As in the paper: equalised learning rate on every layer (the weights stored N(0, 1) and scaled
at run time by He's constant, shared with ``stylegan2.py``), pixel-wise feature normalisation
after every generator convolution, nearest-neighbour upsampling and average-pool downsampling,
1x1 toRGB/fromRGB per resolution, a linear output, and a minibatch-stddev channel before D's last
block. Conditional specs join a normalised class embedding to z and add a projection term in D.

``G(z, y)`` returns images at the target resolution at every stage (a low stage's image is
enlarged with nearest-neighbour), so the sampler, the evaluator and the demo treat it like any
other generator; training calls ``G(z, y, full_size=False)`` to get the stage's own resolution.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ARCHITECTURES, GanNetSpec
from .layers import minibatch_stddev
from .stylegan2 import EqualConv2d, EqualLinear, channels_at, normalize_2nd_moment, projected_score


def num_levels(resolution: int) -> int:
    """Levels 4x4 .. resolution (4 for 32x32)."""
    levels = int(math.log2(resolution)) - 1
    if 2 ** (levels + 1) != resolution or levels < 2:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return levels


def stage_at(step: int, grow_steps: int, levels: int) -> tuple[int, float]:
    """The stage at training step ``step`` (0-based): level 0 for ``grow_steps`` steps, then for
    each next level a fade-in of ``grow_steps`` steps (alpha rising linearly from 0) and a stable
    phase of ``grow_steps`` steps; the last level stays stable for the rest of the run."""
    if grow_steps < 1:
        raise ValueError("grow_steps must be >= 1")
    phase, into = divmod(step, grow_steps)
    if phase >= 2 * (levels - 1):
        return levels - 1, 1.0
    level = (phase + 1) // 2
    alpha = into / grow_steps if phase % 2 else 1.0
    return level, alpha


def growth_steps(grow_steps: int, levels: int) -> int:
    """Steps until the last level is fully faded in."""
    return grow_steps * (2 * levels - 2)


class _Staged(nn.Module):
    """The stage buffer ``[level, alpha]`` both networks carry (persistent: saved with them)."""

    def _init_stage(self, levels: int) -> None:
        self.levels = levels
        self.register_buffer("stage", torch.tensor([levels - 1, 1.0]))  # a fresh net: fully grown

    def set_stage(self, level: int, alpha: float) -> None:
        if not 0 <= level < self.levels or not 0.0 <= alpha <= 1.0:
            raise ValueError(f"stage ({level}, {alpha}) outside 0..{self.levels - 1}, [0, 1]")
        with torch.no_grad():
            self.stage.copy_(torch.tensor([float(level), float(alpha)]))

    def get_stage(self) -> tuple[int, float]:
        level, alpha = self.stage.tolist()
        return int(level), float(alpha)


def pixel_norm(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    """Each pixel's feature vector scaled to unit mean square (the paper's "pixelwise feature
    vector normalisation"): keeps G's signal magnitudes from escalating, in place of BatchNorm."""
    return x * (x.float().square().mean(dim=1, keepdim=True) + eps).rsqrt().to(x.dtype)


class ProGANGenerator(_Staged):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = num_levels(spec.resolution)
        self.resolution, self.z_dim, self.num_classes = spec.resolution, spec.z_dim, spec.num_classes
        self.embed = nn.Embedding(spec.num_classes, spec.z_dim) if spec.num_classes else None
        ch = channels_at(spec, 4)
        in_dim = spec.z_dim * (2 if spec.num_classes else 1)
        self.dense = EqualLinear(in_dim, ch * 16, act=True)  # z -> 4x4 (the paper's 4x4 "conv" on a 1x1 input)
        self.conv4 = EqualConv2d(ch, ch, 3)
        convs0, convs1 = [], []
        rgbs = [EqualConv2d(ch, spec.channels, 1, act=False)]
        for level in range(1, levels):
            cout = channels_at(spec, 4 * 2 ** level)
            convs0.append(EqualConv2d(ch, cout, 3))
            convs1.append(EqualConv2d(cout, cout, 3))
            rgbs.append(EqualConv2d(cout, spec.channels, 1, act=False))
            ch = cout
        self.convs0, self.convs1, self.to_rgb = nn.ModuleList(convs0), nn.ModuleList(convs1), nn.ModuleList(rgbs)
        self._init_stage(levels)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, full_size: bool = True) -> torch.Tensor:
        level, alpha = self.get_stage()
        x = normalize_2nd_moment(z)
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels")
            x = torch.cat([x, normalize_2nd_moment(self.embed(labels))], dim=1)
        x = self.dense(x).reshape(x.shape[0], -1, 4, 4)
        x = pixel_norm(self.conv4(pixel_norm(x)))
        before = x
        for i in range(level):
            before = x
            x = F.interpolate(x, scale_factor=2, mode="nearest")
            x = pixel_norm(self.convs1[i](pixel_norm(self.convs0[i](x))))
        img = self.to_rgb[level](x)
        if alpha < 1.0 and level > 0:  # fade-in: blend with the level below, enlarged
            low = F.interpolate(self.to_rgb[level - 1](before), scale_factor=2, mode="nearest")
            img = torch.lerp(low, img, alpha)
        if full_size and img.shape[-1] != self.resolution:
            img = F.interpolate(img, size=(self.resolution, self.resolution), mode="nearest")
        return img


class ProGANDiscriminator(_Staged):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = num_levels(spec.resolution)
        rgbs, convs0, convs1 = [], [], []
        for level in range(levels):
            ch = channels_at(spec, 4 * 2 ** level)
            rgbs.append(EqualConv2d(spec.channels, ch, 1))
            if level:  # the block that takes level's resolution down to the level below
                convs0.append(EqualConv2d(ch, ch, 3))
                convs1.append(EqualConv2d(ch, channels_at(spec, 2 * 2 ** level), 3))
        self.from_rgb, self.convs0, self.convs1 = nn.ModuleList(rgbs), nn.ModuleList(convs0), nn.ModuleList(convs1)
        ch = channels_at(spec, 4)
        self.conv4 = EqualConv2d(ch + 1, ch, 3)  # +1: minibatch-stddev channel
        self.fc = EqualLinear(ch * 16, ch, act=True)
        self.out = EqualLinear(ch, 1)
        self.embed = nn.Embedding(spec.num_classes, ch) if spec.num_classes else None  # projection
        self._init_stage(levels)

    def _block(self, i: int, h: torch.Tensor) -> torch.Tensor:
        """Level i + 1's block: two 3x3 convs, then 2x average pooling."""
        return F.avg_pool2d(self.convs1[i](self.convs0[i](h)), 2)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Scores images at the current stage's resolution, or larger ones (box-downsampled to it)."""
        level, alpha = self.get_stage()
        res = 4 * 2 ** level
        if x.shape[-1] != res:
            if x.shape[-1] < res or x.shape[-1] % res:
                raise ValueError(f"D at stage {level} takes {res}x{res} images, got {tuple(x.shape[-2:])}")
            x = F.avg_pool2d(x, x.shape[-1] // res)
        h = self.from_rgb[level](x)
        if level > 0:
            h = self._block(level - 1, h)
            if alpha < 1.0:  # fade-in: blend with the level below's input path
                h = torch.lerp(self.from_rgb[level - 1](F.avg_pool2d(x, 2)), h, alpha)
            for i in range(level - 2, -1, -1):
                h = self._block(i, h)
        h = self.fc(self.conv4(minibatch_stddev(h)).flatten(1))
        return projected_score(h, self.out, self.embed, labels)


def reals_at_stage(x: torch.Tensor, level: int, alpha: float) -> torch.Tensor:
    """Training images at a stage: box-downsampled to its resolution and, during a fade-in,
    blended with their own level-below version (enlarged), as the paper does, so D never sees
    reals sharper than what G can make at that moment."""
    res = 4 * 2 ** level
    if x.shape[-1] != res:
        x = F.avg_pool2d(x, x.shape[-1] // res)
    if alpha < 1.0 and level > 0:
        low = F.interpolate(F.avg_pool2d(x, 2), scale_factor=2, mode="nearest")
        x = torch.lerp(low, x, alpha)
    return x


@ARCHITECTURES.register("progan")
def progan(spec: GanNetSpec) -> tuple[nn.Module, nn.Module]:
    return ProGANGenerator(spec), ProGANDiscriminator(spec)

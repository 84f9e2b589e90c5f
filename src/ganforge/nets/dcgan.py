"""DCGAN (Radford et al. 2016): transposed-conv generator with BatchNorm (or, with
``spec.resize_conv``, nearest-neighbour upsampling + 3x3 convs: the text default), strided-conv
discriminator with LeakyReLU and a minibatch-stddev channel. The conditional variant feeds a
learned label embedding to G (joined to z, and driving class-conditional BatchNorm) and uses a
projection head in D. On its own such a G tends to ignore z within a class; the GAN task's
mode-seeking term (on by default for conditional runs) counters that."""

from __future__ import annotations

import math

import torch
from torch import nn

from .registry import ARCHITECTURES, GanNetSpec
from .layers import (ProjectionHead, apply_norm, class_condition, class_embedding, dcgan_init, make_norm,
                     minibatch_stddev)


def _levels(resolution: int) -> int:
    levels = int(math.log2(resolution)) - 2  # 4x4 -> resolution
    if 2 ** (levels + 2) != resolution or levels < 1:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return levels


def _upsample(c_in: int, c_out: int, resize_conv: bool) -> nn.Module:
    """x2 upsampling: the paper's stride-2 transposed conv, or nearest-neighbour resizing then a 3x3
    conv (Odena et al. 2016, "Deconvolution and checkerboard artifacts": every output pixel gets
    the same number of kernel taps, so flat colours come out flat)."""
    if resize_conv:
        return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False))
    return nn.ConvTranspose2d(c_in, c_out, 4, 2, 1, bias=False)


class DCGANGenerator(nn.Module):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = _levels(spec.resolution)
        self.z_dim, self.num_classes, self.text_dim = spec.z_dim, spec.num_classes, spec.text_dim
        ch = spec.width * 2 ** (levels - 1)
        self.embed = class_embedding(spec.num_classes, spec.z_dim, spec.text_dim)
        conditions = int(self.embed is not None)  # as a count for make_norm: conditional or not
        in_dim = spec.z_dim * (2 if conditions else 1)  # [z, embed(y)]
        convs = [nn.ConvTranspose2d(in_dim, ch, 4, 1, 0, bias=False)]
        norms = [make_norm(ch, conditions, spec.z_dim)]
        for _ in range(levels - 1):
            convs.append(_upsample(ch, ch // 2, bool(spec.resize_conv)))
            norms.append(make_norm(ch // 2, conditions, spec.z_dim))
            ch //= 2
        self.convs, self.norms = nn.ModuleList(convs), nn.ModuleList(norms)
        self.to_rgb = _upsample(ch, spec.channels, bool(spec.resize_conv))
        dcgan_init(self)
        if spec.text_dim > 0:  # the sentence projection keeps its own scale (N(0, 1) out, as z)
            self.embed = class_embedding(0, spec.z_dim, spec.text_dim)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        cond = class_condition(self.embed, labels)
        x = (z if cond is None else torch.cat([z, cond], dim=1))[:, :, None, None]
        if cond is not None:
            cond = cond * cond.shape[1] ** -0.5  # unit-norm input for the gain/bias projections
        for conv, norm in zip(self.convs, self.norms):
            x = torch.relu(apply_norm(norm, conv(x), cond))
        return torch.tanh(self.to_rgb(x))


class DCGANDiscriminator(nn.Module):
    minibatch_std = True  # the minibatch-stddev channel (it mixes examples: off in a per-example D)

    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = _levels(spec.resolution)
        ch = spec.width
        layers: list[nn.Module] = [nn.Conv2d(spec.channels, ch, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True)]
        for _ in range(levels - 1):
            layers += [nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ch * 2), nn.LeakyReLU(0.2, True)]
            ch *= 2
        self.main = nn.Sequential(*layers)
        # The classic final 4x4 valid conv is a linear map of the flattened 4x4 features.
        self.head = ProjectionHead((ch + 1) * 16, spec.num_classes, text_dim=spec.text_dim)  # +1: minibatch-stddev
        dcgan_init(self)
        if spec.text_dim > 0:  # a text head's linear map: back to its own scale after dcgan_init
            self.head.reset_embedding()

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.main(x)
        return self.head((minibatch_stddev(h) if self.minibatch_std else h).flatten(1), labels)


@ARCHITECTURES.register("dcgan")
def dcgan(spec: GanNetSpec) -> tuple[nn.Module, nn.Module]:
    return DCGANGenerator(spec), DCGANDiscriminator(spec)


def spectral_discriminator(D: nn.Module) -> nn.Module:
    """``D`` (a :class:`DCGANDiscriminator`) with spectral normalisation (Miyato et al. 2018) on
    every conv and the head's linear map, and its BatchNorm layers removed (SNGAN's D has none):
    D's Lipschitz constant stays bounded, so it cannot win the game outright in the first steps.
    Changes ``D`` in place (its current weights become the parametrisations' originals)."""
    sn = nn.utils.parametrizations.spectral_norm
    layers = [nn.Identity() if isinstance(m, nn.BatchNorm2d) else sn(m) if isinstance(m, nn.Conv2d) else m
              for m in D.main]
    D.main = nn.Sequential(*layers)
    D.head.linear = sn(D.head.linear)
    return D


def without_minibatch_stddev(D: nn.Module) -> nn.Module:
    """``D`` (a :class:`DCGANDiscriminator`) without its minibatch-stddev channel: a fresh head
    (DCGAN's N(0, 0.02) init) for the features alone. Changes ``D`` in place; a no-op when the
    channel is already off."""
    if not D.minibatch_std:
        return D
    old = D.head
    text_dim = old.embed.in_features if isinstance(old.embed, nn.Linear) else 0
    classes = old.embed.num_embeddings if isinstance(old.embed, nn.Embedding) else 0
    D.head = ProjectionHead(old.linear.in_features - 16, classes, text_dim=text_dim)
    nn.init.normal_(D.head.linear.weight, 0.0, 0.02)
    nn.init.zeros_(D.head.linear.bias)
    D.minibatch_std = False
    return D


def head_has_minibatch_stddev(D_state: dict, spec: GanNetSpec) -> bool:
    """Whether a stored DCGAN discriminator's state (``D_state``) was built with the channel: its
    head reads (channels + 1) x 16 features with it, channels x 16 without."""
    weight = D_state.get("head.linear.weight", D_state.get("head.linear.parametrizations.weight.original"))  # (SN)
    return weight.shape[1] == (spec.width * 2 ** (_levels(spec.resolution) - 1) + 1) * 16


def per_example_discriminator(D: nn.Module, norm: str = "group") -> nn.Module:
    """``D`` (a :class:`DCGANDiscriminator`) as a per-example network, for differentially private
    training (per-sample gradient clipping): BatchNorm (whose statistics mix the batch) replaced by
    GroupNorm (``norm="group"``) or by nothing (``"none"``: the convolutions get the biases that
    BatchNorm's shift stood for, as in the D of "Private GANs, revisited"); no minibatch-stddev
    channel (it mixes examples too), non-inplace activations (Opacus' backward hooks) and a fresh
    head for the features without that channel. Changes ``D`` in place."""
    if norm not in ("group", "none"):
        raise ValueError(f"norm must be group or none, got {norm!r}")
    layers: list[nn.Module] = []
    for m in D.main:
        if isinstance(m, nn.BatchNorm2d):
            c = m.num_features
            m = nn.GroupNorm(min(32, max(1, c // 4)), c) if norm == "group" else nn.Identity()
        elif isinstance(m, nn.Conv2d) and norm == "none" and m.bias is None:
            conv = nn.Conv2d(m.in_channels, m.out_channels, m.kernel_size, m.stride, m.padding, bias=True)
            with torch.no_grad():
                conv.weight.copy_(m.weight)
                conv.bias.zero_()
            m = conv
        elif isinstance(m, nn.LeakyReLU):
            m = nn.LeakyReLU(m.negative_slope)
        layers.append(m)
    D.main = nn.Sequential(*layers)  # (an Identity keeps a BatchNorm's place: the state's keys stay put)
    return without_minibatch_stddev(D)


def stored_d_norm(D_state: dict) -> str:
    """The ``--d-norm`` a stored DCGAN discriminator's state was built with (its weights' layout)."""
    if any("parametrizations" in k for k in D_state):
        return "spectral"
    if any("running_mean" in k for k in D_state):
        return "batch"
    norm_weights = [k for k, v in D_state.items() if k.startswith("main.") and k.endswith(".weight") and v.dim() == 1]
    return "group" if norm_weights else "none"  # GroupNorm's per-channel weights; a D without norm has none

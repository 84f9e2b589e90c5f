"""Image-to-image translation networks of pix2pix (Isola et al. 2017) and CycleGAN (Zhu et al. 2017).

The module trees (attribute names and ``nn.Sequential`` indices) follow the public
junyanz/pytorch-CycleGAN-and-pix2pix implementation on purpose: ``state_dict()`` keys are the same,
so its published generators (``latest_net_G.pth``) load strictly. That is why layers with no
parameters (ReLU, padding, Tanh, Dropout) are kept as modules in the same positions, and why the
bias rule is upstream's: convolutions followed by BatchNorm (or no norm) have no bias, those
followed by the affine-free InstanceNorm have one.
"""

from __future__ import annotations

import math
from typing import Callable

import torch
from torch import nn

from ..errors import GanforgeError

NORMS = ("batch", "instance", "none")


def norm_layer(norm: str) -> Callable[[int], nn.Module]:
    """Channels -> normalisation module, as upstream: BatchNorm with affine and running statistics;
    InstanceNorm without affine or running statistics (per image, so batch size does not matter);
    ``none`` is an ``nn.Identity`` so the Sequential indices (and the checkpoint keys) stay put."""
    if norm == "batch":
        return lambda ch: nn.BatchNorm2d(ch, affine=True, track_running_stats=True)
    if norm == "instance":
        return lambda ch: nn.InstanceNorm2d(ch, affine=False, track_running_stats=False)
    if norm == "none":
        return lambda ch: nn.Identity()
    raise GanforgeError(f"unknown norm {norm!r}; choose one of: {', '.join(NORMS)}")


def _conv_bias(norm: str) -> bool:
    """Upstream's rule: only InstanceNorm (no affine shift) leaves the conv its bias."""
    norm_layer(norm)  # validates the name
    return norm == "instance"


def init_weights(module: nn.Module, init_type: str = "normal", gain: float = 0.02) -> nn.Module:
    """The papers' initialisation: conv / linear weights N(0, gain) (or xavier / kaiming /
    orthogonal), their biases 0; BatchNorm weight N(1, gain), bias 0. Draws from the global torch
    RNG, so seed with ``torch.manual_seed`` before calling for a reproducible network."""
    if init_type not in ("normal", "xavier", "kaiming", "orthogonal"):
        raise GanforgeError(f"unknown init {init_type!r}; choose one of: normal, xavier, kaiming, orthogonal")

    def init(m: nn.Module) -> None:
        if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d, nn.Linear)):
            if init_type == "normal":
                nn.init.normal_(m.weight, 0.0, gain)
            elif init_type == "xavier":
                nn.init.xavier_normal_(m.weight, gain=gain)
            elif init_type == "kaiming":
                nn.init.kaiming_normal_(m.weight, a=0, mode="fan_in")
            else:
                nn.init.orthogonal_(m.weight, gain=gain)
            if m.bias is not None:
                nn.init.zeros_(m.bias)
        elif isinstance(m, nn.BatchNorm2d) and m.weight is not None:
            nn.init.normal_(m.weight, 1.0, gain)
            nn.init.zeros_(m.bias)

    with torch.no_grad():
        module.apply(init)
    return module


def _check_size(x: torch.Tensor, multiple: int, name: str) -> None:
    h, w = x.shape[-2:]
    if h % multiple or w % multiple:
        raise GanforgeError(f"{name} needs height and width that are multiples of {multiple}, got {h}x{w}; "
                            f"resize or pad the image")


# --- U-Net (pix2pix) -----------------------------------------------------------------------------

class UnetSkipConnectionBlock(nn.Module):
    """One U-Net level: down (conv 4x4/2), the inner levels, up (transposed conv 4x4/2), and a skip
    concatenation of the level's input with its output (except the outermost level, which ends in
    Tanh). Layer positions in ``self.model`` match upstream so checkpoint keys match."""

    def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
                 submodule: nn.Module | None = None, outermost: bool = False, innermost: bool = False,
                 norm: str = "batch", use_dropout: bool = False) -> None:
        super().__init__()
        self.outermost = outermost
        make_norm, bias = norm_layer(norm), _conv_bias(norm)
        input_nc = outer_nc if input_nc is None else input_nc
        down = nn.Conv2d(input_nc, inner_nc, kernel_size=4, stride=2, padding=1, bias=bias)
        if outermost:  # the image level: no norm around it; the output conv keeps its bias
            up = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1)
            layers = [down, submodule, nn.ReLU(True), up, nn.Tanh()]
        elif innermost:  # the 1x1 bottleneck: no norm on the down path (one value per channel)
            up = nn.ConvTranspose2d(inner_nc, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, nn.ReLU(True), up, make_norm(outer_nc)]
        else:
            up = nn.ConvTranspose2d(inner_nc * 2, outer_nc, kernel_size=4, stride=2, padding=1, bias=bias)
            layers = [nn.LeakyReLU(0.2, True), down, make_norm(inner_nc), submodule,
                      nn.ReLU(True), up, make_norm(outer_nc)]
            if use_dropout:  # appended last, so it shifts no parameter index
                layers.append(nn.Dropout(0.5))
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.model(x)
        return y if self.outermost else torch.cat([x, y], 1)


class UnetGenerator(nn.Module):
    """pix2pix's U-Net: ``num_downs`` stride-2 levels (8 for 256x256 inputs, down to 1x1) with skip
    connections; the ``num_downs - 5`` innermost-but-one ngf*8 levels carry Dropout(0.5), pix2pix's
    only noise source. Output is Tanh, in [-1, 1]. Keys equal upstream ``UnetGenerator``'s."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, num_downs: int = 8, ngf: int = 64,
                 norm: str = "batch", use_dropout: bool = True) -> None:
        super().__init__()
        if num_downs < 5:
            raise GanforgeError(f"UnetGenerator needs num_downs >= 5 (the fixed outer levels), got {num_downs}")
        self.multiple = 2 ** num_downs
        self.num_downs, self.ngf, self.norm = num_downs, ngf, norm
        self.in_channels, self.out_channels = in_channels, out_channels
        block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True, norm=norm)
        for _ in range(num_downs - 5):
            block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, norm=norm, use_dropout=use_dropout)
        for mult in (4, 2, 1):
            block = UnetSkipConnectionBlock(ngf * mult, ngf * mult * 2, submodule=block, norm=norm)
        self.model = UnetSkipConnectionBlock(out_channels, ngf, input_nc=in_channels, submodule=block,
                                             outermost=True, norm=norm)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, self.multiple, f"UnetGenerator ({self.num_downs} downsamplings)")
        return self.model(x)


# --- ResNet (CycleGAN, after Johnson et al.) -------------------------------------------------------

class ResnetBlock(nn.Module):
    """x + [reflect-pad, conv3x3, norm, ReLU, (Dropout), reflect-pad, conv3x3, norm](x)."""

    def __init__(self, dim: int, norm: str = "instance", use_dropout: bool = False) -> None:
        super().__init__()
        make_norm, bias = norm_layer(norm), _conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim),
                                   nn.ReLU(True)]
        if use_dropout:  # inserted mid-block as upstream does: shifts the second conv to index 6
            layers.append(nn.Dropout(0.5))
        layers += [nn.ReflectionPad2d(1), nn.Conv2d(dim, dim, 3, bias=bias), make_norm(dim)]
        self.conv_block = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.conv_block(x)


class ResnetGenerator(nn.Module):
    """CycleGAN's generator: 7x7 conv, two stride-2 downsamplings, ``n_blocks`` residual blocks, two
    transposed-conv upsamplings, 7x7 conv and Tanh; reflection padding avoids border artefacts.
    Keys equal upstream ``ResnetGenerator``'s (``model.1.weight``, ``model.10.conv_block.1.weight``…)."""

    def __init__(self, in_channels: int = 3, out_channels: int = 3, ngf: int = 64, n_blocks: int = 9,
                 norm: str = "instance", use_dropout: bool = False) -> None:
        super().__init__()
        if n_blocks < 0:
            raise GanforgeError(f"ResnetGenerator needs n_blocks >= 0, got {n_blocks}")
        self.multiple = 4
        self.n_blocks, self.ngf, self.norm = n_blocks, ngf, norm
        self.in_channels, self.out_channels = in_channels, out_channels
        make_norm, bias = norm_layer(norm), _conv_bias(norm)
        layers: list[nn.Module] = [nn.ReflectionPad2d(3), nn.Conv2d(in_channels, ngf, 7, bias=bias),
                                   make_norm(ngf), nn.ReLU(True)]
        for mult in (1, 2):
            layers += [nn.Conv2d(ngf * mult, ngf * mult * 2, 3, stride=2, padding=1, bias=bias),
                       make_norm(ngf * mult * 2), nn.ReLU(True)]
        layers += [ResnetBlock(ngf * 4, norm, use_dropout) for _ in range(n_blocks)]
        for mult in (4, 2):
            layers += [nn.ConvTranspose2d(ngf * mult, ngf * mult // 2, 3, stride=2, padding=1, output_padding=1,
                                          bias=bias),
                       make_norm(ngf * mult // 2), nn.ReLU(True)]
        layers += [nn.ReflectionPad2d(3), nn.Conv2d(ngf, out_channels, 7), nn.Tanh()]
        self.model = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        _check_size(x, self.multiple, "ResnetGenerator")
        return self.model(x)


# --- PatchGAN discriminator ----------------------------------------------------------------------

class PatchDiscriminator(nn.Module):
    """Upstream ``NLayerDiscriminator``: ``n_layers`` stride-2 4x4 convs then two stride-1 ones; each
    output logit sees one patch (70x70 at ``n_layers=3``), so D judges local texture and the L1 /
    cycle loss handles global layout. Returns raw logits (no sigmoid), e.g. 30x30 for 256x256."""

    def __init__(self, in_channels: int, ndf: int = 64, n_layers: int = 3, norm: str = "batch") -> None:
        super().__init__()
        if n_layers < 1:
            raise GanforgeError(f"PatchDiscriminator needs n_layers >= 1, got {n_layers}")
        make_norm, bias = norm_layer(norm), _conv_bias(norm)
        layers: list[nn.Module] = [nn.Conv2d(in_channels, ndf, 4, stride=2, padding=1), nn.LeakyReLU(0.2, True)]
        mult = 1
        for n in range(1, n_layers + 1):
            prev, mult = mult, min(2 ** n, 8)
            stride = 2 if n < n_layers else 1
            layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, stride=stride, padding=1, bias=bias),
                       make_norm(ndf * mult), nn.LeakyReLU(0.2, True)]
        layers.append(nn.Conv2d(ndf * mult, 1, 4, stride=1, padding=1))
        self.model = nn.Sequential(*layers)
        self.n_layers = n_layers

    @property
    def receptive_field(self) -> int:
        """Input pixels one output logit sees (70 for n_layers=3)."""
        rf = 1
        for k, s in [(4, 1), (4, 1)] + [(4, 2)] * self.n_layers:  # from the output back to the input
            rf = (rf - 1) * s + k
        return rf

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model(x)


def unet_downs_for(size: int) -> int:
    """``unet_256`` -> 8: the number of stride-2 levels that take ``size`` down to 1x1."""
    downs = int(round(math.log2(size))) if size > 0 else 0
    if 2 ** downs != size:
        raise GanforgeError(f"U-Net size must be a power of two, got {size}")
    return downs

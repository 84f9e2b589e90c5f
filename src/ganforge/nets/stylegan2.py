"""StyleGAN2 (Karras et al. 2020, "Analyzing and Improving the Image Quality of StyleGAN"), sized
by a :class:`GanNetSpec`: a mapping network z -> w (equalised learning rate, lr multiplier 0.01),
a synthesis network of modulated/demodulated 3x3 convolutions with per-layer noise inputs and a
skip architecture (one toRGB per resolution, upsampled and summed), and a residual discriminator
with a minibatch-stddev channel. Conditional specs join a class embedding to z in the mapping
network and use a projection head in D.

Differences from the official code, on purpose: the [1, 3, 3, 1] up/down-sampling filters are
depthwise (transposed) convolutions rather than upfirdn2d, so R1 and path-length double backward
work everywhere with stock ops (the upsampling conv is a stride-2 transposed conv then the blur,
as in the official code; the downsampling one a blur then a stride-2 conv); the
modulated convolution (``nets/modconv.py``) trains in the "non-fused" form (scale input channels,
convolve, scale output channels), as the official code does, and samples in the form measured
faster per device and layer; no fp16 clamping; ``w_avg`` is kept per class in
conditional networks, so truncation toward it keeps the class.

``G(z, y)`` works like every other architecture's generator. The parts the StyleGAN trainer and
sampler need: ``G.mapping(z, y, truncation_psi=1, update_w_avg=False)`` -> ws ``(N, num_ws, w_dim)``,
``G.synthesis(ws, generator=None)``, ``G.num_ws`` and the ``G.mapping.w_avg`` buffer. Noise inputs
are drawn from ``generator`` (or torch's global RNG) in training mode; in eval mode they are fixed
buffers drawn once at construction, so ``G_ema(z, y)`` is a deterministic function of ``(z, y)``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from .registry import ARCHITECTURES, GanNetSpec
from .layers import minibatch_stddev
from .modconv import modulated_conv2d

SQRT2 = math.sqrt(2.0)
FIR = (1.0, 3.0, 3.0, 1.0)


def lrelu(x: torch.Tensor) -> torch.Tensor:
    """Leaky ReLU with the gain sqrt(2) that keeps unit variance through the layer."""
    return F.leaky_relu(x, 0.2) * SQRT2


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


def _fir(channels: int) -> torch.Tensor:
    f = torch.tensor(FIR)
    k = torch.outer(f, f)
    return (k / k.sum()).expand(channels, 1, 4, 4).contiguous()


class Upsample2x(nn.Module):
    """2x upsampling with the [1, 3, 3, 1] filter (= bilinear, zero border), as a depthwise
    transposed convolution."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("kernel", _fir(channels) * 4.0, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv_transpose2d(x, self.kernel.to(x.dtype), stride=2, padding=1, groups=x.shape[1])


class UpBlur(nn.Module):
    """The blur after a stride-2 transposed 3x3 convolution (2H + 1 -> 2H), with gain 4."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        self.register_buffer("kernel", _fir(channels) * 4.0, persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), padding=1, groups=x.shape[1])


class Blur(nn.Module):
    """The [1, 3, 3, 1] low-pass filter, optionally with stride 2 (anti-aliased 2x downsampling)."""

    def __init__(self, channels: int, padding: int, stride: int = 1) -> None:
        super().__init__()
        self.padding, self.stride = padding, stride
        self.register_buffer("kernel", _fir(channels), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.conv2d(x, self.kernel.to(x.dtype), stride=self.stride, padding=self.padding, groups=x.shape[1])


class EqualLinear(nn.Module):
    """Fully connected layer with equalised learning rate: weights stored N(0, 1/lr_mul), scaled
    by lr_mul/sqrt(fan_in) at run time (so Adam moves every layer at the same relative speed)."""

    def __init__(self, cin: int, cout: int, bias_init: float = 0.0, lr_mul: float = 1.0, act: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin))
        self.bias = nn.Parameter(torch.empty(cout))
        self.bias_init, self.lr_mul, self.act = bias_init, lr_mul, act
        self.weight_gain = lr_mul / math.sqrt(cin)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_().div_(self.lr_mul)
            self.bias.fill_(self.bias_init / self.lr_mul)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.linear(x, self.weight * self.weight_gain, self.bias * self.lr_mul)
        return lrelu(x) if self.act else x


class EqualConv2d(nn.Module):
    """Convolution with equalised learning rate; ``down``: [1, 3, 3, 1] blur, then stride 2."""

    def __init__(self, cin: int, cout: int, kernel: int, bias: bool = True, act: bool = True, down: bool = False) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(cout, cin, kernel, kernel))
        self.bias = nn.Parameter(torch.empty(cout)) if bias else None
        self.weight_gain = 1.0 / math.sqrt(cin * kernel * kernel)
        self.act, self.down, self.kernel = act, down, kernel
        if down:  # blur (pad 2) to H + 1, then the unpadded stride-2 3x3 conv lands on H / 2
            if kernel != 3:
                raise ValueError("a downsampling EqualConv2d is 3x3")
            self.blur = Blur(cin, padding=2)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_()
            if self.bias is not None:
                self.bias.zero_()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight * self.weight_gain
        if self.down:
            x = F.conv2d(self.blur(x), w, self.bias, stride=2)
        else:
            x = F.conv2d(x, w, self.bias, padding=self.kernel // 2)
        return lrelu(x) if self.act else x


class SynthesisLayer(nn.Module):
    """Modulated 3x3 conv (optionally after 2x upsampling) + noise + bias + lrelu."""

    def __init__(self, cin: int, cout: int, w_dim: int, resolution: int, up: bool = False) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(cout, cin, 3, 3))
        self.bias = nn.Parameter(torch.zeros(cout))
        self.noise_strength = nn.Parameter(torch.zeros(()))
        self.register_buffer("noise_const", torch.randn(1, 1, resolution, resolution))
        self.up = UpBlur(cout) if up else None
        self.resolution = resolution
        self.fused_modconv: bool | None = None  # None: per device and layer (nets.modconv); False: ONNX graphs

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_()
            self.bias.zero_()
            self.noise_strength.zero_()

    def forward(self, x: torch.Tensor, w: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, demodulate=True, padding=1, up=self.up, fused=self.fused_modconv,
                             training=self.training)
        if self.training:
            noise = torch.randn(x.shape[0], 1, self.resolution, self.resolution, device=x.device,
                                generator=generator).to(x.dtype)
        else:
            noise = self.noise_const.to(x.dtype)
        x = x + noise * self.noise_strength.to(x.dtype)
        return lrelu(x + self.bias.to(x.dtype)[:, None, None])


class ToRGB(nn.Module):
    """Modulated 1x1 conv to image channels, no demodulation."""

    def __init__(self, cin: int, channels: int, w_dim: int) -> None:
        super().__init__()
        self.affine = EqualLinear(w_dim, cin, bias_init=1.0)
        self.weight = nn.Parameter(torch.randn(channels, cin, 1, 1))
        self.bias = nn.Parameter(torch.zeros(channels))
        self.weight_gain = 1.0 / math.sqrt(cin)
        self.fused_modconv: bool | None = None  # as SynthesisLayer's

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.weight.normal_()
            self.bias.zero_()

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=self.fused_modconv, training=self.training)
        return x + self.bias.to(x.dtype)[:, None, None]


def _levels(resolution: int) -> int:
    levels = int(math.log2(resolution)) - 2
    if 2 ** (levels + 2) != resolution or levels < 1:
        raise ValueError(f"resolution must be a power of two >= 8, got {resolution}")
    return levels


def channels_at(spec: GanNetSpec, resolution: int) -> int:
    """spec.width channels at the output resolution, doubling per halving, at most 8 x width."""
    return spec.width * min(spec.resolution // resolution, 8)


def mapping_layers(spec: GanNetSpec) -> int:
    """8 as in the paper; 2 for small networks (32² or width < 32, as StyleGAN2-ADA's CIFAR config)."""
    return 8 if spec.resolution >= 64 and spec.width >= 32 else 2


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, w_dim: int, num_ws: int, num_classes: int, layers: int,
                 lr_mul: float = 0.01, w_avg_beta: float = 0.995, text_dim: int = 0) -> None:
        super().__init__()
        self.z_dim, self.w_dim, self.num_ws, self.num_classes = z_dim, w_dim, num_ws, num_classes
        self.w_avg_beta = w_avg_beta
        # c: a class (embedding table) or a sentence embedding (a FC layer, as the official code embeds c)
        self.embed = (nn.Embedding(num_classes, z_dim) if num_classes
                      else EqualLinear(text_dim, z_dim) if text_dim else None)
        dims = [z_dim * (2 if self.embed is not None else 1)] + [w_dim] * layers
        self.fc = nn.ModuleList(EqualLinear(a, b, lr_mul=lr_mul, act=True) for a, b in zip(dims[:-1], dims[1:]))
        self.register_buffer("w_avg", torch.zeros(max(num_classes, 1), w_dim))  # one row per class

    def _avg_rows(self, y: torch.Tensor | None, n: int) -> torch.Tensor:
        if self.num_classes:
            return self.w_avg[y]
        return self.w_avg.expand(n, -1)

    def forward(self, z: torch.Tensor, y: torch.Tensor | None = None, truncation_psi: float = 1.0,
                update_w_avg: bool = False) -> torch.Tensor:
        x = normalize_2nd_moment(z.float())
        if self.embed is not None:
            if y is None:
                raise ValueError("a conditional generator needs labels")
            x = torch.cat([x, normalize_2nd_moment(self.embed(y.float() if self.num_classes == 0 else y).float())], dim=1)
        for layer in self.fc:
            x = layer(x)
        if update_w_avg:
            self.track_w_avg(x, y)
        if truncation_psi != 1:
            avg = self._avg_rows(y, x.shape[0]).to(x.dtype)
            x = avg.lerp(x, truncation_psi)
        return x[:, None, :].expand(-1, self.num_ws, -1)

    @torch.no_grad()
    def track_w_avg(self, w: torch.Tensor, y: torch.Tensor | None) -> None:
        """EMA of w (per class when conditional) with decay ``w_avg_beta``."""
        w = w.detach().float()
        if not self.num_classes:
            self.w_avg.lerp_(w.mean(dim=0, keepdim=True), 1 - self.w_avg_beta)
            return
        sums = torch.zeros_like(self.w_avg).index_add_(0, y, w)
        counts = torch.bincount(y, minlength=self.num_classes).to(w.dtype)[:, None]
        seen = counts > 0
        target = torch.where(seen, sums / counts.clamp(min=1), self.w_avg)
        self.w_avg.lerp_(target, 1 - self.w_avg_beta)  # unseen classes: target = itself, unchanged


class SynthesisNetwork(nn.Module):
    """Constant 4x4 input; per resolution two modulated convs (the first upsamples) and a toRGB
    whose output is added to the upsampled image so far (skip architecture)."""

    def __init__(self, spec: GanNetSpec, w_dim: int) -> None:
        super().__init__()
        levels = _levels(spec.resolution)
        ch = channels_at(spec, 4)
        self.const = nn.Parameter(torch.randn(ch, 4, 4))
        self.conv4 = SynthesisLayer(ch, ch, w_dim, 4)
        self.rgb4 = ToRGB(ch, spec.channels, w_dim)
        convs0, convs1, rgbs, ups = [], [], [], []
        for i in range(1, levels + 1):
            res = 4 * 2 ** i
            cout = channels_at(spec, res)
            convs0.append(SynthesisLayer(ch, cout, w_dim, res, up=True))
            convs1.append(SynthesisLayer(cout, cout, w_dim, res))
            rgbs.append(ToRGB(cout, spec.channels, w_dim))
            ups.append(Upsample2x(spec.channels))
            ch = cout
        self.convs0, self.convs1 = nn.ModuleList(convs0), nn.ModuleList(convs1)
        self.rgbs, self.img_up = nn.ModuleList(rgbs), nn.ModuleList(ups)
        # w indices: conv4 -> 0, rgb4 -> 1; block i: conv0 -> 2i - 1, conv1 -> 2i, rgb -> 2i + 1
        self.num_ws = 2 * levels + 2

    def reset_parameters(self) -> None:
        with torch.no_grad():
            self.const.normal_()

    def forward(self, ws: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        if ws.shape[1] != self.num_ws:
            raise ValueError(f"expected {self.num_ws} ws, got {ws.shape[1]}")
        x = self.const[None].expand(ws.shape[0], -1, -1, -1).to(ws.dtype)
        x = self.conv4(x, ws[:, 0], generator)
        img = self.rgb4(x, ws[:, 1])
        for i, (c0, c1, rgb, up) in enumerate(zip(self.convs0, self.convs1, self.rgbs, self.img_up), start=1):
            x = c0(x, ws[:, 2 * i - 1], generator)
            x = c1(x, ws[:, 2 * i], generator)
            img = up(img) + rgb(x, ws[:, 2 * i + 1])
        return img


class StyleGAN2Generator(nn.Module):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        self.z_dim, self.num_classes = spec.z_dim, spec.num_classes
        self.w_dim = min(512, 8 * spec.width)
        self.synthesis = SynthesisNetwork(spec, self.w_dim)
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(spec.z_dim, self.w_dim, self.num_ws, spec.num_classes, mapping_layers(spec),
                                     text_dim=spec.text_dim)

    @property
    def w_avg(self) -> torch.Tensor:
        return self.mapping.w_avg

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None, truncation_psi: float = 1.0,
                generator: torch.Generator | None = None) -> torch.Tensor:
        return self.synthesis(self.mapping(z, labels, truncation_psi=truncation_psi), generator)


class DBlock(nn.Module):
    """Residual D block: 3x3 conv, 3x3 conv with 2x downsampling, plus a 1x1 downsampled skip;
    the sum scaled by sqrt(1/2)."""

    def __init__(self, cin: int, cout: int) -> None:
        super().__init__()
        self.conv0 = EqualConv2d(cin, cin, 3)
        self.conv1 = EqualConv2d(cin, cout, 3, down=True)
        self.skip_down = Blur(cin, padding=1, stride=2)
        self.skip = EqualConv2d(cin, cout, 1, bias=False, act=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.skip(self.skip_down(x))
        return (y + self.conv1(self.conv0(x))) * math.sqrt(0.5)


class StyleGAN2Discriminator(nn.Module):
    def __init__(self, spec: GanNetSpec) -> None:
        super().__init__()
        levels = _levels(spec.resolution)
        self.from_rgb = EqualConv2d(spec.channels, channels_at(spec, spec.resolution), 1)
        blocks, res = [], spec.resolution
        for _ in range(levels):
            blocks.append(DBlock(channels_at(spec, res), channels_at(spec, res // 2)))
            res //= 2
        self.blocks = nn.Sequential(*blocks)
        ch = channels_at(spec, 4)
        self.conv = EqualConv2d(ch + 1, ch, 3)  # +1: minibatch-stddev channel
        self.fc = EqualLinear(ch * 16, ch, act=True)
        self.out = EqualLinear(ch, 1)
        self.embed = (nn.Embedding(spec.num_classes, ch) if spec.num_classes  # projection: of a class
                      else EqualLinear(spec.text_dim, ch) if spec.text_dim else None)  # or of a sentence

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        h = self.blocks(self.from_rgb(x))
        h = self.fc(self.conv(minibatch_stddev(h)).flatten(1))
        return projected_score(h, self.out, self.embed, labels)


def projected_score(h: torch.Tensor, out: nn.Module, embed: nn.Embedding | None,
                    labels: torch.Tensor | None) -> torch.Tensor:
    """D's score from its last features: ``out(h)`` plus, when conditional, the projection term
    <embed(y), h> / sqrt(dim) (Miyato & Koyama 2018, scaled so it starts as large as the linear term)."""
    score = out(h).squeeze(1)
    if embed is None:
        return score
    if labels is None:
        raise ValueError("a conditional discriminator needs labels")
    return score + (embed(labels).to(h.dtype) * h).sum(dim=1) * h.shape[1] ** -0.5


@ARCHITECTURES.register("stylegan2")
def stylegan2(spec: GanNetSpec) -> tuple[nn.Module, nn.Module]:
    return StyleGAN2Generator(spec), StyleGAN2Discriminator(spec)

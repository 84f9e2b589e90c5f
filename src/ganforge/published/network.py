"""The official StyleGAN2-ADA generator architecture (Karras et al. 2020), written for ganforge so
that a published network's parameters and buffers load strictly under their official names
(``mapping.fc0.weight``, ``synthesis.b4.const``, ``synthesis.b8.conv0.noise_const``, …) and give the
official outputs to float rounding.

Unlike ``nets/stylegan2.py`` (ganforge's own StyleGAN2, trained here), this follows the published
networks exactly: one ``w_avg`` (not per class), the class one-hot embedded by a linear layer and
normalised beside z, equalised learning rate gains applied at run time, the up-sampling 3×3
modulated convolution as a stride-2 transposed convolution followed by the [1, 3, 3, 1] FIR filter
(gain 4, pad 1), the skip image up-sampled by the same filter (zero insertion, pad 2/1), per-layer
``noise_const`` buffers (noise mode 'const'), activation ``lrelu * sqrt(2)`` then the optional
``conv_clamp``. Layers the official code runs in fp16 (``num_fp16_res``) run in the generator's
precision here (fp32 unless asked).

The networks take ``c`` as the official one-hot (float, ``N × c_dim``) or as class indices (a
1-D integer tensor), so ganforge's ``Generator`` can call them like every other architecture.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import WeightsError
from ..nets.modconv import modulated_conv2d

ACT_GAIN = {"linear": 1.0, "relu": math.sqrt(2.0), "lrelu": math.sqrt(2.0)}


def _act(x: torch.Tensor, activation: str) -> torch.Tensor:
    if activation == "lrelu":
        return F.leaky_relu(x, 0.2)
    if activation == "relu":
        return F.relu(x)
    return x


def bias_act(x: torch.Tensor, b: torch.Tensor | None, activation: str = "linear",
             clamp: float | None = None) -> torch.Tensor:
    """Add a per-channel bias, apply the activation and its gain, clamp to ±clamp if given."""
    if b is not None:
        x = x + b.to(x.dtype).reshape([1, -1] + [1] * (x.ndim - 2))
    x = _act(x, activation)
    if ACT_GAIN[activation] != 1:
        x = x * ACT_GAIN[activation]
    if clamp is not None and clamp >= 0:
        x = x.clamp(-clamp, clamp)
    return x


def fir_filter(taps=(1, 3, 3, 1)) -> torch.Tensor:
    f = torch.as_tensor(taps, dtype=torch.float32)
    f = torch.outer(f, f)
    return f / f.sum()


def _depthwise(x: torch.Tensor, f: torch.Tensor, gain: float) -> torch.Tensor:
    k = (f * gain).to(x.dtype).flip([0, 1])  # a true convolution (symmetric filters: the same)
    n, c, h, w = x.shape
    if torch.onnx.is_in_onnx_export():  # every channel as its own image: one 1-channel kernel (a fixed shape)
        y = F.conv2d(x.reshape(-1, 1, h, w), k[None, None])
        return y.reshape(n, c, y.shape[2], y.shape[3])
    # a depthwise convolution, as the official code's reference upfirdn2d: the 1-channel form's
    # backward measured 6x slower on the CPU at 256² (docs/benchmarks.md, projection speed)
    return F.conv2d(x, k[None, None].expand(c, 1, -1, -1), groups=c)


def upsample_image(img: torch.Tensor, f: torch.Tensor) -> torch.Tensor:
    """2× up-sampling by zero insertion, then the FIR filter with gain 4 (output 2H × 2W)."""
    n, c, h, w = img.shape
    x = img.reshape(n, c, h, 1, w, 1)
    x = F.pad(x, [0, 1, 0, 0, 0, 1]).reshape(n, c, 2 * h, 2 * w)
    fh = f.shape[0]
    lo, hi = (fh + 1) // 2, (fh - 2) // 2
    return _depthwise(F.pad(x, [lo, hi, lo, hi]), f, 4.0)


def _upfir(x: torch.Tensor, f: torch.Tensor, padding: int, kw: int) -> torch.Tensor:
    """After a stride-2 transposed conv (2H + 1): the FIR filter, gain 4, pad 1 -> 2H."""
    fw = f.shape[0]
    p0, p1 = padding + (fw + 1) // 2 - (kw - 1), padding + (fw - 2) // 2 - (kw - 2)
    return _depthwise(F.pad(x, [p0, p1, p0, p1]), f, 4.0)


class FullyConnectedLayer(nn.Module):
    def __init__(self, in_features: int, out_features: int, bias: bool = True, activation: str = "linear",
                 lr_multiplier: float = 1.0, bias_init: float = 0.0) -> None:
        super().__init__()
        self.activation = activation
        self.weight = nn.Parameter(torch.randn([out_features, in_features]) / lr_multiplier)
        self.bias = nn.Parameter(torch.full([out_features], float(bias_init))) if bias else None
        self.weight_gain = lr_multiplier / math.sqrt(in_features)
        self.bias_gain = lr_multiplier

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        w = self.weight.to(x.dtype) * self.weight_gain
        b = self.bias
        if b is not None:
            b = b.to(x.dtype)
            if self.bias_gain != 1:
                b = b * self.bias_gain
        if self.activation == "linear" and b is not None:
            return torch.addmm(b.unsqueeze(0), x, w.t())
        return bias_act(x.matmul(w.t()), b, self.activation)


def normalize_2nd_moment(x: torch.Tensor, eps: float = 1e-8) -> torch.Tensor:
    return x * (x.square().mean(dim=1, keepdim=True) + eps).rsqrt()


class MappingNetwork(nn.Module):
    def __init__(self, z_dim: int, c_dim: int, w_dim: int, num_ws: int, num_layers: int = 8,
                 embed_features: int | None = None, layer_features: int | None = None, activation: str = "lrelu",
                 lr_multiplier: float = 0.01, w_avg_beta: float | None = 0.995) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim, self.num_ws = z_dim, c_dim, w_dim, num_ws
        self.num_layers, self.w_avg_beta = num_layers, w_avg_beta
        embed = 0 if c_dim == 0 else (w_dim if embed_features is None else embed_features)
        layer = w_dim if layer_features is None else layer_features
        features = [z_dim + embed] + [layer] * (num_layers - 1) + [w_dim]
        if c_dim > 0:
            self.embed = FullyConnectedLayer(c_dim, embed)
        for i in range(num_layers):
            setattr(self, f"fc{i}", FullyConnectedLayer(features[i], features[i + 1], activation=activation,
                                                        lr_multiplier=lr_multiplier))
        if w_avg_beta is not None:
            self.register_buffer("w_avg", torch.zeros([w_dim]))

    def one_hot(self, c: torch.Tensor | None, n: int) -> torch.Tensor | None:
        if self.c_dim == 0:
            return None
        if c is None:
            raise WeightsError("this network is conditional: give a class for every latent")
        if not c.is_floating_point():
            c = F.one_hot(c.long().reshape(-1), self.c_dim)
        return c.to(torch.float32).expand(n, -1)

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, update_w_avg: bool | None = None) -> torch.Tensor:
        n = z.shape[0] if z is not None else (c.shape[0] if c is not None else 0)  # z None: D's class mapping
        x = normalize_2nd_moment(z.to(torch.float32)) if self.z_dim > 0 else None
        if self.c_dim > 0:
            y = normalize_2nd_moment(self.embed(self.one_hot(c, n)))
            x = torch.cat([x, y], dim=1) if x is not None else y
        for i in range(self.num_layers):
            x = getattr(self, f"fc{i}")(x)
        if self.w_avg_beta is not None and update_w_avg:  # when asked (ganforge's training loop), as nets/stylegan2
            self.w_avg.copy_(x.detach().float().mean(dim=0).lerp(self.w_avg, self.w_avg_beta))  # (bf16 under autocast)
        if not self.num_ws:  # the discriminator's class embedding (cmap): one vector per sample
            return x
        x = x.unsqueeze(1).repeat([1, self.num_ws, 1])
        if truncation_psi != 1:
            cut = self.num_ws if truncation_cutoff is None else truncation_cutoff
            x[:, :cut] = self.w_avg.lerp(x[:, :cut].float(), truncation_psi).to(x.dtype)  # (bf16 under autocast)
        return x


class SynthesisLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, up: int = 1,
                 conv_clamp: float | None = None, use_noise: bool = True, kernel_size: int = 3) -> None:
        super().__init__()
        self.resolution, self.up, self.use_noise, self.conv_clamp = resolution, up, use_noise, conv_clamp
        self.fused_modconv: bool | None = None  # None: per device and layer (nets.modconv); False: ONNX graphs
        self.padding = kernel_size // 2
        self.register_buffer("resample_filter", fir_filter())
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, kernel_size, kernel_size]))
        if use_noise:
            self.register_buffer("noise_const", torch.randn([resolution, resolution]))
            self.noise_strength = nn.Parameter(torch.zeros([]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))

    def _up_filter(self, y: torch.Tensor) -> torch.Tensor:  # after the stride-2 transposed conv (2H + 1) -> 2H
        return _upfir(y, self.resample_filter, self.padding, self.weight.shape[-1])

    def forward(self, x: torch.Tensor, w: torch.Tensor, noise_mode: str = "const") -> torch.Tensor:
        styles = self.affine(w)
        x = modulated_conv2d(x, self.weight, styles, up=self._up_filter if self.up == 2 else None, padding=self.padding, fused=self.fused_modconv,
                             training=self.training)
        if self.use_noise and not (isinstance(noise_mode, str) and noise_mode == "none"):
            if isinstance(noise_mode, torch.Generator) or noise_mode == "random":  # a Generator: training's draws
                gen = noise_mode if isinstance(noise_mode, torch.Generator) else None
                noise = torch.randn([x.shape[0], 1, self.resolution, self.resolution], device=x.device, generator=gen)
            else:
                noise = self.noise_const
            x = x + (noise * self.noise_strength).to(x.dtype)
        return bias_act(x, self.bias, "lrelu", self.conv_clamp)


class ToRGBLayer(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, conv_clamp: float | None = None) -> None:
        super().__init__()
        self.conv_clamp, self.fused_modconv = conv_clamp, None  # as SynthesisLayer's
        self.affine = FullyConnectedLayer(w_dim, in_channels, bias_init=1)
        self.weight = nn.Parameter(torch.randn([out_channels, in_channels, 1, 1]))
        self.bias = nn.Parameter(torch.zeros([out_channels]))
        self.weight_gain = 1 / math.sqrt(in_channels)

    def forward(self, x: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        styles = self.affine(w) * self.weight_gain
        x = modulated_conv2d(x, self.weight, styles, demodulate=False, fused=self.fused_modconv, training=self.training)
        return bias_act(x, self.bias, "linear", self.conv_clamp)


class SynthesisBlock(nn.Module):
    def __init__(self, in_channels: int, out_channels: int, w_dim: int, resolution: int, img_channels: int,
                 is_last: bool, architecture: str = "skip", conv_clamp: float | None = None,
                 use_fp16: bool = False, **layer_kwargs) -> None:
        super().__init__()
        self.in_channels, self.resolution, self.is_last = in_channels, resolution, is_last
        self.architecture, self.use_fp16 = architecture, use_fp16  # fp16: the caller's precision decides
        self.register_buffer("resample_filter", fir_filter())
        self.num_conv = self.num_torgb = 0
        if in_channels == 0:
            self.const = nn.Parameter(torch.randn([out_channels, resolution, resolution]))
        else:
            self.conv0 = SynthesisLayer(in_channels, out_channels, w_dim, resolution, up=2, conv_clamp=conv_clamp,
                                        **layer_kwargs)
            self.num_conv += 1
        self.conv1 = SynthesisLayer(out_channels, out_channels, w_dim, resolution, conv_clamp=conv_clamp,
                                    **layer_kwargs)
        self.num_conv += 1
        if is_last or architecture == "skip":
            self.torgb = ToRGBLayer(out_channels, img_channels, w_dim, conv_clamp=conv_clamp)
            self.num_torgb += 1

    def forward(self, x, img, ws: torch.Tensor, noise_mode: str = "const"):
        w = iter(ws.unbind(dim=1))
        if self.in_channels == 0:
            x = self.const.unsqueeze(0).repeat([ws.shape[0], 1, 1, 1])
        else:
            x = self.conv0(x, next(w), noise_mode)
        x = self.conv1(x, next(w), noise_mode)
        if img is not None:
            img = upsample_image(img, self.resample_filter)
        if self.is_last or self.architecture == "skip":
            y = self.torgb(x, next(w)).to(torch.float32)
            img = img + y if img is not None else y
        return x, img


BLOCK_KEYS = {"architecture", "conv_clamp", "fp16_channels_last", "resample_filter", "use_noise", "kernel_size",
              "activation"}


class SynthesisNetwork(nn.Module):
    def __init__(self, w_dim: int, img_resolution: int, img_channels: int, channel_base: int = 32768,
                 channel_max: int = 512, num_fp16_res: int = 0, **block_kwargs) -> None:
        super().__init__()
        if img_resolution < 4 or img_resolution & (img_resolution - 1):
            raise WeightsError(f"img_resolution {img_resolution} is not a power of two >= 4")
        _check_block_kwargs(block_kwargs)
        block_kwargs = {k: v for k, v in block_kwargs.items()
                        if k in ("architecture", "conv_clamp", "use_noise", "kernel_size")}
        self.w_dim, self.img_resolution, self.img_channels = w_dim, img_resolution, img_channels
        log2 = int(math.log2(img_resolution))
        self.block_resolutions = [2 ** i for i in range(2, log2 + 1)]
        channels = {r: min(channel_base // r, channel_max) for r in self.block_resolutions}
        fp16_resolution = max(2 ** (log2 + 1 - num_fp16_res), 8)
        self.num_ws = 0
        for res in self.block_resolutions:
            block = SynthesisBlock(channels[res // 2] if res > 4 else 0, channels[res], w_dim, res, img_channels,
                                   is_last=res == img_resolution, use_fp16=res >= fp16_resolution, **block_kwargs)
            self.num_ws += block.num_conv + (block.num_torgb if res == img_resolution else 0)
            setattr(self, f"b{res}", block)

    def forward(self, ws: torch.Tensor, noise_mode: "str | torch.Generator | None" = "const") -> torch.Tensor:
        """Images for ws; ``noise_mode``: 'const' (the stored noise), 'random', 'none', or a
        ``torch.Generator`` to draw random noise from (ganforge's training loop); None: 'const'."""
        ws = ws.to(torch.float32)
        noise_mode = "const" if noise_mode is None else noise_mode
        x = img = None
        i = 0
        for res in self.block_resolutions:
            block = getattr(self, f"b{res}")
            x, img = block(x, img, ws.narrow(1, i, block.num_conv + block.num_torgb), noise_mode)
            i += block.num_conv
        return img


def _check_block_kwargs(kwargs: dict) -> None:
    unknown = sorted(set(kwargs) - BLOCK_KEYS)
    if unknown:
        raise WeightsError(f"synthesis options {unknown} are not supported by ganforge's official-architecture "
                           f"generator")
    checks = {"architecture": ("skip", "orig"), "activation": ("lrelu",), "kernel_size": (3,)}
    for key, allowed in checks.items():
        if key in kwargs and kwargs[key] not in allowed:
            raise WeightsError(f"synthesis {key}={kwargs[key]!r} is not supported (only {', '.join(map(str, allowed))})")
    if "resample_filter" in kwargs and list(kwargs["resample_filter"]) != [1, 3, 3, 1]:
        raise WeightsError(f"resample_filter {kwargs['resample_filter']} is not supported (only [1, 3, 3, 1])")


class OfficialGenerator(nn.Module):
    """``G(z, c, truncation_psi)`` with the official ``mapping`` / ``synthesis`` children; ``c`` is the
    one-hot (float) or the class indices. Noise is the stored ``noise_const`` (mode 'const')
    unless ``noise_mode`` says 'random' or 'none'."""

    def __init__(self, z_dim: int, c_dim: int, w_dim: int, img_resolution: int, img_channels: int,
                 mapping_kwargs: dict | None = None, synthesis_kwargs: dict | None = None) -> None:
        super().__init__()
        self.z_dim, self.c_dim, self.w_dim = z_dim, c_dim, w_dim
        self.img_resolution, self.img_channels = img_resolution, img_channels
        self.init_kwargs = dict(z_dim=z_dim, c_dim=c_dim, w_dim=w_dim, img_resolution=img_resolution,
                                img_channels=img_channels, mapping_kwargs=dict(mapping_kwargs or {}),
                                synthesis_kwargs=dict(synthesis_kwargs or {}))  # what rebuilds it (export)
        self.synthesis = SynthesisNetwork(w_dim, img_resolution, img_channels, **(synthesis_kwargs or {}))
        self.num_ws = self.synthesis.num_ws
        self.mapping = MappingNetwork(z_dim, c_dim, w_dim, self.num_ws, **(mapping_kwargs or {}))

    def forward(self, z: torch.Tensor, c: torch.Tensor | None = None, truncation_psi: float = 1.0,
                truncation_cutoff: int | None = None, noise_mode: str = "const") -> torch.Tensor:
        ws = self.mapping(z, c, truncation_psi=truncation_psi, truncation_cutoff=truncation_cutoff)
        return self.synthesis(ws, noise_mode=noise_mode)

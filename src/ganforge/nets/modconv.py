"""StyleGAN2's modulated convolution (Karras et al. 2020), one implementation for ganforge's own
StyleGAN2 (``nets/stylegan2.py``) and the published-network replica (``published/network.py``).

Two forms of the same maths, equal to float rounding:

- **non-fused** (the official code's training form): scale the input channels by each sample's
  style, one convolution with the shared weight, then scale each output channel by the norm the
  modulated weight would have, ``sqrt(s^2 . sum_k w_oik^2)``;
- **fused** (the official code's inference form): each sample's weight modulated (and demodulated)
  itself, all samples in one grouped convolution (``groups = N``).

Which is faster depends on the device and the layer: the fused form does the per-sample work on
the weights (N x Cout x Cin x k x k), the non-fused one on the activations (two passes over N x C x
H x W). ``fused=None`` chooses per call with :func:`choose_fused`.
"""

from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

# CPU: the fused form won where a sample's output pixels were at least this many times the weight's
# taps per output channel (Cin x k x k): 1.16-1.37x at 256²-512² with 32-128 channels, 0.36-0.54x
# at 16² with 512 channels (docs/benchmarks.md, "StyleGAN2's modulated convolution: fused or not").
CPU_FUSED_MIN_PIXELS_PER_TAP = 8.0


def choose_fused(x: torch.Tensor, weight: torch.Tensor, training: bool, upsample: bool = False) -> bool:
    """The form for this call (``fused=None``). Training (or anything that back-propagates into the
    convolution): non-fused, as the official code trains. Otherwise on the CPU: fused for layers
    whose output pixels per sample (4 H W with ``upsample``) are at least :data:`CPU_FUSED_MIN_PIXELS_PER_TAP` x Cin x k x k
    (large images, few channels), non-fused for the low-resolution, wide ones; on other devices the
    official inference choice, fused (not measured by ganforge: benchmarks/gpu_checks.sh times both)."""
    if training or (torch.is_grad_enabled() and (x.requires_grad or weight.requires_grad)):
        return False
    if x.device.type != "cpu":
        return True
    _, cin, kh, kw = weight.shape
    pixels = x.shape[2] * x.shape[3] * (4 if upsample else 1)
    return pixels >= CPU_FUSED_MIN_PIXELS_PER_TAP * cin * kh * kw


def modulated_conv2d(x: torch.Tensor, weight: torch.Tensor, styles: torch.Tensor, *, demodulate: bool = True,
                     padding: int = 0, up: Callable[[torch.Tensor], torch.Tensor] | None = None,
                     fused: bool | None = None, training: bool = False, eps: float = 1e-8) -> torch.Tensor:
    """``x`` N x Cin x H x W convolved with ``weight`` Cout x Cin x k x k modulated by ``styles`` N x Cin.
    ``up``: 2x upsampling as a stride-2 transposed convolution (no padding) followed by ``up`` (the
    caller's FIR filter, which also crops/pads), else a convolution with ``padding``. ``fused``: the
    form (None: :func:`choose_fused`, with ``training`` the caller's mode). The demodulation
    coefficients are computed in fp32 (or the weight's wider type) outside autocast; the convolution in ``x``'s dtype."""
    if fused is None:
        fused = choose_fused(x, weight, training, upsample=up is not None)
    n = x.shape[0]
    cout, cin, kh, kw = weight.shape
    acc = torch.promote_types(weight.dtype, torch.float32)  # fp32 at least for the (de)modulation
    if not fused:
        y = x * styles.to(x.dtype)[:, :, None, None]
        w = weight.to(x.dtype)
        if up is not None:
            y = up(F.conv_transpose2d(y, w.transpose(0, 1), stride=2))
        else:
            y = F.conv2d(y, w, padding=padding)
        if demodulate:
            with torch.autocast(x.device.type, enabled=False):
                d = (styles.to(acc).square() @ weight.to(acc).square().sum(dim=(2, 3)).t() + eps).rsqrt()
            y = y * d.to(y.dtype)[:, :, None, None]
        return y
    with torch.autocast(x.device.type, enabled=False):
        w = weight.to(acc)[None] * styles.to(acc)[:, None, :, None, None]  # N x Cout x Cin x k x k
        if demodulate:
            w = w * (w.square().sum(dim=(2, 3, 4)) + eps).rsqrt()[:, :, None, None, None]
    w = w.to(x.dtype)
    x = x.reshape(1, n * cin, *x.shape[2:])
    if up is not None:
        y = F.conv_transpose2d(x, w.transpose(1, 2).reshape(n * cin, cout, kh, kw), stride=2, groups=n)
        return up(y.reshape(n, cout, *y.shape[2:]))
    y = F.conv2d(x, w.reshape(n * cout, cin, kh, kw), padding=padding, groups=n)
    return y.reshape(n, cout, *y.shape[2:])

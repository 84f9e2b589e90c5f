"""How close a stylised image is to its content and to its style, as percentages.

Definitions (also in docs/style.md); all features come from the same VGG encoder (vgg19-torchvision by
default, or the VGG19 present locally, see ``ganforge.nets.vgg.pick_encoder``), images in [0, 1], measured at the output's scale (output long side capped at 512; the
content resized to the output's size; the style resized to the same long side):

- ``content_ssim``: mean SSIM (Gaussian window 11, sigma 1.5, data range 1) of the luminance of
  output and content, × 100.
- ``content_feature_cosine``: cosine similarity of the flattened relu4_2 features, × 100.
- ``style_meanstd``: 100 × (1 − ‖[μ_o, σ_o] − [μ_s, σ_s]‖ / ‖[μ_s, σ_s]‖), averaged over
  relu1_1..relu5_1 (channel means/stds), floored at 0.
- ``style_gram``: 100 × (1 − ‖G_o − G_s‖_F / ‖G_s‖_F), averaged over the same layers, floored at 0
  (G = F Fᵀ / (C·H·W)).
- ``content_loss``: MSE of relu4_2 features; ``style_loss``: sum over layers of the MSE of Grams
  (the Gatys losses, unweighted).
"""

from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from .controls import resize_to

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1", "relu5_1")
CONTENT_LAYER = "relu4_2"


def ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    """Mean SSIM of the luminance of two N×C×H×W images in [0, 1]: the shared implementation in
    :mod:`ganforge.metrics.imagesim` (Wang et al. 2004; 11×11 Gaussian, sigma 1.5, valid windows)."""
    from ..metrics.imagesim import ssim as _ssim

    return float(_ssim(a.float(), b.float()).mean())


def gram(f: torch.Tensor) -> torch.Tensor:
    n, c, h, w = f.shape
    f = f.reshape(n, c, h * w)
    return f @ f.transpose(1, 2) / (c * h * w)


def _closeness(a: torch.Tensor, b: torch.Tensor) -> float:
    return max(0.0, 1.0 - float((a - b).norm() / b.norm().clamp_min(1e-12)))


@torch.no_grad()
def similarity_report(output: torch.Tensor, content: torch.Tensor, style: torch.Tensor,
                      encoder: torch.nn.Module, *, style_layers: Sequence[str] = STYLE_LAYERS,
                      max_size: int = 512) -> dict[str, float]:
    """Content and style similarity (percent) and the Gatys losses for one output."""
    from .controls import limit_size

    # Everything at the output's scale (Gram statistics depend on it): output capped at max_size,
    # content resized to it, style resized so its long side matches the output's.
    output = limit_size(output.float(), max_size)
    content = resize_to(content, output.shape[-2:])
    long_side = max(output.shape[-2:])
    scale = long_side / max(style.shape[-2:])
    style = resize_to(style, (max(1, round(style.shape[-2] * scale)), max(1, round(style.shape[-1] * scale))))
    layers = tuple(style_layers) + (CONTENT_LAYER,)
    fo, fc, fs = encoder(output, layers), encoder(content, layers), encoder(style, layers)
    oc, cc = fo[CONTENT_LAYER].flatten(), fc[CONTENT_LAYER].flatten()
    meanstd, grams, style_loss = [], [], 0.0
    for name in style_layers:
        o, s = fo[name], fs[name]
        stat_o = torch.cat([o.mean((2, 3)), o.std((2, 3))], 1)
        stat_s = torch.cat([s.mean((2, 3)), s.std((2, 3))], 1)
        meanstd.append(_closeness(stat_o, stat_s))
        go, gs = gram(o), gram(s)
        grams.append(_closeness(go, gs))
        style_loss += float(F.mse_loss(go, gs))
    return {
        "content_ssim": 100 * ssim(output, content),
        "content_feature_cosine": 100 * float(F.cosine_similarity(oc, cc, dim=0)),
        "style_meanstd": 100 * sum(meanstd) / len(meanstd),
        "style_gram": 100 * sum(grams) / len(grams),
        "content_loss": float(F.mse_loss(fo[CONTENT_LAYER], fc[CONTENT_LAYER])),
        "style_loss": style_loss,
    }

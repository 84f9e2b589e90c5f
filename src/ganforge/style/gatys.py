"""Gatys et al. (2016) style transfer by optimising the image itself: slow, high quality, and the one
method that needs no trained decoder, only a VGG19 encoder (``vgg19-torchvision`` by default;
``vgg19-caffe`` offline).

Loss = content_weight · MSE(relu4_2) + style_weight · α · Σ_l w_l · MSE(Gram_l) + tv_weight · TV.
Several styles mix their Gram targets with float weights; with masks, each region's Gram is taken
over its masked features (guided Gram) and matched to its own style. Coarse-to-fine: optimise at
smaller scales first and upsample the result as the next start.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable, Sequence

import torch
import torch.nn.functional as F

from .controls import StyleError, resize_to
from .similarity import CONTENT_LAYER, STYLE_LAYERS, gram

# VGG's conv5_1 sees 1/16 of the image and reflection padding needs 2 pixels there: images are
# used at least this many pixels per side (a 1×1 or 10000×1 image is upsampled, not refused).
MIN_SIDE = 32


def at_least(x: torch.Tensor, side: int = MIN_SIDE) -> torch.Tensor:
    """Upsample (each axis on its own) so that both sides are at least ``side`` pixels."""
    h, w = x.shape[-2:]
    if h >= side and w >= side:
        return x
    return F.interpolate(x, size=(max(h, side), max(w, side)), mode="bilinear", align_corners=False)


@dataclass
class GatysResult:
    image: torch.Tensor
    history: list[dict[str, float]] = field(default_factory=list)  # per iteration losses

    @property
    def style_loss_drop(self) -> float:
        """Initial / final unweighted style loss."""
        return self.history[0]["style"] / max(self.history[-1]["style"], 1e-30)


def style_targets(encoder: torch.nn.Module, style: torch.Tensor,
                  layers: Sequence[str] = STYLE_LAYERS) -> dict[str, torch.Tensor]:
    """Gram matrices of one style image: computed once and reusable for any content."""
    with torch.no_grad():
        feats = encoder(at_least(style), layers)
    return {name: gram(feats[name].float()) for name in layers}


def _masked_gram(f: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    m = F.interpolate(mask, size=f.shape[-2:], mode="bilinear", align_corners=False)
    fm = (f * m).flatten(2)
    c = f.shape[1]
    return fm @ fm.transpose(1, 2) / (c * m.sum().clamp_min(1.0))


def tv_loss(x: torch.Tensor) -> torch.Tensor:
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()


def gatys(content: torch.Tensor, targets: list[dict[str, torch.Tensor]], weights: Sequence[float],
          encoder: torch.nn.Module, *, masks: list[torch.Tensor] | None = None, alpha: float = 1.0,
          iterations: int = 100, optimizer: str = "lbfgs", lr: float | None = None,
          content_weight: float = 1.0, style_weight: float = 30.0, tv_weight: float = 0.0,
          scales: Sequence[float] = (1.0,), init: torch.Tensor | None = None,
          style_layers: Sequence[str] = STYLE_LAYERS, autocast: bool = False,
          callback: Callable[[int, dict[str, float]], None] | None = None) -> GatysResult:
    """Optimise an image (start: the content, or ``init``) against content and style losses.

    ``targets`` are per-style Gram dicts (see :func:`style_targets`); without masks their Grams are
    mixed with ``weights``; with ``masks`` (one per style) each region matches its own style.
    ``iterations`` is per scale; ``alpha`` scales the style term (0 = the content itself).
    """
    if optimizer not in ("lbfgs", "adam"):
        raise StyleError(f"unknown optimizer {optimizer!r}; use lbfgs or adam")
    if autocast:  # bf16 + channels_last: 2-4x faster VGG on AVX-512-BF16 CPUs (docs/style.md)
        encoder.to(memory_format=torch.channels_last)
    if masks is not None and len(masks) != len(targets):
        raise StyleError("give one mask per style")
    if masks is not None:
        masks = [m.to(content.device) for m in masks]
    targets = [{k: v.to(content.device) for k, v in t.items()} for t in targets]
    mixed = {name: sum(w * t[name] for w, t in zip(weights, targets)) for name in style_layers}
    layers = tuple(style_layers) + (CONTENT_LAYER,)
    history: list[dict[str, float]] = []
    image = init if init is not None else content
    full = content.shape[-2:]
    for scale in scales:
        size = (max(MIN_SIDE, round(full[0] * scale)), max(MIN_SIDE, round(full[1] * scale)))
        target_content = resize_to(content, size)
        with torch.no_grad(), torch.autocast(content.device.type, dtype=torch.bfloat16, enabled=autocast):
            content_feat = encoder(target_content, (CONTENT_LAYER,))[CONTENT_LAYER].float()
        x = resize_to(image.detach(), size).clone(memory_format=torch.contiguous_format).requires_grad_(True)

        def losses() -> tuple[torch.Tensor, dict[str, float]]:
            xin = x.contiguous(memory_format=torch.channels_last) if autocast else x
            with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=autocast):
                feats = encoder(xin, layers)
            c_loss = F.mse_loss(feats[CONTENT_LAYER].float(), content_feat)
            s_loss = x.new_zeros(())
            for name in style_layers:
                f = feats[name].float()
                if masks is None:
                    s_loss = s_loss + F.mse_loss(gram(f), mixed[name])
                else:
                    for mask, target in zip(masks, targets):
                        s_loss = s_loss + F.mse_loss(_masked_gram(f, mask), target[name])
            t_loss = tv_loss(x) if tv_weight else x.new_zeros(())
            total = content_weight * c_loss + style_weight * alpha * s_loss + tv_weight * t_loss
            return total, {"total": float(total.detach()), "content": float(c_loss.detach()), "style": float(s_loss.detach()),
                           "tv": float(t_loss.detach())}

        if optimizer == "lbfgs":
            opt = torch.optim.LBFGS([x], lr=lr or 1.0, max_iter=iterations, history_size=50, line_search_fn="strong_wolfe",
                                    tolerance_grad=0.0, tolerance_change=0.0)

            def closure() -> torch.Tensor:
                opt.zero_grad()
                total, stats = losses()
                total.backward()
                history.append(stats)
                if callback:
                    callback(len(history), stats)
                return total

            opt.step(closure)
        else:
            opt = torch.optim.Adam([x], lr=lr or 0.02)
            for _ in range(iterations):
                opt.zero_grad()
                total, stats = losses()
                total.backward()
                opt.step()
                with torch.no_grad():
                    x.clamp_(0, 1)
                history.append(stats)
                if callback:
                    callback(len(history), stats)
        image = x.detach().clamp(0, 1)
    with torch.no_grad():
        _, final = losses()
    history.append(final)
    return GatysResult(resize_to(image, full).clamp(0, 1), history)

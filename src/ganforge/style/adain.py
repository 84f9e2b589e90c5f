"""AdaIN (Huang & Belongie 2017): give the content features the style's channel mean and std.

The math is the published reference's exactly: unbiased variance over H×W plus eps = 1e-5, std =
sqrt(var + eps), for content and style alike; several styles are mixed *after* AdaIN with float
weights; α mixes the result with the content features before decoding.

Masked / tiled inference needs content statistics over a region or over the whole image while
seeing only a tile, so statistics are also available from running sums (:class:`Moments`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

EPS = 1e-5


def mean_std(feat: torch.Tensor, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
    """Channel mean and sqrt(unbiased var + eps), each N×C×1×1."""
    n, c = feat.shape[:2]
    flat = feat.reshape(n, c, -1)
    var = flat.var(dim=2) + eps
    return flat.mean(dim=2).view(n, c, 1, 1), var.sqrt().view(n, c, 1, 1)


def adain(content: torch.Tensor, style_mean: torch.Tensor, style_std: torch.Tensor,
          content_mean: torch.Tensor | None = None, content_std: torch.Tensor | None = None,
          eps: float = EPS) -> torch.Tensor:
    """(f_c − μ_c) / σ_c · σ_s + μ_s; content statistics from ``content`` unless given."""
    if content_mean is None or content_std is None:
        content_mean, content_std = mean_std(content, eps)
    return (content - content_mean) / content_std * style_std + style_mean


@dataclass
class Moments:
    """Weighted running sums of features (for statistics over a region or over tiles)."""

    weight: torch.Tensor  # scalar: Σ w
    s1: torch.Tensor  # C: Σ w f
    s2: torch.Tensor  # C (diagonal) or C×C (full): Σ w f², Σ w f fᵀ

    @staticmethod
    def of(feat: torch.Tensor, mask: torch.Tensor | None = None, full: bool = False) -> "Moments":
        f = feat[0].double().flatten(1)  # C×P
        w = torch.ones(f.shape[1], dtype=f.dtype) if mask is None else _mask_at(mask, feat)[0, 0].double().flatten()
        s2 = (f * w) @ f.T if full else (f * f * w).sum(1)
        return Moments(w.sum(), (f * w).sum(1), s2)

    def __add__(self, other: "Moments") -> "Moments":
        return Moments(self.weight + other.weight, self.s1 + other.s1, self.s2 + other.s2)

    def mean(self) -> torch.Tensor:
        return self.s1 / self.weight.clamp_min(1e-12)

    def var(self) -> torch.Tensor:
        """Unbiased (per channel) variance, like ``Tensor.var``."""
        diag = self.s2 if self.s2.dim() == 1 else torch.diagonal(self.s2)
        return (diag - self.s1 ** 2 / self.weight.clamp_min(1e-12)) / (self.weight - 1).clamp_min(1e-12)

    def cov(self) -> torch.Tensor:
        m = self.mean()
        return (self.s2 - self.weight * torch.outer(m, m)) / (self.weight - 1).clamp_min(1e-12)

    def mean_std(self, eps: float = EPS) -> tuple[torch.Tensor, torch.Tensor]:
        c = self.s1.shape[0]
        return self.mean().float().view(1, c, 1, 1), (self.var() + eps).sqrt().float().view(1, c, 1, 1)


def _mask_at(mask: torch.Tensor, feat: torch.Tensor) -> torch.Tensor:
    if mask.shape[-2:] == feat.shape[-2:]:
        return mask
    return F.interpolate(mask.float(), size=feat.shape[-2:], mode="bilinear", align_corners=False)


def mix_features(content: torch.Tensor, style_stats: list[tuple[torch.Tensor, torch.Tensor]],
                 weights: list[float], alpha: float, *, masks: list[torch.Tensor] | None = None,
                 content_stats: list[tuple[torch.Tensor, torch.Tensor]] | None = None) -> torch.Tensor:
    """The decoder's input: Σ_i w_i · AdaIN(f_c, s_i) (or per-region AdaIN inside ``masks``), then
    α · that + (1 − α) · f_c. ``content_stats`` (one per style/region) override the local ones."""
    if masks is None:
        stats = content_stats[0] if content_stats else (None, None)
        target = sum(w * adain(content, m, s, *stats) for w, (m, s) in zip(weights, style_stats))
    else:
        target = torch.zeros_like(content)
        for i, ((m, s), mask) in enumerate(zip(style_stats, masks)):
            if content_stats is not None:
                cm, cs = content_stats[i]
            else:
                cm, cs = Moments.of(content, mask).mean_std()
            target = target + _mask_at(mask, content).to(content) * adain(content, m, s, cm.to(content), cs.to(content))
    return alpha * target + (1 - alpha) * content

"""The inpainting maths, without parameters: the hole's pre-fill (:func:`pyramid_fill`), the
generator's input (:func:`net_input`), the composite of known and generated pixels and the L1
restricted to a mask."""

from __future__ import annotations

import torch
import torch.nn.functional as F

PREFILLS = ("pyramid", "none")


PYRAMID_SMOOTHING = 16  # relaxation sweeps per pyramid level


def pyramid_fill(image: torch.Tensor, mask: torch.Tensor, smoothing: int = PYRAMID_SMOOTHING) -> torch.Tensor:
    """A smooth first guess for the hole: a multigrid membrane (harmonic) fill. The known pixels
    are averaged down an image pyramid (mask-weighted 2×2 means, push-pull as in Gortler et al.
    1996); going back up, each level's hole starts from the coarser level (bilinear) and is relaxed
    ``smoothing`` times towards the mean of its 3×3 neighbours, known pixels held fixed, which
    approaches the Laplace-equation fill classical inpainting (Navier-Stokes, Telea) approximates.
    Deterministic, no parameters, any H×W; known pixels are returned unchanged."""
    known = 1 - mask
    levels = [(image * known, known)]
    while min(levels[-1][1].shape[-2:]) > 1:
        x, w = levels[-1]
        levels.append((F.avg_pool2d(x, 2, ceil_mode=True), F.avg_pool2d(w, 2, ceil_mode=True)))
    x, w = levels[-1]
    fill = x / w.clamp_min(1e-6)  # coarsest level: the mean of the known pixels under it
    for x, w in reversed(levels[:-1]):
        # premultiplied known colour, the rest from the coarser level, then relaxed
        fill = x + (1 - w) * F.interpolate(fill, size=x.shape[-2:], mode="bilinear", align_corners=False)
        for _ in range(smoothing):
            fill = x + (1 - w) * F.avg_pool2d(F.pad(fill, (1, 1, 1, 1), mode="replicate"), 3, stride=1)
    return fill


def net_input(image: torch.Tensor, mask: torch.Tensor, prefill: str = "none") -> tuple[torch.Tensor, torch.Tensor]:
    """(image in [-1, 1], mask 1 = hole) -> (the generator's input, the base its output adds to).
    ``none``: the hole set to 0 (mid-grey), base 0 (the generator paints the hole itself).
    ``pyramid``: the hole pre-filled with :func:`pyramid_fill`, and the generator predicts a
    correction to that fill (a residual), so training starts from a smooth interpolation."""
    if prefill == "pyramid":
        base = pyramid_fill(image, mask)
        return torch.cat([base, mask], 1), base
    return torch.cat([image * (1 - mask), mask], 1), torch.zeros_like(image)


def composite(image: torch.Tensor, generated: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Known pixels from ``image``, hole pixels from ``generated``."""
    return image * (1 - mask) + generated * mask


def masked_l1(x: torch.Tensor, y: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Mean |x - y| over the pixels where ``weight`` is 1 (all channels)."""
    return ((x - y).abs() * weight).sum() / (weight.sum() * x.shape[1]).clamp_min(1.0)

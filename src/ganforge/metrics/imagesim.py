"""How similar two images (or two folders of paired images) are, as percentages a user can read:
SSIM (structure, on luminance) and the cosine similarity of deep features (content/semantics).
Reused by style transfer to check "output is ≥ 90 % similar to the content image".
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import torch
import torch.nn.functional as F

from ..errors import GanforgeError

ImageLike = torch.Tensor | str | os.PathLike


def _gaussian_window(size: int = 11, sigma: float = 1.5) -> torch.Tensor:
    coords = torch.arange(size, dtype=torch.float64) - (size - 1) / 2
    g = torch.exp(-(coords ** 2) / (2 * sigma ** 2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).float()


def luma(x: torch.Tensor) -> torch.Tensor:
    """N×1×H×W luma of N×C×H×W images (ITU-R 601: 0.299 R + 0.587 G + 0.114 B, as PIL's "L"; the
    channel mean when C is not 3)."""
    if x.shape[1] == 3:
        w = torch.tensor([0.299, 0.587, 0.114], dtype=x.dtype).view(1, 3, 1, 1)
        return (x * w).sum(dim=1, keepdim=True)
    return x.mean(dim=1, keepdim=True)


def psnr(a: torch.Tensor, b: torch.Tensor) -> float:
    """PSNR in dB of images in [0, 1] (both clamped), over the whole batch."""
    mse = F.mse_loss(a.detach().float().clamp(0, 1), b.detach().float().clamp(0, 1)).item()
    return float("inf") if mse == 0 else 10 * math.log10(1.0 / mse)


def ssim(a: torch.Tensor, b: torch.Tensor, *, window: int = 11, sigma: float = 1.5) -> torch.Tensor:
    """Per-image SSIM (Wang et al. 2004: 11×11 Gaussian σ=1.5, K1=0.01, K2=0.03, data range 1) on the
    luminance of float N×C×H×W images in [0,1]; 'valid' windows only. Returns N values in [-1, 1]."""
    if a.shape != b.shape:
        raise GanforgeError(f"SSIM needs images of the same size, got {tuple(a.shape)} and {tuple(b.shape)}")
    x, y = luma(a.float()), luma(b.float())
    win = min(window, x.shape[-1], x.shape[-2])
    w = _gaussian_window(win, sigma).to(x)[None, None]
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    mu_x, mu_y = F.conv2d(x, w), F.conv2d(y, w)
    sxx = F.conv2d(x * x, w) - mu_x ** 2
    syy = F.conv2d(y * y, w) - mu_y ** 2
    sxy = F.conv2d(x * y, w) - mu_x * mu_y
    s = ((2 * mu_x * mu_y + c1) * (2 * sxy + c2)) / ((mu_x ** 2 + mu_y ** 2 + c1) * (sxx + syy + c2))
    return s.mean(dim=(1, 2, 3))


def _load_list(item: ImageLike) -> tuple[list[torch.Tensor], list[str]]:
    from ..imageio import is_image_file, load_image

    if isinstance(item, torch.Tensor):
        x = item.float() / 255 if item.dtype == torch.uint8 else item.float()
        x = x.unsqueeze(0) if x.ndim == 3 else x
        return list(x), [str(i) for i in range(len(x))]
    path = Path(item)
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and is_image_file(p))
        if not files:
            raise GanforgeError(f"{path}: no images")
        return [load_image(f) for f in files], [f.name for f in files]
    return [load_image(path)], [path.name]


def similarity(a: ImageLike, b: ImageLike, *, features: str | None = "inception",
               progress: bool = False, device: str | None = None) -> dict:
    """SSIM and feature cosine similarity between A and B, in percent (mean over pairs).

    A and B are tensors (C×H×W or N×C×H×W in [0,1]), image files or folders paired by sorted file
    name. B is resized (bilinear, antialiased) to A's size for SSIM. ``features``: 'inception',
    'mnist', 'fashion-mnist' or None; if the network cannot be loaded the feature score is None
    with the reason under ``feature_error``."""
    xa, names_a = _load_list(a)
    xb, names_b = _load_list(b)
    if len(xa) != len(xb):
        raise GanforgeError(f"similarity pairs images one to one: {len(xa)} vs {len(xb)} images")
    ssims, pairs_b = [], []
    for ia, ib in zip(xa, xb):
        if ia.shape[0] != ib.shape[0]:
            ia, ib = ia.mean(0, keepdim=True), ib.mean(0, keepdim=True)
        if ib.shape[-2:] != ia.shape[-2:]:
            ib = F.interpolate(ib[None], size=ia.shape[-2:], mode="bilinear", align_corners=False,
                               antialias=True)[0].clamp(0, 1)
        pairs_b.append(ib)
        ssims.append(float(ssim(ia[None], ib[None])[0]))
    out: dict = {
        "n_pairs": len(xa),
        "ssim_percent": 100.0 * sum(ssims) / len(ssims),
        "per_pair": [{"a": na, "b": nb, "ssim_percent": 100.0 * s} for na, nb, s in zip(names_a, names_b, ssims)],
        "protocol": {"ssim": "luminance (BT.601), 11x11 Gaussian sigma 1.5, K1=0.01, K2=0.03, range [0,1], "
                             "B resized to A's size (bilinear, antialiased)"},
        "feature_cosine_percent": None,
    }
    if features:
        from ..errors import WeightsError
        from .extractors import get_extractor

        try:
            ext = get_extractor(features, progress=progress, device=device)
        except WeightsError as exc:
            out["feature_error"] = str(exc)
            return out
        cos = []
        for ia, ib, entry in zip(xa, pairs_b, out["per_pair"]):
            fa = ext.extract(ia.mul(255).round().to(torch.uint8)[None]).features
            fb = ext.extract(ib.mul(255).round().to(torch.uint8)[None]).features
            c = float(F.cosine_similarity(fa.double(), fb.double())[0])
            entry["feature_cosine_percent"] = 100.0 * c
            cos.append(c)
        out["feature_cosine_percent"] = 100.0 * sum(cos) / len(cos)
        out["protocol"]["features"] = ext.protocol()
    return out

"""The distance a projection minimises and reports.

The official StyleGAN2-ADA projector uses LPIPS on VGG16 (NVIDIA's TorchScript ``vgg16.pt``, learned
per-channel weights). ganforge has no VGG16 LPIPS weights in its weights catalogue, so the
"LPIPS-style" distance here is the same construction without the learned weights on the VGG19
that is on this machine (``vgg19-caffe`` offline, ``vgg19-torchvision`` when downloaded): features
at relu1_2, relu2_2, relu3_4, relu4_4 and relu5_1, each unit-normalised over channels, squared
differences summed over channels, averaged over positions, summed over layers. With no VGG19 at
all (offline, no files) the loss is pixel MSE + (1 - SSIM), and every result says which was used.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from ..metrics.imagesim import psnr, ssim  # psnr: re-exported (callers import it from here)

LPIPS_LAYERS = ("relu1_2", "relu2_2", "relu3_4", "relu4_4", "relu5_1")
MIN_SIDE = 64  # VGG sees at least 64 px (tiny models' images are upsampled for it)
MAX_SIDE = 256  # and at most 256 px, as the official projector (area downsampling)


class Distance(torch.nn.Module):
    """``d(x, y)`` per image for images in [0, 1] (N×C×H×W, 1 or 3 channels); ``name`` says which."""

    def __init__(self, kind: str = "auto") -> None:
        super().__init__()
        if kind not in ("auto", "lpips", "pixel"):
            from .common import EditError

            raise EditError(f"unknown loss {kind!r}; use auto, lpips or pixel")
        self.vgg = None
        self.name = "pixel MSE + (1 - SSIM)"
        if kind != "pixel":
            from ..nets.vgg import load_vgg, pick_encoder
            from ..weights import find

            encoder = pick_encoder()
            if find(encoder) is not None or kind == "lpips":  # 'lpips' may download (or say how)
                self.vgg = load_vgg(encoder).eval().requires_grad_(False)
                self.name = f"LPIPS-style VGG19 ({encoder}, unweighted)"

    def to_vgg(self, x: torch.Tensor) -> torch.Tensor:
        x = x.expand(-1, 3, -1, -1) if x.shape[1] == 1 else x
        side = x.shape[-1]
        if side > MAX_SIDE:
            x = F.adaptive_avg_pool2d(x, (MAX_SIDE * x.shape[-2] // side, MAX_SIDE))
        elif side < MIN_SIDE:
            x = F.interpolate(x, scale_factor=MIN_SIDE / side, mode="bilinear", align_corners=False)
        return x

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        feats = self.vgg.to(x.device)(self.to_vgg(x), LPIPS_LAYERS)
        return [f / (f.square().sum(1, keepdim=True) + 1e-10).sqrt() for f in (feats[k] for k in LPIPS_LAYERS)]

    def forward(self, x: torch.Tensor, y: torch.Tensor | list[torch.Tensor]) -> torch.Tensor:
        """``y``: target images, or their :meth:`features` (computed once for a fixed target)."""
        if self.vgg is None:
            return F.mse_loss(x, y, reduction="none").mean((1, 2, 3)) + (1 - ssim(x.clamp(0, 1), y))
        fy = y if isinstance(y, list) else self.features(y)
        return sum((a - b).square().sum(1).mean((1, 2)) for a, b in zip(self.features(x), fy))

    def target(self, y: torch.Tensor) -> torch.Tensor | list[torch.Tensor]:
        if self.vgg is None:
            return y
        with torch.no_grad():
            return self.features(y)

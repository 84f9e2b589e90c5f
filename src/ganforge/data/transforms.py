"""Resizing to the square training resolution: shorter side to R, centre crop, one resampling."""

from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image


def resize_center_crop(img: Image.Image, resolution: int) -> np.ndarray:
    """PIL image -> uint8 array H×W×C (C = 1 or 3) of size resolution².

    Cropping the centred square first and then resizing is "shorter side to R, then crop" with
    one resampling and without the filter pulling in pixels from outside the crop. PIL's bicubic
    filter widens its support when shrinking, so downscaling is antialiased.
    """
    w, h = img.size
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    if (w, h) != (side, side):
        img = img.crop((left, top, left + side, top + side))
    if side != resolution:
        img = img.resize((resolution, resolution), Image.Resampling.BICUBIC, reducing_gap=3.0)
    out = img
    arr = np.array(out, dtype=np.uint8)  # a writable copy: torch warns on read-only buffers
    return arr[:, :, None] if arr.ndim == 2 else arr


def resize_batch(images: torch.Tensor, resolution: int, chunk: int = 8192) -> torch.Tensor:
    """uint8 N×C×h×w square images -> uint8 N×C×R×R (bicubic, antialiased), in chunks to bound memory."""
    if images.shape[-1] == resolution and images.shape[-2] == resolution:
        return images
    out = torch.empty((images.shape[0], images.shape[1], resolution, resolution), dtype=torch.uint8)
    for start in range(0, images.shape[0], chunk):
        part = images[start:start + chunk].float()
        part = F.interpolate(part, size=(resolution, resolution), mode="bicubic", align_corners=False, antialias=True)
        out[start:start + chunk] = part.round_().clamp_(0, 255).to(torch.uint8)
    return out

"""Safe image reading and writing shared by training data, sampling and style transfer.

Untrusted files are opened with a pixel limit (decompression bombs), EXIF orientation applied,
and every mode (palette, RGBA, LA, CMYK, 16-bit, float) converted to plain 8-bit RGB or L.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from .errors import DataError
from .provenance import Provenance

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")
MAX_PIXELS = int(os.environ.get("GANFORGE_MAX_PIXELS", 178_956_970))  # Pillow's own default bound


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES


def to_8bit(img: Image.Image) -> Image.Image:
    """16-bit and float greyscale -> 8-bit L, by range rather than clipping."""
    if img.mode in ("I;16", "I;16B", "I;16L", "I", "F"):
        arr = np.asarray(img, dtype=np.float64)
        if img.mode.startswith("I;16"):
            arr = arr / 257.0
        elif arr.size and arr.max() > 255:
            arr = arr * (255.0 / max(arr.max(), 1.0))
        return Image.fromarray(np.clip(arr, 0, 255).round().astype(np.uint8), mode="L")
    return img


def open_image(path: str | os.PathLike, mode: str = "RGB", *, max_pixels: int = MAX_PIXELS) -> Image.Image:
    """Open ``path`` as an 8-bit ``mode`` ('RGB' or 'L') image, or raise a one-line DataError."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"image not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > max_pixels:
                    raise DataError(
                        f"{path}: {img.width}x{img.height} is larger than the {max_pixels:,}-pixel limit "
                        f"(set GANFORGE_MAX_PIXELS to allow it)"
                    )
                img.load()
                img = ImageOps.exif_transpose(img)
    except DataError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError) as exc:
        raise DataError(f"{path}: refused, image is too large ({exc})") from exc
    except Exception as exc:
        raise DataError(f"{path}: not a readable image ({type(exc).__name__}: {exc})") from exc
    img = to_8bit(img)
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        # Composite on white: transparent regions are usually background.
        rgba = img.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        img = Image.alpha_composite(background, rgba)
    return img.convert(mode)


def pil_to_tensor(img: Image.Image) -> torch.Tensor:
    """PIL image -> float tensor C×H×W in [0, 1]."""
    arr = np.asarray(img, dtype=np.uint8)
    if arr.ndim == 2:
        arr = arr[:, :, None]
    return torch.from_numpy(arr.copy()).permute(2, 0, 1).float().div_(255.0)


def tensor_to_pil(tensor: torch.Tensor) -> Image.Image:
    """Float tensor C×H×W in [0, 1] (values outside are clipped) -> 8-bit PIL image."""
    arr = tensor.detach().float().clamp(0, 1).mul(255).round().to(torch.uint8).cpu()
    if arr.shape[0] == 1:
        return Image.fromarray(arr[0].numpy(), mode="L")
    return Image.fromarray(arr.permute(1, 2, 0).numpy(), mode="RGB")


def load_image(path: str | os.PathLike, mode: str = "RGB") -> torch.Tensor:
    """Read a file as a float tensor C×H×W in [0, 1]."""
    return pil_to_tensor(open_image(path, mode))


def save_image(image: torch.Tensor | Image.Image, path: str | os.PathLike, *, quality: int = 95,
               provenance: Provenance | None = None) -> Path:
    """Write an image atomically (temp file + rename); format from the suffix (png/jpg/webp/bmp/tif).
    ``provenance`` (generated images): the XMP "AI-generated" packet and text chunks of
    :mod:`ganforge.provenance`, in the formats that hold them (PNG, JPEG, WebP)."""
    path = Path(path)
    if path.suffix.lower() not in IMAGE_SUFFIXES:
        raise DataError(f"{path}: unsupported output format; use one of {', '.join(IMAGE_SUFFIXES)}")
    pil = image if isinstance(image, Image.Image) else tensor_to_pil(image)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    fmt = Image.registered_extensions()[path.suffix.lower()]
    kwargs = {"quality": quality} if fmt in ("JPEG", "WEBP") else {}
    if provenance is not None:
        kwargs.update(provenance.save_kwargs(fmt))
        if provenance.watermark:
            from .watermark import embed

            pil = Image.fromarray(embed(np.asarray(pil if pil.mode in ("L", "RGB") else pil.convert("RGB"))))
    pil.save(tmp, format=fmt, **kwargs)
    tmp.replace(path)
    return path

"""Untrusted image bytes in, images with provenance out.

Uploads are identified by their first bytes (never by a file name or a client-sent content type),
opened with the format sniffed, refused above a pixel limit before any pixel is decoded
(decompression bombs), EXIF-rotated and converted to 8-bit RGB. Outputs carry provenance: PNG text
chunks (``Software``, ``ganforge:method``, ``ganforge:version``, ``ganforge:params``) or a JPEG
comment with the same facts, and the XMP packet with the IPTC "trained algorithmic media" source
type (:mod:`ganforge.provenance`).
"""

from __future__ import annotations

import io
import warnings
from typing import Any

from PIL import Image, ImageOps

from ..provenance import DIGITAL_SOURCE_TYPE, Provenance
from ..errors import DataError
from ..imageio import to_8bit

# sniffed format -> (Pillow format name, MIME type)
FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg"), "webp": ("WEBP", "image/webp"),
           "bmp": ("BMP", "image/bmp")}
OUTPUT_FORMATS = {"png": ("PNG", "image/png"), "jpeg": ("JPEG", "image/jpeg")}


def sniff(data: bytes) -> str | None:
    """The image type from the content's magic bytes, or None (not an image type we accept)."""
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if len(data) >= 12 and data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "webp"
    if data.startswith(b"BM") and len(data) >= 26:
        return "bmp"
    return None


def decode(data: bytes, *, max_pixels: int, what: str = "image", mode: str = "RGB") -> Image.Image:
    """Decode uploaded bytes into an 8-bit ``mode`` image, or raise a one-line DataError."""
    kind = sniff(data)
    if kind is None:
        raise DataError(f"{what}: not a PNG, JPEG, WebP or BMP image (type is read from the content)")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            img = Image.open(io.BytesIO(data), formats=[FORMATS[kind][0]])
            if img.width * img.height > max_pixels:
                raise DataError(f"{what}: {img.width}x{img.height} pixels is more than this server's limit "
                                f"of {max_pixels:,} pixels")
            img.load()
            img = ImageOps.exif_transpose(img)
    except DataError:
        raise
    except (Image.DecompressionBombWarning, Image.DecompressionBombError):
        raise DataError(f"{what}: refused, the image is too large") from None
    except Exception as exc:  # truncated, corrupt, unsupported sub-format: one line, no traceback
        raise DataError(f"{what}: not a readable {kind.upper()} image ({type(exc).__name__})") from None
    img = to_8bit(img)  # 16-bit / float greyscale by range, as for files
    if img.mode in ("RGBA", "LA", "PA") or (img.mode == "P" and "transparency" in img.info):
        rgba = img.convert("RGBA")  # transparent areas composite on white, as in ganforge.imageio
        img = Image.alpha_composite(Image.new("RGBA", rgba.size, (255, 255, 255, 255)), rgba)
    return img.convert(mode)


def provenance(method: str, params: dict[str, Any] | None = None) -> dict[str, str]:
    return {**Provenance(method, None, None, dict(params or {})).text_chunks(),
            "DigitalSourceType": DIGITAL_SOURCE_TYPE}


def encode(img: Image.Image, fmt: str = "png", *, method: str, params: dict[str, Any] | None = None,
           quality: int = 92, watermark: bool = True) -> bytes:
    """PNG or JPEG bytes with ganforge's provenance (XMP "AI-generated" packet + text chunks or a
    comment: :mod:`ganforge.provenance`) and, unless ``watermark=False``, the invisible mark."""
    prov = Provenance(method, None, None, dict(params or {}), watermark)
    if watermark:
        import numpy as np

        from ..watermark import embed

        img = Image.fromarray(embed(np.asarray(img.convert("RGB") if img.mode not in ("L", "RGB") else img)))
    buf = io.BytesIO()
    if fmt == "png":
        img.save(buf, format="PNG", **prov.save_kwargs("PNG"))
    elif fmt == "jpeg":
        img.convert("RGB").save(buf, format="JPEG", quality=quality, **prov.save_kwargs("JPEG"))
    else:
        raise DataError(f"unknown output format {fmt!r}; use png or jpeg")
    return buf.getvalue()

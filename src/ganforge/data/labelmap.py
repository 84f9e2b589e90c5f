"""Semantic label maps (one class id per pixel) and their photos, for SPADE-style training.

A label map is a palette ("P") PNG whose palette index is the class id, or a single-channel
"L"/"I" image whose pixel value is the class id. Colour (RGB) maps are refused unless a
``palette`` {colour: id} is given: guessing ids from colours would silently train on the wrong
classes. Label maps are resized with NEAREST (an interpolated class id is a different class) but
cropped and scaled with exactly the geometry of ``transforms.resize_center_crop``, so a map and
its photo stay pixel-aligned.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch
from PIL import Image, ImageOps

from ..errors import DataError
from ..imageio import MAX_PIXELS
from .folder import _decode, list_images, require_folder
from .paired import _key

LABEL_MODES = frozenset({"P", "L", "1", "I", "I;16", "I;16B", "I;16L", "I;16N"})
# (label folder, image folder) names, first match wins
LAYOUTS = (("labels", "images"), ("A", "B"))


class LabelRangeError(DataError):
    """A label map holds a class id outside 0..num_classes-1 (a setting problem, not a bad file)."""


def _open(path: Path) -> Image.Image:
    path = Path(path)
    if not path.is_file():
        raise DataError(f"label map not found: {path}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            with Image.open(path) as img:
                if img.width * img.height > MAX_PIXELS:
                    raise DataError(f"{path}: {img.width}x{img.height} is larger than the {MAX_PIXELS:,}-pixel "
                                    f"limit (set GANFORGE_MAX_PIXELS to allow it)")
                img.load()
                return ImageOps.exif_transpose(img)  # the photo gets the same rotation in open_image
    except DataError:
        raise
    except Exception as exc:
        raise DataError(f"{path}: not a readable label map ({type(exc).__name__}: {exc})") from exc


def _from_palette(path: Path, rgb: np.ndarray, palette: dict[tuple, int]) -> np.ndarray:
    out = np.full(rgb.shape[:2], -1, dtype=np.int64)
    for colour, cid in palette.items():
        out[(rgb == np.asarray(colour[:3], dtype=rgb.dtype)).all(axis=-1)] = cid
    if (out < 0).any():
        y, x = np.argwhere(out < 0)[0]
        raise DataError(f"{path}: colour {tuple(int(v) for v in rgb[y, x])} at x={x}, y={y} is not in the palette")
    return out


def read_label_map(path: str | os.PathLike, num_classes: int | None = None, *,
                   palette: dict[tuple, int] | None = None) -> np.ndarray:
    """H×W array of class ids (uint8 when they fit, else int32) from a label-map image."""
    path = Path(path)
    img = _open(path)
    if img.mode in LABEL_MODES:
        arr = np.asarray(img)
        if arr.dtype == bool:
            arr = arr.astype(np.uint8)
    elif palette is not None and img.mode in ("RGB", "RGBA"):
        arr = _from_palette(path, np.asarray(img.convert("RGB")), palette)
    else:
        raise DataError(f"{path}: a {img.mode} image is not a label map; save class ids as an indexed (palette) "
                        f"or greyscale PNG, one id per pixel (or pass a colour->id palette)")
    top = int(arr.max()) if arr.size else 0
    if arr.size and int(arr.min()) < 0:
        raise LabelRangeError(f"{path}: negative class id {int(arr.min())}")
    if num_classes is not None and top >= num_classes:
        raise LabelRangeError(f"{path}: class id {top} found, but --num-classes is {num_classes} (ids 0..{num_classes - 1})")
    return arr.astype(np.uint8 if top < 256 else np.int32, copy=False)


def resize_center_crop_nearest(arr: np.ndarray, resolution: int) -> np.ndarray:
    """H×W class ids -> resolution² with NEAREST, cropped like ``resize_center_crop``."""
    h, w = arr.shape[:2]
    side = min(w, h)
    left, top = (w - side) // 2, (h - side) // 2
    arr = arr[top:top + side, left:left + side]
    if side != resolution:
        img = Image.fromarray(arr.astype(np.int32 if arr.dtype != np.uint8 else np.uint8))
        arr = np.asarray(img.resize((resolution, resolution), Image.Resampling.NEAREST))
    return np.array(arr, dtype=arr.dtype)  # writable copy


def oriented_size(path: Path) -> tuple[int, int] | None:
    """(width, height) of an image after EXIF rotation, from its header; None if unreadable."""
    try:
        with Image.open(path) as probe:
            w, h = probe.size
            if probe.getexif().get(0x0112) in (5, 6, 7, 8):
                w, h = h, w
            return w, h
    except Exception:  # noqa: BLE001 -- callers treat "unknown" as "do not compare"
        return None


def _aspect_differs(a: tuple[int, int], b: tuple[int, int]) -> bool:
    """Whether two (w, h) sizes have different aspect ratios beyond one pixel of rounding."""
    (wa, ha), (wb, hb) = a, b
    return abs(wa * hb - wb * ha) > max(wa, ha, wb, hb)


def label_folders(root: Path) -> tuple[Path, Path] | None:
    """(label folder, image folder) of a label-map dataset root, or None."""
    for labels, images in LAYOUTS:
        if (root / labels).is_dir() and (root / images).is_dir():
            return root / labels, root / images
    return None


def load_label_pairs(root: str | os.PathLike, *, resolution: int, num_classes: int,
                     channels: int = 3) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(labels uint8 N×1×R×R, images uint8 N×C×R×R, names) from ``root/labels`` + ``root/images``
    (or ``root/A`` + ``root/B``), files matched by relative path without the suffix.

    Unmatched files and unreadable pairs are left out with a warning; a class id at or above
    ``num_classes`` is a DataError (a wrong --num-classes must not train silently)."""
    root = require_folder(root)
    if channels not in (1, 3):
        raise DataError(f"channels must be 1 or 3, got {channels}")
    if not 1 <= num_classes <= 256:
        raise DataError(f"--num-classes must be between 1 and 256 (label maps are stored as uint8), got {num_classes}")
    folders = label_folders(root)
    if folders is None:
        raise DataError(f"{root}: expected labels/ and images/ (or A/ and B/) folders of label maps and images")
    lab_dir, img_dir = folders
    lab_files = {_key(lab_dir, p): p for p in list_images(lab_dir)[0]}
    img_files = {_key(img_dir, p): p for p in list_images(img_dir)[0]}
    names = sorted(lab_files.keys() & img_files.keys())
    unmatched = len(lab_files) + len(img_files) - 2 * len(names)
    if unmatched:
        warnings.warn(f"{unmatched} file(s) in {lab_dir} or {img_dir} have no counterpart of the same name; "
                      f"left out", stacklevel=2)
    labels, images, kept, bad, misaligned = [], [], [], [], []
    for name in names:
        xi, _, why = _decode(img_files[name], channels, resolution)
        try:
            arr = read_label_map(lab_files[name], num_classes)
        except LabelRangeError:
            raise
        except DataError as exc:
            bad.append(str(exc))
            continue
        if xi is None:
            bad.append(f"{img_files[name]}: {why}")
            continue
        size = oriented_size(img_files[name])
        if size is not None and _aspect_differs(size, (arr.shape[1], arr.shape[0])):
            misaligned.append(name)
        labels.append(resize_center_crop_nearest(arr, resolution))
        images.append(xi)
        kept.append(name)
    if bad:
        warnings.warn(f"skipped {len(bad)} unreadable pair(s) in {root} (first: {bad[0]})", stacklevel=2)
    if misaligned:
        warnings.warn(f"{len(misaligned)} label map(s) in {lab_dir} have another aspect ratio than their image "
                      f"(first: {misaligned[0]}), so the centre crops do not cover the same region", stacklevel=2)
    if not kept:
        raise DataError(f"no label map / image pairs in {root}: {lab_dir.name}/ and {img_dir.name}/ need files "
                        f"of the same names")
    lab_t = torch.from_numpy(np.stack(labels)).unsqueeze(1).contiguous()
    img_t = torch.from_numpy(np.stack(images)).permute(0, 3, 1, 2).contiguous()
    return lab_t, img_t, kept

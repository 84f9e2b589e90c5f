"""Image pairs from disk for image-to-image tasks, as uint8 tensors for the paired and unpaired
batch sources (``train/batches.py``).

Two layouts: a folder with ``A/`` and ``B/`` subfolders whose files are matched by relative path
without the suffix (``A/x/1.jpg`` goes with ``B/x/1.png``), or a folder of side-by-side ``AB``
images (A the left half, B the right half, as the pix2pix datasets ship). Decoding and resizing
are the GAN folder loader's, so a pair looks exactly as either image would there.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path

import numpy as np
import torch

from ..errors import DataError
from ..imageio import open_image
from .folder import _decode, list_images, require_folder
from .transforms import resize_center_crop

_MODES = {1: "L", 3: "RGB"}


def stack_images(arrays: list[np.ndarray]) -> torch.Tensor:
    """uint8 H×W×C arrays (one size) -> a uint8 N×C×H×W tensor."""
    return torch.from_numpy(np.stack(arrays)).permute(0, 3, 1, 2).contiguous()


def _key(root: Path, path: Path) -> str:
    return path.relative_to(root).with_suffix("").as_posix()


def decode_all(paths: list[Path], channels: int, resolution: int) -> tuple[list[np.ndarray], list[Path]]:
    """Decode ``paths`` as the GAN folder loader does (``channels``, ``resolution``²): (arrays, unreadable paths)."""
    arrays, bad = [], []
    for path in paths:
        arr, _, _ = _decode(path, channels, resolution)
        (bad.append(path) if arr is None else arrays.append(arr))
    return arrays, bad


def load_paired_folder(root: str | os.PathLike, *, resolution: int, channels: int = 3,
                       channels_b: int | None = None) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
    """(A, B, names): uint8 N×C×R×R tensors of matched pairs and each pair's name.

    Files without a counterpart, and pairs where either file is unreadable, are left out with a
    warning (an hour-long run should not die on one bad file); no pair at all is a DataError."""
    root = require_folder(root)
    cb = channels if channels_b is None else channels_b
    if channels not in _MODES or cb not in _MODES:
        raise DataError(f"channels must be 1 or 3, got {channels} and {cb}")
    if (root / "A").is_dir() and (root / "B").is_dir():
        a_files = {_key(root / "A", p): p for p in list_images(root / "A")[0]}
        b_files = {_key(root / "B", p): p for p in list_images(root / "B")[0]}
        names = sorted(a_files.keys() & b_files.keys())
        unmatched = len(a_files) + len(b_files) - 2 * len(names)
        if unmatched:
            warnings.warn(f"{unmatched} file(s) in {root}/A or {root}/B have no counterpart of the same name; "
                          f"left out", stacklevel=2)
        a, b, kept, bad = [], [], [], 0
        for name in names:
            xa, _, _ = _decode(a_files[name], channels, resolution)
            xb, _, _ = _decode(b_files[name], cb, resolution)
            if xa is None or xb is None:
                bad += 1
                continue
            a.append(xa), b.append(xb), kept.append(name)
    else:
        a, b, kept, bad = [], [], [], 0
        for path in list_images(root)[0]:
            try:
                img = open_image(path, "RGB")
                w, h = img.size
                half = w // 2
                left, right = img.crop((0, 0, half, h)), img.crop((half, 0, 2 * half, h))
                xa = resize_center_crop(left.convert(_MODES[channels]), resolution)
                xb = resize_center_crop(right.convert(_MODES[cb]), resolution)
            except Exception:  # noqa: BLE001 -- one unreadable file is skipped, as in the folder loader
                bad += 1
                continue
            a.append(xa), b.append(xb), kept.append(_key(root, path))
    if bad:
        warnings.warn(f"skipped {bad} unreadable pair(s) in {root}", stacklevel=2)
    if not kept:
        raise DataError(f"no image pairs in {root}: expected A/ and B/ with files of the same names, "
                        f"or side-by-side AB images")
    return stack_images(a), stack_images(b), kept


def load_unpaired_folder(root: str | os.PathLike, *, resolution: int, channels: int = 3,
                         channels_b: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(A, B): every readable image of ``root/A`` and ``root/B``, independently (sizes may differ)."""
    root = require_folder(root)
    out = []
    for side, ch in (("A", channels), ("B", channels if channels_b is None else channels_b)):
        folder = require_folder(root / side)
        arrays, bad = decode_all(list_images(folder)[0], ch, resolution)
        if bad:
            warnings.warn(f"skipped {len(bad)} unreadable image(s) in {folder}, e.g. {bad[0]}", stacklevel=2)
        if not arrays:
            raise DataError(f"no readable images in {folder}")
        out.append(stack_images(arrays))
    return out[0], out[1]

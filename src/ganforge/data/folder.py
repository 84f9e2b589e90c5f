"""A folder of images as a dataset: immediate subfolders are classes, unreadable files are
skipped (and counted) rather than aborting an hour-long training run at image 40 000."""

from __future__ import annotations

import logging
import os
import warnings
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from ..errors import DataError
from ..imageio import IMAGE_SUFFIXES, is_image_file, open_image
from .dataset import ImageDataset, check_memory, check_resolution
from .transforms import resize_center_crop

log = logging.getLogger(__name__)

# Modes whose pixels carry no colour; a folder made only of these loads as 1 channel.
GRAY_MODES = frozenset({"1", "L", "LA", "I", "F", "I;16", "I;16B", "I;16L", "I;16N"})
ROOT_CLASS = "."  # class name of images lying directly in the root when subfolders exist too


def _hidden(rel: Path) -> bool:
    return any(part.startswith(".") for part in rel.parts)


def list_images(root: Path) -> tuple[list[Path], list[Path]]:
    """(image files, other files) under ``root``, recursively, sorted by relative path.
    Hidden files and folders (.git, .ipynb_checkpoints, ._mac forks) are left out."""
    images: list[Path] = []
    others: list[Path] = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in filenames:
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            (images if is_image_file(path) else others).append(path)
    key = lambda p: p.relative_to(root).as_posix()  # noqa: E731
    return sorted(images, key=key), sorted(others, key=key)


def class_of(root: Path, path: Path) -> str | None:
    """Name of the immediate subfolder holding ``path``; None for files directly in ``root``."""
    parts = path.relative_to(root).parts
    return parts[0] if len(parts) > 1 else None


def folder_labels(root: Path, kept: list[Path]) -> tuple[list[str], list[int]]:
    """(sorted class names, one class id per image) for the images ``kept`` under ``root``:
    immediate subfolders are classes; images lying in the root are class ``ROOT_CLASS`` when
    subfolders exist too, else the folder's own name."""
    names = [class_of(root, p) for p in kept]
    has_sub = any(n is not None for n in names)
    names = [n if n is not None else (ROOT_CLASS if has_sub else (root.name or "images")) for n in names]
    class_names = sorted(set(names))
    index = {name: i for i, name in enumerate(class_names)}
    return class_names, [index[n] for n in names]


def require_folder(root: str | os.PathLike) -> Path:
    root = Path(root).expanduser()
    if not root.exists():
        raise DataError(f"folder not found: {root}")
    if not root.is_dir():
        raise DataError(f"{root} is a file, not a folder of images")
    return root


def _decode(path: Path, channels: int | None, resolution: int) -> tuple[np.ndarray | None, bool, str]:
    """-> (uint8 R×R×C array or None, whether the original is grayscale, error text)."""
    try:
        with Image.open(path) as probe:  # header only: the original mode decides "native" channels
            gray = probe.mode in GRAY_MODES
        mode = {1: "L", 3: "RGB"}.get(channels, "L" if gray else "RGB")
        img = open_image(path, mode)
        return resize_center_crop(img, resolution), gray, ""
    except Exception as exc:  # noqa: BLE001 -- any failure on one file means "skip it", never abort
        text = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        return None, False, text


def _workers() -> int:
    # PIL releases the GIL while decoding and resizing, so threads scale with cores.
    return max(1, min(8, 2 * (os.cpu_count() or 1)))


def load_folder(root: str | os.PathLike, *, resolution: int, channels: int | None = None,
                max_images: int | None = None, progress: bool = True) -> ImageDataset:
    """Decode every image under ``root`` to uint8 C×R×R (see ``load_dataset`` for the rules)."""
    root = require_folder(root)
    resolution = check_resolution(resolution)
    files, _ = list_images(root)
    if not files:
        raise DataError(f"no images in {root} (looked recursively for {', '.join(IMAGE_SUFFIXES)})")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
        raise DataError(f"max_images must be a positive integer, got {max_images!r}")
    want = len(files) if max_images is None else min(max_images, len(files))
    # Lower bound before decoding (native grayscale may be 1 channel); exact check again below.
    check_memory(want, channels or 1, resolution, str(root))

    from tqdm.auto import tqdm

    arrays: list[np.ndarray | None] = []
    kept: list[Path] = []
    gray_flags: list[bool] = []
    skipped: list[tuple[Path, str]] = []
    position = 0
    with ThreadPoolExecutor(max_workers=_workers()) as pool, \
            tqdm(total=want, unit="img", desc=f"decoding {root.name or root}", disable=not progress) as bar:
        # With max_images, unreadable files are replaced by the next ones in order, so the
        # dataset still has max_images images when the folder has enough good ones.
        while len(arrays) < want and position < len(files):
            batch = files[position:position + (want - len(arrays))]
            position += len(batch)
            for path, (arr, gray, error) in zip(batch, pool.map(lambda p: _decode(p, channels, resolution), batch)):
                if arr is None:
                    skipped.append((path, error))
                    log.debug("skipping %s: %s", path, error)
                else:
                    arrays.append(arr)
                    kept.append(path)
                    gray_flags.append(gray)
                    bar.update(1)

    if skipped:
        first, why = skipped[0]
        warnings.warn(
            f"skipped {len(skipped)} unreadable file(s) in {root} (first: {first}: {why})", stacklevel=3
        )
    if not arrays:
        first, why = skipped[0]
        raise DataError(f"none of the {len(skipped)} image file(s) in {root} could be read (first: {first}: {why})")

    out_channels = channels or (1 if all(gray_flags) else 3)
    check_memory(len(arrays), out_channels, resolution, str(root))
    images = torch.empty((len(arrays), out_channels, resolution, resolution), dtype=torch.uint8)
    for i in range(len(arrays)):
        t = torch.from_numpy(arrays[i]).permute(2, 0, 1)
        arrays[i] = None  # free as we copy: peak memory stays near one copy of the dataset
        images[i] = t if t.shape[0] == out_channels else t.expand(out_channels, -1, -1)

    class_names, label_ids = folder_labels(root, kept)
    labels = torch.tensor(label_ids, dtype=torch.int64)

    total = len(files)
    count = f"{len(kept)} images" if len(kept) == total else f"{len(kept)} of {total} image files"
    extra = f", {len(skipped)} unreadable skipped" if skipped else ""
    source = (f"folder {root.resolve()} ({count}{extra}, {len(class_names)} "
              f"class{'es' if len(class_names) != 1 else ''}, {out_channels}×{resolution}×{resolution})")
    return ImageDataset(images=images, labels=labels, class_names=class_names, source=source,
                        skipped=[str(p) for p, _ in skipped])

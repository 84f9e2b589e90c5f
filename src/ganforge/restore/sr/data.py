"""Training data of a super-resolution run: HR tiles from a folder (native resolution) or a
built-in dataset (:func:`load_sr_images`), and the fixed LR/HR pairs of the sample grids
(:func:`fixed_pairs`). Training pairs are made on the fly by
:class:`ganforge.restore.degrade.DegradedBatches`."""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import torch

from ...errors import DataError
from ..degrade import degrade
from .config import SRConfig

SNAPSHOT_ROWS = 4


def _tiles(image: np.ndarray, size: int) -> list[np.ndarray]:
    h, w = image.shape[:2]
    return [image[y:y + size, x:x + size] for y in range(0, h - size + 1, size) for x in range(0, w - size + 1, size)]


def load_sr_images(cfg: SRConfig) -> tuple[torch.Tensor, dict[str, Any]]:
    """uint8 N×3×T×T training tiles: a folder's images cut into non-overlapping ``tile_size``
    tiles at their native resolution (an image smaller than a tile is first resized up so that its
    short side fits one), or a built-in dataset (``fashion-mnist``, ...) at ``tile_size``."""
    if not cfg.data:
        raise DataError("--data is required: a folder of images (or a built-in dataset name such as fashion-mnist)")
    from ...data import load_dataset
    from ...data.builtin import parse_builtin

    size = cfg.tile_size
    if parse_builtin(str(cfg.data)) is not None:
        ds = load_dataset(cfg.data, resolution=size, channels=3, max_images=cfg.max_images, progress=False)
        return ds.images, {"data_source": str(cfg.data), "images": len(ds.images), "tiles": len(ds.images)}
    from PIL import Image

    from ...data.folder import list_images, require_folder
    from ...imageio import IMAGE_SUFFIXES, open_image

    root = require_folder(cfg.data)
    files, _ = list_images(root)
    if not files:
        raise DataError(f"no images in {root} (looked recursively for {', '.join(IMAGE_SUFFIXES)})")
    if cfg.max_images:
        files = files[: cfg.max_images]
    tiles: list[np.ndarray] = []
    skipped: list[str] = []
    for path in files:
        try:
            img = open_image(path, "RGB")
        except Exception as exc:  # noqa: BLE001 -- one unreadable file is skipped, not fatal
            skipped.append(f"{path}: {exc}")
            continue
        if min(img.size) < size:
            k = size / min(img.size)
            img = img.resize((max(size, round(img.width * k)), max(size, round(img.height * k))), Image.BICUBIC)
        tiles += _tiles(np.asarray(img, np.uint8), size)
    if skipped:
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) (first: {skipped[0]})", stacklevel=3)
    if not tiles:
        raise DataError(f"none of the images in {root} could be read")
    from ...data.dataset import check_memory

    check_memory(len(tiles), 3, size, str(root))
    images = torch.from_numpy(np.stack(tiles)).permute(0, 3, 1, 2).contiguous()
    return images, {"data_source": str(root), "images": len(files) - len(skipped), "tiles": len(tiles)}


def fixed_pairs(images: torch.Tensor, cfg: SRConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """Centre crops of the first few tiles and their LR versions (a generator of their own, seeded
    from the run's seed: the run's generator is not touched) for the sample grids."""
    c = cfg.crop
    y0, x0 = (images.shape[-2] - c) // 2, (images.shape[-1] - c) // 2
    hr = images[:SNAPSHOT_ROWS, :, y0:y0 + c, x0:x0 + c].to(device).float().div(255)
    g = torch.Generator(device=device).manual_seed(cfg.seed + 12345)
    return {"lr": degrade(hr, cfg.scale, cfg.degradation, g), "hr": hr}

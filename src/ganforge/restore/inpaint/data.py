"""Training data of an inpainting run: images from a folder or a built-in dataset
(:func:`load_inpaint_data`), random crops, flips and hole masks drawn from the run's generator
(:class:`MaskedBatches`), and the fixed snapshot inputs (:func:`fixed_inputs`)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import DataError
from ..masks import check_mask_options, make_masks
from .config import InpaintConfig

SNAPSHOT_ROWS = 4


class MaskedBatches:
    """Images (random crop + flip, as :class:`~ganforge.train.batches.PairedBatches`) and hole masks,
    all drawn from the run's generator: ``{"image": [-1, 1] N×C×S×S, "mask": N×1×S×S (1 = hole)}``.
    Batch k is a function of (seed, the epoch's permutation, k) and the generator's state."""

    count_key = "image"

    def __init__(self, images: torch.Tensor, batch_size: int, seed: int, *, crop: int | None = None,
                 hflip: bool = False, mask_kind: str = "mix", min_hole: float = 0.1, max_hole: float = 0.4) -> None:
        from ...train.batches import EpochShards, check_images

        check_images("image", images, crop)
        check_mask_options(mask_kind, min_hole, max_hole)
        self.images, self.crop, self.hflip = images, crop, hflip
        self.mask_kind, self.min_hole, self.max_hole = mask_kind, min_hole, max_hole
        self.shards = EpochShards(len(images), batch_size, seed)

    def get(self, index, rank, world, generator, device) -> dict[str, torch.Tensor]:
        from ...train.batches import apply_flip, crop_at, crop_offsets, flip_mask, to_unit_range

        idx = self.shards.indices(index, rank, world)
        x = self.images[idx]
        if self.crop is not None:
            x = crop_at(x, crop_offsets(len(idx), x.shape[-2], x.shape[-1], self.crop, generator), self.crop)
        x = to_unit_range(x, device)
        if self.hflip:
            x = apply_flip(x, flip_mask(len(idx), generator, device))
        mask = make_masks(len(idx), x.shape[-2], x.shape[-1], generator, kind=self.mask_kind,
                          min_area=self.min_hole, max_area=self.max_hole, device=device)
        return {"image": x, "mask": mask}


def load_inpaint_data(cfg: InpaintConfig) -> tuple[torch.Tensor, dict[str, Any]]:
    """uint8 N×C×S×S images at ``load_size`` from ``cfg.data`` (a folder or a built-in name)."""
    from ...data import load_dataset

    if not cfg.data:
        raise DataError("--data is required: a folder of images (any layout) or a built-in dataset name")
    size = cfg.load_size
    info = {"data_source": str(cfg.data)}
    if size & (size - 1) == 0 or not Path(cfg.data).expanduser().is_dir():  # the GAN loader: powers of two
        images = load_dataset(cfg.data, resolution=size, channels=cfg.channels, max_images=cfg.max_images,
                              progress=cfg.progress).images
    else:  # a folder at any size (e.g. 286 for random 256 crops): the same decoding, no power-of-two rule
        from ...data.folder import list_images, require_folder
        from ...data.paired import decode_all, stack_images

        files = list_images(require_folder(cfg.data))[0][: cfg.max_images or None]
        arrays, bad = decode_all(files, cfg.channels, size)
        if not arrays:
            raise DataError(f"no readable images in {cfg.data}")
        images = stack_images(arrays)
        info["skipped"] = len(bad)
    return images, {**info, "images": len(images)}


def fixed_inputs(images: torch.Tensor, cfg: InpaintConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """The first few images, centre-cropped, with masks from a generator of their own (the run's
    generator is never touched by snapshots)."""
    from ...train.batches import to_unit_range

    c = cfg.crop_size
    y0, x0 = (images.shape[-2] - c) // 2, (images.shape[-1] - c) // 2
    x = to_unit_range(images[:SNAPSHOT_ROWS, :, y0:y0 + c, x0:x0 + c], device)
    g = torch.Generator().manual_seed(cfg.seed + 12345)
    mask = make_masks(len(x), c, c, g, kind=cfg.mask_kind, min_area=cfg.min_hole, max_area=cfg.max_hole,
                      device=device)
    return {"image": x, "mask": mask}

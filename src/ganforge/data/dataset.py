"""The in-memory dataset every loader returns, plus the checks all loaders share (resolution,
memory budget), so the training loop and the metrics see one shape of data whatever the source."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch

from ..errors import DataError

DEFAULT_MAX_BYTES = 4 << 30  # 4 GiB of uint8 pixels


@dataclass(repr=False)
class ImageDataset:
    """uint8 N×C×R×R images held in memory, with int64 labels (all 0 when unlabelled)."""

    images: torch.Tensor
    labels: torch.Tensor
    class_names: list[str]
    source: str
    skipped: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        if self.images.dtype != torch.uint8 or self.images.ndim != 4:
            raise ValueError(f"images must be uint8 N×C×H×W, got {self.images.dtype} {tuple(self.images.shape)}")
        if self.labels.shape != (self.images.shape[0],):
            raise ValueError("labels must have one entry per image")

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    @property
    def resolution(self) -> int:
        return int(self.images.shape[-1])

    def __len__(self) -> int:
        return int(self.images.shape[0])

    def __repr__(self) -> str:  # the default dataclass repr would print the tensors
        return (
            f"ImageDataset({len(self)}×{self.channels}×{self.resolution}×{self.resolution}, "
            f"{self.num_classes} classes, skipped={len(self.skipped)}, source={self.source!r})"
        )


def check_resolution(resolution: int, native: int | None = None) -> int:
    """GAN generators double their size per block, so only powers of two make sense (plus the
    dataset's own size, which metrics use to compare against real images unresized)."""
    if isinstance(resolution, bool) or not isinstance(resolution, int):
        raise DataError(f"resolution must be an integer, got {resolution!r}")
    if resolution == native:
        return resolution
    if not (8 <= resolution <= 1024 and resolution & (resolution - 1) == 0):
        raise DataError(f"resolution {resolution} is not supported; "
                        f"use a power of two from 8 to 1024 (e.g. 32, 64, 128)")
    return resolution


def check_channels(channels: int | None) -> int | None:
    if channels not in (None, 1, 3):
        raise DataError(f"channels must be 1 (grayscale), 3 (RGB) or None (native), got {channels!r}")
    return channels


def max_bytes() -> int:
    value = os.environ.get("GANFORGE_MAX_DATASET_BYTES")
    if not value:
        return DEFAULT_MAX_BYTES
    try:
        return int(value)
    except ValueError:
        raise DataError(f"GANFORGE_MAX_DATASET_BYTES must be an integer number of bytes, got {value!r}") from None


def check_memory(count: int, channels: int, resolution: int, what: str) -> None:
    """Refuse before decoding rather than swap the machine to death."""
    needed = count * channels * resolution * resolution
    limit = max_bytes()
    if needed > limit:
        raise DataError(
            f"{what}: {count} images at {channels}×{resolution}×{resolution} need {needed / 2**30:.2f} GiB, "
            f"over the {limit / 2**30:.2f} GiB limit (GANFORGE_MAX_DATASET_BYTES); "
            f"use --max-images or a lower resolution"
        )

"""Turning an image source (dataset split, folder, run directory, tensor) into uint8 images.

Datasets go through ``ganforge.data.load_dataset`` when that module exists; until then (and as a
fallback for the two MNIST-format datasets) a minimal idx reader keeps the metrics usable.
"""

from __future__ import annotations

import gzip
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import paths
from ..errors import DataError

_IDX_DIRS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST"}


@dataclass
class Images:
    """uint8 N×C×H×W images plus where they came from (recorded in the protocol)."""

    images: torch.Tensor
    labels: torch.Tensor | None
    source: str
    kind: str  # "dataset", "folder", "run", "tensor"


def _idx_file(dataset: str, name: str) -> Path:
    folder = _IDX_DIRS[dataset]
    roots = [p for p in (paths.data_dir(), paths.home() / "datasets") if p is not None]
    for root in roots:
        for candidate in (root / folder / "raw" / name, root / folder / "raw" / name.removesuffix(".gz")):
            if candidate.is_file():
                return candidate
    raise DataError(f"{dataset}: {name} not found under {', '.join(str(r / folder / 'raw') for r in roots)}")


def _read_idx(path: Path) -> np.ndarray:
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as handle:
        data = handle.read()
    magic = int.from_bytes(data[:4], "big")
    ndim = magic & 0xFF
    if magic >> 8 != 0x08:
        raise DataError(f"{path}: not an unsigned-byte idx file")
    shape = [int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim)]
    return np.frombuffer(data, dtype=np.uint8, offset=4 + 4 * ndim).reshape(shape)


def read_idx_split(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """(uint8 N×1×28×28 images, int64 labels) of an MNIST-format dataset split, read directly."""
    prefix = "train" if split == "train" else "t10k"
    images = _read_idx(_idx_file(dataset, f"{prefix}-images-idx3-ubyte.gz"))
    labels = _read_idx(_idx_file(dataset, f"{prefix}-labels-idx1-ubyte.gz"))
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


def load_split(dataset: str, split: str) -> tuple[torch.Tensor, torch.Tensor]:
    """Native-resolution uint8 images and labels of ``dataset:split`` (mnist / fashion-mnist; digits
    at 32×32, the classifier's input size, since 8×8 is too small to resize from on the fly)."""
    try:
        from ..data import load_dataset  # type: ignore[attr-defined]
    except ImportError:
        load_dataset = None
    if load_dataset is not None:
        ds = load_dataset(f"{dataset}:{split}", resolution=32 if dataset == "digits" else 28, channels=1,
                          progress=False)
        return ds.images, ds.labels
    return read_idx_split(dataset, split)

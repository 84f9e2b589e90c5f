"""Built-in datasets: MNIST and Fashion-MNIST (idx files, sha256-checked, downloaded on demand)
and scikit-learn's 8×8 digits (no download at all, the last-resort fallback).

The idx files are parsed here with gzip + numpy rather than through torchvision, because
torchvision writes extracted files next to the archives and GANFORGE_DATA_DIR may be read-only.
"""

from __future__ import annotations

import functools
import gzip
import os
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .. import paths
from ..download import download_verified, sha256_file
from ..errors import DataError
from ..registry import Registry
from .dataset import ImageDataset, check_channels, check_memory, check_resolution
from .transforms import resize_batch


@dataclass(frozen=True)
class IdxDataset:
    name: str          # public name, e.g. "mnist"
    title: str         # for messages, e.g. "MNIST"
    folder: str        # torchvision folder name under the data root
    mirrors: tuple[str, ...]
    sha256: dict       # file name -> sha256 of the canonical .gz
    class_names: tuple[str, ...]


_MNIST_FILES = ("train-images-idx3-ubyte.gz", "train-labels-idx1-ubyte.gz",
                "t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz")

IDX_DATASETS: dict[str, IdxDataset] = {
    "mnist": IdxDataset(
        name="mnist", title="MNIST", folder="MNIST",
        mirrors=("https://ossci-datasets.s3.amazonaws.com/mnist/", "http://yann.lecun.com/exdb/mnist/"),
        sha256=dict(zip(_MNIST_FILES, (
            "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",
            "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",
            "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",
            "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",
        ))),
        class_names=tuple(str(i) for i in range(10)),
    ),
    "fashion-mnist": IdxDataset(
        name="fashion-mnist", title="Fashion-MNIST", folder="FashionMNIST",
        mirrors=("http://fashion-mnist.s3-website.eu-central-1.amazonaws.com/",),
        sha256=dict(zip(_MNIST_FILES, (
            "3aede38d61863908ad78613f6a32ed271626dd12800ba2636569512369268a84",
            "a04f17134ac03560a47e3764e11b92fc97de4d1bfaf8ba1a3aa29af54cc90845",
            "346e55b948d973a97e58d2351dde16a484bd415d4595297633bb08f03db6a073",
            "67da17c76eaffca5446c3361aaab5c3cd6d1c2608764d35dfb1850b086bf8dd5",
        ))),
        class_names=("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat",
                     "Sandal", "Shirt", "Sneaker", "Bag", "Ankle boot"),
    ),
}

_SPLIT_PREFIX = {"train": "train", "test": "t10k"}

# name -> loader(split, resolution, channels, max_images, progress) -> ImageDataset
Loader = Callable[..., ImageDataset]
DATASETS: Registry[Loader] = Registry("dataset")


def splits(name: str) -> tuple[str, ...]:
    if name == "digits":
        return DIGITS_SPLITS
    return tuple(_SPLIT_PREFIX) if name in IDX_DATASETS else ()


# --------------------------------------------------------------------------- finding the files

def dataset_names() -> list[str]:
    """The built-in dataset names (without split suffixes)."""
    return DATASETS.names()


def dataset_choices() -> list[str]:
    """Every built-in spelling accepted by ``load_dataset``, e.g. for help texts."""
    out = []
    for name in dataset_names():
        out.append(name)
        out.extend(f"{name}:{split}" for split in splits(name))
    return out


def parse_builtin(source: str) -> tuple[str, str | None] | None:
    """(name, split or None) when ``source`` names a built-in dataset (``mnist``, ``mnist:test``),
    else None."""
    name, sep, split = source.strip().lower().partition(":")
    if name in DATASETS:
        return name, (split if sep else None)
    return None


def load_builtin(source: str, *, resolution: int, channels: int | None = None, max_images: int | None = None,
                 progress: bool = True) -> ImageDataset:
    """A built-in dataset (``parse_builtin(source)`` must not be None) at ``resolution``."""
    found = parse_builtin(source)
    if found is None:
        raise DataError(f"{source!r} is not a built-in dataset ({', '.join(dataset_choices())})")
    return DATASETS.get(found[0])(found[1], resolution, check_channels(channels), max_images, progress)


def _roots() -> list[Path]:
    """Read-only user folder first, then our own writable cache."""
    roots = [paths.data_dir(), paths.home() / "datasets"]
    return [r for r in roots if r is not None]


def present_locally(name: str, split: str = "train") -> bool:
    """True when the idx files of ``name``'s ``split`` are already on this machine (GANFORGE_DATA_DIR
    or the cache), so loading it downloads nothing; False for other names."""
    spec = IDX_DATASETS.get(name)
    if spec is None or split not in _SPLIT_PREFIX:
        return False
    wanted = (f"{_SPLIT_PREFIX[split]}-images-idx3-ubyte.gz", f"{_SPLIT_PREFIX[split]}-labels-idx1-ubyte.gz")
    return all(any((root / spec.folder / "raw" / f).is_file() for root in _roots()) for f in wanted)


_VERIFIED: dict[tuple[str, int, int], bool] = {}


def _verify(path: Path, expected: str) -> None:
    """sha256 once per (path, size, mtime) per process: the archives are ~10 MB, the check is not free."""
    stat = path.stat()
    key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns)
    if _VERIFIED.get(key):
        return
    got = sha256_file(path)
    if got != expected:
        raise DataError(
            f"{path} fails the sha256 check (got {got[:16]}…, expected {expected[:16]}…): the file is "
            f"corrupt or not the canonical one; replace it (or delete it from the cache to download again)"
        )
    _VERIFIED[key] = True


def _download(spec: IdxDataset, filename: str, target: Path, progress: bool) -> None:
    """Fetch into a temp file beside the target, check sha256, then rename: never a half file."""
    errors = []
    expected = spec.sha256[filename]
    for mirror in spec.mirrors:
        url = mirror + filename
        try:
            if download_verified(url, target, lambda d: d == expected, progress=progress, desc=filename) == expected:
                return
            errors.append(f"{url}: sha256 mismatch")
        except OSError as exc:
            errors.append(f"{url}: {exc}")
    raise DataError(
        f"could not download {spec.title} file {filename} ({'; '.join(errors)}); "
        f"set GANFORGE_DATA_DIR to a folder containing {spec.folder}/raw/{filename}"
    )


def _locate(spec: IdxDataset, split: str, progress: bool) -> tuple[Path, Path]:
    """Paths of the (images, labels) archives of a split, verified, downloading if allowed."""
    prefix = _SPLIT_PREFIX[split]
    wanted = [f"{prefix}-images-idx3-ubyte.gz", f"{prefix}-labels-idx1-ubyte.gz"]
    roots = _roots()
    found: dict[str, Path] = {}
    for filename in wanted:
        for root in roots:
            candidate = root / spec.folder / "raw" / filename
            if candidate.is_file():
                found[filename] = candidate
                break
    missing = [f for f in wanted if f not in found]
    if missing:
        if os.environ.get("GANFORGE_OFFLINE") == "1":
            looked = " and ".join(str(r / spec.folder / "raw") for r in roots)
            raise DataError(
                f"{spec.title} {split} files missing: {', '.join(missing)} (looked in {looked}); "
                f"GANFORGE_OFFLINE=1 so nothing is downloaded. Fix: set GANFORGE_DATA_DIR to a folder "
                f"containing {spec.folder}/raw/{missing[0]} (torchvision layout), or unset GANFORGE_OFFLINE "
                f"to download them"
            )
        cache = paths.cache_dir("datasets") / spec.folder / "raw"
        for filename in missing:
            _download(spec, filename, cache / filename, progress)
            found[filename] = cache / filename
    for filename in wanted:
        _verify(found[filename], spec.sha256[filename])
    return found[wanted[0]], found[wanted[1]]


# --------------------------------------------------------------------------- parsing

def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Parse a gzipped idx file of unsigned bytes (magic 0x0000 08 ndim, big-endian dims)."""
    try:
        with gzip.open(path, "rb") as handle:
            data = handle.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from exc
    header = 4 + 4 * ndim
    magic = int.from_bytes(data[:4], "big") if len(data) >= 4 else -1
    if magic != 0x0800 | ndim:
        raise DataError(f"{path}: not a {ndim}-d unsigned-byte idx file (magic {magic:#x})")
    shape = tuple(int.from_bytes(data[4 + 4 * i: 8 + 4 * i], "big") for i in range(ndim))
    if len(data) != header + int(np.prod(shape)):
        raise DataError(f"{path}: idx file is truncated or padded (shape {shape}, {len(data)} bytes)")
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _idx_count(path: Path) -> int:
    """The number of items an idx file declares (its first dimension), reading only the header."""
    try:
        with gzip.open(path, "rb") as handle:
            head = handle.read(8)
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: not a readable gzip file ({exc})") from exc
    if len(head) < 8 or head[:3] != b"\x00\x00\x08":
        raise DataError(f"{path}: not an unsigned-byte idx file")
    return int.from_bytes(head[4:8], "big")


def _file_key(path: Path) -> tuple[str, int, int]:
    stat = path.stat()
    return str(path.resolve()), stat.st_size, stat.st_mtime_ns


@functools.lru_cache(maxsize=4)
def _raw_idx(images_key: tuple, labels_key: tuple) -> tuple[torch.Tensor, torch.Tensor]:
    images = read_idx(Path(images_key[0]), 3)
    labels = read_idx(Path(labels_key[0]), 1)
    if images.shape[0] != labels.shape[0]:
        raise DataError(f"{images_key[0]} has {images.shape[0]} images but {labels_key[0]} "
                        f"has {labels.shape[0]} labels")
    return torch.from_numpy(images.copy()).unsqueeze(1), torch.from_numpy(labels.astype(np.int64))


class _TensorCache:
    """Decoded datasets kept per process so repeated loads (tests, metrics, resumed training) are
    instant. Bounded by bytes rather than entries, since one entry can be 60 MB or 3 GB: results
    above the budget are not kept, so a big dataset is never held twice."""

    def __init__(self, budget: int = 1 << 30) -> None:
        self.budget = budget
        self._items: OrderedDict[tuple, tuple[torch.Tensor, torch.Tensor]] = OrderedDict()

    @staticmethod
    def _size(item: tuple[torch.Tensor, torch.Tensor]) -> int:
        return sum(t.numel() * t.element_size() for t in item)

    def get_or_make(self, key: tuple, make: Callable[[], tuple[torch.Tensor, torch.Tensor]]):
        """-> (images, labels) the caller owns (clones of the cached copy, or the fresh result)."""
        if key in self._items:
            self._items.move_to_end(key)
            images, labels = self._items[key]
            return images.clone(), labels.clone()
        item = make()
        size = self._size(item)
        if size > self.budget:
            return item
        while self._items and sum(map(self._size, self._items.values())) + size > self.budget:
            self._items.popitem(last=False)
        self._items[key] = item
        return item[0].clone(), item[1].clone()

    def clear(self) -> None:
        self._items.clear()


_CACHE = _TensorCache()


def _prepare(files: tuple, resolution: int, channels: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    raw_images, raw_labels = _raw_idx(*files)
    images = raw_images[:count]
    # At the native 28×28 nothing is resized: copy, so the raw cache is never handed out.
    images = resize_batch(images, resolution) if resolution != images.shape[-1] else images.clone()
    if channels == 3:
        images = images.expand(-1, 3, -1, -1).contiguous()
    return images, raw_labels[:count].clone()


def _count(total: int, max_images: int | None) -> int:
    if max_images is None:
        return total
    if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
        raise DataError(f"max_images must be a positive integer, got {max_images!r}")
    return min(total, max_images)


def _describe(title: str, count: int, total: int, where: str, native: int, resolution: int) -> str:
    n = f"{count} images" if count == total else f"first {count} of {total} images"
    size = f"{native}×{native}" if native == resolution else f"resized {native}->{resolution}"
    return f"{title} ({n}, {size}) from {where}"


def _load_idx(name: str, split: str | None, resolution: int, channels: int | None,
              max_images: int | None, progress: bool) -> ImageDataset:
    spec = IDX_DATASETS[name]  # looked up per call, so tests can swap mirrors
    split = split or "train"
    if split not in _SPLIT_PREFIX:
        raise DataError(f"unknown split {split!r} for {spec.name}; use {spec.name}:train or {spec.name}:test")
    resolution = check_resolution(resolution, native=28)
    channels = channels or 1
    image_file, label_file = _locate(spec, split, progress)
    files = (_file_key(image_file), _file_key(label_file))
    # The count comes from the idx header (8 decompressed bytes), so the memory guard runs before
    # the images are decompressed and the description states what the file actually holds.
    total = _idx_count(image_file)
    count = _count(total, max_images)
    check_memory(count, channels, resolution, f"{spec.name}:{split}")
    # (path, size, mtime) of the files is part of the key: another GANFORGE_DATA_DIR is never
    # served stale data.
    images, labels = _CACHE.get_or_make(
        (spec.name, split, resolution, channels, count, files),
        lambda: _prepare(files, resolution, channels, count),
    )
    return ImageDataset(
        images=images, labels=labels, class_names=list(spec.class_names),
        source=_describe(f"{spec.title} {split}", count, total, str(image_file.parent), 28, resolution),
    )


for _name in IDX_DATASETS:
    DATASETS.register(_name, functools.partial(_load_idx, _name))


# --------------------------------------------------------------------------- scikit-learn digits

# A fixed split (scikit-learn ships none): every 5th image is held out, so a classifier trained on
# ``digits:train`` is measured on images it never saw. Plain ``digits`` is all 1797 images.
DIGITS_SPLITS = ("train", "test")


def _digits_indices(split: str | None) -> np.ndarray:
    index = np.arange(1797)
    if split == "train":
        return index[index % 5 != 0]
    if split == "test":
        return index[index % 5 == 0]
    return index


def _digits(split: str | None, resolution: int, channels: int, count: int) -> tuple[torch.Tensor, torch.Tensor]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = _digits_indices(split)[:count]
    # Pixel values are 0..16 (counts of set bits in 4×4 blocks); stretch to 0..255.
    images = np.rint(bunch.images[keep] * (255.0 / 16.0)).clip(0, 255).astype(np.uint8)
    tensor = resize_batch(torch.from_numpy(images).unsqueeze(1), resolution)
    if channels == 3:
        tensor = tensor.expand(-1, 3, -1, -1).contiguous()
    return tensor, torch.from_numpy(bunch.target[keep].astype(np.int64))


@DATASETS.register("digits")
def _load_digits(split: str | None, resolution: int, channels: int | None,
                 max_images: int | None, progress: bool) -> ImageDataset:
    if split == "all":
        split = None
    if split not in (None, *DIGITS_SPLITS):
        raise DataError(f"digits has no {split!r} split; use 'digits' (all 1797 images), 'digits:train' "
                        f"(1437) or 'digits:test' (every 5th image, 360)")
    resolution = check_resolution(resolution, native=8)
    channels = channels or 1
    total = len(_digits_indices(split))
    count = _count(total, max_images)
    check_memory(count, channels, resolution, "digits")
    images, labels = _CACHE.get_or_make(("digits", split, resolution, channels, count),
                                        lambda: _digits(split, resolution, channels, count))
    title = "scikit-learn digits" + (f" {split}" if split else "")
    return ImageDataset(
        images=images, labels=labels, class_names=[str(i) for i in range(10)],
        source=_describe(title, count, total, "sklearn.datasets.load_digits", 8, resolution),
    )

"""Batch sources: deterministic, sharded streams of named tensors for the training loop.

A batch is a dict of named tensors (``{"image": x, "label": y}`` for a GAN, ``{"A": a, "B": b}``
for image-to-image data), so a new task names what it needs instead of unpacking a tuple whose
meaning depends on the task. Every source here keeps one contract, which is what makes resume
exact and multi-process training correct:

- batch ``index`` is a function of (seed, the epoch's permutation, index) and of the run's
  checkpointed generator (for crops and flips), nothing else: no iterator state to save;
- the epoch's permutation is drawn from a generator seeded with (seed, epoch), identical on every
  process, and process ``rank`` of ``world`` reads only its own slice of it (disjoint shards);
- images are kept as uint8 (in memory, or on disk for :class:`MemmapBatches`) and converted to
  float in [-1, 1] on the device.

``count_key`` names the tensor whose length counts as "images seen" (None: the first one).
"""

from __future__ import annotations

from typing import Protocol

import torch

from ..errors import DataError, GanforgeError

Batch = dict[str, torch.Tensor]


class BatchSource(Protocol):
    count_key: str | None  # the tensor counted as images seen; None: the batch's first one

    def get(self, index: int, rank: int, world: int, generator: torch.Generator,
            device: torch.device) -> Batch:
        """Batch number ``index`` (a global, checkpointed counter) for this process."""


class EpochShards:
    """Which items batch ``index`` holds for one process: a fresh seeded permutation per epoch,
    cut into ``world`` disjoint slices per batch. The permutation depends on (seed, stream, epoch)
    only, so every process computes the same one without talking to the others."""

    def __init__(self, n: int, batch_size: int, seed: int, stream: int = 0) -> None:
        self.n, self.batch_size, self.seed, self.stream = n, batch_size, seed, stream
        self._epoch, self._perm = -1, None

    def indices(self, index: int, rank: int, world: int) -> torch.Tensor:
        per_epoch = self.n // (self.batch_size * world)
        if per_epoch < 1:
            raise GanforgeError(
                f"the dataset has {self.n} images, fewer than one batch of "
                f"{self.batch_size} x {world} process(es); lower --batch-size")
        epoch, k = divmod(index, per_epoch)
        if epoch != self._epoch:
            # stream 0 keeps the seeding TensorBatches always used (old runs resume unchanged)
            g = torch.Generator().manual_seed(self.seed * 1_000_003 + epoch + self.stream * 7_919_000_007)
            self._perm, self._epoch = torch.randperm(self.n, generator=g), epoch
        start = (k * world + rank) * self.batch_size
        return self._perm[start:start + self.batch_size]


def to_unit_range(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """uint8 [0, 255] -> float [-1, 1] on ``device``."""
    return x.to(device, non_blocking=True).float().div_(127.5).sub_(1.0)


def flip_mask(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    """Which of ``n`` images to flip (bool, p = 0.5 each), from the run's generator."""
    return torch.rand(n, device=device, generator=generator) < 0.5


def apply_flip(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """Flip horizontally the images of N×C×H×W ``x`` where ``flip`` (N bools) is set."""
    return torch.where(flip[:, None, None, None], x.flip(3), x)


def _hw(crop: int | tuple[int, int]) -> tuple[int, int]:
    return (crop, crop) if isinstance(crop, int) else (int(crop[0]), int(crop[1]))


def crop_offsets(n: int, h: int, w: int, crop: int | tuple[int, int],
                 generator: torch.Generator) -> list[tuple[int, int]]:
    """Top-left corners of ``n`` random ``crop``-sized windows, from the run's generator."""
    dev = generator.device
    ch, cw = _hw(crop)
    ys = torch.randint(h - ch + 1, (n,), generator=generator, device=dev).tolist()
    xs = torch.randint(w - cw + 1, (n,), generator=generator, device=dev).tolist()
    return list(zip(ys, xs))


def crop_at(x: torch.Tensor, offsets: list[tuple[int, int]], crop: int | tuple[int, int]) -> torch.Tensor:
    """One ``crop``-sized window per image, at the top-left corners ``offsets`` (:func:`crop_offsets`)."""
    ch, cw = _hw(crop)
    return torch.stack([img[:, y:y + ch, x0:x0 + cw] for img, (y, x0) in zip(x, offsets)])


def check_images(name: str, x: torch.Tensor, crop: int | tuple[int, int] | None) -> None:
    """A DataError unless ``x`` is a uint8 N×C×H×W tensor at least ``crop`` (when given) on each side."""
    if x.dtype != torch.uint8 or x.dim() != 4:
        raise DataError(f"{name} must be a uint8 N×C×H×W tensor, got {x.dtype} with shape {tuple(x.shape)}")
    if crop is not None:
        ch, cw = _hw(crop)
        if ch > x.shape[-2] or cw > x.shape[-1]:
            raise DataError(f"crop {ch}×{cw} is larger than the {name} images ({x.shape[-2]}×{x.shape[-1]})")


def _to_device(x: torch.Tensor, device: torch.device, as_ids: bool) -> torch.Tensor:
    """Images to [-1, 1]; a class-id map (one channel) to int64 N×H×W, values untouched."""
    if as_ids:
        return x[:, 0].to(device, non_blocking=True).long()
    return to_unit_range(x, device)


class TensorBatches:
    """Images and labels from in-memory tensors (the GAN's data): ``{"image", "label"}``, optional
    horizontal flips drawn from the run's generator."""

    count_key = "image"

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int,
                 hflip: bool = False) -> None:
        self.images, self.labels, self.batch_size, self.seed, self.hflip = images, labels, batch_size, seed, hflip
        self.shards = EpochShards(len(images), batch_size, seed)

    def get(self, index, rank, world, generator, device) -> Batch:
        idx = self.shards.indices(index, rank, world)
        x = to_unit_range(self.images[idx], device)
        if self.hflip:
            x = apply_flip(x, flip_mask(len(idx), generator, device))
        return {"image": x, "label": self.labels[idx].to(device)}


class MemmapBatches:
    """Images and labels streamed from disk (a prepared dataset, ``ganforge.data.prepared``):
    the same contract, keys and batches as :class:`TensorBatches` over the same images (the same
    :class:`EpochShards` permutation, the same flips), so training on a prepared dataset is
    identical to training on it in memory. ``store`` has ``len()`` and ``read(indices)`` -> uint8
    k×C×H×W numpy array in the order given (it reads them sorted, contiguous runs coalesced).

    A process reads only its own slice of each batch, and holds only that: memory stays flat as
    the dataset grows. ``prefetch``: one background thread reads this process's next batch
    (index + 1, a pure function of the seed and the permutation) while the current one trains; a
    batch asked for out of order (resume, a reload) is read on the spot."""

    count_key = "image"

    def __init__(self, store, labels: torch.Tensor, batch_size: int, seed: int, hflip: bool = False,
                 prefetch: bool = True) -> None:
        if len(labels) != len(store):
            raise DataError(f"{len(labels)} labels for {len(store)} images")
        self.store, self.labels, self.batch_size, self.seed, self.hflip = store, labels, batch_size, seed, hflip
        self.shards = EpochShards(len(store), batch_size, seed)
        self.prefetch = prefetch
        self._pool = None
        self._pending = None  # ((index, rank, world), future of the uint8 images)

    def _read(self, idx: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(self.store.read(idx.numpy()))

    def get(self, index, rank, world, generator, device) -> Batch:
        idx = self.shards.indices(index, rank, world)
        pending, self._pending = self._pending, None
        if pending is not None and pending[0] == (index, rank, world):
            images = pending[1].result()
        else:
            images = self._read(idx)
        if self.prefetch:
            if self._pool is None:
                from concurrent.futures import ThreadPoolExecutor

                self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ganforge-prefetch")
            following = self.shards.indices(index + 1, rank, world)
            self._pending = ((index + 1, rank, world), self._pool.submit(self._read, following))
        x = to_unit_range(images, device)
        if self.hflip:
            x = apply_flip(x, flip_mask(len(idx), generator, device))
        return {"image": x, "label": self.labels[idx].to(device)}


class PairedBatches:
    """Aligned pairs (pix2pix-style data): item i of ``a`` goes with item i of ``b``, and both get
    the SAME random crop and flip, drawn from the run's generator. ``a`` and ``b`` are uint8
    N×C×H×W with the same N, H and W (channels may differ, e.g. a label map and a photo).
    ``ids_a``: ``a`` holds class ids (a one-channel label map), returned as int64 N×H×W."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, batch_size: int, seed: int, *,
                 crop: int | tuple[int, int] | None = None, hflip: bool = False,
                 keys: tuple[str, str] = ("A", "B"), ids_a: bool = False) -> None:
        check_images(keys[0], a, crop)
        check_images(keys[1], b, crop)
        if len(a) != len(b) or a.shape[-2:] != b.shape[-2:]:
            raise DataError(f"paired data must match: {keys[0]} is {tuple(a.shape)}, {keys[1]} is {tuple(b.shape)}")
        if ids_a and a.shape[1] != 1:
            raise DataError(f"a label map must have one channel of class ids, got {a.shape[1]}")
        self.a, self.b, self.crop, self.hflip, self.keys, self.ids_a = a, b, crop, hflip, keys, ids_a
        self.count_key = keys[0]
        self.shards = EpochShards(len(a), batch_size, seed)

    def get(self, index, rank, world, generator, device) -> Batch:
        idx = self.shards.indices(index, rank, world)
        a, b = self.a[idx], self.b[idx]
        if self.crop is not None:
            offsets = crop_offsets(len(idx), a.shape[-2], a.shape[-1], self.crop, generator)
            a, b = crop_at(a, offsets, self.crop), crop_at(b, offsets, self.crop)
        if self.hflip:  # on uint8, before conversion: class ids are flipped like pixels
            flip = flip_mask(len(idx), generator, device).cpu()
            a, b = apply_flip(a, flip), apply_flip(b, flip)
        return {self.keys[0]: _to_device(a, device, self.ids_a), self.keys[1]: to_unit_range(b, device)}


class UnpairedBatches:
    """Two unrelated domains (CycleGAN-style data): A and B are independent streams, each with its
    own deterministic epoch permutation (so the two may differ in size and never line up by
    accident), and independent random crops and flips."""

    def __init__(self, a: torch.Tensor, b: torch.Tensor, batch_size: int, seed: int, *,
                 crop: int | tuple[int, int] | None = None, hflip: bool = False,
                 keys: tuple[str, str] = ("A", "B")) -> None:
        check_images(keys[0], a, crop)
        check_images(keys[1], b, crop)
        self.data, self.crop, self.hflip, self.keys = (a, b), crop, hflip, keys
        self.count_key = keys[0]
        self.shards = (EpochShards(len(a), batch_size, seed, stream=1), EpochShards(len(b), batch_size, seed, stream=2))

    def get(self, index, rank, world, generator, device) -> Batch:
        out = {}
        for key, x, shards in zip(self.keys, self.data, self.shards):  # always A then B: fixed RNG order
            idx = shards.indices(index, rank, world)
            x = x[idx]
            if self.crop is not None:
                x = crop_at(x, crop_offsets(len(idx), x.shape[-2], x.shape[-1], self.crop, generator), self.crop)
            x = to_unit_range(x, device)
            if self.hflip:
                x = apply_flip(x, flip_mask(len(idx), generator, device))
            out[key] = x
        return out


def batch_size_of(batch: Batch, count_key: str | None = None) -> int:
    """How many images a batch holds: the length of ``count_key`` or of its first tensor."""
    if count_key is not None:
        return int(batch[count_key].shape[0])
    return int(next(iter(batch.values())).shape[0])

"""Reading a prepared dataset (the format :mod:`ganforge.data.prepared` writes): its index, its
``.npy`` header, and :class:`PreparedDataset`, which streams batches of it.

Reads use positional reads (``os.preadv``) of the sorted indices, contiguous runs coalesced, into a
fresh batch buffer, rather than fancy-indexing an ``np.memmap``: both go through the shared page
cache, but mapped pages count in the process's RSS once touched, so a mapping's RSS grows towards
the dataset's size over an epoch while positional reads keep it at one batch (see
benchmarks/bench_data.py). Platforms without ``os.preadv`` fall back to seek + readinto.

Integrity: ``verify="lazy"`` (the default) hashes each chunk the first time this process reads an
image of it, once per process: one extra sequential read of the data per process spread over its
first epoch (sha256 runs at roughly 1-2 GB/s on one core) and one chunk-sized (4 MiB) buffer,
dropped once every chunk is checked.
``verify="all"`` does the same for every chunk when the dataset is opened (the same cost, up
front); ``"none"`` trusts the file. Training takes the mode from ``GANFORGE_PREPARED_VERIFY``
(default lazy): on a CPU without SHA extensions sha256 may run at only ~250 MB/s, i.e. ~4 s of
one core per GB per process. A mismatch raises a one-line ``DataError`` naming the file and
the chunk.
"""

from __future__ import annotations

import hashlib
import json
import os
import threading
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..errors import DataError
from .dataset import ImageDataset, check_memory

FORMAT = "ganforge-prepared"
FORMAT_VERSION = 1
INDEX_FILE = "index.json"
IMAGES_FILE = "images.npy"
VERIFY_MODES = ("lazy", "all", "none")
_PREADV = hasattr(os, "preadv")


def is_prepared(path: str | os.PathLike) -> bool:
    """Whether ``path`` is a prepared dataset directory (has index.json and images.npy)."""
    p = Path(path).expanduser()
    return (p / INDEX_FILE).is_file() and (p / IMAGES_FILE).is_file()


def npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype, int]:
    """(shape, dtype, byte offset of the data) from a .npy header."""
    with open(path, "rb") as f:
        version = np.lib.format.read_magic(f)
        read = np.lib.format.read_array_header_1_0 if version == (1, 0) else np.lib.format.read_array_header_2_0
        shape, fortran, dtype = read(f)
        if fortran:
            raise DataError(f"{path}: Fortran-ordered arrays are not a prepared dataset")
        return tuple(shape), dtype, f.tell()


def read_index(path: Path) -> dict[str, Any]:
    """A prepared dataset directory's index.json, checked for format and version."""
    file = Path(path) / INDEX_FILE
    try:
        index = json.loads(file.read_text())
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        raise DataError(f"{file}: cannot read the prepared dataset's index ({exc})") from None
    if not isinstance(index, dict) or index.get("format") != FORMAT:
        raise DataError(f"{file} is not a ganforge prepared dataset index")
    if index.get("format_version") != FORMAT_VERSION:
        raise DataError(f"{file}: format version {index.get('format_version')} is not {FORMAT_VERSION}; "
                        f"prepare the dataset again with this ganforge")
    return index


class PreparedDataset:
    """A prepared dataset opened for reading: ``len``, ``labels``, ``class_names``, ``channels``,
    ``resolution``, ``source`` (like ``ImageDataset``) and ``read(indices)`` -> uint8 k×C×R×R.
    Safe to read from several threads; a forked process reopens its own file handle."""

    def __init__(self, path: str | os.PathLike, verify: str = "lazy") -> None:
        if verify not in VERIFY_MODES:
            raise ValueError(f"verify must be one of {VERIFY_MODES}, got {verify!r}")
        self.path = Path(path).expanduser()
        self.index = read_index(self.path)
        ix = self.index
        self.images_path = self.path / ix["images_file"]
        try:
            shape, dtype, offset = npy_layout(self.images_path)
        except (OSError, ValueError) as exc:
            raise DataError(f"{self.images_path}: cannot read the array header ({exc})") from None
        n, c, r = ix["count"], ix["channels"], ix["resolution"]
        if shape != (n, c, r, r) or dtype != np.uint8 or offset != ix["data_offset"]:
            raise DataError(f"{self.images_path}: array {shape} {dtype} does not match its index ({n}×{c}×{r}×{r} uint8)")
        self.image_bytes = c * r * r
        size = self.images_path.stat().st_size
        if size != offset + n * self.image_bytes:
            raise DataError(f"{self.images_path}: {size} bytes, expected {offset + n * self.image_bytes} (truncated?)")
        self.offset, self.chunk = offset, ix["chunk_images"]
        self.chunk_sha256 = ix["chunk_sha256"]
        self.verify = verify
        self._n = n
        self.labels = torch.tensor(ix.pop("labels"), dtype=torch.int64)
        self.class_names: list[str] = list(ix["class_names"])
        self.skipped: list[str] = list(ix["source"].get("skipped", []))
        ix["source"].pop("paths", None)  # per-image lists are not kept: memory flat in N (subset() rereads)
        self._lock = threading.Lock()
        self._pid, self._fd, self._verified, self._hash_buf = None, None, set(), None
        if verify == "all":
            self._verify_chunks(range(len(self.chunk_sha256)))

    # ImageDataset's vocabulary
    def __len__(self) -> int:
        return self._n

    @property
    def channels(self) -> int:
        return int(self.index["channels"])

    @property
    def resolution(self) -> int:
        return int(self.index["resolution"])

    @property
    def num_classes(self) -> int:
        return len(self.class_names)

    @property
    def source(self) -> str:
        src = self.index["source"]
        what = f"folder {src['root']}" if src["kind"] == "folder" else src["root"]
        return (f"prepared {self.path.resolve()} (from {what}: {len(self)} images, {self.num_classes} "
                f"class{'es' if self.num_classes != 1 else ''}, {self.channels}×{self.resolution}×{self.resolution})")

    def subset(self, count: int) -> "PreparedDataset":
        """The first ``count`` images (``--max-images``), labelled as the folder loader would label
        just those (classes that do not occur are dropped)."""
        if count >= self._n:
            return self
        sub = object.__new__(PreparedDataset)
        sub.__dict__.update(self.__dict__)
        sub._n, sub._lock, sub._pid, sub._fd, sub._verified, sub._hash_buf = count, threading.Lock(), None, None, set(), None
        src = self.index["source"]
        if src["kind"] == "folder":
            from .folder import folder_labels

            root = Path(src["root"])
            paths = read_index(self.path)["source"]["paths"][:count]
            sub.class_names, labels = folder_labels(root, [root / p for p in paths])
            sub.labels = torch.tensor(labels, dtype=torch.int64)
        else:
            sub.labels = self.labels[:count].clone()
        return sub

    # --- reading ---
    def _file(self) -> int:
        if self._pid != os.getpid():  # first use in this process (or after a fork)
            self._fd = os.open(self.images_path, os.O_RDONLY | getattr(os, "O_BINARY", 0))
            self._pid, self._verified = os.getpid(), set()
        return self._fd

    def _pread(self, buf: memoryview, offset: int) -> None:
        fd = self._file()
        if _PREADV:
            got = os.preadv(fd, (buf,), offset)
            if got == len(buf):
                return
            done = got  # a short read: finish below
        else:
            done = 0
        while done < len(buf):
            if _PREADV:
                got = os.preadv(fd, [buf[done:]], offset + done)
            else:  # no positional reads (Windows): serialise seek + read
                with self._lock:
                    os.lseek(fd, offset + done, os.SEEK_SET)
                    data = os.read(fd, len(buf) - done)
                got = len(data)
                buf[done:done + got] = data
            if got == 0:
                raise DataError(f"{self.images_path}: unexpected end of file (truncated?)")
            done += got

    def _verify_chunks(self, chunks) -> None:
        self._file()
        todo = [c for c in chunks if c not in self._verified]
        if not todo:
            return
        with self._lock:
            if self._hash_buf is None:
                self._hash_buf = np.empty(self.chunk * self.image_bytes, dtype=np.uint8)
            buf = self._hash_buf
            for c in todo:
                if c in self._verified:
                    continue
                count = self.index["count"]
                a, b = c * self.chunk, min(count, (c + 1) * self.chunk)
                view = memoryview(buf)[:(b - a) * self.image_bytes]
                self._pread(view, self.offset + a * self.image_bytes)
                if hashlib.sha256(view).hexdigest() != self.chunk_sha256[c]:
                    raise DataError(f"{self.images_path}: chunk {c} (images {a}-{b - 1}) fails its sha256 check; "
                                    f"the prepared dataset is corrupt: delete {self.path} and prepare it again")
                self._verified.add(c)
            if len(self._verified) == len(self.chunk_sha256):
                self._hash_buf = None  # all checked: nothing more to hash in this process

    def read(self, indices) -> np.ndarray:
        """uint8 k×C×R×R for ``indices`` (in the order given), read in sorted order with contiguous
        runs coalesced into one read each."""
        idx = np.asarray(indices, dtype=np.int64).reshape(-1)
        if idx.size and (idx.min() < 0 or idx.max() >= self._n):
            raise IndexError(f"index out of range for a prepared dataset of {self._n} images")
        order = np.argsort(idx, kind="stable")
        sorted_idx = idx[order]
        if self.verify == "lazy":
            self._verify_chunks(sorted(set((sorted_idx // self.chunk).tolist())))
        c, r = self.channels, self.resolution
        out = np.empty((len(idx), c, r, r), dtype=np.uint8)
        # out is filled in sorted order; position j of the sorted run goes to out row order[j]
        tmp = out if np.array_equal(order, np.arange(len(idx))) else np.empty_like(out)
        flat = memoryview(tmp.reshape(-1))
        size = self.image_bytes
        breaks = (np.flatnonzero(np.diff(sorted_idx) != 1) + 1).tolist()
        for start, end in zip([0] + breaks, breaks + [len(sorted_idx)]):  # one read per contiguous run
            if end > start:
                self._pread(flat[start * size:end * size], self.offset + int(sorted_idx[start]) * size)
        if tmp is not out:
            out[order] = tmp
        return out

    def to_image_dataset(self) -> ImageDataset:
        """Everything in memory (the metrics' reference images; subject to the memory cap)."""
        check_memory(len(self), self.channels, self.resolution, str(self.path))
        images = torch.from_numpy(self.read(np.arange(len(self))))
        return ImageDataset(images=images, labels=self.labels.clone(), class_names=list(self.class_names),
                            source=self.source, skipped=list(self.skipped))

    def __del__(self) -> None:
        fd = getattr(self, "_fd", None)
        if fd is not None and getattr(self, "_pid", None) == os.getpid():
            try:
                os.close(fd)
            except OSError:
                pass


def open_prepared(path: str | os.PathLike, *, verify: str = "lazy") -> PreparedDataset:
    """Open the prepared dataset directory ``path`` (see the module docstring for ``verify``)."""
    return PreparedDataset(path, verify=verify)

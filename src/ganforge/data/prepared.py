"""Prepared datasets: decode and resize a folder once into a file that streams.

``prepare_dataset(folder, out, resolution=R)`` writes a directory (format version 1):

- ``images.npy``: every image as uint8 N×C×R×R in NumPy's ``.npy`` format (a small header, then
  the raw pixels in C order), written with ``np.lib.format.open_memmap`` under a temporary name
  and renamed into place when complete;
- ``captions.json`` (when the folder has captions: ``ganforge.text.captions``), keyed by the
  source paths ``index.json`` lists;
- ``index.json``: labels, class names, source paths (relative to the source folder), skipped
  files, resolution, channels, format version, the sha256 of the sorted source listing with sizes
  and mtimes (the cache key's fingerprint), the pixel data's byte offset and a sha256 per chunk of
  ``chunk_images`` images (about ``CHUNK_BYTES``).

The pixels are made by the folder loader's own decode and resize (``folder._decode``: same
mode rules, ``resize_center_crop``) and the same class/label rules (``folder.folder_labels``), so a
prepared dataset holds exactly the pixels ``load_dataset`` would hold in memory.

Why one memory-mappable array (rather than uint8 shards or WebDataset tar shards):

- the batch contract needs random access: batch k is a slice of a seeded per-epoch permutation of
  *all* images. Image i lives at ``offset + i·C·R·R``, one positional read away; tar shards are
  sequential and would need a shuffle buffer, which breaks "batch k is a function of (seed,
  permutation, k)" and so bit-exact resume;
- no decoding at training time, so no worker pool (nor its per-worker copies and start-up): one
  background thread reads the next batch while the current one trains;
- the pages live in the OS page cache, shared by every process on the machine (8 ranks on a node
  read one cached copy, not 8 private tensors), and a process holds only the batch it reads, so
  memory stays flat as the dataset grows; size is bounded by disk, not by the 4 GiB in-memory cap;
- it is plain ``.npy``: ``np.load(path, mmap_mode="r")`` opens it anywhere.

Reading (positional reads, lazy chunk verification) is :mod:`.prepared_dataset`'s; this module
writes the format and finds or builds the prepared copy that training streams.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import time
import uuid
import warnings
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Callable, ContextManager

import numpy as np

from ..errors import DataError
from .dataset import check_channels, check_resolution
from .prepared_dataset import (FORMAT, FORMAT_VERSION, IMAGES_FILE, INDEX_FILE,  # noqa: F401 (re-exported)
                               VERIFY_MODES, PreparedDataset, is_prepared, npy_layout, open_prepared, read_index)

CHUNK_BYTES = 4 << 20  # pixels per checksum chunk (rounded to whole images)
PREPARE_ENV = "GANFORGE_PREPARE"  # "0": train on raw folders in memory, as before
VERIFY_ENV = "GANFORGE_PREPARED_VERIFY"  # lazy (default) | all | none, for training's reads


# --- the source: listing, fingerprint, cache key ---------------------------------------------------

def folder_fingerprint(root: Path) -> tuple[str, list[Path]]:
    """(sha256 of the sorted relative paths with sizes and mtimes, the image files) of ``root``:
    what changes when a file is added, removed, renamed, rewritten or touched."""
    from .folder import list_images

    files, others = list_images(root)
    h = hashlib.sha256()
    for f in files + _caption_files(root, files, others):
        try:
            st = f.stat()
            size, mtime = st.st_size, st.st_mtime_ns
        except OSError:  # a dangling link: listed (and skipped when decoded), never fatal here
            size, mtime = -1, -1
        h.update(f"{f.relative_to(root).as_posix()}\t{size}\t{mtime}\n".encode())
    return h.hexdigest(), files


def _caption_files(root: Path, files: list[Path], others: list[Path]) -> list[Path]:
    """The caption sources among ``others`` (x.txt beside an image x.*, a root metadata.jsonl/.csv),
    so editing a caption rebuilds a cached prepared copy; a folder without any hashes as before."""
    from ..text.captions import METADATA_FILES, SIDECAR_SUFFIX

    stems = {f.with_suffix("") for f in files}
    return [o for o in others if (o.suffix == SIDECAR_SUFFIX and o.with_suffix("") in stems)
            or (o.parent == root and o.name in METADATA_FILES)]


def _keep_captions(root: Path, folder: Path) -> None:
    """Write ``folder/captions.json`` when ``root`` has captions (``load_captions`` reads it back)."""
    from ..text.captions import has_captions, read_captions, write_captions

    if has_captions(root):
        write_captions(folder, read_captions(root))


def cache_key(fingerprint: str, resolution: int, channels: int | None, max_images: int | None) -> str:
    text = json.dumps({"fingerprint": fingerprint, "resolution": resolution, "channels": channels,
                       "max_images": max_images, "format_version": FORMAT_VERSION}, sort_keys=True)
    return hashlib.sha256(text.encode()).hexdigest()


def _builtin_name(source: str | os.PathLike) -> str | None:
    from .builtin import parse_builtin

    if isinstance(source, Path):
        return None
    found = parse_builtin(os.fspath(source))
    return None if found is None else os.fspath(source).strip().lower()


# --- writing -----------------------------------------------------------------------------------------

def _chunk_images(image_bytes: int) -> int:
    return max(1, CHUNK_BYTES // image_bytes)


def _hash_chunks(path: Path, offset: int, count: int, image_bytes: int, chunk: int) -> list[str]:
    out = []
    with open(path, "rb") as f:
        f.seek(offset)
        for start in range(0, count, chunk):
            remaining = (min(count, start + chunk) - start) * image_bytes
            h = hashlib.sha256()
            while remaining:
                block = f.read(min(remaining, 4 << 20))
                if not block:
                    raise DataError(f"{path}: truncated while hashing")
                h.update(block)
                remaining -= len(block)
            out.append(h.hexdigest())
    return out


def _check_disk(folder: Path, needed: int) -> None:
    free = shutil.disk_usage(folder).free
    if needed > free:
        raise DataError(f"preparing needs {needed / 2**30:.2f} GiB in {folder}, only {free / 2**30:.2f} GiB free")


def _write_folder(root: Path, tmp: Path, files: list[Path], resolution: int, channels: int | None,
                  max_images: int | None, progress: bool) -> dict[str, Any]:
    from PIL import Image
    from tqdm.auto import tqdm

    from .folder import GRAY_MODES, _decode, _workers, folder_labels

    want = len(files) if max_images is None else min(max_images, len(files))
    with ThreadPoolExecutor(max_workers=_workers()) as pool:
        if channels is None:  # the array needs its channels before decoding: probe headers (cheap)
            def gray(p: Path) -> bool:
                try:
                    with Image.open(p) as probe:
                        return probe.mode in GRAY_MODES
                except Exception:  # noqa: BLE001 -- unreadable: skipped when decoded, decides nothing
                    return True
            alloc_c = 1 if all(pool.map(gray, files)) else 3
        else:
            alloc_c = channels
        _check_disk(tmp, want * alloc_c * resolution * resolution)
        path = tmp / IMAGES_FILE
        mm = np.lib.format.open_memmap(path, mode="w+", dtype=np.uint8, shape=(want, alloc_c, resolution, resolution))
        kept: list[Path] = []
        gray_flags: list[bool] = []
        skipped: list[tuple[Path, str]] = []
        position = 0
        with tqdm(total=want, unit="img", desc=f"preparing {root.name or root}", disable=not progress) as bar:
            # as load_folder: with max_images, unreadable files are replaced by the next ones in order
            while len(kept) < want and position < len(files):
                batch = files[position:position + min(want - len(kept), 1024)]
                position += len(batch)
                for p, (arr, is_gray, error) in zip(batch, pool.map(lambda f: _decode(f, channels, resolution), batch)):
                    if arr is None:
                        skipped.append((p, error))
                        continue
                    if arr.shape[2] > alloc_c:  # cannot happen: the header probe saw the same mode
                        raise DataError(f"{p}: decoded with {arr.shape[2]} channels into a {alloc_c}-channel array")
                    mm[len(kept)] = arr.transpose(2, 0, 1)  # a 1-channel image broadcasts to 3 (as expand)
                    kept.append(p)
                    gray_flags.append(is_gray)
                    bar.update(1)
    if skipped:
        first, why = skipped[0]
        warnings.warn(f"skipped {len(skipped)} unreadable file(s) in {root} (first: {first}: {why})", stacklevel=3)
    if not kept:
        del mm
        first, why = skipped[0]
        raise DataError(f"none of the {len(skipped)} image file(s) in {root} could be read (first: {first}: {why})")
    n = len(kept)
    out_c = channels or (1 if all(gray_flags) else 3)
    if n < want or out_c != alloc_c:  # unreadable files (or a 3-channel guess for all-gray data): compact
        compact = np.lib.format.open_memmap(tmp / "compact.npy", mode="w+", dtype=np.uint8,
                                            shape=(n, out_c, resolution, resolution))
        step = _chunk_images(alloc_c * resolution * resolution)
        for a in range(0, n, step):  # gray images were broadcast: channel 0 is their L values
            b = min(n, a + step)
            compact[a:b] = mm[a:b, :out_c]
        compact.flush()
        del compact, mm
        os.replace(tmp / "compact.npy", path)
    else:
        mm.flush()
        del mm
    class_names, labels = folder_labels(root, kept)
    return {"labels": labels, "class_names": class_names,
            "source": {"kind": "folder", "root": str(root.resolve()),
                       "paths": [p.relative_to(root).as_posix() for p in kept],
                       "skipped": [p.relative_to(root).as_posix() for p, _ in skipped],
                       "listed": len(files)}}


def _write_builtin(name: str, tmp: Path, resolution: int, channels: int | None, max_images: int | None,
                   progress: bool) -> dict[str, Any]:
    from .builtin import load_builtin

    ds = load_builtin(name, resolution=resolution, channels=channels, max_images=max_images, progress=progress)
    _check_disk(tmp, ds.images.numel())
    mm = np.lib.format.open_memmap(tmp / IMAGES_FILE, mode="w+", dtype=np.uint8, shape=tuple(ds.images.shape))
    mm[:] = ds.images.numpy()
    mm.flush()
    del mm
    return {"labels": ds.labels.tolist(), "class_names": list(ds.class_names),
            "source": {"kind": "builtin", "root": name, "paths": [], "skipped": [], "description": ds.source}}


def prepare_dataset(folder_or_builtin: str | os.PathLike, out: str | os.PathLike, *, resolution: int,
                    channels: int | None = None, progress: bool = True, max_images: int | None = None,
                    _listing: tuple[str, list[Path]] | None = None) -> Path:
    """Decode and resize ``folder_or_builtin`` (a folder of images, or a built-in name such as
    ``mnist``) once into the prepared dataset directory ``out``; returns ``out``.

    Same rules as ``load_dataset`` (classes from subfolders, unreadable files skipped with a
    warning, native channels, ``max_images`` keeps the first N readable images). ``out`` is built
    under a temporary name and renamed into place, so it is either complete or absent. An ``out``
    that is already a prepared dataset of the same source listing and options is returned as is;
    one of another source or options is replaced; any other non-empty ``out`` is refused."""
    channels = check_channels(channels)
    out = Path(out).expanduser()
    builtin = _builtin_name(folder_or_builtin)
    if builtin is not None:
        fingerprint = hashlib.sha256(f"builtin:{builtin}".encode()).hexdigest()
        files: list[Path] = []
        root = None
    else:
        from .folder import require_folder

        root = require_folder(folder_or_builtin)
        resolution = check_resolution(resolution)
        fingerprint, files = _listing or folder_fingerprint(root)
        if not files:
            from ..imageio import IMAGE_SUFFIXES

            raise DataError(f"no images in {root} (looked recursively for {', '.join(IMAGE_SUFFIXES)})")
    if max_images is not None and (isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1):
        raise DataError(f"max_images must be a positive integer, got {max_images!r}")
    key = cache_key(fingerprint, resolution, channels, max_images)
    if is_prepared(out):
        try:
            if read_index(out).get("key") == key:
                return out
        except DataError:
            pass  # unreadable index: rebuilt below
    elif out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise DataError(f"{out} exists and is not a prepared dataset; choose another --out")
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    tmp.mkdir()
    t0 = time.perf_counter()
    try:
        if builtin is not None:
            body = _write_builtin(builtin, tmp, resolution, channels, max_images, progress)
        else:
            body = _write_folder(root, tmp, files, resolution, channels, max_images, progress)
            _keep_captions(root, tmp)
        write_index(tmp, body, fingerprint=fingerprint, key=key, seconds=time.perf_counter() - t0,
                    options={"resolution": resolution, "channels": channels, "max_images": max_images})
        _swap_in(tmp, out, key)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out


def write_index(folder: Path, body: dict[str, Any], *, fingerprint: str, key: str, options: dict[str, Any],
                seconds: float = 0.0) -> dict[str, Any]:
    """Hash ``folder/images.npy`` chunk by chunk and write ``folder/index.json`` (``body``: labels,
    class_names, source). Used by ``prepare_dataset`` and by tools that fill images.npy themselves
    (benchmarks/bench_data.py writes synthetic pixels straight into the array)."""
    from ..version import __version__

    shape, _, offset = npy_layout(folder / IMAGES_FILE)
    n, c, r, _ = shape
    image_bytes = c * r * r
    chunk = _chunk_images(image_bytes)
    index = {"format": FORMAT, "format_version": FORMAT_VERSION, "images_file": IMAGES_FILE,
             "count": n, "channels": c, "resolution": r, "dtype": "uint8", "layout": "NCHW",
             "data_offset": offset, "chunk_images": chunk,
             "chunk_sha256": _hash_chunks(folder / IMAGES_FILE, offset, n, image_bytes, chunk),
             "source_sha256": fingerprint, "key": key, "options": options,
             "prepare_seconds": round(seconds, 3), "ganforge_version": __version__, **body}
    (folder / INDEX_FILE).write_text(json.dumps(index) + "\n")
    return index


def _swap_in(tmp: Path, out: Path, key: str) -> None:
    """Rename the finished ``tmp`` to ``out`` (replacing an older prepared dataset there)."""
    old = None
    if out.exists() and any(out.iterdir()):
        old = out.parent / f".{out.name}.old-{os.getpid()}-{uuid.uuid4().hex[:8]}"
        os.rename(out, old)  # readers holding its file open keep reading the old inode
    try:
        os.rename(tmp, out)
    except OSError:  # another process finished the same build first: keep theirs if it is ours
        if not (is_prepared(out) and read_index(out).get("key") == key):
            raise
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


# --- training's entry point: explicit prepared datasets and the automatic cache ----------------------

def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9._-]+", "_", name)[:40] or "folder"


def cached_prepared(folder: str | os.PathLike, *, resolution: int, channels: int | None = None,
                    max_images: int | None = None, progress: bool = True) -> Path:
    """The prepared copy of ``folder`` in the cache (``ganforge.paths.cache_dir('datasets')/prepared``),
    built on first use and rebuilt when the folder's listing (paths, sizes, mtimes) or the options
    change; older copies of the same folder with the same options are removed."""
    from ..paths import cache_dir
    from .folder import require_folder

    root = require_folder(folder)
    channels = check_channels(channels)
    resolution = check_resolution(resolution)
    listing = folder_fingerprint(root)
    key = cache_key(listing[0], resolution, channels, max_images)
    base = cache_dir("datasets") / "prepared"
    out = base / f"{_slug(root.resolve().name)}-{key[:16]}"
    if is_prepared(out):
        try:
            if read_index(out).get("key") == key:
                return out
        except DataError:
            pass
    prepare_dataset(root, out, resolution=resolution, channels=channels, progress=progress,
                    max_images=max_images, _listing=listing)
    options = {"resolution": resolution, "channels": channels, "max_images": max_images}
    for other in base.iterdir():  # the same folder and options, an older listing: stale
        if other == out or other.name.startswith(".") or not is_prepared(other):
            continue
        try:
            ix = read_index(other)
        except DataError:
            continue
        if ix["source"].get("root") == str(root.resolve()) and ix.get("options") == options:
            shutil.rmtree(other, ignore_errors=True)
    return out


def open_training_data(source: str | os.PathLike, *, resolution: int, channels: int | None = None,
                       max_images: int | None = None, progress: bool = True,
                       first: Callable[[], ContextManager] | None = None) -> PreparedDataset | None:
    """What ``train_gan`` streams from: a prepared dataset directory as is, a raw folder through
    the cache (unless ``GANFORGE_PREPARE=0``); None for a built-in name (kept in memory) or a
    path that is neither (``load_dataset`` then gives its own error). ``first``: a context manager
    under which the cache is built (one process per machine first, the others then find it)."""
    channels = check_channels(channels)
    if _builtin_name(source) is not None:
        return None
    verify = os.environ.get(VERIFY_ENV, "").strip().lower() or "lazy"
    if verify not in VERIFY_MODES:
        raise DataError(f"{VERIFY_ENV} must be one of {', '.join(VERIFY_MODES)}, got {verify!r}")
    path = Path(os.fspath(source)).expanduser()
    if is_prepared(path):
        ds = open_prepared(path, verify=verify)
        if ds.resolution != resolution:
            raise DataError(f"{path} was prepared at {ds.resolution}×{ds.resolution}; train it with "
                            f"--resolution {ds.resolution} or prepare it again with --resolution {resolution}")
        if channels is not None and channels != ds.channels:
            raise DataError(f"{path} was prepared with {ds.channels} channel(s), not {channels}; "
                            f"prepare it again with --channels {channels}")
        if max_images is not None:
            if isinstance(max_images, bool) or not isinstance(max_images, int) or max_images < 1:
                raise DataError(f"max_images must be a positive integer, got {max_images!r}")
            ds = ds.subset(max_images)
        return ds
    if not path.is_dir() or os.environ.get(PREPARE_ENV, "1").strip() == "0":
        return None
    with (first or nullcontext)():
        out = cached_prepared(path, resolution=resolution, channels=channels, max_images=max_images,
                              progress=progress)
    return open_prepared(out, verify=verify)

"""Prepared (streamed) datasets: the same pixels and batches as the in-memory path, training and
bit-exact resume on them, corruption caught per chunk, the cache rebuilt when a folder changes,
disjoint reads per process."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganforge
from ganforge.data import load_dataset
from ganforge.data import prepared as prep
from ganforge.errors import DataError
from ganforge.train import checkpoint
from ganforge.train.batches import MemmapBatches, TensorBatches

CPU = torch.device("cpu")
TINY = dict(resolution=16, width=8, batch_size=8, log_every=1, sample_every=0, progress=False, tensorboard=False)


def _folder(root: Path, n: int = 12, classes=("cat", "dog"), gray_every: int = 0, seed: int = 0) -> Path:
    """``n`` small random images per class, odd sizes (resize + crop at work); with
    ``gray_every``, every k-th one is grayscale."""
    rng = np.random.default_rng(seed)
    for c in classes:
        (root / c).mkdir(parents=True, exist_ok=True)
        for i in range(n):
            h, w = 18 + i % 5, 22 + i % 3
            if gray_every and i % gray_every == 0:
                Image.fromarray(rng.integers(0, 256, (h, w), dtype=np.uint8), "L").save(root / c / f"{i:03d}.png")
            else:
                Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(root / c / f"{i:03d}.png")
    return root


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


@pytest.mark.parametrize("channels", [None, 1, 3])
def test_prepared_pixels_labels_match_the_in_memory_loader(tmp_path, channels):
    src = _folder(tmp_path / "src", n=6, gray_every=3)
    Image.fromarray(np.full((20, 20, 3), 7, np.uint8)).save(src / "loose.png")  # a root image: class "."
    (src / "dog" / "broken.png").write_bytes(b"not a png")
    with pytest.warns(UserWarning, match="skipped 1 unreadable"):
        out = prep.prepare_dataset(src, tmp_path / "ds", resolution=16, channels=channels, progress=False)
    with pytest.warns(UserWarning):
        mem = load_dataset(src, resolution=16, channels=channels, progress=False)
    ds = prep.open_prepared(out, verify="all")
    assert len(ds) == len(mem) == 13 and ds.channels == mem.channels
    assert torch.equal(torch.from_numpy(ds.read(np.arange(len(ds)))), mem.images)
    assert torch.equal(ds.labels, mem.labels) and ds.class_names == mem.class_names == [".", "cat", "dog"]
    assert ds.skipped == ["dog/broken.png"]
    # random order in, same order out (read sorts internally)
    order = [9, 2, 2, 12, 0]
    assert torch.equal(torch.from_numpy(ds.read(order)), mem.images[order])
    # load_dataset reads a prepared directory back, and --max-images labels like the folder loader
    assert torch.equal(load_dataset(out, resolution=16, progress=False).images, mem.images)
    sub = load_dataset(out, resolution=16, max_images=4, progress=False)
    ref = load_dataset(src, resolution=16, channels=channels, max_images=4, progress=False)
    assert torch.equal(sub.images, ref.images) and torch.equal(sub.labels, ref.labels)
    assert sub.class_names == ref.class_names == ["cat"]


def test_all_gray_folder_is_one_channel_and_index_is_complete(tmp_path):
    src = _folder(tmp_path / "src", n=3, gray_every=1)
    out = prep.prepare_dataset(src, tmp_path / "ds", resolution=8, progress=False)
    index = json.loads((out / "index.json").read_text())
    assert index["channels"] == 1 and index["format_version"] == prep.FORMAT_VERSION
    assert index["source"]["paths"][0] == "cat/000.png" and len(index["chunk_sha256"]) == 1
    assert index["source_sha256"] == prep.folder_fingerprint(src)[0]
    assert np.load(out / "images.npy", mmap_mode="r").shape == (6, 1, 8, 8)  # plain .npy
    # preparing again into the same place is a no-op; a non-dataset folder is refused
    before = (out / "images.npy").stat().st_mtime_ns
    prep.prepare_dataset(src, out, resolution=8, progress=False)
    assert (out / "images.npy").stat().st_mtime_ns == before
    with pytest.raises(DataError, match="not a prepared dataset"):
        prep.prepare_dataset(src, src, resolution=8, progress=False)
    with pytest.raises(DataError, match="prepared at 8×8"):
        load_dataset(out, resolution=16, progress=False)


class _Recorder:
    """A store that records which indices each read asked for."""

    def __init__(self, store):
        self.store, self.reads = store, []

    def __len__(self):
        return len(self.store)

    def read(self, idx):
        self.reads.append(np.asarray(idx).tolist())
        return self.store.read(idx)


@pytest.mark.parametrize("world", [1, 2])
def test_memmap_batches_equal_tensor_batches(tmp_path, world):
    src = _folder(tmp_path / "src", n=10)
    ds = prep.open_prepared(prep.prepare_dataset(src, tmp_path / "ds", resolution=8, progress=False))
    images = torch.from_numpy(ds.read(np.arange(len(ds))))
    mem = TensorBatches(images, ds.labels, batch_size=4, seed=3, hflip=True)
    disk = MemmapBatches(ds, ds.labels, batch_size=4, seed=3, hflip=True)
    g1, g2 = _gen(1), _gen(1)
    for index in [0, 1, 2, 3, 2, 7, 8]:  # epoch boundaries, a batch asked again, a jump (resume)
        for rank in range(world):
            a, b = mem.get(index, rank, world, g1, CPU), disk.get(index, rank, world, g2, CPU)
            assert set(a) == set(b) == {"image", "label"}
            assert torch.equal(a["image"], b["image"]) and torch.equal(a["label"], b["label"])


def test_two_processes_read_disjoint_samples(tmp_path):
    src = _folder(tmp_path / "src", n=8)
    ds = prep.open_prepared(prep.prepare_dataset(src, tmp_path / "ds", resolution=8, progress=False))
    ranks = [_Recorder(ds), _Recorder(ds)]
    sources = [MemmapBatches(r, ds.labels, batch_size=2, seed=0, prefetch=False) for r in ranks]
    per_epoch = len(ds) // (2 * 2)
    seen: list[set[int]] = [set(), set()]
    for index in range(per_epoch):  # one epoch
        for rank in (0, 1):
            batch = sources[rank].get(index, rank, 2, _gen(), CPU)
            read = ranks[rank].reads[-1]
            assert len(read) == 2 and batch["image"].shape[0] == 2  # only its own slice
            seen[rank].update(read)
        assert not set(ranks[0].reads[-1]) & set(ranks[1].reads[-1])
    assert not seen[0] & seen[1]  # disjoint over the epoch too
    assert len(seen[0]) + len(seen[1]) == per_epoch * 4  # and no image twice
    # the union of the two shards is the batch a single process with twice the batch would see
    one = MemmapBatches(ds, ds.labels, batch_size=2, seed=0, prefetch=False)
    assert sorted(one.shards.indices(0, 0, 2).tolist() + one.shards.indices(0, 1, 2).tolist()) \
        == sorted(ranks[0].reads[0] + ranks[1].reads[0])


def test_corrupted_chunk_gives_a_one_line_error(tmp_path, monkeypatch):
    monkeypatch.setattr(prep, "CHUNK_BYTES", 3 * 8 * 8 * 4)  # 4 images per chunk
    src = _folder(tmp_path / "src", n=8)
    out = prep.prepare_dataset(src, tmp_path / "ds", resolution=8, progress=False)
    ds = prep.open_prepared(out)
    assert len(ds.chunk_sha256) == 4
    with open(out / "images.npy", "r+b") as f:  # flip one byte of image 9 (chunk 2)
        f.seek(ds.offset + 9 * ds.image_bytes + 5)
        value = f.read(1)[0]
        f.seek(-1, os.SEEK_CUR)
        f.write(bytes([value ^ 0xFF]))
    lazy = prep.open_prepared(out)
    lazy.read([0, 1, 15])  # chunks 0 and 3 are fine: verified lazily, on first touch
    with pytest.raises(DataError) as err:
        lazy.read([2, 9])
    message = str(err.value)
    assert "\n" not in message and "images.npy" in message and "chunk 2 (images 8-11)" in message
    with pytest.raises(DataError, match="chunk 2"):
        prep.open_prepared(out, verify="all")
    batches = MemmapBatches(prep.open_prepared(out), ds.labels, batch_size=16, seed=0)
    with pytest.raises(DataError, match="sha256"):
        batches.get(0, 0, 1, _gen(), CPU)
    monkeypatch.setenv(prep.VERIFY_ENV, "none")  # training's switch: trust the file
    assert prep.open_training_data(out, resolution=8).read([9]).shape == (1, 3, 8, 8)
    monkeypatch.setenv(prep.VERIFY_ENV, "sometimes")
    with pytest.raises(DataError, match="GANFORGE_PREPARED_VERIFY"):
        prep.open_training_data(out, resolution=8)
    with open(out / "images.npy", "r+b") as f:  # a truncated file is refused at open
        f.truncate(ds.offset + 10 * ds.image_bytes)
    with pytest.raises(DataError, match="truncated"):
        prep.open_prepared(out)


def test_cache_is_reused_and_rebuilt_when_the_folder_changes(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    src = _folder(tmp_path / "src", n=3)
    first = prep.cached_prepared(src, resolution=8, progress=False)
    assert first.parent == tmp_path / "home" / "datasets" / "prepared" and len(prep.open_prepared(first)) == 6
    stamp = (first / "index.json").stat().st_mtime_ns
    assert prep.cached_prepared(src, resolution=8, progress=False) == first  # second run: nothing to do
    assert (first / "index.json").stat().st_mtime_ns == stamp
    other = prep.cached_prepared(src, resolution=16, progress=False)  # other options: another entry
    assert other != first and first.exists()
    Image.fromarray(np.zeros((9, 9, 3), np.uint8)).save(src / "cat" / "new.png")  # a new file
    second = prep.cached_prepared(src, resolution=8, progress=False)
    assert second != first and not first.exists() and len(prep.open_prepared(second)) == 7
    path = src / "dog" / "001.png"  # same name and size, new content and mtime
    Image.fromarray(np.full((19, 22, 3), 200, np.uint8)).save(path)
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    third = prep.cached_prepared(src, resolution=8, progress=False)
    assert third != second and not second.exists() and other.exists()
    mem = load_dataset(src, resolution=8, progress=False)
    assert torch.equal(torch.from_numpy(prep.open_prepared(third).read(np.arange(7))), mem.images)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.list_checkpoints(run / "checkpoints")[-1] / "weights.safetensors"))


def _same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_prepare_train_resume_bit_exact(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    src = _folder(tmp_path / "src", n=12)
    from ganforge.cli import main

    assert main(["data", "prepare", str(src), "--resolution", "16", "--out", str(tmp_path / "ds"),
                 "--quiet", "--json", str(tmp_path / "prep.json")]) == 0
    assert json.loads((tmp_path / "prep.json").read_text())["images"] == 24
    opts = dict(TINY, data=str(tmp_path / "ds"), conditional=True, hflip=True, ckpt_every=2)
    straight = ganforge.train_gan(ganforge.GanConfig(**opts, steps=4), out=tmp_path / "straight")
    assert straight["data_source"].startswith("prepared ")
    ganforge.train_gan(ganforge.GanConfig(**opts, steps=2), out=tmp_path / "split")
    resumed = ganforge.train_gan(ganforge.GanConfig(**opts, steps=4), out=tmp_path / "split")
    assert resumed["resumed_from"] == 2
    assert _same(_weights(tmp_path / "straight"), _weights(tmp_path / "split"))


def test_raw_folder_trains_through_the_cache_like_in_memory(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    src = _folder(tmp_path / "src", n=12)
    opts = dict(TINY, data=str(src), hflip=True, steps=3, ckpt_every=3)
    cached = ganforge.train_gan(ganforge.GanConfig(**opts), out=tmp_path / "cached")
    assert cached["data_source"].startswith("prepared ") and len(list((tmp_path / "home" / "datasets" / "prepared").iterdir())) == 1
    monkeypatch.setenv(prep.PREPARE_ENV, "0")  # the old in-memory path
    memory = ganforge.train_gan(ganforge.GanConfig(**opts), out=tmp_path / "memory")
    assert memory["data_source"].startswith("folder ")
    assert _same(_weights(tmp_path / "cached"), _weights(tmp_path / "memory"))


def test_evaluation_reference_reads_only_its_chosen_images(tmp_path, monkeypatch):
    """A folder (through the training cache) or a prepared dataset as the FID reference: only the
    n seeded choices are read from disk, and they equal the in-memory path's images and labels."""
    from ganforge.metrics.evaluation import load_source

    root = _folder(tmp_path / "imgs", n=12)
    monkeypatch.setenv("GANFORGE_PREPARE", "0")
    memory = load_source(str(root), n=5, seed=3, resolution=16, progress=False)
    monkeypatch.delenv("GANFORGE_PREPARE")
    reads = []
    read = prep.PreparedDataset.read
    monkeypatch.setattr(prep.PreparedDataset, "read", lambda self, idx: reads.append(len(idx)) or read(self, idx))
    streamed = load_source(str(root), n=5, seed=3, resolution=16, progress=False)
    assert reads == [5]
    assert torch.equal(streamed.images, memory.images) and torch.equal(streamed.labels, memory.labels)
    assert streamed.info["subset"] == memory.info["subset"] == "5 of 24, seeded randperm seed=3"
    prep.prepare_dataset(root, tmp_path / "prepared", resolution=16, progress=False)
    assert torch.equal(load_source(str(tmp_path / "prepared"), n=5, seed=3, progress=False).images, memory.images)
    with pytest.raises(ganforge.GanforgeError, match="prepared at 16"):
        load_source(str(tmp_path / "prepared"), n=5, resolution=32, progress=False)

"""ganforge.data: built-in datasets on the real shared files (when present) and the same loader
checks on tiny idx files made here (always), folders with every awkward image mode, and the
failures a user can cause (each a one-line DataError)."""

from __future__ import annotations

import dataclasses
import gzip
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from conftest import SHARED, require
from ganforge.cli import main
from ganforge.data import builtin, dataset_names, load_dataset
from ganforge.data.check import check_folder
from ganforge.download import sha256_file
from ganforge.errors import DataError

MNIST_RAW = SHARED / "datasets" / "MNIST" / "raw"
MNIST_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]


@pytest.fixture
def mnist_raw() -> Path:
    return require(MNIST_RAW)


@pytest.fixture
def no_data(tmp_path, monkeypatch):
    """No shared data dir and an empty cache: nothing to find."""
    monkeypatch.setenv("GANFORGE_DATA_DIR", str(tmp_path / "empty-data"))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    return tmp_path


def _noise(w: int, h: int, channels: int = 3, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    shape = (h, w, channels) if channels > 1 else (h, w)
    return rng.integers(0, 256, size=shape, dtype=np.uint8)


@pytest.fixture
def mixed_folder(tmp_path) -> Path:
    """Two classes, every mode training meets in the wild, two broken files, a duplicate, a stray."""
    root = tmp_path / "mixed"
    cats, dogs = root / "cats", root / "dogs"
    cats.mkdir(parents=True)
    dogs.mkdir()
    Image.fromarray(_noise(40, 24)).save(cats / "rgb.png")
    Image.fromarray(_noise(30, 30, 4, seed=1)).save(cats / "rgba.png")
    Image.fromarray(_noise(24, 36, 4, seed=2)).convert("CMYK").save(cats / "cmyk.jpg")
    Image.fromarray(_noise(32, 32, seed=3)).quantize(16).save(cats / "palette.png")
    gray16 = (np.linspace(0, 65535, 20 * 20).reshape(20, 20)).astype(np.uint16)
    Image.fromarray(gray16).save(dogs / "gray16.png")
    Image.fromarray(_noise(20, 28, 1, seed=4)).save(dogs / "gray.jpg")
    shutil.copy(cats / "rgb.png", dogs / "rgb_copy.png")  # exact duplicate
    (dogs / "bad.jpg").write_bytes(np.random.default_rng(5).bytes(3000))  # not an image at all
    Image.fromarray(_noise(64, 64, seed=6)).save(dogs / "truncated.png")
    data = (dogs / "truncated.png").read_bytes()
    (dogs / "truncated.png").write_bytes(data[: len(data) // 2])
    (root / "notes.txt").write_text("not an image")
    return root


# --------------------------------------------------------------------------- built-in datasets

def test_mnist_train(mnist_raw):
    ds = load_dataset("mnist", resolution=32, progress=False)
    assert ds.images.shape == (60000, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64
    assert torch.bincount(ds.labels, minlength=10).tolist() == MNIST_TRAIN_COUNTS
    assert ds.class_names == [str(i) for i in range(10)]
    assert (len(ds), ds.channels, ds.resolution, ds.num_classes) == (60000, 1, 32, 10)
    assert "MNIST train" in ds.source and "60000" in ds.source and str(mnist_raw) in ds.source
    assert ds.skipped == []
    # Digits are white on black: corners are background, the centre has ink.
    assert ds.images[:, :, :2, :2].float().mean() < 2 and ds.images[:, :, 12:20, 12:20].float().mean() > 60
    # The per-process cache must not hand out shared tensors.
    ds.images.zero_()
    assert load_dataset("mnist:train", resolution=32, progress=False).images.float().mean() > 10


def test_mnist_test_native_and_rgb(mnist_raw):
    ds = load_dataset("mnist:test", resolution=28, channels=1, progress=False)  # what metrics asks for
    assert ds.images.shape == (10000, 1, 28, 28)
    ds.images.zero_()  # native size: no resize, so this would hit the raw cache if it were shared
    assert load_dataset("mnist:test", resolution=28, progress=False).images.float().mean() > 10
    rgb = load_dataset("mnist:test", resolution=16, channels=3, max_images=100, progress=False)
    assert rgb.images.shape == (100, 3, 16, 16)
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 2])
    assert torch.equal(rgb.labels, ds.labels[:100])
    assert "first 100 of 10000" in rgb.source


def test_fashion_mnist(assets):
    require(assets / "datasets" / "FashionMNIST" / "raw")
    ds = load_dataset("fashion-mnist", resolution=32, progress=False)
    assert ds.images.shape == (60000, 1, 32, 32)
    assert torch.bincount(ds.labels).tolist() == [6000] * 10
    assert ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert len(load_dataset("fashion-mnist:test", resolution=32, progress=False)) == 10000


def test_digits():
    ds = load_dataset("digits", resolution=8)
    assert ds.images.shape == (1797, 1, 8, 8) and ds.num_classes == 10
    assert ds.images.max() == 255 and ds.images.min() == 0
    assert load_dataset("digits", resolution=32, channels=3).images.shape == (1797, 3, 32, 32)
    assert set(dataset_names()) >= {"mnist", "fashion-mnist", "digits"}


# --------------------------------------------------------------------------- the idx loader on tiny files made here
# The same behaviour as the real-MNIST tests above, without the shared assets: idx.gz files written
# by the test (64 train + 32 test images with known pixels and labels) in torchvision's layout,
# with the registry's sha256 swapped for theirs.

TINY = {"train": 64, "test": 32}
_PREFIX = {"train": "train", "test": "t10k"}


def _write_idx(path: Path, array: np.ndarray) -> None:
    header = (0x0800 | array.ndim).to_bytes(4, "big") + b"".join(d.to_bytes(4, "big") for d in array.shape)
    with gzip.GzipFile(path, "wb", mtime=0) as handle:
        handle.write(header + array.astype(np.uint8).tobytes())


def _tiny_split(split: str) -> tuple[np.ndarray, np.ndarray]:
    """Image i: black, with a centre square of value (100 or 180) + i; label (7·i + offset) mod 10."""
    n, base = TINY[split], (100 if split == "train" else 180)
    labels = (np.arange(n) * 7 + (0 if split == "train" else 3)) % 10
    images = np.zeros((n, 28, 28), np.uint8)
    for i in range(n):
        images[i, 8:20, 8:20] = base + i
    return images, labels


def _tiny_files(root: Path, folder: str) -> dict[str, str]:
    """Write the four archives under root/folder/raw; -> file name -> sha256."""
    raw = root / folder / "raw"
    raw.mkdir(parents=True, exist_ok=True)
    digests = {}
    for split, prefix in _PREFIX.items():
        images, labels = _tiny_split(split)
        for kind, array in (("images-idx3", images), ("labels-idx1", labels)):
            name = f"{prefix}-{kind}-ubyte.gz"
            _write_idx(raw / name, array)
            digests[name] = sha256_file(raw / name)
    return digests


@pytest.fixture
def tiny_idx(tmp_path, monkeypatch):
    """GANFORGE_DATA_DIR holding tiny MNIST and Fashion-MNIST archives that pass the sha256 check."""
    root = tmp_path / "tiny-data"
    for name, spec in list(builtin.IDX_DATASETS.items()):
        monkeypatch.setitem(builtin.IDX_DATASETS, name,
                            dataclasses.replace(spec, sha256=_tiny_files(root, spec.folder)))
    monkeypatch.setenv("GANFORGE_DATA_DIR", str(root))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    return root


def test_idx_loader_train_resized(tiny_idx):
    ds = load_dataset("mnist", resolution=32, progress=False)
    images, labels = _tiny_split("train")
    assert ds.images.shape == (64, 1, 32, 32) and ds.images.dtype == torch.uint8
    assert ds.labels.dtype == torch.int64 and ds.labels.tolist() == labels.tolist()
    assert ds.class_names == [str(i) for i in range(10)]
    assert (len(ds), ds.channels, ds.resolution, ds.num_classes) == (64, 1, 32, 10)
    raw = tiny_idx / "MNIST" / "raw"
    assert ds.source == f"MNIST train (64 images, resized 28->32) from {raw}"
    assert ds.skipped == []
    # Resized, not scrambled: black corners, and each image keeps its own centre value (order kept).
    assert ds.images[:, :, :3, :3].max() == 0
    assert ds.images[:, 0, 16, 16].tolist() == [100 + i for i in range(64)]
    # The per-process cache must not hand out shared tensors.
    ds.images.zero_()
    assert load_dataset("mnist:train", resolution=32, progress=False).images[:, 0, 16, 16].min() == 100


def test_idx_loader_test_native_rgb_and_splits(tiny_idx):
    assert builtin.splits("mnist") == ("train", "test")
    ds = load_dataset("mnist:test", resolution=28, channels=1, progress=False)
    images, labels = _tiny_split("test")
    assert torch.equal(ds.images[:, 0], torch.from_numpy(images))  # native size: exactly the file's pixels
    assert ds.labels.tolist() == labels.tolist()
    assert "MNIST test (32 images, 28×28)" in ds.source
    ds.images.zero_()  # native size: no resize, so this would hit the raw cache if it were shared
    assert torch.equal(load_dataset("mnist:test", resolution=28, progress=False).images[:, 0],
                       torch.from_numpy(images))
    rgb = load_dataset("mnist:test", resolution=16, channels=3, max_images=10, progress=False)
    assert rgb.images.shape == (10, 3, 16, 16)
    assert torch.equal(rgb.images[:, 0], rgb.images[:, 2]) and torch.equal(rgb.images[:, 0], rgb.images[:, 1])
    assert rgb.labels.tolist() == labels[:10].tolist()
    assert "first 10 of 32" in rgb.source


def test_idx_loader_fashion_mnist_names(tiny_idx):
    ds = load_dataset("fashion-mnist", resolution=32, progress=False)
    assert len(ds) == 64 and ds.class_names[0] == "T-shirt/top" and ds.class_names[9] == "Ankle boot"
    assert "Fashion-MNIST train" in ds.source and str(tiny_idx / "FashionMNIST" / "raw") in ds.source
    assert len(load_dataset("fashion-mnist:test", resolution=32, progress=False)) == 32


def test_idx_loader_memory_guard(tiny_idx, monkeypatch):
    monkeypatch.setenv("GANFORGE_MAX_DATASET_BYTES", str(64 * 32 * 32 - 1))  # one byte short
    with pytest.raises(DataError, match="GANFORGE_MAX_DATASET_BYTES") as info:
        load_dataset("mnist", resolution=32, progress=False)
    assert "mnist:train: 64 images" in str(info.value) and "\n" not in str(info.value)
    assert len(load_dataset("mnist", resolution=32, max_images=63, progress=False)) == 63  # fits exactly


def test_idx_loader_checksum_mismatch(tiny_idx, tmp_path, monkeypatch):
    raw = tmp_path / "corrupt" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(tiny_idx / "MNIST" / "raw" / name, raw / name)
    data = bytearray((raw / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[-12] ^= 0xFF  # inside the deflate stream
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(data))
    monkeypatch.setenv("GANFORGE_DATA_DIR", str(tmp_path / "corrupt"))
    with pytest.raises(DataError, match="sha256") as info:
        load_dataset("mnist:test", resolution=32, progress=False)
    message = str(info.value)
    assert str(raw / "t10k-labels-idx1-ubyte.gz") in message and "\n" not in message


def test_idx_loader_download_from_mirror(tiny_idx, no_data, monkeypatch):
    """A bad mirror is skipped by its sha256, the good one (file://) fills the cache atomically."""
    bad = no_data / "bad-mirror"
    bad.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (bad / name).write_bytes(b"not mnist")
    good = tiny_idx / "MNIST" / "raw"
    spec = dataclasses.replace(builtin.IDX_DATASETS["mnist"], mirrors=(bad.as_uri() + "/", good.as_uri() + "/"))
    monkeypatch.setitem(builtin.IDX_DATASETS, "mnist", spec)
    monkeypatch.setenv("GANFORGE_OFFLINE", "0")
    ds = load_dataset("mnist:test", resolution=8, progress=False)
    assert len(ds) == 32 and ds.labels.tolist() == _tiny_split("test")[1].tolist()
    cache = no_data / "home" / "datasets" / "MNIST" / "raw"
    assert sorted(os.listdir(cache)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert str(cache) in ds.source
    assert not (no_data / "empty-data").exists()  # never writes to the user's data dir
    # Every mirror bad: one line naming each URL and the file.
    spec = dataclasses.replace(spec, mirrors=(bad.as_uri() + "/",))
    monkeypatch.setitem(builtin.IDX_DATASETS, "mnist", spec)
    with pytest.raises(DataError) as info:
        load_dataset("mnist:train", resolution=8, progress=False)
    message = str(info.value)
    assert "train-images-idx3-ubyte.gz" in message and bad.as_uri() in message and "\n" not in message
    assert not list((cache).glob("train-*"))  # nothing half-written


# --------------------------------------------------------------------------- folders

def test_folder_mixed_modes(mixed_folder):
    with pytest.warns(UserWarning, match="skipped 2 unreadable"):
        ds = load_dataset(str(mixed_folder), resolution=16, progress=False)
    assert sorted(ds.skipped) == [str(mixed_folder / "dogs" / "bad.jpg"), str(mixed_folder / "dogs" / "truncated.png")]
    assert ds.class_names == ["cats", "dogs"]
    # sorted paths: cats/{cmyk,palette,rgb,rgba}, dogs/{gray,gray16,rgb_copy}
    assert ds.labels.tolist() == [0, 0, 0, 0, 1, 1, 1]
    assert ds.images.shape == (7, 3, 16, 16)  # colour present, so native is RGB
    assert torch.equal(ds.images[2], ds.images[6])  # rgb.png and its copy
    assert "7 of 9" in ds.source and "2 unreadable" in ds.source
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        gray = load_dataset(str(mixed_folder), resolution=8, channels=1, progress=False)
    assert gray.images.shape == (7, 1, 8, 8)


def test_folder_grayscale_native_and_flat(tmp_path):
    root = tmp_path / "flat"
    root.mkdir()
    Image.fromarray(_noise(12, 12, 1)).save(root / "a.png")
    Image.fromarray((np.arange(100).reshape(10, 10) * 600).astype(np.uint16)).save(root / "b.png")
    Image.fromarray(_noise(9, 9, 1) > 128).save(root / "c.bmp")  # mode '1'
    ds = load_dataset(str(root), resolution=8, progress=False)
    assert ds.images.shape == (3, 1, 8, 8)
    assert ds.class_names == ["flat"] and ds.labels.tolist() == [0, 0, 0]


def test_folder_root_images_and_hidden(tmp_path):
    """Images beside class folders form their own class '.'; hidden folders are not data."""
    root = tmp_path / "data"
    (root / "b").mkdir(parents=True)
    (root / ".ipynb_checkpoints").mkdir()
    for path in (root / "top.png", root / "b" / "x.png", root / ".ipynb_checkpoints" / "top.png"):
        Image.fromarray(_noise(8, 8)).save(path)
    ds = load_dataset(str(root), resolution=8, progress=False)
    assert ds.class_names == [".", "b"] and ds.labels.tolist() == [1, 0]  # sorted: b/x.png, top.png


def test_folder_center_crop(tmp_path):
    """Shorter side to R, centre crop: the left and right quarters of a 2:1 image disappear."""
    arr = np.zeros((32, 64, 3), np.uint8)
    arr[:, :16] = (255, 0, 0)
    arr[:, 16:48] = (0, 255, 0)
    arr[:, 48:] = (0, 0, 255)
    (tmp_path / "wide").mkdir()
    Image.fromarray(arr).save(tmp_path / "wide" / "x.png")
    img = load_dataset(str(tmp_path / "wide"), resolution=8, progress=False).images[0]
    assert img[1].min() == 255 and img[0].max() == 0 and img[2].max() == 0


def test_folder_max_images_replaces_unreadable(mixed_folder):
    with pytest.warns(UserWarning):
        ds = load_dataset(str(mixed_folder), resolution=8, max_images=6, progress=False)
    assert len(ds) == 6 and ds.skipped == [str(mixed_folder / "dogs" / "bad.jpg")]


def test_folder_errors(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="no images"):
        load_dataset(str(tmp_path / "empty"), resolution=32)
    (tmp_path / "broken").mkdir()
    (tmp_path / "broken" / "x.png").write_bytes(b"garbage")
    with pytest.raises(DataError, match="none of the 1"), pytest.warns(UserWarning):
        load_dataset(str(tmp_path / "broken"), resolution=32, progress=False)
    (tmp_path / "file.png").write_bytes(b"x")
    with pytest.raises(DataError, match="not a folder"):
        load_dataset(str(tmp_path / "file.png"), resolution=32)


def test_unknown_name_and_bad_arguments(tmp_path):
    with pytest.raises(DataError) as info:
        load_dataset(str(tmp_path / "cifar-11"), resolution=32)
    message = str(info.value)
    assert "mnist" in message and "digits" in message and "does not exist" in message
    assert "\n" not in message
    with pytest.raises(DataError, match="power of two"):
        load_dataset("digits", resolution=48)
    with pytest.raises(DataError, match="power of two"):
        load_dataset("digits", resolution=2048)
    with pytest.raises(DataError, match="channels"):
        load_dataset("digits", resolution=8, channels=2)
    with pytest.raises(DataError, match="split"):
        load_dataset("mnist:validation", resolution=32)


def test_memory_guard(mixed_folder, monkeypatch):
    monkeypatch.setenv("GANFORGE_MAX_DATASET_BYTES", "1000")
    with pytest.raises(DataError, match="--max-images"):
        load_dataset(str(mixed_folder), resolution=64, progress=False)
    assert len(load_dataset("digits", resolution=8, max_images=15)) == 15  # 15×64 bytes fits


def test_memory_guard_mnist(mnist_raw, monkeypatch):
    monkeypatch.setenv("GANFORGE_MAX_DATASET_BYTES", "1000")
    with pytest.raises(DataError, match="GANFORGE_MAX_DATASET_BYTES"):
        load_dataset("mnist", resolution=32, progress=False)


# --------------------------------------------------------------------------- files: checksum, offline, download

def test_checksum_mismatch(mnist_raw, tmp_path, monkeypatch):
    raw = tmp_path / "data" / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        shutil.copy(mnist_raw / name, raw / name)
    data = bytearray((raw / "t10k-labels-idx1-ubyte.gz").read_bytes())
    data[100] ^= 0xFF
    (raw / "t10k-labels-idx1-ubyte.gz").write_bytes(bytes(data))
    monkeypatch.setenv("GANFORGE_DATA_DIR", str(tmp_path / "data"))
    with pytest.raises(DataError, match="sha256") as info:
        load_dataset("mnist:test", resolution=32, progress=False)
    assert "t10k-labels" in str(info.value)


def test_offline_and_absent(no_data, monkeypatch):
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    with pytest.raises(DataError) as info:
        load_dataset("fashion-mnist:test", resolution=32, progress=False)
    message = str(info.value)
    assert "t10k-images-idx3-ubyte.gz" in message and "GANFORGE_DATA_DIR" in message
    assert "FashionMNIST/raw" in message and "\n" not in message


def test_download_from_mirror(mnist_raw, no_data, monkeypatch):
    """A bad mirror is skipped by its sha256, the good one fills the cache atomically."""
    bad = no_data / "bad-mirror"
    bad.mkdir()
    for name in ("t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"):
        (bad / name).write_bytes(b"not mnist")
    spec = dataclasses.replace(builtin.IDX_DATASETS["mnist"],
                               mirrors=(bad.as_uri() + "/", mnist_raw.as_uri() + "/"))
    monkeypatch.setitem(builtin.IDX_DATASETS, "mnist", spec)
    monkeypatch.setenv("GANFORGE_OFFLINE", "0")
    ds = load_dataset("mnist:test", resolution=8, progress=False)
    assert len(ds) == 10000
    cache = no_data / "home" / "datasets" / "MNIST" / "raw"
    assert sorted(os.listdir(cache)) == ["t10k-images-idx3-ubyte.gz", "t10k-labels-idx1-ubyte.gz"]
    assert not (no_data / "empty-data").exists()  # never writes to the user's data dir


# --------------------------------------------------------------------------- data check

def test_check_folder(mixed_folder):
    report = check_folder(mixed_folder)
    assert report.images == 7 and report.ignored == 1
    assert report.per_class == {"cats": 4, "dogs": 3}
    assert {"RGB", "RGBA", "CMYK", "P", "L", "I;16"} <= set(report.modes)
    assert sorted(c["path"] for c in report.corrupt) == ["dogs/bad.jpg", "dogs/truncated.png"]
    assert report.duplicates == [["cats/rgb.png", "dogs/rgb_copy.png"]]
    assert report.width["min"] == 20 and report.width["max"] == 40
    assert sum(report.aspect.values()) == 7
    json.dumps(report.to_dict())


def test_cli_data_check(mixed_folder, capsys, tmp_path):
    assert main(["data", "check", str(mixed_folder)]) == 0
    out = capsys.readouterr().out
    assert "7 readable images, 2 unreadable, 1 non-image" in out
    assert "cats=4" in out and "dogs=3" in out and "CMYK=1" in out and "bad.jpg" in out
    assert "rgb_copy.png" in out
    assert main(["data", "check", str(mixed_folder), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["per_class"] == {"cats": 4, "dogs": 3}
    assert main(["data", "check", str(tmp_path / "missing")]) == 2
    assert "folder not found" in capsys.readouterr().err

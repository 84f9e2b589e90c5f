"""Constructed image-to-image datasets for benchmarks/quality_translate.py, written as image folders
(so training goes through the same loaders a user's data does). Everything is drawn from a seeded
numpy generator over the MNIST / Fashion-MNIST idx files (GANFORGE_DATA_DIR), so a dataset is the
same on every run. Held-out splits use images from the datasets' *test* splits, never seen in training.

- ``fashion_edges``: pix2pix edges -> item. A = Sobel edge map of a Fashion-MNIST item (black lines
  on white, as edges2shoes), B = the item (white on black, as Fashion-MNIST); 32×32 (28 padded by 2).
- ``digit_scenes``: 64×64 RGB "photos" of 1-2 MNIST digits in random bright colours pasted on random
  textured backgrounds (smooth colour noise + stripes), with their per-pixel label maps
  (0 = background, digit class + 1 where the digit's ink is, ink = MNIST intensity >= 128).
  Written twice: ``A/`` photo + ``B/`` label map as a fixed 11-colour palette (pix2pix
  segmentation), and ``labels/`` (greyscale ids) + ``images/`` (SPADE). ``boxes.json`` lists every
  digit's class and ink bounding box (for classifying generated regions).
- ``mnist_inverted``: unpaired CycleGAN data. A = MNIST digits, B = *other* MNIST digits inverted
  (black on white); 32×32. The held-out split keeps the pairs (A, 255 - A) and labels for scoring.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

# 11 well-separated colours: background black, then one per digit class 0..9
PALETTE = np.array([
    [0, 0, 0], [230, 25, 75], [60, 180, 75], [255, 225, 25], [0, 130, 200], [245, 130, 48],
    [145, 30, 180], [70, 240, 240], [240, 50, 230], [250, 190, 190], [255, 255, 255],
], np.uint8)


def load_idx(dataset: str, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 N×28×28 images and int64 labels (from GANFORGE_DATA_DIR, via ganforge's own reader)."""
    from ganforge.metrics._sources import read_idx_split

    x, y = read_idx_split(dataset, split)
    return x[:, 0].numpy(), y.numpy()


def _save(arr: np.ndarray, path: Path, mode: str | None = None) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr, mode).save(path) if mode else Image.fromarray(arr).save(path)


def sobel_edges(img: np.ndarray, threshold: float = 0.25) -> np.ndarray:
    """Binary Sobel edges of a uint8 H×W image: uint8, 0 on edges and 255 elsewhere."""
    x = img.astype(np.float32) / 255.0
    p = np.pad(x, 1, mode="edge")
    gx = (p[:-2, 2:] + 2 * p[1:-1, 2:] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[1:-1, :-2] + p[2:, :-2])
    gy = (p[2:, :-2] + 2 * p[2:, 1:-1] + p[2:, 2:]) - (p[:-2, :-2] + 2 * p[:-2, 1:-1] + p[:-2, 2:])
    mag = np.hypot(gx, gy) / 4.0
    return np.where(mag > threshold, 0, 255).astype(np.uint8)


def fashion_edges(out: Path, n_train: int, n_test: int, seed: int = 0) -> dict:
    rng = np.random.default_rng(seed)
    info = {"task": "fashion-mnist Sobel edges (|grad|/4 > 0.25, black on white) -> item, 32x32 (28 padded by 2)"}
    for split, source, n in (("train", "train", n_train), ("test", "test", n_test)):
        x, y = load_idx("fashion-mnist", source)
        idx = rng.choice(len(x), n, replace=False)
        for j, i in enumerate(idx):
            item = np.pad(x[i], 2)
            _save(sobel_edges(item), out / split / "A" / f"{j:05d}.png", "L")
            _save(item, out / split / "B" / f"{j:05d}.png", "L")
        info[f"{split}_pairs"] = int(n)
        info[f"{split}_source"] = f"fashion-mnist:{source}"
    return info


def _smooth_noise(rng: np.random.Generator, size: int, cells: int) -> np.ndarray:
    """size×size×3 smooth random colour field in [0, 1] (bilinear upsampling of a cells² grid)."""
    grid = rng.random((cells, cells, 3)).astype(np.float32)
    img = Image.fromarray((grid * 255).astype(np.uint8)).resize((size, size), Image.Resampling.BICUBIC)
    return np.asarray(img, np.float32) / 255.0


def texture(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random textured background, float size×size×3 in [0, 1]: smooth colour noise, stripes at a
    random angle and frequency, and pixel noise; brightness capped so most of it stays darker than ink."""
    base = _smooth_noise(rng, size, int(rng.integers(3, 9)))
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32)
    angle, freq = rng.uniform(0, np.pi), rng.uniform(0.15, 0.8)
    stripes = 0.5 + 0.5 * np.sin(freq * (np.cos(angle) * xx + np.sin(angle) * yy) + rng.uniform(0, 6.3))
    tint = rng.random(3).astype(np.float32)
    mix = rng.uniform(0.2, 0.6)
    img = (1 - mix) * base + mix * stripes[..., None] * tint
    img = img * rng.uniform(0.35, 0.7) + rng.normal(0, 0.03, img.shape).astype(np.float32)
    return np.clip(img, 0, 1)


def _place(rng: np.random.Generator, size: int, count: int) -> list[tuple[int, int]]:
    """Top-left corners of ``count`` non-overlapping 28×28 boxes in a size² image."""
    while True:
        pts = [tuple(int(v) for v in rng.integers(0, size - 28 + 1, 2)) for _ in range(count)]
        if all(abs(a[0] - b[0]) >= 28 or abs(a[1] - b[1]) >= 28 for k, a in enumerate(pts) for b in pts[k + 1:]):
            return pts


def digit_scenes(out: Path, n_train: int, n_test: int, size: int = 64, seed: int = 1) -> dict:
    rng = np.random.default_rng(seed)
    info = {"task": f"{size}x{size} RGB: 1-2 MNIST digits (ink >= 128 labelled class+1) in random bright colours "
                    f"on random textured backgrounds", "palette": PALETTE.tolist()}
    for split, source, n in (("train", "train", n_train), ("test", "test", n_test)):
        x, y = load_idx("mnist", source)
        order = rng.permutation(len(x))
        used, boxes = 0, {}
        for j in range(n):
            count = int(rng.integers(1, 3))
            img = texture(rng, size)
            ids = np.zeros((size, size), np.uint8)
            items = []
            for (top, left) in _place(rng, size, count):
                k = order[used]
                used += 1
                alpha = x[k].astype(np.float32)[..., None] / 255.0
                colour = rng.random(3).astype(np.float32)
                colour = 0.55 + 0.45 * colour / max(colour.max(), 1e-6)  # bright: max channel 1.0, min 0.55
                region = img[top:top + 28, left:left + 28]
                img[top:top + 28, left:left + 28] = (1 - alpha) * region + alpha * colour
                ink = x[k] >= 128
                ids[top:top + 28, left:left + 28][ink] = int(y[k]) + 1
                ys, xs = np.nonzero(ink)
                items.append({"class": int(y[k]), "box": [int(top + ys.min()), int(left + xs.min()),
                                                          int(top + ys.max()) + 1, int(left + xs.max()) + 1]})
            photo = (img * 255).round().astype(np.uint8)
            name = f"{j:05d}"
            _save(photo, out / f"seg_{split}" / "A" / f"{name}.png")
            _save(PALETTE[ids], out / f"seg_{split}" / "B" / f"{name}.png")
            _save(ids, out / f"spade_{split}" / "labels" / f"{name}.png", "L")
            _save(photo, out / f"spade_{split}" / "images" / f"{name}.png")
            boxes[name] = items
        (out / f"boxes_{split}.json").write_text(json.dumps(boxes))
        info[f"{split}_scenes"] = int(n)
        info[f"{split}_digits"] = int(used)
        info[f"{split}_source"] = f"mnist:{source}"
    return info


def mnist_inverted(out: Path, n_train: int, n_test: int, seed: int = 2) -> dict:
    """Unpaired: train/A = n_train MNIST digits, train/B = n_train *other* digits, inverted."""
    rng = np.random.default_rng(seed)
    x, y = load_idx("mnist", "train")
    idx = rng.choice(len(x), 2 * n_train, replace=False)
    for j, i in enumerate(idx[:n_train]):
        _save(np.pad(x[i], 2), out / "train" / "A" / f"a{j:05d}.png", "L")
    for j, i in enumerate(idx[n_train:]):
        _save(255 - np.pad(x[i], 2), out / "train" / "B" / f"b{j:05d}.png", "L")
    xt, yt = load_idx("mnist", "test")
    tidx = rng.choice(len(xt), n_test, replace=False)
    labels = {}
    for j, i in enumerate(tidx):
        _save(np.pad(xt[i], 2), out / "test" / "A" / f"{j:05d}.png", "L")
        _save(255 - np.pad(xt[i], 2), out / "test" / "B" / f"{j:05d}.png", "L")
        labels[f"{j:05d}"] = int(yt[i])
    (out / "test_labels.json").write_text(json.dumps(labels))
    return {"task": "MNIST <-> inverted MNIST, 32x32 (28 padded by 2), unpaired: A and B drawn from disjoint "
                    "train images", "train_A": n_train, "train_B": n_train, "test": n_test,
            "test_source": "mnist:test (each test digit in both domains, for scoring)"}

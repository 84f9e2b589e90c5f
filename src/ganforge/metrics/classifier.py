"""A small domain classifier for MNIST-like data (MNIST, Fashion-MNIST, scikit-learn digits), trained
by ganforge itself.

Why: Inception features are a poor (and, offline, often unavailable) yardstick for 28×28 greyscale
digits; MNIST GAN papers instead use a classifier trained on the dataset. Its penultimate layer is
the ``mnist`` / ``fashion-mnist`` feature extractor, and its logits give a domain Inception Score.
Training is seeded and deterministic, takes well under a minute on 2 CPU cores, and is cached as
safetensors (with its test accuracy in the metadata) under ``$GANFORGE_HOME/cache``.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from .. import paths
from ..errors import GanforgeError

VERSION = "v1"  # bump when the architecture or the training recipe changes
DATASETS = ("mnist", "fashion-mnist", "digits")
FEATURE_DIM = 128
INPUT_SIZE = 32
EPOCHS = 1  # one epoch reaches ~99.1 % on MNIST; training costs ~40-90 s on 2 busy cores
# scikit-learn's digits (1437 training images) need more passes; it is small enough to take seconds.
DATASET_EPOCHS = {"digits": 15}


class DomainClassifier(nn.Module):
    """CNN on 32×32 greyscale: three conv blocks, a 128-d feature layer, and a linear classifier."""

    def __init__(self, num_classes: int = 10) -> None:
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv2d(1, 32, 3, padding=1), nn.BatchNorm2d(32), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 16
            nn.Conv2d(32, 48, 3, padding=1), nn.BatchNorm2d(48), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 8
            nn.Conv2d(48, 64, 3, padding=1), nn.BatchNorm2d(64), nn.ReLU(inplace=True),
            nn.MaxPool2d(2),  # 4
            nn.Flatten(),
            nn.Linear(64 * 4 * 4, FEATURE_DIM), nn.ReLU(inplace=True),
        )
        self.dropout = nn.Dropout(0.3)
        self.head = nn.Linear(FEATURE_DIM, num_classes)
        self.dataset = ""
        self.test_accuracy = float("nan")

    @staticmethod
    def prepare(x: torch.Tensor) -> torch.Tensor:
        """float N×C×H×W in [0,1], any size, grey or RGB -> normalised N×1×32×32."""
        if x.dtype == torch.uint8:
            x = x.float() / 255.0
        if x.ndim == 3:
            x = x.unsqueeze(1)
        if x.shape[1] != 1:
            x = x.mean(dim=1, keepdim=True)
        if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
            x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                              antialias=x.shape[-1] > INPUT_SIZE)
        return (x - 0.5) / 0.5

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate-layer features (N×128): the domain feature space for FID/KID/PR."""
        return self.body(self.prepare(x))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N×num_classes)."""
        return self.head(self.dropout(self.features(x)))

    def features_and_logits(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        feats = self.features(x)
        return feats, self.head(feats)


def cache_path(dataset: str) -> Path:
    return paths.cache_dir("cache") / f"classifier-{dataset}-{VERSION}.safetensors"


def _check_dataset(dataset: str) -> str:
    dataset = dataset.lower().replace("_", "-")
    if dataset == "fashion":
        dataset = "fashion-mnist"
    if dataset not in DATASETS:
        raise GanforgeError(f"no domain classifier for {dataset!r}; choose one of: {', '.join(DATASETS)}")
    return dataset


@torch.no_grad()
def evaluate_accuracy(model: DomainClassifier, images: torch.Tensor, labels: torch.Tensor,
                      batch_size: int = 1000) -> float:
    model.eval()
    correct = 0
    for start in range(0, len(images), batch_size):
        logits = model(images[start:start + batch_size].float() / 255.0)
        correct += int((logits.argmax(1) == labels[start:start + batch_size]).sum())
    return correct / max(len(images), 1)


def train_classifier(dataset: str = "mnist", *, epochs: int | None = None, batch_size: int = 128, seed: int = 0,
                     progress: bool = True) -> DomainClassifier:
    """Train the classifier on ``dataset``'s train split (seeded; deterministic on a given machine)."""
    from tqdm.auto import tqdm

    from ._sources import load_split

    dataset = _check_dataset(dataset)
    epochs = epochs or DATASET_EPOCHS.get(dataset, EPOCHS)
    train_x, train_y = load_split(dataset, "train")
    test_x, test_y = load_split(dataset, "test")
    gen = torch.Generator().manual_seed(seed)
    torch.manual_seed(seed)
    model = DomainClassifier(int(train_y.max()) + 1)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3)
    steps = epochs * (len(train_x) // batch_size)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=3e-3, total_steps=steps, pct_start=0.15)
    # Pre-resize once: the same bilinear path `prepare` uses at evaluation time.
    with torch.no_grad():
        data = torch.cat([DomainClassifier.prepare(train_x[i:i + 4096].float() / 255.0)
                          for i in range(0, len(train_x), 4096)])
    bar = tqdm(total=steps, desc=f"training {dataset} classifier", disable=not progress, unit="step")
    model.train()
    for _ in range(epochs):
        order = torch.randperm(len(data), generator=gen)
        for i in range(len(data) // batch_size):
            idx = order[i * batch_size:(i + 1) * batch_size]
            x, y = data[idx], train_y[idx]
            # small random shifts (±2 px) make the features robust to GAN samples' misalignment
            shift = torch.randint(-2, 3, (2,), generator=gen).tolist()
            x = torch.roll(x, shifts=shift, dims=(2, 3))
            loss = F.cross_entropy(model.head(model.dropout(model.body(x))), y)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            bar.update()
            if i % 50 == 0:
                bar.set_postfix(loss=f"{loss.item():.3f}")
    bar.close()
    model.eval()
    model.dataset = dataset
    model.test_accuracy = evaluate_accuracy(model, test_x, test_y)
    return model


def _save(model: DomainClassifier, path: Path, meta: dict) -> None:
    from safetensors.torch import save_file

    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    state = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(state, str(tmp), metadata={k: str(v) for k, v in meta.items()})
    tmp.replace(path)


def _load(path: Path) -> DomainClassifier:
    from safetensors import safe_open
    from safetensors.torch import load_file

    from ..weights import load_into

    with safe_open(str(path), framework="pt") as handle:
        meta = handle.metadata() or {}
    state = load_file(str(path))
    model = DomainClassifier(int(meta.get("num_classes", 10)))
    load_into(model, state, source=str(path))
    model.eval()
    model.dataset = meta.get("dataset", "")
    model.test_accuracy = float(meta.get("test_accuracy", "nan"))
    return model


_MEMO: dict[str, DomainClassifier] = {}


def load_classifier(dataset: str = "mnist", *, progress: bool = True) -> DomainClassifier:
    """The cached domain classifier for ``dataset`` (trained on first use, ~40-90 s on 2 CPU cores)."""
    dataset = _check_dataset(dataset)
    path = cache_path(dataset)
    key = str(path)
    if key in _MEMO:
        return _MEMO[key]
    if path.is_file():
        try:
            model = _load(path)
        except Exception:  # a corrupt cache entry is rebuilt, not fatal
            path.unlink(missing_ok=True)
            return load_classifier(dataset, progress=progress)
    else:
        start = time.perf_counter()
        model = train_classifier(dataset, progress=progress)
        meta = {"dataset": dataset, "version": VERSION, "test_accuracy": f"{model.test_accuracy:.4f}",
                "num_classes": model.head.out_features, "seconds": f"{time.perf_counter() - start:.1f}",
                "recipe": json.dumps({"epochs": DATASET_EPOCHS.get(dataset, EPOCHS), "batch_size": 128, "seed": 0, "opt": "adam-onecycle-3e-3"})}
        _save(model, path, meta)
        if progress:
            print(f"{dataset} classifier: test accuracy {model.test_accuracy:.2%}, cached at {path}")
    for p in model.parameters():
        p.requires_grad_(False)
    _MEMO[key] = model
    return model

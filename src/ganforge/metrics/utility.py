"""Downstream utility of a conditional generator: "train on synthetic, test on real" (TSTR).

A FIXED small classifier is trained on ``n`` labelled images drawn from the generator (EMA
weights, labels balanced over the classes: image i has class i mod K) and tested on a real
labelled split (``mnist:test``, ``fashion-mnist:test``, a class-folder path, a prepared dataset).
Everything that decides the number is fixed and recorded in the result's protocol
(:data:`PROTOCOL`): the architecture, input size, optimiser, epochs, batch size and seed. The same
protocol trained on real images (:func:`tstr_accuracy` with a real training set) gives the
ceiling a generator is compared with (docs/benchmarks.md). It is the metric DP-GAN papers report
(e.g. DPImageBench's "downstream accuracy"), so a private run can be compared with them.

No validation split, no early stopping, no augmentation: nothing is chosen on the test images.
"""

from __future__ import annotations

import platform
import time
from typing import Protocol

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import GanforgeError
from ..version import __version__

DEFAULT_N = 10_000
# The one protocol (bump "version" when anything in it changes: numbers are comparable only within one).
PROTOCOL = {
    "name": "tstr", "version": "v1",
    "classifier": "LeNet-5 with ReLU and max-pooling: conv5x5(6)-ReLU-maxpool2-conv5x5(16)-ReLU-maxpool2-"
                  "fc(120)-ReLU-fc(84)-ReLU-fc(K), PyTorch default init",
    "input": "32x32, the reference's channel count (RGB->grey: channel mean; grey->RGB: repeated), "
             "bilinear resize with antialias, pixels scaled to [-1, 1]",
    "optimizer": "Adam lr 1e-3 betas (0.9, 0.999), no weight decay, constant lr",
    "epochs": 10, "batch_size": 128, "seed": 0,
    "selection": "none: the final weights are tested (no validation split, no early stopping)",
    "augmentation": "none",
}
INPUT_SIZE = 32


class _ConditionalSampler(Protocol):  # what :func:`generator_utility` needs of a generator
    num_classes: int

    def sample(self, n: int, labels=None, seed: int = 0) -> torch.Tensor: ...


class TstrClassifier(nn.Module):
    """The fixed small CNN of :data:`PROTOCOL`, LeNet-5 (LeCun et al. 1998) with ReLU and max-pooling:
    32×32 input, ``channels`` in, ``num_classes`` out; ~0.4 M multiply-adds per image, so the protocol
    runs in seconds to a minute on a laptop CPU."""

    def __init__(self, channels: int, num_classes: int) -> None:
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(channels, 6, 5), nn.ReLU(), nn.MaxPool2d(2),  # 28 -> 14
            nn.Conv2d(6, 16, 5), nn.ReLU(), nn.MaxPool2d(2),  # 10 -> 5
            nn.Flatten(), nn.Linear(16 * 5 * 5, 120), nn.ReLU(), nn.Linear(120, 84), nn.ReLU(),
            nn.Linear(84, num_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def prepare(images: torch.Tensor, channels: int) -> torch.Tensor:
    """uint8 or [0, 1] float N×C×H×W -> float N×channels×32×32 in [-1, 1] (the protocol's input)."""
    x = images.float() / 255.0 if images.dtype == torch.uint8 else images.float()
    if x.shape[1] != channels:
        x = x.mean(dim=1, keepdim=True) if channels == 1 else x[:, :1].expand(-1, channels, -1, -1)
    if x.shape[-2:] != (INPUT_SIZE, INPUT_SIZE):
        x = F.interpolate(x, size=(INPUT_SIZE, INPUT_SIZE), mode="bilinear", align_corners=False,
                          antialias=x.shape[-1] > INPUT_SIZE)
    return x.clamp(0, 1).mul(2).sub(1).contiguous()


def tstr_accuracy(train_images: torch.Tensor, train_labels: torch.Tensor, test_images: torch.Tensor,
                  test_labels: torch.Tensor, num_classes: int, *, device: str | torch.device = "cpu",
                  progress: bool = False) -> dict:
    """Train :class:`TstrClassifier` on (train_images, train_labels) under :data:`PROTOCOL` and
    return ``{"accuracy", "train_accuracy", "per_class_accuracy", "seconds"}`` on the test set.
    Images: uint8 or [0, 1] float N×C×H×W; the test set's channel count is the input's. Seeded:
    the same inputs give the same number on a given machine; the global RNG is left untouched."""
    if len(train_images) == 0 or len(test_images) == 0:
        raise GanforgeError("utility: the training and test sets must not be empty")
    if len(train_images) != len(train_labels) or len(test_images) != len(test_labels):
        raise GanforgeError("utility: one label per image is needed")
    start = time.perf_counter()
    device = torch.device(device)
    channels = int(test_images.shape[1])
    x_train, y_train = prepare(train_images, channels), train_labels.long()
    x_test, y_test = prepare(test_images, channels), test_labels.long()
    gen = torch.Generator().manual_seed(PROTOCOL["seed"])
    with torch.random.fork_rng(devices=[]):  # the init and dropout draw from a seeded global RNG, restored after
        torch.manual_seed(PROTOCOL["seed"])
        model = TstrClassifier(channels, num_classes).to(device)
        opt = torch.optim.Adam(model.parameters(), lr=1e-3)
        bs, epochs = PROTOCOL["batch_size"], PROTOCOL["epochs"]
        steps = epochs * -(-len(x_train) // bs)
        from tqdm.auto import tqdm

        bar = tqdm(total=steps, desc="utility: training the TSTR classifier", disable=not progress, unit="step")
        model.train()
        for _ in range(epochs):
            order = torch.randperm(len(x_train), generator=gen)
            for i in range(0, len(order), bs):
                idx = order[i:i + bs]
                loss = F.cross_entropy(model(x_train[idx].to(device)), y_train[idx].to(device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                bar.update()
        bar.close()
    pred_test = _predict(model, x_test, device)
    correct = pred_test == y_test
    per_class = {int(c): round(float(correct[y_test == c].float().mean()), 4)
                 for c in range(num_classes) if bool((y_test == c).any())}
    return {"accuracy": float(correct.float().mean()),
            "train_accuracy": float((_predict(model, x_train, device) == y_train).float().mean()),
            "per_class_accuracy": per_class, "seconds": round(time.perf_counter() - start, 2)}


@torch.no_grad()
def _predict(model: nn.Module, x: torch.Tensor, device: torch.device, bs: int = 1000) -> torch.Tensor:
    model.eval()
    return torch.cat([model(x[i:i + bs].to(device)).argmax(1).cpu() for i in range(0, len(x), bs)])


def balanced_labels(n: int, num_classes: int) -> torch.Tensor:
    """Image i gets class i mod K: every class n/K times (±1)."""
    return torch.arange(n) % num_classes


def load_reference(spec: str, *, progress: bool = False):
    """A labelled real split (``mnist:test``, a class-folder path, a prepared dataset) at its native
    size (32 for folders, the protocol's input): ``ImageDataset`` with >= 2 classes."""
    from ..data import load_dataset
    from ..data.builtin import parse_builtin

    native = {"mnist": 28, "fashion-mnist": 28, "digits": 8}
    builtin = parse_builtin(spec)
    resolution = native.get(builtin[0], INPUT_SIZE) if builtin else INPUT_SIZE
    ds = load_dataset(spec, resolution=resolution, progress=progress)
    if ds.num_classes < 2:
        raise GanforgeError(f"--utility {spec}: a labelled reference is needed (a built-in split or a folder "
                            f"with one subfolder per class); it has {ds.num_classes} class(es)")
    return ds


def generator_utility(generator: _ConditionalSampler, reference: str, *, n: int = DEFAULT_N, seed: int = 0,
                      device: str | torch.device = "cpu", progress: bool = False,
                      generator_info: dict | None = None) -> dict:
    """TSTR accuracy of a conditional ``generator`` (anything with ``num_classes`` and
    ``sample(n, labels=, seed=)`` returning [0, 1] images, e.g. a loaded :class:`ganforge.Generator`)
    on the labelled split ``reference``. Returns ``{"metric": "utility_accuracy", "value", ...,
    "protocol": {...}}``; a generator whose class count differs from the reference's is refused."""
    if n < 1:
        raise GanforgeError(f"utility: the number of generated images must be positive, got {n}")
    classes = int(getattr(generator, "num_classes", 0) or 0)
    if classes == 0:
        raise GanforgeError("--utility needs a conditional run (trained with --conditional): this generator is "
                            "unconditional, so its images have no labels to train a classifier on")
    ref = load_reference(reference, progress=progress)
    if ref.num_classes != classes:
        raise GanforgeError(f"--utility {reference}: the reference has {ref.num_classes} classes, the generator "
                            f"{classes}; use the labelled split of the data the run was trained on")
    labels = balanced_labels(n, classes)
    chunks = [generator.sample(len(labels[i:i + 500]), labels=labels[i:i + 500], seed=seed + i)
              for i in range(0, n, 500)]
    # quantised exactly as a saved PNG holds them, like every other generator metric
    images = torch.cat(chunks).clamp(0, 1).mul(255).round().to(torch.uint8)
    result = tstr_accuracy(images, labels, ref.images, ref.labels, classes, device=device, progress=progress)
    protocol = dict(PROTOCOL, n_train=n, train_labels="balanced: image i has class i mod K",
                    train_images="generator samples (EMA weights), quantised to uint8 as PNG", sample_seed=seed,
                    reference=reference, reference_description=ref.source, n_test=len(ref.images),
                    classes=list(ref.class_names), device=str(device), ganforge_version=__version__,
                    torch=torch.__version__, python=platform.python_version(), **(generator_info or {}))
    return {"metric": "utility_accuracy", "value": result["accuracy"], "std": None,
            "train_accuracy": result["train_accuracy"], "per_class_accuracy": result["per_class_accuracy"],
            "seconds": result["seconds"], "protocol": protocol}


def run_utility(run: str, reference: str, *, n: int = DEFAULT_N, seed: int = 0, device: str = "auto",
                truncation: float = 1.0, progress: bool = False) -> dict:
    """:func:`generator_utility` of a GAN run directory (or exported generator) with its EMA weights."""
    from ..device import resolve_device
    from ..sample import load_generator

    gen = load_generator(run).to(device, "fp32")
    sampler = _Truncated(gen, truncation) if truncation != 1.0 else gen
    info = {"run": str(run), "step": int(getattr(gen, "step", -1)), "generator": "EMA", "truncation": truncation}
    return generator_utility(sampler, reference, n=n, seed=seed, device=resolve_device(device), progress=progress,
                             generator_info=info)


class _Truncated:
    def __init__(self, gen, truncation: float) -> None:
        self.gen, self.truncation, self.num_classes = gen, truncation, gen.num_classes

    def sample(self, n: int, labels=None, seed: int = 0) -> torch.Tensor:
        return self.gen.sample(n, labels=labels, seed=seed, truncation=self.truncation)

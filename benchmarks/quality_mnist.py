"""Quality of a conditional DCGAN on MNIST 32x32 trained on the CPU for a fixed budget.

A small MNIST classifier (ganforge.metrics.classifier, trained on the real training set and cached)
labels generated samples; the figure is the share of samples classified as the class they were
generated for. Usage:

    python benchmarks/quality_mnist.py --out runs/quality-mnist
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import ganforge
from ganforge.data import load_dataset
from ganforge.metrics.classifier import load_classifier


# The recipe the quality test and this benchmark train (CPU budget: a few minutes on 2 cores).
QUALITY_RECIPE = dict(data="mnist", resolution=32, conditional=True, width=32, batch_size=64, steps=2000,
                      precision="auto", sample_every=500, ckpt_every=2000)


def within_class_spread(images: torch.Tensor, labels: torch.Tensor) -> float:
    """Mean per-pixel standard deviation among images of the same class, averaged over classes:
    near 0 for a generator that ignores z (one image per class)."""
    spreads = [images[labels == k].float().std(dim=0).mean() for k in labels.unique()]
    return float(torch.stack(spreads).mean())


def class_accuracy(run_dir: str, per_class: int = 100, seed: int = 123,
                   classifier: str = "mnist") -> tuple[float, list[float]]:
    """Share of samples that ``classifier`` (a ganforge domain classifier) assigns to the requested class."""
    gen = ganforge.load_generator(run_dir)
    clf = load_classifier(classifier, progress=False).eval()
    labels = torch.arange(gen.num_classes).repeat_interleave(per_class)
    images = gen.sample(len(labels), labels=labels, seed=seed)
    with torch.no_grad():
        pred = clf(images).argmax(1)
    per = [(pred[labels == k] == k).float().mean().item() for k in range(gen.num_classes)]
    return (pred == labels).float().mean().item(), per


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=QUALITY_RECIPE["steps"])
    p.add_argument("--precision", default=QUALITY_RECIPE["precision"])
    p.add_argument("--out", default="runs/quality-mnist")
    args = p.parse_args()
    t0 = time.perf_counter()
    recipe = dict(QUALITY_RECIPE, steps=args.steps, precision=args.precision)
    summary = ganforge.train_gan(ganforge.GanConfig(**recipe, progress=False), out=args.out, resume="never")
    train_s = time.perf_counter() - t0
    acc, per = class_accuracy(args.out)
    gen = ganforge.load_generator(args.out)
    labels = torch.arange(10).repeat(50)
    real = load_dataset("mnist:test", resolution=32, progress=False)
    print(json.dumps({"recipe": recipe, "train_seconds": round(train_s, 1),
                      "fake_within_class_spread": round(within_class_spread(gen.sample(500, labels=labels, seed=7), labels), 4),
                      "real_within_class_spread": round(within_class_spread(real.images[:2000].float() / 255, real.labels[:2000]), 4),
                      "images_per_s": round(summary["images_per_s"], 1), "class_accuracy": round(acc, 4),
                      "per_class": [round(x, 3) for x in per]}))


if __name__ == "__main__":
    main()

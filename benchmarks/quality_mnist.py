"""Quality of a conditional DCGAN on MNIST 32x32 trained on the CPU for a fixed budget.

A small MNIST classifier (ganforge.metrics.classifier, trained on the real training set and cached)
labels generated samples; the figure is the share of samples classified as the class they were
generated for. Usage:

    python benchmarks/quality_mnist.py --steps 1500 --out runs/quality-mnist
"""

from __future__ import annotations

import argparse
import json
import time

import torch

import ganforge
from ganforge.metrics.classifier import load_classifier


def class_accuracy(run_dir: str, per_class: int = 100, seed: int = 123) -> tuple[float, list[float]]:
    gen = ganforge.load_generator(run_dir)
    clf = load_classifier("mnist").eval()
    labels = torch.arange(gen.num_classes).repeat_interleave(per_class)
    images = gen.sample(len(labels), labels=labels, seed=seed)
    with torch.no_grad():
        pred = clf(images).argmax(1)
    per = [(pred[labels == k] == k).float().mean().item() for k in range(gen.num_classes)]
    return (pred == labels).float().mean().item(), per


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--width", type=int, default=32)
    p.add_argument("--batch-size", type=int, default=64)
    p.add_argument("--precision", default="bf16")
    p.add_argument("--out", default="runs/quality-mnist")
    args = p.parse_args()
    t0 = time.perf_counter()
    summary = ganforge.train_gan(ganforge.GanConfig(
        data="mnist", resolution=32, conditional=True, width=args.width, batch_size=args.batch_size,
        steps=args.steps, precision=args.precision, sample_every=250, ckpt_every=500, progress=False), out=args.out, resume="never")
    train_s = time.perf_counter() - t0
    acc, per = class_accuracy(args.out)
    print(json.dumps({"steps": args.steps, "width": args.width, "batch_size": args.batch_size,
                      "precision": args.precision, "train_seconds": round(train_s, 1),
                      "images_per_s": round(summary["images_per_s"], 1), "class_accuracy": round(acc, 4),
                      "per_class": [round(x, 3) for x in per]}))


if __name__ == "__main__":
    main()

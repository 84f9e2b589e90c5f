"""A conditional DCGAN trained briefly on real MNIST makes the digits it is asked for, with variety.

A small MNIST classifier (trained by ganforge on the real training set, cached) judges the samples:
at least 90 % must be classified as the requested class, and samples of one class must differ from
each other about as much as real digits of one class do (a collapsed generator fails this)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge.data import load_dataset
from ganforge.metrics.classifier import load_classifier

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from quality_mnist import QUALITY_RECIPE, class_accuracy, within_class_spread  # noqa: E402


@pytest.mark.slow
def test_conditional_dcgan_on_mnist_draws_the_requested_digits(tmp_path):
    run = tmp_path / "run"
    untrained = dict(QUALITY_RECIPE, steps=1)
    ganforge.train_gan(ganforge.GanConfig(**untrained, progress=False, tensorboard=False), out=tmp_path / "untrained")
    before, _ = class_accuracy(tmp_path / "untrained")

    ganforge.train_gan(ganforge.GanConfig(**QUALITY_RECIPE, progress=False, tensorboard=False), out=run)
    accuracy, per_class = class_accuracy(run)
    assert accuracy >= 0.90, (accuracy, per_class)
    assert before < 0.3  # it learned this: an untrained generator is at chance

    real = load_dataset("mnist:test", resolution=32, progress=False)
    gen = ganforge.load_generator(run)
    fake_spread = within_class_spread(gen.sample(500, labels=torch.arange(10).repeat(50), seed=7),
                                      torch.arange(10).repeat(50))
    real_spread = within_class_spread(real.images[:2000].float() / 255, real.labels[:2000])
    assert fake_spread > 0.5 * real_spread, (fake_spread, real_spread)

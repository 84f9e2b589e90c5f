"""The MNIST domain classifier: accuracy, caching, and input handling."""

from __future__ import annotations

import time

import pytest
import torch

from conftest import require, SHARED



@pytest.fixture(scope="module")
def classifier():
    require(SHARED / "datasets" / "MNIST" / "raw" / "train-images-idx3-ubyte.gz")
    from ganforge.metrics.classifier import load_classifier

    return load_classifier("mnist", progress=False)


def test_classifier_accuracy_and_cache(classifier):
    from ganforge.metrics import classifier as clf
    from ganforge.metrics._sources import read_idx_split

    assert clf.cache_path("mnist").is_file()
    images, labels = read_idx_split("mnist", "test")
    acc = clf.evaluate_accuracy(classifier, images, labels)
    assert acc >= 0.98, acc
    assert abs(acc - classifier.test_accuracy) < 1e-6  # the metadata records the real figure
    clf._MEMO.clear()  # a second load comes from the safetensors cache, not from training
    start = time.perf_counter()
    again = clf.load_classifier("mnist", progress=False)
    assert time.perf_counter() - start < 5
    for a, b in zip(classifier.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_classifier_accepts_any_size_and_rgb(classifier):
    from ganforge.metrics._sources import read_idx_split

    images, labels = read_idx_split("mnist", "test")
    x = images[:64].float() / 255
    big_rgb = torch.nn.functional.interpolate(x, size=64, mode="bilinear").repeat(1, 3, 1, 1)
    with torch.no_grad():
        logits = classifier(big_rgb)
        feats = classifier.features(x)
    assert logits.shape == (64, 10) and feats.shape == (64, 128)
    assert (logits.argmax(1) == labels[:64]).float().mean() > 0.95


def test_unknown_classifier_dataset_is_a_user_error():
    from ganforge.errors import GanforgeError
    from ganforge.metrics.classifier import load_classifier

    with pytest.raises(GanforgeError, match="no domain classifier"):
        load_classifier("cifar10")

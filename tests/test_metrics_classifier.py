"""The domain classifiers: accuracy, caching, and input handling, for scikit-learn's digits
(always available) and MNIST (when the shared assets are)."""

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
    with torch.no_grad():  # counted here, not by evaluate_accuracy (the function that wrote the metadata)
        predicted = torch.cat([classifier(images[i:i + 1000].float() / 255).argmax(1) for i in range(0, len(images), 1000)])
    acc = (predicted == labels).double().mean().item()
    assert len(predicted) == len(labels) == 10000
    assert acc >= 0.98, acc
    assert abs(acc - classifier.test_accuracy) < 1e-6  # the metadata records the real figure
    assert clf.evaluate_accuracy(classifier, images, labels) == pytest.approx(acc, abs=1e-9)
    clf._MEMO.clear()  # a second load comes from the safetensors cache, not from training
    start = time.perf_counter()
    again = clf.load_classifier("mnist", progress=False)
    assert time.perf_counter() - start < 5
    for a, b in zip(classifier.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def _check_any_size_and_rgb(model, x: torch.Tensor, labels: torch.Tensor) -> None:
    """64 grey images at native size and upsampled to 64×64 RGB: right shapes, still classified."""
    x = x[:64]
    big_rgb = torch.nn.functional.interpolate(x, size=64, mode="bilinear").repeat(1, 3, 1, 1)
    with torch.no_grad():
        logits = model(big_rgb)
        feats = model.features(x)
    assert logits.shape == (64, 10) and feats.shape == (64, 128)
    assert (logits.argmax(1) == labels[:64]).float().mean() > 0.95


def test_classifier_accepts_any_size_and_rgb(classifier):
    from ganforge.metrics._sources import read_idx_split

    images, labels = read_idx_split("mnist", "test")
    _check_any_size_and_rgb(classifier, images[:64].float() / 255, labels)


def _sklearn_digits_test() -> tuple[torch.Tensor, torch.Tensor]:
    """digits:test read straight from scikit-learn (every 5th image), not through ganforge.data:
    float N×1×8×8 in [0, 1] and labels."""
    from sklearn.datasets import load_digits

    bunch = load_digits()
    keep = torch.arange(len(bunch.target))[torch.arange(len(bunch.target)) % 5 == 0]
    images = torch.from_numpy(bunch.images).float()[keep].unsqueeze(1) / 16.0
    return images, torch.from_numpy(bunch.target)[keep].long()


@pytest.fixture(scope="module")
def digits_classifier():
    from ganforge.metrics.classifier import load_classifier

    return load_classifier("digits", progress=False)


def test_digits_classifier_accuracy_and_cache(digits_classifier):
    from ganforge.metrics import classifier as clf

    assert clf.cache_path("digits").is_file()
    images, labels = _sklearn_digits_test()
    assert len(images) == 360
    with torch.no_grad():
        predicted = digits_classifier(images).argmax(1)  # 8×8 in, as `ganforge eval` feeds it
    accuracy = (predicted == labels).float().mean().item()
    assert accuracy >= 0.97, accuracy
    # The metadata's figure (measured on the 32×32 training-size images) is also >= 0.97.
    assert digits_classifier.test_accuracy >= 0.97
    clf._MEMO.clear()  # a second load comes from the safetensors cache, not from training
    start = time.perf_counter()
    again = clf.load_classifier("digits", progress=False)
    assert time.perf_counter() - start < 5
    assert again is not digits_classifier and again.dataset == "digits"
    assert again.state_dict().keys() == digits_classifier.state_dict().keys()
    for a, b in zip(digits_classifier.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)
    with torch.no_grad():
        assert torch.equal(again(images), digits_classifier(images))


def test_digits_classifier_accepts_any_size_and_rgb(digits_classifier):
    _check_any_size_and_rgb(digits_classifier, *_sklearn_digits_test())


def test_unknown_classifier_dataset_is_a_user_error():
    from ganforge.errors import GanforgeError
    from ganforge.metrics.classifier import load_classifier

    with pytest.raises(GanforgeError, match="no domain classifier"):
        load_classifier("cifar10")

"""Metric mathematics on constructed inputs, and the metrics' behaviour on real digit images with
the domain extractor (fast on CPU): FID/KID ~0 on the same distribution, monotone in noise and
blur. Checked on scikit-learn's digits (always available) and on MNIST (when the shared assets are)."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from conftest import SHARED, require

from ganforge.metrics import core


# --- constructed cases ---------------------------------------------------------------------------

def test_fid_of_a_set_with_itself_is_zero_and_matches_closed_form():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 8, generator=g)
    assert abs(core.fid(x, x)) < 1e-8
    # Two Gaussians with identity covariance: FID -> ||mu1 - mu2||² (+ sampling noise)
    y = torch.randn(20000, 8, generator=g) + 1.0
    z = torch.randn(20000, 8, generator=g)
    assert core.fid(y, z) == pytest.approx(8.0, rel=0.03)
    # Closed form with known covariances: S1 = I, S2 = 4I -> Tr(I + 4I - 2·2I) = D
    mu = torch.zeros(8).numpy()
    eye = torch.eye(8, dtype=torch.float64).numpy()
    assert core.frechet_distance(mu, eye, mu, 4 * eye) == pytest.approx(8.0, abs=1e-9)


def test_kid_unbiased_near_zero_on_same_distribution_and_positive_otherwise():
    g = torch.Generator().manual_seed(1)
    x = torch.randn(2000, 16, generator=g)
    a, b = x[:1000], x[1000:]
    mean, std = core.kid(a, b, subsets=50, subset_size=500)
    assert abs(mean) < 2 * std + 1e-4
    shifted, _ = core.kid(a, b + 0.5, subsets=50, subset_size=500)
    assert shifted > 10 * std


def test_inception_score_extremes():
    # Confident and spread over K classes -> IS = K; identical predictions -> IS = 1.
    k = 10
    logits = torch.full((1000, k), -50.0)
    logits[torch.arange(1000), torch.arange(1000) % k] = 50.0
    mean, _ = core.inception_score(logits, splits=1)
    assert mean == pytest.approx(k, rel=1e-6)
    mean, _ = core.inception_score(logits, splits=10)  # random splits are not exactly balanced
    assert k * 0.9 < mean <= k
    mean, _ = core.inception_score(torch.randn(1, k).expand(1000, k), splits=10)
    assert mean == pytest.approx(1.0, abs=1e-9)
    # Uniform predictions are also IS 1: uncertain samples carry no information.
    assert core.inception_score(torch.zeros(100, k))[0] == pytest.approx(1.0)


def test_precision_recall_constructed_cases():
    g = torch.Generator().manual_seed(2)
    real = torch.randn(1000, 16, generator=g)
    subset = real[:200]  # a subset of the real data: all inside the real manifold, covers little
    p, r = core.precision_recall(real, subset, k=3)
    assert p == 1.0
    assert r < 0.9
    far = torch.randn(500, 16, generator=g) + 20.0  # nothing near the real data
    p, r = core.precision_recall(real, far, k=3)
    assert p == 0.0 and r == 0.0
    d, c = core.density_coverage(real, subset, k=5)
    assert c < 0.9 and d > 0.5


# --- real MNIST with the domain extractor ----------------------------------------------------------

@pytest.fixture(scope="module")
def mnist_features():
    require(SHARED / "datasets" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    from ganforge.data import load_dataset
    from ganforge.metrics.extractors import get_extractor

    ds = load_dataset("mnist:test", resolution=28, progress=False)
    perm = torch.randperm(len(ds.images), generator=torch.Generator().manual_seed(0))[:2000]
    images, labels = ds.images[perm], ds.labels[perm]
    ext = get_extractor("mnist", progress=False)
    return ext, images, labels


def _gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    if sigma == 0:
        return x
    radius = int(math.ceil(3 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float32)
    k = torch.exp(-t ** 2 / (2 * sigma ** 2))
    k = (k / k.sum()).view(1, 1, 1, -1)
    y = F.conv2d(F.pad(x, (radius, radius, 0, 0), mode="reflect"), k)
    return F.conv2d(F.pad(y, (0, 0, radius, radius), mode="reflect"), k.transpose(-1, -2))


def _u8(x: torch.Tensor) -> torch.Tensor:
    return x.clamp(0, 1).mul(255).round().to(torch.uint8)


@pytest.fixture(scope="module")
def digits_features():
    """scikit-learn's 1797 digits at 32×32 (the size the digits classifier trains on), shuffled."""
    from ganforge.data import load_dataset
    from ganforge.metrics.extractors import get_extractor

    ds = load_dataset("digits", resolution=32)
    perm = torch.randperm(len(ds.images), generator=torch.Generator().manual_seed(0))
    ext = get_extractor("digits", progress=False)
    return ext, ds.images[perm], ds.labels[perm]


# Each check runs on both data sets: (fixture, images per half, blur sigmas). Digits are upsampled
# from 8×8 and already soft, so their blur levels start higher.
DATASETS = {"mnist": ("mnist_features", 1000, [0.0, 0.7, 1.0, 1.5, 2.5]),
            "digits": ("digits_features", 898, [0.0, 1.0, 1.5, 2.5, 4.0])}


@pytest.fixture(params=list(DATASETS))
def domain(request):
    fixture, half, sigmas = DATASETS[request.param]
    ext, images, labels = request.getfixturevalue(fixture)
    return ext, images, labels, half, sigmas


def test_fid_kid_zero_for_same_distribution(domain):
    ext, images, _, half, _ = domain
    f = ext.extract(images[:2 * half]).features
    a, b = f[:half], f[half:]
    assert abs(core.fid(f, f)) < 1e-6
    halves = core.fid(a, b)
    kid_mean, kid_std = core.kid(a, b, subsets=50, subset_size=min(500, half // 2))
    assert abs(kid_mean) < 2 * kid_std
    # Compared with a clearly different set (noise 0.2), two halves are ~0.
    other = images[half:2 * half].float() / 255
    noisy = ext.extract(_u8(other + 0.2 * torch.randn(other.shape, generator=torch.Generator().manual_seed(3)))).features
    assert halves < 0.05 * core.fid(a, noisy)


@pytest.mark.parametrize("kind", ["noise", "blur"])
def test_fid_kid_grow_monotonically_with_corruption(domain, kind):
    ext, images, _, half, sigmas = domain
    clean = ext.extract(images[:half]).features
    other = images[half:2 * half].float() / 255
    g = torch.Generator().manual_seed(4)
    levels = [0.0, 0.05, 0.1, 0.2, 0.4] if kind == "noise" else sigmas
    fids, kids = [], []
    for level in levels:
        x = other + level * torch.randn(other.shape, generator=g) if kind == "noise" else _gaussian_blur(other, level)
        f = ext.extract(_u8(x)).features
        fids.append(core.fid(clean, f))
        kids.append(core.kid(clean, f, subsets=20, subset_size=min(500, half // 2), seed=0)[0])
    assert all(b > a for a, b in zip(fids, fids[1:])), fids
    assert all(b > a for a, b in zip(kids, kids[1:])), kids


def test_domain_inception_score(domain):
    ext, images, labels, half, _ = domain
    size = images.shape[-1]
    logits = ext.extract(images[:2 * half]).logits
    is_all, _ = core.inception_score(logits, splits=10)
    assert 8.5 < is_all <= 10.0  # ten balanced, confidently recognised classes
    ones = ext.extract(images[:2 * half][labels[:2 * half] == 1]).logits
    assert core.inception_score(ones, splits=5)[0] < 1.3  # one class: no diversity
    noise = torch.randint(0, 256, (500, 1, size, size), generator=torch.Generator().manual_seed(5), dtype=torch.uint8)
    assert core.inception_score(ext.extract(noise).logits, splits=5)[0] < 2.0


@pytest.mark.parametrize("dataset", ["mnist", "digits"])
def test_evaluate_records_protocol_and_warns_for_small_n(dataset):
    if dataset == "mnist":
        require(SHARED / "datasets" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    from ganforge.metrics.evaluation import EvalWarning, evaluate

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        results = evaluate(f"{dataset}:test", f"{dataset}:train", metrics="fid,kid,is,pr", n=300, progress=False)
    assert any(issubclass(w.category, EvalWarning) and "FID with n=300" in str(w.message) for w in caught)
    by = {r.metric: r for r in results}
    assert set(by) == {"fid", "kid", "is", "precision", "recall"}
    p = by["fid"].as_dict()
    for key in ("value", "n_a", "n_b", "extractor", "seed", "ganforge_version", "a", "b"):
        assert key in p
    assert p["extractor"]["extractor"] == dataset and len(p["extractor"]["weights_sha256"]) == 64
    assert p["a"]["source"] == f"{dataset}:test" and p["b"]["source"] == f"{dataset}:train"
    assert p["a"]["dtype"] == "uint8" and p["n_a"] == p["n_b"] == 300
    assert "warning" in p
    # Same distribution, but FID carries a large small-n bias at n=300 (digits at 8×8: ~28 measured).
    assert 0 < by["fid"].value < {"mnist": 20, "digits": 40}[dataset] and by["is"].value > 8
    assert by["precision"].value > 0.7 and by["recall"].value > 0.7

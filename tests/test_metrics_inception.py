"""The standard Inception path: ganforge's FID equals torch-fidelity's own ``calculate_metrics`` on
the same two folders (run offline with the shared weights), and IS states what it needs.

Inception on CPU is slow (a few images/s on 2 busy cores), so few images are used; FID at this n
is only a consistency check, not a meaningful score."""

from __future__ import annotations

import pytest
import torch

from conftest import SHARED, require

N = 16  # per folder


@pytest.fixture(scope="module")
def one_thread():
    # Inception on a shared 2-core machine: one intra-op thread avoids oversubscription stalls.
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def folders(tmp_path_factory, one_thread):
    require(SHARED / "datasets" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    from ganforge.data import load_dataset
    from ganforge.imageio import save_image

    ds = load_dataset("mnist:test", resolution=28, max_images=2 * N, progress=False)
    root = tmp_path_factory.mktemp("fid-folders")
    out = []
    for name, part in (("a", ds.images[:N]), ("b", ds.images[N:2 * N])):
        folder = root / name
        for i, img in enumerate(part):
            save_image(img.float() / 255, folder / f"{i:03d}.png")
        out.append(folder)
    return out


@pytest.fixture(scope="module")
def inception(one_thread):
    require(SHARED / "weights" / "pt_inception-2015-12-05-nofc.pth")
    from ganforge.metrics.extractors import get_extractor

    return get_extractor("inception", progress=False)


def test_nofc_file_loads_with_only_fc_missing(inception):
    from ganforge import weights

    state = weights.load_state_dict(inception.path)
    own = set(inception.net.state_dict())
    assert own - set(state) == (set() if inception.has_logits else {"fc.weight", "fc.bias"})
    assert set(state) <= own


def test_fid_equals_torch_fidelity_calculate_metrics(folders, inception, tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))  # no feature cache: compute both sides
    torch_fidelity = pytest.importorskip("torch_fidelity")
    from ganforge import weights
    from ganforge.metrics.evaluation import evaluate

    # torch-fidelity's loader needs a full state dict file; give it ours (+ a zero fc, unused by FID).
    state = dict(weights.load_state_dict(inception.path))
    state.setdefault("fc.weight", torch.zeros(1008, 2048))
    state.setdefault("fc.bias", torch.zeros(1008))
    tf_weights = tmp_path / "inception-for-torch-fidelity.pth"
    torch.save(state, tf_weights)
    theirs = torch_fidelity.calculate_metrics(
        input1=str(folders[0]), input2=str(folders[1]), fid=True, cuda=False, cache=False, verbose=False,
        feature_extractor="inception-v3-compat", feature_extractor_weights_path=str(tf_weights),
        batch_size=N)["frechet_inception_distance"]
    ours = evaluate(str(folders[0]), str(folders[1]), metrics="fid", extractor="inception", progress=False)
    print(f"ganforge FID {ours[0].value!r}, torch-fidelity FID {theirs!r}")
    assert ours[0].value == pytest.approx(theirs, abs=1e-3)
    assert ours[0].protocol["extractor"]["weights_sha256"] == weights.WEIGHTS.get(inception.weights_name).sha256
    # and the same set against itself is ~0 (the covariance is rank-deficient at this n, the means equal)
    same = evaluate(str(folders[0]), str(folders[0]), metrics="fid", extractor="inception", progress=False)
    assert abs(same[0].value) < 1e-2


def test_inception_score_needs_the_full_file(inception):
    from ganforge.errors import GanforgeError
    from ganforge.metrics import core
    from ganforge.metrics.evaluation import evaluate

    if not inception.has_logits:
        with pytest.raises(GanforgeError, match="needs the full Inception file"):
            evaluate("mnist:test", "mnist:test", metrics="is", extractor="inception", n=4, progress=False)
        pytest.skip("IS of uniform noise ~1 needs pt_inception-2015-12-05-6726825d.pth (with fc); "
                    "only the no-fc stand-in is present")
    noise = torch.randint(0, 256, (32, 3, 64, 64), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    mean, _ = core.inception_score(inception.extract(noise).logits, splits=1)
    assert mean < 2.0

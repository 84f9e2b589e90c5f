"""The standard Inception path: ganforge's FID equals torch-fidelity's own ``calculate_metrics`` on
the same two folders (run offline with the shared weights), and IS states what it needs. Without
the shared weights the same path is checked with random weights in the official layout: strict
loading, FID and IS equal to torch-fidelity's, and one-line errors for a file that does not fit.

Inception on CPU is slow (a few images/s on 2 busy cores), so few images are used; FID at this n
is only a consistency check, not a meaningful score."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from conftest import SHARED, require

N = 16  # per folder




@pytest.fixture(scope="module")
def folders(tmp_path_factory, one_thread_module):
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
def inception(one_thread_module):
    require(SHARED / "weights" / "pt_inception-2015-12-05-nofc.pth")
    from ganforge.metrics.extractors import get_extractor

    return get_extractor("inception", progress=False)


def test_nofc_file_loads_with_only_fc_missing(inception):
    from ganforge import weights

    state = weights.load_state_dict(inception.path)
    own = set(inception.net.state_dict())
    assert own - set(state) == (set() if inception.has_logits else {"fc.weight", "fc.bias"})
    assert set(state) <= own


@pytest.mark.filterwarnings("ignore:FID with n=16:UserWarning")  # 16 images on purpose: parity, not quality
@pytest.mark.filterwarnings("ignore:This DataLoader will create:UserWarning")  # torch-fidelity's own loader
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


# --------------------------------------------------------------------------- the fast path vs the reference path
# The default InceptionExtractor runs a folded (conv+BN -> one conv), channels_last copy of
# torch-fidelity's network after a separable but bit-identical TF1 resize; fast=False runs
# torch-fidelity's module itself. Tolerances: the resize is exact (torch.equal); features agree to
# 1e-4 of their largest magnitude (measured ~2e-6 relative: fp32 rounding order only); FID to 1e-3.
FEATURE_RTOL = 1e-4


@pytest.mark.parametrize("shape", [(2, 3, 28, 28), (2, 1, 28, 28), (1, 3, 45, 61), (1, 3, 299, 299), (1, 1, 320, 300)])
def test_fast_resize_is_torch_fidelitys_bit_for_bit(shape):
    from torch_fidelity.interpolate_compat_tensorflow import interpolate_bilinear_2d_like_tensorflow1x

    from ganforge.metrics.extractors import _resize_like_torch_fidelity

    x = torch.randint(0, 256, shape, generator=torch.Generator().manual_seed(sum(shape)), dtype=torch.uint8)
    theirs = interpolate_bilinear_2d_like_tensorflow1x(x.float(), size=(299, 299), align_corners=False)
    assert torch.equal(_resize_like_torch_fidelity(x, 299), theirs)


def _assert_fast_matches_reference(fast, reference, images_a, images_b):
    from ganforge.metrics import core

    fa, fb = fast.extract(images_a), fast.extract(images_b)
    ra, rb = reference.extract(images_a), reference.extract(images_b)
    for f, r in ((fa, ra), (fb, rb)):
        scale = float(r.features.abs().max())
        assert float((f.features - r.features).abs().max()) <= FEATURE_RTOL * scale
        if r.logits is not None:
            assert float((f.logits - r.logits).abs().max()) <= FEATURE_RTOL * float(r.logits.abs().max())
    fid_fast, fid_ref = core.fid(fa.features, fb.features), core.fid(ra.features, rb.features)
    print(f"FID fast {fid_fast!r} vs reference path {fid_ref!r}")
    assert fid_ref > 1.0 and abs(fid_fast - fid_ref) < 1e-3


def test_fast_path_matches_reference_path_real_weights(inception):
    """With the shared weights: fast (default) vs fast=False on MNIST digits (grey input) and
    3-channel noise; the FID between 12 digits and 12 other digits agrees to 1e-3."""
    from ganforge.data import load_dataset
    from ganforge.metrics.extractors import InceptionExtractor

    require(SHARED / "datasets" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    assert inception.fast and inception.protocol()["path"].startswith("ganforge fast path")
    images = load_dataset("mnist:test", resolution=28, max_images=24, progress=False).images
    reference = InceptionExtractor(inception.weights_name, fast=False)
    _assert_fast_matches_reference(inception, reference, images[:12], images[12:])
    assert inception.cache_key() == reference.cache_key()  # same features up to fp32 rounding


def test_fast_path_matches_reference_path_random_weights(random_inception):
    """Offline: the same with random weights in the official layout (with fc: logits too), on
    3-channel colour images of two distributions."""
    from ganforge.metrics.extractors import InceptionExtractor

    fast, reference = InceptionExtractor("inception-fid"), InceptionExtractor("inception-fid", fast=False)
    g = torch.Generator().manual_seed(1)
    a = torch.randint(0, 200, (6, 3, 32, 32), generator=g, dtype=torch.uint8)
    b = torch.randint(60, 256, (6, 3, 32, 32), generator=g, dtype=torch.uint8)
    _assert_fast_matches_reference(fast, reference, a, b)


def test_fast_path_precision_options(random_inception):
    from ganforge.errors import GanforgeError
    from ganforge.metrics.extractors import InceptionExtractor

    with pytest.raises(GanforgeError, match="precision"):
        InceptionExtractor("inception-fid", precision="fp8")
    with pytest.raises(GanforgeError, match="fast"):
        InceptionExtractor("inception-fid", fast=False, precision="bf16")
    fp32, bf16 = InceptionExtractor("inception-fid"), InceptionExtractor("inception-fid", precision="bf16")
    assert fp32.cache_key() != bf16.cache_key() and "bf16" in bf16.protocol()["path"]


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


# --------------------------------------------------------------------------- offline: random weights, official layout
# Without the real file, the loading path and the parity with torch-fidelity are still checked:
# random (but well-scaled) weights in the official file's exact key layout, saved under the
# registered file name, with the registry's sha256 swapped for that file's.

N_RANDOM = 8  # per folder: Inception at 299×299 on one CPU thread is the cost here


def _official_layout_state(seed: int = 0) -> dict[str, torch.Tensor]:
    """Random weights keyed as the official file is: torch-fidelity's FeatureExtractorInceptionV3,
    which loads that file strictly (built here with its download and load switched off)."""
    from unittest import mock

    import torch_fidelity.feature_extractor_inceptionv3 as tfi

    with mock.patch.object(tfi, "load_state_dict_from_url", lambda *a, **k: {}), \
            mock.patch.object(tfi.FeatureExtractorInceptionV3, "load_state_dict", lambda self, *a, **k: None):
        net = tfi.FeatureExtractorInceptionV3("inception-v3-compat", ["2048"])
    g = torch.Generator().manual_seed(seed)

    def rand(shape, scale=1.0, shift=0.0):
        return torch.randn(shape, generator=g) * scale + shift

    state = {}
    for key, value in net.state_dict().items():
        leaf = key.rsplit(".", 2)[-2:]
        if leaf == ["conv", "weight"]:  # He init: activations keep their scale through the depth
            state[key] = rand(value.shape, (2.0 / value[0].numel()) ** 0.5)
        elif leaf[0] == "bn" and leaf[1] in ("weight", "bias", "running_mean", "running_var"):
            state[key] = {"weight": rand(value.shape, 0.1, 1.0), "bias": rand(value.shape, 0.1),
                          "running_mean": rand(value.shape, 0.1),
                          "running_var": torch.rand(value.shape, generator=g) + 0.5}[leaf[1]]
        elif leaf == ["bn", "num_batches_tracked"]:
            state[key] = torch.zeros_like(value)
        elif key in ("fc.weight", "fc.bias"):
            # large enough that the logits differ between images (IS clearly above 1)
            state[key] = rand(value.shape, 2.0 if key == "fc.weight" else 0.1)
        else:
            raise AssertionError(f"unexpected key in torch-fidelity's InceptionV3: {key}")
    return state


@pytest.fixture(scope="module")
def random_files(tmp_path_factory, one_thread_module):
    """The random state saved as both registered files (with fc, and the no-fc variant); -> info."""
    pytest.importorskip("torch_fidelity")
    from ganforge import weights
    from ganforge.download import sha256_file

    root = tmp_path_factory.mktemp("random-inception")
    state = _official_layout_state()
    files, digests = {}, {}
    for name, drop in (("inception-fid", ()), ("inception-fid-nofc", ("fc.weight", "fc.bias"))):
        path = root / "both" / weights.WEIGHTS.get(name).filename
        path.parent.mkdir(exist_ok=True)
        torch.save({k: v for k, v in state.items() if k not in drop}, path)
        files[name], digests[name] = path, sha256_file(path)
    only_nofc = root / "only-nofc"
    only_nofc.mkdir()
    (only_nofc / files["inception-fid-nofc"].name).symlink_to(files["inception-fid-nofc"])
    return {"state": state, "files": files, "digests": digests, "both": root / "both", "only_nofc": only_nofc}


def test_random_layout_is_the_real_files_layout(random_files):
    """With the shared file present: the layout built above is exactly the real file's (+ fc)."""
    from ganforge import weights

    real = weights.load_state_dict(require(SHARED / "weights" / "pt_inception-2015-12-05-nofc.pth"))
    made = random_files["state"]
    assert set(made) - set(real) == {"fc.weight", "fc.bias"} and set(real) <= set(made)
    assert all(made[k].shape == real[k].shape and made[k].dtype == real[k].dtype for k in real)


@pytest.fixture
def random_inception(random_files, tmp_path, monkeypatch):
    """GANFORGE_WEIGHTS_DIR holding the random files, the registry expecting their sha256, an empty
    cache and no memoised extractor."""
    from ganforge import weights
    from ganforge.metrics import extractors

    for name, digest in random_files["digests"].items():
        monkeypatch.setitem(weights.WEIGHTS._items, name, dataclasses.replace(weights.WEIGHTS.get(name), sha256=digest))
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(random_files["both"]))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setattr(extractors, "_MEMO", {})
    return random_files


@pytest.fixture(scope="module")
def made_folders(tmp_path_factory):
    """Two folders of N_RANDOM 32×32 RGB images from different distributions (smooth colour noise;
    B brighter), made here."""
    from ganforge.imageio import save_image

    root = tmp_path_factory.mktemp("made-folders")
    g = torch.Generator().manual_seed(0)
    out = []
    for name, lift in (("a", 0.0), ("b", 0.25)):
        small = torch.rand(N_RANDOM, 3, 8, 8, generator=g)
        images = (torch.nn.functional.interpolate(small, size=32, mode="bicubic", align_corners=False) + lift).clamp(0, 1)
        for i, img in enumerate(images):
            save_image(img, root / name / f"{i:03d}.png")
        out.append(root / name)
    return out


def test_random_official_layout_fid_and_is_equal_torch_fidelity(random_inception, made_folders):
    import torch_fidelity

    from ganforge.metrics.evaluation import evaluate
    from ganforge.metrics.extractors import get_extractor

    ext = get_extractor("inception", progress=False)
    assert ext.weights_name == "inception-fid" and ext.has_logits  # the full file is preferred
    assert ext.path == random_inception["files"]["inception-fid"]
    a, b = (str(f) for f in made_folders)
    with pytest.warns(UserWarning):  # small n
        ours = {r.metric: r for r in evaluate(a, b, metrics="fid,is", extractor="inception", is_splits=1,
                                              progress=False)}
    theirs = torch_fidelity.calculate_metrics(
        input1=a, input2=b, fid=True, isc=True, isc_splits=1, cuda=False, cache=False, verbose=False,
        save_cpu_ram=True, feature_extractor="inception-v3-compat",
        feature_extractor_weights_path=str(random_inception["files"]["inception-fid"]), batch_size=N_RANDOM)
    print(f"ganforge FID {ours['fid'].value!r} IS {ours['is'].value!r}; torch-fidelity {theirs!r}")
    assert ours["fid"].value > 1.0  # different distributions, and features that are not degenerate
    assert ours["is"].value > 1.2
    assert ours["fid"].value == pytest.approx(theirs["frechet_inception_distance"], rel=1e-5)
    # 1e-5, not 1e-6: the default fast path differs from torch-fidelity by fp32 rounding order
    # (measured: IS 2.4e-6 relative with these deliberately large random logits; FID 5e-8).
    assert ours["is"].value == pytest.approx(theirs["inception_score_mean"], rel=1e-5)
    assert ours["fid"].protocol["extractor"]["weights_sha256"] == random_inception["digests"]["inception-fid"]
    # The same set against itself is ~0 (features come from the cache the first call wrote).
    with pytest.warns(UserWarning):
        same = evaluate(a, a, metrics="fid", extractor="inception", progress=False)
    assert abs(same[0].value) < 1e-2 * ours["fid"].value


def test_random_nofc_layout_loads_with_only_fc_missing(random_inception, monkeypatch):
    from ganforge import weights
    from ganforge.errors import GanforgeError
    from ganforge.metrics import core
    from ganforge.metrics.evaluation import evaluate
    from ganforge.metrics.extractors import InceptionExtractor, get_extractor

    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(random_inception["only_nofc"]))
    ext = get_extractor("inception", progress=False)  # only the no-fc file present: it is chosen
    assert ext.weights_name == "inception-fid-nofc" and not ext.has_logits
    state = weights.load_state_dict(ext.path)
    assert set(ext.net.state_dict()) - set(state) == {"fc.weight", "fc.bias"} and set(state) <= set(ext.net.state_dict())
    with pytest.raises(GanforgeError, match="needs the full Inception file"):
        evaluate("digits:test", "digits:test", metrics="is", extractor="inception", n=4, progress=False)
    # Same pool3 weights as the full file, so the same features.
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(random_inception["both"]))
    full = InceptionExtractor("inception-fid")
    x = torch.randint(0, 256, (2, 3, 32, 32), generator=torch.Generator().manual_seed(0), dtype=torch.uint8)
    fa, fb = ext.extract(x), full.extract(x)
    assert fa.logits is None and fb.logits.shape == (2, 1008)
    assert torch.equal(fa.features, fb.features) and fa.features.std() > 0
    assert core.inception_score(fb.logits, splits=1)[0] >= 1.0


@pytest.mark.parametrize("change", ["renamed", "missing", "reshaped"])
def test_layout_mismatch_is_a_one_line_error(random_inception, tmp_path, monkeypatch, change):
    from ganforge import weights
    from ganforge.download import sha256_file
    from ganforge.errors import WeightsError
    from ganforge.metrics.extractors import get_extractor

    key = "Mixed_7c.branch_pool.conv.weight"
    state = dict(random_inception["state"])
    if change == "renamed":
        state["Mixed_7c.branch_pool.conv.weights"] = state.pop(key)
    elif change == "missing":
        del state[key]
    else:
        state[key] = state[key][:, :-1]
    path = tmp_path / "weights" / weights.WEIGHTS.get("inception-fid").filename
    path.parent.mkdir()
    torch.save(state, path)
    entry = dataclasses.replace(weights.WEIGHTS.get("inception-fid"), sha256=sha256_file(path))
    monkeypatch.setitem(weights.WEIGHTS._items, "inception-fid", entry)
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(path.parent))
    with pytest.raises(WeightsError) as info:
        get_extractor("inception", progress=False)
    message = str(info.value)
    assert "\n" not in message and str(path) in message and key in message
    if change == "renamed":
        assert "Mixed_7c.branch_pool.conv.weights" in message  # the unexpected key is named too
    if change == "reshaped":
        assert "shape" in message

"""``ganforge eval`` / ``ganforge similarity`` end to end, the memorisation report, and the
in-training evaluator, with the domain extractor (fast on CPU): on scikit-learn's digits (always
available) and on real MNIST (when the shared assets are)."""

from __future__ import annotations

import json

import pytest
import torch

from conftest import CONTENT_DIR, SHARED, require


@pytest.fixture(scope="module")
def mnist_test():
    require(SHARED / "datasets" / "MNIST" / "raw" / "t10k-images-idx3-ubyte.gz")
    from ganforge.data import load_dataset

    return load_dataset("mnist:test", resolution=28, progress=False)


@pytest.fixture(scope="module")
def digits_test():
    from ganforge.data import load_dataset

    return load_dataset("digits:test", resolution=8, progress=False)  # 360 images, native 8×8


# dataset name -> (test-split fixture, its size, native resolution, minimum classifier accuracy)
DATASETS = {"mnist": ("mnist_test", 10000, 28, 0.98), "digits": ("digits_test", 360, 8, 0.97)}


@pytest.fixture(params=list(DATASETS))
def domain(request):
    """(name, test split, its size, resolution, minimum accuracy) for each dataset the checks run on."""
    fixture, size, resolution, accuracy = DATASETS[request.param]
    return request.param, request.getfixturevalue(fixture), size, resolution, accuracy


def test_cli_eval_writes_protocol_json_and_one_line_per_metric(tmp_path, capsys, domain):
    from ganforge.cli import main

    name, _, size, _, accuracy = domain
    n = "400" if name == "mnist" else "300"
    out = tmp_path / "eval.json"
    rc = main(["eval", f"{name}:test", f"{name}:train", "--n", n, "--metrics", "fid,kid,pr", "--json", str(out),
               "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0
    lines = [line for line in captured.out.splitlines() if not line.startswith("wrote")]
    assert [line.split()[0] for line in lines] == ["fid", "kid", "precision", "recall"]
    assert f"FID with n={n}" in captured.err and "KID" in captured.err
    doc = json.loads(out.read_text())
    fid = doc["results"][0]
    assert fid["metric"] == "fid" and fid["n_a"] == int(n) and fid["n_b"] == int(n)
    assert fid["extractor"]["extractor"] == name and fid["extractor"]["classifier_test_accuracy"] >= accuracy
    assert fid["a"]["subset"].startswith(f"{n} of {size}") and fid["seed"] == 0 and fid["ganforge_version"]
    kid = doc["results"][1]
    assert kid["std"] is not None and "subsets" in kid["details"]
    # Same command, same number: seeded subsets and a deterministic extractor.
    main(["eval", f"{name}:test", f"{name}:train", "--n", n, "--metrics", "fid", "--json", str(tmp_path / "b.json"),
          "--quiet"])
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["value"] == pytest.approx(fid["value"], abs=1e-9)


def test_cli_eval_explicit_digits_extractor_on_folders(tmp_path, capsys, digits_test):
    """--extractor digits on two image folders (nothing to auto-detect it from)."""
    from ganforge.cli import main
    from ganforge.imageio import save_image

    for folder, part in (("a", digits_test.images[:150]), ("b", digits_test.images[150:300])):
        for i, img in enumerate(part):
            save_image(img.float() / 255, tmp_path / folder / f"{i:03d}.png")
    out = tmp_path / "eval.json"
    assert main(["eval", str(tmp_path / "a"), str(tmp_path / "b"), "--metrics", "kid", "--extractor", "digits",
                 "--json", str(out), "--quiet"]) == 0
    kid = json.loads(out.read_text())["results"][0]
    assert kid["extractor"]["extractor"] == "digits" and kid["a"]["kind"] == "folder" and kid["n_a"] == 150
    assert kid["a"]["size"] == "8x8" and kid["a"]["channels"] == 1  # read at native size, greyscale
    assert capsys.readouterr().out.startswith("kid")


def test_cli_eval_user_errors_are_one_line(capsys):
    from ganforge.cli import main

    assert main(["eval", "mnist:test", "mnist:train", "--metrics", "fid,bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown metric" in err
    assert main(["eval", "no/such/dir", "digits", "--n", "10"]) == 2
    assert "no/such/dir" in capsys.readouterr().err


def test_nearest_flags_copies_of_training_images(tmp_path, capsys, domain):
    from ganforge.cli import main
    from ganforge.imageio import save_image

    name, reference, *_ = domain
    folder = tmp_path / "generated"
    g = torch.Generator().manual_seed(0)
    for i in range(8):  # exact copies of "training" images
        save_image(reference.images[100 + i].float() / 255, folder / f"copy{i}.png")
    for i in range(8):  # genuinely new images: two training digits averaged, plus noise
        x = (reference.images[200 + i].float() + reference.images[300 + i].float()) / 510
        save_image((x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1), folder / f"new{i}.png")
    report_dir = tmp_path / "near"
    rc = main(["eval", str(folder), f"{name}:test", "--metrics", "kid", "--nearest", "3", "--out", str(report_dir),
               "--quiet", "--json", str(tmp_path / "e.json")])
    assert rc == 0
    report = json.loads((report_dir / "nearest.json").read_text())
    assert (report_dir / "nearest_grid.png").stat().st_size > 0 and (report_dir / "nearest_hist.png").is_file()
    names = sorted(p.name for p in folder.iterdir())
    flagged = sorted(names[c["index"]] for c in report["near_copies"])
    assert flagged == [f"copy{i}.png" for i in range(8)]
    assert all(c["pixel_rmse"] < 1e-6 for c in report["near_copies"])
    assert "predicted_class_histogram" in report["diversity"]
    assert "near-copies" in capsys.readouterr().out


def test_in_training_evaluator_ranks_real_above_noise_and_caches_reference(domain, monkeypatch):
    from ganforge import paths
    from ganforge.metrics import InTrainingEvaluator

    name, reference, _, res, _ = domain
    # n=500 for MNIST; digits:test has 360 images, so 300 there (FID's small-n bias is larger).
    n, bound, start = (500, 40, 5000) if name == "mnist" else (300, 60, 0)
    real = reference.images[start:start + n].float() / 255
    cache = paths.home() / "cache" / "features"
    ev = InTrainingEvaluator(f"{name}:train", metric="fid", n_samples=n, resolution=res, channels=1)
    assert any(cache.glob(f"{name}-*.safetensors"))
    # The reference features come from that cache the second time: nothing is extracted again.
    extracted = []
    with monkeypatch.context() as patch:  # get_extractor is memoised: this is the same object
        patch.setattr(ev.extractor, "extract", lambda images, **kw: extracted.append(len(images)))
        again = InTrainingEvaluator(f"{name}:train", metric="fid", n_samples=n, resolution=res, channels=1)
    assert extracted == [] and torch.equal(again.ref_features, ev.ref_features)
    calls = []

    def real_fn(n: int) -> torch.Tensor:
        start = sum(calls)
        calls.append(n)
        return real[start:start + n]

    good = ev(real_fn)
    bad = ev(lambda k: torch.rand(k, 1, res, res, generator=torch.Generator().manual_seed(k)))
    # real vs real is ~20 for MNIST at n=500, ~28 for digits at n=300 (FID is biased upwards at small n)
    assert 0 <= good < bound < bad
    assert bad > 5 * good
    kid = InTrainingEvaluator(f"{name}:train", metric="kid", n_samples=n, resolution=res, channels=1)
    calls.clear()
    assert kid(real_fn) < kid(lambda k: torch.rand(k, 1, res, res))


def _check_similarity(x, other, digits, same_class, features, noise_shape, tmp_path, capsys) -> None:
    """SSIM in % ranks identical > noisy > unrelated; classifier-feature cosine ranks a digit's own
    class above noise; the CLI prints one line and writes the same number as JSON."""
    from ganforge.cli import main
    from ganforge.imageio import save_image
    from ganforge.metrics import similarity, ssim

    assert float(ssim(x[None], x[None])[0]) == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    s_noisy = similarity(x, noisy, features=None)["ssim_percent"]
    s_other = similarity(x, other, features=None)["ssim_percent"]
    assert 100 > s_noisy > 50 > s_other

    r = similarity(digits[:1], digits[:1], features=features)
    assert r["ssim_percent"] == pytest.approx(100) and r["feature_cosine_percent"] == pytest.approx(100, abs=1e-4)
    close = similarity(digits[:1], same_class, features=features)["feature_cosine_percent"]
    far = similarity(digits[:1], torch.rand(noise_shape, generator=torch.Generator().manual_seed(1)),
                     features=features)["feature_cosine_percent"]
    assert close > far

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    save_image(x, a)
    save_image(noisy, b)
    assert main(["similarity", str(a), str(b), "--features", "none", "--json", str(tmp_path / "s.json")]) == 0
    assert capsys.readouterr().out.startswith("ssim ")
    assert json.loads((tmp_path / "s.json").read_text())["ssim_percent"] == pytest.approx(s_noisy, abs=0.5)


def test_similarity_percentages(tmp_path, mnist_test, capsys):
    from ganforge.imageio import load_image

    x = load_image(require(CONTENT_DIR / "cornell.jpg"))[:, :256, :256]
    other = load_image(require(CONTENT_DIR / "sailboat.jpg"))[:, :256, :256]
    digits = mnist_test.images[:4].float() / 255
    same_class = mnist_test.images[mnist_test.labels == mnist_test.labels[0]][1:2].float() / 255
    _check_similarity(x, other, digits, same_class, "mnist", (1, 1, 28, 28), tmp_path, capsys)


def _texture(seed: int) -> torch.Tensor:
    """A photo stand-in: 3×256×256 smooth random texture (bicubic-upsampled 64×64 noise)."""
    x = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(seed))
    return torch.nn.functional.interpolate(x, size=256, mode="bicubic", align_corners=False).clamp(0, 1)[0]


def test_similarity_percentages_on_made_images(tmp_path, digits_test, capsys):
    """The same checks on images made here and scikit-learn's digits (no assets)."""
    digits = digits_test.images[:4].float() / 255
    same_class = digits_test.images[digits_test.labels == digits_test.labels[0]][1:2].float() / 255
    _check_similarity(_texture(0), _texture(1), digits, same_class, "digits", (1, 1, 8, 8), tmp_path, capsys)


def test_eval_of_a_run_directory_samples_the_generator(tmp_path, monkeypatch, domain):
    import ganforge.sample
    from ganforge.metrics.evaluation import evaluate

    name, reference, _, res, _ = domain
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    start = 2000 if name == "mnist" else 0
    real = reference.images[start:start + 300].float() / 255
    seen = []

    class FakeGenerator:  # stands in for a trained run: returns real digits, records the call
        num_classes, channels, resolution, step = 0, 1, res, 7

        def sample(self, n, labels=None, seed=0, truncation=1.0, ema=True):
            seen.append((n, seed, truncation, ema))
            return real[seed:seed + n]

    monkeypatch.setattr(ganforge.sample, "load_generator", lambda run_dir: FakeGenerator())
    from ganforge.metrics.evaluation import EvalWarning

    with pytest.warns(EvalWarning, match="n=300"):  # small-n FID says it is biased
        result = evaluate(str(run), f"{name}:test", metrics="fid", n=300, progress=False)[0]
    assert seen == [(256, 0, 1.0, True), (44, 256, 1.0, True)]
    a = result.protocol["a"]
    assert a["kind"] == "run" and a["step"] == 7 and a["n"] == 300 and "uint8" in a["quantised"]
    assert result.value < 25  # real digits against real digits (FID at n=300 carries ~15 of bias)


def _ssim_reference(a, b) -> float:
    """Wang et al. 2004 written out independently in NumPy (float64, explicit window loop):
    11×11 Gaussian σ=1.5, K1=0.01, K2=0.03, data range 1, valid windows, mean over windows."""
    import numpy as np

    g = np.exp(-((np.arange(11) - 5.0) ** 2) / (2 * 1.5 ** 2))
    w = np.outer(g, g) / np.outer(g, g).sum()
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    values = []
    for i in range(a.shape[0] - 10):
        for j in range(a.shape[1] - 10):
            pa, pb = a[i:i + 11, j:j + 11], b[i:i + 11, j:j + 11]
            ma, mb = (w * pa).sum(), (w * pb).sum()
            va, vb = (w * (pa - ma) ** 2).sum(), (w * (pb - mb) ** 2).sum()
            cov = (w * (pa - ma) * (pb - mb)).sum()
            values.append((2 * ma * mb + c1) * (2 * cov + c2) / ((ma ** 2 + mb ** 2 + c1) * (va + vb + c2)))
    return float(np.mean(values))


def test_ssim_equals_known_values():
    """SSIM against values it must have, not only SSIM(x, x) = 1: two flat greys (closed form:
    only the luminance term is left), and noisy / blurred / shifted images against an independent
    NumPy implementation of the formula."""
    from ganforge.metrics import ssim

    c1 = 0.01 ** 2
    for u, v in ((0.5, 0.6), (0.2, 0.8)):  # float32 variances of flat images are ~1e-8, not 0: abs 5e-4
        flat_a, flat_b = torch.full((1, 3, 16, 16), u), torch.full((1, 3, 16, 16), v)
        assert float(ssim(flat_a, flat_b)[0]) == pytest.approx((2 * u * v + c1) / (u ** 2 + v ** 2 + c1), abs=5e-4)

    g = torch.Generator().manual_seed(0)
    x = torch.nn.functional.interpolate(torch.rand(1, 1, 6, 6, generator=g), size=24, mode="bicubic",
                                        align_corners=False).clamp(0, 1)
    noisy = (x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1)
    blurred = torch.nn.functional.avg_pool2d(x, 3, stride=1, padding=1, count_include_pad=False)
    shifted = torch.roll(x, 2, dims=3)
    for y in (noisy, blurred, shifted, 1 - x):
        expected = _ssim_reference(x[0, 0].double().numpy(), y[0, 0].double().numpy())
        assert float(ssim(x, y)[0]) == pytest.approx(expected, abs=1e-4)
    assert float(ssim(x, 1 - x)[0]) < 0  # anti-correlated structure


def test_eval_of_a_run_measures_it_against_the_reference_prepared_as_its_training_data(tmp_path, monkeypatch, domain):
    """A run trained above a dataset's native size learnt resized images: ``eval RUN split`` loads
    the split at the run's resolution, as training did (and as the in-training evaluator does).
    Against native-size digits the same samples were penalised for the resize alone."""
    import ganforge.sample
    from ganforge.data import load_dataset
    from ganforge.metrics.evaluation import EvalWarning, evaluate

    name, _, size, native, _ = domain
    n = min(size, 1000)  # less small-n bias where the split allows
    res = {28: 32, 8: 16}[native]  # the next power of two, as a user would train at
    resized = load_dataset(f"{name}:test", resolution=res, progress=False)  # what a run at res trains on
    real = resized.images[:n].float() / 255  # a generator that draws its data exactly

    class FakeGenerator:
        num_classes, channels, resolution, step = 0, 1, res, 7

        def sample(self, n, labels=None, seed=0, truncation=1.0, ema=True):
            return real[seed:seed + n]

    monkeypatch.setattr(ganforge.sample, "load_generator", lambda run_dir: FakeGenerator())
    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    with pytest.warns(EvalWarning):
        default = evaluate(str(run), f"{name}:test", metrics="fid", n=n, progress=False)[0]
        native_b = evaluate(str(run), f"{name}:test", metrics="fid", n=n, resolution=native, progress=False)[0]
    assert default.protocol["b"]["size"] == f"{res}x{res}"
    assert f"to {res}" in default.protocol["b"]["resize"]
    assert native_b.protocol["b"]["size"] == f"{native}x{native}"
    assert default.value < 0.7 * native_b.value, (default.value, native_b.value)

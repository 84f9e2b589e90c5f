"""``ganforge eval`` / ``ganforge similarity`` end to end, the memorisation report, and the
in-training evaluator, on real MNIST with the domain extractor (fast on CPU)."""

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


def test_cli_eval_writes_protocol_json_and_one_line_per_metric(tmp_path, capsys, mnist_test):
    from ganforge.cli import main

    out = tmp_path / "eval.json"
    rc = main(["eval", "mnist:test", "mnist:train", "--n", "400", "--metrics", "fid,kid,pr", "--json", str(out),
               "--quiet"])
    captured = capsys.readouterr()
    assert rc == 0
    lines = [line for line in captured.out.splitlines() if not line.startswith("wrote")]
    assert [line.split()[0] for line in lines] == ["fid", "kid", "precision", "recall"]
    assert "FID with n=400" in captured.err and "KID" in captured.err
    doc = json.loads(out.read_text())
    fid = doc["results"][0]
    assert fid["metric"] == "fid" and fid["n_a"] == 400 and fid["n_b"] == 400
    assert fid["extractor"]["extractor"] == "mnist" and fid["extractor"]["classifier_test_accuracy"] >= 0.98
    assert fid["a"]["subset"].startswith("400 of 10000") and fid["seed"] == 0 and fid["ganforge_version"]
    kid = doc["results"][1]
    assert kid["std"] is not None and "subsets" in kid["details"]
    # Same command, same number: seeded subsets and a deterministic extractor.
    main(["eval", "mnist:test", "mnist:train", "--n", "400", "--metrics", "fid", "--json", str(tmp_path / "b.json"),
          "--quiet"])
    assert json.loads((tmp_path / "b.json").read_text())["results"][0]["value"] == pytest.approx(fid["value"], abs=1e-9)


def test_cli_eval_user_errors_are_one_line(capsys):
    from ganforge.cli import main

    assert main(["eval", "mnist:test", "mnist:train", "--metrics", "fid,bogus"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.count("\n") == 0 and "unknown metric" in err
    assert main(["eval", "no/such/dir", "digits", "--n", "10"]) == 2
    assert "no/such/dir" in capsys.readouterr().err


def test_nearest_flags_copies_of_training_images(tmp_path, capsys, mnist_test):
    from ganforge.cli import main
    from ganforge.imageio import save_image

    folder = tmp_path / "generated"
    g = torch.Generator().manual_seed(0)
    for i in range(8):  # exact copies of "training" images
        save_image(mnist_test.images[100 + i].float() / 255, folder / f"copy{i}.png")
    for i in range(8):  # genuinely new images: two training digits averaged, plus noise
        x = (mnist_test.images[200 + i].float() + mnist_test.images[300 + i].float()) / 510
        save_image((x + 0.1 * torch.randn(x.shape, generator=g)).clamp(0, 1), folder / f"new{i}.png")
    report_dir = tmp_path / "near"
    rc = main(["eval", str(folder), "mnist:test", "--metrics", "kid", "--nearest", "3", "--out", str(report_dir),
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


def test_in_training_evaluator_ranks_real_above_noise_and_caches_reference(mnist_test):
    from ganforge import paths
    from ganforge.metrics import InTrainingEvaluator

    real = mnist_test.images[5000:5500].float() / 255
    ev = InTrainingEvaluator("mnist:train", metric="fid", n_samples=500, resolution=28, channels=1)
    cache = paths.home() / "cache" / "features"
    assert any(cache.glob("mnist-*.safetensors"))
    calls = []

    def real_fn(n: int) -> torch.Tensor:
        start = sum(calls)
        calls.append(n)
        return real[start:start + n]

    good = ev(real_fn)
    bad = ev(lambda n: torch.rand(n, 1, 28, 28, generator=torch.Generator().manual_seed(n)))
    assert 0 <= good < 40 < bad  # real vs real at n=500 is ~20 (FID is biased upwards at small n)
    assert bad > 5 * good
    kid = InTrainingEvaluator("mnist:train", metric="kid", n_samples=500, resolution=28, channels=1)
    calls.clear()
    assert kid(real_fn) < kid(lambda n: torch.rand(n, 1, 28, 28))


def test_similarity_percentages(tmp_path, mnist_test, capsys):
    from ganforge.cli import main
    from ganforge.imageio import load_image, save_image
    from ganforge.metrics import similarity, ssim

    photo = require(CONTENT_DIR / "cornell.jpg")
    x = load_image(photo)[:, :256, :256]
    assert float(ssim(x[None], x[None])[0]) == pytest.approx(1.0, abs=1e-6)
    noisy = (x + 0.05 * torch.randn(x.shape, generator=torch.Generator().manual_seed(0))).clamp(0, 1)
    other = load_image(require(CONTENT_DIR / "sailboat.jpg"))[:, :256, :256]
    s_noisy = similarity(x, noisy, features=None)["ssim_percent"]
    s_other = similarity(x, other, features=None)["ssim_percent"]
    assert 100 > s_noisy > 50 > s_other

    digits = mnist_test.images[:4].float() / 255
    same_class = mnist_test.images[mnist_test.labels == mnist_test.labels[0]][1:2].float() / 255
    r = similarity(digits[:1], digits[:1], features="mnist")
    assert r["ssim_percent"] == pytest.approx(100) and r["feature_cosine_percent"] == pytest.approx(100, abs=1e-4)
    close = similarity(digits[:1], same_class, features="mnist")["feature_cosine_percent"]
    far = similarity(digits[:1], torch.rand(1, 1, 28, 28), features="mnist")["feature_cosine_percent"]
    assert close > far

    a, b = tmp_path / "a.png", tmp_path / "b.png"
    save_image(x, a)
    save_image(noisy, b)
    assert main(["similarity", str(a), str(b), "--features", "none", "--json", str(tmp_path / "s.json")]) == 0
    assert capsys.readouterr().out.startswith("ssim ")
    assert json.loads((tmp_path / "s.json").read_text())["ssim_percent"] == pytest.approx(s_noisy, abs=0.5)


def test_eval_of_a_run_directory_samples_the_generator(tmp_path, monkeypatch, mnist_test):
    import ganforge.sample
    from ganforge.metrics.evaluation import evaluate

    run = tmp_path / "run"
    run.mkdir()
    (run / "run.json").write_text("{}")
    real = mnist_test.images[2000:2600].float() / 255
    seen = []

    class FakeGenerator:  # stands in for a trained run: returns real digits, records the call
        num_classes, channels, resolution, step = 0, 1, 28, 7

        def sample(self, n, labels=None, seed=0, truncation=1.0, ema=True):
            seen.append((n, seed, truncation, ema))
            return real[seed:seed + n]

    monkeypatch.setattr(ganforge.sample, "load_generator", lambda run_dir: FakeGenerator())
    result = evaluate(str(run), "mnist:test", metrics="fid", n=300, progress=False)[0]
    assert seen == [(256, 0, 1.0, True), (44, 256, 1.0, True)]
    a = result.protocol["a"]
    assert a["kind"] == "run" and a["step"] == 7 and a["n"] == 300 and "uint8" in a["quantised"]
    assert result.value < 25  # real digits against real digits (FID at n=300 carries ~15 of bias)

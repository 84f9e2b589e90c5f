"""Inpainting GAN on the shared loop: it trains, resumes bit-exactly, its masks are deterministic and
in range, inference keeps the known pixels byte for byte at any image and mask size, bad masks are
one-line errors, and a short training beats a mean-colour fill. Every image is drawn in the test."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.restore.inpaint import (InpaintConfig, MaskedBatches, inpaint_image, load_inpainter, pyramid_fill,
                                      train_inpainter)
from ganforge.restore.masks import make_masks
from ganforge.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(ngf=8, ndf=8, load_size=36, crop_size=32, batch_size=2, log_every=1, sample_every=1000,
            ckpt_every=1000, progress=False, tensorboard=False, precision="fp32")


def _smooth(rng: np.random.Generator, size: int) -> np.ndarray:
    """A linear colour gradient at a random angle, or colour stripes (a smooth sinusoid)."""
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    a = rng.uniform(0, 2 * np.pi)
    t = np.cos(a) * xx + np.sin(a) * yy
    if rng.uniform() < 0.5:
        t = (t - t.min()) / (t.max() - t.min())
    else:
        t = 0.5 + 0.5 * np.sin(2 * np.pi * rng.uniform(1.0, 2.5) * t + rng.uniform(0, 2 * np.pi))
    c0, c1 = rng.uniform(0, 255, 3), rng.uniform(0, 255, 3)
    return (c0 * (1 - t[..., None]) + c1 * t[..., None]).round().astype(np.uint8)


def _folder(root: Path, n: int = 8, size: int = 36, seed: int = 0) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        Image.fromarray(_smooth(rng, size)).save(root / f"{i:03d}.png")
    return root


def _weights(run: Path) -> dict[str, torch.Tensor]:
    found = checkpoint.load_latest(run / "checkpoints")
    assert found is not None
    return found[1]


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    """A two-step inpainter run (the weights are barely trained: these tests are about the plumbing)."""
    root = tmp_path_factory.mktemp("inpaint")
    cfg = InpaintConfig(data=str(_folder(root / "data")), **TINY)
    train_inpainter(cfg, out=root / "run", steps=2)
    return root / "run"


def test_trains_and_resumes_bit_exactly(tmp_path):
    cfg = InpaintConfig(data=str(_folder(tmp_path / "data")), mask_kind="mix", **TINY)
    steps = 4
    straight = train_inpainter(cfg, out=tmp_path / "straight", steps=steps)
    first = train_inpainter(cfg, out=tmp_path / "split", steps=steps // 2, ckpt_every=steps // 2)
    second = train_inpainter(cfg, out=tmp_path / "split", steps=steps, ckpt_every=steps // 2)
    assert first["steps"] == steps // 2 and second["resumed_from"] == steps // 2 and straight["steps"] == steps
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys() and any(k.startswith("G.") for k in a) and any(k.startswith("D.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = (tmp_path / "straight" / "log.jsonl").read_text()
    assert "loss_hole_L1" in log and "loss_G_gan" in log
    assert '"inpainter"' in (tmp_path / "straight" / "run.json").read_text()
    assert (tmp_path / "straight" / "samples").is_dir()
    with pytest.raises(GanforgeError, match="options differ"):  # a resume with other maths is refused
        train_inpainter(cfg, out=tmp_path / "split", steps=steps, lambda_hole=1.0)


@pytest.mark.parametrize("kind", ["rect", "brush", "mix"])
def test_masks_are_deterministic_and_within_the_area_range(kind):
    def draw(seed: int, h: int = 40, w: int = 56) -> torch.Tensor:
        return make_masks(32, h, w, torch.Generator().manual_seed(seed), kind=kind, min_area=0.15, max_area=0.3)

    a, b, c = draw(0), draw(0), draw(1)
    assert a.shape == (32, 1, 40, 56) and a.dtype == torch.float32
    assert torch.equal(a, b) and not torch.equal(a, c)
    assert set(a.unique().tolist()) <= {0.0, 1.0}
    area = a.mean(dim=(1, 2, 3))
    assert (area >= 0.15).all() and (area <= 0.3).all(), area
    assert len({tuple(m.flatten().tolist()) for m in a}) == 32  # every mask differs


def test_pyramid_fill_keeps_known_pixels_and_interpolates_a_gradient():
    x = torch.linspace(-1, 1, 40).view(1, 1, 1, 40).expand(1, 3, 24, 40).contiguous()
    m = torch.zeros(1, 1, 24, 40)
    m[..., 6:18, 12:28] = 1
    f = pyramid_fill(x, m)
    assert f.shape == x.shape and torch.equal(f[m.expand_as(f) == 0], x[m.expand_as(x) == 0])
    assert (f - x).abs()[m.expand_as(f) == 1].mean() < 0.1  # a smooth guess, not a flat colour
    assert torch.equal(pyramid_fill(x, torch.zeros_like(m)), x)


def test_masked_batches_depend_only_on_index_and_generator():
    images = torch.from_numpy(np.stack([_smooth(np.random.default_rng(i), 36) for i in range(6)])).permute(0, 3, 1, 2)
    src = MaskedBatches(images.contiguous(), 2, seed=3, crop=32, hflip=True, mask_kind="brush")
    g1, g2 = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
    x = src.get(4, 0, 1, g1, torch.device("cpu"))
    y = MaskedBatches(images.contiguous(), 2, seed=3, crop=32, hflip=True, mask_kind="brush").get(
        4, 0, 1, g2, torch.device("cpu"))
    assert x.keys() == {"image", "mask"} and x["image"].shape == (2, 3, 32, 32) and x["mask"].shape == (2, 1, 32, 32)
    assert torch.equal(x["image"], y["image"]) and torch.equal(x["mask"], y["mask"])
    assert torch.equal(g1.get_state(), g2.get_state())


def test_cli_keeps_known_pixels_byte_for_byte_with_a_mask_of_another_size(run, tmp_path, capsys):
    rng = np.random.default_rng(1)
    arr = rng.integers(0, 256, (37, 53, 3), dtype=np.uint8)  # odd size, noise: nothing is easy to reproduce
    Image.fromarray(arr).save(tmp_path / "photo.png")
    small = np.zeros((10, 20), np.uint8)
    small[2:6, 5:12] = 255
    Image.fromarray(small).save(tmp_path / "mask.png")
    out = tmp_path / "out" / "filled.png"
    assert main(["inpaint", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"), "--model", str(run),
                 "--out", str(out), "--device", "cpu", "--precision", "fp32", "--quiet",
                 "--json", str(tmp_path / "r.json")]) == 0
    got = np.asarray(Image.open(out))
    assert got.shape == arr.shape
    hole = np.asarray(Image.fromarray(small).resize((53, 37), Image.NEAREST)) > 127
    assert hole.any() and (~hole).any()
    assert np.array_equal(got[~hole], arr[~hole])  # known pixels: byte-identical
    assert (got[hole] != arr[hole]).any()  # the hole was filled by the network
    from ganforge.provenance import read_provenance

    assert read_provenance(out)["method"] == "inpaint" and read_provenance(out)["model"] == run.name
    assert "filled.png" in (tmp_path / "r.json").read_text()


def test_library_resizes_the_mask_and_any_image_size(run):
    model = load_inpainter(run, device="cpu", precision="fp32")
    for size in [(5, 7), (33, 64), (70, 41)]:
        img = Image.fromarray(np.random.default_rng(0).integers(0, 256, (*size, 3), dtype=np.uint8))
        mask = np.array([[255, 0], [0, 0]], np.uint8)  # top-left quarter, whatever the size
        out = inpaint_image(model, img, Image.fromarray(mask))
        assert out.size == img.size and out.mode == "RGB"
        a, b = np.asarray(img), np.asarray(out)
        hole = np.asarray(Image.fromarray(mask).resize(img.size, Image.NEAREST)) > 127
        assert hole[0, 0] and not hole[-1, -1] and abs(hole.mean() - 0.25) < 0.15
        assert np.array_equal(a[~hole], b[~hole])
    t = torch.rand(3, 20, 30)
    m = torch.zeros(20, 30)
    m[5:10, 5:15] = 1
    filled = inpaint_image(model, t, m)
    assert filled.shape == t.shape and torch.equal(filled[:, m == 0], t[:, m == 0])


def test_a_mask_without_a_hole_returns_the_input(run, tmp_path):
    model = load_inpainter(run, device="cpu", precision="fp32")
    arr = np.random.default_rng(2).integers(0, 256, (21, 30, 3), dtype=np.uint8)
    out = inpaint_image(model, Image.fromarray(arr), Image.new("L", (8, 8), 0))
    assert np.array_equal(np.asarray(out), arr)
    t = torch.rand(3, 9, 9)
    assert torch.equal(inpaint_image(model, t, torch.zeros(9, 9)), t)


def test_a_mask_that_is_not_an_image_is_a_one_line_error(run, tmp_path, capsys):
    Image.fromarray(np.zeros((8, 8, 3), np.uint8)).save(tmp_path / "photo.png")
    (tmp_path / "mask.png").write_text("this is not a PNG\n")
    code = main(["inpaint", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "mask.png"), "--model", str(run),
                 "--out", str(tmp_path / "o.png"), "--device", "cpu", "--quiet"])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("ganforge: error:") and "\n" not in err and "mask.png" in err
    assert not (tmp_path / "o.png").exists()
    # a run of another kind, or no run at all: one line too
    assert main(["inpaint", str(tmp_path / "photo.png"), "--mask", str(tmp_path / "photo.png"), "--model",
                 str(tmp_path), "--out", str(tmp_path / "o.png"), "--quiet"]) == 2
    assert "\n" not in capsys.readouterr().err.strip()


def test_perceptual_loss_without_weights_names_the_way_out(tmp_path, monkeypatch):
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "none"))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    cfg = InpaintConfig(data=str(_folder(tmp_path / "data")), perceptual_weight=0.1, **TINY)
    with pytest.raises(GanforgeError, match="--perceptual-weight 0") as exc:
        train_inpainter(cfg, out=tmp_path / "run", steps=1)
    assert "\n" not in str(exc.value)


def _hole_psnr(out: np.ndarray, real: np.ndarray, hole: np.ndarray) -> float:
    diff = (out.astype(np.float64) - real.astype(np.float64))[hole] / 255
    return 10 * math.log10(1 / max(float((diff ** 2).mean()), 1e-10))


def test_short_training_beats_a_mean_colour_fill(tmp_path):
    """Smooth gradients and stripes: after a short run the hole PSNR on held-out images is above
    filling the hole with the mean of the known pixels, and above the same network untrained (one
    step). On images this smooth the pyramid pre-fill the generator corrects is already close: the
    test checks that training moves the network onto it, the benchmark shows what it adds on real data."""
    data = _folder(tmp_path / "train", n=64, size=32, seed=0)
    cfg = InpaintConfig(data=str(data), **{**TINY, "load_size": 32, "batch_size": 8, "ngf": 16, "ndf": 8,
                                           "lr_g": 1e-3, "lr_d": 2e-4, "mask_kind": "rect"})
    train_inpainter(cfg, out=tmp_path / "run0", steps=1)
    train_inpainter(cfg, out=tmp_path / "run", steps=80)
    holes = make_masks(16, 32, 32, torch.Generator().manual_seed(7), kind="mix", min_area=0.1, max_area=0.4)

    def psnr(run: Path | None) -> float:
        model = load_inpainter(run, device="cpu", precision="fp32") if run else None
        rng = np.random.default_rng(99)
        scores = []
        for m in holes[:, 0].bool().numpy():
            real = _smooth(rng, 32)
            if model is None:  # the mean colour of the known pixels
                out = real.copy()
                out[m] = real[~m].mean(0).round()
            else:
                out = np.asarray(inpaint_image(model, Image.fromarray(real), Image.fromarray(m.astype(np.uint8) * 255)))
                assert np.array_equal(out[~m], real[~m])
            scores.append(_hole_psnr(out, real, m))
        return float(np.mean(scores))

    trained, untrained, mean = psnr(tmp_path / "run"), psnr(tmp_path / "run0"), psnr(None)
    assert trained > mean + 1.0, (trained, mean)
    assert trained > untrained + 1.0, (trained, untrained)


def test_train_inpainter_cli_trains_and_refuses_an_existing_run_with_resume_never(tmp_path, capsys):
    data = _folder(tmp_path / "data", n=4)
    argv = ["train-inpainter", "--data", str(data), "--out", str(tmp_path / "run"), "--load-size", "36",
            "--crop-size", "32", "--ngf", "8", "--ndf", "8", "--batch-size", "2", "--steps", "1",
            "--mask-kind", "brush", "--quiet", "--no-tensorboard", "--precision", "fp32", "--device", "cpu"]
    assert main(argv) == 0
    assert '"steps": 1' in capsys.readouterr().out
    assert main(argv + ["--resume", "never"]) == 2
    assert "--resume auto" in capsys.readouterr().err

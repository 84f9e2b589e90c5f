"""pix2pix, CycleGAN and SPADE on the shared loop: they train, learn, resume exactly, apply to any
image size, and refuse bad data with one line. Every dataset is drawn in the test."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from ganforge.errors import GanforgeError
from ganforge.translate.apply import load_translator, pad_to_multiple
from ganforge.translate.config import TranslateConfig
from ganforge.translate.train import train_translator
from ganforge.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(ngf=8, ndf=8, load_size=36, crop_size="32", batch_size=2, log_every=1, sample_every=1000,
            ckpt_every=1000, progress=False, tensorboard=False, precision="fp32")


def _shapes(rng: np.random.Generator, size: int = 36) -> np.ndarray:
    """An RGB image of a few coloured rectangles on a coloured background."""
    img = np.empty((size, size, 3), np.uint8)
    img[:] = rng.integers(0, 256, 3)
    for _ in range(3):
        y, x = rng.integers(0, size - 8, 2)
        h, w = rng.integers(6, 16, 2)
        img[y:y + h, x:x + w] = rng.integers(0, 256, 3)
    return img


def _paired(root: Path, n: int = 8, seed: int = 0) -> Path:
    """A/ grey photos, B/ their colour inversions: a task a few steps of pix2pix can learn."""
    rng = np.random.default_rng(seed)
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for i in range(n):
        img = _shapes(rng)
        Image.fromarray(img).save(root / "A" / f"{i:03d}.png")
        Image.fromarray(255 - img).save(root / "B" / f"{i:03d}.png")
    return root


def _unpaired(root: Path, n: int = 6) -> Path:
    rng = np.random.default_rng(1)
    (root / "A").mkdir(parents=True)
    (root / "B").mkdir()
    for i in range(n):
        Image.fromarray(_shapes(rng)).save(root / "A" / f"a{i}.png")
    for i in range(n + 2):  # domains may differ in size
        Image.fromarray(255 - _shapes(rng)).save(root / "B" / f"b{i}.jpg")
    return root


def _labels(root: Path, n: int = 6, classes: int = 3, size: int = 64) -> Path:
    """labels/ (greyscale class ids: rectangles of class 1 and 2 on 0) + images/ coloured by class."""
    rng = np.random.default_rng(2)
    (root / "labels").mkdir(parents=True)
    (root / "images").mkdir()
    colours = np.array([[20, 20, 20], [230, 40, 40], [40, 40, 230]], np.uint8)
    for i in range(n):
        ids = np.zeros((size, size), np.uint8)
        for c in range(1, classes):
            y, x = rng.integers(0, size - 20, 2)
            ids[y:y + 20, x:x + 20] = c
        Image.fromarray(ids, "L").save(root / "labels" / f"{i}.png")
        Image.fromarray(colours[ids]).save(root / "images" / f"{i}.png")
    return root


def _weights(run: Path) -> dict[str, torch.Tensor]:
    found = checkpoint.load_latest(run / "checkpoints")
    assert found is not None
    return found[1]


def _resume_is_exact(tmp_path: Path, cfg: TranslateConfig, steps: int = 4) -> None:
    cfg.lr_decay_steps = steps  # the decaying LR schedule's length, fixed so --steps may change on resume
    straight = train_translator(cfg, out=tmp_path / "straight", steps=steps)
    first = train_translator(cfg, out=tmp_path / "split", steps=steps // 2, ckpt_every=steps // 2)
    second = train_translator(cfg, out=tmp_path / "split", steps=steps, ckpt_every=steps // 2)
    assert first["steps"] == steps // 2 and second["resumed_from"] == steps // 2 and straight["steps"] == steps
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


def test_pix2pix_resumes_bit_exactly(tmp_path):
    cfg = TranslateConfig(data=str(_paired(tmp_path / "data")), model="pix2pix", **TINY)
    _resume_is_exact(tmp_path, cfg)
    log = (tmp_path / "straight" / "log.jsonl").read_text()
    assert "loss_G_L1" in log
    assert (tmp_path / "straight" / "run.json").read_text().count('"translator"') == 1


def test_cyclegan_resumes_bit_exactly_with_its_image_pool(tmp_path):
    cfg = TranslateConfig(data=str(_unpaired(tmp_path / "data")), model="cyclegan", resnet_blocks=2,
                          pool_size=3, **TINY)
    _resume_is_exact(tmp_path, cfg, steps=6)  # the pool fills (3 fakes) before the split and is used after
    state = checkpoint.load_latest(tmp_path / "split" / "checkpoints")[2]
    assert "pool_A" in str(state.keys()) or "pool_A" in str(state)


def test_spade_trains_and_resumes_bit_exactly(tmp_path):
    cfg = TranslateConfig(data=str(_labels(tmp_path / "data")), model="spade", num_classes=3,
                          **{**TINY, "load_size": 64, "crop_size": "64"})
    _resume_is_exact(tmp_path, cfg)


def test_pix2pix_learns_a_paired_mapping(tmp_path):
    """Grey -> inverted colour: after a short run the held-out L1 is far below the identity baseline
    (output = input) and below the untrained network's."""
    data = _paired(tmp_path / "train", n=16)
    held = _paired(tmp_path / "held", n=6, seed=9)
    cfg = TranslateConfig(data=str(data), model="pix2pix", **{**TINY, "batch_size": 4, "lr_g": 1e-3})

    def l1(run: Path) -> tuple[float, float]:
        tr = load_translator(run, device="cpu", precision="fp32")
        errs, ident = [], []
        for f in sorted((held / "A").iterdir()):
            target = np.asarray(Image.open(held / "B" / f.name), np.float32) / 255
            out = np.asarray(tr(f), np.float32) / 255
            assert out.shape == target.shape
            errs.append(np.abs(out - target).mean())
            ident.append(np.abs(np.asarray(Image.open(f).convert("RGB"), np.float32) / 255 - target).mean())
        return float(np.mean(errs)), float(np.mean(ident))

    train_translator(cfg, out=tmp_path / "run0", steps=1)
    untrained, identity = l1(tmp_path / "run0")
    train_translator(cfg, out=tmp_path / "run", steps=150)
    trained, _ = l1(tmp_path / "run")
    assert trained < 0.5 * identity, (trained, identity)
    assert trained < 0.7 * untrained, (trained, untrained)


@pytest.mark.parametrize("size", [(37, 53), (100, 30), (1, 7)])
def test_apply_keeps_any_input_size(tmp_path, size):
    cfg = TranslateConfig(data=str(_paired(tmp_path / "data")), model="pix2pix", **TINY)
    train_translator(cfg, out=tmp_path / "run", steps=1)
    tr = load_translator(tmp_path / "run", device="cpu", precision="fp32")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (*size, 3), dtype=np.uint8))
    out = tr(img)
    assert out.size == img.size


def test_pad_to_multiple_reflects_in_steps():
    x = torch.arange(5.0).reshape(1, 1, 1, 5)
    y = pad_to_multiple(x, 16)
    assert y.shape[-1] == 16 and y.shape[-2] == 16
    assert torch.equal(y[0, 0, 0, :9], torch.tensor([0, 1, 2, 3, 4, 3, 2, 1, 0.0]))


def test_tiled_apply_matches_untiled_for_a_normless_generator(tmp_path):
    """With no normalisation the only difference between tiles and the whole image is context at
    tile borders, which the halo covers: the blended result is close to the one-pass result."""
    cfg = TranslateConfig(data=str(_paired(tmp_path / "data")), model="cyclegan", norm="none", resnet_blocks=1,
                          lambda_identity=0.5, **TINY)
    train_translator(cfg, out=tmp_path / "run", steps=1)
    tr = load_translator(tmp_path / "run", device="cpu", precision="fp32")
    x = torch.rand(1, 3, 96, 120)
    whole = tr.translate_tensor(x)
    tiled = tr.translate_tensor(x, tile=64, overlap=24)
    assert tiled.shape == whole.shape
    assert (tiled - whole).abs().max() < 0.02


def test_cyclegan_run_translates_both_ways(tmp_path):
    cfg = TranslateConfig(data=str(_unpaired(tmp_path / "data")), model="cyclegan", resnet_blocks=1, **TINY)
    train_translator(cfg, out=tmp_path / "run", steps=1)
    x = torch.rand(1, 3, 32, 32)
    ab = load_translator(tmp_path / "run", device="cpu", precision="fp32").translate_tensor(x)
    ba = load_translator(tmp_path / "run", direction="BtoA", device="cpu", precision="fp32").translate_tensor(x)
    assert not torch.equal(ab, ba)


# --- bad data ----------------------------------------------------------------------------------

def test_pix2pix_with_no_matching_names_is_one_line(tmp_path):
    root = _paired(tmp_path / "data")
    for f in (root / "B").iterdir():
        f.rename(f.with_name("x" + f.name))
    with pytest.raises(GanforgeError, match="no image pairs") as exc, pytest.warns(UserWarning, match="no counterpart"):
        train_translator(TranslateConfig(data=str(root), model="pix2pix", **TINY), out=tmp_path / "run", steps=1)
    assert "\n" not in str(exc.value)


def test_empty_domain_is_one_line(tmp_path):
    root = _unpaired(tmp_path / "data")
    for f in (root / "B").iterdir():
        f.unlink()
    with pytest.raises(GanforgeError) as exc:
        train_translator(TranslateConfig(data=str(root), model="cyclegan", **TINY), out=tmp_path / "run", steps=1)
    assert "B" in str(exc.value) and "\n" not in str(exc.value)


def test_identity_loss_with_mismatched_channels_is_one_line(tmp_path):
    cfg = TranslateConfig(data=str(_unpaired(tmp_path / "data")), model="cyclegan", channels_a=1, **TINY)
    with pytest.raises(GanforgeError, match="lambda-identity 0"):
        train_translator(cfg, out=tmp_path / "run", steps=1)
    cfg.lambda_identity = 0.0
    assert train_translator(cfg, out=tmp_path / "run2", steps=1, resnet_blocks=1)["steps"] == 1


def test_label_map_beyond_num_classes_is_one_line(tmp_path):
    cfg = TranslateConfig(data=str(_labels(tmp_path / "data", classes=3)), model="spade", num_classes=2,
                          **{**TINY, "load_size": 64, "crop_size": "64"})
    with pytest.raises(GanforgeError, match="num-classes") as exc:
        train_translator(cfg, out=tmp_path / "run", steps=1)
    assert "\n" not in str(exc.value)


def test_bad_options_are_one_line():
    for bad in (dict(model="pix2pixx"), dict(direction="up"), dict(crop_size="30x"), dict(crop_size="300"),
                dict(model="spade"), dict(crop_size="36", unet_downs=3), dict(norm="group")):
        with pytest.raises(GanforgeError) as exc:
            TranslateConfig(data="x", **{**dict(load_size=286), **bad}).validate()
        assert "\n" not in str(exc.value), bad


def test_resume_refuses_other_options(tmp_path):
    cfg = TranslateConfig(data=str(_paired(tmp_path / "data")), model="pix2pix", **TINY)
    train_translator(cfg, out=tmp_path / "run", steps=1, ckpt_every=1)
    with pytest.raises(GanforgeError, match="lambda_l1"):
        train_translator(cfg, out=tmp_path / "run", steps=2, lambda_l1=10.0)


# --- CLI ---------------------------------------------------------------------------------------

def test_cli_train_then_apply_to_a_folder(tmp_path):
    data = _paired(tmp_path / "data", n=4)
    exe = [sys.executable, "-c", "import sys; from ganforge.cli import main; sys.exit(main())"]
    common = ["--quiet", "--precision", "fp32", "--device", "cpu"]
    run = subprocess.run(exe + ["translate", "train", "--model", "pix2pix", "--data", str(data), "--out", str(tmp_path / "run"),
                                "--steps", "2", "--ngf", "8", "--ndf", "8", "--load-size", "68", "--crop-size", "32x64",
                                "--batch-size", "2", "--no-tensorboard"] + common,
                         capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    (tmp_path / "in").mkdir()
    Image.fromarray(np.zeros((21, 45, 3), np.uint8)).save(tmp_path / "in" / "odd.png")
    (tmp_path / "in" / "broken.png").write_bytes(b"not a png")
    out = subprocess.run(exe + ["translate", "apply", str(tmp_path / "run"), str(tmp_path / "in"), "--out",
                                str(tmp_path / "out"), "--json", str(tmp_path / "r.json")] + common,
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stderr
    assert Image.open(tmp_path / "out" / "odd.png").size == (45, 21)
    from ganforge.provenance import read_provenance

    assert read_provenance(tmp_path / "out" / "odd.png")["method"] == "translate"
    assert "skipped" in out.stderr and "broken.png" in out.stderr
    missing = subprocess.run(exe + ["translate", "apply", str(tmp_path / "nope"), str(tmp_path / "in"), "--out",
                                    str(tmp_path / "o2")] + common, capture_output=True, text=True, timeout=300)
    assert missing.returncode == 2 and missing.stderr.count("\n") == 1, missing.stderr


def test_a_zoo_name_applies_from_the_weights_dir(tmp_path, monkeypatch):
    """`ganforge translate apply cyclegan-horse2zebra …` with the file in GANFORGE_WEIGHTS_DIR (the
    official layout, random weights): output size == input size, and the CLI names the model."""
    from ganforge.nets.translators import ResnetGenerator

    torch.manual_seed(0)
    torch.save(ResnetGenerator(3, 3, ngf=64, n_blocks=9).state_dict(), tmp_path / "cyclegan-horse2zebra.pth")
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path))
    with pytest.warns(UserWarning, match="no published sha256"):
        tr = load_translator("cyclegan-horse2zebra", device="cpu", precision="fp32")
    img = Image.fromarray(np.random.default_rng(0).integers(0, 255, (50, 70, 3), dtype=np.uint8))
    assert tr(img).size == (70, 50)
    with pytest.raises(GanforgeError, match="one way"):
        load_translator("cyclegan-horse2zebra", direction="BtoA")


def test_a_missing_zoo_model_offline_is_one_line(monkeypatch, tmp_path):
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path))
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    with pytest.raises(GanforgeError, match="ganforge weights fetch cyclegan-monet2photo") as exc:
        load_translator("cyclegan-monet2photo")
    assert "\n" not in str(exc.value)


def test_samples_page_shows_real_fake_and_reconstruction(tmp_path):
    cfg = TranslateConfig(data=str(_unpaired(tmp_path / "data")), model="cyclegan", resnet_blocks=1,
                          **{**TINY, "sample_every": 1})
    train_translator(cfg, out=tmp_path / "run", steps=2)
    page = (tmp_path / "run" / "samples" / "index.html").read_text()
    assert "real A | fake B | rec A" in page
    assert page.index("step-0000002.png") < page.index("step-0000001.png")  # newest first
    grid = Image.open(tmp_path / "run" / "samples" / "latest.png")
    assert grid.size[0] > 5 * 32  # six columns


def test_demo_section_learns_outline_to_digit_offline(tmp_path):
    """The demo page's pix2pix example on scikit-learn's digits: after a short run the held-out
    digits are closer to the real ones than the outlines are (the identity baseline)."""
    import re

    from ganforge.data import load_dataset
    from ganforge.translate.demo import HELD_OUT, demo_section, outlines

    fragment = demo_section(tmp_path, "digits", steps=60, precision="fp32", device="cpu", progress=False, max_pairs=400)
    assert (tmp_path / "translation.png").is_file() and "translation.png" in fragment
    l1 = float(re.search(r"mean L1 ([0-9.]+)", fragment).group(1))
    digits = load_dataset("digits", resolution=32, channels=1, max_images=400 + HELD_OUT, progress=False).images
    held = digits[-HELD_OUT:].float() / 255
    identity = float((outlines(digits[-HELD_OUT:]).float() / 255 - held).abs().mean())
    assert l1 < 0.8 * identity, (l1, identity)


def test_batchnorm_translator_output_does_not_depend_on_the_batch(tmp_path):
    """pix2pix's BatchNorm uses the statistics of what it is given at test time (as upstream): a
    batch must give exactly what each image gives alone."""
    cfg = TranslateConfig(data=str(_paired(tmp_path / "data")), model="pix2pix", **TINY)
    train_translator(cfg, out=tmp_path / "run", steps=2)
    tr = load_translator(tmp_path / "run", device="cpu", precision="fp32")
    x = torch.rand(3, 3, 32, 32)
    together = tr.translate_tensor(x)
    alone = torch.cat([tr.translate_tensor(x[i:i + 1]) for i in range(3)])
    assert torch.equal(together, alone)

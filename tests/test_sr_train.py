"""train-upscaler: degradations drawn only from the run's generator, two phases in one resumable
run (bit-exact across the phase boundary), the run loads in ``ganforge upscale``, a short run beats
bicubic, and bad inputs are one line. Every image is drawn in the test."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from PIL import Image, ImageDraw

from ganforge.cli import main
from ganforge.errors import DataError, GanforgeError, WeightsError
from ganforge.restore.degrade import DEGRADATIONS, DegradedBatches, degrade
from ganforge.restore.sr_train import SRConfig, SRTask, load_upscaler_run, train_upscaler
from ganforge.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(arch="srresnet", nf=8, nb=1, ndf=8, d_layers=2, tile_size=32, crop=32, scale=4, batch_size=2,
            perceptual_weight=0.0, precision="fp32", progress=False, tensorboard=False, log_every=1,
            sample_every=1000, ckpt_every=1000, ema=0.9)


def _picture(rng: np.random.Generator, size: int = 64) -> Image.Image:
    """A smooth colour gradient with a few soft-edged discs and boxes (drawn at 4× and reduced)."""
    big = size * 4
    yy, xx = np.mgrid[0:big, 0:big] / big
    a, b = rng.uniform(0, 1, 3), rng.uniform(-0.5, 0.5, (2, 3))
    base = np.clip(a + xx[..., None] * b[0] + yy[..., None] * b[1], 0, 1)
    img = Image.fromarray((base * 255).astype(np.uint8))
    draw = ImageDraw.Draw(img)
    for _ in range(4):
        x0, y0 = rng.integers(0, big - 64, 2)
        w, h = rng.integers(32, 160, 2)
        colour = tuple(int(c) for c in rng.integers(0, 256, 3))
        box = (int(x0), int(y0), int(x0 + w), int(y0 + h))
        (draw.ellipse if rng.random() < 0.5 else draw.rectangle)(box, fill=colour)
    return img.resize((size, size), Image.LANCZOS)


def _waves(rng: np.random.Generator, size: int = 64) -> Image.Image:
    """Texture everywhere: per channel, three sinusoids of 2..8 cycles per 64 px in random directions
    (below the ×4 LR image's Nyquist limit, where bicubic loses amplitude that a network can learn to
    restore; flat regions would let an L1-trained network settle on bilinear)."""
    yy, xx = np.mgrid[0:size, 0:size] / 64
    img = np.zeros((size, size, 3))
    for c in range(3):
        img[..., c] = rng.uniform(0.3, 0.7)
        for _ in range(3):
            f, th, ph = rng.uniform(2, 8), rng.uniform(0, np.pi), rng.uniform(0, 2 * np.pi)
            img[..., c] += rng.uniform(0.05, 0.2) * np.sin(2 * np.pi * f * (xx * np.cos(th) + yy * np.sin(th)) + ph)
    return Image.fromarray((np.clip(img, 0, 1) * 255).round().astype(np.uint8))


def _folder(root: Path, n: int, seed: int = 0, size: int = 64, draw=_picture) -> Path:
    rng = np.random.default_rng(seed)
    root.mkdir(parents=True)
    for i in range(n):
        draw(rng, size).save(root / f"{i:03d}.png")
    return root


def _weights(run: Path) -> dict[str, torch.Tensor]:
    found = checkpoint.load_latest(run / "checkpoints")
    assert found is not None
    return found[1]


def _hr(n: int = 3, size: int = 32, seed: int = 0, draw=_picture) -> torch.Tensor:
    rng = np.random.default_rng(seed)
    return torch.stack([torch.from_numpy(np.array(draw(rng, size))).permute(2, 0, 1) for _ in range(n)]).float() / 255


@pytest.mark.parametrize("kind", DEGRADATIONS)
def test_degradations_are_deterministic_given_the_generator(kind):
    hr = _hr()
    out = [degrade(hr, 4, kind, torch.Generator().manual_seed(s)) for s in (5, 5, 6)]
    assert out[0].shape == (3, 3, 8, 8)
    assert torch.equal(out[0], out[1])
    assert out[0].min() >= 0 and out[0].max() <= 1
    assert torch.equal(out[0], out[0].mul(255).round().div(255))  # 8-bit levels, like a saved LR image
    if kind != "bicubic":
        assert not torch.equal(out[0], out[2])  # the draws come from the generator ...
    g = torch.Generator().manual_seed(5)
    before = torch.get_rng_state()
    degrade(hr, 4, kind, g)
    assert torch.equal(before, torch.get_rng_state())  # ... and from nothing else
    if kind == "bicubic":
        assert torch.equal(out[0], degrade(hr, 4, kind, torch.Generator().manual_seed(99)))


def test_poisson_noise_is_shot_noise():
    """Poisson noise grows with brightness (std ~ sqrt(intensity)), keeps the mean, scales linearly."""
    from ganforge.restore.degrade import poisson_noise

    x = torch.cat([torch.full((1, 3, 64, 64), 0.1), torch.full((1, 3, 64, 64), 0.4)])
    one = torch.ones(2)
    out = poisson_noise(x, one, torch.Generator().manual_seed(0))
    dark, bright = (out[i] - x[i] for i in range(2))
    assert abs(float(bright.std() / dark.std()) - 2.0) < 0.2  # sqrt(0.4 / 0.1)
    assert abs(float(bright.std()) - (0.4 / 255) ** 0.5) < 0.004 and abs(float(bright.mean())) < 0.003
    half = poisson_noise(x, one / 2, torch.Generator().manual_seed(0)) - x
    assert torch.allclose(half, (out - x) / 2, atol=1e-6)


def test_sinc_filter_is_a_low_pass_that_rings():
    """The 2-D sinc kernel sums to 1, is symmetric, has negative side lobes (the ringing), passes
    frequencies below its cutoff and removes those above."""
    import math

    from ganforge.restore.degrade import sinc_filter, sinc_kernel

    k = sinc_kernel(math.pi / 2, 21)
    assert abs(float(k.sum()) - 1) < 1e-6 and torch.allclose(k, k.flip(0)) and torch.allclose(k, k.t())
    assert float(k.min()) < -0.01 * float(k.max())
    t = torch.arange(96, dtype=torch.float32)
    low, high = torch.cos(0.15 * math.pi * t), torch.cos(0.85 * math.pi * t)
    x = 0.5 + 0.2 * (low + high)[None, None, None].expand(1, 1, 96, 96)
    y = sinc_filter(x, torch.tensor([math.pi / 2]), torch.tensor([21]))[0, 0, 48, 20:76] - 0.5
    amp = lambda f: float(2 * (y * torch.cos(f * math.pi * t[20:76])).mean())  # noqa: E731
    assert amp(0.15) > 0.18 and abs(amp(0.85)) < 0.02
    edge = torch.zeros(1, 1, 32, 32)
    edge[..., 16:] = 1
    rung = sinc_filter(edge, torch.tensor([math.pi / 3]), torch.tensor([21]))
    assert rung.max() > 1.01 and rung.min() < -0.01  # overshoot on both sides of the edge


def test_degraded_batches_are_a_function_of_index_and_generator():
    images = (_hr(n=6, size=40) * 255).round().to(torch.uint8)
    src = DegradedBatches(images, 2, seed=3, crop=32, scale=4, degradation="classic")
    g = torch.Generator().manual_seed(1)
    state = g.get_state()
    first = src.get(4, 0, 1, g, torch.device("cpu"))
    assert first["lr"].shape == (2, 3, 8, 8) and first["hr"].shape == (2, 3, 32, 32)
    assert 0 <= float(first["hr"].min()) and float(first["hr"].max()) <= 1
    g.set_state(state)
    again = DegradedBatches(images, 2, seed=3, crop=32, scale=4, degradation="classic").get(4, 0, 1, g, torch.device("cpu"))
    assert torch.equal(first["lr"], again["lr"]) and torch.equal(first["hr"], again["hr"])
    with pytest.raises(DataError, match="multiple of the scale"):
        DegradedBatches(images, 2, seed=3, crop=30, scale=4)


def _vgg_file(tmp_path: Path) -> str:
    """A random VGG19 in the torchvision layout (the perceptual path without downloaded weights)."""
    from safetensors.torch import save_file

    from ganforge.nets.vgg import VGGEncoder

    torch.manual_seed(0)
    enc = VGGEncoder("torchvision", "imagenet")
    for m in enc.modules():
        if isinstance(m, torch.nn.Conv2d):
            torch.nn.init.kaiming_normal_(m.weight)
    path = tmp_path / "vgg_random.safetensors"
    save_file({k: v.contiguous() for k, v in enc.file_state().items()}, str(path))
    return str(path)


def test_two_phases_resume_bit_exactly_across_the_boundary(tmp_path):
    data = _folder(tmp_path / "data", 4)
    cfg = SRConfig(data=str(data), psnr_steps=3, steps=6, perceptual_encoder=_vgg_file(tmp_path),
                   perceptual_weight=1.0, perceptual_layers="relu1_2:0.5,relu2_1:1", degradation="realistic", **{
                       k: v for k, v in TINY.items() if k != "perceptual_weight"})
    straight = train_upscaler(cfg, out=tmp_path / "straight")
    first = train_upscaler(cfg, out=tmp_path / "split", steps=2, ckpt_every=2)  # inside the L1 phase
    second = train_upscaler(cfg, out=tmp_path / "split", steps=4, ckpt_every=2)  # across the boundary
    third = train_upscaler(cfg, out=tmp_path / "split", steps=6, ckpt_every=2)  # inside the GAN phase
    assert straight["steps"] == 6 and first["steps"] == 2
    assert second["resumed_from"] == 2 and third["resumed_from"] == 4
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys() and any(k.startswith("G_ema.") for k in a)
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log = [__import__("json").loads(line) for line in (tmp_path / "straight" / "log.jsonl").read_text().splitlines()]
    assert set(log[0]) >= {"loss_L1"} and "loss_D" not in log[0] and "loss_percep" not in log[2]
    assert {"loss_L1", "loss_percep", "loss_G_gan", "loss_D"} <= set(log[3]) and log[3]["step"] == 4
    # phase 1 leaves the discriminator as it was built (weights and BatchNorm statistics)
    at_two = checkpoint.load(tmp_path / "split" / "checkpoints" / "step-0000002")[0]
    fresh = SRTask(cfg, torch.device("cpu"), {}).D.state_dict()
    for key, value in fresh.items():
        assert torch.equal(at_two[f"D.{key}"], value), key
    assert not all(torch.equal(at_two[f"D.{k}"], a[f"D.{k}"]) for k in fresh)  # ... and phase 2 trains it


def test_a_trained_run_loads_in_ganforge_upscale(tmp_path, capsys):
    data = _folder(tmp_path / "data", 4)
    run = tmp_path / "run"
    assert main(["train-upscaler", "--data", str(data), "--out", str(run), "--arch", "srresnet", "--nf", "8",
                 "--nb", "1", "--tile-size", "32", "--crop", "32", "--batch-size", "2", "--steps", "3",
                 "--psnr-steps", "2", "--perceptual-weight", "0", "--ndf", "8", "--d-layers", "2",
                 "--precision", "fp32", "--quiet", "--no-tensorboard"]) == 0
    assert '"steps": 3' in capsys.readouterr().out
    image = tmp_path / "in.png"
    _picture(np.random.default_rng(7), 20).crop((0, 0, 20, 13)).save(image)
    out = tmp_path / "out.png"
    assert main(["upscale", str(image), "--model", str(run), "--out", str(out), "--quiet", "--precision", "fp32"]) == 0
    assert Image.open(out).size == (80, 52)
    from ganforge.restore.zoo import build_upscaler
    from ganforge.runs import load_run

    net, exported = build_upscaler(run), build_upscaler(run / "upscaler.safetensors")
    x = torch.rand(1, 3, 9, 11)
    with torch.no_grad():
        assert torch.equal(net(x), exported(x))  # the exported file holds the EMA generator
        assert torch.equal(net(x), load_run(run)(x))
    assert "G_ema" in net.source and net.scale == 4


def test_a_short_run_beats_bicubic_on_held_out_images(tmp_path):
    data = _folder(tmp_path / "data", 12, size=64, draw=_waves)
    held = _hr(n=8, size=64, seed=123, draw=_waves)
    cfg = SRConfig(data=str(data), **{**TINY, "nf": 16, "nb": 2, "tile_size": 64, "crop": 32, "batch_size": 8,
                                      "psnr_steps": 400, "steps": 400, "lr_psnr": 2e-3, "ema": 0.0})
    train_upscaler(cfg, out=tmp_path / "run")
    net = load_upscaler_run(tmp_path / "run")
    lr = degrade(held, 4, "bicubic", torch.Generator())
    with torch.no_grad():
        sr = net(lr).clamp(0, 1)
    bicubic = F.interpolate(lr, scale_factor=4, mode="bicubic", align_corners=False).clamp(0, 1)

    def psnr(x):
        return float((10 * torch.log10(1 / (x - held)[..., 4:-4, 4:-4].pow(2).flatten(1).mean(1))).mean())

    assert psnr(sr) > psnr(bicubic) + 0.2, (psnr(sr), psnr(bicubic))


def _one_line_error(capsys, argv: list[str], *needles: str) -> str:
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("ganforge: error:") and "\n" not in err, err
    for needle in needles:
        assert needle in err, err
    return err


def test_bad_inputs_are_one_line(tmp_path, capsys, monkeypatch):
    data = _folder(tmp_path / "data", 2)
    base = ["train-upscaler", "--out", str(tmp_path / "run"), "--quiet", "--precision", "fp32"]
    # perceptual weights missing offline: names both ways out, and no run directory is left behind
    monkeypatch.setenv("GANFORGE_OFFLINE", "1")
    monkeypatch.setenv("GANFORGE_WEIGHTS_DIR", str(tmp_path / "no_weights"))
    monkeypatch.setenv("GANFORGE_HOME", str(tmp_path / "home"))
    (tmp_path / "no_weights").mkdir()
    _one_line_error(capsys, base + ["--data", str(data), "--tile-size", "32", "--crop", "32"],
                    "--perceptual-weight 0", "GANFORGE_WEIGHTS_DIR")
    assert not (tmp_path / "run" / "run.json").exists()
    _one_line_error(capsys, base + ["--data", str(data), "--tile-size", "32", "--crop", "30"], "multiple of --scale")
    (tmp_path / "empty").mkdir()
    _one_line_error(capsys, base + ["--data", str(tmp_path / "empty"), "--perceptual-weight", "0", "--tile-size", "32",
                                    "--crop", "32"], "no images")
    _one_line_error(capsys, base + ["--data", str(data), "--tile-size", "32", "--crop", "64"], "larger than --tile-size")
    _one_line_error(capsys, base + ["--data", str(data), "--scale", "3"], "--scale must be 2 or 4")
    with pytest.raises(GanforgeError, match="too small for a 3-layer discriminator"):
        train_upscaler(SRConfig(data=str(data), tile_size=32, crop=16, perceptual_weight=0), out=tmp_path / "r2")
    with pytest.raises(WeightsError):  # the library raises the same one-line error
        train_upscaler(SRConfig(data=str(data), tile_size=32, crop=32, steps=2, psnr_steps=1), out=tmp_path / "r3")

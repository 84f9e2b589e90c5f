"""StyleGAN2 (``--arch stylegan2``): shapes, demodulation, style mixing, training through the
common trainer with its regularisers, bit-exact resume, W-space truncation and the sample CLI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ganforge
from conftest import assert_same_run, latest_checkpoint, read_log
from ganforge.nets import GanNetSpec, build_gan
from ganforge.nets.stylegan2 import modulated_conv2d
from ganforge.train import checkpoint

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(data="digits", max_images=512, resolution=16, width=8, z_dim=16, batch_size=16, log_every=1,
            sample_every=0, progress=False, tensorboard=False, arch="stylegan2")


def _train(tmp_path: Path, name: str, **kw) -> dict:
    return ganforge.train_gan(ganforge.GanConfig(**{**TINY, **kw}), out=tmp_path / name)


@pytest.mark.parametrize("resolution,channels,classes", [(32, 1, 0), (64, 3, 3)])
def test_shapes(resolution, channels, classes):
    torch.manual_seed(0)
    spec = GanNetSpec(resolution, channels, z_dim=16, width=8, num_classes=classes)
    G, D = build_gan("stylegan2", spec)
    z = torch.randn(4, 16)
    y = torch.tensor([0, 1, 2, 1]) if classes else None
    assert G.num_ws == 2 * (resolution.bit_length() - 3) + 2  # 2 per resolution 4..R; torgbs share
    ws = G.mapping(z, y)
    assert ws.shape == (4, G.num_ws, G.w_dim)
    img = G.synthesis(ws)
    assert img.shape == (4, channels, resolution, resolution) and torch.isfinite(img).all()
    assert torch.equal(G.eval()(z, y), G.synthesis(G.mapping(z, y)))  # eval: fixed noise buffers
    assert D(img, y).shape == (4,)
    assert G.w_avg.shape == (max(classes, 1), G.w_dim) and not G.w_avg.any()
    if classes:
        with pytest.raises(ValueError, match="labels"):
            G(z)


def test_demodulation_keeps_unit_variance():
    g = torch.Generator().manual_seed(0)
    x = torch.randn(8, 64, 24, 24, generator=g)
    weight = torch.randn(32, 64, 3, 3, generator=g) * 5.0
    styles = torch.randn(8, 64, generator=g).exp() * 3.0  # per-sample input scales over ~2 decades
    out = modulated_conv2d(x, weight, styles, demodulate=True, padding=1)[:, :, 1:-1, 1:-1]  # no zero border
    var = out.var(dim=(2, 3))  # per sample and output channel
    assert var.mean().item() == pytest.approx(1.0, abs=0.05)
    assert 0.7 < var.min().item() and var.max().item() < 1.3
    raw = modulated_conv2d(x, weight, styles, demodulate=False, padding=1)[:, :, 1:-1, 1:-1]
    assert raw.var().item() > 100  # what demodulation removed
    # the closed form equals demodulating the explicitly modulated weight
    w_mod = weight[None] * styles[:, None, :, None, None]
    d = w_mod.square().sum(dim=(2, 3, 4)).add(1e-8).rsqrt()
    ref = torch.stack([torch.nn.functional.conv2d(x[i:i + 1], w_mod[i] * d[i, :, None, None, None], padding=1)[0]
                       for i in range(8)])[:, :, 1:-1, 1:-1]
    torch.testing.assert_close(out, ref, rtol=1e-4, atol=1e-4)


def test_style_mixing_late_changes_less_than_early():
    torch.manual_seed(1)
    G, _ = build_gan("stylegan2", GanNetSpec(32, 3, z_dim=16, width=16))
    G.eval()
    with torch.no_grad():
        ws1, ws2 = G.mapping(torch.randn(16, 16)), G.mapping(torch.randn(16, 16))
        base = G.synthesis(ws1)

        def change(cutoff: int) -> float:
            ws = ws1.clone()
            ws[:, cutoff:] = ws2[:, cutoff:]
            return (G.synthesis(ws) - base).abs().mean().item()

        early, late = change(1), change(G.num_ws - 2)
        assert change(G.num_ws) == 0.0
        assert early > 2 * late > 0
        coarse = G.synthesis(torch.cat([ws2[:, :4], ws1[:, 4:]], dim=1))  # z2's coarse styles, z1's fine
    # coarse styles from z2 move the low-frequency content toward z2's image
    low = lambda t: torch.nn.functional.avg_pool2d(t, 8)  # noqa: E731
    other = G.synthesis(ws2).detach()
    assert (low(coarse) - low(other)).abs().mean() < (low(base) - low(other)).abs().mean()


def test_trains_with_regularisers_through_the_common_trainer(tmp_path):
    summary = _train(tmp_path, "run", steps=4, r1_gamma=1.0, r1_every=2, pl_every=2, conditional=True,
                     augment="translation", augment_p=0.3)
    assert summary["steps"] == 4 and summary["bad_steps"] == 0
    log = read_log(tmp_path / "run")
    assert ["pl_penalty" in r for r in log] == [True, False, True, False]  # lazy: steps 0 and 2 (0-based)
    assert log[-1]["pl_mean"] > 0
    weights = load_file(str(latest_checkpoint(tmp_path / "run") / "weights.safetensors"))
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    assert weights["G.mapping.w_avg"].abs().sum() > 0  # tracked during training
    assert torch.equal(weights["G.mapping.w_avg"], weights["G_ema.mapping.w_avg"])
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert {"r1_every", "pl_every"} <= set(config["non_defaults"])


def test_resume_is_bit_exact(tmp_path):
    opts = dict(conditional=True, r1_gamma=1.0, r1_every=3, pl_every=2, augment="translation", augment_p=0.3,
                ckpt_every=3, keep_ckpts=2)
    _train(tmp_path, "straight", steps=6, **opts)
    _train(tmp_path, "split", steps=3, **opts)
    summary = _train(tmp_path, "split", steps=6, **opts)
    assert summary["resumed_from"] == 3
    assert "G_ema.mapping.w_avg" in assert_same_run(tmp_path / "straight", tmp_path / "split")
    state = lambda run: torch.load(latest_checkpoint(run) / checkpoint.STATE_FILE, weights_only=True)  # noqa: E731
    pl_a, pl_b = state(tmp_path / "straight")["task"]["pl_mean"], state(tmp_path / "split")["task"]["pl_mean"]
    assert float(pl_a) > 0 and torch.equal(pl_a, pl_b)


def test_truncation_in_w_space_and_sample_cli(tmp_path):
    from ganforge.cli import main

    _train(tmp_path, "cond", steps=2, conditional=True, pl_weight=0.0)
    gen = ganforge.load_generator(tmp_path / "cond")
    assert gen.w_space
    # psi = 0: every z gives the image of the class's w_avg
    for label in (0, 3):
        x = gen.sample(6, labels=label, seed=1, truncation=0.0)
        assert all(torch.equal(x[0], x[i]) for i in range(1, 6)), label
    seen = gen.G_ema.mapping.w_avg.abs().sum(dim=1) > 0  # classes in the 2 training batches have their own mean
    c1, c2 = [int(c) for c in torch.nonzero(seen)[:2, 0]]
    assert not torch.equal(gen.sample(1, labels=c1, truncation=0.0), gen.sample(1, labels=c2, truncation=0.0))
    # psi in (0, 1) pulls samples toward the mean; psi = 1 is no truncation; z is never resampled
    spread = {psi: gen.sample(32, labels=c1, seed=2, truncation=psi).std(dim=0).mean().item() for psi in (0.5, 1.0)}
    assert 0 < spread[0.5] < spread[1.0]
    assert torch.equal(gen.latents(8, seed=3, truncation=0.3), gen.latents(8, seed=3))
    assert torch.equal(gen.sample(8, labels=c1, seed=3, truncation=1.0), gen.sample(8, labels=c1, seed=3))
    with pytest.raises(ganforge.GanforgeError, match="truncation"):
        gen.sample(2, labels=0, truncation=-1.0)
    # unconditional: one image for every z at psi = 0; the CLI samples the run
    _train(tmp_path, "uncond", steps=2, pl_weight=0.0)
    gen = ganforge.load_generator(tmp_path / "uncond")
    x = gen.sample(5, seed=4, truncation=0.0)
    assert all(torch.equal(x[0], x[i]) for i in range(1, 5))
    assert main(["sample", str(tmp_path / "uncond"), "--n", "4", "--out", str(tmp_path / "grid.png"),
                 "--truncation", "0.7", "--device", "cpu"]) == 0
    assert (tmp_path / "grid.png").is_file()
    assert main(["sample", str(tmp_path / "cond"), "--n", "3", "--class", "2", "--out-dir", str(tmp_path / "imgs"),
                 "--device", "cpu"]) == 0
    assert len(list((tmp_path / "imgs").glob("*.png"))) == 3

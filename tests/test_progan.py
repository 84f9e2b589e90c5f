"""Progressive growing (``--arch progan``): the stage schedule, continuity at the start of every
fade-in, training through every level on the common trainer, bit-exact resume in the middle of a
fade, and a 128x128 smoke run on crops of real photos."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import ganforge
from conftest import CONTENT_DIR, assert_same_run, latest_checkpoint, read_log, require
from ganforge.nets import GanNetSpec, build_gan
from ganforge.nets.progan import growth_steps, num_levels, reals_at_stage, stage_at

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = dict(data="digits", max_images=256, resolution=16, width=8, z_dim=16, batch_size=8, log_every=1,
            sample_every=0, progress=False, tensorboard=False, arch="progan", beta1=0.0, beta2=0.99, lr_g=1e-3,
            lr_d=1e-3)


def _train(tmp_path: Path, name: str, **kw) -> dict:
    return ganforge.train_gan(ganforge.GanConfig(**{**TINY, **kw}), out=tmp_path / name)


def test_schedule():
    assert num_levels(32) == 4 and num_levels(8) == 2
    got = [stage_at(s, 2, 3) for s in range(10)]
    assert got == [(0, 1.0), (0, 1.0), (1, 0.0), (1, 0.5), (1, 1.0), (1, 1.0), (2, 0.0), (2, 0.5), (2, 1.0), (2, 1.0)]
    assert growth_steps(2, 3) == 8 and stage_at(10**6, 2, 3) == (2, 1.0)
    with pytest.raises(ValueError):
        num_levels(48)


@pytest.mark.parametrize("classes", [0, 3])
def test_a_fade_starts_exactly_where_the_level_below_ends(classes):
    """alpha = 0 of level k is level k - 1 (G's image enlarged, D's score of the image reduced),
    so growing never jolts the game; alpha in (0, 1) differs from both ends."""
    torch.manual_seed(0)
    spec = GanNetSpec(32, 3, z_dim=16, width=8, num_classes=classes)
    G, D = build_gan("progan", spec)
    z = torch.randn(6, 16)
    y = torch.tensor([0, 1, 2, 0, 1, 2]) if classes else None
    x = torch.randn(6, 3, 32, 32)
    for level in (1, 2, 3):
        G.set_stage(level - 1, 1.0)
        D.set_stage(level - 1, 1.0)
        below = G(z, y, full_size=False)
        d_below = D(reals_at_stage(x, level - 1, 1.0), y)
        G.set_stage(level, 0.0)
        D.set_stage(level, 0.0)
        start = G(z, y, full_size=False)
        assert start.shape[-1] == 4 * 2 ** level
        assert torch.equal(start, torch.nn.functional.interpolate(below, scale_factor=2, mode="nearest"))
        assert torch.allclose(D(reals_at_stage(x, level, 0.0), y), d_below, atol=1e-5)
        G.set_stage(level, 0.5)
        mid = G(z, y, full_size=False)
        G.set_stage(level, 1.0)
        end = G(z, y, full_size=False)
        assert not torch.allclose(mid, start) and not torch.allclose(mid, end)
        assert G(z, y).shape == (6, 3, 32, 32)  # full size at every stage
    with pytest.raises(ValueError, match="stage"):
        G.set_stage(4, 1.0)


def test_trains_through_every_level_and_samples(tmp_path):
    summary = _train(tmp_path, "run", steps=12, grow_steps=2, conditional=True, r1_gamma=1.0)
    assert summary["steps"] == 12 and summary["bad_steps"] == 0
    log = read_log(tmp_path / "run")
    assert [(r["level"], r["alpha"]) for r in log] == [stage_at(s, 2, 3) for s in range(12)]
    weights = load_file(str(latest_checkpoint(tmp_path / "run") / "weights.safetensors"))
    assert weights["G_ema.stage"].tolist() == [2.0, 1.0] and weights["D.stage"].tolist() == [2.0, 1.0]
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    gen = ganforge.load_generator(tmp_path / "run")
    x = gen.sample(6, labels=1, seed=0)
    assert x.shape == (6, 1, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert x.std(dim=0).mean() > 0  # z matters


def test_a_stopped_run_samples_at_its_stage(tmp_path):
    """A run stopped before growing fully samples its current stage, enlarged to full size."""
    _train(tmp_path, "early", steps=4, grow_steps=2)  # last step 3: halfway through the first fade
    gen = ganforge.load_generator(tmp_path / "early")
    assert gen.G_ema.get_stage() == (1, 0.5) == stage_at(3, 2, 2 + 1)
    x = gen.sample(2, seed=0)
    assert x.shape == (2, 1, 16, 16)
    assert torch.equal(x[:, :, ::2, ::2], x[:, :, 1::2, 1::2])  # 8x8 content, nearest-enlarged


def test_resume_in_the_middle_of_a_fade_is_bit_exact(tmp_path):
    opts = dict(grow_steps=4, conditional=True, augment="translation", augment_p=0.3, ckpt_every=3, keep_ckpts=3)
    _train(tmp_path, "straight", steps=14, **opts)
    _train(tmp_path, "split", steps=6, **opts)  # stopped after step index 5: level 1, alpha 0.25
    assert ganforge.load_generator(tmp_path / "split").G_ema.get_stage() == (1, 0.25)
    summary = _train(tmp_path, "split", steps=14, **opts)
    assert summary["resumed_from"] == 6
    assert "G.stage" in assert_same_run(tmp_path / "straight", tmp_path / "split")


def test_changing_steps_on_resume_needs_a_fixed_growth(tmp_path):
    _train(tmp_path, "auto", steps=3)  # grow_steps 0: the phases follow --steps
    with pytest.raises(ganforge.GanforgeError, match="grow-steps"):
        _train(tmp_path, "auto", steps=6)
    _train(tmp_path, "fixed", steps=3, grow_steps=2)
    assert _train(tmp_path, "fixed", steps=5, grow_steps=2)["resumed_from"] == 3
    with pytest.raises(ganforge.GanforgeError, match="grow-steps"):
        ganforge.GanConfig(**{**TINY, "grow_steps": -1}).validate()


def test_128px_photo_crops_train_sample_and_resume_mid_fade(tmp_path):
    """Smoke run at 128x128 on crops of the shared photos: through all six levels, stopped and
    resumed in the last fade, bit-exact, and sampled at full size."""
    photos = sorted(require(CONTENT_DIR).glob("*.jpg"))
    data = tmp_path / "crops"
    data.mkdir()
    for i, path in enumerate(photos):
        img = Image.open(path).convert("RGB")
        side = min(img.size) // 2
        for j, (x, y) in enumerate([(0, 0), (side, 0), (0, side), (side // 2, side // 2)]):
            img.crop((x, y, x + side, y + side)).resize((128, 128), Image.BICUBIC).save(data / f"{i}_{j}.png")
    opts = dict(data=str(data), resolution=128, width=4, z_dim=16, batch_size=4, max_images=None, grow_steps=2,
                ckpt_every=19, keep_ckpts=2)
    levels = num_levels(128)
    assert stage_at(19, 2, levels) == (5, 0.5)  # step 19: halfway through the last fade-in
    _train(tmp_path, "straight", steps=21, **opts)
    _train(tmp_path, "split", steps=19, **opts)
    assert _train(tmp_path, "split", steps=21, **opts)["resumed_from"] == 19
    assert_same_run(tmp_path / "straight", tmp_path / "split", logs=False)
    x = ganforge.load_generator(tmp_path / "split").sample(4, seed=0)
    assert x.shape == (4, 3, 128, 128) and torch.isfinite(x).all()

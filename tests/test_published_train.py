"""``ganforge train --init``: fine-tuning from a published network (a test-made official pickle:
G and G_ema from the file, a fresh discriminator) and from a ganforge run (G, G_ema and D), with
ADA; the run records its source, and a resumed run continues exactly (step counter, ADA p)."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ganforge
from ganforge.cli import main
from ganforge.errors import GanforgeError
from ganforge.train import checkpoint

sys.path.insert(0, str(Path(__file__).parent))
from conftest import assert_same_run  # noqa: E402
from published_fixtures import COND, UNCOND, official_modules, random_D, write_pkl  # noqa: E402,F401

GRAY16 = dict(UNCOND, img_channels=1)
TINY = dict(data="digits", max_images=64, width=8, batch_size=4, log_every=1, sample_every=0, progress=False,
            tensorboard=False, augment="translation,color", augment_p=0.2, ada_target=0.6)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.list_checkpoints(run / "checkpoints")[-1] / "weights.safetensors"))


def _cfg(**kw):
    fields = ganforge.GanConfig.__dataclass_fields__
    return ganforge.GanConfig(**{k: v for k, v in {**TINY, **kw}.items() if k in fields})


def test_init_from_published_pickle_finetunes_and_resumes_exactly(official_modules, tmp_path):
    G, G_ema = write_pkl(tmp_path / "net.pkl", official_modules, GRAY16, seed=3)
    src = str(tmp_path / "net.pkl")
    ganforge.train_gan(_cfg(init=src, steps=4, ckpt_every=2), out=tmp_path / "straight")
    ganforge.train_gan(_cfg(init=src, steps=2, ckpt_every=2), out=tmp_path / "split")
    assert main(["train", "--init", src, "--data", "digits", "--max-images", "64", "--width", "8",
                 "--batch-size", "4", "--log-every", "1", "--sample-every", "0", "--quiet", "--no-tensorboard",
                 "--augment", "translation,color", "--augment-p", "0.2", "--ada-target", "0.6",
                 "--steps", "4", "--ckpt-every", "2", "--out", str(tmp_path / "split")]) == 0
    weights = assert_same_run(tmp_path / "straight", tmp_path / "split")
    meta = json.loads((tmp_path / "split" / "run.json").read_text())
    assert meta["init"]["source"] == src and meta["init"]["discriminator"] == "from the source"
    assert meta["official_kwargs"]["img_resolution"] == 16 and meta["spec"]["resolution"] == 16
    ps = [r["augment_p"] for r in map(json.loads, (tmp_path / "split" / "log.jsonl").read_text().splitlines())]
    assert len(set(ps)) > 1  # ADA moved p, and the resumed half continued it (same logs as straight)
    # the run started from the file's networks: 4 small Adam steps away from them, not from scratch
    ref = G.state_dict()  # (G_ema moves toward G by its EMA: G_ema and G differ in the file)
    for key in ("mapping.fc0.weight", "synthesis.b16.conv1.weight", "synthesis.b8.conv0.noise_const", "mapping.w_avg"):
        a, b = weights[f"G.{key}"], ref[key]
        assert (a - b).abs().max() < 0.1 * b.abs().max(), key
    assert not torch.equal(weights["G.mapping.fc0.weight"], G.state_dict()["mapping.fc0.weight"])
    D = random_D(GRAY16, 3 + 2).state_dict()  # the pickle's discriminator, fine-tuned too
    assert {f"D.{k}" for k in D} <= set(weights) and "D.b16.fromrgb.weight" in weights
    for key in ("b16.conv1.weight", "b4.fc.weight", "b8.skip.weight"):
        a, b = weights[f"D.{key}"], D[key]
        assert (a - b).abs().max() < 0.1 * b.abs().max() and not torch.equal(a, b), key
    gen = ganforge.load_generator(tmp_path / "split")
    assert gen.arch == "stylegan2-official" and gen.sample(2, seed=1).shape == (2, 1, 16, 16)
    assert main(["export", str(tmp_path / "split"), "--out", str(tmp_path / "ft.safetensors"), "--quiet"]) == 0
    z = torch.randn(2, 16, generator=torch.Generator().manual_seed(0))
    assert torch.equal(ganforge.load_generator(tmp_path / "ft.safetensors").generate(z), gen.generate(z))


def test_init_from_a_run_takes_its_discriminator_too(tmp_path):
    ganforge.train_gan(_cfg(arch="dcgan", resolution=16, steps=2), out=tmp_path / "base")
    base = _weights(tmp_path / "base")
    ganforge.train_gan(_cfg(init=str(tmp_path / "base"), steps=1, lr_g=1e-12, lr_d=1e-12), out=tmp_path / "ft")
    ft = _weights(tmp_path / "ft")
    for key in base:
        moving = "running_" in key or key.endswith(("._u", "._v"))  # BN statistics, spectral norm's power iteration
        if key.startswith(("G.", "D.")) and base[key].is_floating_point() and not moving:
            assert torch.allclose(ft[key], base[key], atol=1e-6), key  # one step at lr 1e-12: the source's
    meta = json.loads((tmp_path / "ft" / "run.json").read_text())
    assert meta["init"]["kind"] == "run" and meta["init"]["discriminator"] == "from the source"
    assert meta["arch"] == "dcgan"


def test_init_errors_are_one_line(official_modules, tmp_path):
    write_pkl(tmp_path / "net.pkl", official_modules, GRAY16)
    write_pkl(tmp_path / "cond4.pkl", official_modules, COND)  # 4 classes; digits has 10
    cases = [(dict(init=str(tmp_path / "net.pkl"), arch="resnet"), "does not match"),
             (dict(init=str(tmp_path / "absent")), "no such"),
             (dict(init=str(tmp_path / "cond4.pkl")), "as many classes"),
             (dict(init=str(tmp_path / "net.pkl"), batch_size=6), "multiple of 4"),
             (dict(arch="stylegan2-official"), "--init")]
    for i, (kw, words) in enumerate(cases):
        with pytest.raises(GanforgeError) as info:
            ganforge.train_gan(_cfg(steps=1, **kw), out=tmp_path / f"x{i}")
        assert "\n" not in str(info.value) and words in str(info.value), str(info.value)

"""GAN training: every loss/architecture trains, resume is bit-exact, crashes lose nothing,
non-finite steps are caught."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

import ganforge
from ganforge import CheckpointError, GanforgeError
from ganforge.train import checkpoint

TINY = dict(data="digits", max_images=512, resolution=16, width=8, batch_size=16, log_every=1,
            sample_every=0, progress=False, tensorboard=False)


def _train(tmp_path: Path, name: str, **kw) -> dict:
    return ganforge.train_gan(ganforge.GanConfig(**{**TINY, **kw}), out=tmp_path / name)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(checkpoint.list_checkpoints(run / "checkpoints")[-1] / "weights.safetensors"))


@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
@pytest.mark.parametrize("loss", ["minimax", "non-saturating", "lsgan", "hinge", "wgan-gp"])
def test_every_loss_and_architecture_trains(tmp_path, arch, loss):
    before = None
    summary = _train(tmp_path, "run", arch=arch, loss=loss, steps=3, conditional=(loss == "hinge"))
    assert summary["steps"] == 3 and summary["bad_steps"] == 0
    weights = _weights(tmp_path / "run")
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    # G and D actually moved away from the run's own initialisation (its task built again from
    # its saved options: the same seeded build and weight-init scheme the run started from)
    from ganforge.nets import GanNetSpec
    from ganforge.train.gan import GanTask

    run = tmp_path / "run"
    spec = GanNetSpec(**json.loads((run / "run.json").read_text())["spec"])
    task = GanTask(ganforge.GanConfig.load(run / "config.json"), spec, torch.device("cpu"))
    for name, net in (("G", task.G), ("D", task.D)):
        before = net.state_dict()
        convs = [k for k in before if k.endswith(("weight", "weight.original")) and before[k].ndim == 4]
        assert convs
        assert all(not torch.equal(before[k], weights[f"{name}.{k}"]) for k in convs), name
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3] and {"loss_G", "loss_D", "D_real", "D_fake"} <= set(log[0])


def test_options_r1_augment_ada_ncritic_smoothing_auto_precision_schedule(tmp_path):
    summary = _train(tmp_path, "run", steps=6, r1_gamma=1.0, augment="color,translation,cutout", augment_p=0.5,
                     ada_target=0.6, n_critic=2, label_smoothing=0.1, precision="auto", lr_schedule="cosine",
                     grad_clip=1.0, hflip=True, conditional=True, weight_init="default")
    assert summary["steps"] == 6 and summary["bad_steps"] == 0
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["lr_G"] < log[0]["lr_G"]  # cosine decay
    assert any(r["augment_p"] != 0.5 for r in log)  # ADA adjusted p
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert "r1_gamma" in config["non_defaults"] and "steps" in config["non_defaults"]
    assert "arch" not in config["non_defaults"]


def test_resume_is_bit_exact(tmp_path):
    opts = dict(conditional=True, augment="color,translation", augment_p=0.3, ada_target=0.6, hflip=True,
                lr_schedule="linear", lr_decay_steps=8, ckpt_every=4, keep_ckpts=2)
    _train(tmp_path, "straight", steps=8, **opts)
    _train(tmp_path, "split", steps=4, **opts)
    summary = _train(tmp_path, "split", steps=8, **opts)  # same --out: resumes from step 4
    assert summary["resumed_from"] == 4
    a, b = _weights(tmp_path / "straight"), _weights(tmp_path / "split")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    log_a = (tmp_path / "straight" / "log.jsonl").read_text().splitlines()
    log_b = (tmp_path / "split" / "log.jsonl").read_text().splitlines()
    strip = lambda lines: [{k: v for k, v in json.loads(x).items() if k != "img_per_s"} for x in lines]  # noqa: E731
    assert strip(log_a) == strip(log_b)


def test_resume_refuses_different_options(tmp_path):
    _train(tmp_path, "run", steps=2)
    with pytest.raises(CheckpointError, match="loss"):
        _train(tmp_path, "run", steps=4, loss="hinge")
    _train(tmp_path, "sched", steps=2, lr_schedule="cosine")
    with pytest.raises(CheckpointError, match="lr-decay-steps"):
        _train(tmp_path, "sched", steps=4, lr_schedule="cosine")
    with pytest.raises(GanforgeError, match="already holds a run"):
        ganforge.train_gan(ganforge.GanConfig(**{**TINY, "steps": 4}), out=tmp_path / "run", resume="never")


def test_truncated_newest_checkpoint_falls_back_to_previous(tmp_path):
    _train(tmp_path, "run", steps=4, ckpt_every=2, keep_ckpts=3)
    ckpts = checkpoint.list_checkpoints(tmp_path / "run" / "checkpoints")
    assert [p.name for p in ckpts] == ["step-0000002", "step-0000004"]
    weights_file = ckpts[-1] / "weights.safetensors"
    weights_file.write_bytes(weights_file.read_bytes()[:1000])  # truncated
    with pytest.raises(CheckpointError, match="unreadable"):
        checkpoint.load(ckpts[-1])
    with pytest.warns(UserWarning, match="skipping"):
        summary = _train(tmp_path, "run", steps=5, ckpt_every=2, keep_ckpts=3)
    assert summary["resumed_from"] == 2 and summary["steps"] == 5
    with pytest.raises(CheckpointError, match="not a ganforge run"):
        ganforge.load_generator(tmp_path)


def test_sigkill_during_training_resumes_from_last_good_checkpoint(tmp_path):
    run = tmp_path / "run"
    script = (
        "import ganforge, sys; cfg = ganforge.GanConfig(data='digits', max_images=512, resolution=16, width=8, "
        "batch_size=16, steps=100000, ckpt_every=1, keep_ckpts=2, sample_every=0, progress=False, tensorboard=False);"
        f"ganforge.train_gan(cfg, out={str(run)!r})"
    )
    proc = subprocess.Popen([sys.executable, "-c", script], env=os.environ.copy())
    try:
        deadline = time.time() + 120
        while time.time() < deadline and len(checkpoint.list_checkpoints(run / "checkpoints")) < 2:
            time.sleep(0.2)
        time.sleep(0.37)  # land somewhere inside a step or a checkpoint write
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    good = checkpoint.list_checkpoints(run / "checkpoints")
    assert good, "no checkpoint was written before the kill"
    summary = ganforge.train_gan(ganforge.GanConfig(**{**TINY, "steps": int(good[-1].name[5:]) + 2, "ckpt_every": 1,
                                                      "keep_ckpts": 2}), out=run)
    assert summary["resumed_from"] >= int(good[0].name[5:])
    assert not list((run / "checkpoints").glob(".tmp-*"))  # partial writes cleaned up


def test_nan_loss_is_skipped_and_counted(tmp_path, monkeypatch):
    from ganforge.losses import LOSSES

    loss = LOSSES.get("non-saturating")
    calls = {"n": 0}

    def poisoned(real, fake, target):
        calls["n"] += 1
        value = loss.d_loss(real, fake, target)
        return value * float("nan") if calls["n"] in (2, 3) else value

    monkeypatch.setitem(LOSSES._items, "non-saturating", loss.__class__(loss.name, poisoned, loss.g_loss))
    summary = _train(tmp_path, "run", steps=5)
    assert summary["bad_steps"] == 2
    assert all(torch.isfinite(v.float()).all() for v in _weights(tmp_path / "run").values())
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert log[-1]["bad_steps"] == 2


def test_diverged_run_stops_with_clear_error(tmp_path, monkeypatch):
    from ganforge.losses import LOSSES

    loss = LOSSES.get("non-saturating")
    monkeypatch.setitem(LOSSES._items, "non-saturating",
                        loss.__class__(loss.name, lambda r, f, t: loss.d_loss(r, f, t) * float("inf"), loss.g_loss))
    with pytest.raises(GanforgeError, match="diverged"):
        _train(tmp_path, "run", steps=100)


def test_sample_api_and_class_control(tmp_path):
    _train(tmp_path, "run", steps=2, conditional=True)
    gen = ganforge.load_generator(tmp_path / "run")
    assert (gen.num_classes, gen.channels, gen.resolution) == (10, 1, 16)
    x = gen.sample(6, labels=3, seed=1)
    assert x.shape == (6, 1, 16, 16) and 0 <= float(x.min()) and float(x.max()) <= 1
    assert torch.equal(x, gen.sample(6, labels=3, seed=1))  # seeded
    assert not torch.equal(x, gen.sample(6, labels=4, seed=1))  # the class changes the image
    assert len(gen.sample_pil(2, labels=[0, 1])) == 2
    with pytest.raises(GanforgeError, match="class must be in 0..9"):
        gen.sample(2, labels=10)
    t = gen.sample(64, seed=3, truncation=0.5)
    assert t.shape[0] == 64
    # truncation pulls latents (and so samples) toward the mean; 1.0 is no truncation
    assert torch.equal(gen.latents(64, seed=3, truncation=1.0), gen.latents(64, seed=3))
    assert torch.equal(gen.sample(64, seed=3, truncation=1.0), gen.sample(64, seed=3))
    spread = {tr: gen.latents(512, seed=3, truncation=tr).abs().max().item() for tr in (0.25, 0.5, 2.0)}
    assert spread[0.25] <= 0.25 < spread[0.5] <= 0.5 < spread[2.0]
    std = {tr: gen.latents(512, seed=3, truncation=tr).std().item() for tr in (0.25, 0.5, 1.0)}
    assert std[0.25] < std[0.5] < std[1.0] == pytest.approx(1.0, abs=0.05)
    img_spread = {tr: gen.sample(256, seed=3, truncation=tr).std(dim=0).mean().item() for tr in (0.1, 1.0)}
    assert img_spread[0.1] < img_spread[1.0]


def test_eval_during_training_logs_metric_and_keeps_best(tmp_path):
    summary = _train(tmp_path, "run", steps=4, eval_every=2, eval_metric="kid", eval_n=128, conditional=True)
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    evals = [r["eval"] for r in log if "eval" in r]
    assert len(evals) == 2 and all(v == v for v in evals)
    assert summary["best"] == min(evals)
    best = tmp_path / "run" / "checkpoints" / "best"
    assert (best / "weights.safetensors").is_file()
    assert ganforge.load_generator(tmp_path / "run", checkpoint_name="best").step in (2, 4)


def test_each_architecture_gets_its_papers_optimiser_unless_told(tmp_path):
    cfg = ganforge.GanConfig(arch="stylegan2", resolution=32, batch_size=64).resolved()
    assert (cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.beta2) == (0.0025, 0.0025, 0.0, 0.99)
    assert cfg.r1_gamma == pytest.approx(0.0002 * 32 ** 2 / 64)  # StyleGAN2-ADA's heuristic
    cfg = ganforge.GanConfig(arch="progan").resolved()
    assert (cfg.lr_g, cfg.beta1, cfg.beta2, cfg.r1_gamma) == (0.001, 0.0, 0.99, 0.0)
    cfg = ganforge.GanConfig().resolved()
    assert (cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.beta2, cfg.r1_gamma) == (2e-4, 2e-4, 0.5, 0.999, 0.0)
    cfg = ganforge.GanConfig(arch="stylegan2", lr_g=0.01, beta1=0.5, r1_gamma=0.0).resolved()
    assert (cfg.lr_g, cfg.lr_d, cfg.beta1, cfg.r1_gamma) == (0.01, 0.0025, 0.5, 0.0)  # what is given wins
    # the optimisers really use them, and run.json records them
    _train(tmp_path, "sg2", arch="stylegan2", steps=1, pl_weight=0.0)
    info = json.loads((tmp_path / "sg2" / "run.json").read_text())
    assert info["optimizer"] == {"lr_g": 0.0025, "lr_d": 0.0025, "beta1": 0.0, "beta2": 0.99,
                                 "r1_gamma": pytest.approx(0.0002 * 16 ** 2 / 16), "r1_every": 16}
    state = torch.load(checkpoint.list_checkpoints(tmp_path / "sg2" / "checkpoints")[-1] / checkpoint.STATE_FILE,
                       weights_only=True)
    group = state["optimizers"]["G"]["param_groups"][0]
    assert group["lr"] == 0.0025 and tuple(group["betas"]) == (0.0, 0.99)


def test_a_run_with_the_old_explicit_settings_resumes_under_auto(tmp_path):
    """Runs written before "auto" saved DCGAN's numbers explicitly; the same maths resumes."""
    _train(tmp_path, "run", steps=2, lr_g=2e-4, lr_d=2e-4, beta1=0.5, beta2=0.999, r1_gamma=0.0)
    assert _train(tmp_path, "run", steps=3)["resumed_from"] == 2
    with pytest.raises(CheckpointError, match="lr_g"):
        _train(tmp_path, "run", steps=4, lr_g=1e-3)


def test_training_gives_the_callers_rng_state_back(tmp_path):
    """Tasks seed torch's RNG to initialise their networks; the caller's state is restored."""
    torch.manual_seed(1234)
    before = torch.get_rng_state()
    _train(tmp_path, "run", steps=1)
    assert torch.equal(torch.get_rng_state(), before)

"""Defaults that converge: the EMA's ramped half-life, the lost-game watchdog (fires on a forced
divergence, stays quiet on a healthy run, resumes exactly across its actions), and the defaults
recorded in the run's files, while older runs keep their stored behaviour."""

from __future__ import annotations

import copy
import json
import math

import pytest
import torch
from torch import nn

import ganforge
from conftest import assert_same_run, read_log
from ganforge.train.ema import ema_beta, ema_update, recalibrate_batchnorm
from ganforge.train.watchdog import LostGameWatchdog

TINY = dict(data="digits", max_images=512, resolution=16, width=8, batch_size=16, sample_every=0,
            progress=False, tensorboard=False)
# D learns ~10x faster than Adam's default and G (almost) not at all: D wins outright.
DIVERGE = dict(TINY, lr_d=5e-3, lr_g=1e-9, log_every=5, ckpt_every=1000, steps=200, d_norm="batch")


def test_ema_beta_is_stylegan2_adas_ramped_half_life():
    # ema_nimg = min(ema_kimg * 1000, cur_nimg * rampup); beta = 0.5 ** (batch / ema_nimg)
    assert ema_beta(64, 64_000, 20.0, 0.05) == pytest.approx(0.5 ** (64 / 3200))
    assert ema_beta(64, 10_000_000, 20.0, 0.05) == pytest.approx(0.5 ** (64 / 20_000))  # ramp-up over: capped
    assert ema_beta(64, 64, 20.0, 0.0) == pytest.approx(0.5 ** (64 / 20_000))  # no ramp-up
    assert ema_beta(64, 0, 20.0, 0.05) == 0.0  # nothing seen yet: the average is the generator
    # the half-life: after ema_nimg images (ema_nimg / batch updates) half the old average is left
    beta = ema_beta(32, 10**9, 3.2, 0.05)
    assert beta ** (3200 / 32) == pytest.approx(0.5)
    # ramp-up: early updates follow G closely, later ones average over more images
    betas = [ema_beta(64, 64 * (s + 1), 20.0, 0.05) for s in (0, 10, 100, 1000, 10_000)]
    assert betas == sorted(betas) and betas[0] < 0.01 and betas[-1] > 0.99


def test_ema_update_lerps_by_one_minus_beta_and_copies_buffers():
    torch.manual_seed(0)
    model, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    nn.init.normal_(model.weight), nn.init.normal_(ema.weight)
    model.running_mean.fill_(2.0)
    old = ema.weight.detach().clone()
    ema_update(ema, model, decay=0.999, step=10_000, beta=0.9)
    assert torch.allclose(ema.weight, 0.9 * old + 0.1 * model.weight.detach())
    assert torch.equal(ema.running_mean, model.running_mean)


def test_ema_pair_reused_across_updates_follows_replaced_buffers():
    """The cached lists (EmaPair) give what fresh ones give, also after ``.to()`` replaced every
    buffer tensor of both modules; a pair of other modules is not reused."""
    torch.manual_seed(0)
    model, ema = nn.BatchNorm1d(3), nn.BatchNorm1d(3)
    nn.init.normal_(model.weight)
    pair = ema_update(ema, model, decay=0.999, step=10_000, beta=0.5)
    model.double(), ema.double()  # new buffer tensors (and new parameter data) in both
    model.running_var.fill_(7.0)
    old = ema.weight.detach().clone()
    assert ema_update(ema, model, decay=0.999, step=10_000, beta=0.5, pair=pair) is pair
    assert torch.equal(ema.running_var, model.running_var)
    assert torch.allclose(ema.weight, 0.5 * old + 0.5 * model.weight.detach())
    other = nn.BatchNorm1d(3).double()
    assert ema_update(other, model, decay=0.999, step=10_000, beta=0.5, pair=pair) is not pair
    assert torch.equal(other.running_var, model.running_var)


def test_recalibrate_batchnorm_gives_the_net_its_own_statistics():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 3), nn.BatchNorm1d(3, momentum=0.3))
    net[1].running_mean.fill_(5.0), net[1].running_var.fill_(9.0)  # someone else's statistics
    gen = torch.Generator().manual_seed(1)
    xs = [torch.randn(50, 4, generator=gen) * 2 + 1 for _ in range(4)]
    feed = iter(xs)
    rng = torch.get_rng_state()
    recalibrate_batchnorm(net, lambda n: (next(feed),), n=200, batch=50)
    with torch.no_grad():
        h = [net[0](x) for x in xs]
    # exact averages over the four passes (momentum None), not a momentum-weighted trail
    assert torch.allclose(net[1].running_mean, torch.stack([a.mean(0) for a in h]).mean(0), atol=1e-6)
    assert torch.allclose(net[1].running_var, torch.stack([a.var(0) for a in h]).mean(0), atol=1e-5)
    assert not net.training and net[1].momentum == 0.3 and torch.equal(torch.get_rng_state(), rng)


def test_the_ema_generator_is_saved_with_its_own_batchnorm_statistics(tmp_path):
    # The EMA update copies G's BatchNorm statistics, which describe G's activations; the saved G_ema
    # has statistics of its own weights' activations: in eval mode it draws what it draws with the
    # statistics of a large batch of its own, far closer than with G's.
    ganforge.train_gan(ganforge.GanConfig(**dict(TINY, conditional=True, steps=60, log_every=20)), out=tmp_path / "r")
    gen = ganforge.load_generator(tmp_path / "r")
    g = torch.Generator().manual_seed(5)
    z, y = torch.randn(2048, gen.spec.z_dim, generator=g), torch.randint(0, 10, (2048,), generator=g)
    with torch.no_grad():
        batch_stats = copy.deepcopy(gen.G_ema).train()(z, y)
        own = gen.G_ema(z, y)
        copied = copy.deepcopy(gen.G_ema)
        for a, b in zip(copied.buffers(), gen.G.buffers()):
            a.copy_(b)
        gs = copied(z, y)
    err_own, err_copied = (own - batch_stats).abs().mean().item(), (gs - batch_stats).abs().mean().item()
    assert err_own < 0.02 and err_own < err_copied / 3, (err_own, err_copied)


def _feed(dog: LostGameWatchdog, values: list[tuple[float, float, float]], every: int = 10, **aug):
    aug = {"augment_ops": (), "augment_p": 0.0, "ada_target": None, **aug}
    return [a for i, (r, f, g) in enumerate(values)
            if (a := dog.observe((i + 1) * every, {"D_real": r, "D_fake": f, "loss_G": g}, **aug)) is not None]


def test_watchdog_needs_a_sustained_lost_game():
    lost = [(0.999, 0.001, 7.0)] * 30
    acts = _feed(LostGameWatchdog("act"), lost)
    assert len(acts) >= 1 and acts[0].step >= LostGameWatchdog().limits.min_steps
    assert acts[0].augment and "discriminator has won" in acts[0].message and "\n" not in acts[0].message
    # a healthy game, one pinned blip, or G climbing back out do not count
    healthy = [(0.7, 0.3, 1.2)] * 30
    assert _feed(LostGameWatchdog("act"), healthy) == []
    blips = [(0.999, 0.001, 7.0)] * 6 + [(0.8, 0.2, 1.5)] + [(0.999, 0.001, 7.0)] * 6
    assert _feed(LostGameWatchdog("act"), blips) == []
    recovering = [(0.99, 0.02, 7.0 - 0.3 * i) for i in range(30)]
    assert _feed(LostGameWatchdog("act"), recovering) == []
    # warn: the message without changes; off: nothing; with ADA already high: D's LR is lowered
    warned = _feed(LostGameWatchdog("warn"), lost)
    assert warned and not warned[0].augment and not warned[0].lr_scale and "remedy" in warned[0].message
    assert _feed(LostGameWatchdog("off"), lost) == []
    dog = LostGameWatchdog("act")
    acts = _feed(dog, lost * 3, augment_ops=("translation",), augment_p=0.6, ada_target=0.6)
    assert acts[0].lr_scale == {"D": 0.5}
    assert sum(bool(a.lr_scale) for a in acts) == dog.lr_actions == dog.limits.max_lr_actions  # then words only
    assert "none left" in acts[-1].message and not acts[-1].lr_scale


def test_watchdog_acts_on_a_forced_divergence_not_on_a_healthy_run(tmp_path):
    ganforge.train_gan(ganforge.GanConfig(**DIVERGE), out=tmp_path / "lost")
    log = read_log(tmp_path / "lost")
    events = [r for r in log if "watchdog" in r]
    assert events, [(r["step"], round(r.get("D_fake", -1), 4)) for r in log]
    assert "acting" in events[0]["watchdog"] and "augmentation" in events[0]["watchdog"]
    after = [r for r in log if "augment_p" in r and r["step"] > events[0]["step"]]
    assert after and after[0]["augment_p"] > 0  # the action took effect
    # the same tiny problem with the defaults (spectral-norm D, TTUR-free Adam): no alarm
    ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=200, log_every=5, ckpt_every=1000)), out=tmp_path / "ok")
    assert not [r for r in read_log(tmp_path / "ok") if "watchdog" in r]


def test_resume_is_exact_across_watchdog_actions(tmp_path):
    cfg = dict(DIVERGE, ckpt_every=20, watchdog="act")
    ganforge.train_gan(ganforge.GanConfig(**cfg), out=tmp_path / "whole")
    steps = [r["step"] for r in read_log(tmp_path / "whole") if "watchdog" in r]
    assert len(steps) >= 2, steps  # augmentation on, then an LR cut
    lr_after = [r["lr_D"] for r in read_log(tmp_path / "whole") if "lr_D" in r][-1]
    assert lr_after < DIVERGE["lr_d"]
    # stop inside the first window (its points are checkpointed state), then between the actions
    first, second = steps[0], steps[1]
    stops = [20 * (first // 20), 20 * ((first + second) // 40)]
    for stop in stops:
        ganforge.train_gan(ganforge.GanConfig(**dict(cfg, steps=stop)), out=tmp_path / "pieces")
    ganforge.train_gan(ganforge.GanConfig(**cfg), out=tmp_path / "pieces")
    assert_same_run(tmp_path / "whole", tmp_path / "pieces")


def test_defaults_are_recorded_and_old_runs_keep_their_stored_behaviour(tmp_path):
    ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=2, log_every=1)), out=tmp_path / "new")
    info = json.loads((tmp_path / "new" / "run.json").read_text())
    assert info["resolved"] == {"d_norm": "batch", "d_mbstd": "off", "ema_kimg": 16 * 10 / 32, "ema_rampup": 0.05,
                                "watchdog": "act", "g_upsample": "nearest", "n_critic": 1}
    saved = ganforge.GanConfig.load(tmp_path / "new" / "config.json")
    assert (saved.resolved().d_mbstd, saved.resolved().g_upsample) == ("off", "nearest")
    conditional = ganforge.GanConfig(conditional=True).resolved()  # the conditional recipe's own
    assert (conditional.d_norm, conditional.d_mbstd, conditional.g_upsample) == ("batch", "on", "transposed")
    # a run from before these options: its config.json lacks them -> the old behaviour
    config = tmp_path / "new" / "config.json"
    raw = json.loads(config.read_text())
    for key in ("d_norm", "d_mbstd", "ema_kimg", "ema_rampup", "watchdog", "g_upsample"):
        raw["options"].pop(key)
    old = tmp_path / "old"
    ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=2, log_every=1, d_norm="batch", d_mbstd="on",
                                                  ema_kimg=0.0, watchdog="off", g_upsample="transposed")), out=old)
    (old / "config.json").write_text(json.dumps(raw))
    legacy = ganforge.GanConfig.load(old / "config.json").resolved()
    assert (legacy.d_norm, legacy.d_mbstd, legacy.ema_kimg, legacy.watchdog, legacy.g_upsample) == \
        ("batch", "on", 0.0, "off", "transposed")
    # resuming it with today's command (no new flags) goes on with the old behaviour
    summary = ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=4, log_every=1)), out=old)
    assert summary["resumed_from"] == 2
    assert json.loads((old / "run.json").read_text())["resolved"]["d_norm"] == "batch"
    assert not math.isnan(read_log(old)[-1]["loss_G"])


def test_a_run_keeps_what_its_auto_options_meant_when_it_was_made(tmp_path):
    # A run made while "auto" meant another D layout (an older default): its config.json says
    # auto, its run.json what that resolved to. Today's command resumes it with that layout.
    today = ganforge.GanConfig(**TINY).resolved()
    then = dict(d_norm="spectral" if today.d_norm != "spectral" else "batch",
                d_mbstd="on" if today.d_mbstd == "off" else "off",
                g_upsample="transposed" if today.g_upsample == "nearest" else "nearest")
    run = tmp_path / "run"
    ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=2, log_every=1, **then)), out=run)
    raw = json.loads((run / "config.json").read_text())
    raw["options"].update(d_norm="auto", d_mbstd="auto", g_upsample="auto")  # as that older version wrote it
    (run / "config.json").write_text(json.dumps(raw))
    assert json.loads((run / "run.json").read_text())["resolved"]["d_norm"] == then["d_norm"]
    loaded = ganforge.GanConfig.load(run / "config.json")
    assert (loaded.d_norm, loaded.d_mbstd, loaded.g_upsample) == tuple(then.values())
    summary = ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=4, log_every=1)), out=run)
    assert summary["resumed_from"] == 2  # the stored weights fit the network it built
    resolved = json.loads((run / "run.json").read_text())["resolved"]
    assert (resolved["d_norm"], resolved["d_mbstd"], resolved["g_upsample"]) == tuple(then.values())
    assert not math.isnan(read_log(run)[-1]["loss_G"])


def test_a_conditional_dcgan_trains_with_beta1_0_r1_and_lr_4e4_and_an_older_conditional_run_keeps_its_settings(tmp_path):
    def betas(**options):
        cfg = ganforge.GanConfig(**options).resolved()
        return cfg.beta1, cfg.beta2

    def r1(**options):
        cfg = ganforge.GanConfig(**options).resolved()
        return cfg.r1_gamma, cfg.r1_interval

    assert betas(conditional=True) == (0.0, 0.99)  # measured on conditional MNIST (docs/benchmarks.md)
    assert betas() == (0.5, 0.999)  # the unconditional dcgan keeps the paper's
    assert betas(conditional=True, dp_epsilon=10.0) == (0.5, 0.999)  # private runs: as their figures were taken
    assert betas(conditional=True, beta1=0.3) == (0.3, 0.99)  # what is given wins
    assert betas(conditional=True, arch="resnet") == (0.5, 0.999)
    assert r1(conditional=True) == (0.1, 4)  # lazy R1, session 14's measurements
    assert r1() == (0.0, 1) and r1(conditional=True, dp_epsilon=10.0) == (0.0, 1)
    assert r1(conditional=True, r1_gamma=0.5) == (0.5, 4) and r1(conditional=True, r1_every=2) == (0.1, 2)
    lr = ganforge.GanConfig(conditional=True, width=32).resolved()
    assert (lr.lr_g, lr.lr_d) == (4e-4, 4e-4)  # session 15's measurements: 4e-4 at width 32, 2e-4 at 64
    assert ganforge.GanConfig(conditional=True).resolved().lr_g == 2e-4  # the CLI's width, 64
    assert ganforge.GanConfig(conditional=True, width=48).resolved().lr_d == pytest.approx(2e-4 * 64 / 48)
    assert ganforge.GanConfig().resolved().lr_g == 2e-4 and ganforge.GanConfig(conditional=True, lr_d=1e-4).resolved().lr_d == 1e-4
    # a conditional run made while auto meant 0.5 / 0.999: config.json says auto, run.json what it used
    cond = dict(TINY, conditional=True, log_every=1)
    run = tmp_path / "run"
    old = dict(beta1=0.5, beta2=0.999, r1_gamma=0.0, lr_g=2e-4, lr_d=2e-4)
    ganforge.train_gan(ganforge.GanConfig(**dict(cond, steps=2, **old)), out=run)
    raw = json.loads((run / "config.json").read_text())
    raw["options"].update(beta1=-1.0, beta2=-1.0, r1_gamma=-1.0, lr_g=0.0, lr_d=0.0)  # as that older version wrote it
    (run / "config.json").write_text(json.dumps(raw))
    info = json.loads((run / "run.json").read_text())
    del info["optimizer"]["r1_every"]  # recorded since session 14
    (run / "run.json").write_text(json.dumps(info))
    loaded = ganforge.GanConfig.load(run / "config.json")
    assert (loaded.resolved().beta1, loaded.resolved().beta2) == (0.5, 0.999)
    summary = ganforge.train_gan(ganforge.GanConfig(**dict(cond, steps=4)), out=run)  # today's command
    assert summary["resumed_from"] == 2
    info = json.loads((run / "run.json").read_text())
    assert (info["optimizer"]["beta1"], info["optimizer"]["beta2"]) == (0.5, 0.999)
    assert info["optimizer"]["r1_gamma"] == 0.0  # nor does it gain today's R1
    assert (info["optimizer"]["lr_g"], info["optimizer"]["lr_d"]) == (2e-4, 2e-4)  # nor today's learning rates
    assert json.loads((run / "log.jsonl").read_text().splitlines()[-1])["lr_G"] == 2e-4
    assert ganforge.GanConfig.load(run / "config.json").resolved().r1_interval == 1
    # a new conditional run records the new betas, and resuming it keeps them
    new = tmp_path / "new"
    ganforge.train_gan(ganforge.GanConfig(**dict(cond, steps=2)), out=new)
    assert json.loads((new / "run.json").read_text())["optimizer"]["beta1"] == 0.0
    assert ganforge.train_gan(ganforge.GanConfig(**dict(cond, steps=4)), out=new)["resumed_from"] == 2
    assert json.loads((new / "run.json").read_text())["optimizer"]["beta2"] == 0.99
    assert json.loads((new / "run.json").read_text())["optimizer"]["r1_gamma"] == 0.1
    assert json.loads((new / "run.json").read_text())["optimizer"]["lr_g"] == 4e-4
    resumed = ganforge.GanConfig.load(new / "config.json").resolved()
    assert (resumed.r1_gamma, resumed.r1_interval) == (0.1, 4)  # lazy R1 stays lazy on resume


def test_the_unconditional_dcgan_d_has_no_minibatch_stddev_and_init_keeps_its_layout(tmp_path):
    from ganforge.train.gan import GanTask
    from ganforge.nets import GanNetSpec

    spec = GanNetSpec(resolution=16, channels=1, z_dim=100, width=8, num_classes=0)
    D = GanTask(ganforge.GanConfig(**TINY), spec, torch.device("cpu")).D
    assert not D.minibatch_std and D.head.linear.in_features == 16 * 16  # 16 channels at 4x4, no extra one
    x = torch.randn(8, 1, 16, 16)
    D.eval()
    alone = D(x[:1])  # a per-example D in eval mode: an image's score does not depend on its batch
    assert torch.allclose(D(x)[:1], alone, atol=1e-6)
    on = GanTask(ganforge.GanConfig(**TINY, d_mbstd="on"), spec, torch.device("cpu")).D
    assert on.minibatch_std and on.head.linear.in_features == 17 * 16
    cond = ganforge.GanConfig(**TINY, conditional=True).resolved()
    assert cond.d_mbstd == "on" and ganforge.GanConfig(**TINY, arch="stylegan2").resolved().d_mbstd == "auto"
    with pytest.raises(ganforge.GanforgeError, match="--d-mbstd applies to --arch dcgan"):
        ganforge.GanConfig(**TINY, arch="stylegan2", d_mbstd="off").validate()
    # --init from runs of either layout: the source's D is rebuilt as it was and loads strictly
    for mbstd in ("off", "on"):
        src = tmp_path / f"src-{mbstd}"
        ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=2, log_every=1, d_mbstd=mbstd)), out=src)
        dst = tmp_path / f"dst-{mbstd}"
        ganforge.train_gan(ganforge.GanConfig(**dict(TINY, steps=2, log_every=1, init=str(src))), out=dst)
        assert json.loads((dst / "run.json").read_text())["resolved"]["d_mbstd"] == mbstd

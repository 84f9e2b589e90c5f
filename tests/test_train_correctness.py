"""Correctness the other training tests do not reach (issue 12, part 3): bounded NaN reloads,
signal handling only from the CLI, penalties in fp32, the GradScaler protocol, initialisation,
checkpoint order, torn run files, truncation."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import ganforge
from ganforge import CheckpointError, GanforgeError
from ganforge.train import checkpoint

TINY = dict(data="digits", max_images=512, resolution=16, width=8, batch_size=16, log_every=1,
            sample_every=0, progress=False, tensorboard=False, precision="fp32")


def _train(tmp_path: Path, name: str, **kw) -> dict:
    return ganforge.train_gan(ganforge.GanConfig(**{**TINY, **kw}), out=tmp_path / name)


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("tiny")
    _train(root, "run", steps=1)
    return root / "run"


# --- truncation ------------------------------------------------------------------------------------

@pytest.mark.timeout(60)
@pytest.mark.parametrize("bad", [0.0, -1.0, float("nan")])
def test_truncation_not_positive_is_a_clear_error(tiny_run, bad):
    gen = ganforge.load_generator(tiny_run)
    with pytest.raises(GanforgeError, match="truncation must be positive"):
        gen.latents(8, truncation=bad)


@pytest.mark.timeout(60)
def test_tiny_truncation_finishes_within_the_bound(tiny_run):
    gen = ganforge.load_generator(tiny_run)
    z = gen.latents(64, seed=0, truncation=1e-4)
    assert z.shape == (64, gen.z_dim) and float(z.abs().max()) <= 1e-4
    assert torch.equal(z, gen.latents(64, seed=0, truncation=1e-4))  # still seeded


# --- initialisation --------------------------------------------------------------------------------

@pytest.mark.parametrize("arch", ["dcgan", "resnet"])
def test_default_weight_init_keeps_conditional_bn_zero(arch):
    from ganforge.nets import GanNetSpec
    from ganforge.nets.layers import ConditionalBatchNorm2d
    from ganforge.train.gan import GanTask

    cfg = ganforge.GanConfig(**{**TINY, "arch": arch, "conditional": True, "weight_init": "default"})
    task = GanTask(cfg, GanNetSpec(16, 1, width=8, num_classes=10), torch.device("cpu"))
    cbns = [m for m in task.G.modules() if isinstance(m, ConditionalBatchNorm2d)]
    assert cbns
    for m in cbns:  # starts as plain BN (gain 1, bias 0), as nets/layers.py intends
        assert not m.gain.weight.any() and not m.bias.weight.any()
    # the projection discriminator's class embedding keeps its small N(0, 1/features) scale
    # (nn.Embedding's own reset would draw N(0, 1) rows that swamp the unconditional output)
    from ganforge.nets.layers import ProjectionHead

    heads = [m for m in task.D.modules() if isinstance(m, ProjectionHead)]
    assert heads and heads[0].embed is not None
    weight = heads[0].embed.weight
    assert float(weight.detach().std()) < 3 * weight.shape[1] ** -0.5


# --- checkpoint order and run files ----------------------------------------------------------------

def test_checkpoints_sort_by_step_number(tmp_path):
    root = tmp_path / "checkpoints"
    for step in (9_999_999, 10_000_000, 2):
        d = checkpoint.step_dir(root, step)
        d.mkdir(parents=True)
        (d / checkpoint.WEIGHTS_FILE).write_bytes(b"x")
        (d / checkpoint.STATE_FILE).write_bytes(b"x")
    assert [p.name for p in checkpoint.list_checkpoints(root)] == ["step-0000002", "step-9999999", "step-10000000"]


def test_pruning_keeps_the_numerically_newest(tmp_path):
    lin = torch.nn.Linear(1, 1)
    root = tmp_path / "checkpoints"
    for step in (9_999_999, 10_000_000, 10_000_001):
        checkpoint.save(root, step, {"m": lin}, {}, keep=2)
    assert [p.name for p in checkpoint.list_checkpoints(root)] == ["step-10000000", "step-10000001"]


def test_torn_run_json_is_a_one_line_checkpoint_error(tmp_path, tiny_run):
    import shutil

    run = tmp_path / "run"
    shutil.copytree(tiny_run, run)
    text = (run / "run.json").read_text()
    (run / "run.json").write_text(text[: len(text) // 2])
    with pytest.raises(CheckpointError, match="run.json") as info:
        ganforge.load_generator(run)
    assert "\n" not in str(info.value)
    (run / "run.json").write_text(text)
    cfg = (run / "config.json").read_text()
    (run / "config.json").write_text(cfg[:10])
    with pytest.raises(CheckpointError, match="config.json"):
        ganforge.load_generator(run)


def test_run_files_are_written_atomically(tmp_path, monkeypatch):
    """A crash while run.json is written leaves the previous complete file, not a torn one."""
    path = tmp_path / "run.json"
    checkpoint.write_text_atomic(path, json.dumps({"a": 1}))

    import os

    def crash(src, dst):
        raise KeyboardInterrupt

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(KeyboardInterrupt):
        checkpoint.write_text_atomic(path, json.dumps({"a": 2, "long": "x" * 10000}))
    monkeypatch.undo()
    assert json.loads(path.read_text()) == {"a": 1}
    assert [p.name for p in tmp_path.iterdir()] == ["run.json"]  # no temporary left behind


# --- signals: the CLI handles them, a library call leaves them alone -------------------------------

def _wait_for_log(run: Path, proc, seconds: float = 120) -> None:
    import time

    deadline = time.time() + seconds
    log = run / "log.jsonl"
    while time.time() < deadline and proc.poll() is None:
        if log.is_file() and log.read_text().count("\n") >= 2:
            return
        time.sleep(0.1)
    raise AssertionError(f"training did not start (exit {proc.poll()})")


@pytest.mark.timeout(180)
def test_sigterm_kills_a_library_call_promptly(tmp_path):
    """train_gan() in a server/notebook/test must not swallow SIGTERM (default disposition: die)."""
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "run"
    script = (f"import ganforge; ganforge.train_gan(ganforge.GanConfig(**{dict(TINY, steps=100000, ckpt_every=0)!r}), "
              f"out={str(run)!r})")
    proc = subprocess.Popen([sys.executable, "-c", script], env={**os.environ, "OMP_NUM_THREADS": "1"})
    try:
        _wait_for_log(run, proc)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=30) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
    assert not (run / "summary.json").exists()


@pytest.mark.timeout(180)
def test_sigterm_to_the_cli_saves_a_checkpoint_and_exits(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganforge", "train", "--data", "digits", "--max-images", "512", "--resolution", "16",
           "--width", "8", "--batch-size", "16", "--steps", "100000", "--ckpt-every", "0", "--sample-every", "0",
           "--log-every", "1", "--no-tensorboard", "--no-progress", "--precision", "fp32", "--out", str(run)]
    proc = subprocess.Popen(cmd, env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        _wait_for_log(run, proc)
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=60)
    finally:
        proc.kill()
        proc.wait()
    assert proc.returncode == 143, err[-2000:]  # 128 + SIGTERM, as a shell reports a killed job (issue 22)
    summary = json.loads((run / "summary.json").read_text())
    assert summary["stopped_early"] and 0 < summary["steps"] < 100000
    ckpts = checkpoint.list_checkpoints(run / "checkpoints")
    assert ckpts and ckpts[-1].name == checkpoint.step_dir(run, summary["steps"]).name


# --- --nan-policy reload must not replay a deterministic NaN forever --------------------------------

@pytest.mark.timeout(120)
def test_reload_skips_a_batch_that_is_always_nan(tmp_path, monkeypatch):
    """Batch 5 is poisoned: reloading the step-4 checkpoint replays it exactly (same RNG, same batch
    index) unless the reload changes something; the run must get past it and finish."""
    from ganforge.train import loop as loop_mod

    original = loop_mod.TensorBatches.get
    seen = []

    def poisoned(self, index, *args, **kwargs):
        batch = original(self, index, *args, **kwargs)
        seen.append(index)
        return {**batch, "image": batch["image"] * float("nan")} if index == 5 else batch

    monkeypatch.setattr(loop_mod.TensorBatches, "get", poisoned)
    with pytest.warns(UserWarning, match="reloaded step-0000004"):
        summary = _train(tmp_path, "run", steps=10, ckpt_every=2, nan_policy="reload")
    assert summary["steps"] == 10 and summary["reloads"] >= 1 and summary["bad_steps"] >= 1
    assert seen.count(5) == 1  # the poisoned batch is not replayed
    weights = checkpoint.load(checkpoint.list_checkpoints(tmp_path / "run" / "checkpoints")[-1])[0]
    assert all(torch.isfinite(v.float()).all() for v in weights.values())
    log = [json.loads(line) for line in (tmp_path / "run" / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == list(range(1, 11))  # the log went back with the weights


@pytest.mark.timeout(120)
def test_reload_of_a_step_that_is_always_nan_stops_with_a_clear_error(tmp_path, monkeypatch):
    """Step 5 is poisoned whatever the data or noise: bounded reloads, then a one-line error."""
    from ganforge.losses import LOSSES
    from ganforge.train.gan import GanTask

    current = {"step": -1}
    original_step = GanTask.step

    def step(self, ctx):
        current["step"] = ctx.step
        return original_step(self, ctx)

    loss = LOSSES.get("non-saturating")

    def d_loss(real, fake, target):
        value = loss.d_loss(real, fake, target)
        return value * float("nan") if current["step"] == 5 else value

    monkeypatch.setattr(GanTask, "step", step)
    monkeypatch.setitem(LOSSES._items, "non-saturating", loss.__class__(loss.name, d_loss, loss.g_loss))
    with pytest.warns(UserWarning, match="reloaded"):
        with pytest.raises(GanforgeError, match="after 3 reload") as info:
            _train(tmp_path, "run", steps=10, ckpt_every=2, nan_policy="reload", max_reloads=3)
    assert "\n" not in str(info.value)


# --- penalties in fp32 outside autocast; the GradScaler protocol -----------------------------------

def test_penalties_run_in_fp32_outside_autocast():
    """The one tiny bf16 numerics test here: R1 and WGAN-GP computed under bf16 autocast equal
    the fp32 penalties computed outside autocast, and in a GAN step the penalty passes (inputs
    that are leaves requiring grad) never run under autocast."""
    from ganforge.losses import d_real_and_r1, wgan_gradient_penalty
    from ganforge.nets import GanNetSpec, build_gan
    from ganforge.train.gan import GanTask

    torch.manual_seed(0)
    _, D = build_gan("dcgan", GanNetSpec(16, 1, width=8))
    real, fake = torch.rand(4, 1, 16, 16) * 2 - 1, torch.rand(4, 1, 16, 16) * 2 - 1
    x = real.clone().requires_grad_(True)
    ref_logits = D(x, None).float()
    (grad,) = torch.autograd.grad(ref_logits.sum(), x)
    ref_r1 = grad.square().flatten(1).sum(1).mean()
    ref_gp = wgan_gradient_penalty(D, real, fake, None, torch.Generator().manual_seed(1))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        logits, r1 = d_real_and_r1(D, real, None)
        gp = wgan_gradient_penalty(D, real, fake, None, torch.Generator().manual_seed(1))
    assert logits.dtype == r1.dtype == gp.dtype == torch.float32
    assert torch.allclose(logits, ref_logits, rtol=1e-5, atol=1e-6)
    assert torch.allclose(r1, ref_r1, rtol=1e-5) and torch.allclose(gp, ref_gp, rtol=1e-5)

    cfg = ganforge.GanConfig(**{**TINY, "loss": "wgan-gp", "r1_gamma": 1.0, "batch_size": 4})
    task = GanTask(cfg, GanNetSpec(16, 1, width=8), torch.device("cpu"))
    seen = []
    task.D.register_forward_pre_hook(
        lambda m, args: seen.append(torch.is_autocast_enabled("cpu")) if args[0].is_leaf and args[0].requires_grad else None)

    class Ctx:  # the loop's context, reduced to what one GAN step needs, under bf16 autocast
        step, device, generator = 0, torch.device("cpu"), torch.Generator().manual_seed(0)

        def next_batch(self):
            return {"image": real, "label": torch.zeros(4, dtype=torch.long)}

        def randn(self, *shape):
            return torch.randn(*shape, generator=self.generator)

        def autocast(self):
            return torch.autocast("cpu", dtype=torch.bfloat16)

        def optimize(self, loss, optimizer, modules):
            return True

    task.step(Ctx())
    assert seen == [False, False], seen  # the R1 pass and the WGAN-GP pass


class _Toy:
    """Two linear 'networks' and a loss that overflows any loss scale at the poisoned steps."""

    name = "toy"

    def __init__(self, poisoned: set[int]) -> None:
        torch.manual_seed(0)
        self.G, self.D = torch.nn.Linear(2, 1), torch.nn.Linear(2, 1)
        self.opt = {k: torch.optim.SGD(m.parameters(), lr=0.01) for k, m in (("G", self.G), ("D", self.D))}
        self.poisoned, self.ema_updates = poisoned, 0

    def modules(self):
        return {"G": self.G, "D": self.D}

    def optimizers(self):
        return self.opt

    def step(self, ctx):
        x = ctx.next_batch()["image"]
        boost = 1e36 if ctx.step in self.poisoned else 1.0  # finite loss, inf once scaled
        ctx.optimize(self.D(x).mean() * boost, "D", [self.D])
        if ctx.optimize(self.G(x).square().mean() * boost, "G", [self.G]):
            self.ema_updates += 1  # as GanTask: EMA only after a G step that happened
        return {}

    def snapshot(self, ctx):
        return torch.zeros(1, 1, 1)

    def extra_state(self):
        return {}

    def load_extra_state(self, state):
        pass


@pytest.mark.parametrize("nan_policy", ["skip", "reload"])
def test_grad_scaler_update_once_per_iteration_and_overflow_is_a_bad_step(tmp_path, nan_policy):
    from ganforge.train.loop import LoopConfig, TensorBatches, TrainingLoop, make_accelerator

    class CountingScaler(torch.amp.GradScaler):
        updates = 0

        def update(self, new_scale=None):
            CountingScaler.updates += 1
            super().update(new_scale)

    task = _Toy(poisoned={1})
    batches = TensorBatches(torch.randint(0, 255, (64, 1, 1, 2), dtype=torch.uint8), torch.zeros(64, dtype=torch.long),
                            batch_size=4, seed=0)
    cfg = LoopConfig(steps=4, batch_size=4, precision="fp32", log_every=1, sample_every=0, ckpt_every=1,
                     progress=False, tensorboard=False, nan_policy=nan_policy)
    (tmp_path / "run").mkdir()
    loop = TrainingLoop(task, batches, cfg, tmp_path / "run", make_accelerator(cpu=True))
    loop.scaler = CountingScaler("cpu", init_scale=2.0 ** 16)  # fp16's scaler, run on the CPU
    g_before = task.G.weight.detach().clone()
    summary = loop.run()
    assert CountingScaler.updates == 4  # once per iteration, not once per optimiser step
    assert loop.scaler.get_scale() == 2.0 ** 15  # one backoff for the one overflowing iteration
    assert summary["bad_steps"] == 1 and summary["reloads"] == 0  # counted; an overflow is no reason to reload
    assert task.ema_updates == 3  # the skipped G step reported failure: no EMA update
    assert not torch.equal(task.G.weight, g_before) and torch.isfinite(task.G.weight).all()

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
    assert proc.returncode == 0, err[-2000:]
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
        x, y = original(self, index, *args, **kwargs)
        seen.append(index)
        return (x * float("nan"), y) if index == 5 else (x, y)

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

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

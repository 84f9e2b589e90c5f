"""The generator of a ``train-upscaler`` run (:func:`load_upscaler_run`). Importing this module
registers the ``upscaler`` run task."""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from ...train.rundir import load_checkpoint, register_run_task, require_task
from .config import SRConfig, build_sr_generator


def load_upscaler_run(run_dir: str | os.PathLike, *, checkpoint_name: str = "latest", ema: bool = True) -> nn.Module:
    """The generator of a ``train-upscaler`` run at a checkpoint ('latest', 'best', 'step-N'):
    the EMA copy when the run keeps one (and ``ema``), in eval mode on the CPU."""
    from ...train import checkpoint
    from ...train.run import CONFIG_FILE, load_options

    run_dir = Path(run_dir)
    require_task(run_dir, "upscaler")
    cfg = load_options(SRConfig, run_dir / CONFIG_FILE)
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    net = build_sr_generator(cfg)
    key = "G_ema" if ema and any(k.startswith("G_ema.") for k in tensors) else "G"
    checkpoint.restore_modules({key: net}, tensors, path)
    net.step = int(state.get("step", 0))
    net.source = f"{run_dir} ({cfg.arch} ×{cfg.scale}, {key}, step {net.step})"
    return net.eval()


def _load_upscaler_run(run_dir: Path, meta: dict, *, checkpoint_name: str = "latest") -> nn.Module:
    return load_upscaler_run(run_dir, checkpoint_name=checkpoint_name)


register_run_task("upscaler", _load_upscaler_run)

"""Public Python API for GAN training: ``ganforge.train_gan(GanConfig(...), out="runs/x")``."""

from __future__ import annotations

import json
import time
import warnings
from dataclasses import replace
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .config import GanConfig
from .errors import CheckpointError, GanforgeError
from .train import checkpoint

RUN_FILE = "run.json"
CONFIG_FILE = "config.json"


def _check_resume(cfg: GanConfig, run_dir: Path, resume: str) -> GanConfig:
    """Refuse to mix runs: an existing run directory resumes only with the same maths."""
    has_ckpt = bool(checkpoint.list_checkpoints(run_dir / "checkpoints"))
    if not has_ckpt:
        return cfg
    if resume == "never":
        raise GanforgeError(f"{run_dir} already holds a run; pass --resume auto to continue it or choose another --out")
    saved = GanConfig.load(run_dir / CONFIG_FILE)
    changed = [k for k in cfg.differences(saved) if k not in GanConfig.RESUMABLE_CHANGES]
    if cfg.steps != saved.steps and cfg.lr_schedule != "constant" and not cfg.lr_decay_steps:
        changed.append("steps (the LR schedule's length follows --steps: set --lr-decay-steps to change it)")
    if changed:
        raise CheckpointError(
            f"cannot resume {run_dir}: options differ from the saved run ({', '.join(changed)}); "
            f"use the same options or another --out")
    return cfg


def train_gan(config: GanConfig | None = None, *, out: str | Path, resume: str = "auto",
              on_finish: Callable[[Any], None] | None = None, device: str = "auto",
              handle_signals: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train a GAN into the run directory ``out``; returns a summary (steps, timings, paths).

    ``resume``: 'auto' continues from the newest good checkpoint in ``out`` (exactly: same
    weights as an uninterrupted run), 'never' refuses to reuse a run directory. ``device``:
    'auto' (Accelerate's choice), 'cpu' or 'cuda' (see :func:`ganforge.device.accelerate_cpu_flag`).
    ``handle_signals`` (the CLI sets it): SIGINT/SIGTERM finish the step, save a checkpoint and
    stop; by default the caller's (a test's, a server's) signal handling is left alone."""
    from .data import load_dataset
    from .nets import GanNetSpec
    from .train.gan import GanTask
    from .train.loop import TensorBatches, TrainingLoop, make_accelerator

    cfg = replace(config or GanConfig(), **overrides)
    cfg.validate()
    if resume not in ("auto", "never"):
        raise GanforgeError(f"--resume must be auto or never, got {resume!r}")
    run_dir = Path(out)
    cfg = _check_resume(cfg, run_dir, resume)
    from .device import accelerate_cpu_flag

    accelerator = make_accelerator(cpu=accelerate_cpu_flag(device))
    t0 = time.perf_counter()
    dataset = load_dataset(cfg.data, resolution=cfg.resolution, channels=cfg.channels,
                           max_images=cfg.max_images, progress=cfg.progress and accelerator.is_main_process)
    t_data = time.perf_counter() - t0
    if dataset.skipped:
        warnings.warn(f"skipped {len(dataset.skipped)} unreadable image(s), e.g. {dataset.skipped[0]}", stacklevel=2)
    if cfg.conditional and dataset.num_classes < 2:
        raise GanforgeError(f"--conditional needs labelled data (2+ classes); {dataset.source} has {dataset.num_classes}")
    spec = GanNetSpec(resolution=cfg.resolution, channels=dataset.channels, z_dim=cfg.z_dim,
                      num_classes=dataset.num_classes if cfg.conditional else 0, width=cfg.width)
    task = GanTask(cfg, spec, accelerator.device)
    batches = TensorBatches(dataset.images, dataset.labels, cfg.batch_size, cfg.seed, cfg.hflip)
    eval_fn = _make_eval_fn(cfg, task, spec) if cfg.eval_every else None
    loop = TrainingLoop(task, batches, cfg.loop_config(), run_dir, accelerator, eval_fn=eval_fn,
                        curve_groups={"losses": ["loss_G", "loss_D", "mode_seeking"], "D outputs": ["D_real", "D_fake"],
                                      "augment p": ["augment_p"], "eval": ["eval"]})
    if accelerator.is_main_process:
        run_dir.mkdir(parents=True, exist_ok=True)
        cfg.save(run_dir / CONFIG_FILE)
        checkpoint.write_text_atomic(run_dir / RUN_FILE, json.dumps({
            "task": "gan", "arch": cfg.arch, "spec": spec.__dict__, "class_names": dataset.class_names,
            "data_source": dataset.source, "skipped_files": len(dataset.skipped), "ganforge_version": __version__,
        }, indent=2) + "\n")
    resumed_from = loop.resume() if resume == "auto" else 0
    summary = loop.run(handle_signals=handle_signals)
    if on_finish is not None:
        on_finish(loop)
    summary.update({"run_dir": str(run_dir), "resumed_from": resumed_from, "data_seconds": t_data,
                    "data_source": dataset.source, "world_size": accelerator.num_processes})
    if accelerator.is_main_process:
        checkpoint.write_text_atomic(run_dir / "summary.json", json.dumps(summary, indent=2) + "\n")
    return summary


def _make_eval_fn(cfg: GanConfig, task, spec):
    """In-training metric (FID/KID) on EMA samples against the training data's reference stats."""
    import torch

    from .metrics import InTrainingEvaluator

    evaluator = InTrainingEvaluator(reference=cfg.data, metric=cfg.eval_metric, n_samples=cfg.eval_n,
                                    resolution=cfg.resolution, channels=spec.channels)
    gen = torch.Generator().manual_seed(cfg.seed + 999)

    @torch.no_grad()
    def sample_fn(n: int) -> torch.Tensor:
        device = task.fixed_z.device
        z = torch.randn(n, spec.z_dim, generator=gen).to(device)
        y = torch.randint(0, spec.num_classes, (n,), generator=gen).to(device) if spec.num_classes else None
        return task.G_ema(z, y).float().add(1).div(2).clamp(0, 1).cpu()

    def eval_fn() -> float:
        gen.manual_seed(cfg.seed + 999)  # the same latents at every evaluation
        return evaluator(sample_fn)

    return eval_fn

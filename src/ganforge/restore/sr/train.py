"""``train_upscaler``: a super-resolution run into a run directory, through
:func:`ganforge.train.run.run_task` (exact resume in either phase, atomic run files, loss curves,
sample grids); ``RUN/upscaler.safetensors`` holds the generator when the run finishes."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from ...errors import DataError
from ..degrade import DegradedBatches
from .config import SRConfig
from .data import fixed_pairs, load_sr_images
from .task import SRTask, load_perceptual

EXPORT_FILE = "upscaler.safetensors"


def train_upscaler(config: SRConfig | None = None, *, out: str | os.PathLike, resume: str = "auto",
                   device: str = "auto", handle_signals: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train (or resume) a super-resolution run into ``out``; returns the summary. run.json's task
    is ``upscaler``; on completion ``out/upscaler.safetensors`` holds the generator (EMA if any)."""
    from ...train.run import Prepared, run_task

    cfg = replace(config or SRConfig(), **overrides)
    cfg.validate()
    resolved = cfg.resolved()

    def prepare(accelerator) -> Prepared:
        t0 = time.perf_counter()
        dev = accelerator.device
        perceptual = load_perceptual(resolved, dev) if resolved.psnr_steps < resolved.steps else None
        images, info = load_sr_images(resolved)
        if images.shape[-1] < resolved.crop or images.shape[-2] < resolved.crop:
            raise DataError(f"--crop {resolved.crop} is larger than the images ({images.shape[-2]}×{images.shape[-1]})")
        batches = DegradedBatches(images, resolved.batch_size, resolved.seed, crop=resolved.crop, scale=resolved.scale,
                                  degradation=resolved.degradation, hflip=resolved.hflip)
        task = SRTask(resolved, dev, fixed_pairs(images, resolved, dev), perceptual)
        curves = {"losses": ["loss_L1", "loss_percep", "loss_G_gan", "loss_D"], "D outputs": ["D_real", "D_fake"]}
        run_info = {"arch": resolved.arch, "scale": resolved.scale, "nf": resolved.nf, "nb": resolved.nb,
                    "gc": resolved.gc, "psnr_steps": resolved.psnr_steps, "degradation": resolved.degradation,
                    "range": "[0, 1]", "resolved": asdict(resolved), **info}

        def write_outputs(loop) -> None:
            from safetensors.torch import save_file

            net = task.ema.copy or task.G
            state = {k: v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
            target = Path(out) / EXPORT_FILE
            tmp = target.with_name(target.name + ".part")
            save_file(state, str(tmp), metadata={"step": str(loop.step), "scale": str(resolved.scale)})
            tmp.replace(target)  # a file that exists is complete

        return Prepared(task=task, batches=batches, loop_config=cfg.loop_config(), run_info=run_info,
                        curve_groups=curves, write_outputs=write_outputs,
                        summary={"data_seconds": time.perf_counter() - t0, **info})

    return run_task("upscaler", cfg, Path(out), prepare, resumable=SRConfig.RESUMABLE_CHANGES,
                    resume=resume, device=device, handle_signals=handle_signals)

"""``train_inpainter``: an inpainting GAN from images into a run directory, through
:func:`ganforge.train.run.run_task` (exact resume, atomic run files, loss curves, sample grids)."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

from .config import InpaintConfig
from .data import MaskedBatches, fixed_inputs, load_inpaint_data
from .task import InpaintTask


def train_inpainter(config: InpaintConfig | None = None, *, out: str | os.PathLike, resume: str = "auto",
                    device: str = "auto", handle_signals: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train (or resume) an inpainting GAN into run directory ``out``; returns the summary.
    run.json's task is ``inpainter``: :func:`load_inpainter` and ``ganforge inpaint`` load it."""
    from ...train.run import Prepared, run_task

    cfg = replace(config or InpaintConfig(), **overrides)
    cfg.validate()

    def prepare(accelerator) -> Prepared:
        t0 = time.perf_counter()
        images, info = load_inpaint_data(cfg)
        batches = MaskedBatches(images, cfg.batch_size, cfg.seed, crop=cfg.crop_size, hflip=cfg.hflip,
                                mask_kind=cfg.mask_kind, min_hole=cfg.min_hole, max_hole=cfg.max_hole)
        task = InpaintTask(cfg, accelerator.device, fixed_inputs(images, cfg, accelerator.device))
        curves = {"L1": ["loss_hole_L1", "loss_valid_L1"], "GAN": ["loss_G_gan", "loss_D"],
                  "D outputs": ["D_real", "D_fake"]}
        run_info = {"generator": cfg.generator, "channels": cfg.channels, "multiple": cfg.multiple(),
                    "norm": cfg.norm, "resolved": asdict(cfg.resolved()), **info}
        return Prepared(task=task, batches=batches, loop_config=cfg.loop_config(), run_info=run_info,
                        curve_groups=curves, summary={"data_seconds": time.perf_counter() - t0, **info})

    return run_task("inpainter", cfg, Path(out), prepare, resumable=InpaintConfig.RESUMABLE_CHANGES,
                    resume=resume, device=device, handle_signals=handle_signals)

"""``train_translator``: pix2pix, CycleGAN or SPADE from a folder into a run directory, through
:func:`ganforge.train.run.run_task` (the GAN trainer's path: exact resume, atomic run files,
loss curves, sample grids, Accelerate for several processes)."""

from __future__ import annotations

import os
import time
import warnings
from dataclasses import asdict, replace
from pathlib import Path
from typing import Any

import torch

from ..errors import DataError
from .config import TranslateConfig

SNAPSHOT_ROWS = 4


def load_translation_data(cfg: TranslateConfig) -> tuple[torch.Tensor, torch.Tensor, dict[str, Any]]:
    """(A, B, info) as uint8 N×C×S×S tensors at ``load_size``: paired (pix2pix), unpaired (CycleGAN)
    or label maps + images (SPADE, A = class ids). ``direction='BtoA'`` swaps the sides here, so a
    task always maps A to B."""
    if not cfg.data:
        raise DataError("--data is required: a folder with A/ and B/ (or side-by-side AB images, or labels/ + images/)")
    info: dict[str, Any] = {"data_source": str(cfg.data)}
    if cfg.model == "spade":
        from ..data.labelmap import load_label_pairs

        a, b, names = load_label_pairs(cfg.data, resolution=cfg.load_size, num_classes=cfg.num_classes,
                                       channels=cfg.channels_b)
        info["pairs"] = len(names)
    else:  # the folders' A and B, before --direction picks the input side
        from ..data.paired import load_paired_folder, load_unpaired_folder

        ca, cb = (cfg.channels_a, cfg.channels_b) if cfg.direction == "AtoB" else (cfg.channels_b, cfg.channels_a)
    if cfg.model == "pix2pix":
        a, b, names = load_paired_folder(cfg.data, resolution=cfg.load_size, channels=ca, channels_b=cb)
        info["pairs"] = len(names)
    elif cfg.model == "cyclegan":
        a, b = load_unpaired_folder(cfg.data, resolution=cfg.load_size, channels=ca, channels_b=cb)
        info.update(images_A=len(a), images_B=len(b))
    if cfg.model != "spade" and cfg.direction == "BtoA":
        a, b = b, a
    if cfg.max_images:
        a, b = a[: cfg.max_images], b[: cfg.max_images]
    return a, b, info


def _fixed_inputs(a: torch.Tensor, b: torch.Tensor, cfg: TranslateConfig, device: torch.device) -> dict[str, torch.Tensor]:
    """The first few items, centre-cropped to the training crop, for sample grids."""
    from ..train.batches import to_unit_range

    ch, cw = cfg.crop_hw()

    def centre(x: torch.Tensor) -> torch.Tensor:
        y0, x0 = (x.shape[-2] - ch) // 2, (x.shape[-1] - cw) // 2
        return x[:SNAPSHOT_ROWS, :, y0:y0 + ch, x0:x0 + cw]

    fa = centre(a)
    fa = fa[:, 0].long().to(device) if cfg.model == "spade" else to_unit_range(fa, device)
    return {"A": fa, "B": to_unit_range(centre(b), device)}


def train_translator(config: TranslateConfig | None = None, *, out: str | os.PathLike, resume: str = "auto",
                     device: str = "auto", handle_signals: bool = False, **overrides: Any) -> dict[str, Any]:
    """Train (or resume) an image-to-image model into run directory ``out``; returns the summary.

    ``config``'s ``auto`` fields take the paper's settings for ``config.model`` (saved resolved in
    run.json; config.json keeps what was asked, which is what a resume compares). run.json's task
    is ``translator``: :func:`ganforge.load_translator` and ``ganforge translate apply`` load it."""
    from ..train.batches import PairedBatches, UnpairedBatches
    from ..train.run import Prepared, run_task
    from .tasks import TASKS

    asked = replace(config or TranslateConfig(), **overrides)
    asked.validate()
    cfg = asked.resolved()

    def prepare(accelerator) -> Prepared:
        t0 = time.perf_counter()
        a, b, info = load_translation_data(cfg)
        crop = cfg.crop_hw()
        if cfg.model == "cyclegan":
            batches = UnpairedBatches(a, b, cfg.batch_size, cfg.seed, crop=crop, hflip=cfg.hflip)
        else:
            batches = PairedBatches(a, b, cfg.batch_size, cfg.seed, crop=crop, hflip=cfg.hflip,
                                    ids_a=cfg.model == "spade")
        task = TASKS[cfg.model](cfg, accelerator.device, _fixed_inputs(a, b, cfg, accelerator.device))
        curves = {"pix2pix": {"losses": ["loss_G_gan", "loss_G_L1", "loss_D"], "D outputs": ["D_real", "D_fake"]},
                  "cyclegan": {"G losses": ["loss_G_A", "loss_G_B", "loss_cycle", "loss_idt"],
                               "D losses": ["loss_D_A", "loss_D_B"]},
                  "spade": {"losses": ["loss_G_gan", "loss_G_feat", "loss_D"]}}[cfg.model]
        run_info = {"model": cfg.model, "generator": cfg.generator, "direction": cfg.direction,
                    "in_channels": cfg.num_classes if cfg.model == "spade" else cfg.channels_a,
                    "out_channels": cfg.channels_b, "num_classes": cfg.num_classes, "multiple": cfg.multiple(),
                    "norm": cfg.norm, "resolved": asdict(cfg), **info}
        return Prepared(task=task, batches=batches, loop_config=cfg.loop_config(), run_info=run_info,
                        curve_groups=curves, summary={"data_seconds": time.perf_counter() - t0, **info})

    if asked.direction == "BtoA" and asked.model == "spade":
        warnings.warn("--direction is ignored for --model spade (labels -> images)", stacklevel=2)
    return run_task("translator", asked, Path(out), prepare, resumable=TranslateConfig.RESUMABLE_CHANGES,
                    resume=resume, device=device, handle_signals=handle_signals)

"""Training your own AdaIN decoder (Huang & Belongie 2017, section 6) for any registered encoder.

Loss = ‖f(g(t)) − t‖² at relu4_1 (t = AdaIN(f(c), f(s))) + style_weight · Σ_{relu1_1..relu4_1}
(or at a shallower ``layer``, for multi-level WCT, with the style layers up to it)
(‖μ(f(g(t))) − μ(f(s))‖² + ‖σ(…) − σ(…)‖²); Adam; LR schedule from the generic loop. The task
plugs into :class:`ganforge.train.loop.TrainingLoop`, which gives exact resume, loss curves
(``loss_curves.png``), sample grids (``samples/``) and checkpoints; the final decoder is written as
fp16 safetensors that :func:`ganforge.nets.adain_decoder.load_decoder` and ``--decoder`` accept.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError
from ..imageio import open_image, pil_to_tensor
from ..nets.adain_decoder import AdaINDecoder, save_decoder
from ..nets.vgg import load_vgg
from .adain import adain, mean_std
from .controls import resolve_paths

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@dataclass
class DecoderTrainConfig:
    content: str
    style: str
    encoder: str = "vgg19-torchvision"  # downloadable; vgg19-caffe is the offline alternative
    layer: str = "relu4_1"  # decoder input layer; shallower ones are for multi-level WCT
    steps: int = 160_000
    batch_size: int = 8
    crop: int = 256  # random crop size
    load_size: int = 512  # images are first resized so the short side is this
    lr: float = 1e-4
    lr_schedule: str = "linear"
    lr_decay_steps: int = 0  # schedule length; 0 = steps. Fix it to change --steps when resuming exactly
    style_weight: float = 10.0
    content_weight: float = 1.0
    precision: str = "auto"
    seed: int = 0
    log_every: int = 10
    sample_every: int = 500
    ckpt_every: int = 1000
    progress: bool = True


class CropBatches:
    """Random (content, style) crop pairs from two folders, drawn from the loop's checkpointed
    generator (so a resumed run sees the same batches). Images are decoded once, kept as uint8."""

    def __init__(self, content_dir: str, style_dir: str, batch_size: int, crop: int, load_size: int) -> None:
        self.batch_size, self.crop = batch_size, crop
        self.content = [self._load(p, load_size, crop) for p in resolve_paths(content_dir)]
        self.style = [self._load(p, load_size, crop) for p in resolve_paths(style_dir)]

    @staticmethod
    def _load(path: Path, load_size: int, crop: int) -> torch.Tensor:
        img = open_image(path)
        scale = max(load_size, crop) / min(img.size)
        img = img.resize((max(crop, round(img.width * scale)), max(crop, round(img.height * scale))))
        return (pil_to_tensor(img) * 255).round().to(torch.uint8)

    def _crops(self, pool: list[torch.Tensor], g: torch.Generator) -> torch.Tensor:
        out = []
        for _ in range(self.batch_size):
            img = pool[int(torch.randint(len(pool), (1,), generator=g))]
            h, w = img.shape[-2:]
            y = int(torch.randint(h - self.crop + 1, (1,), generator=g))
            x = int(torch.randint(w - self.crop + 1, (1,), generator=g))
            out.append(img[:, y:y + self.crop, x:x + self.crop])
        return torch.stack(out).float() / 255

    count_key = "content"

    def get(self, index: int, rank: int, world: int, generator: torch.Generator,
            device: torch.device) -> dict[str, torch.Tensor]:
        g = torch.Generator().manual_seed(int(torch.randint(2**62, (1,), generator=generator, device=generator.device)))
        return {"content": self._crops(self.content, g).to(device), "style": self._crops(self.style, g).to(device)}


class AdaINDecoderTask:
    """The loop's task: a trainable decoder against a frozen encoder."""

    name = "adain-decoder"

    def __init__(self, cfg: DecoderTrainConfig, device: torch.device, fixed: tuple[torch.Tensor, torch.Tensor]) -> None:
        self.cfg = cfg
        torch.manual_seed(cfg.seed)
        self.encoder = load_vgg(cfg.encoder).to(device).eval()
        self.decoder = AdaINDecoder(cfg.layer).to(device)
        self.layer = cfg.layer
        self.style_layers = STYLE_LAYERS[: STYLE_LAYERS.index(cfg.layer) + 1]
        self.opt = {"decoder": torch.optim.Adam(self.decoder.parameters(), lr=cfg.lr)}
        self.fixed = fixed  # (content, style) for sample grids

    def modules(self) -> dict[str, nn.Module]:
        return {"decoder": self.decoder}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return self.opt

    def losses(self, content: torch.Tensor, style: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        layers, top = self.style_layers, self.layer
        with torch.no_grad():
            fc = self.encoder(content, (top,))[top].float()
            fs = {k: v.float() for k, v in self.encoder(style, layers).items()}
            t = adain(fc, *mean_std(fs[top]))
        out = self.decoder(t)
        fo = self.encoder(out, layers)
        loss_c = F.mse_loss(fo[top].float(), t)
        loss_s = out.new_zeros(())
        for k in layers:
            (mo, so), (ms, ss) = mean_std(fo[k].float()), mean_std(fs[k])
            loss_s = loss_s + F.mse_loss(mo, ms) + F.mse_loss(so, ss)
        return loss_c, loss_s, out

    def step(self, ctx: Any) -> dict[str, float]:
        batch = ctx.next_batch()
        content, style = batch["content"], batch["style"]
        with ctx.autocast():
            loss_c, loss_s, _ = self.losses(content, style)
            loss = self.cfg.content_weight * loss_c + self.cfg.style_weight * loss_s
        ctx.optimize(loss, "decoder", [self.decoder])
        return {"loss_content": float(loss_c.detach()), "loss_style": float(loss_s.detach()),
                "loss": float(loss.detach())}

    @torch.no_grad()
    def snapshot(self, ctx: Any) -> torch.Tensor:
        """Rows of content | style | output for fixed pairs."""
        from torchvision.utils import make_grid

        content, style = self.fixed
        self.decoder.eval()
        fc = self.encoder(content, (self.layer,))[self.layer]
        fs = self.encoder(style, (self.layer,))[self.layer]
        out = self.decoder(adain(fc, *mean_std(fs))).clamp(0, 1)
        self.decoder.train()
        tiles = torch.stack([content, style, out], 1).flatten(0, 1)
        return make_grid(tiles.float().cpu(), nrow=3, padding=2)

    def extra_state(self) -> dict[str, Any]:
        return {}

    def load_extra_state(self, state: dict[str, Any]) -> None:
        pass


RESUMABLE_CHANGES = ("steps", "log_every", "sample_every", "ckpt_every", "progress")  # they do not change the maths
LEGACY_CONFIG = "train_style.json"  # options file of runs made before config.json (still written)


def train_decoder(cfg: DecoderTrainConfig, out: str | os.PathLike, *, resume: bool = True,
                  device: str = "auto", handle_signals: bool = False) -> dict[str, Any]:
    """Train (or resume) a decoder into run directory ``out``; writes ``decoder.safetensors``.
    ``resume``: False refuses to reuse a run directory (``--resume never``), as ``ganforge train``.
    ``device``: 'auto', 'cpu' or 'cuda' (as ``ganforge train --device``). ``handle_signals`` (the
    CLI sets it): SIGINT/SIGTERM finish the step, save a checkpoint and stop.

    The run (resume check, config.json / run.json, loop, summary) is
    :func:`ganforge.train.run.run_task`, the same path as GAN training; run.json's task is
    ``style-decoder``, which :func:`ganforge.runs.load_run` loads."""
    from ..train.loop import LoopConfig
    from ..train.run import Prepared, run_task

    run_dir = Path(out)
    final = run_dir / "decoder.safetensors"

    def prepare(accelerator) -> Prepared:
        batches = CropBatches(cfg.content, cfg.style, cfg.batch_size, cfg.crop, cfg.load_size)
        if not batches.content or not batches.style:
            raise DataError("train-style needs at least one content and one style image")
        g = torch.Generator().manual_seed(12345)
        fixed = tuple(x[:4].to(accelerator.device) for x in (batches._crops(batches.content, g), batches._crops(batches.style, g)))
        task = AdaINDecoderTask(cfg, accelerator.device, fixed)  # type: ignore[arg-type]
        loop_cfg = LoopConfig(steps=cfg.steps, batch_size=cfg.batch_size, seed=cfg.seed, precision=cfg.precision,
                              lr_schedule=cfg.lr_schedule, lr_decay_steps=cfg.lr_decay_steps,
                              log_every=cfg.log_every, sample_every=cfg.sample_every,
                              ckpt_every=cfg.ckpt_every, progress=cfg.progress, tensorboard=False)

        def write_outputs(loop) -> None:
            save_decoder(task.decoder, final, encoder=cfg.encoder,
                         card={"steps": loop.step, "config": asdict(cfg), "data": {"content": cfg.content, "style": cfg.style}})

        return Prepared(task=task, batches=batches, loop_config=loop_cfg,
                        curve_groups={"losses": ["loss_content", "loss_style", "loss"]},
                        run_info={"encoder": cfg.encoder, "layer": cfg.layer, "decoder": final.name},
                        summary={"decoder": str(final)}, write_outputs=write_outputs)

    return run_task("style-decoder", cfg, run_dir, prepare, resumable=RESUMABLE_CHANGES,
                    resume="auto" if resume else "never", device=device, handle_signals=handle_signals,
                    legacy_config=LEGACY_CONFIG,
                    extra_files={LEGACY_CONFIG: json.dumps(asdict(cfg), indent=2) + "\n"})

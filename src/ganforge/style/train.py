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
import warnings
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import DataError, GanforgeError
from ..imageio import open_image, pil_to_tensor
from ..nets.adain_decoder import AdaINDecoder, save_decoder
from ..nets.vgg import load_vgg
from ..train.options import LoopOptions
from .adain import adain, mean_std
from .controls import resolve_paths

STYLE_LAYERS = ("relu1_1", "relu2_1", "relu3_1", "relu4_1")


@dataclass
class DecoderTrainConfig(LoopOptions):
    """A decoder run's options: the loop's (:class:`~ganforge.train.options.LoopOptions`, with this
    task's own defaults for steps, batch size, LR schedule, sampling and checkpoints) and its own."""

    content: str = ""  # folder of content photos (required)
    style: str = ""  # folder of style images (required)
    encoder: str = "vgg19-torchvision"  # downloadable; vgg19-caffe is the offline alternative
    layer: str = "relu4_1"  # decoder input layer; shallower ones are for multi-level WCT
    crop: int = 256  # random crop size
    load_size: int = 512  # images are first resized so the short side is this
    lr: float = 1e-4
    style_weight: float = 10.0
    content_weight: float = 1.0
    # loop (the rest: train/options.py)
    steps: int = 160_000
    batch_size: int = 8
    lr_schedule: str = "linear"
    sample_every: int = 500
    ckpt_every: int = 1000

    def validate(self) -> None:
        if not self.content or not self.style:
            raise GanforgeError("train-style needs --content and --style (folders of images)")
        if self.layer not in STYLE_LAYERS:
            raise GanforgeError(f"--layer must be one of {', '.join(STYLE_LAYERS)}, got {self.layer!r}")
        if self.crop < 1 or self.load_size < 1:
            raise GanforgeError("--crop and --load-size must be at least 1")
        self.loop_config().validate()


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

    name = "style-decoder"  # as run.json's task

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


RESUMABLE_CHANGES = DecoderTrainConfig.RESUMABLE_CHANGES  # the loop's: they do not change the maths
LEGACY_CONFIG = "train_style.json"  # options file of runs made before config.json (still written)


def train_decoder(config: DecoderTrainConfig | None = None, out: str | os.PathLike | None = None, *,
                  resume: str | bool = "auto", device: str = "auto", handle_signals: bool = False,
                  **overrides: Any) -> dict[str, Any]:
    """Train (or resume) a decoder into run directory ``out``; writes ``decoder.safetensors``.
    ``resume``: 'auto' continues the run in ``out``, 'never' refuses to reuse a run directory, as
    :func:`ganforge.train_gan` (True/False still mean auto/never, deprecated). ``device``: 'auto',
    'cpu' or 'cuda'. ``handle_signals`` (the CLI sets it): SIGINT/SIGTERM finish the step, save a
    checkpoint and stop. ``overrides``: options replacing ``config``'s.

    The run (resume check, config.json / run.json, loop, summary) is
    :func:`ganforge.train.run.run_task`, the same path as GAN training; run.json's task is
    ``style-decoder``, which :func:`ganforge.runs.load_run` loads."""
    from ..train.run import Prepared, run_task

    if out is None:
        raise TypeError("train_decoder() needs out= (the run directory)")
    if isinstance(resume, bool):
        warnings.warn("train_decoder(resume=True/False) is deprecated; pass resume='auto' or 'never'",
                      DeprecationWarning, stacklevel=2)
        resume = "auto" if resume else "never"
    cfg = replace(config or DecoderTrainConfig(), **overrides)
    cfg.validate()
    run_dir = Path(out)
    final = run_dir / "decoder.safetensors"

    def prepare(accelerator) -> Prepared:
        batches = CropBatches(cfg.content, cfg.style, cfg.batch_size, cfg.crop, cfg.load_size)
        if not batches.content or not batches.style:
            raise DataError("train-style needs at least one content and one style image")
        g = torch.Generator().manual_seed(12345)
        fixed = tuple(x[:4].to(accelerator.device) for x in (batches._crops(batches.content, g), batches._crops(batches.style, g)))
        task = AdaINDecoderTask(cfg, accelerator.device, fixed)  # type: ignore[arg-type]

        def write_outputs(loop) -> None:
            save_decoder(task.decoder, final, encoder=cfg.encoder,
                         card={"steps": loop.step, "config": asdict(cfg), "data": {"content": cfg.content, "style": cfg.style}})

        return Prepared(task=task, batches=batches, loop_config=cfg.loop_config(),
                        curve_groups={"losses": ["loss_content", "loss_style", "loss"]},
                        run_info={"encoder": cfg.encoder, "layer": cfg.layer, "decoder": final.name},
                        summary={"decoder": str(final)}, write_outputs=write_outputs)

    return run_task(AdaINDecoderTask.name, cfg, run_dir, prepare, resumable=RESUMABLE_CHANGES,
                    resume=resume, device=device, handle_signals=handle_signals, legacy_config=LEGACY_CONFIG,
                    extra_files={LEGACY_CONFIG: json.dumps(asdict(cfg), indent=2) + "\n"})

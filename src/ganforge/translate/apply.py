"""Using a trained or published translator on images of any size.

``load_translator(run_dir | zoo name | .pth | exported .safetensors)`` returns a :class:`Translator`: call it on a PIL
image, a path or a tensor. Any H×W works: the input is reflect-padded to the generator's multiple
(4 for ResNet generators, 2**downs for U-Nets, 32 for SPADE) and the output cropped back, so the
output has exactly the input's size (upstream pix2pix/CycleGAN resize to squares of multiples of
4). Large images go tile by tile with blended overlaps (``tile``), so memory is one tile.

Importing this module registers the ``translator`` run task and model family (the adapter of
:mod:`ganforge.export.contract`: ``save_pretrained`` / ``from_pretrained``).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image
from torch import nn

from ..device import autocast, resolve_device, resolve_precision
from ..errors import CheckpointError, GanforgeError
from ..export.contract import FAMILIES, Family, file_family, from_pretrained
from ..imageops import crop_to, pad_to_multiple
from ..train.rundir import register_run_task
from .pretrained import batch_statistics, build_image_net, image_net_spec

AUTO_TILE_PIXELS = 1536 * 1536  # above this many pixels, --tile defaults to 512


@dataclass
class Translator:
    """An image -> image generator with what it needs to be used correctly."""

    net: nn.Module
    in_channels: int
    out_channels: int
    multiple: int
    labels: bool = False  # input is a label map of class ids (SPADE)
    num_classes: int = 0
    name: str = ""
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    memory: torch.memory_format = torch.contiguous_format  # channels_last on CUDA (set by ``to``)

    def to(self, device: str | torch.device = "auto", precision: str = "auto") -> "Translator":
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.memory = torch.channels_last if self.device.type == "cuda" else torch.contiguous_format  # see tasks.py
        self.net = self.net.to(self.device, memory_format=self.memory)
        return self

    # -- tensors ---------------------------------------------------------------------------------
    def _net_input(self, x: torch.Tensor) -> torch.Tensor:
        if self.labels:
            from ..nets.spade import one_hot

            return one_hot(x, self.num_classes)
        return x * 2 - 1

    @torch.inference_mode()
    def _forward(self, x: torch.Tensor) -> torch.Tensor:
        """One padded forward: ``x`` N×C×H×W in [0, 1] (or N×H×W class ids) -> N×C×H×W in [0, 1]."""
        x = x.to(self.device)
        inp = self._net_input(x)
        size = tuple(inp.shape[-2:])
        inp = pad_to_multiple(inp, self.multiple)
        inp = inp.contiguous(memory_format=self.memory)
        with autocast(self.precision, self.device):
            out = self.net(inp)
        return crop_to(out.float(), size).add(1).div(2).clamp(0, 1)

    def translate_tensor(self, x: torch.Tensor, *, tile: int | None = None, overlap: int = 32) -> torch.Tensor:
        """Batch in, batch out, same H×W. ``tile``: process in tiles of this size (None: only images
        above ~2.4 Mpx, in 512 px tiles)."""
        if len(x) > 1 and batch_statistics(self.net):
            # BatchNorm on the statistics of what it is given: one image per forward, so an image's
            # output never depends on the others in its batch (upstream tests pix2pix with batch 1)
            return torch.cat([self.translate_tensor(x[i:i + 1], tile=tile, overlap=overlap) for i in range(len(x))])
        h, w = x.shape[-2:]
        if tile is None and h * w > AUTO_TILE_PIXELS:
            tile = 512
        if not tile or (h <= tile and w <= tile):
            return self._forward(x).cpu()
        from ..style.controls import run_tiled

        if self.labels:  # tiles of a label map: one-hot first so run_tiled sees float channels
            raise GanforgeError("tiled translation of label maps is not supported; omit --tile")
        return run_tiled(x, self._forward, tile=tile, overlap=overlap, halo=overlap, multiple=8)

    # -- images ----------------------------------------------------------------------------------
    def load_input(self, image: str | os.PathLike | Image.Image) -> torch.Tensor:
        """A path or PIL image -> the network's input batch (1×C×H×W in [0, 1], or 1×H×W ids)."""
        from ..imageio import open_image

        if self.labels:
            from ..data.labelmap import read_label_map

            ids = read_label_map(image, self.num_classes) if not isinstance(image, Image.Image) else np.asarray(image)
            if ids.max(initial=0) >= self.num_classes:
                raise GanforgeError(f"label map holds class {int(ids.max())}, beyond the model's {self.num_classes} classes")
            return torch.from_numpy(np.asarray(ids, dtype=np.int64))[None]
        img = image if isinstance(image, Image.Image) else open_image(image)
        img = img.convert("L" if self.in_channels == 1 else "RGB")
        arr = np.asarray(img, dtype=np.float32) / 255.0
        t = torch.from_numpy(arr)
        t = t[None] if t.dim() == 2 else t.permute(2, 0, 1)
        return t[None]

    def __call__(self, image: Any, *, tile: int | None = None, overlap: int = 32) -> Any:
        """PIL image or path -> PIL image of the same size; a tensor batch -> a tensor batch."""
        if isinstance(image, torch.Tensor):
            return self.translate_tensor(image, tile=tile, overlap=overlap)
        out = self.translate_tensor(self.load_input(image), tile=tile, overlap=overlap)[0]
        arr = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
        return Image.fromarray(arr[..., 0] if arr.shape[-1] == 1 else arr)


def _from_run(run_dir: Path, *, direction: str | None, checkpoint_name: str, ema: bool) -> Translator:
    from ..train.rundir import load_checkpoint, require_task
    from ..train import checkpoint
    from ..train.run import CONFIG_FILE, load_options
    from .config import TranslateConfig
    from .tasks import build_generator

    meta = require_task(run_dir, "translator")
    cfg = load_options(TranslateConfig, run_dir / CONFIG_FILE).resolved()
    path, tensors, state = load_checkpoint(run_dir, checkpoint_name)
    model = cfg.model
    if model == "cyclegan":
        direction = direction or "AtoB"
        if direction not in ("AtoB", "BtoA"):
            raise GanforgeError(f"--direction must be AtoB or BtoA, got {direction!r}")
        # the run's A is the input side after its own --direction
        forward = (direction == "AtoB")
        name = "G_A" if forward else "G_B"
        cin, cout = (cfg.channels_a, cfg.channels_b) if cfg.direction == "AtoB" else (cfg.channels_b, cfg.channels_a)
        if not forward:
            cin, cout = cout, cin
    else:
        if direction not in (None, cfg.direction) and model == "pix2pix":
            raise GanforgeError(f"this pix2pix run was trained {cfg.direction}; it cannot translate {direction}")
        name = "G"
        if model == "spade":
            cin, cout = cfg.num_classes, cfg.channels_b
        else:
            cin, cout = (cfg.channels_a, cfg.channels_b) if cfg.direction == "AtoB" else (cfg.channels_b, cfg.channels_a)
    net = build_generator(cfg, cin, cout)
    key = f"{name}_ema" if ema and any(k.startswith(f"{name}_ema.") for k in tensors) else name
    checkpoint.restore_modules({key: net}, tensors, path)
    net.eval()
    if cfg.norm == "batch":
        from .zoo import use_batch_statistics

        use_batch_statistics(net)  # as upstream test.py, and as the published pix2pix models are run
    return Translator(net, in_channels=cin, out_channels=cout, multiple=int(meta.get("multiple", cfg.multiple())),
                      labels=model == "spade", num_classes=cfg.num_classes,
                      name=f"{run_dir} ({model}, {direction or cfg.direction}, step {state['step']})")


def _from_zoo(name_or_path: str, direction: str | None) -> Translator:
    from .zoo import ZOO, build_zoo_generator

    if direction not in (None, "AtoB"):
        raise GanforgeError("a published generator translates one way only; omit --direction "
                            "(use the opposite model, e.g. cyclegan-zebra2horse)")
    net = build_zoo_generator(name_or_path)  # BatchNorm already set to batch statistics where upstream uses them
    entry = ZOO.get(str(name_or_path))
    cin = getattr(net, "in_channels", None) or (entry.in_channels if entry else 3)
    cout = getattr(net, "out_channels", None) or (entry.out_channels if entry else 3)
    return Translator(net, in_channels=cin, out_channels=cout, multiple=int(getattr(net, "multiple", 4)),
                      name=str(name_or_path))


def load_translator(source: str | os.PathLike, *, direction: str | None = None, checkpoint: str = "latest",
                    ema: bool = True, device: str = "auto", precision: str = "auto") -> Translator:
    """A :class:`Translator` from a ``ganforge translate train`` run directory, a registered zoo name
    (``cyclegan-horse2zebra``, ``pix2pix-facades_label2photo``, …, see ``ganforge weights list``),
    a ``.pth`` file in the public pix2pix/CycleGAN layout, or a translator file written by
    ``ganforge export`` / ``save_pretrained``. ``direction``: for CycleGAN runs, which generator
    (AtoB or BtoA)."""
    path = Path(source)
    if path.is_dir():
        if not (path / "run.json").is_file():
            raise CheckpointError(f"{path} is not a ganforge run directory (no run.json)")
        tr = _from_run(path, direction=direction, checkpoint_name=checkpoint, ema=ema)
    elif path.is_file() and file_family(path) == "translator":
        if direction not in (None, "AtoB"):
            raise GanforgeError("an exported translator translates one way only; omit --direction")
        tr = from_pretrained(path, family="translator")
    else:
        if path.suffix and not path.exists():
            raise GanforgeError(f"no such file: {path}")
        tr = _from_zoo(str(source), direction)
    return tr.to(device, precision)


def _load_translator_run(run_dir: Path, meta: dict, *, checkpoint_name: str = "latest") -> Translator:
    return load_translator(run_dir, checkpoint=checkpoint_name)


register_run_task("translator", _load_translator_run)


# -- the translator family's adapter (ganforge.export.contract) ------------------------------------

def _parts(tr: Translator) -> tuple[str, dict[str, Any], nn.Module]:
    arch, net = image_net_spec(tr.net)
    return arch, {"net": net, "in_channels": tr.in_channels, "out_channels": tr.out_channels,
                  "multiple": tr.multiple, "labels": tr.labels, "num_classes": tr.num_classes,
                  "batch_statistics": batch_statistics(tr.net)}, tr.net


def _rebuild(arch: str, spec: dict[str, Any], tensors: dict, meta: dict, path: Path) -> Translator:
    net = build_image_net(arch, spec["net"], tensors, path)
    if spec.get("batch_statistics"):
        from .zoo import use_batch_statistics

        use_batch_statistics(net)
    return Translator(net, in_channels=spec["in_channels"], out_channels=spec["out_channels"],
                      multiple=spec["multiple"], labels=spec.get("labels", False),
                      num_classes=spec.get("num_classes", 0), name=str(path)).to("cpu", "fp32")  # as load_translator


FAMILIES.register("translator", Family(lambda obj: isinstance(obj, Translator), _parts, _rebuild))

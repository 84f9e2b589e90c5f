"""Using a trained inpainter: :func:`load_inpainter` (run directory or exported file ->
:class:`Inpainter`) and
:func:`inpaint_image` on images of any size (reflect-padded to the U-Net's multiple and cropped
back), masks of any size (resized to the image, nearest), the known pixels returned exactly (the
composite is done on the 8-bit values). Importing this module registers the ``inpainter`` run task
and model family (the adapter of :mod:`ganforge.export.contract`: ``save_pretrained`` /
``from_pretrained``)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ...errors import CheckpointError, GanforgeError
from ...export.contract import FAMILIES, Family, from_pretrained
from ...imageops import crop_to, pad_to_multiple
from ...train.rundir import load_checkpoint, register_run_task, require_task
from ...translate.pretrained import build_image_net, image_net_spec
from .config import InpaintConfig, build_inpaint_generator
from .ops import net_input

MASK_THRESHOLD = 127  # a mask pixel brighter than this (of 255) is a hole


@dataclass
class Inpainter:
    """A trained inpainting generator with what it needs to be used correctly."""

    net: nn.Module
    channels: int
    multiple: int
    name: str = ""
    device: torch.device = torch.device("cpu")
    precision: str = "fp32"
    prefill: str = "none"

    def to(self, device: str | torch.device = "auto", precision: str = "auto") -> "Inpainter":
        from ...device import resolve_device, resolve_precision

        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.net = self.net.to(self.device, memory_format=torch.channels_last)
        return self

    @torch.inference_mode()
    def fill(self, image: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """N×C×H×W in [0, 1] and N×1×H×W (1 = hole) -> the network's raw output, N×C×H×W in [0, 1]
        (not composited; any H×W)."""
        from ...device import autocast

        h, w = image.shape[-2:]
        x, base = net_input(image.to(self.device) * 2 - 1, mask.to(self.device).float(), self.prefill)
        x = pad_to_multiple(x, self.multiple).contiguous(memory_format=torch.channels_last)
        with autocast(self.precision, self.device):
            out = self.net(x)
        return (base + crop_to(out.float(), (h, w))).add(1).div(2).clamp(0, 1).cpu()


def load_inpainter(run_dir: str | os.PathLike, *, checkpoint: str = "latest", ema: bool = True,
                   device: str = "auto", precision: str = "auto") -> Inpainter:
    """An :class:`Inpainter` from a ``ganforge train-inpainter`` run directory, or from an inpainter
    file written by ``ganforge export`` / ``save_pretrained`` (one set of weights: ``checkpoint``
    and ``ema`` apply to run directories)."""
    from ...train import checkpoint as ckpt
    from ...train.run import CONFIG_FILE, load_options

    run_dir = Path(run_dir)
    if run_dir.is_file():
        if checkpoint != "latest":
            raise GanforgeError(f"{run_dir} is an exported inpainter (one set of weights); "
                                "--checkpoint applies to run directories")
        return from_pretrained(run_dir, family="inpainter").to(device, precision)
    if not run_dir.is_dir():
        raise CheckpointError(f"{run_dir} is not a run directory (train one with ganforge train-inpainter)")
    meta = require_task(run_dir, "inpainter")
    cfg = load_options(InpaintConfig, run_dir / CONFIG_FILE)
    path, tensors, state = load_checkpoint(run_dir, checkpoint)
    net = build_inpaint_generator(cfg)
    key = "G_ema" if ema and any(k.startswith("G_ema.") for k in tensors) else "G"
    ckpt.restore_modules({key: net}, tensors, path)
    net.eval()
    model = Inpainter(net, channels=cfg.channels, multiple=int(meta.get("multiple", cfg.multiple())),
                      prefill=cfg.prefill, name=f"{run_dir} (inpainter, step {state['step']})")
    return model.to(device, precision)


def _read_image(image: Any, mode: str) -> np.ndarray:
    """A path or PIL image -> uint8 H×W×C in ``mode`` ('L' or 'RGB')."""
    from PIL import Image

    from ...imageio import open_image

    img = image if isinstance(image, Image.Image) else open_image(image, mode)
    arr = np.asarray(img.convert(mode), dtype=np.uint8)
    return arr[..., None] if arr.ndim == 2 else arr


def read_mask(mask: Any, size: tuple[int, int]) -> np.ndarray:
    """A mask (path, PIL image, array or tensor; white / non-zero = hole) -> bool H×W at ``size``
    (H, W), resized with nearest neighbour when its size differs. A file that is not an image is a
    one-line DataError."""
    from PIL import Image

    from ...imageio import open_image

    if isinstance(mask, torch.Tensor):
        mask = mask.detach().cpu().numpy()
    if isinstance(mask, np.ndarray):
        arr = np.asarray(mask)
        while arr.ndim > 2:  # N×1×H×W, 1×H×W, H×W×C: reduce to H×W
            arr = arr[0] if arr.shape[0] == 1 else arr.max(axis=-1 if arr.shape[-1] in (1, 3, 4) else 0)
        if arr.dtype == np.bool_:
            arr = arr.astype(np.uint8) * 255
        elif arr.dtype.kind == "f" and arr.max(initial=0) <= 1.0:
            arr = (arr * 255).round()
        pil = Image.fromarray(np.clip(arr, 0, 255).astype(np.uint8), "L")
    else:
        pil = mask if isinstance(mask, Image.Image) else open_image(mask, "L")
        pil = pil.convert("L")
    h, w = size
    if pil.size != (w, h):
        pil = pil.resize((w, h), Image.NEAREST)
    return np.asarray(pil) > MASK_THRESHOLD


def inpaint_image(model: Inpainter, image: Any, mask: Any) -> Any:
    """Fill the hole of ``image`` (a path or PIL image -> PIL image; a C×H×W float tensor in [0, 1] ->
    a tensor) where ``mask`` is white (> 127 of 255; any size, resized nearest to the image).
    Output size == input size; the known pixels are returned exactly (for images: byte-identical
    8-bit values; the image is first converted to the model's mode, RGB or L); a mask without a
    hole returns the input unchanged."""
    from PIL import Image

    if isinstance(image, torch.Tensor):
        if image.dim() != 3:
            raise GanforgeError(f"inpaint_image takes one C×H×W image tensor, got shape {tuple(image.shape)}")
        hole = torch.from_numpy(read_mask(mask, tuple(image.shape[-2:])))
        if not hole.any():
            return image.clone()
        x = image.float()
        if x.shape[0] != model.channels:
            x = x.mean(0, keepdim=True) if model.channels == 1 else x.expand(3, -1, -1)
        m = hole[None, None].float()
        out = model.fill(x[None], m)[0]
        if out.shape[0] != image.shape[0]:
            out = out.expand(image.shape[0], -1, -1)
        return torch.where(hole[None], out.to(image.dtype), image)
    mode = "L" if model.channels == 1 else "RGB"
    arr = _read_image(image, mode)
    hole = read_mask(mask, arr.shape[:2])
    if not hole.any():
        return Image.fromarray(arr[..., 0] if mode == "L" else arr, mode)
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1)[None].float() / 255.0
    m = torch.from_numpy(hole)[None, None].float()
    out = model.fill(x, m)[0]
    filled = (out.permute(1, 2, 0).numpy() * 255).round().astype(np.uint8)
    result = np.where(hole[..., None], filled, arr)
    return Image.fromarray(result[..., 0] if mode == "L" else result, mode)


def _load_inpainter_run(run_dir: Path, meta: dict, *, checkpoint_name: str = "latest"):
    return load_inpainter(run_dir, checkpoint=checkpoint_name)


register_run_task("inpainter", _load_inpainter_run)


# -- the inpainter family's adapter (ganforge.export.contract) -------------------------------------

def _parts(model: Inpainter) -> tuple[str, dict[str, Any], nn.Module]:
    arch, net = image_net_spec(model.net)
    return arch, {"net": net, "channels": model.channels, "multiple": model.multiple,
                  "prefill": model.prefill}, model.net


def _rebuild(arch: str, spec: dict[str, Any], tensors: dict, meta: dict, path: Path) -> Inpainter:
    net = build_image_net(arch, spec["net"], tensors, path)
    return Inpainter(net, channels=spec["channels"], multiple=spec["multiple"], prefill=spec.get("prefill", "none"),
                     name=str(path)).to("cpu", "fp32")  # as load_inpainter (its memory format too)


FAMILIES.register("inpainter", Family(lambda obj: isinstance(obj, Inpainter), _parts, _rebuild))

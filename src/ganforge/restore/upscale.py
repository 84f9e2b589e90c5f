"""Super-resolve an image with a network from :mod:`ganforge.nets.rrdb` (or any module with a
``scale`` attribute), whole or tile by tile.

Tiling reuses the style path's planner and blending (:func:`ganforge.style.controls.plan_tiles`,
:func:`~ganforge.style.controls.blend_weight`): tiles of ``tile`` input pixels whose owned regions
overlap by ``overlap`` px and are cross-faded with linear ramps (no seams), each computed with
``halo`` px of extra context on every side that is then thrown away. Blending happens at the output
resolution (ramps ``scale × overlap`` wide) on the CPU, so peak accelerator memory is one tile.
When ``halo`` covers the network's receptive field the tiled result equals the untiled one up to
float rounding; the real RRDBNet's field is far wider than any practical halo, so there the
difference is small and spread smoothly over the overlaps instead of showing as seams.

Sizes: any H×W (odd ones too). Networks that pixel-unshuffle their input (×2 / ×1 RRDBNet) get a
reflect pad to their ``input_multiple`` at the bottom/right, cropped off the output; the result is
exactly ``scale·H × scale·W`` (or ``round(out_scale·H) × round(out_scale·W)`` with ``out_scale``).
"""

from __future__ import annotations

import os
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ..device import autocast, resolve_device, resolve_precision
from ..errors import GanforgeError


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


def _net_device(net: nn.Module) -> torch.device:
    param = next(net.parameters(), None)
    return param.device if param is not None else torch.device("cpu")


def _as_batch(image: Any, channels: int) -> tuple[torch.Tensor, int]:
    """Tensor (C×H×W or N×C×H×W, values in [0, 1]), PIL image or path -> N×C×H×W float, and the
    rank to give back."""
    from ..style.controls import to_batch

    if isinstance(image, torch.Tensor) and image.dim() == 4 and image.shape[0] > 1:
        if image.shape[1] != channels:
            raise GanforgeError(f"image batch has {image.shape[1]} channels, the network takes {channels}")
        return image.detach().float().clamp(0, 1), 4
    rank = image.dim() if isinstance(image, torch.Tensor) else 4
    return to_batch(image, "RGB" if channels == 3 else "L"), rank


def upscale_image(net: nn.Module, image: Any, *, tile: int | None = None, overlap: int = 16, halo: int = 16,
                  precision: str = "auto", device: str | torch.device | None = None,
                  out_scale: float | None = None) -> torch.Tensor:
    """Super-resolve ``image`` (tensor in [0, 1], C×H×W or N×C×H×W; a PIL image or path also works)
    with ``net``; returns a float CPU tensor in [0, 1] of the input's rank, ``net.scale`` × larger.

    - ``tile``: process tiles of this many input pixels (None / 0: the whole image at once);
      ``overlap``: px by which neighbouring tiles overlap and are cross-faded; ``halo``: extra
      context px computed around each tile and discarded.
    - ``precision``: auto|fp32|bf16|fp16 through :mod:`ganforge.device` (auto: bf16 where the
      hardware runs it natively, else fp32); ``device``: where to run (None: where ``net`` is; the
      network is moved there otherwise).
    - ``out_scale``: a final bicubic (antialiased) resize to ``out_scale`` × the input size, for
      output scales the network was not trained for (Real-ESRGAN's ``--outscale``).
    """
    scale = int(getattr(net, "scale", 0))
    if scale < 1:
        raise GanforgeError(f"{type(net).__name__} has no integer `scale` attribute: not an upscaling network")
    dev = _net_device(net) if device is None else resolve_device(device)
    if _net_device(net) != dev:
        net.to(dev)
    prec = resolve_precision(precision, dev)
    x, rank = _as_batch(image, int(getattr(net, "in_channels", 3)))
    h, w = x.shape[-2:]
    multiple = max(1, int(getattr(net, "input_multiple", 1)))
    if h % multiple or w % multiple:
        from ..imageops import pad_to_multiple

        x = pad_to_multiple(x, multiple, small="replicate")
    was_training = net.training
    if was_training:  # (toggling every submodule costs ~1 ms on a 23-block RRDBNet: only when needed)
        net.eval()
    try:
        with torch.inference_mode(), autocast(prec, dev):
            if tile and (x.shape[-2] > tile or x.shape[-1] > tile):
                y = _tiled(net, x, scale, multiple, dev, tile=tile, overlap=overlap, halo=halo)
            else:
                y = net(x.to(dev)).float()
    finally:
        if was_training:
            net.train()
    y = y[..., : h * scale, : w * scale]
    if out_scale and out_scale != scale:
        size = (max(1, round(h * out_scale)), max(1, round(w * out_scale)))
        y = F.interpolate(y, size=size, mode="bicubic", align_corners=False, antialias=True)
    y = _to_host(y.clamp(0, 1))  # out of place: a normal tensor, not an inference-mode one
    return y[0] if rank == 3 else y


def _to_host(y: torch.Tensor) -> torch.Tensor:
    """The result on the CPU. From CUDA: one non_blocking copy into page-locked memory (torch's
    caching host allocator reuses the buffer across calls) and a wait on that copy alone, instead of
    a pageable synchronous copy; everything before it stays queued on the device until the writer
    needs the pixels. On the CPU: the tensor itself."""
    if y.device.type != "cuda":
        return y.cpu()
    host = torch.empty(y.shape, dtype=y.dtype, pin_memory=True)
    host.copy_(y, non_blocking=True)
    done = torch.cuda.Event()
    done.record(torch.cuda.current_stream(y.device))
    done.synchronize()
    return host


def _tiled(net: nn.Module, x: torch.Tensor, scale: int, multiple: int, dev: torch.device, *, tile: int,
           overlap: int, halo: int) -> torch.Tensor:
    from ..style.controls import blend_weight, plan_tiles

    if overlap < 0 or halo < 0:
        raise GanforgeError(f"overlap and halo must be >= 0, got {overlap} and {halo}")
    tile = _round_up(tile, multiple)  # tile boxes stay aligned to what the network's input needs
    halo = _round_up(halo, multiple)
    if tile <= 2 * overlap:
        raise GanforgeError(f"--tile {tile} must be more than twice --overlap {overlap}")
    n, _, h, w = x.shape
    out: torch.Tensor | None = None
    total = torch.zeros(1, 1, h * scale, w * scale)
    for t in plan_tiles(h, w, tile, overlap, halo, multiple):
        y = net(x[..., t.y0:t.y1, t.x0:t.x1].to(dev)).float().cpu()
        if out is None:
            out = torch.zeros(n, y.shape[1], h * scale, w * scale)
        cy0, cx0, cy1, cx1 = (v * scale for v in t.core)
        oy, ox = t.y0 * scale, t.x0 * scale
        weight = blend_weight((cy0, cx0, cy1, cx1), h * scale, w * scale, overlap * scale)
        out[..., cy0:cy1, cx0:cx1] += y[..., cy0 - oy:cy1 - oy, cx0 - ox:cx1 - ox] * weight
        total[..., cy0:cy1, cx0:cx1] += weight
    assert out is not None
    return out.div_(total.clamp_min(1e-8))


def upscale(image: str | os.PathLike | Image.Image | torch.Tensor,
            model: str | os.PathLike | nn.Module = "realesrgan-x4plus", **options: Any) -> Image.Image:
    """One image in, one PIL image out: ``model`` is a registered name, a weights file or a
    network; ``options`` go to :func:`upscale_image`."""
    from ..imageio import tensor_to_pil
    from .zoo import build_upscaler

    net = model if isinstance(model, nn.Module) else build_upscaler(model)
    out = upscale_image(net, image, **options)
    return tensor_to_pil(out[0] if out.dim() == 4 else out)


class Upscaler:
    """A super-resolution network as an inference object, like the other families'
    (``Generator``, ``Translator``, ``Inpainter``, ``Stylizer``): ``load_upscaler(name_or_path)``
    -> ``.to(device, precision)`` -> ``upscaler(image)``. Calls :func:`upscale_image`."""

    def __init__(self, net: nn.Module, *, device: str | torch.device = "cpu", precision: str = "fp32") -> None:
        if int(getattr(net, "scale", 0)) < 1:
            raise GanforgeError(f"{type(net).__name__} has no integer `scale` attribute: not an upscaling network")
        self.net = net.eval()
        self.scale = int(net.scale)
        self.to(device, precision)

    def to(self, device: str | torch.device = "auto", precision: str = "auto") -> "Upscaler":
        self.device = resolve_device(device)
        self.precision = resolve_precision(precision, self.device)
        self.net.to(self.device)
        return self

    def __call__(self, image: Any, *, tile: int | None = None, overlap: int = 16, halo: int = 16,
                 out_scale: float | None = None) -> torch.Tensor:
        return upscale_image(self.net, image, tile=tile, overlap=overlap, halo=halo, precision=self.precision,
                             device=self.device, out_scale=out_scale)


def load_upscaler(name_or_path: str | os.PathLike, **arch: Any) -> Upscaler:
    """An :class:`Upscaler` for a registered name, a weights file, an exported file or a
    ``train-upscaler`` run directory (see :func:`ganforge.restore.zoo.build_upscaler`), on the CPU in
    fp32 until :meth:`Upscaler.to`."""
    from .zoo import build_upscaler

    return Upscaler(build_upscaler(name_or_path, **arch))

"""Per-frame operations of the image commands, as the video path's frame ops (N×3×H×W in [0, 1] ->
N×3×H'×W' in [0, 1]): ``upscale`` and ``translate apply`` take a video through the same
:func:`ganforge.video.pipeline.process_video` as ``stylize-video`` (whose op is in
:mod:`ganforge.video.stylize`)."""

from __future__ import annotations

from typing import Any

import torch

from ..errors import GanforgeError
from .pipeline import FrameOp


def upscaler_op(net: torch.nn.Module, *, tile: int | None = None, overlap: int = 16, halo: int = 16,
                precision: str = "auto", device: Any = None, out_scale: float | None = None) -> FrameOp:
    """Frames through :func:`ganforge.restore.upscale.upscale_image` (tiling, padding and precision
    as for images): the output is ``scale`` × the frame size."""
    from ..restore.upscale import upscale_image

    def op(x: torch.Tensor) -> torch.Tensor:
        return upscale_image(net, x, tile=tile, overlap=overlap, halo=halo, precision=precision, device=device,
                             out_scale=out_scale)

    return op


def translator_op(translator: Any, *, tile: int | None = None, overlap: int = 32) -> FrameOp:
    """Frames through a :class:`ganforge.translate.apply.Translator` (same size out). A grey-input
    model sees the frames' luma; a grey output is written as RGB. Label-map models (SPADE) take
    class ids, not video frames: a one-line error."""
    if translator.labels:
        raise GanforgeError(f"{translator.name}: a label-map model (SPADE) cannot take a video's RGB frames")

    from ..metrics.imagesim import luma

    def op(x: torch.Tensor) -> torch.Tensor:
        if translator.in_channels == 1:
            x = luma(x)
        y = translator.translate_tensor(x, tile=tile, overlap=overlap).float().cpu()
        return y.expand(-1, 3, -1, -1) if y.shape[1] == 1 else y

    return op
